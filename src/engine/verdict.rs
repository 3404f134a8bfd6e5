//! Verdicts, fail-closed by construction: a passing verdict can only be made from a [`Coverage`] (fresh data
//! about at least `minPods` target pods) or from a [`FreshResult`] (a query that returned finite data), so no
//! code path can reach `Successful` by default, by omission or through an error.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::duration;
use super::promql::TargetSelector;
use super::settle::Awaiting;
use crate::prometheus::{QueryData, Sample};

pub use crate::failure::FailureClass;

/// A failed verdict: the class, the reason, and the value when one was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
    pub value: String,
    /// Every offending item (the message names the first few).
    pub offenders: Vec<String>,
    /// Set when the failure is an absence that is normal while a canary starts (no series *yet*): the
    /// measurement may settle (see [`super::settle`]). `None`: answered at once.
    pub awaiting: Option<Awaiting>,
    /// Evidence beyond the message, as metadata entries (`regression` with `mann-whitney`: the samples and
    /// the test's outcome); empty for most verdicts.
    pub details: Vec<(&'static str, String)>,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
            value: String::new(),
            offenders: Vec::new(),
            awaiting: None,
            details: Vec::new(),
        }
    }

    /// The same failure, marked as an absence that may still end (it settles instead of failing at once).
    pub fn awaiting(self, awaiting: Awaiting) -> Failure {
        Failure {
            awaiting: Some(awaiting),
            ..self
        }
    }
}

/// The outcome of one guardrail. `Pass` has a private field: only this module's proof types build it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(Pass),
    Fail(Failure),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub value: String,
    pub message: String,
    /// Offending items seen below the threshold; reported, not fatal.
    pub offenders: Vec<String>,
    /// Evidence beyond the message, as metadata entries (see [`Failure::details`]).
    pub details: Vec<(&'static str, String)>,
    /// Private: a `Pass` exists only where a proof made it.
    proof: Proven,
}

