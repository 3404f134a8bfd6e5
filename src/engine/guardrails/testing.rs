//! What the guardrails' unit tests share: a fixed clock, samples, a target, and judging a configuration's
//! guardrail through the same entry points a measurement uses.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use super::query_name::WAITING;
use super::{query_name, Answers, Target};
use crate::engine::config::Config;
use crate::engine::promql::TargetSelector;
pub use crate::engine::verdict::{FailureClass, Verdict};
pub use crate::prometheus::QueryData;
use crate::prometheus::Sample;

pub const AT: f64 = 1_767_268_800.0;

pub fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(AT as u64)
}

pub fn s(labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp: AT,
        value,
    }
}

pub fn config(json: &str) -> Config {
    Config::from_json(json.as_bytes()).unwrap()
}

pub fn target() -> TargetSelector {
    TargetSelector::new("pay", "api", "7f6e5d4c3").unwrap()
}

/// Vector answers by name, plus a fresh coverage answer of `pods`.
pub fn answers(pods: &[&str], entries: Vec<(&'static str, Vec<Sample>)>) -> Answers {
    let mut answers: Answers = entries
        .into_iter()
        .map(|(k, v)| (k, QueryData::Vector(v)))
        .collect();
    answers.insert(
        query_name::COVERAGE,
        QueryData::Vector(pods.iter().map(|p| s(&[("pod", p)], AT - 10.0)).collect()),
    );
    answers
}

/// Judges `json`'s guardrail over one side of answers for [`target`].
pub fn judge(json: &str, answers: Answers) -> Verdict {
    let config = config(json);
    config.settings.judge(
        &Target::ReplicaSet(target()),
        &[answers],
        &config.common,
        at(),
    )
}

/// The names of the queries `json`'s guardrail plans for [`target`].
pub fn planned(json: &str) -> Vec<(&'static str, String)> {
    let config = config(json);
    let plan = config.settings.plan(&Target::ReplicaSet(target())).unwrap();
    plan.sides.into_iter().flat_map(|s| s.queries).collect()
}
