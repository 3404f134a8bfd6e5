//! The guardrails beyond the first three — waiting-reasons, oom-killed, error-rate, latency, alerts — against
//! a real Prometheus, evaluated at the fixtures' END: pod guardrails on the canonical kube-state-metrics fixture,
//! request and alert guardrails on the extra fixture (`tests/fixtures/prometheus/guardrails-extra.om`, rendered
//! by `support::scenarios::render_extra`). Each has healthy, violating, no-traffic (where it applies) and
//! no-data cases, with decoys that would flip the verdict if a selector leaked; then the same through the
//! `check` CLI.
use crate::support;

use std::fs;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{AnalysisContext, Engine, Measurement, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis::{self, assert_phase};
use support::prometheus::TestPrometheus;
use support::scenarios::{self, Scenario};

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");

/// Prometheus on the extra fixture, shared by this binary's tests.
fn extra() -> &'static TestPrometheus {
    static EXTRA: OnceLock<TestPrometheus> = OnceLock::new();
    EXTRA.get_or_init(|| TestPrometheus::start(&scenarios::render_extra()))
}

async fn measure_on(
    prometheus: &TestPrometheus,
    ctx: &AnalysisContext,
    config: Value,
) -> Measurement {
    let engine = Engine::new(Client::new(), Some(prometheus.url().to_string()));
    let metric = analysis::metric("guardrail", &config);
    let at = UNIX_EPOCH + Duration::from_secs(scenarios::END as u64);
    engine.measure_at(ctx, &metric, Some(at)).await
}

async fn canonical(s: &Scenario, config: Value) -> Measurement {
    measure_on(support::prometheus::shared(), &analysis::of(s), config).await
}

async fn traffic(s: &Scenario, config: Value) -> Measurement {
    measure_on(extra(), &analysis::of(s), config).await
}

async fn alerts_in(namespace: &str, config: Value) -> Measurement {
    let ctx = AnalysisContext {
        namespace: namespace.to_string(),
        ..Default::default()
    };
    measure_on(extra(), &ctx, config).await
}

