//! The opt-in admission policies (`--policy NAME`, `--policy all`). The same rules ship as
//! ValidatingAdmissionPolicies in `manifests/policies/`, with the same messages, so a merge request and the
//! cluster refuse the same objects with the same words:
//! - `no-mutable-image`: every container, init container and ephemeral container of every workload (Pod,
//!   Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Rollout) names an image pinned by a tag other
//!   than `latest` or by a digest — the `latest-image` guardrail's classifier ([`crate::engine::image`]). A
//!   Rollout with `workloadRef` has no template of its own: its Deployment is checked as a Deployment.
//! - `require-limits`: every container and init container sets CPU and memory limits (ephemeral containers
//!   cannot set resources).
//! - `require-owner-label`: every Namespace carries a non-empty owner label (`owner` unless `--owner-label`).
use serde_json::Value;

use super::{Check, Document, Options, Problem};
use crate::engine::image::classify;

/// One admission policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    NoMutableImage,
    RequireLimits,
    RequireOwnerLabel,
}

impl Policy {
    /// Every policy, in the order `--policy all` runs them.
    pub const ALL: [Policy; 3] = [
        Policy::NoMutableImage,
        Policy::RequireLimits,
        Policy::RequireOwnerLabel,
    ];

    /// The name of `--policy` and of the ValidatingAdmissionPolicy.
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoMutableImage => "no-mutable-image",
            Policy::RequireLimits => "require-limits",
            Policy::RequireOwnerLabel => "require-owner-label",
        }
    }

    /// The policy named `name`.
    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The label `require-owner-label` asks for by default.
pub const DEFAULT_OWNER_LABEL: &str = "owner";

/// JSON pointer of the pod spec of a workload, by API group and kind.
pub fn pod_spec_pointer(group: &str, kind: &str) -> Option<&'static str> {
    Some(match (group, kind) {
        ("", "Pod") => "/spec",
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job")
        | ("argoproj.io", "Rollout") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    })
}

/// Runs one policy over every document.
pub fn check(
    policy: Policy,
    documents: &[Document],
    options: &Options,
    problems: &mut Vec<Problem>,
) {
    for document in documents {
        let Some(object) = &document.object else {
            continue;
        };
        match policy {
            Policy::RequireOwnerLabel => {
                if object.group.is_empty() && object.kind == "Namespace" {
                    let label = if options.owner_label.is_empty() {
                        DEFAULT_OWNER_LABEL
                    } else {
                        &options.owner_label
                    };
                    let value = document
                        .value
                        .pointer("/metadata/labels")
                        .and_then(|l| l.get(label));
                    if value.and_then(Value::as_str).is_none_or(str::is_empty) {
                        problems.push(Problem::at(
                            Check::Policy(policy),
                            document,
                            "metadata.labels",
                            format!(
                                "require-owner-label: Namespace `{}` has no `{label}` label",
                                object.name
                            ),
                        ));
                    }
                }
            }
            Policy::NoMutableImage | Policy::RequireLimits => {
                let Some(pointer) = pod_spec_pointer(&object.group, &object.kind) else {
                    continue;
                };
                let Some(spec) = document.value.pointer(pointer) else {
                    continue;
                };
                let path = pointer.trim_start_matches('/').replace('/', ".");
                containers(policy, document, spec, &path, problems);
            }
        }
    }
}

fn containers(
    policy: Policy,
    document: &Document,
    spec: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let lists: &[&str] = match policy {
        Policy::NoMutableImage => &["containers", "initContainers", "ephemeralContainers"],
        _ => &["containers", "initContainers"],
    };
    for (list, index, container) in crate::manifest::containers(spec, lists) {
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let at = format!("{path}.{list}[{index}]");
        match policy {
            Policy::NoMutableImage => {
                let image = container
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if classify(image).is_violation() {
                    problems.push(Problem::at(
                        Check::Policy(policy),
                        document,
                        format!("{at}.image"),
                        format!("no-mutable-image: container `{name}` uses mutable image `{image}`: pin a tag other than latest, or a digest"),
                    ));
                }
            }
            _ => {
                let limits = container.pointer("/resources/limits");
                let missing: Vec<&str> = ["cpu", "memory"]
                    .into_iter()
                    .filter(|r| limits.and_then(|l| l.get(r)).is_none_or(Value::is_null))
                    .collect();
                if !missing.is_empty() {
                    let what = match missing.as_slice() {
                        [one] => format!("{one} limit"),
                        _ => "cpu and memory limits".to_string(),
                    };
                    problems.push(Problem::at(
                        Check::Policy(policy),
                        document,
                        format!("{at}.resources.limits"),
                        format!("require-limits: container `{name}` has no {what}"),
                    ));
                }
            }
        }
    }
}