impl Verdict {
    /// The same verdict carrying `details` as metadata entries, whichever way it went.
    pub fn with_details(self, details: Vec<(&'static str, String)>) -> Verdict {
        match self {
            Verdict::Pass(pass) => Verdict::Pass(Pass { details, ..pass }),
            Verdict::Fail(failure) => Verdict::Fail(Failure { details, ..failure }),
        }
    }
}

/// The token a [`Proof`] puts into every [`Pass`].
#[derive(Debug, Clone, PartialEq)]
struct Proven;

/// A threshold check over a measured value already rendered as `value`: `exceeded` fails, otherwise the proof
/// passes.
pub fn judge_limit(proof: &dyn Proof, exceeded: bool, value: String, message: String) -> Verdict {
    if exceeded {
        Verdict::Fail(Failure {
            class: FailureClass::Threshold,
            message,
            value,
            offenders: Vec::new(),
            awaiting: None,
            details: Vec::new(),
        })
    } else {
        proof.pass(value, message, Vec::new())
    }
}

/// How many offenders a message names before it says "and N more" (metadata carries them all).
pub const MESSAGE_OFFENDERS: usize = 5;

/// A threshold check over a count: `count > threshold` fails. `summary` is completed with the first
/// [`MESSAGE_OFFENDERS`] offenders; all of them travel in the verdict.
pub fn judge_count(
    proof: &dyn Proof,
    count: f64,
    threshold: f64,
    summary: String,
    offenders: Vec<String>,
) -> Verdict {
    let value = format_number(count);
    let message = if offenders.is_empty() {
        summary
    } else {
        format!(
            "{summary}: {}",
            join_limited(offenders.iter().map(String::as_str), MESSAGE_OFFENDERS)
        )
    };
    if count > threshold {
        Verdict::Fail(Failure {
            class: FailureClass::Threshold,
            message,
            value,
            offenders,
            awaiting: None,
            details: Vec::new(),
        })
    } else {
        proof.pass(value, message, offenders)
    }
}

/// Something that proves data was fresh and covered the target. Sealed: implemented only here.
pub trait Proof: sealed::Sealed {
    fn pass(&self, value: String, message: String, offenders: Vec<String>) -> Verdict {
        Verdict::Pass(Pass {
            value,
            message,
            offenders,
            details: Vec::new(),
            proof: Proven,
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Coverage {}
    impl Sealed for super::FreshResult {}
    impl Sealed for super::Traffic {}
    impl Sealed for super::RuleEvaluation {}
    impl Sealed for super::Comparison {}
    impl Sealed for super::FreshSample {}
}

/// Fresh kube-state-metrics data about at least `minPods` pods of the target ReplicaSet.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// The target pods with fresh samples.
    pub pods: BTreeSet<String>,
    target: String,
}

impl Proof for Coverage {}

impl Coverage {
    /// Proves coverage from the `timestamp(kube_pod_info{…})` answer, or says why it cannot be proven. The
    /// series must come from one source (see [`prove_one_source`]).
    pub fn prove(
        data: &QueryData,
        target: &TargetSelector,
        at: SystemTime,
        staleness: Duration,
        min_pods: u64,
        replica_labels: &[String],
    ) -> Result<Coverage, Failure> {
        let samples = vector(data, "coverage")?;
        prove_one_source(samples, target, replica_labels)?;
        let now = unix_seconds(at);
        let mut fresh = BTreeSet::new();
        let mut stale = Vec::new();
        for sample in samples {
            let pod = sample.labels.get("pod").cloned().unwrap_or_default();
            if !sample.value.is_finite() {
                return Err(Failure::new(
                    FailureClass::QueryError,
                    format!("coverage query returned {} for pod {pod}", sample.value),
                ));
            }
            let age = now - sample.value;
            if age <= staleness.as_secs_f64() {
                fresh.insert(pod);
            } else {
                stale.push((pod, age));
            }
        }
        let target_name = target.describe();
        if fresh.len() as u64 >= min_pods {
            return Ok(Coverage {
                pods: fresh,
                target: target_name,
            });
        }
        if !stale.is_empty() {
            stale.sort_by(|a, b| a.0.cmp(&b.0));
            let oldest = stale.iter().map(|(_, age)| *age).fold(0.0, f64::max);
            return Err(Failure::new(
                FailureClass::Stale,
                format!(
                    "stale kube-state-metrics data for pods of ReplicaSet {target_name}: {} of {} pods last reported {} ago, older than staleness {} (need {min_pods} fresh) — is kube-state-metrics still scraped?",
                    stale.len(),
                    stale.len() + fresh.len(),
                    duration::format(Duration::from_secs(oldest.max(0.0) as u64)),
                    duration::format(staleness),
                ),
            ));
        }
        // No series yet (or fewer than minPods) is absence so far: kube-state-metrics reports new pods only
        // after its next scrape. Stale series (above) are data that stopped, and fail at once.
        if fresh.is_empty() {
            return Err(Failure::new(
                FailureClass::NoData,
                format!("no fresh kube-state-metrics series for pods of ReplicaSet {target_name} — is kube-state-metrics scraped, and are the namespace, rollout and pod-template hash right?"),
            )
            .awaiting(Awaiting::PodSeries));
        }
        Err(Failure::new(
            FailureClass::NoData,
            format!("only {} of the required {min_pods} pods of ReplicaSet {target_name} have fresh kube-state-metrics series", fresh.len()),
        )
        .awaiting(Awaiting::PodSeries))
    }

    /// `shop/web-6c8d7f9a1`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Fails unless every covered pod appears in `seen` (a query must cover the whole target, not a part).
    pub fn require_all(&self, seen: &BTreeSet<String>, what: &str) -> Result<(), Failure> {
        let missing: Vec<&String> = self.pods.difference(seen).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Failure::new(
            FailureClass::NoData,
            format!(
                "no {what} data for {} of {} pods of ReplicaSet {}: {}",
                missing.len(),
                self.pods.len(),
                self.target,
                join_limited(missing.iter().map(|p| p.as_str()), 5)
            ),
        ))
    }

    /// Keeps the samples of covered pods, grouped by pod.
    pub fn by_pod<'a>(&self, samples: &'a [Sample]) -> BTreeMap<String, Vec<&'a Sample>> {
        let mut out: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
        for s in samples {
            if let Some(pod) = s.labels.get("pod") {
                if self.pods.contains(pod) {
                    out.entry(pod.clone()).or_default().push(s);
                }
            }
        }
        out
    }
}

/// Enough fresh requests to the covered target inside the window: the proof of `error-rate` and `latency`.
/// Made only from a [`Coverage`], so the target's pods are proven too.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// Requests counted in the window (an extrapolated `increase`, so possibly fractional).
    pub requests: f64,
}

impl Proof for Traffic {}

