//! The request, alert, regression and gitops guardrails through plugin mode: argo-rollouts' own plugin client
//! (go-plugin net/rpc, `tests/go/hostile/cmd/pluginrun`) drives the binary, which evaluates "now" against the
//! extra fixture shifted to end now. (restarts, not-ready, latest-image, waiting-reasons and oom-killed go
//! through the Go conformance harness.)
use crate::support;

use crate::support::faces;

use serde_json::{json, Value};
use support::scenarios::{self, Scenario};

fn target(s: &Scenario, config: Value) -> Value {
    let mut config = config;
    let object = config.as_object_mut().expect("a JSON object");
    object.insert("namespace".into(), s.namespace.into());
    object.insert("rollout".into(), s.rollout.into());
    object.insert("podTemplateHash".into(), s.hash.into());
    config
}

#[test]
fn every_request_alert_regression_and_gitops_guardrail_through_the_real_controller_client() {
    let address = support::prometheus::shared_extra_now().url().to_string();
    let regression = |signal: &str, stable: &Scenario| json!({"guardrail": "regression", "signal": signal, "stablePodTemplateHash": stable.hash});
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            target(
                &scenarios::CHECKOUT_CART,
                json!({"guardrail": "error-rate"}),
            ),
            "Successful",
            "",
        ),
        (
            target(
                &scenarios::CHECKOUT_PRICING,
                json!({"guardrail": "error-rate"}),
            ),
            "Failed",
            "threshold",
        ),
        (
            target(
                &scenarios::CHECKOUT_QUIET,
                json!({"guardrail": "error-rate"}),
            ),
            "Failed",
            "",
        ),
        (
            target(
                &scenarios::CHECKOUT_CART,
                json!({"guardrail": "latency", "threshold": 0.3}),
            ),
            "Successful",
            "",
        ),
        (
            target(
                &scenarios::CHECKOUT_PRICING,
                json!({"guardrail": "latency", "threshold": 0.3}),
            ),
            "Failed",
            "threshold",
        ),
        (
            target(
                &scenarios::CHECKOUT_QUIET,
                json!({"guardrail": "latency", "threshold": 0.3}),
            ),
            "Failed",
            "no-traffic",
        ),
        (
            target(
                &scenarios::CHECKOUT_PRICING,
                regression("cpu", &scenarios::CHECKOUT_PRICING_STABLE),
            ),
            "Failed",
            "threshold",
        ),
        (
            target(
                &scenarios::CHECKOUT_CART,
                regression("latency", &scenarios::EXTRA_DECOYS[0]),
            ),
            "Successful",
            "",
        ),
        (
            json!({"guardrail": "alerts", "namespace": "calm"}),
            "Successful",
            "",
        ),
        (
            json!({"guardrail": "alerts", "namespace": "alarmed"}),
            "Failed",
            "threshold",
        ),
        (
            json!({"guardrail": "gitops", "application": "cart"}),
            "Successful",
            "",
        ),
        (
            json!({"guardrail": "gitops", "kustomization": "payments"}),
            "Failed",
            "threshold",
        ),
        (
            json!({"guardrail": "gitops", "application": "nowhere"}),
            "Failed",
            "no-data",
        ),
    ];
    let configs: Vec<Value> = cases
        .iter()
        .map(|(config, _, _)| {
            let mut c = config.clone();
            c["address"] = Value::from(address.clone());
            c
        })
        .collect();
    let session =
        // The targets live in other namespaces than the AnalysisRun's: the admin's registration allows it.
        faces::plugin_mode_with_args(&configs, &[], &["--allow-cross-namespace"])
            .expect("plugin mode through argo-rollouts' client");
    assert_eq!(session.replies.len(), cases.len(), "{}", session.logs);
    for ((config, phase, failure), reply) in cases.iter().zip(&session.replies) {
        assert_eq!(reply.phase, *phase, "{config}: {reply:#?}");
        assert!(
            !reply.message.is_empty(),
            "{config}: every verdict says why"
        );
        if !failure.is_empty() {
            assert_eq!(
                reply.metadata.get("failure").map(String::as_str),
                Some(*failure),
                "{config}: {reply:#?}"
            );
        }
    }
}

/// `regression` with `method: mann-whitney` through plugin mode, on the rank-test fixture shifted to end now:
/// a canary 1.5× slower fails, one 5 % slower (significant, inside the tolerance) passes, one 5 minutes old in
/// a 20-minute window is unproven.
#[test]
fn the_rank_test_regression_through_the_real_controller_client() {
    let prometheus = support::prometheus::TestPrometheus::start_ending_at(
        &scenarios::render_ranked(),
        support::prometheus::unix_now(),
    );
    let ranked = |canary: &Scenario, stable: &Scenario| {
        let mut config = target(
            canary,
            json!({"guardrail": "regression", "signal": "latency", "quantile": 0.99, "window": "20m",
                   "method": "mann-whitney", "stablePodTemplateHash": stable.hash}),
        );
        config["address"] = Value::from(prometheus.url());
        config
    };
    let cases = [
        (
            ranked(&scenarios::RANKED_SLOW, &scenarios::RANKED_SLOW_STABLE),
            "Failed",
            Some("threshold"),
        ),
        (
            ranked(
                &scenarios::RANKED_SHIFTED,
                &scenarios::RANKED_SHIFTED_STABLE,
            ),
            "Successful",
            None,
        ),
        (
            ranked(&scenarios::RANKED_YOUNG, &scenarios::RANKED_YOUNG_STABLE),
            "Failed",
            Some("no-data"),
        ),
    ];
    let configs: Vec<Value> = cases.iter().map(|(c, _, _)| c.clone()).collect();
    let session = faces::plugin_mode_with_args(&configs, &[], &["--allow-cross-namespace"])
        .expect("plugin mode through argo-rollouts' client");
    assert_eq!(session.replies.len(), cases.len(), "{}", session.logs);
    for ((config, phase, failure), reply) in cases.iter().zip(&session.replies) {
        assert_eq!(reply.phase, *phase, "{config}: {reply:#?}");
        assert_eq!(
            reply.metadata.get("failure").map(String::as_str),
            *failure,
            "{config}: {reply:#?}"
        );
        assert!(
            reply.message.contains("Mann-Whitney") || failure == &Some("no-data"),
            "{reply:#?}"
        );
        assert!(reply.metadata.contains_key("samples.stable"), "{reply:#?}");
    }
}
