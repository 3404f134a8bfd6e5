//! Many clusters in one store, through the engine: the registration's `--matcher` reaches every series of every
//! guardrail, a template may add matchers but changes the controller's only explicitly, a target reported by
//! two sources is Failed `ambiguous`, and `--max-concurrent-queries` bounds what is in flight to one endpoint.
use crate::support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rollouts_guardrails::engine::trust::TrustPolicy;
use rollouts_guardrails::engine::{Engine, MetricSpec, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::fake_prometheus::{FakePrometheus, Reply, Scenario};

const AT: u64 = 1_767_268_800;
const HASH: &str = "6c8d7f9a1";

/// A configuration of every guardrail but `query` (whose PromQL is taken as written).
fn guardrails() -> Vec<Value> {
    vec![
        json!({"guardrail": "restarts"}),
        json!({"guardrail": "not-ready"}),
        json!({"guardrail": "latest-image"}),
        json!({"guardrail": "waiting-reasons"}),
        json!({"guardrail": "oom-killed"}),
        json!({"guardrail": "replicas"}),
        json!({"guardrail": "error-rate", "requestMatchers": {"route": "/pay"}}),
        json!({"guardrail": "latency", "threshold": 0.5}),
        json!({"guardrail": "regression", "signal": "cpu", "stablePodTemplateHash": "5b4c3d2e1"}),
        json!({"guardrail": "alerts", "alertMatchers": {"team": "pay"}}),
        json!({"guardrail": "gitops", "application": "web"}),
    ]
}

fn spec(config: &Value) -> MetricSpec {
    MetricSpec {
        name: config["guardrail"].as_str().unwrap().to_string(),
        plugin_config: Some(config.to_string().into_bytes()),
        ..Default::default()
    }
}

fn registered(address: &str, extra: &[&str]) -> Engine {
    let mut args = vec![format!("--address={address}")];
    args.extend(extra.iter().map(|a| a.to_string()));
    let trust = TrustPolicy::from_registration(args, None);
    assert!(trust.problem().is_none(), "{:?}", trust.problem());
    // As the binary builds it (src/main.rs): the client's bound from the registration.
    let client = Client::with_max_in_flight(trust.defaults().max_concurrent_queries);
    Engine::with_trust(client, trust)
}

fn at() -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(AT))
}

#[tokio::test]
async fn the_registration_matcher_reaches_every_selector_of_every_guardrail() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let engine = registered(fake.url().as_str(), &["--matcher=cluster=prod-eu"]);
    for config in guardrails() {
        let before = fake.requests().len();
        let m = engine
            .measure_at(&analysis::run("shop", "web", HASH), &spec(&config), at())
            .await;
        assert_ne!(m.phase, Phase::Successful, "no data is no proof: {m:#?}");
        assert_ne!(
            m.metadata.get("failure").map(String::as_str),
            Some("config"),
            "{config}: {m:#?}"
        );
        assert!(
            m.metadata["effective.matchers"].starts_with("cluster=prod-eu (registration)"),
            "{config}: {:?}",
            m.metadata.get("effective.matchers")
        );
        let sent: Vec<String> = fake.requests()[before..]
            .iter()
            .filter_map(|r| r.param("query").map(str::to_string))
            .collect();
        assert!(!sent.is_empty(), "{config}: nothing asked");
        for query in sent {
            // Every selector (each `{…}`) carries the cluster: no series is read from another source.
            assert_eq!(
                query.matches('{').count(),
                query.matches(r#"cluster="prod-eu""#).count(),
                "{config}: {query}"
            );
        }
    }
}

