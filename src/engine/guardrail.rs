//! The guardrails: which queries each one asks, and how each judges the answers.
//!
//! Judging is pure (answers in, [`Verdict`] out) so every rule is unit-tested without Prometheus. Every judge
//! starts from a [`Coverage`] proof and refuses answers that do not cover every covered pod.
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::condition::{self, ConditionInput, Outcome};
use super::config::{GuardrailKind, Settings, DEFAULT_WAITING_REASONS};
use super::duration;
use super::image;
use super::promql::TargetSelector;
use super::settle::Awaiting;
use super::verdict::{
    format_number, join_limited, judge_count, unix_seconds, vector, Coverage, Failure,
    FailureClass, FreshResult, Proof, Verdict, MESSAGE_OFFENDERS,
};
use crate::prometheus::{QueryData, Sample};

/// The name of each query in metadata (`query.<name>`) and in the plan.
pub mod query_name {
    pub const COVERAGE: &str = "coverage";
    pub const RESTARTS_MAX: &str = "restarts-max";
    pub const RESTARTS_MIN: &str = "restarts-min";
    pub const CREATED: &str = "created";
    pub const READY: &str = "ready";
    pub const WAITING: &str = "waiting";
    pub const IMAGES: &str = "images";
    pub const CONTAINERS: &str = "containers";
    pub const OOM_KILLED: &str = "oom-killed";
    pub const QUERY: &str = "query";
}

/// The queries a guardrail asks, in a stable order, each with its metadata name.
pub fn plan(
    kind: GuardrailKind,
    target: &TargetSelector,
    settings: &Settings,
) -> Vec<(&'static str, String)> {
    use query_name::*;
    let mut queries = vec![(COVERAGE, target.coverage())];
    match kind {
        GuardrailKind::Restarts => {
            queries.push((RESTARTS_MAX, target.restarts_max(settings.window)));
            queries.push((RESTARTS_MIN, target.restarts_min(settings.window)));
            queries.push((CREATED, target.created()));
        }
        GuardrailKind::NotReady => {
            queries.push((READY, target.ready()));
            // A pod younger than `settle` that is not Ready yet is waited for, not counted.
            queries.push((CREATED, target.created()));
        }
        GuardrailKind::LatestImage => queries.push((IMAGES, target.container_images())),
        GuardrailKind::WaitingReasons => queries.push((CONTAINERS, target.containers())),
        GuardrailKind::OomKilled => {
            queries.push((CONTAINERS, target.containers()));
            queries.push((OOM_KILLED, target.oom_killed(settings.window)));
        }
        // The traffic queries come from `traffic::plan`; the pods' coverage and, for `error-rate` and
        // `latency`, their creation (the canary's age decides whether too few requests may still settle).
        GuardrailKind::ErrorRate | GuardrailKind::Latency => {
            queries.push((CREATED, target.created()));
            return queries;
        }
        GuardrailKind::Regression => return queries,
        GuardrailKind::Alerts | GuardrailKind::Gitops | GuardrailKind::Query => return Vec::new(),
    }
    queries.push((WAITING, target.waiting()));
    queries
}

/// Answers by query name.
pub type Answers = BTreeMap<&'static str, QueryData>;

fn answer<'a>(answers: &'a Answers, name: &'static str) -> Result<&'a [Sample], Failure> {
    let data = answers.get(name).ok_or_else(|| {
        Failure::new(
            FailureClass::QueryError,
            format!("{name} query has no answer"),
        )
    })?;
    vector(data, name)
}

fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample.labels.get(name).map(String::as_str).unwrap_or("")
}

