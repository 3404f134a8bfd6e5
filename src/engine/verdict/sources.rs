//! Whether the series of one answer come from one source: a store holding many clusters reports the same
//! target once per cluster, and those are never merged into one verdict.
use std::collections::BTreeMap;

use super::{Failure, FailureClass};
use crate::engine::promql::TargetSelector;
use crate::prometheus::Sample;

/// The labels kube-state-metrics itself puts on `kube_pod_info` (describing the pod, not the source).
const POD_INFO_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "uid",
    "host_ip",
    "pod_ip",
    "node",
    "created_by_kind",
    "created_by_name",
    "priority_class",
    "host_network",
];

/// Two samples of one answer that come from different sources: their labels differ in something other than
/// `ignored` (what the exporter says about the object) and the `replica_labels` that tell replicas of one
/// exporter or store apart (a `cluster` external label, two Prometheus jobs, …). Returns the two samples and
/// the first label in which they differ, shown as `label=value` (or `no label`).
pub(super) fn two_sources<'a>(
    samples: &'a [Sample],
    ignored: &[&str],
    replica_labels: &[String],
) -> Option<(&'a Sample, &'a Sample, String, String)> {
    let source = |s: &Sample| -> BTreeMap<String, String> {
        s.labels
            .iter()
            .filter(|(k, _)| {
                !ignored.contains(&k.as_str())
                    && !replica_labels.iter().any(|r| r == *k)
                    && k.as_str() != "__name__"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let first = samples.first()?;
    let first_source = source(first);
    samples[1..].iter().find_map(|other| {
        let other_source = source(other);
        let label = first_source
            .keys()
            .chain(other_source.keys())
            .find(|k| first_source.get(*k) != other_source.get(*k))?
            .clone();
        let shown = |m: &BTreeMap<String, String>| match m.get(&label) {
            Some(v) => format!("{label}={v}"),
            None => format!("no {label}"),
        };
        Some((first, other, shown(&first_source), shown(&other_source)))
    })
}

/// What every ambiguity message ends with.
pub(super) const SELECT_ONE_SOURCE: &str = "set `matchers` (or the registration's --matcher) to select one source; series from different sources are never merged";

/// Fails when the target's pods are reported from more than one source (see [`two_sources`]). Never merged,
/// never one picked: the author selects the source with `matchers`.
pub fn prove_one_source(
    samples: &[Sample],
    target: &TargetSelector,
    replica_labels: &[String],
) -> Result<(), Failure> {
    let Some((first, other, a, b)) = two_sources(samples, POD_INFO_LABELS, replica_labels) else {
        return Ok(());
    };
    let pod = |s: &Sample| s.labels.get("pod").cloned().unwrap_or_default();
    let whom = if pod(first) == pod(other) {
        format!("pod {}/{} is", target.namespace(), pod(first))
    } else {
        format!("pods of ReplicaSet {} are", target.describe())
    };
    Err(Failure::new(
        FailureClass::Ambiguous,
        format!("{whom} reported with {a} and {b}: {SELECT_ONE_SOURCE}"),
    ))
}
