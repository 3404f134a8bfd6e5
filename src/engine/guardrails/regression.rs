//! `regression`: the canary against the stable ReplicaSet of the same rollout for one signal (error ratio,
//! a latency quantile, CPU or memory per pod). Each side must be proven on its own (coverage, and traffic for
//! the request signals); the canary fails when it exceeds stable × (1 + tolerance) and the `threshold` floor.
use std::time::SystemTime;

use super::{coverage_query, prove_coverage, Answers, Evidence, Plan, Query, Side};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::promql::{self, TargetSelector};
use crate::engine::traffic::{self, round6, Measure, TrafficSettings};
use crate::engine::verdict::{
    format_number, vector, Comparison, Coverage, Failure, FailureClass, Proof, Verdict,
};

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
];

/// The name of each resource query in metadata (`query.<name>`, `query.stable-<name>`).
pub mod query_name {
    pub const CPU: &str = "cpu";
    pub const MEMORY: &str = "memory";
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
        let side = |which: &str, result: Result<(Coverage, f64), Failure>| {
            result.map_err(|f| Failure {
                message: format!("{which}: {}", f.message),
                ..f
            })
        };
        let stable_target = self.stable(canary)?;
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
            });
        }
        proof.pass(value, message, Vec::new())
    }
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
}
