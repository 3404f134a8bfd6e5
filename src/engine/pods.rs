//! Reading kube-state-metrics answers about the covered pods, shared by the pod guardrails: a query's
//! samples, labels, finite values, and why each container waits (for messages).
use std::collections::BTreeMap;

use super::guardrails::{answer, query_name, Answers};
use super::verdict::{
    format_number, judge_count, vector, Coverage, Failure, FailureClass, Verdict,
};
use crate::prometheus::Sample;

/// The samples of the vector answer `name`.
pub fn samples<'a>(answers: &'a Answers, name: &'static str) -> Result<&'a [Sample], Failure> {
    vector(answer(answers, name)?, name)
}

/// A label's value, empty when absent.
pub fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample.labels.get(name).map(String::as_str).unwrap_or("")
}

/// The sample's value when finite; NaN and ±Inf are refused, naming the query and the pod.
pub fn finite(sample: &Sample, query: &str) -> Result<f64, Failure> {
    if sample.value.is_finite() {
        Ok(sample.value)
    } else {
        Err(Failure::new(
            FailureClass::QueryError,
            format!(
                "{query} query returned {} for pod {}",
                format_number(sample.value),
                label(sample, "pod")
            ),
        ))
    }
}

/// `(pod, container) → waiting reason` from the `waiting` answer, for messages.
pub fn waiting_reasons(
    answers: &Answers,
    coverage: &Coverage,
) -> Result<BTreeMap<(String, String), String>, Failure> {
    let samples = samples(answers, query_name::WAITING)?;
    Ok(coverage
        .by_pod(samples)
        .into_iter()
        .flat_map(|(pod, samples)| {
            samples.into_iter().map(move |s| {
                (
                    (pod.clone(), label(s, "container").to_string()),
                    label(s, "reason").to_string(),
                )
            })
        })
        .collect())
}

/// `text (reason)` when the container waits for a reason.
pub fn with_reason(text: String, reason: Option<&String>) -> String {
    match reason {
        Some(r) if !r.is_empty() => format!("{text} ({r})"),
        _ => text,
    }
}

/// `""` for one, `"s"` otherwise.
pub fn plural(n: f64) -> &'static str {
    if n == 1.0 {
        ""
    } else {
        "s"
    }
}

/// `N pod(s) of ReplicaSet ns/rs`, as every pod guardrail's message says it.
pub fn pods_of(coverage: &Coverage) -> String {
    format!(
        "{} pod{} of ReplicaSet {}",
        coverage.pods.len(),
        plural(coverage.pods.len() as f64),
        coverage.target()
    )
}

/// A pod guardrail's offenders counted and judged against its threshold: `summary (threshold N)`, completed with the
/// offenders (see [`judge_count`]).
pub fn judge_pods(
    coverage: &Coverage,
    threshold: f64,
    summary: String,
    offenders: Vec<String>,
) -> Verdict {
    let count = offenders.len() as f64;
    let summary = format!("{summary} (threshold {})", format_number(threshold));
    judge_count(coverage, count, threshold, summary, offenders)
}
