//! Unit tests of `traffic`.
use super::*;
use crate::engine::config::Config;
use crate::engine::guardrails::testing::{at, config, s as sample, AT};
use crate::engine::guardrails::{query_name::COVERAGE, Guardrail, Target};
use crate::engine::verdict::Verdict;
use crate::prometheus::QueryData;

fn target() -> TargetSelector {
    TargetSelector::new("shop", "web", "6c8d7f9a1").unwrap()
}

fn planned(json: &str) -> Result<Vec<Query>, Failure> {
    let plan = config(json).settings.plan(&Target::ReplicaSet(target()))?;
    Ok(plan.sides.into_iter().flat_map(|s| s.queries).collect())
}

fn one(value: f64) -> QueryData {
    QueryData::Vector(vec![sample(&[], value)])
}

fn judge(json: &str, entries: Vec<(&'static str, QueryData)>) -> Verdict {
    let c = config(json);
    let mut answers: Answers = entries.into_iter().collect();
    answers.insert(
        COVERAGE,
        QueryData::Vector(vec![sample(&[("pod", "web-6c8d7f9a1-a")], AT)]),
    );
    c.settings
        .judge(&Target::ReplicaSet(target()), &[answers], &c.common, at())
}

#[test]
fn presets_name_their_metrics_and_join_on_the_target_pods() {
    let q = planned(r#"{"guardrail":"error-rate"}"#).unwrap();
    let named = |q: &[(&str, String)], name: &str| {
        q.iter().find(|(n, _)| *n == name).expect(name).1.clone()
    };
    assert_eq!(
        named(&q, query_name::ERRORS),
        r#"sum((increase(http_requests_total{namespace="shop",code!="",code=~"5.."}[300s])) and on(namespace, pod) kube_pod_info{namespace="shop",created_by_kind="ReplicaSet",created_by_name="web-6c8d7f9a1"})"#
    );
    let Guardrail::Latency(l) =
        config(r#"{"guardrail":"latency","source":"istio","threshold":0.5}"#).settings
    else {
        panic!()
    };
    let p = plan(&l.traffic, Measure::Latency(l.quantile), &target()).unwrap();
    assert_eq!(p.unit_to_seconds, 0.001);
    assert!(p.queries[0].1.starts_with(r#"histogram_quantile(0.95, sum by (le) ((rate(istio_request_duration_milliseconds_bucket{reporter="destination",namespace="shop"}[300s]))"#), "{}", p.queries[0].1);
    let q =
        planned(r#"{"guardrail":"error-rate","source":"ingress-nginx","service":"web-canary"}"#)
            .unwrap();
    assert_eq!(
        named(&q, query_name::REQUESTS),
        r#"sum(increase(nginx_ingress_controller_requests{exported_namespace="shop",status!="",exported_service="web-canary"}[300s]))"#
    );
    let err =
        Config::from_json(br#"{"guardrail":"error-rate","source":"ingress-nginx"}"#).unwrap_err();
    assert!(err.to_string().contains("needs `service`"), "{err}");
}

#[test]
fn hostile_overrides_never_reach_promql() {
    for json in [
        r#"{"guardrail":"error-rate","requestMetric":"up) or vector(1"}"#,
        r#"{"guardrail":"error-rate","errorLabel":"code\"}"}"#,
        r#"{"guardrail":"latency","threshold":1,"histogramMetric":"http_seconds"}"#,
        r#"{"guardrail":"error-rate","matchers":{"a-b":"x"}}"#,
    ] {
        assert!(Config::from_json(json.as_bytes()).is_err(), "{json}");
    }
    let q =
        planned(r#"{"guardrail":"error-rate","requestMatchers":{"route":"/a\"} or vector(1)"}}"#)
            .unwrap();
    let errors = &q.iter().find(|(n, _)| *n == query_name::ERRORS).unwrap().1;
    assert!(errors.contains(r#"route="/a\"} or vector(1)""#), "{errors}");
}

#[test]
fn error_ratio_above_threshold_fails_and_no_error_series_is_zero() {
    let json = r#"{"guardrail":"error-rate","threshold":0.05}"#;
    let answers = |errors: QueryData| {
        vec![
            (query_name::REQUESTS, one(200.0)),
            (query_name::LATEST_REQUEST, one(AT - 20.0)),
            (query_name::ERRORS, errors),
        ]
    };
    let Verdict::Fail(f) = judge(json, answers(one(40.0))) else {
        panic!()
    };
    assert_eq!(
        (f.class, f.value.as_str()),
        (FailureClass::Threshold, "0.2")
    );
    assert!(f.message.contains("40 of 200 requests"), "{}", f.message);
    let Verdict::Pass(ok) = judge(json, answers(QueryData::Vector(vec![]))) else {
        panic!()
    };
    assert_eq!(ok.value, "0");
}

#[test]
fn latency_is_converted_to_seconds_and_compared() {
    let json = r#"{"guardrail":"latency","source":"istio","threshold":0.3}"#;
    let answers = |ms: f64| {
        vec![
            (query_name::REQUESTS, one(500.0)),
            (query_name::LATEST_REQUEST, one(AT)),
            (query_name::LATENCY, one(ms)),
        ]
    };
    assert!(matches!(judge(json, answers(250.0)), Verdict::Pass(_)));
    let Verdict::Fail(f) = judge(json, answers(450.0)) else {
        panic!()
    };
    assert_eq!(f.value, "0.45");
    let Verdict::Fail(f) = judge(json, answers(f64::NAN)) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::QueryError);
}