#[tokio::test]
async fn waiting_reasons_pass_healthy_pods_and_name_pod_container_reason() {
    let m = canonical(
        &scenarios::SHOP_WEB,
        json!({"guardrail": "waiting-reasons"}),
    )
    .await;
    // The decoys (same namespace, other ReplicaSets) are all in CrashLoopBackOff.
    assert_phase(
        &m,
        Phase::Successful,
        "0",
        &["0 containers of 3 pods of ReplicaSet shop/web-6c8d7f9a1"],
    );
    let m = canonical(&scenarios::PAY_API, json!({"guardrail": "waiting-reasons"})).await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &[&format!(
            "{}/api waiting: CrashLoopBackOff",
            scenarios::PAY_API_CRASHING_POD
        )],
    );
    let m = canonical(
        &scenarios::MEDIA_UPLOADER,
        json!({"guardrail": "waiting-reasons"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &["uploader waiting: ImagePullBackOff"],
    );
    // A configured list replaces the default one; other reasons are reported, not judged.
    let m = canonical(
        &scenarios::MEDIA_UPLOADER,
        json!({"guardrail": "waiting-reasons", "reasons": "CrashLoopBackOff"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Successful,
        "0",
        &["also waiting, not judged: ImagePullBackOff"],
    );
}

#[tokio::test]
async fn oom_killed_fails_inside_the_window_and_ignores_other_terminations() {
    let m = canonical(&scenarios::PAY_LEDGER, json!({"guardrail": "oom-killed"})).await;
    assert_phase(
        &m,
        Phase::Failed,
        "1",
        &[&format!(
            "{}/ledger OOMKilled",
            scenarios::PAY_LEDGER_RESTARTED_POD
        )],
    );
    // pay/young terminated with Error, not OOMKilled; shop/web never terminated.
    for s in [&scenarios::PAY_YOUNG, &scenarios::SHOP_WEB] {
        let m = canonical(s, json!({"guardrail": "oom-killed"})).await;
        assert_phase(
            &m,
            Phase::Successful,
            "0",
            &["0 containers OOMKilled in the last 5m"],
        );
    }
}

#[tokio::test]
async fn pod_guardrails_without_fresh_pods_fail() {
    for name in ["waiting-reasons", "oom-killed"] {
        for s in [&scenarios::OPS_GHOST, &scenarios::OPS_GONE] {
            let m = canonical(s, json!({ "guardrail": name })).await;
            assert_eq!(m.phase, Phase::Failed, "{name} {m:#?}");
            assert_eq!(m.metadata["failure"], "no-data", "{name} {m:#?}");
        }
    }
}

#[tokio::test]
async fn error_rate_judges_only_the_canary_pods() {
    let m = traffic(
        &scenarios::CHECKOUT_CART,
        json!({"guardrail": "error-rate"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Successful,
        "0.000999",
        &["ReplicaSet checkout/cart-5d4c3b2a1", "threshold 0.05"],
    );
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        json!({"guardrail": "error-rate"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "0.166667",
        &["300 of 1800 requests with code=~\"5..\""],
    );
    // The decoys serve 50 % errors; only a selector leak would make cart fail at 1 %.
    let m = traffic(
        &scenarios::CHECKOUT_CART,
        json!({"guardrail": "error-rate", "profile": "prod"}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
}

#[tokio::test]
async fn error_rate_without_enough_traffic_or_any_series_fails() {
    let m = traffic(
        &scenarios::CHECKOUT_QUIET,
        json!({"guardrail": "error-rate"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "3",
        &["not enough traffic", "minRequests 10"],
    );
    let m = traffic(
        &scenarios::CHECKOUT_QUIET,
        json!({"guardrail": "error-rate", "minRequests": 2}),
    )
    .await;
    assert_phase(&m, Phase::Successful, "0", &[]);
    let m = traffic(
        &scenarios::CHECKOUT_SILENT,
        json!({"guardrail": "error-rate"}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "", &["no request series"]);
    assert_eq!(m.metadata["failure"], "no-traffic");
    // A wrong error label is "no request series", never "no errors".
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        json!({"guardrail": "error-rate", "errorLabel": "status"}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "", &["no request series"]);
    // Canonical Prometheus: the pods exist, no request metrics at all.
    let m = canonical(&scenarios::SHOP_WEB, json!({"guardrail": "error-rate"})).await;
    assert_eq!(
        (m.phase, m.metadata["failure"].as_str()),
        (Phase::Failed, "no-traffic"),
        "{m:#?}"
    );
}

#[tokio::test]
async fn error_rate_presets_istio_and_ingress_nginx() {
    let m = traffic(
        &scenarios::MESH_ORDERS,
        json!({"guardrail": "error-rate", "source": "istio"}),
    )
    .await;
    // The source reporter's 5xx series would make this 0.5.
    assert_phase(
        &m,
        Phase::Successful,
        "0.000999",
        &["response_code=~\"5..\""],
    );
    let m = traffic(
        &scenarios::EDGE_STOREFRONT,
        json!({"guardrail": "error-rate", "source": "ingress-nginx", "service": scenarios::EDGE_STOREFRONT_CANARY_SERVICE}),
    )
    .await;
    assert_phase(&m, Phase::Successful, "0.002494", &["status=~\"5..\""]);
    let m = traffic(
        &scenarios::EDGE_STOREFRONT,
        json!({"guardrail": "error-rate", "source": "ingress-nginx", "service": "storefront-stable"}),
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    assert_eq!(m.value, "1", "the stable Service serves only 500s");
}

#[tokio::test]
async fn latency_quantiles_against_the_threshold() {
    let m = traffic(
        &scenarios::CHECKOUT_CART,
        json!({"guardrail": "latency", "threshold": 0.3}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
    assert!(
        m.message
            .starts_with("p95 latency 0.183333s over 6006 requests"),
        "{}",
        m.message
    );
    let m = traffic(
        &scenarios::CHECKOUT_CART,
        json!({"guardrail": "latency", "threshold": "0.1"}),
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        json!({"guardrail": "latency", "threshold": 0.5, "quantile": 0.99}),
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    assert!(m.message.starts_with("p99 latency 2.4"), "{}", m.message);
    let m = traffic(
        &scenarios::MESH_ORDERS,
        json!({"guardrail": "latency", "source": "istio", "threshold": 0.1}),
    )
    .await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
    assert!(
        m.value.starts_with("0.04"),
        "milliseconds become seconds: {m:#?}"
    );
    let m = traffic(
        &scenarios::CHECKOUT_QUIET,
        json!({"guardrail": "latency", "threshold": 1}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "3", &["not enough traffic"]);
    let m = traffic(
        &scenarios::CHECKOUT_SILENT,
        json!({"guardrail": "latency", "threshold": 1}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "", &["no request series"]);
    let m = traffic(&scenarios::CHECKOUT_CART, json!({"guardrail": "latency"})).await;
    assert_phase(&m, Phase::Failed, "", &["missing key `threshold`"]);
}

#[tokio::test]
async fn alerts_fail_on_firing_alerts_at_or_above_the_severity() {
    let m = alerts_in(
        scenarios::ALERTS_ALARMED_NAMESPACE,
        json!({"guardrail": "alerts"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "2",
        &[
            "KubeContainerWaiting (warning)",
            "KubePodCrashLooping (critical)",
        ],
    );
    let m = alerts_in(
        scenarios::ALERTS_CALM_NAMESPACE,
        json!({"guardrail": "alerts"}),
    )
    .await;
    // Pending alerts never count; the info one is below the default minimum; calm-staging is a decoy.
    assert_phase(
        &m,
        Phase::Successful,
        "0",
        &["1 below the minimum severity ignored"],
    );
    let m = alerts_in(
        scenarios::ALERTS_CALM_NAMESPACE,
        json!({"guardrail": "alerts", "profile": "prod"}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "1", &["CPUThrottlingHigh (info)"]);
    let m = alerts_in(
        scenarios::ALERTS_ALARMED_NAMESPACE,
        json!({"guardrail": "alerts", "minSeverity": "critical"}),
    )
    .await;
    assert_phase(&m, Phase::Failed, "1", &["KubePodCrashLooping"]);
    let m = alerts_in("quiet-namespace", json!({"guardrail": "alerts"})).await;
    assert_phase(&m, Phase::Successful, "0", &["rules evaluated 10s ago"]);
}

#[tokio::test]
async fn alerts_without_rule_evaluation_prove_nothing() {
    // The canonical Prometheus has no ALERTS and no rule-evaluation clock.
    let ctx = AnalysisContext {
        namespace: "shop".into(),
        ..Default::default()
    };
    let m = measure_on(
        support::prometheus::shared(),
        &ctx,
        json!({"guardrail": "alerts"}),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["cannot prove that alerting rules are evaluated"],
    );
    // Four minutes after the clock stopped, with a staleness of two.
    let engine = Engine::new(Client::new(), Some(extra().url().to_string()));
    let metric = analysis::metric(
        "alerts",
        &json!({"guardrail": "alerts", "namespace": "calm", "staleness": "2m"}),
    );
    let later = UNIX_EPOCH + Duration::from_secs((scenarios::END + 240) as u64);
    let m = engine
        .measure_at(&AnalysisContext::default(), &metric, Some(later))
        .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["alerting rules were last evaluated 4m10s ago, older than staleness 2m"],
    );
    assert_eq!(m.metadata["failure"], "stale");
}

fn check(prometheus: &TestPrometheus, args: &[&str]) -> (i32, Value) {
    let output = Command::new(BIN)
        .args([
            "check",
            "--prometheus",
            prometheus.url(),
            "--at",
            scenarios::END_RFC3339,
            "--output",
            "json",
        ])
        .args(args)
        .env_remove("ARGO_ROLLOUTS_RPC_PLUGIN")
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .env_remove("RUST_LOG")
        .output()
        .expect("run rollouts-guardrails");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: Value = serde_json::from_str(stdout.trim())
        .or_else(|_| serde_json::from_str(stdout.lines().next().unwrap_or("")))
        .unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    (output.status.code().unwrap_or(-1), json)
}

fn target(s: &Scenario) -> Vec<&'static str> {
    vec![
        "--namespace",
        s.namespace,
        "--rollout",
        s.rollout,
        "--pod-template-hash",
        s.hash,
    ]
}

#[test]
fn the_check_cli_runs_every_new_guardrail() {
    let cases: Vec<(&TestPrometheus, Vec<&str>, i32)> = vec![
        (
            support::prometheus::shared(),
            [
                target(&scenarios::SHOP_WEB),
                vec!["--guardrail", "waiting-reasons"],
            ]
            .concat(),
            0,
        ),
        (
            support::prometheus::shared(),
            [
                target(&scenarios::PAY_API),
                vec!["--guardrail", "waiting-reasons"],
            ]
            .concat(),
            1,
        ),
        (
            support::prometheus::shared(),
            [
                target(&scenarios::SHOP_WEB),
                vec!["--guardrail", "oom-killed"],
            ]
            .concat(),
            0,
        ),
        (
            support::prometheus::shared(),
            [
                target(&scenarios::PAY_LEDGER),
                vec!["--guardrail", "oom-killed"],
            ]
            .concat(),
            1,
        ),
        (
            extra(),
            [
                target(&scenarios::CHECKOUT_CART),
                vec!["--guardrail", "error-rate"],
            ]
            .concat(),
            0,
        ),
        (
            extra(),
            [
                target(&scenarios::CHECKOUT_PRICING),
                vec!["--guardrail", "error-rate"],
            ]
            .concat(),
            1,
        ),
        (
            extra(),
            [
                target(&scenarios::CHECKOUT_QUIET),
                vec!["--guardrail", "error-rate"],
            ]
            .concat(),
            1,
        ),
        (
            extra(),
            [
                target(&scenarios::CHECKOUT_CART),
                vec!["--guardrail", "latency", "--set", "threshold=0.3"],
            ]
            .concat(),
            0,
        ),
        (
            extra(),
            [
                target(&scenarios::CHECKOUT_PRICING),
                vec!["--guardrail", "latency", "--set", "threshold=0.3"],
            ]
            .concat(),
            1,
        ),
        (
            extra(),
            vec!["--namespace", "calm", "--guardrail", "alerts"],
            0,
        ),
        (
            extra(),
            vec![
                "--namespace",
                "alarmed",
                "--guardrail",
                "alerts",
                "--set",
                "matchers.severity=critical",
            ],
            1,
        ),
        (
            support::prometheus::shared(),
            vec!["--namespace", "shop", "--guardrail", "alerts"],
            1,
        ),
    ];
    for (prometheus, args, status) in cases {
        let (code, json) = check(prometheus, &args);
        assert_eq!(code, status, "{args:?}: {json:#}");
        let text = json.to_string();
        let expected = if status == 0 { "Successful" } else { "Failed" };
        assert!(text.contains(expected), "{args:?}: {json:#}");
    }
}

#[test]
fn the_committed_extra_fixture_is_current() {
    let rendered = scenarios::render_extra();
    let path = scenarios::extra_fixture_path();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        fs::write(&path, &rendered).expect("write the extra fixture");
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{} is not the rendering of scenarios::render_extra(); run UPDATE_FIXTURES=1 cargo test --test guardrails_more",
        path.display()
    );
}

fn regression(signal: &str, stable: &Scenario) -> Value {
    json!({"guardrail": "regression", "signal": signal, "stablePodTemplateHash": stable.hash})
}

#[tokio::test]
async fn regression_compares_canary_with_stable_on_every_signal() {
    let cart_stable = &scenarios::EXTRA_DECOYS[0];
    let pricing_stable = &scenarios::CHECKOUT_PRICING_STABLE;
    // cart's canary is better than its (bad) stable on every signal.
    for signal in ["error-rate", "latency", "cpu", "memory"] {
        let m = traffic(&scenarios::CHECKOUT_CART, regression(signal, cart_stable)).await;
        assert_eq!(m.phase, Phase::Successful, "{signal}: {m:#?}");
        assert_eq!(m.metadata["stable"], "checkout/cart-9c8b7a6f5");
    }
    // pricing's canary is worse than its stable on every signal; the message shows both values and the ratio.
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        regression("cpu", pricing_stable),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "0.9",
        &[
            "canary CPU per pod (cores) 0.9 vs stable 0.3: ratio 3",
            "tolerance 0.5",
        ],
    );
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        regression("memory", pricing_stable),
    )
    .await;
    assert_phase(&m, Phase::Failed, "629145600", &["ratio 3"]);
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        regression("latency", pricing_stable),
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    assert!(
        m.message.contains("canary p95 latency (s) 2.35"),
        "{}",
        m.message
    );
    let m = traffic(
        &scenarios::CHECKOUT_PRICING,
        regression("error-rate", pricing_stable),
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    // A generous tolerance lets the CPU difference pass.
    let mut config = regression("cpu", pricing_stable);
    config["tolerance"] = json!(3);
    let m = traffic(&scenarios::CHECKOUT_PRICING, config).await;
    assert_eq!(m.phase, Phase::Successful, "{m:#?}");
}

/// `method: mann-whitney` on every signal of the extra fixture (constant rates: each side's samples tie, the
/// canary's all above or all below the stable's): the per-step expressions of cpu, memory and error-rate read
/// the same series as `ratio`.
#[tokio::test]
async fn regression_by_rank_test_on_every_signal() {
    let ranked = |signal: &str, stable: &Scenario| {
        let mut config = regression(signal, stable);
        config["method"] = json!("mann-whitney");
        config["window"] = json!("20m");
        config
    };
    for signal in ["error-rate", "latency", "cpu", "memory"] {
        let better = traffic(
            &scenarios::CHECKOUT_CART,
            ranked(signal, &scenarios::EXTRA_DECOYS[0]),
        )
        .await;
        assert_eq!(better.phase, Phase::Successful, "{signal}: {better:#?}");
        assert!(
            better
                .message
                .contains("on 20 vs 20 one-minute samples: no regression"),
            "{signal}: {}",
            better.message
        );
        let worse = traffic(
            &scenarios::CHECKOUT_PRICING,
            ranked(signal, &scenarios::CHECKOUT_PRICING_STABLE),
        )
        .await;
        assert_eq!(worse.phase, Phase::Failed, "{signal}: {worse:#?}");
        assert_eq!(
            worse.metadata["failure"], "threshold",
            "{signal}: {worse:#?}"
        );
        assert!(worse.message.ends_with("over 20m"), "{}", worse.message);
    }
    let cpu = traffic(
        &scenarios::CHECKOUT_PRICING,
        ranked("cpu", &scenarios::CHECKOUT_PRICING_STABLE),
    )
    .await;
    assert!(
        cpu.message
            .starts_with("canary CPU per pod median 0.9 cores vs stable 0.3 cores (×3.00 > 1.50)"),
        "{}",
        cpu.message
    );
}

#[tokio::test]
async fn regression_needs_enough_data_on_both_sides() {
    // quiet has pods but no resource series.
    let m = traffic(
        &scenarios::CHECKOUT_QUIET,
        regression("cpu", &scenarios::CHECKOUT_PRICING_STABLE),
    )
    .await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["canary: no cpu usage data for 1 of 1 pods"],
    );
    // A stable hash without pods.
    let mut config = regression("memory", &scenarios::CHECKOUT_PRICING_STABLE);
    config["stablePodTemplateHash"] = json!("0f0f0f0f0");
    let m = traffic(&scenarios::CHECKOUT_CART, config).await;
    assert_phase(&m, Phase::Failed, "", &["stable: no fresh kube-state-metrics series for pods of ReplicaSet checkout/cart-0f0f0f0f0"]);
    // Too little traffic on the canary side (1800 requests) while the stable side has 6006.
    let mut config = regression("error-rate", &scenarios::CHECKOUT_PRICING_STABLE);
    config["minRequests"] = json!(2000);
    let m = traffic(&scenarios::CHECKOUT_PRICING, config).await;
    assert_phase(&m, Phase::Failed, "1800", &["canary: not enough traffic"]);
    // Comparing a ReplicaSet with itself proves nothing.
    let m = traffic(
        &scenarios::CHECKOUT_CART,
        regression("cpu", &scenarios::CHECKOUT_CART),
    )
    .await;
    assert_phase(&m, Phase::Failed, "", &["the same ReplicaSet"]);
}

async fn gitops(config: Value) -> Measurement {
    measure_on(extra(), &AnalysisContext::default(), config).await
}

#[tokio::test]
async fn gitops_argo_cd_applications() {
    let m = gitops(json!({"guardrail": "gitops", "application": "cart"})).await;
    assert_phase(
        &m,
        Phase::Successful,
        "1",
        &["Argo CD Application cart: health Healthy, sync Synced"],
    );
    let m = gitops(json!({"guardrail": "gitops", "application": "pricing"})).await;
    assert_phase(&m, Phase::Failed, "0", &["health Degraded, sync OutOfSync"]);
    let m = gitops(json!({"guardrail": "gitops", "application": "legacy"})).await;
    assert_eq!(
        (m.phase, m.metadata["failure"].as_str()),
        (Phase::Failed, "no-data"),
        "{m:#?}"
    );
    let m = gitops(json!({"guardrail": "gitops", "application": "ghost"})).await;
    assert_phase(
        &m,
        Phase::Failed,
        "",
        &["no series for Argo CD Application ghost"],
    );
}

#[tokio::test]
async fn gitops_flux_objects_ready_reconciling_and_stuck() {
    let m = gitops(json!({"guardrail": "gitops", "kustomization": "checkout"})).await;
    // The HelmRelease of the same name is not Ready: a decoy for the kind matcher.
    assert_phase(
        &m,
        Phase::Successful,
        "1",
        &["Flux Kustomization checkout: Ready"],
    );
    let m = gitops(json!({"guardrail": "gitops", "kustomization": "payments"})).await;
    assert_phase(
        &m,
        Phase::Failed,
        "0",
        &["not Ready (status False) for longer than 10m: stuck"],
    );
    let m = gitops(json!({"guardrail": "gitops", "kustomization": "edge"})).await;
    assert_phase(
        &m,
        Phase::Failed,
        "0",
        &["Ready earlier in the last 10m: reconciling"],
    );
    let m = gitops(json!({"guardrail": "gitops", "helmRelease": "checkout", "matchers": {"exported_namespace": "flux-system"}})).await;
    assert_phase(&m, Phase::Failed, "0", &["Flux HelmRelease checkout"]);
    let m = measure_on(
        support::prometheus::shared(),
        &AnalysisContext::default(),
        json!({"guardrail": "gitops", "kustomization": "checkout"}),
    )
    .await;
    assert_eq!(
        (m.phase, m.metadata["failure"].as_str()),
        (Phase::Failed, "no-data"),
        "{m:#?}"
    );
}

/// `check --template` on an example: the phase of each metric, in order.
fn template_phases(
    prometheus: &TestPrometheus,
    file: &str,
    args: &[&str],
) -> Vec<(String, String)> {
    let path = format!("{}/examples/guardrails/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut line = vec![
        "check",
        "--prometheus",
        prometheus.url(),
        "--at",
        scenarios::END_RFC3339,
        "--output",
        "json",
        "--template",
        &path,
    ];
    for arg in args {
        line.push("--arg");
        line.push(arg);
    }
    let output = Command::new(BIN)
        .args(&line)
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .output()
        .expect("run rollouts-guardrails");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                row["metric"].as_str().unwrap_or("").to_string(),
                row["phase"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_phases(got: Vec<(String, String)>, expected: &[(&str, &str)]) {
    let got: Vec<(&str, &str)> = got.iter().map(|(m, p)| (m.as_str(), p.as_str())).collect();
    assert_eq!(got, expected);
}

#[test]
fn the_example_templates_evaluate_as_documented() {
    let canonical = support::prometheus::shared();
    assert_phases(
        template_phases(
            canonical,
            "pod-health.yaml",
            &[
                "namespace=shop",
                "rollout=web",
                "pod-template-hash=6c8d7f9a1",
            ],
        ),
        &[
            ("waiting-reasons", "Successful"),
            ("oom-killed", "Successful"),
        ],
    );
    assert_phases(
        template_phases(
            canonical,
            "pod-health.yaml",
            &[
                "namespace=pay",
                "rollout=ledger",
                "pod-template-hash=8a7b6c5d4",
            ],
        ),
        &[("waiting-reasons", "Successful"), ("oom-killed", "Failed")],
    );
    assert_phases(
        template_phases(
            extra(),
            "request-health.yaml",
            &[
                "namespace=checkout",
                "rollout=cart",
                "pod-template-hash=5d4c3b2a1",
            ],
        ),
        &[("error-rate", "Successful"), ("latency", "Successful")],
    );
    assert_phases(
        template_phases(
            extra(),
            "request-health.yaml",
            &[
                "namespace=checkout",
                "rollout=pricing",
                "pod-template-hash=6e5d4c3b2",
            ],
        ),
        &[("error-rate", "Failed"), ("latency", "Failed")],
    );
    assert_phases(
        template_phases(
            extra(),
            "request-health.yaml",
            &[
                "namespace=mesh",
                "rollout=orders",
                "pod-template-hash=1b2c3d4e5",
                "source=istio",
            ],
        ),
        &[("error-rate", "Successful"), ("latency", "Successful")],
    );
    let all = |phase| -> Vec<(&str, &str)> {
        [
            "latency-regression",
            "error-rate-regression",
            "cpu-regression",
            "memory-regression",
        ]
        .map(|m| (m, phase))
        .to_vec()
    };
    assert_phases(
        template_phases(
            extra(),
            "canary-vs-stable.yaml",
            &[
                "namespace=checkout",
                "rollout=pricing",
                "canary-hash=6e5d4c3b2",
                "stable-hash=0a9b8c7d6",
            ],
        ),
        &all("Failed"),
    );
    assert_phases(
        template_phases(
            extra(),
            "canary-vs-stable.yaml",
            &[
                "namespace=checkout",
                "rollout=cart",
                "canary-hash=5d4c3b2a1",
                "stable-hash=9c8b7a6f5",
            ],
        ),
        &all("Successful"),
    );
    assert_phases(
        template_phases(
            extra(),
            "alerts-and-gitops.yaml",
            &["namespace=calm", "application=cart"],
        ),
        &[("alerts", "Successful"), ("gitops", "Successful")],
    );
    assert_phases(
        template_phases(
            extra(),
            "alerts-and-gitops.yaml",
            &["namespace=alarmed", "application=pricing"],
        ),
        &[("alerts", "Failed"), ("gitops", "Failed")],
    );
}

#[tokio::test]
async fn evaluated_now_as_plugin_mode_does() {
    // `Engine::measure` evaluates at the current time, as the plugin's Run does.
    let engine = Engine::new(
        Client::new(),
        Some(support::prometheus::shared_extra_now().url().to_string()),
    );
    let cases: Vec<(AnalysisContext, Value, (Phase, &str))> = vec![
        (
            analysis::of(&scenarios::CHECKOUT_CART),
            json!({"guardrail": "error-rate"}),
            (Phase::Successful, ""),
        ),
        (
            analysis::of(&scenarios::CHECKOUT_PRICING),
            json!({"guardrail": "error-rate"}),
            (Phase::Failed, "threshold"),
        ),
        (
            analysis::of(&scenarios::CHECKOUT_CART),
            json!({"guardrail": "latency", "threshold": 0.3}),
            (Phase::Successful, ""),
        ),
        (
            analysis::of(&scenarios::CHECKOUT_QUIET),
            json!({"guardrail": "latency", "threshold": 0.3}),
            (Phase::Failed, "no-traffic"),
        ),
        (
            analysis::of(&scenarios::CHECKOUT_PRICING),
            regression("cpu", &scenarios::CHECKOUT_PRICING_STABLE),
            (Phase::Failed, "threshold"),
        ),
        (
            analysis::of(&scenarios::CHECKOUT_CART),
            regression("latency", &scenarios::EXTRA_DECOYS[0]),
            (Phase::Successful, ""),
        ),
        (
            AnalysisContext {
                namespace: "calm".into(),
                ..Default::default()
            },
            json!({"guardrail": "alerts"}),
            (Phase::Successful, ""),
        ),
        (
            AnalysisContext {
                namespace: "alarmed".into(),
                ..Default::default()
            },
            json!({"guardrail": "alerts"}),
            (Phase::Failed, "threshold"),
        ),
        (
            AnalysisContext::default(),
            json!({"guardrail": "gitops", "application": "cart"}),
            (Phase::Successful, ""),
        ),
        (
            AnalysisContext::default(),
            json!({"guardrail": "gitops", "kustomization": "payments"}),
            (Phase::Failed, "threshold"),
        ),
    ];
    for (ctx, config, (phase, failure)) in cases {
        let metric = analysis::metric("now", &config);
        let m = engine.measure(&ctx, &metric).await;
        assert_eq!(m.phase, phase, "{config}: {m:#?}");
        if phase == Phase::Failed {
            assert_eq!(m.metadata["failure"], failure, "{config}: {m:#?}");
        }
    }
}
