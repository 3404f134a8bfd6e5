//! `regression` with `method: mann-whitney` against a real Prometheus, beside `method: ratio` on the same
//! data: the rank-test fixture (`tests/fixtures/prometheus/regression-ranked.om`, rendered by
//! `support::scenarios::render_ranked`) holds four canaries with their stable ReplicaSets, evaluated at END
//! with a 20-minute window and one-minute steps.
use crate::support;

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use rollouts_guardrails::engine::{Engine, Measurement, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::prometheus::TestPrometheus;
use support::scenarios::{self, Scenario};

/// Prometheus on the rank-test fixture, shared by this binary's tests.
fn ranked() -> &'static TestPrometheus {
    static RANKED: OnceLock<TestPrometheus> = OnceLock::new();
    RANKED.get_or_init(|| TestPrometheus::start(&scenarios::render_ranked()))
}

/// `regression` of the p99 latency over 20 minutes, canary `canary` against `stable`, with `method`.
fn latency(stable: &Scenario, method: &str) -> Value {
    json!({
        "guardrail": "regression",
        "signal": "latency",
        "quantile": 0.99,
        "window": "20m",
        "stablePodTemplateHash": stable.hash,
        "method": method,
    })
}

async fn measure(canary: &Scenario, config: Value) -> Measurement {
    let engine = Engine::new(Client::new(), Some(ranked().url().to_string()));
    let metric = analysis::metric("latency-regression", &config);
    let at = UNIX_EPOCH + Duration::from_secs(scenarios::END as u64);
    engine
        .measure_at(&analysis::of(canary), &metric, Some(at))
        .await
}

/// Whether the store is the reference one (Debian's Prometheus 2), on which the exact numbers are pinned.
/// Other stores (`make test-engines`) differ in range boundaries and in what is "now" (VictoriaMetrics hides
/// the newest 30 s), which moves a sample in or out of a window: there the verdicts and their reasons are
/// asserted, not the digits.
fn reference_store() -> bool {
    std::env::var("GUARDRAILS_TEST_ENGINE").map_or(true, |e| e.is_empty() || e == "prometheus2")
}

