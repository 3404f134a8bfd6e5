//! `restarts`: container restarts of the canary's pods inside the window, counted as whole events (the
//! difference of two counter samples, never an extrapolated rate).
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{coverage_query, created_query, waiting_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::pods::{finite, label, plural, pods_of, samples, waiting_reasons, with_reason};
use crate::engine::promql::TargetSelector;
use crate::engine::verdict::{
    format_number, judge_count, unix_seconds, Coverage, Failure, FailureClass, Verdict,
};

pub const SUMMARY: &str = "container restarts of the canary's pods in the window";
pub const KEYS: &[&str] = &["window", "threshold"];

/// The name of each query in metadata (`query.<name>`).
pub mod query_name {
    pub const RESTARTS_MAX: &str = "restarts-max";
    pub const RESTARTS_MIN: &str = "restarts-min";
    pub use crate::engine::guardrails::query_name::CREATED;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Restarts {
    pub window: Duration,
    /// More restarts than this fail (1 by default, 0 in `prod`).
    pub threshold: f64,
}

impl Restarts {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<Restarts, ConfigError> {
        Ok(Restarts {
            window: config::window(keys, config::default_window(profile))?,
            threshold: config::threshold(keys, profile.pick(1.0, 0.0))?,
        })
    }

    pub fn plan(&self, target: &TargetSelector) -> Vec<Query> {
        vec![
            coverage_query(target),
            (query_name::RESTARTS_MAX, target.restarts_max(self.window)),
            (query_name::RESTARTS_MIN, target.restarts_min(self.window)),
            created_query(target),
            waiting_query(target),
        ]
    }

    pub fn judge(
        &self,
        coverage: &Coverage,
        answers: &Answers,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let max = coverage.by_pod(samples(answers, query_name::RESTARTS_MAX)?);
        let min = coverage.by_pod(samples(answers, query_name::RESTARTS_MIN)?);
        let created = coverage.by_pod(samples(answers, query_name::CREATED)?);
        coverage.require_all(&max.keys().cloned().collect(), "container restart")?;
        let window_start = unix_seconds(at) - self.window.as_secs_f64();
        let reasons = waiting_reasons(answers, coverage)?;
        let mut total = 0.0;
        let mut unbounded = 0usize;
        let mut offenders: Vec<(f64, String)> = Vec::new();
        for (pod, samples) in &max {
            // A pod born inside the window counts every restart it has; so does a pod whose creation time
            // is unknown (the conservative reading, and the message says so).
            let born = match created.get(pod).and_then(|s| s.first()) {
                Some(s) if finite(s, query_name::CREATED)? > window_start => Born::InWindow,
                Some(_) => Born::Before,
                None => Born::Unknown,
            };
            unbounded += usize::from(born == Born::Unknown);
            for (container, highest) in highest_per_container(samples)? {
                let at_start = match born {
                    Born::Before => lowest_at_start(&min, pod, container)?,
                    Born::InWindow | Born::Unknown => 0.0,
                };
                let restarts = (highest - at_start).max(0.0).round();
                total += restarts;
                if restarts > 0.0 {
                    let mut text = format!(
                        "{pod}/{container}: {} restart{}",
                        format_number(restarts),
                        plural(restarts)
                    );
                    if born == Born::Unknown {
                        text.push_str(UNBOUNDED);
                    }
                    let key = (pod.clone(), container.to_string());
                    offenders.push((restarts, with_reason(text, reasons.get(&key))));
                }
            }
        }
        offenders.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let offenders: Vec<String> = offenders.into_iter().map(|(_, text)| text).collect();
        let mut message = format!(
            "{} restart{} in the last {} across {}",
            format_number(total),
            plural(total),
            duration::format(self.window),
            pods_of(coverage),
        );
        if unbounded > 0 {
            message.push_str(&format!(
                "; {unbounded} pod{} counted since {} started: creation time unknown (kube_pod_created missing)",
                plural(unbounded as f64),
                if unbounded == 1 { "it" } else { "they" }
            ));
        }
        message.push_str(&format!(" (threshold {})", format_number(self.threshold)));
        let limit = self.threshold;
        Ok(judge_count(coverage, total, limit, message, offenders))
    }
}

/// What an offender of a pod without `kube_pod_created` says: the window could not be bounded.
const UNBOUNDED: &str =
    " since the pod started; its creation time is unknown (kube_pod_created missing)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Born {
    InWindow,
    Before,
    Unknown,
}

/// Highly available kube-state-metrics (two replicas, other `instance` labels) reports each container
/// twice: each container is judged once, by its highest count.
fn highest_per_container<'s>(
    samples: &[&'s crate::prometheus::Sample],
) -> Result<BTreeMap<&'s str, f64>, Failure> {
    let mut per_container: BTreeMap<&str, f64> = BTreeMap::new();
    for sample in samples {
        let value = finite(sample, query_name::RESTARTS_MAX)?;
        let entry = per_container
            .entry(label(sample, "container"))
            .or_insert(value);
        *entry = entry.max(value);
    }
    Ok(per_container)
}

