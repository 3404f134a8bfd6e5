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
        let evidence = Evidence {
            target,
            coverage: prove_coverage(answers, target, common, at)?,
            answers,
            staleness: common.staleness,
            at,
        };
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
        if c > limit && c > floor {
            return Verdict::Fail(Failure {
                class: FailureClass::Threshold,
                message,
                value,
                offenders: Vec::new(),
                awaiting: None,
                details: Vec::new(),
            });
        }
        proof.pass(value, message, Vec::new())
    }
}

/// `method: mann-whitney`: per-step samples per side and the rank test.
impl Regression {
    /// The signal over one step, as an instant expression (one series), and its factor into the unit shown.
    fn per_step(&self, test: &RankTest, target: &TargetSelector) -> Result<(String, f64), Failure> {
        Ok(match (self.measure(), self.signal) {
            (Some(measure), _) => traffic::per_step(&self.traffic, measure, target, test.step)?,
            // Per pod, averaged over the pod set: a canary of 1 pod compares with a stable of 10.
            (None, Signal::Cpu) => (format!("avg({})", target.cpu_per_pod(test.step)), 1.0),
            (None, _) => (format!("avg({})", target.memory_per_pod(test.step)), 1.0),
        })
    }

    /// One side: its coverage, the traffic proof (request signals, over `window` as for `ratio`) and the
    /// per-step samples as one subquery `(<per-step expression>)[window:step]`.
    fn rank_side(&self, test: &RankTest, target: &TargetSelector) -> Result<Vec<Query>, Failure> {
        let mut queries = vec![coverage_query(target)];
        if let Some(measure) = self.measure() {
            let plan = traffic::plan(&self.traffic, measure, target)?;
            queries.extend(plan.queries.into_iter().filter(|(name, _)| {
                [
                    traffic::query_name::REQUESTS,
                    traffic::query_name::LATEST_REQUEST,
                ]
                .contains(name)
            }));
        }
        let (expression, _) = self.per_step(test, target)?;
        // One second short of `window`: Prometheus 2 includes both ends of a subquery's range, Prometheus 3
        // only the last, so `[1199s:60s]` is 20 steps on both, each step's data inside the window.
        let range = self.traffic.window.as_secs().saturating_sub(1).max(1);
        queries.push((
            query_name::SAMPLES,
            format!(
                "({expression})[{range}s:{}]",
                duration::promql_range(test.step)
            ),
        ));
        Ok(queries)
    }

