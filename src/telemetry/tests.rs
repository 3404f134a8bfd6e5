//! Unit tests of `telemetry`.
use super::*;
use crate::engine::observer::{InFlight, QueryTimer};

fn line<'a>(text: &'a str, series: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

fn value(text: &str, series: &str) -> f64 {
    line(text, series)
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("series {series} has no number"))
}

#[test]
fn settling_and_unproven_phases_are_counted_with_their_class() {
    let t = Telemetry::default();
    t.record_measurement(Some(GuardrailKind::NotReady), Phase::Running, None);
    t.record_measurement(
        Some(GuardrailKind::NotReady),
        Phase::Inconclusive,
        Some(FailureClass::NoTraffic),
    );
    t.record_measurement(
        Some(GuardrailKind::Restarts),
        Phase::Error,
        Some(FailureClass::Timeout),
    );
    let text = t.render();
    for (series, expected) in [
        (
            r#"rollouts_guardrails_measurements_total{guardrail="not-ready",phase="Running"}"#,
            1.0,
        ),
        (
            r#"rollouts_guardrails_measurements_total{guardrail="not-ready",phase="Inconclusive"}"#,
            1.0,
        ),
        (
            r#"rollouts_guardrails_measurements_total{guardrail="restarts",phase="Error"}"#,
            1.0,
        ),
        (
            r#"rollouts_guardrails_measurement_failures_total{class="no-traffic"}"#,
            1.0,
        ),
        (
            r#"rollouts_guardrails_measurement_failures_total{class="timeout"}"#,
            1.0,
        ),
        (
            r#"rollouts_guardrails_measurement_failures_total{class="no-data"}"#,
            0.0,
        ),
    ] {
        assert_eq!(value(&text, series), expected, "{series}");
    }
}

#[test]
fn measurements_count_by_guardrail_phase_and_class() {
    let t = Telemetry::default();
    t.record_measurement(Some(GuardrailKind::Restarts), Phase::Successful, None);
    t.record_measurement(
        Some(GuardrailKind::Restarts),
        Phase::Failed,
        Some(FailureClass::Threshold),
    );
    t.record_measurement(None, Phase::Failed, Some(FailureClass::Config));
    t.record_measurement(None, Phase::Failed, Some(FailureClass::Config));
    for kind in GuardrailKind::ALL {
        t.record_measurement(Some(kind), Phase::Successful, None);
    }
    let text = t.render();
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurements_total{guardrail="restarts",phase="Successful"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurements_total{guardrail="restarts",phase="Failed"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurements_total{guardrail="unknown",phase="Failed"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurements_total{guardrail="query",phase="Failed"}"#
        ),
        0.0
    );
    for kind in GuardrailKind::ALL {
        let series = format!(
            r#"rollouts_guardrails_measurements_total{{guardrail="{}",phase="Successful"}}"#,
            kind.name()
        );
        assert!(value(&text, &series) >= 1.0, "{series}");
    }
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurement_failures_total{class="config"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurement_failures_total{class="threshold"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"rollouts_guardrails_measurement_failures_total{class="no-data"}"#
        ),
        0.0
    );
}

#[test]
fn the_histogram_is_cumulative_and_abandoned_queries_count_as_cancelled() {
    let t: &'static Telemetry = Box::leak(Box::default());
    t.query_finished(Duration::from_millis(3), QueryOutcome::Ok);
    t.query_finished(Duration::from_millis(300), QueryOutcome::Ok);
    t.query_finished(Duration::from_secs(60), QueryOutcome::Ok);
    drop(QueryTimer::start(t));
    QueryTimer::start(t).finish(QueryOutcome::Error);
    let text = t.render();
    let name = "rollouts_guardrails_prometheus_query_duration_seconds";
    assert_eq!(
        value(
            &text,
            &format!(r#"{name}_bucket{{outcome="ok",le="0.005"}}"#)
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"{name}_bucket{{outcome="ok",le="0.25"}}"#)
        ),
        1.0
    );
    assert_eq!(
        value(&text, &format!(r#"{name}_bucket{{outcome="ok",le="0.5"}}"#)),
        2.0
    );
    assert_eq!(
        value(&text, &format!(r#"{name}_bucket{{outcome="ok",le="30"}}"#)),
        2.0
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"{name}_bucket{{outcome="ok",le="+Inf"}}"#)
        ),
        3.0
    );
    assert_eq!(
        value(&text, &format!(r#"{name}_count{{outcome="ok"}}"#)),
        3.0
    );
    let sum = value(&text, &format!(r#"{name}_sum{{outcome="ok"}}"#));
    assert!((sum - 60.303).abs() < 1e-9, "{sum}");
    assert_eq!(
        value(&text, &format!(r#"{name}_count{{outcome="cancelled"}}"#)),
        1.0
    );
    assert_eq!(
        value(&text, &format!(r#"{name}_count{{outcome="error"}}"#)),
        1.0
    );
}

#[test]
fn the_in_flight_gauge_follows_its_guards() {
    let t: &'static Telemetry = Box::leak(Box::default());
    let a = InFlight::new(t);
    let b = InFlight::new(t);
    assert_eq!(
        value(&t.render(), "rollouts_guardrails_measurements_in_flight"),
        2.0
    );
    drop(a);
    drop(b);
    assert_eq!(
        value(&t.render(), "rollouts_guardrails_measurements_in_flight"),
        0.0
    );
}

#[test]
fn every_family_has_help_and_type_and_build_info_names_the_version() {
    let text = Telemetry::default().render();
    for family in [
        "rollouts_guardrails_measurements_total",
        "rollouts_guardrails_measurement_failures_total",
        "rollouts_guardrails_prometheus_query_duration_seconds",
        "rollouts_guardrails_measurements_in_flight",
        "rollouts_guardrails_build_info",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
    assert_eq!(
        line(&text, "rollouts_guardrails_build_info{version=\"0.1.0\"}"),
        "rollouts_guardrails_build_info{version=\"0.1.0\"} 1"
    );
}

#[test]
fn only_get_and_head_of_the_metrics_path_are_served() {
    assert_eq!(respond(&Method::GET, "/metrics").status(), StatusCode::OK);
    assert_eq!(
        respond(&Method::GET, "/metrics").headers()[CONTENT_TYPE],
        CONTENT_TYPE_TEXT
    );
    assert_eq!(respond(&Method::HEAD, "/metrics").status(), StatusCode::OK);
    assert_eq!(
        respond(&Method::POST, "/metrics").status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(respond(&Method::GET, "/").status(), StatusCode::NOT_FOUND);
}

#[test]
fn the_listen_address_from_the_environment_is_validated() {
    // Only this test touches the variable in this binary.
    std::env::set_var(METRICS_LISTEN_ENV, "not an address");
    let error = metrics_listen_from_env().unwrap_err();
    assert!(error.to_string().starts_with(
        "invalid metrics listen address `not an address` (from GUARDRAILS_METRICS_LISTEN)"
    ));
    std::env::set_var(METRICS_LISTEN_ENV, " 127.0.0.1:9465 ");
    assert_eq!(
        metrics_listen_from_env().unwrap(),
        Some("127.0.0.1:9465".parse().unwrap())
    );
    std::env::set_var(METRICS_LISTEN_ENV, "");
    assert_eq!(metrics_listen_from_env().unwrap(), None);
    std::env::remove_var(METRICS_LISTEN_ENV);
}
