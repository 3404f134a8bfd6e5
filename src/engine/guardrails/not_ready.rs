//! `not-ready`: pods of the canary that are not Ready (a pod without a reported Ready condition is not
//! proven ready).
use std::time::{Duration, SystemTime};

use super::waiting_reasons::DEFAULT_WAITING_REASONS;
use super::{coverage_query, created_query, query_name as shared, waiting_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError};
use crate::engine::duration;
use crate::engine::pods::{finite, judge_pods, plural, pods_of, samples, waiting_reasons};
use crate::engine::promql::TargetSelector;
use crate::engine::settle::Awaiting;
use crate::engine::verdict::{
    format_number, join_limited, unix_seconds, Coverage, Failure, FailureClass, Verdict,
    MESSAGE_OFFENDERS,
};

pub const SUMMARY: &str = "pods of the canary that are not Ready";
pub const KEYS: &[&str] = &["threshold"];

pub mod query_name {
    pub const READY: &str = "ready";
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotReady {
    /// More pods not ready than this fail (0 by default).
    pub threshold: f64,
}

pub fn plan(target: &TargetSelector) -> Vec<Query> {
    vec![
        coverage_query(target),
        (query_name::READY, target.ready()),
        // A pod younger than `settle` that is not Ready yet is waited for, not counted.
        created_query(target),
        waiting_query(target),
    ]
}

impl NotReady {
    pub fn parse(keys: &Keys) -> Result<NotReady, ConfigError> {
        Ok(NotReady {
            threshold: config::threshold(keys, 0.0)?,
        })
    }

    /// Judges readiness at `at`; a pod younger than `settle` that is not Ready yet (and shows no failing
    /// waiting reason: a CrashLoopBackOff is a verdict, not a start) is waited for instead of counted.
    pub fn judge(
        &self,
        coverage: &Coverage,
        answers: &Answers,
        at: SystemTime,
        settle: Duration,
    ) -> Result<Verdict, Failure> {
        let ready = coverage.by_pod(samples(answers, query_name::READY)?);
        let created = coverage.by_pod(samples(answers, shared::CREATED)?);
        let reasons = waiting_reasons(answers, coverage)?;
        let young_since = unix_seconds(at) - settle.as_secs_f64();
        let mut offenders = Vec::new();
        let mut starting = Vec::new();
        for pod in &coverage.pods {
            let is_ready = match ready.get(pod).and_then(|s| s.first()) {
                Some(sample) => finite(sample, query_name::READY)? == 1.0,
                None => false,
            };
            if is_ready {
                continue;
            }
            let mine = || reasons.iter().filter(|((p, _), _)| p == pod);
            let waiting: Vec<String> = mine()
                .map(|((_, container), reason)| format!("{container} {reason}"))
                .collect();
            let failing =
                mine().any(|(_, reason)| DEFAULT_WAITING_REASONS.contains(&reason.as_str()));
            let young = match created.get(pod).and_then(|s| s.first()) {
                Some(sample) => finite(sample, shared::CREATED)? > young_since,
                // An unknown creation time is not proof of youth.
                None => false,
            };
            let mut text = pod.clone();
            if !ready.contains_key(pod) {
                text.push_str(" (no Ready condition reported)");
            } else if !waiting.is_empty() {
                text.push_str(&format!(" ({})", waiting.join(", ")));
            }
            if young && !failing {
                starting.push(text);
            } else {
                offenders.push(text);
            }
        }
        let count = offenders.len() as f64;
        if count <= self.threshold && count + starting.len() as f64 > self.threshold {
            let message = format!(
                "{} of {} pod{} of ReplicaSet {} not Ready yet, younger than settle {} (threshold {}): {}",
                starting.len(),
                coverage.pods.len(),
                plural(coverage.pods.len() as f64),
                coverage.target(),
                duration::format(settle),
                format_number(self.threshold),
                join_limited(starting.iter().map(String::as_str), MESSAGE_OFFENDERS),
            );
            return Ok(Verdict::Fail(Failure {
                value: format_number(count + starting.len() as f64),
                offenders: starting,
                ..Failure::new(FailureClass::Threshold, message).awaiting(Awaiting::Readiness)
            }));
        }
        let message = format!("{} of {} not ready", offenders.len(), pods_of(coverage));
        Ok(judge_pods(coverage, self.threshold, message, offenders))
    }
}

#[cfg(test)]
mod tests {
    use super::query_name::READY;
    use crate::engine::guardrails::query_name::CREATED;
    use crate::engine::guardrails::testing::*;
    use crate::engine::settle::Awaiting;

