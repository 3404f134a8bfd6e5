//! PromQL injection: hostile values in the target keys (`namespace`, `rollout`, `podTemplateHash`, from the
//! configuration or from the AnalysisRun) and in header values cannot change a query's meaning. The fake
//! Prometheus here is an oracle that *passes* every guardrail whenever a query carries PromQL outside its
//! string literals that the plugin did not write (`vector(1)`, a regex matcher, a second selector), so an
//! injection that worked would turn these tests' Failed into Successful.
use crate::support;

use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{AnalysisContext, Engine, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::fake_prometheus::{FakePrometheus, RecordedRequest, Reply, Scenario};

const AT: u64 = 1_767_268_800;

/// Payloads carrying `"`, `}`, `\`, newlines, PromQL operators and regex metacharacters.
const PAYLOADS: &[&str] = &[
    r#"shop"} or vector(1) #"#,
    "web\"}\nor vector(1)",
    r#"a\"} or vector(1) or x{y=""#,
    r#"6c8d7f9a1",created_by_name=~".*"#,
    ".*",
    "web|api",
    "web) or (vector(1)",
    "web\\",
    "web\u{0}\"}",
];

/// The query with every string literal removed (PromQL `"…"` with backslash escapes).
fn outside_literals(query: &str) -> String {
    let mut out = String::new();
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        out.push_str("\"\"");
    }
    out
}

/// Whether the query carries PromQL the plugin never writes: the sign of a working injection.
fn injected(query: &str) -> bool {
    let code = outside_literals(query);
    code.contains("vector(") || code.contains("=~") || code.contains('#') || code.contains("y=")
}

/// The oracle: a healthy, passing answer to an injected query; an empty one (no proof) otherwise.
fn oracle(request: &RecordedRequest) -> Reply {
    let query = request.param("query").unwrap_or_default();
    if !injected(query) {
        return Reply::vector(&[]);
    }
    let pod: &[(&str, &str)] = &[
        ("namespace", "shop"),
        ("pod", "web-6c8d7f9a1-aaaaa"),
        ("container", "web"),
    ];
    let at = AT as f64;
    if query.starts_with("timestamp(") {
        Reply::vector(&[(pod, at, &format!("{}", AT - 15))])
    } else if query.contains("waiting_reason") {
        Reply::vector(&[])
    } else if query.contains("kube_pod_status_ready") {
        Reply::vector(&[(pod, at, "1")])
    } else {
        Reply::vector(&[(pod, at, "0")])
    }
}

async fn measure(
    fake: &FakePrometheus,
    ctx: &AnalysisContext,
    config: Value,
) -> rollouts_guardrails::engine::Measurement {
    let metric = analysis::metric("inject", &config);
    Engine::new(Client::new(), Some(fake.url().to_string()))
        .measure_at(ctx, &metric, Some(UNIX_EPOCH + Duration::from_secs(AT)))
        .await
}

#[test]
fn the_oracle_recognizes_an_injection() {
    // What a naive builder would send for the first payload, and what the plugin sends.
    assert!(injected(
        r#"timestamp(kube_pod_info{namespace="shop"} or vector(1) #"})"#
    ));
    assert!(!injected(
        r#"timestamp(kube_pod_info{namespace="shop\"} or vector(1) #"})"#
    ));
    assert!(injected(
        r#"kube_pod_info{created_by_name="x",created_by_name=~".*"}"#
    ));
}

#[tokio::test]
async fn hostile_target_values_never_pass() {
    let fake = FakePrometheus::start(Scenario::handler(oracle)).await;
    for guardrail in ["restarts", "not-ready", "latest-image"] {
        for payload in PAYLOADS {
            for key in ["namespace", "rollout", "podTemplateHash"] {
                // From the configuration (what `{{args.*}}` fills in)…
                let m = measure(
                    &fake,
                    &analysis::run("shop", "web", "6c8d7f9a1"),
                    json!({"guardrail": guardrail, key: payload}),
                )
                .await;
                assert_eq!(
                    m.phase,
                    Phase::Failed,
                    "{guardrail} {key}={payload:?}: {m:#?}"
                );
                assert!(!m.message.is_empty());
                // …and from the AnalysisRun.
                let ctx = match key {
                    "namespace" => analysis::run(payload, "web", "6c8d7f9a1"),
                    "rollout" => analysis::run("shop", payload, "6c8d7f9a1"),
                    _ => analysis::run("shop", "web", payload),
                };
                let m = measure(&fake, &ctx, json!({"guardrail": guardrail})).await;
                assert_eq!(
                    m.phase,
                    Phase::Failed,
                    "{guardrail} context {key}={payload:?}: {m:#?}"
                );
            }
        }
    }
    for request in fake.requests() {
        let query = request.param("query").unwrap_or_default();
        assert!(
            !injected(query),
            "an injected query reached Prometheus: {query}"
        );
    }
}

#[tokio::test]
async fn hostile_values_are_rejected_with_a_message_naming_the_key() {
    let fake = FakePrometheus::start(Scenario::handler(oracle)).await;
    let m = measure(
        &fake,
        &analysis::run("shop", "web", "6c8d7f9a1"),
        json!({"guardrail": "restarts", "namespace": "shop\"} or vector(1) #"}),
    )
    .await;
    assert_eq!(
        m.metadata.get("failure").map(String::as_str),
        Some("config"),
        "{m:#?}"
    );
    assert!(m.message.contains("namespace"), "{}", m.message);
    assert!(
        fake.requests().is_empty(),
        "a rejected target must not be queried"
    );
}

#[tokio::test]
async fn header_values_cannot_smuggle_headers() {
    let fake = FakePrometheus::start(Scenario::handler(oracle)).await;
    for (key, value) in [
        ("headers", json!({"X-Api-Key": "v\r\nX-Injected: 1"})),
        ("tenant", json!("team\r\nX-Injected: 1")),
        ("headers", json!({"X-Bad\r\nName": "v"})),
    ] {
        let m = measure(
            &fake,
            &analysis::run("shop", "web", "6c8d7f9a1"),
            json!({"guardrail": "not-ready", key: value}),
        )
        .await;
        assert_eq!(m.phase, Phase::Failed, "{key}: {m:#?}");
    }
    for request in fake.requests() {
        assert!(request.header("x-injected").is_none(), "{request:?}");
    }
}
