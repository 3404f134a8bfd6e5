//! The request, alert, regression and gitops guardrails through plugin mode: argo-rollouts' own plugin client
//! (go-plugin net/rpc, `tests/hostile/cmd/pluginrun`) drives the binary, which evaluates "now" against the
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