fn finite(sample: &Sample, query: &str) -> Result<f64, Failure> {
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

/// `(pod, container) → waiting reason`, for messages.
fn waiting_reasons(
    answers: &Answers,
    coverage: &Coverage,
) -> Result<BTreeMap<(String, String), String>, Failure> {
    let samples = answer(answers, query_name::WAITING)?;
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

fn with_reason(text: String, reason: Option<&String>) -> String {
    match reason {
        Some(r) if !r.is_empty() => format!("{text} ({r})"),
        _ => text,
    }
}

/// Judges one guardrail from its answers. `coverage` must come from the `coverage` answer.
pub fn judge(
    kind: GuardrailKind,
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    static_images: &[String],
    at: SystemTime,
) -> Verdict {
    let result = match kind {
        GuardrailKind::Restarts => restarts(coverage, answers, settings, at),
        GuardrailKind::NotReady => not_ready(coverage, answers, settings, at),
        GuardrailKind::LatestImage => latest_image(coverage, answers, settings, static_images),
        GuardrailKind::WaitingReasons => {
            let defaults: Vec<String> = DEFAULT_WAITING_REASONS
                .iter()
                .map(|r| r.to_string())
                .collect();
            return judge_waiting(coverage, answers, settings, &defaults);
        }
        GuardrailKind::OomKilled => oom_killed(coverage, answers, settings),
        GuardrailKind::ErrorRate
        | GuardrailKind::Latency
        | GuardrailKind::Alerts
        | GuardrailKind::Gitops
        | GuardrailKind::Regression => Err(Failure::new(
            FailureClass::Config,
            format!("guardrail `{}` is judged by its own module", kind.name()),
        )),
        GuardrailKind::Query => Err(Failure::new(
            FailureClass::Config,
            "the query guardrail is judged by judge_query",
        )),
    };
    result.unwrap_or_else(Verdict::Fail)
}

/// Judges `waiting-reasons`: containers of the covered pods waiting with one of `reasons` (an empty list means
/// [`DEFAULT_WAITING_REASONS`]).
pub fn judge_waiting(
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    reasons: &[String],
) -> Verdict {
    let result = (|| {
        let containers = coverage.by_pod(answer(answers, query_name::CONTAINERS)?);
        coverage.require_all(&containers.keys().cloned().collect(), "container status")?;
        let defaults: Vec<String>;
        let reasons = if reasons.is_empty() {
            defaults = DEFAULT_WAITING_REASONS
                .iter()
                .map(|r| r.to_string())
                .collect();
            &defaults
        } else {
            reasons
        };
        let mut offenders = Vec::new();
        let mut other = BTreeSet::new();
        for ((pod, container), reason) in waiting_reasons(answers, coverage)? {
            if reasons.contains(&reason) {
                offenders.push(format!("{pod}/{container} waiting: {reason}"));
            } else {
                other.insert(reason);
            }
        }
        let count = offenders.len() as f64;
        let limit = threshold(settings);
        let mut message = format!(
            "{} container{} of {} pod{} of ReplicaSet {} waiting with {} (threshold {})",
            offenders.len(),
            plural(count),
            coverage.pods.len(),
            plural(coverage.pods.len() as f64),
            coverage.target(),
            reasons.join("/"),
            format_number(limit),
        );
        if !other.is_empty() {
            message.push_str(&format!(
                "; also waiting, not judged: {}",
                other.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(judge_count(coverage, count, limit, message, offenders))
    })();
    result.unwrap_or_else(Verdict::Fail)
}

/// `oom-killed`: containers whose last termination reason was `OOMKilled` at any moment of the window.
fn oom_killed(
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
) -> Result<Verdict, Failure> {
    let containers = coverage.by_pod(answer(answers, query_name::CONTAINERS)?);
    coverage.require_all(&containers.keys().cloned().collect(), "container status")?;
    let reasons = waiting_reasons(answers, coverage)?;
    let mut offenders = BTreeSet::new();
    for (pod, samples) in coverage.by_pod(answer(answers, query_name::OOM_KILLED)?) {
        for sample in samples {
            if finite(sample, query_name::OOM_KILLED)? >= 1.0 {
                let container = label(sample, "container");
                offenders.insert(with_reason(
                    format!("{pod}/{container} OOMKilled"),
                    reasons.get(&(pod.clone(), container.to_string())),
                ));
            }
        }
    }
    let offenders: Vec<String> = offenders.into_iter().collect();
    let count = offenders.len() as f64;
    let limit = threshold(settings);
    let message = format!(
        "{} container{} OOMKilled in the last {} across {} pod{} of ReplicaSet {} (threshold {})",
        offenders.len(),
        plural(count),
        duration::format(settings.window),
        coverage.pods.len(),
        plural(coverage.pods.len() as f64),
        coverage.target(),
        format_number(limit),
    );
    Ok(judge_count(coverage, count, limit, message, offenders))
}

fn threshold(settings: &Settings) -> f64 {
    settings.threshold.unwrap_or(0.0)
}

fn restarts(
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    at: SystemTime,
) -> Result<Verdict, Failure> {
    let max = coverage.by_pod(answer(answers, query_name::RESTARTS_MAX)?);
    let min = coverage.by_pod(answer(answers, query_name::RESTARTS_MIN)?);
    let created = coverage.by_pod(answer(answers, query_name::CREATED)?);
    coverage.require_all(&max.keys().cloned().collect(), "container restart")?;
    let window_start = unix_seconds(at) - settings.window.as_secs_f64();
    let reasons = waiting_reasons(answers, coverage)?;
    let mut total = 0.0;
    let mut offenders: Vec<(f64, String)> = Vec::new();
    for (pod, samples) in &max {
        // A pod born inside the window counts every restart it has; so does a pod whose creation time is
        // unknown (the conservative reading).
        let born_in_window = match created.get(pod).and_then(|s| s.first()) {
            Some(s) => finite(s, query_name::CREATED)? > window_start,
            None => true,
        };
        // Highly available kube-state-metrics (two replicas, other `instance` labels) reports each container
        // twice: judge each container once, by its highest count.
        let mut per_container: BTreeMap<&str, f64> = BTreeMap::new();
        for sample in samples {
            let value = finite(sample, query_name::RESTARTS_MAX)?;
            let entry = per_container
                .entry(label(sample, "container"))
                .or_insert(value);
            *entry = entry.max(value);
        }
        for (container, highest) in per_container {
            let at_start = if born_in_window {
                0.0
            } else {
                let lowest = min
                    .get(pod)
                    .map(|ss| {
                        ss.iter()
                            .filter(|s| label(s, "container") == container)
                            .collect::<Vec<_>>()
                    })
                    .filter(|ss| !ss.is_empty())
                    .ok_or_else(|| {
                        Failure::new(
                            FailureClass::NoData,
                            format!("no restart history for container {pod}/{container}"),
                        )
                    })?;
                // The lowest of the replicas' minimums: the conservative start (more restarts counted).
                let mut start = f64::INFINITY;
                for s in lowest {
                    start = start.min(finite(s, query_name::RESTARTS_MIN)?);
                }
                start
            };
            // Whole events: the difference of two counter samples, never an extrapolated rate.
            let restarts = (highest - at_start).max(0.0).round();
            total += restarts;
            if restarts > 0.0 {
                let text = format!(
                    "{pod}/{container}: {} restart{}",
                    format_number(restarts),
                    plural(restarts)
                );
                offenders.push((
                    restarts,
                    with_reason(text, reasons.get(&(pod.clone(), container.to_string()))),
                ));
            }
        }
    }
    offenders.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let offenders: Vec<String> = offenders.into_iter().map(|(_, text)| text).collect();
    let limit = threshold(settings);
    let message = format!(
        "{} restart{} in the last {} across {} pod{} of ReplicaSet {} (threshold {})",
        format_number(total),
        plural(total),
        duration::format(settings.window),
        coverage.pods.len(),
        plural(coverage.pods.len() as f64),
        coverage.target(),
        format_number(limit),
    );
    Ok(judge_count(coverage, total, limit, message, offenders))
}

fn not_ready(
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    at: SystemTime,
) -> Result<Verdict, Failure> {
    let ready = coverage.by_pod(answer(answers, query_name::READY)?);
    let created = coverage.by_pod(answer(answers, query_name::CREATED)?);
    let reasons = waiting_reasons(answers, coverage)?;
    // Readiness probes take seconds to minutes: a pod younger than `settle` that is not Ready yet is waited
    // for, unless it already shows a failing waiting reason (a CrashLoopBackOff is a verdict, not a start).
    let young_since = unix_seconds(at) - settings.settle.as_secs_f64();
    let mut offenders = Vec::new();
    let mut starting = Vec::new();
    for pod in &coverage.pods {
        // A pod with no Ready condition reported is not proven ready.
        let is_ready = match ready.get(pod).and_then(|s| s.first()) {
            Some(sample) => finite(sample, query_name::READY)? == 1.0,
            None => false,
        };
        if !is_ready {
            let waiting: Vec<String> = reasons
                .iter()
                .filter(|((p, _), _)| p == pod)
                .map(|((_, container), reason)| format!("{container} {reason}"))
                .collect();
            let failing = reasons.iter().any(|((p, _), reason)| {
                p == pod && DEFAULT_WAITING_REASONS.contains(&reason.as_str())
            });
            let young = match created.get(pod).and_then(|s| s.first()) {
                Some(sample) => finite(sample, query_name::CREATED)? > young_since,
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
    }
    let count = offenders.len() as f64;
    let limit = threshold(settings);
    if count <= limit && count + starting.len() as f64 > limit {
        let message = format!(
            "{} of {} pod{} of ReplicaSet {} not Ready yet, younger than settle {} (threshold {}): {}",
            starting.len(),
            coverage.pods.len(),
            plural(coverage.pods.len() as f64),
            coverage.target(),
            duration::format(settings.settle),
            format_number(limit),
            join_limited(starting.iter().map(String::as_str), MESSAGE_OFFENDERS),
        );
        return Ok(Verdict::Fail(Failure {
            value: format_number(count + starting.len() as f64),
            offenders: starting,
            ..Failure::new(FailureClass::Threshold, message).awaiting(Awaiting::Readiness)
        }));
    }
    let message = format!(
        "{} of {} pod{} of ReplicaSet {} not ready (threshold {})",
        offenders.len(),
        coverage.pods.len(),
        plural(coverage.pods.len() as f64),
        coverage.target(),
        format_number(limit),
    );
    Ok(judge_count(coverage, count, limit, message, offenders))
}

fn latest_image(
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    static_images: &[String],
) -> Result<Verdict, Failure> {
    let containers = coverage.by_pod(answer(answers, query_name::IMAGES)?);
    coverage.require_all(&containers.keys().cloned().collect(), "container image")?;
    let reasons = waiting_reasons(answers, coverage)?;
    let mut offenders = Vec::new();
    for reference in static_images {
        let kind = image::classify(reference);
        if kind.is_violation() {
            offenders.push(format!(
                "image `{reference}` (from the configuration): {}",
                kind.describe()
            ));
        }
    }
    let mut judged = 0usize;
    for (pod, samples) in &containers {
        let mut seen = BTreeSet::new();
        for sample in samples {
            let container = label(sample, "container");
            if !seen.insert(container) {
                continue;
            }
            judged += 1;
            // The image as specified in the pod template, so a pod that never pulled still counts.
            let reference = match label(sample, "image_spec") {
                "" => label(sample, "image"),
                spec => spec,
            };
            let kind = image::classify(reference);
            if kind.is_violation() {
                let text = format!("{pod}/{container} image `{reference}`: {}", kind.describe());
                offenders.push(with_reason(
                    text,
                    reasons.get(&(pod.clone(), container.to_string())),
                ));
            }
        }
    }
    let count = offenders.len() as f64;
    let limit = threshold(settings);
    let static_part = if static_images.is_empty() {
        String::new()
    } else {
        format!(
            " and {} configured image{}",
            static_images.len(),
            plural(static_images.len() as f64)
        )
    };
    let message = format!(
        "{} mutable image reference{} in {} container{} of {} pod{} of ReplicaSet {}{static_part} (threshold {})",
        offenders.len(),
        plural(count),
        judged,
        plural(judged as f64),
        coverage.pods.len(),
        plural(coverage.pods.len() as f64),
        coverage.target(),
        format_number(limit),
    );
    Ok(judge_count(coverage, count, limit, message, offenders))
}

/// Judges a `query` guardrail: every value within `threshold` (when set) and the metric's conditions.
pub fn judge_query(
    data: &QueryData,
    threshold: Option<f64>,
    success: &str,
    failure: &str,
) -> Verdict {
    let fresh = match FreshResult::prove(data) {
        Ok(fresh) => fresh,
        Err(failure) => return Verdict::Fail(failure),
    };
    let value = fresh.display();
    let fail = |message: String| {
        Verdict::Fail(Failure {
            class: FailureClass::Threshold,
            message,
            value: value.clone(),
            offenders: Vec::new(),
            awaiting: None,
        })
    };
    let mut reasons = Vec::new();
    if let Some(limit) = threshold {
        let above: Vec<String> = fresh
            .values
            .iter()
            .filter(|v| **v > limit)
            .map(|v| format_number(*v))
            .collect();
        if !above.is_empty() {
            return fail(format!(
                "{} above threshold {}",
                above.join(", "),
                format_number(limit)
            ));
        }
        reasons.push(format!("every value ≤ threshold {}", format_number(limit)));
    }
    if !success.trim().is_empty() || !failure.trim().is_empty() {
        let input = if fresh.scalar {
            ConditionInput::Scalar(fresh.values[0])
        } else {
            ConditionInput::Vector(fresh.values.clone())
        };
        match condition::evaluate(&input, success, failure) {
            Ok(Outcome::Successful) => reasons.push(condition_text(success, failure)),
            Ok(Outcome::Failed) => return fail(format!("result {value} fails {}", condition_text(success, failure))),
            Ok(Outcome::Inconclusive) => {
                return fail(format!(
                    "result {value} is inconclusive: neither successCondition `{success}` nor failureCondition `{failure}` holds"
                ))
            }
            Err(e) => {
                return Verdict::Fail(Failure { value, ..Failure::new(FailureClass::Config, e.to_string()) })
            }
        }
    }
    if reasons.is_empty() {
        return Verdict::Fail(Failure::new(
            FailureClass::Config,
            "the query guardrail needs a threshold, a successCondition or a failureCondition",
        ));
    }
    let message = format!("result {value}: {}", reasons.join("; "));
    fresh.pass(value, message, Vec::new())
}

fn condition_text(success: &str, failure: &str) -> String {
    match (success.trim().is_empty(), failure.trim().is_empty()) {
        (false, true) => format!("successCondition `{success}`"),
        (true, false) => format!("failureCondition `{failure}`"),
        _ => format!("successCondition `{success}` / failureCondition `{failure}`"),
    }
}

fn plural(n: f64) -> &'static str {
    if n == 1.0 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::DEFAULT_TIMEOUT;
    use std::time::{Duration, UNIX_EPOCH};

    const AT: f64 = 1_767_268_800.0;

    fn s(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp: AT,
            value,
        }
    }

    fn settings(window_secs: u64, threshold: f64) -> Settings {
        Settings {
            window: Duration::from_secs(window_secs),
            threshold: Some(threshold),
            min_pods: 1,
            timeout: DEFAULT_TIMEOUT,
            staleness: Duration::from_secs(300),
            min_requests: 10,
            quantile: 0.95,
            min_severity: crate::engine::config::Severity::Warning,
            tolerance: 0.0,
            settle: Duration::from_secs(120),
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(AT as u64)
    }

    fn coverage(pods: &[&str]) -> Coverage {
        let target = TargetSelector::new("pay", "api", "7f6e5d4c3").unwrap();
        let data = QueryData::Vector(pods.iter().map(|p| s(&[("pod", p)], AT - 10.0)).collect());
        Coverage::prove(&data, &target, at(), Duration::from_secs(300), 1).unwrap()
    }

    fn answers(entries: Vec<(&'static str, Vec<Sample>)>) -> Answers {
        entries
            .into_iter()
            .map(|(k, v)| (k, QueryData::Vector(v)))
            .collect()
    }

    #[test]
    fn restarts_count_whole_events_inside_the_window() {
        let c = coverage(&["a", "b"]);
        let ans = answers(vec![
            (
                query_name::RESTARTS_MAX,
                vec![
                    s(&[("pod", "a"), ("container", "api")], 5.0),
                    s(&[("pod", "b"), ("container", "api")], 0.0),
                ],
            ),
            (
                query_name::RESTARTS_MIN,
                vec![
                    s(&[("pod", "a"), ("container", "api")], 4.0),
                    s(&[("pod", "b"), ("container", "api")], 0.0),
                ],
            ),
            (
                query_name::CREATED,
                vec![
                    s(&[("pod", "a")], AT - 7200.0),
                    s(&[("pod", "b")], AT - 7200.0),
                ],
            ),
            (query_name::WAITING, vec![]),
        ]);
        let Verdict::Pass(p) = judge(
            GuardrailKind::Restarts,
            &c,
            &ans,
            &settings(300, 1.0),
            &[],
            at(),
        ) else {
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
        let Verdict::Fail(f) = judge(
            GuardrailKind::Restarts,
            &c,
            &ans,
            &settings(300, 0.0),
            &[],
            at(),
        ) else {
            panic!("1 > 0 fails")
        };
        assert_eq!((f.value.as_str(), f.class), ("1", FailureClass::Threshold));
        assert!(f.message.ends_with(": a/api: 1 restart"), "{}", f.message);
    }

    #[test]
    fn a_pod_born_in_the_window_counts_all_restarts_and_reasons_are_named() {
        let c = coverage(&["young"]);
        let ans = answers(vec![
            (
                query_name::RESTARTS_MAX,
                vec![s(&[("pod", "young"), ("container", "api")], 2.0)],
            ),
            (
                query_name::RESTARTS_MIN,
                vec![s(&[("pod", "young"), ("container", "api")], 2.0)],
            ),
            (
                query_name::CREATED,
                vec![s(&[("pod", "young")], AT - 180.0)],
            ),
            (
                query_name::WAITING,
                vec![s(
                    &[
                        ("pod", "young"),
                        ("container", "api"),
                        ("reason", "CrashLoopBackOff"),
                    ],
                    1.0,
                )],
            ),
        ]);
        let Verdict::Fail(f) = judge(
            GuardrailKind::Restarts,
            &c,
            &ans,
            &settings(300, 1.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.value, "2");
        assert!(
            f.message
                .contains("young/api: 2 restarts (CrashLoopBackOff)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn restarts_require_every_pod_and_finite_values() {
        let c = coverage(&["a", "b"]);
        let mut ans = answers(vec![
            (
                query_name::RESTARTS_MAX,
                vec![s(&[("pod", "a"), ("container", "api")], 0.0)],
            ),
            (
                query_name::RESTARTS_MIN,
                vec![s(&[("pod", "a"), ("container", "api")], 0.0)],
            ),
            (query_name::CREATED, vec![]),
            (query_name::WAITING, vec![]),
        ]);
        let Verdict::Fail(f) = judge(
            GuardrailKind::Restarts,
            &c,
            &ans,
            &settings(300, 1.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        assert!(f.message.contains(": b"), "{}", f.message);
        ans.insert(
            query_name::RESTARTS_MAX,
            QueryData::Vector(vec![
                s(&[("pod", "a"), ("container", "api")], f64::NAN),
                s(&[("pod", "b"), ("container", "api")], 0.0),
            ]),
        );
        let Verdict::Fail(f) = judge(
            GuardrailKind::Restarts,
            &c,
            &ans,
            &settings(300, 1.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::QueryError);
    }

    #[test]
    fn highly_available_kube_state_metrics_is_not_double_counted() {
        let c = coverage(&["a"]);
        let ans = answers(vec![
            (
                query_name::RESTARTS_MAX,
                vec![
                    s(
                        &[("pod", "a"), ("container", "api"), ("instance", "ksm-0")],
                        3.0,
                    ),
                    s(
                        &[("pod", "a"), ("container", "api"), ("instance", "ksm-1")],
                        3.0,
                    ),
                ],
            ),
            (
                query_name::RESTARTS_MIN,
                vec![
                    s(
                        &[("pod", "a"), ("container", "api"), ("instance", "ksm-0")],
                        1.0,
                    ),
                    s(
                        &[("pod", "a"), ("container", "api"), ("instance", "ksm-1")],
                        1.0,
                    ),
                ],
            ),
            (query_name::CREATED, vec![s(&[("pod", "a")], AT - 7200.0)]),
            (query_name::WAITING, vec![]),
        ]);
        let Verdict::Fail(f) = judge(
            GuardrailKind::Restarts,
            &c,
            &ans,
            &settings(300, 1.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.value, "2");
    }

    #[test]
    fn a_young_pod_not_ready_yet_is_waited_for_and_an_old_one_counts() {
        let c = coverage(&["young", "old"]);
        let readiness = |created_young: f64| {
            answers(vec![
                (
                    query_name::READY,
                    vec![s(&[("pod", "young")], 0.0), s(&[("pod", "old")], 1.0)],
                ),
                (
                    query_name::CREATED,
                    vec![
                        s(&[("pod", "young")], created_young),
                        s(&[("pod", "old")], AT - 3600.0),
                    ],
                ),
                (query_name::WAITING, vec![]),
            ])
        };
        let judge_at = |ans: &Answers, settle: u64| {
            let settings = Settings {
                settle: Duration::from_secs(settle),
                ..settings(0, 0.0)
            };
            judge(GuardrailKind::NotReady, &c, ans, &settings, &[], at())
        };
        let Verdict::Fail(waiting) = judge_at(&readiness(AT - 30.0), 120) else {
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
        let Verdict::Fail(counted) = judge_at(&readiness(AT - 300.0), 120) else {
            panic!()
        };
        assert_eq!(counted.awaiting, None, "older than settle: counted at once");
        let Verdict::Fail(no_settle) = judge_at(&readiness(AT - 30.0), 0) else {
            panic!()
        };
        assert_eq!(no_settle.awaiting, None, "settle 0: counted at once");
        let mut crashing = readiness(AT - 30.0);
        crashing.insert(
            query_name::WAITING,
            QueryData::Vector(vec![s(
                &[
                    ("pod", "young"),
                    ("container", "api"),
                    ("reason", "CrashLoopBackOff"),
                ],
                1.0,
            )]),
        );
        let Verdict::Fail(crash) = judge_at(&crashing, 120) else {
            panic!()
        };
        assert_eq!(
            crash.awaiting, None,
            "a CrashLoopBackOff is a verdict, not a start"
        );
    }

    #[test]
    fn not_ready_counts_pods_and_treats_missing_readiness_as_not_ready() {
        let c = coverage(&["a", "b", "c"]);
        let ans = answers(vec![
            (
                query_name::READY,
                vec![s(&[("pod", "a")], 1.0), s(&[("pod", "b")], 0.0)],
            ),
            (query_name::CREATED, vec![]),
            (
                query_name::WAITING,
                vec![s(
                    &[
                        ("pod", "b"),
                        ("container", "api"),
                        ("reason", "CrashLoopBackOff"),
                    ],
                    1.0,
                )],
            ),
        ]);
        let Verdict::Fail(f) = judge(
            GuardrailKind::NotReady,
            &c,
            &ans,
            &settings(0, 0.0),
            &[],
            at(),
        ) else {
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
        let Verdict::Pass(p) = judge(
            GuardrailKind::NotReady,
            &c,
            &ans,
            &settings(0, 2.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(p.value, "2");
    }

    #[test]
    fn latest_image_judges_the_specified_image_and_static_references() {
        let c = coverage(&["a"]);
        let ans = answers(vec![
            (
                query_name::IMAGES,
                vec![
                    s(
                        &[
                            ("pod", "a"),
                            ("container", "app"),
                            ("image_spec", "nginx"),
                            ("image", "docker.io/library/nginx:latest"),
                        ],
                        1.0,
                    ),
                    s(
                        &[
                            ("pod", "a"),
                            ("container", "side"),
                            ("image_spec", ""),
                            ("image", "envoy:v1"),
                        ],
                        1.0,
                    ),
                ],
            ),
            (
                query_name::WAITING,
                vec![s(
                    &[
                        ("pod", "a"),
                        ("container", "app"),
                        ("reason", "ImagePullBackOff"),
                    ],
                    1.0,
                )],
            ),
        ]);
        let Verdict::Fail(f) = judge(
            GuardrailKind::LatestImage,
            &c,
            &ans,
            &settings(0, 0.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.value, "1");
        assert!(
            f.message
                .contains("a/app image `nginx`: no tag (pulls `latest`) (ImagePullBackOff)"),
            "{}",
            f.message
        );
        let statics = [
            "registry.local/app:latest".to_string(),
            "registry.local/app:1.0".to_string(),
        ];
        let Verdict::Fail(f) = judge(
            GuardrailKind::LatestImage,
            &c,
            &ans,
            &settings(0, 0.0),
            &statics,
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.value, "2");
        assert!(
            f.message
                .contains("image `registry.local/app:latest` (from the configuration)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn query_guardrail_threshold_and_conditions() {
        let vector = QueryData::Vector(vec![s(&[], 0.97), s(&[], 0.99)]);
        assert!(matches!(
            judge_query(&vector, None, "all(result, # >= 0.95)", ""),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            judge_query(&vector, Some(0.98), "", ""),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            judge_query(&vector, Some(1.0), "", "result[0] < 0.98"),
            Verdict::Fail(_)
        ));
        let Verdict::Fail(f) = judge_query(&vector, None, "result[0] > 2", "result[0] > 5") else {
            panic!()
        };
        assert!(f.message.contains("inconclusive"), "{}", f.message);
        let Verdict::Fail(f) = judge_query(&vector, None, "", "") else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Config);
        let Verdict::Fail(f) = judge_query(&QueryData::Vector(vec![]), None, "true", "") else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        let Verdict::Fail(f) = judge_query(&vector, None, "result +", "") else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Config);
    }

    #[test]
    fn plans_name_their_queries() {
        let target = TargetSelector::new("shop", "web", "6c8d7f9a1").unwrap();
        let names: Vec<_> = plan(GuardrailKind::Restarts, &target, &settings(300, 1.0))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
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
        let names: Vec<_> = plan(GuardrailKind::LatestImage, &target, &settings(0, 0.0))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["coverage", "images", "waiting"]);
    }

    #[test]
    fn waiting_reasons_judge_only_the_listed_reasons_of_covered_pods() {
        let c = coverage(&["a", "b"]);
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
        let ans = answers(vec![
            (query_name::CONTAINERS, containers.clone()),
            (query_name::WAITING, waiting),
        ]);
        let Verdict::Fail(f) = judge_waiting(&c, &ans, &settings(0, 0.0), &[]) else {
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
        let only_pull = vec!["ImagePullBackOff".to_string()];
        assert!(matches!(
            judge_waiting(&c, &ans, &settings(0, 0.0), &only_pull),
            Verdict::Pass(_)
        ));
        // A covered pod without container data is not proven.
        let partial = answers(vec![
            (query_name::CONTAINERS, containers[..1].to_vec()),
            (query_name::WAITING, vec![]),
        ]);
        let Verdict::Fail(f) = judge_waiting(&c, &partial, &settings(0, 0.0), &[]) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
    }

    #[test]
    fn oom_kills_are_named_per_container() {
        let c = coverage(&["a"]);
        let ans = answers(vec![
            (
                query_name::CONTAINERS,
                vec![s(&[("pod", "a"), ("container", "api")], 1.0)],
            ),
            (
                query_name::OOM_KILLED,
                vec![s(
                    &[("pod", "a"), ("container", "api"), ("reason", "OOMKilled")],
                    1.0,
                )],
            ),
            (query_name::WAITING, vec![]),
        ]);
        let Verdict::Fail(f) = judge(
            GuardrailKind::OomKilled,
            &c,
            &ans,
            &settings(300, 0.0),
            &[],
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.value, "1");
        assert!(f.message.ends_with(": a/api OOMKilled"), "{}", f.message);
    }
}