    #[test]
    fn not_ready_counts_pods_and_treats_missing_readiness_as_not_ready() {
        let ans = answers(
            &["a", "b", "c"],
            vec![
                (
                    READY,
                    vec![s(&[("pod", "a")], 1.0), s(&[("pod", "b")], 0.0)],
                ),
                (CREATED, vec![]),
                (
                    WAITING,
                    vec![s(
                        &[
                            ("pod", "b"),
                            ("container", "api"),
                            ("reason", "CrashLoopBackOff"),
                        ],
                        1.0,
                    )],
                ),
            ],
        );
        let Verdict::Fail(f) = judge(r#"{"guardrail":"not-ready"}"#, ans.clone()) else {
            panic!()
        };
        assert_eq!(f.value, "2");
        assert!(
            f.message.contains("b (api CrashLoopBackOff)"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("c (no Ready condition reported)"),
            "{}",
            f.message
        );
        let Verdict::Pass(p) = judge(r#"{"guardrail":"not-ready","threshold":2}"#, ans) else {
            panic!()
        };
        assert_eq!(p.value, "2");
    }

    #[test]
    fn a_young_pod_not_ready_yet_is_waited_for_and_an_old_one_counts() {
        let readiness = |created_young: f64, waiting| {
            answers(
                &["young", "old"],
                vec![
                    (
                        READY,
                        vec![s(&[("pod", "young")], 0.0), s(&[("pod", "old")], 1.0)],
                    ),
                    (
                        CREATED,
                        vec![
                            s(&[("pod", "young")], created_young),
                            s(&[("pod", "old")], AT - 3600.0),
                        ],
                    ),
                    (WAITING, waiting),
                ],
            )
        };
        let judge_with = |settle: &str, ans| {
            judge(
                &format!(r#"{{"guardrail":"not-ready","settle":"{settle}"}}"#),
                ans,
            )
        };
        let Verdict::Fail(waiting) = judge_with("2m", readiness(AT - 30.0, vec![])) else {
            panic!("a pod not Ready must never pass")
        };
        assert_eq!(waiting.awaiting, Some(Awaiting::Readiness));
        assert_eq!(waiting.class, FailureClass::Threshold);
        assert!(
            waiting
                .message
                .contains("not Ready yet, younger than settle 2m"),
            "{}",
            waiting.message
        );
        let Verdict::Fail(counted) = judge_with("2m", readiness(AT - 300.0, vec![])) else {
            panic!()
        };
        assert_eq!(counted.awaiting, None, "older than settle: counted at once");
        let Verdict::Fail(no_settle) = judge_with("0s", readiness(AT - 30.0, vec![])) else {
            panic!()
        };
        assert_eq!(no_settle.awaiting, None, "settle 0: counted at once");
        let crashing = vec![s(
            &[
                ("pod", "young"),
                ("container", "api"),
                ("reason", "CrashLoopBackOff"),
            ],
            1.0,
        )];
        let Verdict::Fail(crash) = judge_with("2m", readiness(AT - 30.0, crashing)) else {
            panic!()
        };
        assert_eq!(
            crash.awaiting, None,
            "a CrashLoopBackOff is a verdict, not a start"
        );
    }
}
