//! The `regression` guardrail: the canary against the stable ReplicaSet of the same rollout for one signal
//! (error ratio, a latency quantile, CPU or memory per pod). Each side must be proven on its own (coverage,
//! and traffic for the request signals); the canary fails when it exceeds stable × (1 + tolerance) and the
//! `threshold` floor.
use std::time::SystemTime;

use super::config::{Config, GuardrailKind, Settings, Signal};
use super::duration;
use super::guardrail::{self, Answers};
use super::promql::TargetSelector;
use super::traffic::{self, round6, TrafficPlan};
use super::verdict::{
    format_number, vector, Comparison, Coverage, Failure, FailureClass, Proof, Verdict,
};

/// The name of each resource query in metadata (`query.<name>`, `query.stable-<name>`).
pub mod query_name {
    pub const CPU: &str = "cpu";
    pub const MEMORY: &str = "memory";
}

/// The queries of one side, and the traffic plan they include for the request signals.
#[derive(Debug, Clone, PartialEq)]
pub struct SidePlan {
    pub queries: Vec<(&'static str, String)>,
    pub traffic: Option<TrafficPlan>,
}

/// The queries for one side (`target` is the canary or the stable ReplicaSet).
pub fn plan(
    signal: Signal,
    config: &Config,
    target: &TargetSelector,
    settings: &Settings,
) -> Result<SidePlan, Failure> {
    let mut queries = guardrail::plan(GuardrailKind::Regression, target, settings);
    let traffic = match signal {
        Signal::ErrorRate => Some(traffic::plan_for(
            GuardrailKind::ErrorRate,
            config,
            target,
            settings,
        )?),
        Signal::Latency => Some(traffic::plan_for(
            GuardrailKind::Latency,
            config,
            target,
            settings,
        )?),
        Signal::Cpu => {
            queries.push((query_name::CPU, target.cpu_per_pod(settings.window)));
            None
        }
        Signal::Memory => {
            queries.push((query_name::MEMORY, target.memory_per_pod(settings.window)));
            None
        }
    };
    if let Some(t) = &traffic {
        queries.extend(t.queries.iter().cloned());
    }
    Ok(SidePlan { queries, traffic })
}

/// One side's value of `signal`, proven from its answers.
pub fn side_value(
    signal: Signal,
    plan: &SidePlan,
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    at: SystemTime,
) -> Result<f64, Failure> {
    match (&plan.traffic, signal) {
        (Some(t), Signal::ErrorRate) => {
            let proof = traffic::prove_traffic(t, coverage, answers, settings, at)?;
            Ok(traffic::error_ratio(&proof, answers)?.1)
        }
        (Some(t), Signal::Latency) => {
            traffic::prove_traffic(t, coverage, answers, settings, at)?;
            traffic::latency_seconds(t, coverage, answers)
        }
        (None, Signal::Cpu | Signal::Memory) => {
            let name = if signal == Signal::Cpu {
                query_name::CPU
            } else {
                query_name::MEMORY
            };
            let data = answers.get(name).ok_or_else(|| {
                Failure::new(
                    FailureClass::QueryError,
                    format!("{name} query has no answer"),
                )
            })?;
            let per_pod = coverage.by_pod(vector(data, name)?);
            coverage.require_all(&per_pod.keys().cloned().collect(), &format!("{name} usage"))?;
            let mut total = 0.0;
            for samples in per_pod.values() {
                for s in samples {
                    if !s.value.is_finite() {
                        return Err(Failure::new(
                            FailureClass::QueryError,
                            format!("{name} query returned {}", format_number(s.value)),
                        ));
                    }
                    total += s.value;
                }
            }
            Ok(total / per_pod.len() as f64)
        }
        _ => Err(Failure::new(
            FailureClass::Config,
            "regression plan does not match its signal",
        )),
    }
}

fn describe(signal: Signal, settings: &Settings) -> String {
    match signal {
        Signal::ErrorRate => "error ratio".to_string(),
        Signal::Latency => format!("p{} latency (s)", format_number(settings.quantile * 100.0)),
        Signal::Cpu => "CPU per pod (cores)".to_string(),
        Signal::Memory => "memory per pod (bytes)".to_string(),
    }
}

/// Judges canary against stable. Both values must already be proven by [`side_value`].
pub fn judge(
    signal: Signal,
    canary: (&Coverage, f64),
    stable: (&Coverage, f64),
    settings: &Settings,
) -> Verdict {
    let proof = match Comparison::of(canary.0, stable.0) {
        Ok(proof) => proof,
        Err(failure) => return Verdict::Fail(failure),
    };
    let (c, s) = (canary.1, stable.1);
    let limit = s * (1.0 + settings.tolerance);
    let floor = settings.threshold.unwrap_or(0.0);
    let ratio = if s > 0.0 {
        format_number(round6(c / s))
    } else if c > 0.0 {
        "+Inf".to_string()
    } else {
        "1".to_string()
    };
    let message = format!(
        "canary {} {} vs stable {}: ratio {ratio}, limit {} (stable × (1 + tolerance {})); ReplicaSets {} vs {} over {}{}",
        describe(signal, settings),
        format_number(round6(c)),
        format_number(round6(s)),
        format_number(round6(limit)),
        format_number(settings.tolerance),
        canary.0.target(),
        stable.0.target(),
        duration::format(settings.window),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{QueryData, Sample};
    use std::time::{Duration, UNIX_EPOCH};

    const AT: f64 = 1_767_268_800.0;

    fn coverage(hash: &str) -> Coverage {
        let target = TargetSelector::new("shop", "web", hash).unwrap();
        let data = QueryData::Vector(vec![Sample {
            labels: [("pod".to_string(), format!("web-{hash}-a"))].into(),
            timestamp: AT,
            value: AT,
        }]);
        Coverage::prove(
            &data,
            &target,
            UNIX_EPOCH + Duration::from_secs(AT as u64),
            Duration::from_secs(300),
            1,
        )
        .unwrap()
    }

    fn settings(json: &str) -> Settings {
        Config::from_json(json.as_bytes()).unwrap().settings()
    }

    #[test]
    fn canary_fails_above_stable_times_one_plus_tolerance() {
        let s = settings(
            r#"{"guardrail":"regression","signal":"latency","stablePodTemplateHash":"b"}"#,
        );
        assert_eq!(s.tolerance, 0.1);
        let (canary, stable) = (coverage("a"), coverage("b"));
        assert!(matches!(
            judge(Signal::Latency, (&canary, 0.21), (&stable, 0.2), &s),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(f) = judge(Signal::Latency, (&canary, 0.3), (&stable, 0.2), &s) else {
            panic!()
        };
        assert!(
            f.message
                .contains("canary p95 latency (s) 0.3 vs stable 0.2: ratio 1.5"),
            "{}",
            f.message
        );
        let Verdict::Fail(f) = judge(Signal::Latency, (&canary, 0.3), (&canary, 0.2), &s) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Config);
        let cpu = settings(
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","threshold":0.05}"#,
        );
        assert_eq!(cpu.tolerance, 0.5);
        // Below the absolute floor a large ratio is not a regression.
        assert!(matches!(
            judge(Signal::Cpu, (&canary, 0.04), (&stable, 0.001), &cpu),
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
}