impl Traffic {
    /// `requests` is the `sum(increase(…))` answer, `latest` the `max(timestamp(…))` answer; `what` names the
    /// request series in messages (`http_requests_total{code!=""}`).
    #[allow(clippy::too_many_arguments)]
    pub fn prove(
        coverage: &Coverage,
        requests: &QueryData,
        latest: &QueryData,
        at: SystemTime,
        window: Duration,
        staleness: Duration,
        min_requests: u64,
        what: &str,
        canary_age: Option<Duration>,
    ) -> Result<Traffic, Failure> {
        let target = coverage.target();
        // No request series yet is absence so far: a new canary's first requests need two scrapes to count.
        let no_series = || {
            Failure::new(
                FailureClass::NoTraffic,
                format!("no request series {what} for ReplicaSet {target} in the last {} — is the metric scraped, and do the source and matchers fit?", duration::format(window)),
            )
            .awaiting(Awaiting::RequestSeries)
        };
        let latest =
            single(vector(latest, "latest-request")?, "latest-request")?.ok_or_else(no_series)?;
        let requests = single(vector(requests, "requests")?, "requests")?.ok_or_else(no_series)?;
        let age = unix_seconds(at) - latest;
        if age > staleness.as_secs_f64() {
            return Err(Failure::new(
                FailureClass::Stale,
                format!(
                    "stale request series {what} for ReplicaSet {target}: last sample {} ago, older than staleness {}",
                    duration::format(Duration::from_secs(age.max(0.0) as u64)),
                    duration::format(staleness)
                ),
            ));
        }
        if requests < min_requests as f64 {
            // Too few requests is absence so far only while the canary is younger than the window (its window
            // is still filling); an unknown age is not proof of youth.
            let young = canary_age.is_some_and(|age| age < window);
            return Err(Failure {
                value: format_number(round3(requests)),
                awaiting: young.then_some(Awaiting::Requests),
                ..Failure::new(
                    FailureClass::NoTraffic,
                    format!(
                        "not enough traffic to judge ReplicaSet {target}: {} request{} in the last {} (minRequests {min_requests})",
                        format_number(round3(requests)),
                        if requests == 1.0 { "" } else { "s" },
                        duration::format(window)
                    ),
                )
            });
        }
        Ok(Traffic { requests })
    }
}

/// Proof that Prometheus evaluates alerting rules: its own last rule-group evaluation is fresh, so an
/// absent `ALERTS` series means "nothing firing", not "nobody looked".
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvaluation {
    /// Seconds since the last rule-group evaluation.
    pub age: f64,
}

impl Proof for RuleEvaluation {}

impl RuleEvaluation {
    /// From the `max without (rule_group) (prometheus_rule_group_last_evaluation_timestamp_seconds)` answer:
    /// one series per Prometheus, which must all be one source (replicas of it aside).
    pub fn prove(
        data: &QueryData,
        at: SystemTime,
        staleness: Duration,
        replica_labels: &[String],
    ) -> Result<RuleEvaluation, Failure> {
        let samples = vector(data, "rule-evaluation")?;
        if let Some((_, _, a, b)) = two_sources(samples, &["rule_group"], replica_labels) {
            return Err(Failure::new(
                FailureClass::Ambiguous,
                format!("alerting rules are evaluated by Prometheus servers reported with {a} and {b}: {SELECT_ONE_SOURCE}"),
            ));
        }
        let last = samples.iter().map(|s| s.value).reduce(|a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        });
        if last.is_some_and(|v| !v.is_finite()) {
            return Err(Failure::new(
                FailureClass::QueryError,
                "rule-evaluation query returned a value that is not a finite timestamp",
            ));
        }
        let last = last.ok_or_else(|| {
            Failure::new(
                FailureClass::NoData,
                "no prometheus_rule_group_last_evaluation_timestamp_seconds: cannot prove that alerting rules are evaluated (does this Prometheus scrape itself, and does it load rules?)",
            )
        })?;
        let age = unix_seconds(at) - last;
        if age > staleness.as_secs_f64() {
            return Err(Failure::new(
                FailureClass::Stale,
                format!(
                    "alerting rules were last evaluated {} ago, older than staleness {}: an empty ALERTS proves nothing",
                    duration::format(Duration::from_secs(age.max(0.0) as u64)),
                    duration::format(staleness)
                ),
            ));
        }
        Ok(RuleEvaluation { age })
    }
}

