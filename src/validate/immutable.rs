//! Changes between two revisions that the API server refuses on update, so that Flux or Argo CD would stay
//! stuck until someone deletes and recreates the object. Objects are matched by group, kind, namespace and name;
//! a field absent from both revisions is unchanged (the server keeps what it allocated or defaulted).
//!
//! Each rule is the API server's own (proved by `tests/go/validate`, which runs the same fixtures through
//! k8s.io/kubernetes v1.34's `Validate…Update` functions and the Rollout CRD's transition rule):
//! - Deployment, ReplicaSet, DaemonSet, StatefulSet `spec.selector` (apps/v1 `ValidateDeploymentUpdate`, …);
//! - StatefulSet `spec.serviceName`, `spec.volumeClaimTemplates`, `spec.podManagementPolicy`
//!   (`ValidateStatefulSetUpdate`: only replicas, ordinals, template, updateStrategy, minReadySeconds,
//!   revisionHistoryLimit and persistentVolumeClaimRetentionPolicy may change);
//! - Job `spec.selector` and `spec.template` (`ValidateJobUpdate`);
//! - Service `spec.clusterIP`/`spec.clusterIPs` once set: a different address, or between `None` (headless)
//!   and an address (`validateUpgradeDowngradeClusterIPs`); a change to or from type ExternalName releases the
//!   address and is allowed;
//! - PersistentVolumeClaim `spec` outside `resources.requests` and `volumeAttributesClassName`
//!   (`ValidatePersistentVolumeClaimUpdate`);
//! - ConfigMap and Secret `data`/`binaryData` (and a Secret's `stringData`) once `immutable: true`, and
//!   `immutable` itself once true (`ValidateConfigMapUpdate`, `ValidateSecretUpdate`);
//! - Rollout `spec.selector`: argo-rollouts' Go validation (`pkg/apis/rollouts/validation`) checks a Rollout
//!   alone, never against its previous version, but its v1.9.1 CRD carries the CEL transition rule
//!   `self == oldSelf` with message `.spec.selector is immutable`, so the API server refuses it.
use std::collections::BTreeMap;

use serde_json::Value;

use super::{Check, Document, Problem};
use crate::manifest::ObjectRef;

/// Reports every refused change from `before` to `after`.
pub fn check(before: &[Document], after: &[Document], problems: &mut Vec<Problem>) {
    let old: BTreeMap<&ObjectRef, &Document> = before
        .iter()
        .filter_map(|d| d.object.as_ref().map(|o| (o, d)))
        .collect();
    for document in after {
        let Some(object) = &document.object else {
            continue;
        };
        let Some(previous) = old.get(object) else {
            continue;
        };
        for (path, message) in refused(object, &previous.value, &document.value) {
            problems.push(Problem::at(Check::Immutable, document, path, message));
        }
    }
}

/// The refused changes of one object, as (field path, message).
pub fn refused(object: &ObjectRef, old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut field = |pointer: &str, default: Option<Value>, why: &str| {
        let get = |v: &Value| {
            v.pointer(pointer)
                .cloned()
                .filter(|v| !v.is_null())
                .or_else(|| default.clone())
        };
        let (before, after) = (get(old), get(new));
        if before != after {
            out.push((
                pointer.trim_start_matches('/').replace('/', "."),
                format!(
                    "immutable field changed since the compared revision ({}): {why}",
                    show(before.as_ref())
                ),
            ));
        }
    };
    let recreate = "the API server refuses the update; delete and recreate the object, or revert";
    match (object.group.as_str(), object.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => field("/spec/selector", None, recreate),
        ("apps", "StatefulSet") => {
            field("/spec/selector", None, recreate);
            field("/spec/serviceName", None, recreate);
            field("/spec/volumeClaimTemplates", None, recreate);
            field("/spec/podManagementPolicy", Some(Value::from("OrderedReady")), recreate);
        }
        ("batch", "Job") => {
            field("/spec/selector", None, recreate);
            field("/spec/template", None, recreate);
        }
        ("argoproj.io", "Rollout") => field(
            "/spec/selector",
            None,
            "the Rollout CRD's rule `.spec.selector is immutable` refuses the update; delete and recreate the Rollout, or revert",
        ),
        ("", "PersistentVolumeClaim") => {
            let strip = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(map) = spec.as_object_mut() {
                    map.remove("volumeAttributesClassName");
                    if let Some(resources) = map.get_mut("resources").and_then(Value::as_object_mut) {
                        resources.remove("requests");
                        if resources.is_empty() {
                            map.remove("resources");
                        }
                    }
                }
                spec
            };
            if strip(old) != strip(new) {
                out.push((
                    "spec".into(),
                    format!("a PersistentVolumeClaim's spec is immutable outside resources.requests and volumeAttributesClassName: {recreate}"),
                ));
            }
        }
        ("", "ConfigMap" | "Secret") if old.get("immutable") == Some(&Value::Bool(true)) => {
            if new.get("immutable") != Some(&Value::Bool(true)) {
                out.push(("immutable".into(), format!("`immutable: true` cannot be undone: {recreate}")));
            }
            for key in ["data", "binaryData", "stringData"] {
                let get = |v: &Value| v.get(key).cloned().filter(|v| !v.is_null());
                if get(old) != get(new) {
                    out.push((key.into(), format!("{key} of an immutable {} changed: {recreate}", object.kind)));
                }
            }
        }
        ("", "Service") => {
            if let Some(problem) = service(old, new) {
                out.push(("spec.clusterIP".into(), format!("{problem}: {recreate}")));
            }
        }
        _ => {}
    }
    out
}

/// The clusterIP change the API server refuses, if any (`validateUpgradeDowngradeClusterIPs`).
fn service(old: &Value, new: &Value) -> Option<String> {
    let kind = |v: &Value| {
        v.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    if kind(old) == "ExternalName" || kind(new) == "ExternalName" {
        return None;
    }
    let primary = |v: &Value| {
        v.pointer("/spec/clusterIPs/0")
            .or_else(|| v.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (before, after) = (primary(old), primary(new));
    match (before.as_deref(), after.as_deref()) {
        // Unset in the new revision: the server keeps what it holds.
        (_, None) => None,
        // Unset before: the server allocated an address; only `None` is known to differ from it.
        (None, Some("None")) => {
            Some("clusterIP `None` (headless) cannot replace an allocated address".into())
        }
        (None, Some(_)) => None,
        (Some(a), Some(b)) if a != b => Some(format!(
            "clusterIP may not change once set (was `{a}`, now `{b}`)"
        )),
        _ => None,
    }
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => "was unset".to_string(),
        Some(v) => {
            let text = v.to_string();
            if text.len() > 80 {
                format!(
                    "was {}…",
                    &text[..text.char_indices().nth(77).map_or(text.len(), |(i, _)| i)]
                )
            } else {
                format!("was {text}")
            }
        }
    }
}
