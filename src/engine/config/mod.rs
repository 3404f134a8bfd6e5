//! The plugin configuration: the JSON a template author writes under
//! `provider.plugin."rollouts-guardrails/prometheus"`, with the metric's conditions, parsed strictly into a
//! [`Config`] whose guardrail carries its own typed settings. This parser is the only validation: the engine
//! and `validate` both call it, and everything that can be refused without asking Prometheus is refused here.
//!
//! Strict means: an unknown key is an error naming the key and the nearest valid one (a silently ignored typo
//! is how guardrails fail open), a key that the chosen guardrail does not use is an error, and every value is
//! type-checked.
use std::time::Duration;

use serde_json::{Map, Value};

use super::condition::{self, ConditionError};
use super::context::MetricSpec;
use super::duration;
use super::guardrails::{Guardrail, Scope};
use super::phase::{self, PhaseMap};
use super::promql;
use super::settle::MAX_SETTLE;

pub mod connection;
pub mod read;

pub use super::guardrails::GuardrailKind;
pub use connection::{BasicAuth, Connection, ManagedAuth, PasswordSource, TlsSettings};
use read::Keys;

/// Environment variable a cluster admin sets once on the controller instead of `address` in every template.
pub const ADDRESS_ENV: &str = "GUARDRAILS_PROMETHEUS_ADDRESS";

/// Default bound on a whole measurement, every query included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a measurement may be allowed to take (a guard against `timeout: 1000h` typos).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a configuration was refused. Messages never contain credential values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the plugin configuration is not valid JSON: {0}")]
    Json(String),
    #[error("the plugin configuration must be a JSON object")]
    NotAnObject,
    #[error("unknown key `{key}`{}", suggestion(.nearest))]
    UnknownKey {
        key: String,
        nearest: Option<String>,
    },
    #[error("key `{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("missing key `{0}`")]
    Missing(&'static str),
    #[error("key `{key}` is not used by guardrail `{guardrail}`")]
    NotApplicable {
        key: String,
        guardrail: &'static str,
    },
    /// `successCondition`/`failureCondition` on a guardrail judged by its threshold.
    #[error("{which} is not used by guardrail `{guardrail}`: it is judged by `threshold` (conditions apply to guardrail `query`)")]
    ConditionNotUsed {
        which: &'static str,
        guardrail: &'static str,
    },
    #[error(transparent)]
    Condition(#[from] ConditionError),
    /// A target name (`namespace`, `rollout`, `podTemplateHash`) Kubernetes would refuse.
    #[error(transparent)]
    Name(#[from] promql::NameError),
    /// `query` with nothing to judge its result by.
    #[error("the query guardrail needs a threshold, a successCondition or a failureCondition")]
    NothingToJudge,
    /// A name or value that cannot be put into a query, found by planning for a placeholder target.
    #[error("{0}")]
    Plan(String),
    #[error("no Prometheus address: set `address` in the plugin configuration or {ADDRESS_ENV} on the controller")]
    NoAddress,
}

fn suggestion(nearest: &Option<String>) -> String {
    match nearest {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    }
}

/// `default`, or `prod`: the conservative variant (longer windows, zero tolerance, tighter staleness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Default,
    Prod,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Prod => "prod",
        }
    }

    /// The default when `default` and `prod` differ.
    pub fn pick<T>(self, default: T, prod: T) -> T {
        match self {
            Profile::Default => default,
            Profile::Prod => prod,
        }
    }
}

/// The metric's expr-lang conditions (empty when unset); only `query` uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub success: String,
    pub failure: String,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.success.trim().is_empty() && self.failure.trim().is_empty()
    }
}

/// The target parts the configuration names; missing ones come from the AnalysisRun.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetKeys {
    pub namespace: Option<String>,
    pub rollout: Option<String>,
    pub pod_template_hash: Option<String>,
}

