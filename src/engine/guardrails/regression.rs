//! `regression`: the canary against the stable ReplicaSet of the same rollout for one signal (error ratio,
//! a latency quantile, CPU or memory per pod). Each side must be proven on its own (coverage, and traffic for
//! the request signals). Two methods: `ratio` (the default) compares one value per side over `window`, and
//! fails when the canary exceeds stable × (1 + tolerance) and the `threshold` floor; `mann-whitney` compares
//! per-step samples of both sides (one subquery per side) with a one-sided Mann-Whitney U test and fails only
//! when the canary is significantly greater *and* its median exceeds the stable's × (1 + tolerance).
use std::time::{Duration, SystemTime};

use super::{coverage_query, prove_coverage, Answers, Evidence, Plan, Query, Side};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::promql::{self, TargetSelector};
use crate::engine::traffic::{self, round6, Measure, TrafficSettings};
use crate::engine::verdict::{
    format_number, kind_name, unix_seconds, vector, Comparison, Coverage, Failure, FailureClass,
    Proof, Verdict,
};
use crate::prometheus::QueryData;
use crate::stats;

pub const SUMMARY: &str =
    "the canary worse than the stable ReplicaSet (error-rate, latency, cpu, memory)";
/// Its keys besides the request keys of [`traffic::KEYS`].
pub const KEYS: &[&str] = &[
    "threshold",
    "errorLabel",
    "errorRegex",
    "histogramMetric",
    "quantile",
    "signal",
    "stablePodTemplateHash",
    "tolerance",
    "method",
    "step",
    "confidence",
    "minSamples",
];

/// The keys only `method: mann-whitney` reads.
const RANK_TEST_KEYS: [&str; 3] = ["step", "confidence", "minSamples"];

/// The name of each resource query in metadata (`query.<name>`, `query.stable-<name>`).
pub mod query_name {
    pub const CPU: &str = "cpu";
    pub const MEMORY: &str = "memory";
    /// `mann-whitney`: the per-step samples of the signal, one subquery per side.
    pub const SAMPLES: &str = "samples";
}

/// The most steps one side's subquery may span (`window` / `step`), Prometheus' own limit on the points of
/// one range query: a larger answer is refused rather than ranked.
pub const MAX_STEPS: u64 = 11_000;
/// The fewest samples per side `minSamples` accepts: with fewer, no outcome of the test reaches significance
/// at the usual confidences (4 vs 4 samples cannot go below p = 1/70), so the method could never fail.
pub const MIN_MIN_SAMPLES: u64 = 5;
/// How many samples per side metadata carries (the latest ones); the message gives the counts.
pub const METADATA_SAMPLES: usize = 60;

/// The metadata keys of a `mann-whitney` verdict.
pub mod metadata_key {
    pub const SAMPLES: &str = "samples.canary";
    pub const STABLE_SAMPLES: &str = "samples.stable";
    pub const P_VALUE: &str = "mann-whitney.p-value";
    pub const U: &str = "mann-whitney.u";
    pub const RATIO: &str = "mann-whitney.ratio";
    pub const COUNTS: &str = "mann-whitney.samples";
    pub const DROPPED: &str = "mann-whitney.dropped";
}

/// How canary and stable are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// One value per side over `window`: canary > stable × (1 + tolerance) fails.
    Ratio,
    /// Per-step samples per side, a one-sided rank test and an effect-size gate.
    MannWhitney(RankTest),
}

impl Method {
    pub const NAMES: [&'static str; 2] = ["ratio", "mann-whitney"];
}

/// The settings of `method: mann-whitney`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankTest {
    /// One sample per `step` (1m by default).
    pub step: Duration,
    /// The test is significant when p < 1 - confidence (0.95 by default).
    pub confidence: f64,
    /// Fewer finite samples on a side proves nothing (10 by default).
    pub min_samples: u64,
}

impl RankTest {
    fn parse(keys: &Keys, window: Duration) -> Result<RankTest, ConfigError> {
        let step = keys.duration("step")?.unwrap_or(Duration::from_secs(60));
        if step < Duration::from_secs(1) || step.subsec_nanos() != 0 {
            return Err(keys.invalid("step", "must be a whole number of seconds, at least 1s"));
        }
        if step > window {
            return Err(keys.invalid(
                "step",
                &format!(
                    "must not be longer than window {}",
                    duration::format(window)
                ),
            ));
        }
        let confidence = keys
            .number_where(
                "confidence",
                |c| c > 0.0 && c < 1.0,
                "must be between 0 and 1 (exclusive), e.g. 0.95",
            )?
            .unwrap_or(0.95);
        let min_samples = keys
            .number_where(
                "minSamples",
                |n| n >= MIN_MIN_SAMPLES as f64 && n.fract() == 0.0 && n <= MAX_STEPS as f64,
                &format!(
                    "must be a whole number from {MIN_MIN_SAMPLES} to {MAX_STEPS} (fewer samples can never be significant)"
                ),
            )?
            .map(|n| n as u64)
            .unwrap_or(10);
        let steps = window.as_secs() / step.as_secs();
        if steps > MAX_STEPS {
            return Err(keys.invalid(
                "step",
                &format!(
                    "window {} at step {} is {steps} steps, more than {MAX_STEPS}",
                    duration::format(window),
                    duration::format(step)
                ),
            ));
        }
        if steps < min_samples {
            return Err(keys.invalid(
                "minSamples",
                &format!(
                    "window {} at step {} gives at most {steps} samples per side, fewer than minSamples {min_samples}",
                    duration::format(window),
                    duration::format(step)
                ),
            ));
        }
        Ok(RankTest {
            step,
            confidence,
            min_samples,
        })
    }