    /// One side's proven samples: coverage and traffic as for `ratio`, then exactly one fresh series.
    fn side_samples(
        &self,
        test: &RankTest,
        target: &TargetSelector,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<(Coverage, Samples), Failure> {
        let evidence = Evidence {
            target,
            coverage: prove_coverage(answers, target, common, at)?,
            answers,
            staleness: common.staleness,
            at,
        };
        if let Some(measure) = self.measure() {
            self.traffic.proven(measure, &evidence)?;
        }
        let (_, unit) = self.per_step(test, target)?;
        let what = format!("{} samples", self.signal.name());
        let series = match super::answer(answers, query_name::SAMPLES)? {
            QueryData::Matrix(series) => series,
            other => {
                let kind = kind_name(other);
                return Err(Failure::new(
                    FailureClass::QueryError,
                    format!(
                        "samples query returned a {kind}; expected a range vector (a subquery's)"
                    ),
                ));
            }
        };
        let steps = match series.as_slice() {
            [] => {
                return Err(Failure::new(
                    FailureClass::NoData,
                    format!(
                        "no {what} for ReplicaSet {} in the last {}",
                        evidence.coverage.target(),
                        duration::format(self.traffic.window)
                    ),
                ))
            }
            [one] => &one.samples,
            more => {
                return Err(Failure::new(
                    FailureClass::Ambiguous,
                    format!(
                        "samples query returned {} series; expected one (the per-step {} of ReplicaSet {})",
                        more.len(),
                        self.signal_phrase(),
                        evidence.coverage.target()
                    ),
                ))
            }
        };
        if steps.len() as u64 > MAX_STEPS + 1 {
            return Err(Failure::new(
                FailureClass::QueryError,
                format!(
                    "samples query returned {} steps, more than {MAX_STEPS}",
                    steps.len()
                ),
            ));
        }
        let last = steps
            .iter()
            .map(|(t, _)| *t)
            .fold(f64::NEG_INFINITY, f64::max);
        let age = unix_seconds(at) - last;
        if !age.is_finite() || age > common.staleness.as_secs_f64() {
            return Err(Failure::new(
                FailureClass::Stale,
                format!(
                    "stale {what} for ReplicaSet {}: the last step is {} before the evaluation instant, older than staleness {}",
                    evidence.coverage.target(),
                    duration::format(Duration::from_secs_f64(age.clamp(0.0, 1e12))),
                    duration::format(common.staleness)
                ),
            ));
        }
        let values: Vec<f64> = steps
            .iter()
            .map(|(_, v)| v * unit)
            .filter(|v| v.is_finite())
            .collect();
        let dropped = steps.len() - values.len();
        Ok((evidence.coverage, Samples { values, dropped }))
    }

    /// The signal without its unit, for messages (`p99 latency`).
    fn signal_phrase(&self) -> String {
        match self.signal {
            Signal::ErrorRate => "error ratio".to_string(),
            Signal::Latency => format!("p{} latency", format_number(self.quantile * 100.0)),
            Signal::Cpu => "CPU per pod".to_string(),
            Signal::Memory => "memory per pod".to_string(),
        }
    }

    /// `0.44 s`, `0.3 cores`: a sample value with three significant digits and its unit.
    fn show(&self, v: f64) -> String {
        let unit = match self.signal {
            Signal::ErrorRate => "",
            Signal::Latency => " s",
            Signal::Cpu => " cores",
            Signal::Memory => " bytes",
        };
        format!("{}{unit}", format_number(significant(v, 3)))
    }

    /// Canary samples against stable samples, both sides proven.
    fn rank_compare(
        &self,
        test: &RankTest,
        canary: (Coverage, Samples),
        stable: (Coverage, Samples),
    ) -> Verdict {
        let (canary_coverage, c) = canary;
        let (stable_coverage, s) = stable;
        let step_words = test.step_words();
        let mut details = vec![
            (metadata_key::SAMPLES, bounded(&c.values)),
            (metadata_key::STABLE_SAMPLES, bounded(&s.values)),
            (
                metadata_key::DROPPED,
                format!("canary {}, stable {}", c.dropped, s.dropped),
            ),
            (
                metadata_key::COUNTS,
                format!("{} vs {}", c.values.len(), s.values.len()),
            ),
        ];
        let dropped = match c.dropped + s.dropped {
            0 => String::new(),
            n => format!(
                "; {n} NaN/Inf step{} dropped (canary {}, stable {})",
                if n == 1 { "" } else { "s" },
                c.dropped,
                s.dropped
            ),
        };
        let context = format!(
            "{dropped}; ReplicaSets {} vs {} over {}",
            canary_coverage.target(),
            stable_coverage.target(),
            duration::format(self.traffic.window)
        );
        for (which, samples) in [("canary", &c), ("stable", &s)] {
            if (samples.values.len() as u64) < test.min_samples {
                let failure = Failure::new(
                    FailureClass::NoData,
                    format!(
                        "{which}: {} finite {step_words} samples of the {} in the last {}, fewer than minSamples {} (unproven){context}",
                        samples.values.len(),
                        self.signal_phrase(),
                        duration::format(self.traffic.window),
                        test.min_samples
                    ),
                );
                return Verdict::Fail(failure).with_details(details);
            }
        }
        let proof = match Comparison::of(&canary_coverage, &stable_coverage) {
            Ok(proof) => proof,
            Err(failure) => return Verdict::Fail(failure).with_details(details),
        };
        let outcome = match stats::greater(&c.values, &s.values) {
            Ok(outcome) => outcome,
            Err(e) => {
                return Verdict::Fail(Failure::new(
                    FailureClass::QueryError,
                    format!("the Mann-Whitney test cannot be computed: {e}"),
                ))
                .with_details(details)
            }
        };
        // Both sides hold at least minSamples (≥ 5) finite values.
        let (Some(mc), Some(ms)) = (stats::median(&c.values), stats::median(&s.values)) else {
            return Verdict::Fail(Failure::new(FailureClass::NoData, "no samples"));
        };
        let alpha = 1.0 - test.confidence;
        let limit = 1.0 + self.tolerance;
        let significant = outcome.p_value < alpha;
        let larger = mc > ms * limit;
        let above_floor = mc > self.threshold;
        let ratio = if ms > 0.0 {
            mc / ms
        } else if mc > 0.0 {
            f64::INFINITY
        } else {
            1.0
        };
        let shown_ratio = match format!("{ratio:.2}") {
            _ if !ratio.is_finite() => "+Inf".to_string(),
            // Close to the limit, one more digit shows which side it is on.
            shown if shown == format!("{limit:.2}") => format!("{ratio:.3}"),
            shown => shown,
        };
        details.push((metadata_key::P_VALUE, format!("{:e}", outcome.p_value)));
        details.push((metadata_key::U, format_number(outcome.u)));
        details.push((metadata_key::RATIO, format_number(round6(ratio))));
        let verdict = match (significant, larger, above_floor) {
            (true, true, true) => "regression".to_string(),
            (true, true, false) => format!(
                "no regression (the canary median is at or below the floor {})",
                self.show(self.threshold)
            ),
            (true, false, _) => "no regression (significant, but within tolerance)".to_string(),
            (false, _, _) => "no regression (not significant)".to_string(),
        };
        let message = format!(
            "canary {what} median {} vs stable {} (×{shown_ratio} {} {limit:.2}), Mann-Whitney p = {} {} {} on {} vs {} {step_words} samples: {verdict}{context}",
            self.show(mc),
            self.show(ms),
            if larger { ">" } else { "≤" },
            p_value(outcome.p_value),
            if significant { "<" } else { "≥" },
            format_number(round6(alpha)),
            c.values.len(),
            s.values.len(),
            what = self.signal_phrase(),
        );
        let value = format_number(round6(mc));
        if significant && larger && above_floor {
            return Verdict::Fail(Failure {
                value,
                ..Failure::new(FailureClass::Threshold, message)
            })
            .with_details(details);
        }
        proof.pass(value, message, Vec::new()).with_details(details)
    }
}

/// A side's failure, its message prefixed by the side (`canary: …`).
fn side<T>(which: &str, result: Result<T, Failure>) -> Result<T, Failure> {
    result.map_err(|f| Failure {
        message: format!("{which}: {}", f.message),
        ..f
    })
}

/// `v` rounded to `digits` significant digits.
fn significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let magnitude = v.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits - 1 - magnitude);
    (v * factor).round() / factor
}

