//! `oom-killed`: containers of the canary's pods whose last termination reason was `OOMKilled` at any moment
//! of the window.
use std::collections::BTreeSet;
use std::time::Duration;

use super::waiting_reasons::query_name::CONTAINERS;
use super::{coverage_query, waiting_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::pods::{
    finite, judge_pods, label, plural, pods_of, samples, waiting_reasons, with_reason,
};
use crate::engine::promql::TargetSelector;
use crate::engine::verdict::{Coverage, Failure, Verdict};

pub const SUMMARY: &str = "containers of the canary OOMKilled in the window";
pub const KEYS: &[&str] = &["window", "threshold"];

pub mod query_name {
    pub const OOM_KILLED: &str = "oom-killed";
}

#[derive(Debug, Clone, PartialEq)]
pub struct OomKilled {
    pub window: Duration,
    /// More OOMKilled containers than this fail (0 by default).
    pub threshold: f64,
}

impl OomKilled {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<OomKilled, ConfigError> {
        Ok(OomKilled {
            window: config::window(keys, config::default_window(profile))?,
            threshold: config::threshold(keys, 0.0)?,
        })
    }

    pub fn plan(&self, target: &TargetSelector) -> Vec<Query> {
        vec![
            coverage_query(target),
            (CONTAINERS, target.containers()),
            (query_name::OOM_KILLED, target.oom_killed(self.window)),
            waiting_query(target),
        ]
    }

    pub fn judge(&self, coverage: &Coverage, answers: &Answers) -> Result<Verdict, Failure> {
        let containers = coverage.by_pod(samples(answers, CONTAINERS)?);
        coverage.require_all(&containers.keys().cloned().collect(), "container status")?;
        let reasons = waiting_reasons(answers, coverage)?;
        let mut offenders = BTreeSet::new();
        for (pod, samples) in coverage.by_pod(samples(answers, query_name::OOM_KILLED)?) {
            for sample in samples {
                if finite(sample, query_name::OOM_KILLED)? >= 1.0 {
                    let container = label(sample, "container");
                    let key = (pod.clone(), container.to_string());
                    offenders.insert(with_reason(
                        format!("{pod}/{container} OOMKilled"),
                        reasons.get(&key),
                    ));
                }
            }
        }
        let offenders: Vec<String> = offenders.into_iter().collect();
        let count = offenders.len() as f64;
        let message = format!(
            "{} container{} OOMKilled in the last {} across {}",
            offenders.len(),
            plural(count),
            duration::format(self.window),
            pods_of(coverage),
        );
        Ok(judge_pods(coverage, self.threshold, message, offenders))
    }
}

#[cfg(test)]
mod tests {
    use super::query_name::OOM_KILLED;
    use super::CONTAINERS;
    use crate::engine::guardrails::testing::*;

    #[test]
    fn oom_kills_are_named_per_container() {
        let ans = answers(
            &["a"],
            vec![
                (
                    CONTAINERS,
                    vec![s(&[("pod", "a"), ("container", "api")], 1.0)],
                ),
                (
                    OOM_KILLED,
                    vec![s(
                        &[("pod", "a"), ("container", "api"), ("reason", "OOMKilled")],
                        1.0,
                    )],
                ),
                (WAITING, vec![]),
            ],
        );
        let Verdict::Fail(f) = judge(r#"{"guardrail":"oom-killed"}"#, ans) else {
            panic!()
        };
        assert_eq!(f.value, "1");
        assert!(f.message.ends_with(": a/api OOMKilled"), "{}", f.message);
    }
}