impl TargetKeys {
    /// Each name present is checked as Kubernetes would (it also reaches PromQL escaped, never raw).
    fn parse(keys: &Keys) -> Result<TargetKeys, ConfigError> {
        let name = |key, check: fn(&str) -> Result<(), promql::NameError>| {
            keys.text(key)?
                .map(|value| check(&value).map(|()| value))
                .transpose()
                .map_err(ConfigError::from)
        };
        Ok(TargetKeys {
            namespace: name("namespace", promql::validate_namespace)?,
            rollout: name("rollout", promql::validate_rollout)?,
            pod_template_hash: name("podTemplateHash", promql::validate_pod_template_hash)?,
        })
    }
}

/// What every guardrail runs with, profile defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// The bound on the whole measurement, every query included (`None`: the controller's `--timeout`,
    /// else [`DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// Data older than this is no proof.
    pub staleness: Duration,
    /// Coverage needs at least this many fresh pods (pod guardrails).
    pub min_pods: u64,
    /// How long absence so far (no series yet, a pod not Ready yet) may settle; `None`: the controller-wide
    /// default. The engine replaces it with the effective value before judging.
    pub settle: Option<Duration>,
    /// `unprovenPhase`: the phase an unproven failure class reports instead of `Failed`.
    pub unproven_phase: PhaseMap,
    /// `matchers`: the source (cluster, tenant) to read, on every series; added to the controller's.
    pub matchers: promql::Matchers,
    /// `overrideControllerMatchers`: labels of the controller's `--matcher` this template replaces explicitly
    /// (without it, a template matcher on the same label with another value is refused).
    pub override_matchers: Vec<String>,
    /// `replicaLabels`: labels that tell replicas of the same exporter or store apart (`None`: the
    /// controller's `--replica-label`, else [`DEFAULT_REPLICA_LABELS`]).
    pub replica_labels: Option<Vec<String>>,
}

impl Common {
    /// `replicaLabels` as set (the engine sets the effective list before judging), else the default list.
    pub fn replica_labels_or_default(&self) -> Vec<String> {
        self.replica_labels
            .clone()
            .unwrap_or_else(default_replica_labels)
    }
}

/// [`DEFAULT_REPLICA_LABELS`] as owned names.
pub fn default_replica_labels() -> Vec<String> {
    DEFAULT_REPLICA_LABELS
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Labels that distinguish replicas of one exporter or store (HA pairs, sharded scrapes): series that differ
/// only in these report the same pod.
pub const DEFAULT_REPLICA_LABELS: &[&str] = &[
    "instance",
    "replica",
    "prometheus_replica",
    "__replica__",
    "kubernetes_pod_name",
];

/// A parsed configuration: the guardrail with its typed settings, and what every guardrail shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub guardrail: GuardrailKind,
    /// The guardrail's own settings, defaults of the profile applied.
    pub settings: Guardrail,
    pub profile: Profile,
    pub target: TargetKeys,
    pub common: Common,
    pub connection: Connection,
}

/// The common keys that select a source (not used by `query`, whose PromQL is taken as written).
const SOURCE_KEYS: &[&str] = &["matchers", "overrideControllerMatchers", "replicaLabels"];

/// The keys every guardrail accepts (`query` aside for [`SOURCE_KEYS`]).
const COMMON_KEYS: &[&str] = &[
    "guardrail",
    "profile",
    "timeout",
    "staleness",
    "settle",
    phase::KEY,
    "matchers",
    "overrideControllerMatchers",
    "replicaLabels",
];