/// A p-value as people read one: `0.31`, `0.0042`, `3.4e-08`.
fn p_value(p: f64) -> String {
    if p >= 1e-3 || p == 0.0 {
        return format_number(significant(p, 2));
    }
    let text = format!("{p:.1e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ("-", digits),
                None => ("+", exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

/// The latest [`METADATA_SAMPLES`] values, comma-separated.
fn bounded(values: &[f64]) -> String {
    let start = values.len().saturating_sub(METADATA_SAMPLES);
    values[start..]
        .iter()
        .map(|v| format_number(significant(*v, 6)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Config;
    use crate::engine::guardrails::testing::{at, config, s, AT};
    use crate::engine::guardrails::Guardrail;
    use crate::prometheus::QueryData;

    fn coverage(hash: &str) -> Coverage {
        let target = TargetSelector::new("shop", "web", hash).unwrap();
        let pod = format!("web-{hash}-a");
        let data = QueryData::Vector(vec![s(&[("pod", &pod)], AT)]);
        Coverage::prove(
            &data,
            &target,
            at(),
            std::time::Duration::from_secs(300),
            1,
            &[],
        )
        .unwrap()
    }

    fn regression(json: &str) -> Regression {
        match config(json).settings {
            Guardrail::Regression(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn canary_fails_above_stable_times_one_plus_tolerance() {
        let r = regression(
            r#"{"guardrail":"regression","signal":"latency","stablePodTemplateHash":"b"}"#,
        );
        assert_eq!(r.tolerance, 0.1);
        let (canary, stable) = (coverage("a"), coverage("b"));
        assert!(matches!(
            r.compare((&canary, 0.21), (&stable, 0.2)),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(f) = r.compare((&canary, 0.3), (&stable, 0.2)) else {
            panic!()
        };
        assert!(
            f.message
                .contains("canary p95 latency (s) 0.3 vs stable 0.2: ratio 1.5"),
            "{}",
            f.message
        );
        let Verdict::Fail(f) = r.compare((&canary, 0.3), (&canary, 0.2)) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Config);
        let cpu = regression(
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","threshold":0.05}"#,
        );
        assert_eq!(cpu.tolerance, 0.5);
        // Below the absolute floor a large ratio is not a regression.
        assert!(matches!(
            cpu.compare((&canary, 0.04), (&stable, 0.001)),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn regression_needs_a_signal_and_a_stable_hash() {
        assert!(Config::from_json(br#"{"guardrail":"regression","signal":"cpu"}"#).is_err());
        assert!(
            Config::from_json(br#"{"guardrail":"regression","stablePodTemplateHash":"b"}"#)
                .is_err()
        );
        assert!(Config::from_json(
            br#"{"guardrail":"regression","signal":"disk","stablePodTemplateHash":"b"}"#
        )
        .is_err());
    }

    #[test]
    fn both_sides_are_planned_and_the_stable_side_is_labelled() {
        let r =
            regression(r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b"}"#);
        let plan = r
            .plan(&TargetSelector::new("shop", "web", "a").unwrap())
            .unwrap();
        assert_eq!(plan.sides.len(), 2);
        assert_eq!(plan.sides[1].label, Some("stable"));
        assert_eq!(plan.sides[1].described, "shop/web-b");
        let names: Vec<_> = plan.sides[1].queries.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["coverage", "cpu"]);
    }

    const MW_CPU: &str = r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m"}"#;

    /// Two sides of answers for `MW_CPU`: a fresh pod each and one samples series per side.
    fn rank_answers(canary: &[f64], stable: &[f64]) -> Vec<Answers> {
        [("a", canary), ("b", stable)]
            .into_iter()
            .map(|(hash, values)| {
                let pod = format!("web-{hash}-a");
                let steps = values.len();
                let series = crate::prometheus::Series {
                    labels: Default::default(),
                    samples: values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (AT - 60.0 * (steps - 1 - i) as f64, *v))
                        .collect(),
                };
                Answers::from([
                    (
                        super::super::query_name::COVERAGE,
                        QueryData::Vector(vec![s(&[("pod", &pod)], AT)]),
                    ),
                    (query_name::SAMPLES, QueryData::Matrix(vec![series])),
                ])
            })
            .collect()
    }

    fn rank_judge(json: &str, answers: &[Answers]) -> Verdict {
        let c = config(json);
        let Guardrail::Regression(r) = &c.settings else {
            panic!()
        };
        r.judge(
            &TargetSelector::new("shop", "web", "a").unwrap(),
            answers,
            &c.common,
            at(),
        )
        .unwrap_or_else(Verdict::Fail)
    }

    #[test]
    fn mann_whitney_settings_are_parsed_once_with_their_defaults() {
        let r = regression(MW_CPU);
        assert_eq!(
            r.method,
            Method::MannWhitney(RankTest {
                step: Duration::from_secs(60),
                confidence: 0.95,
                min_samples: 10
            })
        );
        let ratio =
            regression(r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b"}"#);
        assert_eq!(ratio.method, Method::Ratio);
        for (json, says) in [
            (
                r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","step":"30s"}"#,
                "key `step`: only used with `method: mann-whitney`",
            ),
            (
                r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"rank"}"#,
                "unknown method `rank`",
            ),
            (
                r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney"}"#,
                "window 5m at step 1m gives at most 5 samples per side, fewer than minSamples 10",
            ),
            (
                r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m","confidence":1}"#,
                "key `confidence`",
            ),
            (
                r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m","minSamples":3}"#,
                "key `minSamples`",
            ),
            (
                r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m","step":"1500ms"}"#,
                "key `step`",
            ),
            (
                r#"{"guardrail":"latency","threshold":1,"minSamples":10}"#,
                "minSamples",
            ),
        ] {
            let err = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn mann_whitney_asks_one_subquery_per_side() {
        let r = regression(
            r#"{"guardrail":"regression","signal":"latency","quantile":0.99,"stablePodTemplateHash":"b","method":"mann-whitney","window":"20m"}"#,
        );
        let plan = r
            .plan(&TargetSelector::new("shop", "web", "a").unwrap())
            .unwrap();
        for side in &plan.sides {
            let names: Vec<_> = side.queries.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, ["coverage", "requests", "latest-request", "samples"]);
            let samples = &side.queries[3].1;
            assert!(
                samples.starts_with("(histogram_quantile(0.99, sum by (le) ((rate(http_request_duration_seconds_bucket{namespace=\"shop\"}[60s]))"),
                "{samples}"
            );
            assert!(samples.ends_with(")[1199s:60s]"), "{samples}");
        }
        let errors = regression(
            r#"{"guardrail":"regression","signal":"error-rate","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m"}"#,
        );
        let plan = errors
            .plan(&TargetSelector::new("shop", "web", "a").unwrap())
            .unwrap();
        let samples = &plan.sides[0].queries[3].1;
        assert!(samples.contains(" or vector(0)) / sum("), "{samples}");
    }

    #[test]
    fn mann_whitney_fails_only_a_significant_and_large_regression() {
        let stable: Vec<f64> = (0..20).map(|i| 0.29 + 0.001 * i as f64).collect();
        let slower: Vec<f64> = stable.iter().map(|v| v * 2.0).collect();
        let Verdict::Fail(f) = rank_judge(MW_CPU, &rank_answers(&slower, &stable)) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Threshold);
        assert!(
            f.message.starts_with(
                "canary CPU per pod median 0.599 cores vs stable 0.3 cores (×2.00 > 1.50), Mann-Whitney p = 3.4e-08 < 0.05"
            ),
            "{}",
            f.message
        );
        assert!(
            f.message
                .contains("on 20 vs 20 one-minute samples: regression"),
            "{}",
            f.message
        );
        assert!(f.details.iter().any(|(k, _)| *k == metadata_key::P_VALUE));
        // Significant but inside tolerance (+5 % on cpu's 50 %) passes.
        let a_little: Vec<f64> = stable.iter().map(|v| v * 1.05).collect();
        let Verdict::Pass(p) = rank_judge(MW_CPU, &rank_answers(&a_little, &stable)) else {
            panic!()
        };
        assert!(p.message.contains("< 0.05"), "{}", p.message);
        assert!(p.message.contains("within tolerance"), "{}", p.message);
        // Two spikes in identical samples: large at the spikes, not significant.
        let mut spiky = stable.clone();
        spiky[5] = 5.0;
        spiky[12] = 5.0;
        let Verdict::Pass(p) = rank_judge(MW_CPU, &rank_answers(&spiky, &stable)) else {
            panic!()
        };
        assert!(p.message.contains("not significant"), "{}", p.message);
    }

    #[test]
    fn mann_whitney_without_enough_finite_samples_is_unproven() {
        let stable = vec![0.3; 20];
        let mut canary = vec![0.6; 20];
        for v in canary.iter_mut().take(12) {
            *v = f64::NAN;
        }
        let Verdict::Fail(f) = rank_judge(MW_CPU, &rank_answers(&canary, &stable)) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData, "{}", f.message);
        assert!(
            f.message.starts_with("canary: 8 finite one-minute samples"),
            "{}",
            f.message
        );
        assert!(
            f.message
                .contains("12 NaN/Inf steps dropped (canary 12, stable 0)"),
            "{}",
            f.message
        );
        assert!(f
            .details
            .contains(&(metadata_key::DROPPED, "canary 12, stable 0".to_string())));
    }

    #[test]
    fn mann_whitney_samples_must_be_one_fresh_series() {
        let mut answers = rank_answers(&[0.3; 20], &[0.3; 20]);
        let QueryData::Matrix(series) = answers[1][query_name::SAMPLES].clone() else {
            panic!()
        };
        answers[1].insert(
            query_name::SAMPLES,
            QueryData::Matrix(vec![series[0].clone(), series[0].clone()]),
        );
        let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Ambiguous, "{}", f.message);
        assert!(f
            .message
            .starts_with("stable: samples query returned 2 series"));
        answers[1].insert(query_name::SAMPLES, QueryData::Vector(vec![s(&[], 0.3)]));
        let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::QueryError, "{}", f.message);
        answers[1].insert(query_name::SAMPLES, QueryData::Matrix(vec![]));
        let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData, "{}", f.message);
        // The last step ten minutes before the evaluation instant (staleness 5m).
        let old = crate::prometheus::Series {
            labels: Default::default(),
            samples: (0..20)
                .map(|i| (AT - 600.0 - 60.0 * i as f64, 0.3))
                .collect(),
        };
        answers[1].insert(query_name::SAMPLES, QueryData::Matrix(vec![old]));
        let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Stale, "{}", f.message);
    }

    #[test]
    fn p_values_read_as_people_write_them() {
        assert_eq!(p_value(3.4e-8), "3.4e-08");
        assert_eq!(p_value(0.3123), "0.31");
        assert_eq!(p_value(0.0042), "0.0042");
        assert_eq!(p_value(1.0), "1");
        assert_eq!(significant(0.4412, 3), 0.441);
    }
}
