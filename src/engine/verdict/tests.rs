//! Unit tests of `verdict`.
use super::*;
use std::time::UNIX_EPOCH;

const AT: u64 = 1_767_268_800;

#[test]
fn an_answer_about_another_instant_is_stale() {
    let at = UNIX_EPOCH + Duration::from_secs(AT);
    let five = Duration::from_secs(300);
    let stamped = |t: f64| {
        QueryData::Vector(vec![Sample {
            timestamp: t,
            ..sample("a", 1.0)
        }])
    };
    assert!(answered_at(&stamped(AT as f64), at, five).is_ok());
    assert!(answered_at(&stamped(AT as f64 - 300.0), at, five).is_ok());
    let err = answered_at(&stamped(AT as f64 - 600.0), at, five).unwrap_err();
    assert_eq!(err.class, FailureClass::Stale);
    assert!(
        err.message.contains("stamped 10m before"),
        "{}",
        err.message
    );
    let nan = answered_at(&stamped(f64::NAN), at, five).unwrap_err();
    assert_eq!(nan.class, FailureClass::QueryError);
    let scalar = QueryData::Scalar(Sample {
        timestamp: AT as f64 - 3600.0,
        ..sample("", 1.0)
    });
    assert_eq!(
        answered_at(&scalar, at, five).unwrap_err().class,
        FailureClass::Stale
    );
}

fn sample(pod: &str, value: f64) -> Sample {
    Sample {
        labels: [("pod".to_string(), pod.to_string())].into(),
        timestamp: AT as f64,
        value,
    }
}

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(AT)
}

fn target() -> TargetSelector {
    TargetSelector::new("shop", "web", "6c8d7f9a1").unwrap()
}

#[test]
fn coverage_needs_fresh_samples_for_min_pods() {
    let data = QueryData::Vector(vec![
        sample("a", AT as f64 - 30.0),
        sample("b", AT as f64 - 400.0),
    ]);
    let c = prove(&data, 1).unwrap();
    assert_eq!(c.pods, ["a".to_string()].into());
    let err = prove(&data, 2).unwrap_err();
    assert_eq!(err.class, FailureClass::Stale);
    assert!(
        err.message.contains("older than staleness 5m"),
        "{}",
        err.message
    );
    let err = prove(&QueryData::Vector(vec![]), 1).unwrap_err();
    assert_eq!(err.class, FailureClass::NoData);
    assert!(err.message.starts_with(
        "no fresh kube-state-metrics series for pods of ReplicaSet shop/web-6c8d7f9a1"
    ));
    let err = prove(&QueryData::Vector(vec![sample("a", f64::NAN)]), 1).unwrap_err();
    assert_eq!(err.class, FailureClass::QueryError);
    let err = prove(&QueryData::Scalar(sample("", 1.0)), 1).unwrap_err();
    assert_eq!(err.class, FailureClass::QueryError);
}

#[test]
fn every_pod_must_be_covered_by_each_query() {
    let data = QueryData::Vector(vec![sample("a", AT as f64), sample("b", AT as f64)]);
    let c = prove(&data, 1).unwrap();
    assert!(c
        .require_all(&["a".to_string(), "b".to_string()].into(), "readiness")
        .is_ok());
    let err = c
        .require_all(&["a".to_string()].into(), "readiness")
        .unwrap_err();
    assert_eq!(
        err.message,
        "no readiness data for 1 of 2 pods of ReplicaSet shop/web-6c8d7f9a1: b"
    );
}

#[test]
fn counts_above_the_threshold_fail_and_only_proof_passes() {
    let data = QueryData::Vector(vec![sample("a", AT as f64)]);
    let c = prove(&data, 1).unwrap();
    assert!(matches!(
        judge_count(&c, 1.0, 1.0, "m".into(), vec![]),
        Verdict::Pass(_)
    ));
    let Verdict::Fail(f) = judge_count(&c, 2.0, 1.0, "m".into(), vec![]) else {
        panic!("must fail")
    };
    assert_eq!((f.class, f.value.as_str()), (FailureClass::Threshold, "2"));
}

