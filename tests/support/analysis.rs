//! What the controller hands a measurement: the AnalysisRun of a canary step and a metric of this plugin.
use rollouts_guardrails::engine::{
    AnalysisContext, Measurement, MetricSpec, OwnerReference, Phase,
};
use serde_json::Value;

use crate::support::scenarios::Scenario;

/// The AnalysisRun a Rollout's canary step creates for ReplicaSet `namespace/rollout-hash`: named after the
/// ReplicaSet, labelled with its pod-template hash, owned by the Rollout.
pub fn run(namespace: &str, rollout: &str, hash: &str) -> AnalysisContext {
    AnalysisContext {
        namespace: namespace.into(),
        name: format!("{rollout}-{hash}-2"),
        labels: [("rollouts-pod-template-hash".to_string(), hash.to_string())].into(),
        owner_references: vec![OwnerReference {
            kind: "Rollout".into(),
            name: rollout.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// [`run`] for a fixture scenario's ReplicaSet.
pub fn of(s: &Scenario) -> AnalysisContext {
    run(s.namespace, s.rollout, s.hash)
}

/// [`run`] for the canonical canary, `shop/web-6c8d7f9a1`.
pub fn shop_web() -> AnalysisContext {
    run("shop", "web", "6c8d7f9a1")
}

/// A metric named `name` whose plugin configuration is `config` (no conditions).
pub fn metric(name: &str, config: &Value) -> MetricSpec {
    MetricSpec {
        name: name.into(),
        plugin_config: Some(config.to_string().into_bytes()),
        ..Default::default()
    }
}

/// `config` with the keys of `extra` (an object; anything else adds nothing) set over it.
pub fn with(mut config: Value, extra: Value) -> Value {
    if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    config
}

/// The measurement has `phase` and `value`, and its message says each of `contains`.
#[track_caller]
pub fn assert_phase(m: &Measurement, phase: Phase, value: &str, contains: &[&str]) {
    assert_eq!(m.phase, phase, "{m:#?}");
    assert_eq!(m.value, value, "{m:#?}");
    for text in contains {
        assert!(
            m.message.contains(text),
            "message lacks {text:?}: {}",
            m.message
        );
    }
}
