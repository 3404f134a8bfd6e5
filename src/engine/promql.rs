//! PromQL the guardrails send, and the only door through which configuration values reach it.
//!
//! Target values are validated as Kubernetes names *and* escaped as PromQL strings, so a namespace such as
//! `shop"} or vector(1) #` is refused before any query is built, and even a value that slipped past
//! validation could not leave its string literal.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::duration::promql_range;

/// Why a target value cannot be used in a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not a valid Kubernetes name: {why}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// A PromQL string literal holding `value` exactly: `"…"` with `\`, `"` and control characters escaped.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why a metric name, label name or selector part cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not valid: {why}")]
pub struct SelectorError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// The longest metric name, label name or label value accepted from configuration.
pub const MAX_SELECTOR_PART: usize = 256;

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn validate_metric_name(what: &'static str, value: &str) -> Result<(), SelectorError> {
    let error = |why| SelectorError {
        what,
        value: value.to_string(),
        why,
    };
    let mut bytes = value.bytes();
    match bytes.next() {
        None => return Err(error("it is empty")),
        Some(b) if !(b.is_ascii_alphabetic() || b == b'_' || b == b':') => {
            return Err(error("it must start with a letter, `_` or `:`"))
        }
        Some(_) => {}
    }
    if value.len() > MAX_SELECTOR_PART {
        return Err(error("it is too long"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        return Err(error("only letters, digits, `_` and `:` are allowed"));
    }
    Ok(())
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not one of Prometheus' reserved `__…` names.
pub fn validate_label_name(value: &str) -> Result<(), SelectorError> {
    let error = |why| SelectorError {
        what: "label name",
        value: value.to_string(),
        why,
    };
    let mut bytes = value.bytes();
    match bytes.next() {
        None => return Err(error("it is empty")),
        Some(b) if !(b.is_ascii_alphabetic() || b == b'_') => {
            return Err(error("it must start with a letter or `_`"))
        }
        Some(_) => {}
    }
    if value.len() > MAX_SELECTOR_PART {
        return Err(error("it is too long"));
    }
    if value.starts_with("__") {
        return Err(error("names starting with `__` are reserved"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(error("only letters, digits and `_` are allowed"));
    }
    Ok(())
}

/// One series selector `metric{label="value",label=~"regex",label!=""}` built only from validated names
/// and escaped values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    metric: String,
    matchers: Vec<String>,
}

impl Selector {
    pub fn new(what: &'static str, metric: &str) -> Result<Selector, SelectorError> {
        validate_metric_name(what, metric)?;
        Ok(Selector {
            metric: metric.to_string(),
            matchers: Vec::new(),
        })
    }

    fn push(mut self, label: &str, op: &str, value: &str) -> Result<Selector, SelectorError> {
        validate_label_name(label)?;
        validate_label_value(value)?;
        self.matchers
            .push(format!("{label}{op}{}", string_literal(value)));
        Ok(self)
    }

    /// `label="value"`.
    pub fn equal(self, label: &str, value: &str) -> Result<Selector, SelectorError> {
        self.push(label, "=", value)
    }

    /// `label=~"regex"` (an anchored RE2 regular expression; Prometheus refuses an invalid one).
    pub fn regex(self, label: &str, regex: &str) -> Result<Selector, SelectorError> {
        self.push(label, "=~", regex)
    }

    /// `label!=""`: only series that carry the label.
    pub fn has(self, label: &str) -> Result<Selector, SelectorError> {
        self.push(label, "!=", "")
    }

    pub fn render(&self) -> String {
        format!("{}{{{}}}", self.metric, self.matchers.join(","))
    }
}

/// A label value short enough to put into a selector (values are escaped, never otherwise restricted).
fn validate_label_value(value: &str) -> Result<(), SelectorError> {
    if value.len() > MAX_SELECTOR_PART {
        return Err(SelectorError {
            what: "label value",
            value: value.chars().take(40).collect(),
            why: "it is too long",
        });
    }
    Ok(())
}

/// Exact label matchers that select one source (a cluster, a tenant) in a store holding several: applied to
/// every series a guardrail reads. Label names are validated when parsed; values are escaped when rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(BTreeMap<String, String>);

impl Matchers {
    /// Validates every label name (values may be anything: they are escaped).
    pub fn new(pairs: BTreeMap<String, String>) -> Result<Matchers, SelectorError> {
        for (label, value) in &pairs {
            validate_label_name(label)?;
            validate_label_value(value)?;
        }
        Ok(Matchers(pairs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn get(&self, label: &str) -> Option<&str> {
        self.0.get(label).map(String::as_str)
    }

    /// `self` with `other`'s matchers added (`other` wins on the same label).
    pub fn merged(&self, other: &Matchers) -> Matchers {
        let mut all = self.0.clone();
        all.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Matchers(all)
    }

    /// The selector with every matcher added.
    pub fn apply(&self, mut selector: Selector) -> Result<Selector, SelectorError> {
        for (label, value) in &self.0 {
            selector = selector.equal(label, value)?;
        }
        Ok(selector)
    }

    /// `,label="value"…` to append inside a selector's braces (empty without matchers).
    pub fn extra(&self) -> String {
        self.0
            .iter()
            .map(|(label, value)| format!(",{label}={}", string_literal(value)))
            .collect()
    }

    /// `label=value, …` for messages and metadata.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(label, value)| format!("{label}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A namespace: an RFC 1123 label (lowercase alphanumerics and `-`, at most 63, alphanumeric at both ends).
pub fn validate_namespace(value: &str) -> Result<(), NameError> {
    check_label("namespace", value, 63)
}

/// A Rollout name: an RFC 1123 subdomain (labels of lowercase alphanumerics and `-`, joined by `.`, ≤ 253).
pub fn validate_rollout(value: &str) -> Result<(), NameError> {
    let error = |why| NameError {
        what: "rollout",
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(error("it is empty"));
    }
    if value.len() > 253 {
        return Err(error("it is longer than 253 characters"));
    }
    for part in value.split('.') {
        check_label("rollout", part, 63).map_err(|e| error(e.why))?;
    }
    Ok(())
}

/// A pod-template hash: lowercase alphanumerics only (Argo derives it with a safe alphabet), at most 63.
pub fn validate_pod_template_hash(value: &str) -> Result<(), NameError> {
    let error = |why| NameError {
        what: "podTemplateHash",
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(error("it is empty"));
    }
    if value.len() > 63 {
        return Err(error("it is longer than 63 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(error("only lowercase letters and digits are allowed"));
    }
    Ok(())
}

fn check_label(what: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    let error = |why| NameError {
        what,
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(error("it is empty"));
    }
    if value.len() > max {
        return Err(error("it is longer than 63 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(error("only lowercase letters, digits and `-` are allowed"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(error("it must start and end with a letter or digit"));
    }
    Ok(())
}

// Lowercase alphanumerics so every selector built from them validates; swapped for readable markers when
// shown. These queries are shown, never sent.
pub const PLACEHOLDER_NAMESPACE: &str = "ph0namespace";
pub const PLACEHOLDER_ROLLOUT: &str = "ph0rollout";
pub const PLACEHOLDER_HASH: &str = "ph0hash";

/// The pods a guardrail judges: those of ReplicaSet `<rollout>-<podTemplateHash>` in one namespace.
/// Construct it only through [`TargetSelector::new`], which validates every part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSelector {
    namespace: String,
    rollout: String,
    replica_set: String,
    /// The source's matchers, on every series this target's queries read.
    matchers: Matchers,
}

impl TargetSelector {
    pub fn new(namespace: &str, rollout: &str, pod_template_hash: &str) -> Result<Self, NameError> {
        validate_namespace(namespace)?;
        validate_rollout(rollout)?;
        validate_pod_template_hash(pod_template_hash)?;
        let replica_set = format!("{rollout}-{pod_template_hash}");
        if replica_set.len() > 253 {
            return Err(NameError {
                what: "ReplicaSet",
                value: replica_set,
                why: "it is longer than 253 characters",
            });
        }
        Ok(TargetSelector {
            namespace: namespace.to_string(),
            rollout: rollout.to_string(),
            replica_set,
            matchers: Matchers::default(),
        })
    }

    /// A valid target of placeholder names: what a plan is built for before the AnalysisRun is known (to
    /// check a configuration, and to show its queries with `<namespace>`-style markers, see
    /// [`TargetSelector::show`]).
    pub fn placeholder() -> TargetSelector {
        TargetSelector {
            namespace: PLACEHOLDER_NAMESPACE.to_string(),
            rollout: PLACEHOLDER_ROLLOUT.to_string(),
            replica_set: format!("{PLACEHOLDER_ROLLOUT}-{PLACEHOLDER_HASH}"),
            matchers: Matchers::default(),
        }
    }

    /// A query built for [`TargetSelector::placeholder`] with its markers made readable.
    pub fn show(query: &str) -> String {
        query
            .replace(PLACEHOLDER_NAMESPACE, "<namespace>")
            .replace(PLACEHOLDER_ROLLOUT, "<rollout>")
            .replace(PLACEHOLDER_HASH, "<podTemplateHash>")
    }

    /// The same rollout's ReplicaSet with another pod-template hash (the stable side of a comparison).
    pub fn with_hash(&self, pod_template_hash: &str) -> Result<TargetSelector, NameError> {
        Ok(
            TargetSelector::new(&self.namespace, &self.rollout, pod_template_hash)?
                .with_matchers(self.matchers.clone()),
        )
    }

    /// The same target read from the source `matchers` select.
    pub fn with_matchers(self, matchers: Matchers) -> TargetSelector {
        TargetSelector { matchers, ..self }
    }

    pub fn matchers(&self) -> &Matchers {
        &self.matchers
    }

    /// `namespace="…"` and the source's matchers: the inside of every selector of the target.
    fn scope(&self) -> String {
        format!(
            "namespace={}{}",
            string_literal(&self.namespace),
            self.matchers.extra()
        )
    }

    /// [`scope`](Self::scope) narrowed to the names the target's pods have: the ReplicaSet controller names a
    /// pod `<generateName><5 random characters>`, `generateName` being `<replicaset>-` cut to 58 characters
    /// (Kubernetes' `SimpleNameGenerator`). Prometheus then reads the target's series instead of the whole
    /// namespace's (`make bench`, "Prometheus-side cost"). Only for series every covered pod must have (the
    /// judge proves each answer covers every pod, `Coverage::require_all`, or treats a missing pod as failing):
    /// a pod the ReplicaSet adopted under another name is then a missing pod, never a silent pass. Ownership is
    /// still proven exactly by the join with [`pods`](Self::pods).
    fn pod_scope(&self) -> String {
        let prefix: String = format!("{}-", self.replica_set).chars().take(58).collect();
        // Names are DNS labels and subdomains: `.` is the only regex metacharacter they can hold.
        let regex = format!("{}.+", prefix.replace('.', "\\."));
        format!("{},pod=~{}", self.scope(), string_literal(&regex))
    }

    /// CPU cores used per target pod over `window` (cAdvisor, every container, the pause container excluded).
    pub fn cpu_per_pod(&self, window: Duration) -> String {
        format!(
            "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{{},container!=\"\",container!=\"POD\"}}[{}])) and on(namespace, pod) {}",
            self.pod_scope(),
            promql_range(window),
            self.pods()
        )
    }

    /// Working-set bytes per target pod, averaged over `window` (cAdvisor).
    pub fn memory_per_pod(&self, window: Duration) -> String {
        format!(
            "sum by (namespace, pod) (avg_over_time(container_memory_working_set_bytes{{{},container!=\"\",container!=\"POD\"}}[{}])) and on(namespace, pod) {}",
            self.pod_scope(),
            promql_range(window),
            self.pods()
        )
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn replica_set(&self) -> &str {
        &self.replica_set
    }

    /// `namespace/replicaset`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.replica_set)
    }

    /// `(expression) and on(namespace, pod) <the target pods>`: keeps the series of the target pods only.
    pub fn restrict(&self, expression: &str) -> String {
        format!("({expression}) and on(namespace, pod) {}", self.pods())
    }

    /// The target pods as kube-state-metrics describes them: exact ReplicaSet ownership, never a prefix.
    fn pods(&self) -> String {
        format!(
            "kube_pod_info{{{},created_by_kind=\"ReplicaSet\",created_by_name={}}}",
            self.scope(),
            string_literal(&self.replica_set)
        )
    }

    /// `metric{namespace="…"[,extra]}` restricted to the target's pods.
    fn of_pods(&self, metric: &str, extra: &str) -> String {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(",{extra}")
        };
        format!(
            "{metric}{{{}{extra}}} and on(namespace, pod) {}",
            self.pod_scope(),
            self.pods()
        )
    }

    /// One sample per target pod whose value is the time kube-state-metrics last reported it.
    pub fn coverage(&self) -> String {
        format!("timestamp({})", self.pods())
    }

    /// Highest restart count per container within `window`.
    pub fn restarts_max(&self, window: Duration) -> String {
        self.restarts_over("max_over_time", window)
    }

    /// Restart count per container at the window's start: its last sample at or before `now - window`, or, for a
    /// series younger than that, its lowest count within `window`. Not `min_over_time(…[window])` alone: a range
    /// excludes a sample exactly at its start on Prometheus 3, Thanos and VictoriaMetrics (and on every store a
    /// scrape need not fall there), so a restart between the last sample before the window and the first inside it
    /// went uncounted (docs/prometheus-compatibility.md).
    pub fn restarts_min(&self, window: Duration) -> String {
        format!(
            "(kube_pod_container_status_restarts_total{{{scope}}} offset {range} or min_over_time(kube_pod_container_status_restarts_total{{{scope}}}[{range}])) and on(namespace, pod) {pods}",
            scope = self.pod_scope(),
            range = promql_range(window),
            pods = self.pods()
        )
    }

    fn restarts_over(&self, function: &str, window: Duration) -> String {
        format!(
            "{function}(kube_pod_container_status_restarts_total{{{}}}[{}]) and on(namespace, pod) {}",
            self.pod_scope(),
            promql_range(window),
            self.pods()
        )
    }

    /// Creation time (unix seconds) of each target pod.
    pub fn created(&self) -> String {
        self.of_pods("kube_pod_created", "")
    }

    /// 1 for a target pod whose Ready condition is true, 0 otherwise.
    pub fn ready(&self) -> String {
        self.of_pods("kube_pod_status_ready", "condition=\"true\"")
    }

    /// The containers of the target pods that are waiting right now, with their reason.
    pub fn waiting(&self) -> String {
        format!(
            "(kube_pod_container_status_waiting_reason{{{}}} == 1) and on(namespace, pod) {}",
            self.scope(),
            self.pods()
        )
    }

    /// The containers kube-state-metrics reports for the target pods.
    pub fn containers(&self) -> String {
        self.of_pods("kube_pod_container_info", "")
    }

    /// Containers of the target pods whose last termination was `OOMKilled` at any moment of `window`.
    pub fn oom_killed(&self, window: Duration) -> String {
        format!(
            "max_over_time(kube_pod_container_status_last_terminated_reason{{{},reason=\"OOMKilled\"}}[{}]) and on(namespace, pod) {}",
            self.scope(),
            promql_range(window),
            self.pods()
        )
    }

    /// Every container and init container of the target pods with its image as specified.
    pub fn container_images(&self) -> String {
        let scope = self.pod_scope();
        format!(
            "(kube_pod_container_info{{{scope}}} or kube_pod_init_container_info{{{scope}}}) and on(namespace, pod) {}",
            self.pods()
        )
    }
}

#[cfg(test)]
mod tests;