#[test]
fn fresh_results_refuse_empty_non_finite_and_wrong_shapes() {
    assert_eq!(
        FreshResult::prove(&QueryData::Vector(vec![]))
            .unwrap_err()
            .class,
        FailureClass::NoData
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = FreshResult::prove(&QueryData::Vector(vec![sample("a", 1.0), sample("b", bad)]))
            .unwrap_err();
        assert_eq!(err.class, FailureClass::QueryError);
    }
    assert_eq!(
        FreshResult::prove(&QueryData::Matrix(vec![]))
            .unwrap_err()
            .class,
        FailureClass::QueryError
    );
    assert_eq!(
        FreshResult::prove(&QueryData::String("x".into()))
            .unwrap_err()
            .class,
        FailureClass::QueryError
    );
    let ok = FreshResult::prove(&QueryData::Vector(vec![
        sample("a", 0.97),
        sample("b", 0.5),
    ]))
    .unwrap();
    assert_eq!(ok.display(), "[0.97,0.5]");
    assert_eq!(
        FreshResult::prove(&QueryData::Scalar(sample("", 2.0)))
            .unwrap()
            .display(),
        "2"
    );
}

fn one(value: f64) -> QueryData {
    QueryData::Vector(vec![sample("", value)])
}

#[test]
fn traffic_needs_fresh_series_and_enough_requests() {
    let data = QueryData::Vector(vec![sample("a", AT as f64)]);
    let c = prove(&data, 1).unwrap();
    let w = Duration::from_secs(300);
    let s = Duration::from_secs(300);
    let ok = Traffic::prove(
        &c,
        &one(120.0),
        &one(AT as f64 - 30.0),
        at(),
        w,
        s,
        10,
        "m",
        None,
    )
    .unwrap();
    assert_eq!(ok.requests, 120.0);
    let quiet =
        Traffic::prove(&c, &one(3.0), &one(AT as f64), at(), w, s, 10, "m", None).unwrap_err();
    assert_eq!(quiet.class, FailureClass::NoTraffic);
    assert_eq!(
        quiet.awaiting, None,
        "an unknown canary age is not proof of youth"
    );
    assert!(
        quiet.message.starts_with("not enough traffic"),
        "{}",
        quiet.message
    );
    let young = Traffic::prove(
        &c,
        &one(3.0),
        &one(AT as f64),
        at(),
        w,
        s,
        10,
        "m",
        Some(Duration::from_secs(60)),
    )
    .unwrap_err();
    assert_eq!(young.awaiting, Some(Awaiting::Requests));
    let old =
        Traffic::prove(&c, &one(3.0), &one(AT as f64), at(), w, s, 10, "m", Some(w)).unwrap_err();
    assert_eq!(old.awaiting, None);
    let none = Traffic::prove(
        &c,
        &QueryData::Vector(vec![]),
        &QueryData::Vector(vec![]),
        at(),
        w,
        s,
        1,
        "m",
        None,
    )
    .unwrap_err();
    assert_eq!(none.class, FailureClass::NoTraffic);
    assert_eq!(none.awaiting, Some(Awaiting::RequestSeries));
    let stale = Traffic::prove(
        &c,
        &one(500.0),
        &one(AT as f64 - 900.0),
        at(),
        w,
        s,
        1,
        "m",
        None,
    )
    .unwrap_err();
    assert_eq!(stale.class, FailureClass::Stale);
    let nan = Traffic::prove(
        &c,
        &one(f64::NAN),
        &one(AT as f64),
        at(),
        w,
        s,
        1,
        "m",
        None,
    )
    .unwrap_err();
    assert_eq!(nan.class, FailureClass::QueryError);
}

#[test]
fn rule_evaluation_must_be_fresh() {
    let s = Duration::from_secs(120);
    assert!(RuleEvaluation::prove(&one(AT as f64 - 15.0), at(), s, &[]).is_ok());
    assert_eq!(
        RuleEvaluation::prove(&one(AT as f64 - 600.0), at(), s, &[])
            .unwrap_err()
            .class,
        FailureClass::Stale
    );
    assert_eq!(
        RuleEvaluation::prove(&QueryData::Vector(vec![]), at(), s, &[])
            .unwrap_err()
            .class,
        FailureClass::NoData
    );
}

#[test]
fn numbers_format_like_prometheus() {
    assert_eq!(format_number(3.0), "3");
    assert_eq!(format_number(0.25), "0.25");
    assert_eq!(format_number(f64::NAN), "NaN");
    assert_eq!(format_number(f64::NEG_INFINITY), "-Inf");
    assert_eq!(
        join_limited(["a", "b", "c"].into_iter(), 2),
        "a, b and 1 more"
    );
}

