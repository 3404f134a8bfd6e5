//! How the stores differ where it matters to a guardrail, each difference pinned on the store the tests run against
//! (`GUARDRAILS_TEST_ENGINE`, see `support::prometheus::Store`); `make test-engines` runs it on every store.
//! docs/prometheus-compatibility.md explains each one and how the engine copes. Every case states the answer of
//! every store: when a store changes behaviour, the case fails and the document must be revisited.
use crate::support;

use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{AnalysisContext, Engine, OwnerReference, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::json;
use support::analysis;
use support::ksm::{Container, Fixture, Pod, Steps, Timeline};
use support::prometheus::{self, Store, TestPrometheus};
use support::scenarios::{self, END, MINUTE};

/// `name{labels}` sampled every 30 s with `value(t)` from `from` to `to` (unix seconds, inclusive), OpenMetrics.
fn series(name: &str, labels: &str, from: i64, to: i64, value: impl Fn(i64) -> f64) -> String {
    (from..=to)
        .step_by(30)
        .map(|t| format!("{name}{{{labels}}} {} {t}\n", value(t)))
        .collect()
}

#[test]
fn range_selectors_left_boundary_per_store() {
    // Prometheus 2 includes a sample exactly at `t - range`; Prometheus 3 (and the Thanos Querier, which embeds
    // its engine) and VictoriaMetrics do not. Every 30 s, `[5m]` at END holds 11 samples on the first, 10 on the
    // others: a guardrail reading `max_over_time - min_over_time` over `[w]` sees one scrape interval less there.
    let text = format!(
        "# TYPE probe gauge\n{}# EOF\n",
        series("probe", r#"job="a""#, END - 20 * MINUTE, END, |_| 1.0)
    );
    let store = TestPrometheus::start(&text);
    let closed = store.store() == Store::Prometheus2;
    assert_eq!(
        store.query_value("count_over_time(probe[5m])", END),
        Some(if closed { 11.0 } else { 10.0 })
    );
    assert_eq!(
        store.query_value("count_over_time(probe[5m15s])", END),
        Some(11.0)
    );
}

#[tokio::test]
async fn a_restart_in_the_first_scrape_interval_of_the_window_counts_on_every_store() {
    // The restart counter reads 1 from the sample at END - 4m30s on: the restart happened after END - 5m, inside
    // `restarts`' 5-minute window. With `min_over_time(…[5m])` as the window's baseline the stores with an open left
    // boundary (Prometheus 3, Thanos, VictoriaMetrics) started from the sample at END - 4m30s, counted 0 restarts
    // and passed; the baseline is now the last sample at or before END - 5m.
    let timeline = Timeline {
        start: scenarios::START,
        end: END,
        step: 30,
    };
    let pod = Pod::new(
        "probe",
        "edge-1a2b3c4d5",
        "q7w8e",
        scenarios::START - 86_400,
    )
    .container(
        Container::new("edge", "registry.local/probe/edge:1.0.0")
            .restarts(Steps::constant(0).then(END - 4 * MINUTE - 30, 1)),
    );
    let store = TestPrometheus::start(&Fixture::new(timeline).pod(pod).render());
    let engine = Engine::new(Client::new(), Some(store.url().to_owned()));
    let context = AnalysisContext {
        namespace: "probe".into(),
        name: "edge-1a2b3c4d5-2".into(),
        labels: [(
            "rollouts-pod-template-hash".to_string(),
            "1a2b3c4d5".to_string(),
        )]
        .into(),
        owner_references: vec![OwnerReference {
            kind: "Rollout".into(),
            name: "edge".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let metric = analysis::metric(
        "guardrail",
        &json!({"guardrail": "restarts", "threshold": 0}),
    );
    let at = UNIX_EPOCH + Duration::from_secs(END as u64);
    let m = engine.measure_at(&context, &metric, Some(at)).await;
    assert_eq!((m.phase, m.value.as_str()), (Phase::Failed, "1"), "{m:#?}");
    assert!(
        m.message.contains("1 restart in the last 5m"),
        "{}",
        m.message
    );
}

#[test]
fn timestamp_of_an_expression_per_store() {
    // Condition series as Flux exposes them: status="True" was 1 until END - 4m, status="False" is 1 since; both
    // stopped being reported at END - 3m (the reconciler's metrics endpoint went away).
    let flip = END - 4 * MINUTE;
    let last = END - 3 * MINUTE;
    let text = format!(
        "# TYPE condition gauge\n{}{}# EOF\n",
        series(
            "condition",
            r#"status="True""#,
            END - 20 * MINUTE,
            last,
            |t| { f64::from(u8::from(t < flip)) }
        ),
        series(
            "condition",
            r#"status="False""#,
            END - 20 * MINUTE,
            last,
            |t| { f64::from(u8::from(t >= flip)) }
        ),
    );
    let store = TestPrometheus::start(&text);
    let answer = |promql: &str| -> Vec<(String, f64)> {
        let mut samples: Vec<(String, f64)> = store
            .query(promql, END)
            .into_iter()
            .map(|s| (s.labels["status"].clone(), s.value))
            .collect();
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        samples
    };
    // `timestamp()` of an expression: the Prometheus engine (2, 3 and inside the Thanos Querier) answers the
    // evaluation time, not the sample's (only a selector argument keeps sample times): a series last reported 3
    // minutes ago looks fresh. VictoriaMetrics evaluates it as a rollup over an implicit subquery with the instant
    // query's 5-minute step: the time of the last step at which the expression had a value, so the status that was
    // 1 at END - 5m still answers, with that time.
    let expected_expression = match store.store() {
        Store::VictoriaMetrics => vec![
            ("False".to_owned(), END as f64),
            ("True".to_owned(), (END - 5 * MINUTE) as f64),
        ],
        _ => vec![("False".to_owned(), END as f64)],
    };
    assert_eq!(answer("timestamp(condition == 1)"), expected_expression);
    // The form the gitops guardrail uses answers the same on every store: the status that is 1 now, with the time
    // of its last sample.
    assert_eq!(
        answer("timestamp(condition) and condition == 1"),
        vec![("False".to_owned(), last as f64)]
    );
}

#[tokio::test]
async fn a_flux_object_last_reported_three_minutes_ago_is_stale_on_every_store() {
    // Ready=True until END - 3m, then nothing: with `timestamp(… == 1)` the Prometheus engine answered END (the
    // evaluation time), so this passed although the object's status was 3 minutes old and the staleness 2m.
    let labels = |status: &str| {
        format!(
            r#"kind="Kustomization",name="late",exported_namespace="flux-system",type="Ready",status="{status}""#
        )
    };
    let from = END - 20 * MINUTE;
    let last = END - 3 * MINUTE;
    let mut text = String::from("# TYPE gotk_reconcile_condition gauge\n");
    for status in ["True", "False", "Unknown", "Deleted"] {
        let value = f64::from(u8::from(status == "True"));
        text.push_str(&series(
            "gotk_reconcile_condition",
            &labels(status),
            from,
            last,
            |_| value,
        ));
    }
    text.push_str("# EOF\n");
    let store = TestPrometheus::start(&text);
    let engine = Engine::new(Client::new(), Some(store.url().to_owned()));
    let metric = analysis::metric(
        "guardrail",
        &json!({"guardrail": "gitops", "kustomization": "late", "staleness": "2m"}),
    );
    let at = UNIX_EPOCH + Duration::from_secs(END as u64);
    let m = engine
        .measure_at(&AnalysisContext::default(), &metric, Some(at))
        .await;
    assert_eq!(
        (m.phase, m.metadata.get("failure").map(String::as_str)),
        (Phase::Failed, Some("stale")),
        "{m:#?}"
    );
}

#[test]
fn nan_answers_per_store() {
    // VictoriaMetrics drops NaN samples from its answers; the Prometheus engine returns them. Either way the
    // guardrail fails (tests/engine/guardrails.rs, query_guardrail_with_argo_conditions_on_real_promql).
    let store = TestPrometheus::start("# TYPE m gauge\nm 1 1767268800\n# EOF\n");
    let answer = store.query("vector(0) / vector(0)", END);
    match store.store() {
        Store::VictoriaMetrics => assert_eq!(answer, Vec::new()),
        _ => {
            assert_eq!(answer.len(), 1, "{answer:?}");
            assert!(answer[0].value.is_nan(), "{answer:?}");
        }
    }
}

#[test]
fn the_newest_samples_per_store() {
    // VictoriaMetrics hides the newest 30 s from a query for "now" (-search.latencyOffset, default 30s): it answers
    // as of 30 s ago. Samples every 30 s ending a second ago: the newest is invisible there.
    let now = prometheus::unix_now();
    let newest = now - 1;
    let text = format!(
        "# TYPE probe gauge\n{}# EOF\n",
        series("probe", r#"job="a""#, newest - 10 * MINUTE, newest, |_| 1.0)
    );
    let store = TestPrometheus::start(&text);
    let seen = store
        .query_value("timestamp(probe)", prometheus::unix_now())
        .expect("probe answers");
    match store.store() {
        Store::VictoriaMetrics => assert_eq!(seen, (newest - 30) as f64),
        _ => assert_eq!(seen, newest as f64),
    }
}

#[test]
fn lookback_of_a_series_that_stopped_per_store() {
    // Every store answers an instant query with the last sample of the previous 5 minutes, none older: a pod whose
    // kube-state-metrics series stopped 4 minutes ago is still there (and stale by its timestamp), one that stopped
    // 6 minutes ago is gone (no data). Backfilled data has no staleness markers, as after a scrape target vanishes
    // without a last scrape.
    let text = format!(
        "# TYPE probe gauge\n{}{}# EOF\n",
        series(
            "probe",
            r#"pod="four""#,
            END - 30 * MINUTE,
            END - 4 * MINUTE,
            |_| 1.0
        ),
        series(
            "probe",
            r#"pod="six""#,
            END - 30 * MINUTE,
            END - 6 * MINUTE,
            |_| 1.0
        ),
    );
    let store = TestPrometheus::start(&text);
    assert_eq!(
        store.query_value(r#"timestamp(probe{pod="four"})"#, END),
        Some((END - 4 * MINUTE) as f64)
    );
    assert_eq!(store.query_value(r#"probe{pod="six"}"#, END), None);
}

#[test]
fn external_labels_per_store() {
    // Behind a Thanos Querier every series carries its Prometheus' external labels (a sidecar refuses a Prometheus
    // without one): `cluster` appears in answers although the data never had it. Elsewhere the labels are the
    // data's.
    let store = TestPrometheus::start(&scenarios::render());
    let pod = &store.query(
        r#"kube_pod_info{namespace="shop",created_by_name="web-6c8d7f9a1"}"#,
        END,
    )[0];
    match store.store() {
        Store::Thanos => assert_eq!(
            pod.labels
                .get(prometheus::CLUSTER_LABEL)
                .map(String::as_str),
            Some(prometheus::DEFAULT_CLUSTER)
        ),
        _ => assert_eq!(pod.labels.get(prometheus::CLUSTER_LABEL), None),
    }
}