/// The count at the window's start: the lowest of the replicas' minimums (more restarts counted).
fn lowest_at_start(
    min: &BTreeMap<String, Vec<&crate::prometheus::Sample>>,
    pod: &str,
    container: &str,
) -> Result<f64, Failure> {
    let lowest: Vec<_> = min
        .get(pod)
        .map(|ss| {
            ss.iter()
                .filter(|s| label(s, "container") == container)
                .collect()
        })
        .unwrap_or_default();
    if lowest.is_empty() {
        return Err(Failure::new(
            FailureClass::NoData,
            format!("no restart history for container {pod}/{container}"),
        ));
    }
    let mut start = f64::INFINITY;
    for s in lowest {
        start = start.min(finite(s, query_name::RESTARTS_MIN)?);
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::query_name::*;
    use crate::engine::guardrails::testing::*;
    const ONE: &str = r#"{"guardrail":"restarts","threshold":1}"#;
    const ZERO: &str = r#"{"guardrail":"restarts","threshold":0}"#;

    #[test]
    fn restarts_count_whole_events_inside_the_window() {
        let ans = answers(
            &["a", "b"],
            vec![
                (
                    RESTARTS_MAX,
                    vec![
                        s(&[("pod", "a"), ("container", "api")], 5.0),
                        s(&[("pod", "b"), ("container", "api")], 0.0),
                    ],
                ),
                (
                    RESTARTS_MIN,
                    vec![
                        s(&[("pod", "a"), ("container", "api")], 4.0),
                        s(&[("pod", "b"), ("container", "api")], 0.0),
                    ],
                ),
                (
                    CREATED,
                    vec![
                        s(&[("pod", "a")], AT - 7200.0),
                        s(&[("pod", "b")], AT - 7200.0),
                    ],
                ),
                (WAITING, vec![]),
            ],
        );
        let Verdict::Pass(p) = judge(ONE, ans.clone()) else {
            panic!("1 ≤ 1 passes")
        };
        assert_eq!(p.value, "1");
        assert!(
            p.message.starts_with(
                "1 restart in the last 5m across 2 pods of ReplicaSet pay/api-7f6e5d4c3"
            ),
            "{}",
            p.message
        );
        let Verdict::Fail(f) = judge(ZERO, ans) else {
            panic!("1 > 0 fails")
        };
        assert_eq!((f.value.as_str(), f.class), ("1", FailureClass::Threshold));
        assert!(f.message.ends_with(": a/api: 1 restart"), "{}", f.message);
    }

    #[test]
    fn a_pod_born_in_the_window_counts_all_restarts_and_reasons_are_named() {
        let ans = answers(
            &["young"],
            vec![
                (
                    RESTARTS_MAX,
                    vec![s(&[("pod", "young"), ("container", "api")], 2.0)],
                ),
                (
                    RESTARTS_MIN,
                    vec![s(&[("pod", "young"), ("container", "api")], 2.0)],
                ),
                (CREATED, vec![s(&[("pod", "young")], AT - 180.0)]),
                (
                    WAITING,
                    vec![s(
                        &[
                            ("pod", "young"),
                            ("container", "api"),
                            ("reason", "CrashLoopBackOff"),
                        ],
                        1.0,
                    )],
                ),
            ],
        );
        let Verdict::Fail(f) = judge(ONE, ans) else {
            panic!()
        };
        assert_eq!(f.value, "2");
        assert!(
            f.message
                .contains("young/api: 2 restarts (CrashLoopBackOff)"),
            "{}",
            f.message
        );
        assert!(
            !f.message.contains("creation time unknown"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_pod_without_a_creation_time_is_counted_since_it_started_and_the_message_says_so() {
        let ans = answers(
            &["old"],
            vec![
                (
                    RESTARTS_MAX,
                    vec![s(&[("pod", "old"), ("container", "api")], 4.0)],
                ),
                (
                    RESTARTS_MIN,
                    vec![s(&[("pod", "old"), ("container", "api")], 4.0)],
                ),
                (CREATED, vec![]),
                (WAITING, vec![]),
            ],
        );
        let Verdict::Fail(f) = judge(ONE, ans) else {
            panic!("the conservative count is 4")
        };
        assert_eq!(f.value, "4");
        assert!(
            f.message.contains(
                "old/api: 4 restarts since the pod started; its creation time is unknown (kube_pod_created missing)"
            ),
            "{}",
            f.message
        );
        assert!(
            f.message.contains(
                "1 pod counted since it started: creation time unknown (kube_pod_created missing)"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn restarts_require_every_pod_and_finite_values() {
        let mut ans = answers(
            &["a", "b"],
            vec![
                (
                    RESTARTS_MAX,
                    vec![s(&[("pod", "a"), ("container", "api")], 0.0)],
                ),
                (
                    RESTARTS_MIN,
                    vec![s(&[("pod", "a"), ("container", "api")], 0.0)],
                ),
                (CREATED, vec![]),
                (WAITING, vec![]),
            ],
        );
        let Verdict::Fail(f) = judge(ONE, ans.clone()) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        assert!(f.message.contains(": b"), "{}", f.message);
        ans.insert(
            RESTARTS_MAX,
            QueryData::Vector(vec![
                s(&[("pod", "a"), ("container", "api")], f64::NAN),
                s(&[("pod", "b"), ("container", "api")], 0.0),
            ]),
        );
        let Verdict::Fail(f) = judge(ONE, ans) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::QueryError);
    }

    #[test]
    fn highly_available_kube_state_metrics_is_not_double_counted() {
        let pair = |value: f64| {
            vec![
                s(
                    &[("pod", "a"), ("container", "api"), ("instance", "ksm-0")],
                    value,
                ),
                s(
                    &[("pod", "a"), ("container", "api"), ("instance", "ksm-1")],
                    value,
                ),
            ]
        };
        let ans = answers(
            &["a"],
            vec![
                (RESTARTS_MAX, pair(3.0)),
                (RESTARTS_MIN, pair(1.0)),
                (CREATED, vec![s(&[("pod", "a")], AT - 7200.0)]),
                (WAITING, vec![]),
            ],
        );
        let Verdict::Fail(f) = judge(ONE, ans) else {
            panic!()
        };
        assert_eq!(f.value, "2");
    }

    #[test]
    fn plans_name_their_queries() {
        let names: Vec<_> = planned(ONE).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "coverage",
                "restarts-max",
                "restarts-min",
                "created",
                "waiting"
            ]
        );
        let names: Vec<_> = planned(r#"{"guardrail":"latest-image"}"#)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["coverage", "images", "waiting"]);
    }
}