impl Config {
    /// Parses the raw JSON bytes of the plugin entry alone (the metric's conditions taken as unset, so a
    /// `query` without a threshold is not refused here: [`Config::from_metric`] knows the conditions).
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::parse(&object(bytes)?, None)
    }

    /// Parses an already-decoded plugin entry (conditions as in [`Config::from_json`]).
    pub fn from_map(map: &Map<String, Value>) -> Result<Config, ConfigError> {
        Config::parse(map, None)
    }

    /// Parses the plugin entry of `metric` with its conditions: what a measurement and `validate` call.
    /// `Ok(None)` when the metric has no entry for this plugin.
    pub fn from_metric(metric: &MetricSpec) -> Result<Option<Config>, ConfigError> {
        let Some(raw) = metric.plugin_config.as_deref() else {
            return Ok(None);
        };
        let conditions = Conditions {
            success: metric.success_condition.clone(),
            failure: metric.failure_condition.clone(),
        };
        Config::parse(&object(raw)?, Some(&conditions)).map(Some)
    }

    /// The one parser. `conditions` is `None` when they are not known (the plugin entry alone).
    pub fn parse(
        map: &Map<String, Value>,
        conditions: Option<&Conditions>,
    ) -> Result<Config, ConfigError> {
        let keys = Keys::new(map);
        keys.only(&GuardrailKind::all_keys())?;
        let name = keys
            .string("guardrail")?
            .ok_or(ConfigError::Missing("guardrail"))?;
        let guardrail = GuardrailKind::parse(&name).ok_or_else(|| {
            keys.invalid(
                "guardrail",
                &format!(
                    "unknown guardrail `{name}`{}; expected one of {}",
                    match read::nearest(&name, GuardrailKind::ALL.iter().map(|g| g.name())) {
                        Some(near) => format!(" (did you mean `{near}`?)"),
                        None => String::new(),
                    },
                    GuardrailKind::ALL
                        .map(|g| format!("`{}`", g.name()))
                        .join(", ")
                ),
            )
        })?;
        if let Some(key) = keys.present().find(|k| !guardrail.uses(k)) {
            return Err(ConfigError::NotApplicable {
                key: key.clone(),
                guardrail: guardrail.name(),
            });
        }
        let profile = match keys.string("profile")?.as_deref() {
            None | Some("default") => Profile::Default,
            Some("prod") => Profile::Prod,
            Some(other) => {
                return Err(keys.invalid(
                    "profile",
                    &format!("unknown profile `{other}`; expected `default` or `prod`"),
                ))
            }
        };
        let common = common(&keys, profile)?;
        let unused = Conditions::default();
        let settings = Guardrail::parse(guardrail, &keys, profile, conditions.unwrap_or(&unused))?;
        if let Some(conditions) = conditions {
            settings.check_conditions(conditions)?;
        }
        Ok(Config {
            guardrail,
            settings,
            profile,
            target: TargetKeys::parse(&keys)?,
            common,
            connection: Connection::parse(&keys)?,
        })
    }
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))? {
        Value::Object(map) => Ok(map),
        _ => Err(ConfigError::NotAnObject),
    }
}

fn common(keys: &Keys, profile: Profile) -> Result<Common, ConfigError> {
    let timeout = keys.duration("timeout")?;
    if timeout.is_some_and(|t| t.is_zero() || t > MAX_TIMEOUT) {
        return Err(keys.invalid(
            "timeout",
            &format!("must be between 1ms and {}", duration::format(MAX_TIMEOUT)),
        ));
    }
    let staleness = keys.duration("staleness")?;
    if staleness.is_some_and(|s| s.is_zero()) {
        return Err(keys.invalid("staleness", "must be greater than 0"));
    }
    let min_pods = keys.count("minPods", 100_000.0, "must be a whole number of at least 1")?;
    let settle = keys.duration("settle")?;
    if settle.is_some_and(|s| s > MAX_SETTLE) {
        return Err(keys.invalid(
            "settle",
            &format!("must be at most {}", duration::format(MAX_SETTLE)),
        ));
    }
    Ok(Common {
        timeout,
        staleness: staleness.unwrap_or(Duration::from_secs(profile.pick(300, 120))),
        min_pods: min_pods.unwrap_or(1),
        settle,
        unproven_phase: PhaseMap::parse(keys.raw(phase::KEY).unwrap_or(&Value::Null))?,
        matchers: keys.matchers("matchers")?,
        override_matchers: label_list(keys, "overrideControllerMatchers")?.unwrap_or_default(),
        replica_labels: label_list(keys, "replicaLabels")?,
    })
}

