//! What the engine is asked: the AnalysisRun's context and the metric, free of any transport's types.
use std::collections::{BTreeMap, BTreeSet};

/// The plugin name under `provider.plugin` and in the `argo-rollouts-config` ConfigMap.
pub const PLUGIN_NAME: &str = "rollouts-guardrails/prometheus";

/// The parts of an AnalysisRun the engine uses to default the target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisContext {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
    /// `spec.args` with a literal value (`valueFrom` args are resolved by the controller into the config).
    pub args: BTreeMap<String, String>,
    /// Metrics of this AnalysisRun that already have a Successful measurement (`status.metricResults`). For
    /// them the data existed: its absence now is data that stopped (kube-state-metrics or the scrape went away),
    /// never "not yet", so it is answered at once and never settles (docs/failure-and-rollback.md).
    pub proven_metrics: BTreeSet<String>,
}

/// An owner reference of the AnalysisRun (the Rollout that created it, normally).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: bool,
}

/// The metric being measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSpec {
    pub name: String,
    /// The JSON the template author wrote under `provider.plugin."rollouts-guardrails/prometheus"`, with
    /// `{{args.*}}` already substituted. `None` when the metric has no entry for this plugin.
    pub plugin_config: Option<Vec<u8>>,
    /// Argo's expr-lang `successCondition` (empty when unset).
    pub success_condition: String,
    /// Argo's expr-lang `failureCondition` (empty when unset).
    pub failure_condition: String,
}