fn labelled(pod: &str, extra: &[(&str, &str)]) -> Sample {
    let mut s = sample(pod, AT as f64);
    for (k, v) in extra {
        s.labels.insert(k.to_string(), v.to_string());
    }
    s
}

fn replicas() -> Vec<String> {
    ["instance", "prometheus_replica"]
        .map(String::from)
        .to_vec()
}

#[test]
fn one_pod_reported_by_two_clusters_is_ambiguous_and_replicas_are_not() {
    let twins = QueryData::Vector(vec![
        labelled("web-1", &[("cluster", "prod-eu"), ("instance", "a")]),
        labelled("web-1", &[("cluster", "staging-eu"), ("instance", "a")]),
    ]);
    let err = Coverage::prove(
        &twins,
        &target(),
        at(),
        Duration::from_secs(300),
        1,
        &replicas(),
    )
    .unwrap_err();
    assert_eq!(err.class, FailureClass::Ambiguous);
    assert_eq!(
        err.message,
        "pod shop/web-1 is reported with cluster=prod-eu and cluster=staging-eu: set `matchers` (or the registration's --matcher) to select one source; series from different sources are never merged"
    );
    // Pods of one ReplicaSet from two clusters (identical manifests, identical hashes) are never merged either.
    let spread = QueryData::Vector(vec![
        labelled("web-1", &[("cluster", "prod-eu")]),
        labelled("web-2", &[]),
    ]);
    let err = Coverage::prove(
        &spread,
        &target(),
        at(),
        Duration::from_secs(300),
        1,
        &replicas(),
    )
    .unwrap_err();
    assert!(
        err.message.starts_with("pods of ReplicaSet shop/web-6c8d7f9a1 are reported with cluster=prod-eu and no cluster"),
        "{}",
        err.message
    );
    // Two Prometheus replicas scraping two kube-state-metrics replicas: one source.
    let ha = QueryData::Vector(vec![
        labelled(
            "web-1",
            &[
                ("instance", "ksm-0"),
                ("prometheus_replica", "p0"),
                ("uid", "u1"),
            ],
        ),
        labelled(
            "web-1",
            &[
                ("instance", "ksm-1"),
                ("prometheus_replica", "p1"),
                ("uid", "u1"),
            ],
        ),
    ]);
    let c = Coverage::prove(
        &ha,
        &target(),
        at(),
        Duration::from_secs(300),
        1,
        &replicas(),
    )
    .unwrap();
    assert_eq!(c.pods.len(), 1);
    // A label listed as a replica label is ignored, others are not: the list is the author's to widen.
    let err = Coverage::prove(
        &ha,
        &target(),
        at(),
        Duration::from_secs(300),
        1,
        &["instance".to_string()],
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("prometheus_replica=p0 and prometheus_replica=p1"),
        "{}",
        err.message
    );
}

#[test]
fn rule_evaluation_from_two_clusters_is_ambiguous_and_from_replicas_is_not() {
    let s = Duration::from_secs(120);
    let server = |labels: &[(&str, &str)], t: f64| {
        let mut sample = sample("", t);
        sample.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sample
    };
    let two = QueryData::Vector(vec![
        server(
            &[("job", "prometheus"), ("cluster", "prod-eu")],
            AT as f64 - 900.0,
        ),
        server(
            &[("job", "prometheus"), ("cluster", "staging-eu")],
            AT as f64 - 15.0,
        ),
    ]);
    let err = RuleEvaluation::prove(&two, at(), s, &replicas()).unwrap_err();
    assert_eq!(
        err.class,
        FailureClass::Ambiguous,
        "the fresh staging clock must not prove prod's rules"
    );
    assert!(
        err.message
            .contains("cluster=prod-eu and cluster=staging-eu"),
        "{}",
        err.message
    );
    let ha = QueryData::Vector(vec![
        server(
            &[("job", "prometheus"), ("instance", "p0")],
            AT as f64 - 15.0,
        ),
        server(
            &[("job", "prometheus"), ("instance", "p1")],
            AT as f64 - 900.0,
        ),
    ]);
    assert!(
        RuleEvaluation::prove(&ha, at(), s, &replicas()).is_ok(),
        "the newest replica proves it"
    );
}

/// Coverage of [`target`] at [`at`] with staleness 5m, needing `min_pods` pods.
fn prove(data: &QueryData, min_pods: u64) -> Result<Coverage, Failure> {
    Coverage::prove(
        data,
        &target(),
        at(),
        Duration::from_secs(300),
        min_pods,
        &[],
    )
}
