//! An HA pair: two Prometheus scraping the same kube-state-metrics, both in the central store, told apart by a
//! `replica` label — an external label behind Thanos (`GUARDRAILS_TEST_ENGINE=thanos`), whose Querier
//! deduplicates on it, and a label in the data on the stores that keep both copies (Prometheus receiving remote
//! write, VictoriaMetrics without `-dedup`). Replicas of one source are one source: every kube-state-metrics
//! guardrail's verdict on the pair is the verdict on one Prometheus — never `ambiguous` (docs/guardrails.md,
//! "Many clusters in one store": `replicaLabels`) and never a count doubled by adding the replicas up.
use crate::support;

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{Engine, Measurement, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::prometheus::{Store, TestPrometheus, REPLICA_LABEL};
use support::scenarios::{self, Scenario, END, PAY_LEDGER, POD_GUARDRAILS as GUARDRAILS, SHOP_WEB};

const PROD: &str = "prod-eu";

/// prod-eu's data from one Prometheus.
fn single() -> &'static TestPrometheus {
    static STORE: OnceLock<TestPrometheus> = OnceLock::new();
    STORE.get_or_init(|| {
        TestPrometheus::start_clusters(Store::from_env(), &[(PROD, &scenarios::render())], END)
    })
}

/// prod-eu's data from an HA pair (replicas `a` and `b`).
fn pair() -> &'static TestPrometheus {
    static STORE: OnceLock<TestPrometheus> = OnceLock::new();
    STORE.get_or_init(|| {
        TestPrometheus::start_replicas(
            Store::from_env(),
            PROD,
            &["a", "b"],
            &scenarios::render(),
            END,
        )
    })
}

async fn measure(store: &TestPrometheus, s: &Scenario, guardrail: &str) -> Measurement {
    let config = json!({"guardrail": guardrail, "matchers": {"cluster": PROD}});
    measure_with(store, s, config).await
}

async fn measure_with(store: &TestPrometheus, s: &Scenario, config: Value) -> Measurement {
    let guardrail = config["guardrail"].as_str().unwrap_or_default().to_owned();
    let engine = Engine::new(Client::new(), Some(store.url().to_owned()));
    let at = UNIX_EPOCH + Duration::from_secs(END as u64);
    engine
        .measure_at(
            &analysis::of(s),
            &analysis::metric(&guardrail, &config),
            Some(at),
        )
        .await
}

#[test]
fn the_pair_store_holds_each_pod_twice_when_it_does_not_deduplicate() {
    // Without this the test below would prove nothing: the copies must be there (or deduplicated by Thanos).
    let pod = format!(
        r#"kube_pod_info{{namespace="shop",pod=~"{}-.*"}}"#,
        SHOP_WEB.replica_set()
    );
    let pods = |store: &TestPrometheus| store.query(&pod, END).len();
    let replicas: std::collections::BTreeSet<String> = pair()
        .query(&pod, END)
        .iter()
        .filter_map(|s| s.labels.get(REPLICA_LABEL).cloned())
        .collect();
    match pair().store() {
        Store::Thanos => assert_eq!(pods(pair()), pods(single()), "the Querier deduplicates"),
        _ => {
            assert_eq!(pods(pair()), 2 * pods(single()), "both copies are stored");
            assert_eq!(replicas, ["a".to_string(), "b".to_string()].into());
        }
    }
}

#[tokio::test]
async fn an_ha_pair_gives_the_verdict_of_one_prometheus() {
    // shop/web is healthy; pay/ledger crash-loops (a restart count to double, a waiting reason to repeat).
    for s in [&SHOP_WEB, &PAY_LEDGER] {
        for name in GUARDRAILS {
            let one = measure(single(), s, name).await;
            let two = measure(pair(), s, name).await;
            let target = s.replica_set();
            assert_ne!(
                two.metadata.get("failure").map(String::as_str),
                Some("ambiguous"),
                "{target} {name}: replicas are one source: {two:#?}"
            );
            assert_eq!(
                (two.phase, &two.value, &two.message),
                (one.phase, &one.value, &one.message),
                "{target} {name}: the pair's verdict differs from one Prometheus'"
            );
        }
    }
    // pay/ledger restarted once in the last 5m: added up over the replicas it would be 2, over the threshold 1.
    let m = measure(pair(), &PAY_LEDGER, "restarts").await;
    assert_eq!(
        (m.phase, m.value.as_str()),
        (Phase::Successful, "1"),
        "{m:#?}"
    );
    // A violation stays proven, counted once: the prod profile allows no restart in 10m.
    let prod = json!({"guardrail": "restarts", "profile": "prod", "matchers": {"cluster": PROD}});
    let m = measure_with(pair(), &PAY_LEDGER, prod).await;
    assert_eq!((m.phase, m.value.as_str()), (Phase::Failed, "1"), "{m:#?}");
}