    /// `one-minute` for 1m, else the step as written (`30s`, `5m`): how the message names a sample.
    fn step_words(&self) -> String {
        if self.step == Duration::from_secs(60) {
            "one-minute".to_string()
        } else {
            duration::format(self.step)
        }
    }
}

/// One side's per-step samples: the finite ones, and how many steps were NaN or ±Inf.
#[derive(Debug, Clone, PartialEq)]
struct Samples {
    values: Vec<f64>,
    dropped: usize,
}

/// What `regression` compares between canary and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    ErrorRate,
    Latency,
    Cpu,
    Memory,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Signal::ErrorRate,
        Signal::Latency,
        Signal::Cpu,
        Signal::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::ErrorRate => "error-rate",
            Signal::Latency => "latency",
            Signal::Cpu => "cpu",
            Signal::Memory => "memory",
        }
    }

    /// The default `tolerance`: latency 10 %, error ratio 50 %, CPU and memory 50 %.
    pub fn default_tolerance(self) -> f64 {
        match self {
            Signal::Latency => 0.1,
            Signal::ErrorRate | Signal::Cpu | Signal::Memory => 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub signal: Signal,
    pub stable_pod_template_hash: String,
    /// Canary fails above stable × (1 + tolerance).
    pub tolerance: f64,
    /// An absolute floor: canary values at or below it pass whatever the ratio (0 by default).
    pub threshold: f64,
    /// The latency quantile compared (signal `latency`).
    pub quantile: f64,
    /// The request series (request signals) and the window (every signal).
    pub traffic: TrafficSettings,
    pub method: Method,
}

impl Regression {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<Regression, ConfigError> {
        let signal = keys.one_of("signal", "signal", &Signal::ALL, Signal::name)?;
        let stable = keys.text("stablePodTemplateHash")?;
        let signal = signal.ok_or(ConfigError::Missing("signal"))?;
        let stable = stable.ok_or(ConfigError::Missing("stablePodTemplateHash"))?;
        promql::validate_pod_template_hash(&stable)
            .map_err(|e| keys.invalid("stablePodTemplateHash", &e.to_string()))?;
        let tolerance = keys.number_where(
            "tolerance",
            |t| (0.0..=100.0).contains(&t),
            "must be between 0 and 100 (0.1 = 10 % worse allowed)",
        )?;
        let regression = Regression {
            signal,
            stable_pod_template_hash: stable,
            tolerance: tolerance.unwrap_or(signal.default_tolerance()),
            threshold: config::threshold(keys, 0.0)?,
            quantile: traffic::quantile(keys, profile)?,
            traffic: TrafficSettings::parse(keys, profile)?,
            method: Method::Ratio,
        };
        let method = keys
            .one_of("method", "method", &Method::NAMES, |m| m)?
            .unwrap_or("ratio");
        let regression = match method {
            "mann-whitney" => Regression {
                method: Method::MannWhitney(RankTest::parse(keys, regression.traffic.window)?),
                ..regression
            },
            _ => {
                if let Some(key) = RANK_TEST_KEYS.iter().find(|k| keys.is_set(k)) {
                    return Err(keys.invalid(key, "only used with `method: mann-whitney`"));
                }
                regression
            }
        };
        if let Some(measure) = regression.measure() {
            regression.traffic.check(measure)?;
        }
        Ok(regression)
    }

    fn measure(&self) -> Option<Measure> {
        match self.signal {
            Signal::ErrorRate => Some(Measure::Errors),
            Signal::Latency => Some(Measure::Latency(self.quantile)),
            Signal::Cpu | Signal::Memory => None,
        }
    }

    fn stable(&self, canary: &TargetSelector) -> Result<TargetSelector, Failure> {
        canary
            .with_hash(&self.stable_pod_template_hash)
            .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))
    }

    /// Both sides, asked together under the measurement's one deadline.
    pub fn plan(&self, canary: &TargetSelector) -> Result<Plan, Failure> {
        let stable = self.stable(canary)?;
        Ok(Plan {
            sides: vec![
                Side {
                    label: None,
                    described: canary.describe(),
                    queries: self.side(canary)?,
                },
                Side {
                    label: Some("stable"),
                    described: stable.describe(),
                    queries: self.side(&stable)?,
                },
            ],
        })
    }

    fn side(&self, target: &TargetSelector) -> Result<Vec<Query>, Failure> {
        if let Method::MannWhitney(test) = self.method {
            return self.rank_side(&test, target);
        }
        let mut queries = vec![coverage_query(target)];
        match self.measure() {
            Some(measure) => queries.extend(traffic::plan(&self.traffic, measure, target)?.queries),
            None if self.signal == Signal::Cpu => {
                queries.push((query_name::CPU, target.cpu_per_pod(self.traffic.window)))
            }
            None => queries.push((
                query_name::MEMORY,
                target.memory_per_pod(self.traffic.window),
            )),
        }
        Ok(queries)
    }

    /// One side's proven value of the signal.
    fn side_value(
        &self,
        target: &TargetSelector,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<(Coverage, f64), Failure> {
        let evidence = side_evidence(target, answers, common, at)?;
        let value = match self.measure() {
            Some(measure) => {
                let (plan, proof) = self.traffic.proven(measure, &evidence)?;
                match measure {
                    Measure::Errors => traffic::error_ratio(&proof, answers)?.1,
                    Measure::Latency(_) => {
                        traffic::latency_seconds(&plan, &evidence.coverage, answers)?
                    }
                }
            }
            None => self.usage_per_pod(&evidence.coverage, answers)?,
        };
        Ok((evidence.coverage, value))
    }

    fn usage_per_pod(&self, coverage: &Coverage, answers: &Answers) -> Result<f64, Failure> {
        let name = if self.signal == Signal::Cpu {
            query_name::CPU
        } else {
            query_name::MEMORY
        };
        let per_pod = coverage.by_pod(vector(super::answer(answers, name)?, name)?);
        coverage.require_all(&per_pod.keys().cloned().collect(), &format!("{name} usage"))?;
        let mut total = 0.0;
        for s in per_pod.values().flatten() {
            if !s.value.is_finite() {
                return Err(Failure::new(
                    FailureClass::QueryError,
                    format!("{name} query returned {}", format_number(s.value)),
                ));
            }
            total += s.value;
        }
        Ok(total / per_pod.len() as f64)
    }

    /// Judges canary against stable from the answers of both sides of [`Regression::plan`].
    pub fn judge(
        &self,
        canary: &TargetSelector,
        answers: &[Answers],
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let [canary_answers, stable_answers] = answers else {
            return Err(Failure::new(
                FailureClass::QueryError,
                "regression needs both sides' answers",
            ));
        };
        let stable_target = self.stable(canary)?;
        if let Method::MannWhitney(test) = self.method {
            let canary = side(
                "canary",
                self.side_samples(&test, canary, canary_answers, common, at),
            )?;
            let stable = side(
                "stable",
                self.side_samples(&test, &stable_target, stable_answers, common, at),
            )?;
            return Ok(self.rank_compare(&test, canary, stable));
        }
        let canary = side(
            "canary",
            self.side_value(canary, canary_answers, common, at),
        )?;
        let stable = side(
            "stable",
            self.side_value(&stable_target, stable_answers, common, at),
        )?;
        Ok(self.compare((&canary.0, canary.1), (&stable.0, stable.1)))
    }

    fn describe(&self) -> String {
        match self.signal {
            Signal::ErrorRate => "error ratio".to_string(),
            Signal::Latency => format!("p{} latency (s)", format_number(self.quantile * 100.0)),
            Signal::Cpu => "CPU per pod (cores)".to_string(),
            Signal::Memory => "memory per pod (bytes)".to_string(),
        }
    }

    /// Canary against stable; both values already proven.
    pub fn compare(&self, canary: (&Coverage, f64), stable: (&Coverage, f64)) -> Verdict {
        let proof = match Comparison::of(canary.0, stable.0) {
            Ok(proof) => proof,
            Err(failure) => return Verdict::Fail(failure),
        };
        let (c, s) = (canary.1, stable.1);
        let limit = s * (1.0 + self.tolerance);
        let floor = self.threshold;
        let ratio = if s > 0.0 {
            format_number(round6(c / s))
        } else if c > 0.0 {
            "+Inf".to_string()
        } else {
            "1".to_string()
        };
        let message = format!(
            "canary {} {} vs stable {}: ratio {ratio}, limit {} (stable × (1 + tolerance {})); ReplicaSets {} vs {} over {}{}",
            self.describe(),
            format_number(round6(c)),
            format_number(round6(s)),
            format_number(round6(limit)),
            format_number(self.tolerance),
            canary.0.target(),
            stable.0.target(),
            duration::format(self.traffic.window),
            if floor > 0.0 { format!(", floor {}", format_number(floor)) } else { String::new() },
        );
        let value = format_number(round6(c));
        crate::engine::verdict::judge_limit(&proof, c > limit && c > floor, value, message)
    }
}

mod ranked;

use ranked::side;

/// One side's evidence: its ReplicaSet's pods proven covered and fresh.
fn side_evidence<'a>(
    target: &'a TargetSelector,
    answers: &'a Answers,
    common: &Common,
    at: SystemTime,
) -> Result<Evidence<'a>, Failure> {
    Ok(Evidence {
        target,
        coverage: prove_coverage(answers, target, common, at)?,
        answers,
        staleness: common.staleness,
        at,
    })
}

#[cfg(test)]
mod tests;
