//! `waiting-reasons`: containers of the canary's pods waiting with one of the listed reasons
//! (`CrashLoopBackOff`, `ImagePullBackOff`, … by default); other reasons are named, not judged.
use std::collections::BTreeSet;

use super::{coverage_query, waiting_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError};
use crate::engine::pods::{plural, pods_of, samples, waiting_reasons};
use crate::engine::promql::TargetSelector;
use crate::engine::verdict::{format_number, judge_count, Coverage, Failure, Verdict};

pub const SUMMARY: &str =
    "containers waiting with CrashLoopBackOff, ImagePullBackOff, … (or `reasons`)";
pub const KEYS: &[&str] = &["threshold", "reasons"];

pub mod query_name {
    pub const CONTAINERS: &str = "containers";
}

/// The waiting reasons `waiting-reasons` fails on unless `reasons` is set.
pub const DEFAULT_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

#[derive(Debug, Clone, PartialEq)]
pub struct WaitingReasons {
    /// More waiting containers than this fail (0 by default).
    pub threshold: f64,
    /// The reasons that fail ([`DEFAULT_WAITING_REASONS`] unless `reasons` is set).
    pub reasons: Vec<String>,
}

pub fn plan(target: &TargetSelector) -> Vec<Query> {
    vec![
        coverage_query(target),
        (query_name::CONTAINERS, target.containers()),
        waiting_query(target),
    ]
}

impl WaitingReasons {
    pub fn parse(keys: &Keys) -> Result<WaitingReasons, ConfigError> {
        let mut reasons = Vec::new();
        // A list, or one comma-separated string as `{{args.*}}` gives, of Kubernetes reason words.
        for item in keys.string_list("reasons", "a list of waiting reasons")? {
            for reason in item.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                if reason.len() > 63 || !reason.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(keys.invalid(
                        "reasons",
                        &format!("`{reason}` is not a reason such as `CrashLoopBackOff`"),
                    ));
                }
                reasons.push(reason.to_string());
            }
        }
        if reasons.is_empty() {
            reasons = DEFAULT_WAITING_REASONS
                .iter()
                .map(|r| r.to_string())
                .collect();
        }
        Ok(WaitingReasons {
            threshold: config::threshold(keys, 0.0)?,
            reasons,
        })
    }

    pub fn judge(&self, coverage: &Coverage, answers: &Answers) -> Result<Verdict, Failure> {
        let containers = coverage.by_pod(samples(answers, query_name::CONTAINERS)?);
        coverage.require_all(&containers.keys().cloned().collect(), "container status")?;
        let mut offenders = Vec::new();
        let mut other = BTreeSet::new();
        for ((pod, container), reason) in waiting_reasons(answers, coverage)? {
            if self.reasons.contains(&reason) {
                offenders.push(format!("{pod}/{container} waiting: {reason}"));
            } else {
                other.insert(reason);
            }
        }
        let count = offenders.len() as f64;
        let mut message = format!(
            "{} container{} of {} waiting with {} (threshold {})",
            offenders.len(),
            plural(count),
            pods_of(coverage),
            self.reasons.join("/"),
            format_number(self.threshold),
        );
        if !other.is_empty() {
            message.push_str(&format!(
                "; also waiting, not judged: {}",
                other.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let limit = self.threshold;
        Ok(judge_count(coverage, count, limit, message, offenders))
    }
}

#[cfg(test)]
mod tests {
    use super::query_name::CONTAINERS;
    use crate::engine::guardrails::testing::*;

    #[test]
    fn waiting_reasons_judge_only_the_listed_reasons_of_covered_pods() {
        let containers = vec![
            s(&[("pod", "a"), ("container", "api")], 1.0),
            s(&[("pod", "b"), ("container", "api")], 1.0),
        ];
        let waiting = vec![
            s(
                &[
                    ("pod", "a"),
                    ("container", "api"),
                    ("reason", "CrashLoopBackOff"),
                ],
                1.0,
            ),
            s(
                &[
                    ("pod", "b"),
                    ("container", "api"),
                    ("reason", "ContainerCreating"),
                ],
                1.0,
            ),
            // A pod outside the target (a decoy) is never judged.
            s(
                &[
                    ("pod", "z"),
                    ("container", "api"),
                    ("reason", "ImagePullBackOff"),
                ],
                1.0,
            ),
        ];
        let ans = answers(
            &["a", "b"],
            vec![(CONTAINERS, containers.clone()), (WAITING, waiting)],
        );
        let Verdict::Fail(f) = judge(r#"{"guardrail":"waiting-reasons"}"#, ans.clone()) else {
            panic!("CrashLoopBackOff is a default reason")
        };
        assert_eq!(
            f.offenders,
            vec!["a/api waiting: CrashLoopBackOff".to_string()]
        );
        assert!(
            f.message
                .contains("also waiting, not judged: ContainerCreating"),
            "{}",
            f.message
        );
        let only_pull = r#"{"guardrail":"waiting-reasons","reasons":["ImagePullBackOff"]}"#;
        assert!(matches!(judge(only_pull, ans), Verdict::Pass(_)));
        // A covered pod without container data is not proven.
        let partial = answers(
            &["a", "b"],
            vec![(CONTAINERS, containers[..1].to_vec()), (WAITING, vec![])],
        );
        let Verdict::Fail(f) = judge(r#"{"guardrail":"waiting-reasons"}"#, partial) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
    }
}
