//! The `alerts` guardrail: firing `ALERTS` in the target's namespace (plus configured matchers) at or above a
//! minimum severity fail; none firing passes only through a [`RuleEvaluation`] proof that Prometheus is
//! evaluating its rules at all.
use std::collections::BTreeSet;
use std::time::SystemTime;

use super::config::{Config, Settings, Severity};
use super::guardrail::Answers;
use super::promql::Selector;
use super::verdict::MESSAGE_OFFENDERS;
use super::verdict::{
    format_number, join_limited, vector, Failure, FailureClass, Proof, RuleEvaluation, Verdict,
};

/// The name of each query in metadata (`query.<name>`).
pub mod query_name {
    pub const FIRING: &str = "firing";
    pub const RULE_EVALUATION: &str = "rule-evaluation";
}

/// The queries of `alerts` for `namespace` (already validated as a Kubernetes name).
pub fn plan(config: &Config, namespace: &str) -> Result<Vec<(&'static str, String)>, Failure> {
    let mut firing = Selector::new("metric", "ALERTS")
        .and_then(|s| s.equal("alertstate", "firing"))
        .and_then(|s| s.equal("namespace", namespace))
        .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
    for (label, value) in &config.matchers {
        firing = firing
            .equal(label, value)
            .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
    }
    Ok(vec![
        (query_name::FIRING, firing.render()),
        (
            query_name::RULE_EVALUATION,
            "max(prometheus_rule_group_last_evaluation_timestamp_seconds)".to_string(),
        ),
    ])
}

/// Judges the answers of [`plan`].
pub fn judge(namespace: &str, answers: &Answers, settings: &Settings, at: SystemTime) -> Verdict {
    let result = (|| {
        let get = |name: &'static str| {
            answers.get(name).ok_or_else(|| {
                Failure::new(
                    FailureClass::QueryError,
                    format!("{name} query has no answer"),
                )
            })
        };
        let proof =
            RuleEvaluation::prove(get(query_name::RULE_EVALUATION)?, at, settings.staleness)?;
        let samples = vector(get(query_name::FIRING)?, query_name::FIRING)?;
        let mut offenders = BTreeSet::new();
        let mut below = 0usize;
        for sample in samples {
            let label = |name: &str| sample.labels.get(name).map(String::as_str).unwrap_or("");
            let severity = Severity::of_label(label("severity"));
            if severity < settings.min_severity {
                below += 1;
                continue;
            }
            let mut text = format!(
                "{} ({})",
                label("alertname"),
                match label("severity") {
                    "" => "no severity",
                    s => s,
                }
            );
            for key in ["pod", "container", "service", "job"] {
                if !label(key).is_empty() {
                    text.push_str(&format!(" {key}={}", label(key)));
                }
            }
            offenders.insert(text);
        }
        let offenders: Vec<String> = offenders.into_iter().collect();
        let count = offenders.len() as f64;
        let limit = settings.threshold.unwrap_or(0.0);
        let mut message = format!(
            "{} firing alert{} in namespace {namespace} at or above severity {} (threshold {}; rules evaluated {}s ago",
            offenders.len(),
            if offenders.len() == 1 { "" } else { "s" },
            settings.min_severity.name(),
            format_number(limit),
            format_number(proof.age.max(0.0).round()),
        );
        if below > 0 {
            message.push_str(&format!("; {below} below the minimum severity ignored"));
        }
        message.push(')');
        if !offenders.is_empty() {
            message.push_str(&format!(
                ": {}",
                join_limited(offenders.iter().map(String::as_str), MESSAGE_OFFENDERS)
            ));
        }
        let value = format_number(count);
        if count > limit {
            return Ok(Verdict::Fail(Failure {
                class: FailureClass::Threshold,
                message,
                value,
                offenders,
                awaiting: None,
            }));
        }
        Ok(proof.pass(value, message, offenders))
    })();
    result.unwrap_or_else(Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{QueryData, Sample};
    use std::time::{Duration, UNIX_EPOCH};

    const AT: f64 = 1_767_268_800.0;

    fn alert(name: &str, severity: &str) -> Sample {
        Sample {
            labels: [
                ("alertname".to_string(), name.to_string()),
                ("severity".to_string(), severity.to_string()),
            ]
            .into(),
            timestamp: AT,
            value: 1.0,
        }
    }

    fn answers(firing: Vec<Sample>, evaluated: Option<f64>) -> Answers {
        let eval = evaluated
            .map(|t| {
                vec![Sample {
                    labels: Default::default(),
                    timestamp: AT,
                    value: t,
                }]
            })
            .unwrap_or_default();
        [
            (query_name::FIRING, QueryData::Vector(firing)),
            (query_name::RULE_EVALUATION, QueryData::Vector(eval)),
        ]
        .into()
    }

    fn settings(json: &str) -> Settings {
        Config::from_json(json.as_bytes()).unwrap().settings()
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(AT as u64)
    }

    #[test]
    fn nothing_firing_passes_only_when_rules_are_evaluated() {
        let s = settings(r#"{"guardrail":"alerts"}"#);
        assert!(matches!(
            judge("shop", &answers(vec![], Some(AT - 20.0)), &s, at()),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(f) = judge("shop", &answers(vec![], None), &s, at()) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        let Verdict::Fail(f) = judge("shop", &answers(vec![], Some(AT - 3600.0)), &s, at()) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Stale);
    }

    #[test]
    fn severities_below_the_minimum_are_ignored_unknown_ones_count() {
        let firing = vec![alert("CPUThrottling", "info"), alert("Odd", "sev1")];
        let default = settings(r#"{"guardrail":"alerts"}"#);
        let Verdict::Fail(f) = judge("shop", &answers(firing.clone(), Some(AT)), &default, at())
        else {
            panic!()
        };
        assert_eq!(f.offenders, vec!["Odd (sev1)".to_string()]);
        assert!(
            f.message.contains("1 below the minimum severity ignored"),
            "{}",
            f.message
        );
        let only_info = vec![alert("CPUThrottling", "info")];
        assert!(matches!(
            judge(
                "shop",
                &answers(only_info.clone(), Some(AT)),
                &default,
                at()
            ),
            Verdict::Pass(_)
        ));
        let prod = settings(r#"{"guardrail":"alerts","profile":"prod"}"#);
        assert!(matches!(
            judge("shop", &answers(only_info, Some(AT)), &prod, at()),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn the_selector_is_the_namespace_plus_escaped_matchers() {
        let c =
            Config::from_json(br#"{"guardrail":"alerts","matchers":{"team":"pay\"}"}}"#).unwrap();
        let p = plan(&c, "shop").unwrap();
        assert_eq!(
            p[0].1,
            r#"ALERTS{alertstate="firing",namespace="shop",team="pay\"}"}"#
        );
    }
}
