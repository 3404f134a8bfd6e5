//! `not-ready`: pods of the canary that are not Ready (a pod without a reported Ready condition is not
//! proven ready).
use super::{coverage_query, waiting_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError};
use crate::engine::pods::{finite, judge_pods, pods_of, samples, waiting_reasons};
use crate::engine::promql::TargetSelector;
use crate::engine::verdict::{Coverage, Failure, Verdict};

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
        waiting_query(target),
    ]
}

impl NotReady {
    pub fn parse(keys: &Keys) -> Result<NotReady, ConfigError> {
        Ok(NotReady {
            threshold: config::threshold(keys, 0.0)?,
        })
    }

    pub fn judge(&self, coverage: &Coverage, answers: &Answers) -> Result<Verdict, Failure> {
        let ready = coverage.by_pod(samples(answers, query_name::READY)?);
        let reasons = waiting_reasons(answers, coverage)?;
        let mut offenders = Vec::new();
        for pod in &coverage.pods {
            let is_ready = match ready.get(pod).and_then(|s| s.first()) {
                Some(sample) => finite(sample, query_name::READY)? == 1.0,
                None => false,
            };
            if is_ready {
                continue;
            }
            let waiting: Vec<String> = reasons
                .iter()
                .filter(|((p, _), _)| p == pod)
                .map(|((_, container), reason)| format!("{container} {reason}"))
                .collect();
            let mut text = pod.clone();
            if !ready.contains_key(pod) {
                text.push_str(" (no Ready condition reported)");
            } else if !waiting.is_empty() {
                text.push_str(&format!(" ({})", waiting.join(", ")));
            }
            offenders.push(text);
        }
        let message = format!("{} of {} not ready", offenders.len(), pods_of(coverage));
        Ok(judge_pods(coverage, self.threshold, message, offenders))
    }
}

#[cfg(test)]
mod tests {
    use super::query_name::READY;
    use crate::engine::guardrails::testing::*;

    #[test]
    fn not_ready_counts_pods_and_treats_missing_readiness_as_not_ready() {
        let ans = answers(
            &["a", "b", "c"],
            vec![
                (
                    READY,
                    vec![s(&[("pod", "a")], 1.0), s(&[("pod", "b")], 0.0)],
                ),
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
}
