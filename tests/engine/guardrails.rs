//! The guardrails against a real Prometheus (Debian's package) loaded with the canonical kube-state-metrics
//! fixture (`tests/fixtures/prometheus/README.md`), evaluated at the instant the data ends. Every scenario of the
//! fixture table, the decoys, the profiles and the fail-closed rules that need real PromQL.
use crate::support;

use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{AnalysisContext, Engine, Measurement, MetricSpec, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis::{self, assert_phase};
use support::scenarios::{self, Scenario};

fn engine() -> Engine {
    Engine::new(
        Client::new(),
        Some(support::prometheus::shared().url().to_string()),
    )
}

fn metric(config: Value) -> MetricSpec {
    analysis::metric("guardrail", &config)
}

async fn measure(s: &Scenario, config: Value) -> Measurement {
    let at = UNIX_EPOCH + Duration::from_secs(scenarios::END as u64);
    engine()
        .measure_at(&analysis::of(s), &metric(config), Some(at))
        .await
}

async fn guardrail(s: &Scenario, name: &str) -> Measurement {
    measure(s, json!({ "guardrail": name })).await
}

#[tokio::test]
async fn a_healthy_canary_passes_every_guardrail() {
    for name in ["restarts", "not-ready", "latest-image"] {
        let m = guardrail(&scenarios::SHOP_WEB, name).await;
        assert_phase(
            &m,
            Phase::Successful,
            "0",
            &["3 pods of ReplicaSet shop/web-6c8d7f9a1"],
        );
        assert_eq!(m.metadata["target"], "shop/web-6c8d7f9a1");
        assert_eq!(m.metadata["guardrail"], name);
        assert!(m.metadata["query.coverage"].contains(r#"created_by_name="web-6c8d7f9a1""#));
        assert!(m.metadata["prometheus"].starts_with("http://127.0.0.1:"));
        assert!(m.started_at.is_some() && m.finished_at.is_some());
    }
}

#[tokio::test]
async fn decoys_never_leak_into_the_target() {
    // The stable ReplicaSet, the same ReplicaSet name in another namespace and rollouts sharing the prefix are
    // all broken; shop/web's verdicts above prove none of them is counted. Each decoy, judged itself, fails.
    for decoy in scenarios::DECOYS {
        let m = guardrail(&decoy, "restarts").await;
        assert_eq!(m.phase, Phase::Failed, "{decoy:?}: {m:#?}");
        assert!(m.message.contains(&decoy.replica_set()), "{}", m.message);
        let m = guardrail(&decoy, "latest-image").await;
        assert_eq!(m.phase, Phase::Failed, "{decoy:?}: {m:#?}");
    }
}

#[tokio::test]
async fn a_crash_looping_canary_fails_restarts_and_readiness_naming_the_pod() {
    let pod = scenarios::PAY_API_CRASHING_POD;
    let m = guardrail(&scenarios::PAY_API, "restarts").await;
    assert_phase(
        &m,
        Phase::Failed,
        "3",
        &[
            &format!("{pod}/api: 3 restarts (CrashLoopBackOff)"),
            "(threshold 1)",
        ],
    );
    assert_eq!(m.metadata["failure"], "threshold");
    assert!(m.metadata["offenders"].contains(pod));
    let m = guardrail(&scenarios::PAY_API, "not-ready").await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &[&format!("{pod} (api CrashLoopBackOff)")],
    );
    let m = guardrail(&scenarios::PAY_API, "latest-image").await;
    assert_phase(&m, Phase::Successful, "0", &[]);
}

#[tokio::test]
async fn restarts_count_whole_events_in_the_window_per_profile() {
    // Counter at 5 at END, one restart at 11:57: default (5m, ≤1) passes, prod (10m, 0) fails.
    let m = guardrail(&scenarios::PAY_LEDGER, "restarts").await;
    assert_phase(&m, Phase::Successful, "1", &["1 restart in the last 5m"]);
    let m = measure(
        &scenarios::PAY_LEDGER,
        json!({"guardrail": "restarts", "profile": "prod"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &[
            "in the last 10m",
            "(threshold 0)",
            scenarios::PAY_LEDGER_RESTARTED_POD,
        ],
    );
    // An explicit key wins over the profile.
    let m = measure(
        &scenarios::PAY_LEDGER,
        json!({"guardrail": "restarts", "profile": "prod", "threshold": 1}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
    // Over the whole hour: all five.
    let m = measure(
        &scenarios::PAY_LEDGER,
        json!({"guardrail": "restarts", "window": "1h", "threshold": 4}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "5", &[]);
}

#[tokio::test]
async fn a_pod_born_inside_the_window_counts_every_restart() {
    let m = guardrail(&scenarios::PAY_YOUNG, "restarts").await;
    assert_phase(&m, Phase::Failed, "2", &["2 restarts"]);
}

#[tokio::test]
async fn not_ready_pods_fail_and_restarts_do_not() {
    let m = guardrail(&scenarios::PAY_WORKER, "not-ready").await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &[scenarios::PAY_WORKER_NOT_READY_POD, "1 of 2 pods"],
    );
    let m = guardrail(&scenarios::PAY_WORKER, "restarts").await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
    let m = measure(
        &scenarios::PAY_WORKER,
        json!({"guardrail": "not-ready", "threshold": "1"}),
    )
    .await;
    assert_eq!(
        m.phase,
        Phase::Successful,
        "a threshold from an arg string is honoured: {m:#?}"
    );
}

#[tokio::test]
async fn mutable_images_fail_and_digests_pass() {
    let m = guardrail(&scenarios::MEDIA_ENCODER, "latest-image").await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &["registry.local/media/encoder:latest", "tag `latest`"],
    );
    let m = guardrail(&scenarios::MEDIA_THUMBS, "latest-image").await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &["registry.local:5000/team/app", "no tag"],
    );
    let m = guardrail(&scenarios::MEDIA_RESIZER, "latest-image").await;
    assert_phase(&m, Phase::Successful, "0", &["2 containers"]);
    let m = guardrail(&scenarios::MEDIA_UPLOADER, "latest-image").await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &["image `nginx`", "(ImagePullBackOff)"],
    );
    let m = guardrail(&scenarios::MEDIA_UPLOADER, "not-ready").await;
    assert_phase(&m, Phase::Failed, "1", &["ImagePullBackOff"]);
}

#[tokio::test]
async fn configured_images_are_judged_statically_even_without_pods() {
    let m = measure(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "latest-image", "images": "registry.local/shop/web:latest"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &["image `registry.local/shop/web:latest` (from the configuration)"],
    );
    let m = measure(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "latest-image", "images": ["registry.local/shop/web:1.4.2"]}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
    // No pod ever materialized: the static violation is still reported… and so is the missing proof.
    let m = measure(
        &scenarios::OPS_GHOST,
        json!({"guardrail": "latest-image", "images": ["nginx"]}),
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
}

#[tokio::test]
async fn no_data_and_stale_data_fail_for_every_guardrail() {
    for name in ["restarts", "not-ready", "latest-image"] {
        let m = guardrail(&scenarios::OPS_GHOST, name).await;
        assert_phase(
            &m,
            Phase::Failed,
            "",
            &["no fresh kube-state-metrics series for pods of ReplicaSet ops/ghost-7a8b9c0d1"],
        );
        assert_eq!(m.metadata["failure"], "no-data");
        let m = guardrail(&scenarios::OPS_GONE, name).await;
        assert_eq!(
            (m.phase, m.metadata["failure"].as_str()),
            (Phase::Failed, "no-data"),
            "{m:#?}"
        );
        // Samples 4 minutes old: fresh enough for the default 5m, stale for prod's 2m.
        let m = guardrail(&scenarios::OPS_STALE, name).await;
        assert_eq!(m.phase, Phase::Successful, "{name}: {m:#?}");
        let m = measure(
            &scenarios::OPS_STALE,
            json!({"guardrail": name, "profile": "prod"}),
        )
        .await;
        assert_phase(
            &m,
            Phase::Failed,
            "",
            &[
                "stale kube-state-metrics data",
                "4m ago",
                "older than staleness 2m",
            ],
        );
        assert_eq!(m.metadata["failure"], "stale");
    }
}

#[tokio::test]
async fn min_pods_is_enforced() {
    let m = measure(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "not-ready", "minPods": 4}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "", &["only 3 of the required 4 pods"]);
    let m = measure(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "not-ready", "minPods": 3}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful);
}

#[tokio::test]
async fn an_explicit_target_overrides_the_analysis_run() {
    let m = measure(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "restarts", "namespace": "pay", "rollout": "api", "podTemplateHash": "7f6e5d4c3"}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "3", &["pay/api-7f6e5d4c3"]);
}

#[tokio::test]
async fn injection_through_args_cannot_turn_a_failure_into_a_pass() {
    // Were the namespace spliced into PromQL, `or vector(1)` would give coverage and a pass.
    for namespace in [
        r#"ops"} or vector(1) #"#,
        "ops\"}\n or vector(1)",
        r#"o\"ps"#,
        ".*",
        "ops|shop",
    ] {
        let m = measure(
            &scenarios::OPS_GHOST,
            json!({"guardrail": "not-ready", "namespace": namespace}),
        )
        .await;
        assert_eq!(
            (m.phase, m.metadata["failure"].as_str()),
            (Phase::Failed, "config"),
            "{namespace:?}: {m:#?}"
        );
        assert!(
            m.message.contains("is not a valid Kubernetes name"),
            "{}",
            m.message
        );
    }
    for hash in [r#"7a8b9c0d1"} or vector(1)"#, "7a8b9c0d1|6c8d7f9a1", ".+"] {
        let m = measure(
            &scenarios::OPS_GHOST,
            json!({"guardrail": "restarts", "podTemplateHash": hash}),
        )
        .await;
        assert_eq!(m.phase, Phase::Failed, "{hash:?}");
    }
}

#[tokio::test]
async fn query_guardrail_with_argo_conditions_on_real_promql() {
    let ready_ratio = r#"sum(kube_pod_status_ready{namespace="shop",condition="true"} and on(pod) kube_pod_info{namespace="shop",created_by_name="web-6c8d7f9a1"}) / count(kube_pod_info{namespace="shop",created_by_name="web-6c8d7f9a1"})"#;
    let spec = |success: &str, failure: &str, extra: Value| {
        let mut config = json!({"guardrail": "query", "query": ready_ratio});
        if let Value::Object(e) = extra {
            config.as_object_mut().unwrap().extend(e);
        }
        MetricSpec {
            success_condition: success.into(),
            failure_condition: failure.into(),
            ..metric(config)
        }
    };
    let at = Some(UNIX_EPOCH + Duration::from_secs(scenarios::END as u64));
    let ctx = analysis::of(&scenarios::SHOP_WEB);
    let m = engine()
        .measure_at(&ctx, &spec("result[0] >= 0.95", "", json!({})), at)
        .await;
    assert_phase(&m, Phase::Successful, "[1]", &[]);
    assert_eq!(m.metadata["query.query"], ready_ratio);
    let m = engine()
        .measure_at(&ctx, &spec("result[0] > 1", "", json!({})), at)
        .await;
    assert_phase(&m, Phase::Failed, "[1]", &["fails successCondition"]);
    let m = engine()
        .measure_at(&ctx, &spec("", "", json!({"threshold": 0.5})), at)
        .await;
    assert_phase(&m, Phase::Failed, "[1]", &["above threshold 0.5"]);
    // A selector that matches nothing: Argo's provider would evaluate `result[0]` on nothing; we refuse.
    let empty = MetricSpec {
        success_condition: "len(result) == 0".into(),
        ..metric(json!({"guardrail": "query", "query": r#"kube_pod_info{namespace="nope"}"#}))
    };
    let m = engine().measure_at(&ctx, &empty, at).await;
    assert_eq!(
        (m.phase, m.metadata["failure"].as_str()),
        (Phase::Failed, "no-data"),
        "{m:#?}"
    );
    // NaN from PromQL (0/0) fails.
    let m = engine()
        .measure_at(
            &ctx,
            &metric(
                json!({"guardrail": "query", "query": "vector(0) / vector(0)", "threshold": 1}),
            ),
            at,
        )
        .await;
    if support::prometheus::Store::from_env() == support::prometheus::Store::VictoriaMetrics {
        // VictoriaMetrics drops NaN samples from its answers: the same query answers an empty vector, which fails
        // as no data (docs/prometheus-compatibility.md).
        assert_eq!(
            (m.phase, m.metadata["failure"].as_str()),
            (Phase::Failed, "no-data"),
            "{m:#?}"
        );
    } else {
        assert_phase(&m, Phase::Failed, "[NaN]", &["NaN"]);
    }
    // A range query result is not a verdict.
    let m = engine()
        .measure_at(
            &ctx,
            &spec("true", "", json!({"query": "kube_pod_info[5m]"})),
            at,
        )
        .await;
    assert_phase(&m, Phase::Failed, "", &["matrix"]);
    // A PromQL error from Prometheus itself.
    let m = engine()
        .measure_at(&ctx, &spec("true", "", json!({"query": "sum(("})), at)
        .await;
    assert_eq!(
        (m.phase, m.metadata["failure"].as_str()),
        (Phase::Failed, "query-error"),
        "{m:#?}"
    );
}

#[tokio::test]
async fn bad_configuration_is_a_failed_measurement_that_says_why() {
    let m = measure(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "restarts", "thresold": 1}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["unknown key `thresold`; did you mean `threshold`?"],
    );
    assert_eq!(m.metadata["failure"], "config");
    let no_entry = MetricSpec {
        name: "m".into(),
        ..Default::default()
    };
    let m = engine()
        .measure(&analysis::of(&scenarios::SHOP_WEB), &no_entry)
        .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["has no `rollouts-guardrails/prometheus` entry"],
    );
    let m = engine()
        .measure(
            &AnalysisContext::default(),
            &metric(json!({"guardrail": "restarts"})),
        )
        .await;
    assert_phase(&m, Phase::Failed, "", &["cannot determine the target"]);
    let with_condition = MetricSpec {
        success_condition: "result == 0".into(),
        ..metric(json!({"guardrail": "restarts"}))
    };
    let m = engine()
        .measure(&analysis::of(&scenarios::SHOP_WEB), &with_condition)
        .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["successCondition is not used by guardrail `restarts`"],
    );
    let no_address = Engine::new(Client::new(), None);
    let m = no_address
        .measure(
            &analysis::of(&scenarios::SHOP_WEB),
            &metric(json!({"guardrail": "restarts"})),
        )
        .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["no Prometheus address", "GUARDRAILS_PROMETHEUS_ADDRESS"],
    );
}

#[tokio::test]
async fn describe_shows_the_promql_with_placeholders() {
    let d = engine().describe(&metric(json!({"guardrail": "restarts"})));
    assert_eq!(d["guardrail"], "restarts");
    assert!(
        d["query.coverage"].contains(r#"created_by_name="<rollout>-<podTemplateHash>""#),
        "{d:#?}"
    );
    assert!(d["query.restarts-max"].contains("[300s]"), "{d:#?}");
    let d = engine().describe(&metric(
        json!({"guardrail": "query", "query": "up", "threshold": 1}),
    ));
    assert_eq!(d["query.query"], "up");
    let d = engine().describe(&metric(json!({"guardrail": "restart"})));
    assert!(d["error"].contains("unknown guardrail"), "{d:#?}");
}