/// Both sides of a canary-versus-stable comparison proven: made only from two [`Coverage`]s of different
/// ReplicaSets (the traffic signals also prove [`Traffic`] on each side before comparing).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    _proven: (),
}

impl Proof for Comparison {}

impl Comparison {
    pub fn of(canary: &Coverage, stable: &Coverage) -> Result<Comparison, Failure> {
        if canary.target() == stable.target() {
            return Err(Failure::new(
                FailureClass::Config,
                format!("canary and stable are the same ReplicaSet {}: a comparison with itself proves nothing", canary.target()),
            ));
        }
        Ok(Comparison { _proven: () })
    }
}

/// One series sampled within `staleness` of the evaluation time (the proof of `gitops`).
#[derive(Debug, Clone, PartialEq)]
pub struct FreshSample {
    /// Seconds since the sample.
    pub age: f64,
}

impl Proof for FreshSample {}

impl FreshSample {
    /// `timestamp` is the sample's time (the value of a `timestamp(…)` query); `what` names the series.
    pub fn prove(
        timestamp: f64,
        at: SystemTime,
        staleness: Duration,
        what: &str,
    ) -> Result<FreshSample, Failure> {
        if !timestamp.is_finite() {
            return Err(Failure::new(
                FailureClass::QueryError,
                format!("{what}: timestamp {}", format_number(timestamp)),
            ));
        }
        let age = unix_seconds(at) - timestamp;
        if age > staleness.as_secs_f64() {
            return Err(Failure::new(
                FailureClass::Stale,
                format!(
                    "stale {what}: last sample {} ago, older than staleness {}",
                    duration::format(Duration::from_secs(age.max(0.0) as u64)),
                    duration::format(staleness)
                ),
            ));
        }
        Ok(FreshSample { age })
    }
}

/// The one finite value of an aggregated answer; `None` when it is empty.
fn single(samples: &[Sample], query: &str) -> Result<Option<f64>, Failure> {
    match samples {
        [] => Ok(None),
        [one] if one.value.is_finite() => Ok(Some(one.value)),
        [one] => Err(Failure::new(
            FailureClass::QueryError,
            format!("{query} query returned {}", format_number(one.value)),
        )),
        more => Err(Failure::new(
            FailureClass::QueryError,
            format!(
                "{query} query returned {} samples; expected one",
                more.len()
            ),
        )),
    }
}

/// Rounds to 3 decimals for messages.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A query result that is finite and non-empty (the proof used by the `query` guardrail).
#[derive(Debug, Clone, PartialEq)]
pub struct FreshResult {
    pub values: Vec<f64>,
    pub scalar: bool,
}

impl Proof for FreshResult {}

impl FreshResult {
    pub fn prove(data: &QueryData) -> Result<FreshResult, Failure> {
        let (values, scalar) = match data {
            QueryData::Vector(samples) => {
                (samples.iter().map(|s| s.value).collect::<Vec<_>>(), false)
            }
            QueryData::Scalar(sample) => (vec![sample.value], true),
            QueryData::Matrix(_) => return Err(unexpected("matrix")),
            QueryData::String(_) => return Err(unexpected("string")),
        };
        if values.is_empty() {
            return Err(Failure::new(
                FailureClass::NoData,
                "the query returned no data (an empty vector proves nothing)",
            ));
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Failure {
                class: FailureClass::QueryError,
                message: format!(
                    "the query returned {} (not a finite number)",
                    format_number(*bad)
                ),
                value: format_values(&values, scalar),
                offenders: Vec::new(),
                awaiting: None,
                details: Vec::new(),
            });
        }
        Ok(FreshResult { values, scalar })
    }

    /// The value as Argo's Prometheus provider shows it: `0.5` for a scalar, `[0.97,0.99]` for a vector.
    pub fn display(&self) -> String {
        format_values(&self.values, self.scalar)
    }
}

fn format_values(values: &[f64], scalar: bool) -> String {
    if scalar {
        return values
            .first()
            .map(|v| format_number(*v))
            .unwrap_or_default();
    }
    format!(
        "[{}]",
        values
            .iter()
            .map(|v| format_number(*v))
            .collect::<Vec<_>>()
            .join(",")
    )
}

mod format;
mod shape;
mod sources;

pub use format::{format_number, join_limited, unix_seconds};
use shape::unexpected;
pub use shape::{answered_at, kind_name, vector};
pub use sources::prove_one_source;
use sources::{two_sources, SELECT_ONE_SOURCE};

#[cfg(test)]
mod tests;