/// `exact` on the reference store, `general` elsewhere.
fn pinned<'a>(exact: &[&'a str], general: &[&'a str]) -> Vec<&'a str> {
    if reference_store() {
        exact.to_vec()
    } else {
        general.to_vec()
    }
}

#[track_caller]
fn assert_verdict(m: &Measurement, phase: Phase, failure: Option<&str>, contains: &[&str]) {
    assert_eq!(m.phase, phase, "{m:#?}");
    assert_eq!(
        m.metadata.get("failure").map(String::as_str),
        failure,
        "{m:#?}"
    );
    for text in contains {
        assert!(
            m.message.contains(text),
            "message lacks {text:?}: {}",
            m.message
        );
    }
}

/// Both methods on one canary: `(ratio, mann-whitney)`.
async fn both(canary: &Scenario, stable: &Scenario) -> (Measurement, Measurement) {
    (
        measure(canary, latency(stable, "ratio")).await,
        measure(canary, latency(stable, "mann-whitney")).await,
    )
}

#[tokio::test]
async fn a_canary_one_and_a_half_times_slower_fails_with_both_methods() {
    let (ratio, ranked) = both(&scenarios::RANKED_SLOW, &scenarios::RANKED_SLOW_STABLE).await;
    assert_verdict(
        &ratio,
        Phase::Failed,
        Some("threshold"),
        &pinned(&["ratio 1.49"], &["ratio 1.4"]),
    );
    assert_verdict(
        &ranked,
        Phase::Failed,
        Some("threshold"),
        &pinned(
            &[
                "canary p99 latency median 0.445 s vs stable 0.297 s (×1.50 > 1.10), Mann-Whitney p = 3.4e-08 < 0.05 on 20 vs 20 one-minute samples: regression",
                "ReplicaSets ranked/slow-1a2b3c4d5 vs ranked/slow-5d4c3b2a1 over 20m",
            ],
            &[
                "(×1.5",
                "Mann-Whitney p = ",
                "one-minute samples: regression",
                "ReplicaSets ranked/slow-1a2b3c4d5 vs ranked/slow-5d4c3b2a1 over 20m",
            ],
        ),
    );
    let value: f64 = ranked.value.parse().unwrap();
    assert!((value - 0.445364).abs() < 1e-3, "{value}");
    // Metadata: both sample vectors, the test's outcome and the subqueries of both sides.
    let samples = |key: &str| -> Vec<f64> {
        ranked.metadata[key]
            .split(',')
            .map(|v| v.parse().expect("a number"))
            .collect()
    };
    let (canary, stable) = (samples("samples.canary"), samples("samples.stable"));
    assert_eq!((canary.len(), stable.len()), (20, 20), "{ranked:#?}");
    assert!(
        canary.iter().all(|v| (0.43..0.47).contains(v)),
        "{canary:?}"
    );
    assert!(
        stable.iter().all(|v| (0.29..0.32).contains(v)),
        "{stable:?}"
    );
    assert_eq!(ranked.metadata["mann-whitney.samples"], "20 vs 20");
    assert_eq!(
        ranked.metadata["mann-whitney.dropped"],
        "canary 0, stable 0"
    );
    assert_eq!(ranked.metadata["mann-whitney.u"], "400");
    let p: f64 = ranked.metadata["mann-whitney.p-value"].parse().unwrap();
    assert!(p > 0.0 && p < 1e-7, "{p}");
    assert!(ranked.metadata["query.samples"].ends_with(")[1199s:60s]"));
    assert!(ranked.metadata["query.stable-samples"].contains("created_by_name=\"slow-5d4c3b2a1\""));
    assert!(ranked.metadata.contains_key("query.stable-requests"));
}

#[tokio::test]
async fn two_one_minute_spikes_pass_with_mann_whitney_and_fail_with_ratio() {
    let (ratio, ranked) = both(&scenarios::RANKED_SPIKY, &scenarios::RANKED_SPIKY_STABLE).await;
    // Two spikes own the window's p99.
    assert_verdict(
        &ratio,
        Phase::Failed,
        Some("threshold"),
        &pinned(&["0.81 vs stable 0.303838: ratio 2.66"], &["ratio 2.6"]),
    );
    assert_verdict(
        &ranked,
        Phase::Successful,
        None,
        &pinned(
            &["median 0.306 s vs stable 0.297 s (×1.03 ≤ 1.10), Mann-Whitney p = 0.1 ≥ 0.05 on 20 vs 20 one-minute samples: no regression (not significant)"],
            &["≤ 1.10), Mann-Whitney p = ", "no regression (not significant)"],
        ),
    );
    // The spikes are in the samples, as the one-minute p99 of the bucket they fall into.
    let spikes = ranked.metadata["samples.canary"]
        .split(',')
        .filter(|v| v.parse::<f64>().unwrap() > 0.8)
        .count();
    assert_eq!(spikes, scenarios::RANKED_SPIKE_MINUTES.len(), "{ranked:#?}");
}

#[tokio::test]
async fn a_shift_inside_tolerance_passes_although_significant() {
    let (ratio, ranked) = both(
        &scenarios::RANKED_SHIFTED,
        &scenarios::RANKED_SHIFTED_STABLE,
    )
    .await;
    assert_verdict(&ratio, Phase::Successful, None, &["ratio 1.07"]);
    assert_verdict(
        &ranked,
        Phase::Successful,
        None,
        &[
            "(×1.08 ≤ 1.10), Mann-Whitney p = 3.4e-08 < 0.05",
            "no regression (significant, but within tolerance)",
        ],
    );
    // A tighter tolerance makes the same data a regression.
    let mut config = latency(&scenarios::RANKED_SHIFTED_STABLE, "mann-whitney");
    config["tolerance"] = json!(0.05);
    let tight = measure(&scenarios::RANKED_SHIFTED, config).await;
    assert_verdict(
        &tight,
        Phase::Failed,
        Some("threshold"),
        &["(×1.08 > 1.05)", ": regression"],
    );
}

#[tokio::test]
async fn a_canary_younger_than_the_window_is_unproven() {
    let (ratio, ranked) = both(&scenarios::RANKED_YOUNG, &scenarios::RANKED_YOUNG_STABLE).await;
    // The ratio method judges the 5 minutes there are as if they were the window.
    assert_verdict(&ratio, Phase::Successful, None, &["ratio 1.01"]);
    assert_verdict(
        &ranked,
        Phase::Failed,
        Some("no-data"),
        &pinned(
            &["canary: 5 finite one-minute samples of the p99 latency in the last 20m, fewer than minSamples 10 (unproven)"],
            &["finite one-minute samples of the p99 latency in the last 20m, fewer than minSamples 10 (unproven)"],
        ),
    );
    assert_eq!(ranked.value, "");
    if reference_store() {
        assert_eq!(ranked.metadata["mann-whitney.samples"], "5 vs 20");
    }
    // minSamples no more than what there is: judged. VictoriaMetrics hides the newest 30 s, so it sees one
    // minute fewer of the young canary (4), which stays unproven at the smallest minSamples (5).
    let mut config = latency(&scenarios::RANKED_YOUNG_STABLE, "mann-whitney");
    config["minSamples"] = json!(5);
    let judged = measure(&scenarios::RANKED_YOUNG, config).await;
    if std::env::var("GUARDRAILS_TEST_ENGINE").as_deref() == Ok("victoriametrics") {
        assert_verdict(
            &judged,
            Phase::Failed,
            Some("no-data"),
            &["fewer than minSamples 5"],
        );
    } else {
        assert_verdict(
            &judged,
            Phase::Successful,
            None,
            &["on 5 vs 20 one-minute samples"],
        );
    }
}

#[tokio::test]
async fn a_stable_hash_without_pods_or_series_is_no_proof() {
    let mut config = latency(&scenarios::RANKED_SLOW_STABLE, "mann-whitney");
    config["stablePodTemplateHash"] = json!("0f0f0f0f0");
    let m = measure(&scenarios::RANKED_SLOW, config).await;
    assert_verdict(
        &m,
        Phase::Failed,
        Some("no-data"),
        &["stable: no fresh kube-state-metrics series"],
    );
    // Another rollout's histogram name: no requests at all.
    let mut config = latency(&scenarios::RANKED_SLOW_STABLE, "mann-whitney");
    config["histogramMetric"] = json!("grpc_server_handling_seconds_bucket");
    let m = measure(&scenarios::RANKED_SLOW, config).await;
    assert_verdict(
        &m,
        Phase::Failed,
        Some("no-traffic"),
        &["canary: no request series"],
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");

/// `check --template` on the shipped rank-test example: `(metric, phase, message)` of each metric, in order.
fn template(args: &[&str]) -> Vec<(String, String, String)> {
    let path = format!(
        "{}/examples/guardrails/canary-vs-stable-ranked.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut line = vec![
        "check",
        "--prometheus",
        ranked().url(),
        "--at",
        scenarios::END_RFC3339,
        "--output",
        "json",
        "--template",
        &path,
    ];
    for arg in args {
        line.extend(["--arg", arg]);
    }
    let output = std::process::Command::new(BIN)
        .args(&line)
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .output()
        .expect("run rollouts-guardrails");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
            (text("metric"), text("phase"), text("message"))
        })
        .collect()
}

#[test]
fn the_ranked_example_template_evaluates_as_documented() {
    for (canary, stable, latency) in [
        (
            scenarios::RANKED_SLOW,
            scenarios::RANKED_SLOW_STABLE,
            "Failed",
        ),
        (
            scenarios::RANKED_SPIKY,
            scenarios::RANKED_SPIKY_STABLE,
            "Successful",
        ),
        (
            scenarios::RANKED_SHIFTED,
            scenarios::RANKED_SHIFTED_STABLE,
            "Successful",
        ),
    ] {
        let args = [
            format!("namespace={}", canary.namespace),
            format!("rollout={}", canary.rollout),
            format!("canary-hash={}", canary.hash),
            format!("stable-hash={}", stable.hash),
        ];
        let rows = template(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let phases: Vec<(&str, &str)> = rows
            .iter()
            .map(|(m, p, _)| (m.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            phases,
            [
                ("latency-regression", latency),
                ("error-rate-regression", "Successful")
            ],
            "{}: {rows:#?}",
            canary.rollout
        );
        assert!(rows[1].2.contains("Mann-Whitney p = "), "{rows:#?}");
    }
}