#[tokio::test]
async fn a_template_adds_matchers_and_overrides_the_controllers_only_explicitly() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let engine = registered(fake.url().as_str(), &["--matcher=cluster=prod-eu"]);
    let restarts = |extra: Value| {
        let mut c = json!({"guardrail": "restarts"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec(&c)
    };
    let before = fake.requests().len();
    let m = engine
        .measure_at(
            &analysis::run("shop", "web", HASH),
            &restarts(json!({"matchers": {"cluster": "staging-eu"}})),
            at(),
        )
        .await;
    assert_eq!(m.phase, Phase::Failed);
    assert_eq!(m.metadata["failure"], "config");
    assert!(
        m.message.contains(
            "matcher cluster=staging-eu conflicts with the controller's --matcher cluster=prod-eu"
        ),
        "{}",
        m.message
    );
    assert_eq!(fake.requests().len(), before, "refused before any query");

    let m = engine
        .measure_at(
            &analysis::run("shop", "web", HASH),
            &restarts(json!({"matchers": {"cluster": "staging-eu", "team": "pay"}, "overrideControllerMatchers": ["cluster"]})),
            at(),
        )
        .await;
    assert_eq!(
        m.metadata["effective.matchers"],
        "cluster=staging-eu (template), team=pay (template)"
    );
    let query = fake
        .requests()
        .last()
        .unwrap()
        .param("query")
        .unwrap()
        .to_string();
    assert!(
        query.contains(r#"cluster="staging-eu",team="pay""#) && !query.contains("prod-eu"),
        "{query}"
    );
}

#[tokio::test]
async fn one_pod_reported_by_two_clusters_fails_as_ambiguous_for_every_pod_guardrail() {
    let fresh = AT as f64 - 10.0;
    let pod = |cluster: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("namespace", "shop"),
            ("pod", "web-6c8d7f9a1-x7k2p"),
            ("cluster", cluster),
        ]
    };
    let (prod, staging) = (pod("prod-eu"), pod("staging-eu"));
    let fresh_text = format!("{fresh}");
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[
        (&prod, fresh, &fresh_text),
        (&staging, fresh, &fresh_text),
    ])))
    .await;
    let engine = registered(fake.url().as_str(), &[]);
    for config in guardrails().into_iter().take(5) {
        let m = engine
            .measure_at(&analysis::run("shop", "web", HASH), &spec(&config), at())
            .await;
        assert_eq!(m.phase, Phase::Failed, "{config}: {m:#?}");
        assert_eq!(m.metadata["failure"], "ambiguous", "{config}: {m:#?}");
        assert!(
            m.message.starts_with("pod shop/web-6c8d7f9a1-x7k2p is reported with cluster=prod-eu and cluster=staging-eu: set `matchers`"),
            "{config}: {}",
            m.message
        );
    }
    // A label the registration declares a replica label only tells replicas apart: one source.
    let replicas = registered(fake.url().as_str(), &["--replica-label=cluster"]);
    let m = replicas
        .measure_at(
            &analysis::run("shop", "web", HASH),
            &spec(&json!({"guardrail": "restarts"})),
            at(),
        )
        .await;
    assert_ne!(
        m.metadata.get("failure").map(String::as_str),
        Some("ambiguous"),
        "{m:#?}"
    );
    assert_eq!(
        m.metadata["effective.replicaLabels"],
        "cluster (registration)"
    );
}

#[tokio::test]
async fn queries_beyond_the_bound_wait_inside_the_measurement_timeout() {
    // restarts asks 6 queries; each answer takes 300 ms. One slot: about 1.8 s, beyond a 1 s timeout. The
    // default bound lets them run at once, well inside it.
    let slow = || {
        Scenario::Always(Reply::SlowFirstByte {
            delay: Duration::from_millis(300),
            then: Box::new(Reply::vector(&[])),
        })
    };
    let config = spec(&json!({"guardrail": "restarts", "timeout": "1s", "settle": "0s"}));
    let one = FakePrometheus::start(slow()).await;
    let m = registered(one.url().as_str(), &["--max-concurrent-queries=1"])
        .measure_at(&analysis::run("shop", "web", HASH), &config, at())
        .await;
    assert_eq!(m.metadata["failure"], "timeout", "{m:#?}");
    let many = FakePrometheus::start(slow()).await;
    let m = registered(many.url().as_str(), &[])
        .measure_at(&analysis::run("shop", "web", HASH), &config, at())
        .await;
    assert_eq!(m.metadata["failure"], "no-data", "{m:#?}");
}

#[tokio::test]
async fn a_label_name_only_prometheus_3_accepts_is_refused_on_every_guardrail() {
    // Prometheus 3 takes quoted UTF-8 label names (`{"k8s.cluster.name"="prod"}`, OpenTelemetry's style); Prometheus
    // 2, VictoriaMetrics and Thanos' older engines do not, so a selector written with one would mean different
    // things on different stores (docs/prometheus-compatibility.md). Refused before any query, naming the name.
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let engine = registered(fake.url().as_str(), &[]);
    for config in guardrails() {
        let config = analysis::with(config, json!({"matchers": {"k8s.cluster.name": "prod-eu"}}));
        let m = engine
            .measure_at(&analysis::run("shop", "web", HASH), &spec(&config), at())
            .await;
        assert_eq!(
            (m.phase, m.metadata["failure"].as_str()),
            (Phase::Failed, "config"),
            "{config}: {m:#?}"
        );
        assert!(
            m.message.contains("k8s.cluster.name")
                && m.message.contains("only letters, digits and `_`"),
            "{config}: {}",
            m.message
        );
    }
    assert_eq!(fake.requests().len(), 0, "refused before any query");
    // The registration's --matcher is held to the same rule: the plugin answers, every measurement fails.
    let trust = TrustPolicy::from_registration(
        [
            format!("--address={}", fake.url()),
            "--matcher=k8s.cluster.name=prod-eu".into(),
        ],
        None,
    );
    let problem = trust.problem().map(|p| p.to_string()).unwrap_or_default();
    assert!(problem.contains("k8s.cluster.name"), "{problem}");
}
