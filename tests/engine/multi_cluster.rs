//! One central store holding two clusters' kube-state-metrics with identical manifests — the same namespace,
//! Rollout and pod-template hash (`shop/web-6c8d7f9a1`) in `cluster=prod-eu` and `cluster=staging-eu` — as Thanos,
//! Mimir, Cortex or VictoriaMetrics hold them (issue 16). On Thanos (`GUARDRAILS_TEST_ENGINE=thanos`) each cluster
//! is a Prometheus + sidecar with the external label `cluster=<name>` behind one Querier; on the other stores one
//! instance holds both, the label written into the data.
//!
//! The cases, for every kube-state-metrics guardrail:
//! - prod's kube-state-metrics lost the canary (no series at all) while staging's twin is healthy: with
//!   `matchers.cluster=prod-eu` the measurement is Failed `no-data` — never a pass proven with staging's pods;
//!   with `matchers.cluster=staging-eu` it passes (the matcher selects, it does not just fail);
//! - both clusters report the canary: without `matchers` the measurement is Failed `ambiguous`, naming the label
//!   and both values;
//! - prod's part of the store is down (its Prometheus and sidecar behind Thanos; the one instance elsewhere):
//!   selecting prod fails.
use crate::support;

use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{Engine, Measurement, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::prometheus::{Store, TestPrometheus};
use support::scenarios::{self, END, POD_GUARDRAILS as GUARDRAILS, SHOP_WEB};

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");
const PROD: &str = "prod-eu";
const STAGING: &str = "staging-eu";

/// The canonical fixture without any series of shop/web's canary pods: kube-state-metrics lost them.
fn without_canary() -> String {
    let canary = format!(r#"pod="{}-"#, SHOP_WEB.replica_set());
    let text: String = scenarios::render()
        .lines()
        .filter(|line| !(line.contains(r#"namespace="shop""#) && line.contains(&canary)))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        text.len() < scenarios::render().len(),
        "the fixture has no series for {canary}"
    );
    text
}

/// prod-eu lost the canary, staging-eu is healthy. Shared by the tests of this binary.
fn prod_unscraped() -> &'static TestPrometheus {
    static STORE: OnceLock<TestPrometheus> = OnceLock::new();
    STORE.get_or_init(|| {
        TestPrometheus::start_clusters(
            Store::from_env(),
            &[(PROD, &without_canary()), (STAGING, &scenarios::render())],
            END,
        )
    })
}

/// Both clusters report the canary (the canonical fixture in each).
fn both_report() -> &'static TestPrometheus {
    static STORE: OnceLock<TestPrometheus> = OnceLock::new();
    STORE.get_or_init(|| {
        let text = scenarios::render();
        TestPrometheus::start_clusters(Store::from_env(), &[(PROD, &text), (STAGING, &text)], END)
    })
}

async fn measure(store: &TestPrometheus, config: Value) -> Measurement {
    let engine = Engine::new(Client::new(), Some(store.url().to_owned()));
    let metric = analysis::metric("guardrail", &config);
    let at = UNIX_EPOCH + Duration::from_secs(END as u64);
    engine
        .measure_at(&analysis::of(&SHOP_WEB), &metric, Some(at))
        .await
}

#[tokio::test]
async fn prod_down_fails_every_guardrail_selecting_prod() {
    // A store of its own: this test stops part of it. Behind the Querier (`--no-query.partial-response`) the
    // answer is an error while the Querier still lists the stopped sidecar and an empty vector once it has dropped
    // it; with one instance the store refuses connections. Each of these fails.
    let text = scenarios::render();
    let mut store =
        TestPrometheus::start_clusters(Store::from_env(), &[(PROD, &text), (STAGING, &text)], END);
    let m = measure(
        &store,
        json!({"guardrail": "restarts", "matchers": {"cluster": PROD}}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful, "before: {m:#?}");
    store.stop_cluster(PROD);
    for name in GUARDRAILS {
        let m = measure(
            &store,
            json!({"guardrail": name, "matchers": {"cluster": PROD}}),
        )
        .await;
        assert_eq!(m.phase, Phase::Failed, "{name}: {m:#?}");
        assert!(
            matches!(failure(&m), Some("query-error" | "no-data")),
            "{name}: {m:#?}"
        );
    }
}

fn failure(m: &Measurement) -> Option<&str> {
    m.metadata.get("failure").map(String::as_str)
}

#[test]
fn the_store_holds_both_clusters_with_the_same_replica_set() {
    // The premise: the canary's pods exist in staging only, under the same names prod would give them.
    let store = prod_unscraped();
    let count = |cluster: &str| {
        store.query_value(
            &format!(
                r#"count(kube_pod_info{{cluster="{cluster}",namespace="shop",created_by_name="{}"}})"#,
                SHOP_WEB.replica_set()
            ),
            END,
        )
    };
    assert_eq!(count(STAGING), Some(SHOP_WEB.pods.len() as f64));
    assert_eq!(count(PROD), None);
    // prod still reports the rest of its cluster: only the canary is missing.
    assert!(store
        .query_value(r#"count(kube_pod_info{cluster="prod-eu"})"#, END)
        .is_some_and(|n| n > 0.0));
}

#[tokio::test]
async fn prod_lost_the_canary_so_every_guardrail_selecting_prod_fails_no_data() {
    for name in GUARDRAILS {
        let m = measure(
            prod_unscraped(),
            json!({"guardrail": name, "matchers": {"cluster": PROD}}),
        )
        .await;
        assert_eq!(
            (m.phase, failure(&m)),
            (Phase::Failed, Some("no-data")),
            "{name}: {m:#?}"
        );
    }
}

#[tokio::test]
async fn selecting_the_healthy_twin_passes_every_guardrail() {
    for name in GUARDRAILS {
        let m = measure(
            prod_unscraped(),
            json!({"guardrail": name, "matchers": {"cluster": STAGING}}),
        )
        .await;
        assert_eq!(m.phase, Phase::Successful, "{name}: {m:#?}");
        assert!(
            m.message
                .contains("3 pods of ReplicaSet shop/web-6c8d7f9a1"),
            "{name}: {}",
            m.message
        );
    }
}

#[tokio::test]
async fn one_pod_reported_by_two_clusters_without_matchers_is_ambiguous() {
    for name in GUARDRAILS {
        let m = measure(both_report(), json!({ "guardrail": name })).await;
        assert_eq!(
            (m.phase, failure(&m)),
            (Phase::Failed, Some("ambiguous")),
            "{name}: {m:#?}"
        );
        for text in ["cluster=prod-eu", "cluster=staging-eu", "`matchers`"] {
            assert!(
                m.message.contains(text),
                "{name}: message lacks {text:?}: {}",
                m.message
            );
        }
    }
}

#[tokio::test]
async fn the_matcher_settles_the_ambiguity() {
    // Both clusters report a healthy canary: selecting one is a pass proven by that cluster's pods only.
    for cluster in [PROD, STAGING] {
        let m = measure(
            both_report(),
            json!({"guardrail": "restarts", "matchers": {"cluster": cluster}}),
        )
        .await;
        assert_eq!(m.phase, Phase::Successful, "{cluster}: {m:#?}");
    }
}

fn check(store: &TestPrometheus, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "check",
            "--prometheus",
            store.url(),
            "--at",
            scenarios::END_RFC3339,
            "--namespace",
            SHOP_WEB.namespace,
            "--rollout",
            SHOP_WEB.rollout,
            "--pod-template-hash",
            SHOP_WEB.hash,
        ])
        .args(extra)
        .env_remove("ARGO_ROLLOUTS_RPC_PLUGIN")
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .env_remove("RUST_LOG")
        .output()
        .expect("run rollouts-guardrails")
}

#[test]
fn check_with_set_matchers_cluster_fails_for_prod_and_passes_for_staging() {
    // As a user types it: `check --guardrail restarts --set matchers.cluster=prod-eu`.
    for name in ["restarts", "not-ready", "latest-image"] {
        let prod = check(
            prod_unscraped(),
            &["--guardrail", name, "--set", "matchers.cluster=prod-eu"],
        );
        let out = String::from_utf8_lossy(&prod.stdout);
        assert_ne!(prod.status.code(), Some(0), "{name}: {out}");
        assert!(out.contains("0 PASS, 1 FAIL"), "{name}: {out}");
        assert!(
            out.contains("no fresh kube-state-metrics series"),
            "{name}: {out}"
        );
        let staging = check(
            prod_unscraped(),
            &["--guardrail", name, "--set", "matchers.cluster=staging-eu"],
        );
        assert_eq!(
            staging.status.code(),
            Some(0),
            "{name}: {}{}",
            String::from_utf8_lossy(&staging.stdout),
            String::from_utf8_lossy(&staging.stderr)
        );
    }
}