/// A list of label names (`None` when unset).
fn label_list(keys: &Keys, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    if !keys.is_set(key) {
        return Ok(None);
    }
    let labels = keys.string_list(key, "a list of label names")?;
    for label in &labels {
        promql::validate_label_name(label).map_err(|e| keys.invalid(key, &e.to_string()))?;
    }
    Ok(Some(labels))
}

/// `threshold`: not negative; `default` when unset.
pub fn threshold(keys: &Keys, default: f64) -> Result<f64, ConfigError> {
    Ok(optional_threshold(keys)?.unwrap_or(default))
}

/// `threshold` where a guardrail has no default (`latency`: the objective is the service's own).
pub fn required_threshold(keys: &Keys) -> Result<f64, ConfigError> {
    optional_threshold(keys)?.ok_or(ConfigError::Missing("threshold"))
}

pub fn optional_threshold(keys: &Keys) -> Result<Option<f64>, ConfigError> {
    keys.number_where("threshold", |t| t >= 0.0, "must not be negative")
}

/// `window`: at least 1s; `default` when unset.
pub fn window(keys: &Keys, default: Duration) -> Result<Duration, ConfigError> {
    let window = keys.duration("window")?;
    if window.is_some_and(|w| w < Duration::from_secs(1)) {
        return Err(keys.invalid("window", "must be at least 1s"));
    }
    Ok(window.unwrap_or(default))
}

/// The profile's window of the guardrails that look back: 5m, or 10m in `prod`.
pub fn default_window(profile: Profile) -> Duration {
    Duration::from_secs(profile.pick(300, 600))
}

/// Checks both conditions compile (for `query`).
pub fn validate_conditions(conditions: &Conditions) -> Result<(), ConfigError> {
    condition::validate("successCondition", &conditions.success)?;
    condition::validate("failureCondition", &conditions.failure)?;
    Ok(())
}

/// Refuses conditions on a guardrail judged by its threshold.
pub fn refuse_conditions(kind: GuardrailKind, conditions: &Conditions) -> Result<(), ConfigError> {
    for (which, text) in [
        ("successCondition", &conditions.success),
        ("failureCondition", &conditions.failure),
    ] {
        if !text.trim().is_empty() {
            return Err(ConfigError::ConditionNotUsed {
                which,
                guardrail: kind.name(),
            });
        }
    }
    Ok(())
}

impl Scope {
    /// The target keys a guardrail of this scope accepts.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Scope::ReplicaSet => &["namespace", "rollout", "podTemplateHash", "minPods"],
            Scope::ReplicaSetObject => &["namespace", "rollout", "podTemplateHash"],
            Scope::Namespace => &["namespace"],
            Scope::Global => &[],
        }
    }
}

impl GuardrailKind {
    /// Whether a configuration of this guardrail may set `key`.
    pub fn uses(self, key: &str) -> bool {
        // `query` runs its PromQL as written: its author writes the source's label matchers into it.
        if self == GuardrailKind::Query && SOURCE_KEYS.contains(&key) {
            return false;
        }
        COMMON_KEYS.contains(&key)
            || connection::KEYS.contains(&key)
            || self.scope().keys().contains(&key)
            || self.keys().contains(&key)
    }

    /// Every key some guardrail accepts (what an unknown key is compared with).
    pub fn all_keys() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = COMMON_KEYS.to_vec();
        for kind in GuardrailKind::ALL {
            for key in kind.scope().keys().iter().chain(&kind.keys()) {
                if !all.contains(key) {
                    all.push(key);
                }
            }
        }
        all.extend(connection::KEYS);
        all
    }
}

#[cfg(test)]
mod tests;
