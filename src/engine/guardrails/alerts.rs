//! `alerts`: firing `ALERTS` in the target's namespace (plus configured matchers) at or above a minimum
//! severity fail; none firing passes only through a [`RuleEvaluation`] proof that Prometheus is evaluating
//! its rules at all.
use std::collections::BTreeSet;
use std::time::SystemTime;

use super::{answer, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, ConfigError, Profile};
use crate::engine::promql::{Matchers, Selector};
use crate::engine::verdict::{
    format_number, judge_count, vector, Failure, FailureClass, RuleEvaluation, Verdict,
};

pub const SUMMARY: &str = "alerts firing in the canary's namespace at or above a severity";
pub const KEYS: &[&str] = &["threshold", "alertMatchers", "minSeverity"];

/// The name of each query in metadata (`query.<name>`).
pub mod query_name {
    pub const FIRING: &str = "firing";
    pub const RULE_EVALUATION: &str = "rule-evaluation";
}

/// Alert severities in increasing order; `severity` label values outside this list count as critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    None,
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::None,
        Severity::Info,
        Severity::Warning,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The rank of an alert's `severity` label: unknown or missing values are the highest (fail-closed).
    pub fn of_label(value: &str) -> Severity {
        match value.to_ascii_lowercase().as_str() {
            "none" => Severity::None,
            "info" | "informational" => Severity::Info,
            "warning" | "warn" => Severity::Warning,
            _ => Severity::Critical,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    /// More firing alerts than this fail (0 by default).
    pub threshold: f64,
    /// The lowest severity that counts (warning by default, info in `prod`).
    pub min_severity: Severity,
    /// `alertMatchers`: exact label matchers on `ALERTS` only (a team, a service); the source's `matchers`
    /// apply to every series.
    pub alert_matchers: Matchers,
}

impl Alerts {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<Alerts, ConfigError> {
        let min_severity =
            keys.one_of("minSeverity", "severity", &Severity::ALL, Severity::name)?;
        let alerts = Alerts {
            threshold: config::threshold(keys, 0.0)?,
            min_severity: min_severity.unwrap_or(profile.pick(Severity::Warning, Severity::Info)),
            alert_matchers: keys.matchers("alertMatchers")?,
        };
        alerts
            .plan("ph0namespace", &keys.matchers("matchers")?)
            .map_err(|f| ConfigError::Plan(f.message))?;
        Ok(alerts)
    }

    /// The queries for `namespace` (already validated as a Kubernetes name).
    pub fn plan(&self, namespace: &str, source: &Matchers) -> Result<Vec<Query>, Failure> {
        let config_failure = |e: crate::engine::promql::SelectorError| {
            Failure::new(FailureClass::Config, e.to_string())
        };
        let firing = Selector::new("metric", "ALERTS")
            .and_then(|s| s.equal("alertstate", "firing"))
            .and_then(|s| s.equal("namespace", namespace))
            .and_then(|s| source.merged(&self.alert_matchers).apply(s))
            .map_err(config_failure)?;
        let evaluation = Selector::new(
            "metric",
            "prometheus_rule_group_last_evaluation_timestamp_seconds",
        )
        .and_then(|s| source.apply(s))
        .map_err(config_failure)?;
        Ok(vec![
            (query_name::FIRING, firing.render()),
            (
                query_name::RULE_EVALUATION,
                format!("max without (rule_group) ({})", evaluation.render()),
            ),
        ])
    }

    pub fn judge(
        &self,
        namespace: &str,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let proof = RuleEvaluation::prove(
            answer(answers, query_name::RULE_EVALUATION)?,
            at,
            common.staleness,
            &common.replica_labels_or_default(),
        )?;
        let samples = vector(answer(answers, query_name::FIRING)?, query_name::FIRING)?;
        let mut offenders = BTreeSet::new();
        let mut below = 0usize;
        for sample in samples {
            let label = |name: &str| sample.labels.get(name).map(String::as_str).unwrap_or("");
            if Severity::of_label(label("severity")) < self.min_severity {
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
        let mut message = format!(
            "{} firing alert{} in namespace {namespace} at or above severity {} (threshold {}; rules evaluated {}s ago",
            offenders.len(),
            if offenders.len() == 1 { "" } else { "s" },
            self.min_severity.name(),
            format_number(self.threshold),
            format_number(proof.age.max(0.0).round()),
        );
        if below > 0 {
            message.push_str(&format!("; {below} below the minimum severity ignored"));
        }
        message.push(')');
        let count = offenders.len() as f64;
        let limit = self.threshold;
        Ok(judge_count(&proof, count, limit, message, offenders))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::guardrails::testing::{at, config, s, AT};
    use crate::engine::guardrails::{Guardrail, Target};
    use crate::prometheus::QueryData;

    fn alert(name: &str, severity: &str) -> crate::prometheus::Sample {
        s(&[("alertname", name), ("severity", severity)], 1.0)
    }

    fn judge(
        json: &str,
        firing: Vec<crate::prometheus::Sample>,
        evaluated: Option<f64>,
    ) -> Verdict {
        let eval = evaluated.map(|t| vec![s(&[], t)]).unwrap_or_default();
        let answers: Answers = [
            (query_name::FIRING, QueryData::Vector(firing)),
            (query_name::RULE_EVALUATION, QueryData::Vector(eval)),
        ]
        .into();
        let c = config(json);
        c.settings.judge(
            &Target::Namespace("shop".into(), Default::default()),
            &[answers],
            &c.common,
            at(),
        )
    }

    #[test]
    fn nothing_firing_passes_only_when_rules_are_evaluated() {
        let json = r#"{"guardrail":"alerts"}"#;
        assert!(matches!(
            judge(json, vec![], Some(AT - 20.0)),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(f) = judge(json, vec![], None) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        let Verdict::Fail(f) = judge(json, vec![], Some(AT - 3600.0)) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Stale);
    }

    #[test]
    fn severities_below_the_minimum_are_ignored_unknown_ones_count() {
        let firing = vec![alert("CPUThrottling", "info"), alert("Odd", "sev1")];
        let default = r#"{"guardrail":"alerts"}"#;
        let Verdict::Fail(f) = judge(default, firing, Some(AT)) else {
            panic!()
        };
        assert_eq!(f.offenders, vec!["Odd (sev1)".to_string()]);
        assert!(
            f.message.contains("1 below the minimum severity ignored"),
            "{}",
            f.message
        );
        let only_info = || vec![alert("CPUThrottling", "info")];
        assert!(matches!(
            judge(default, only_info(), Some(AT)),
            Verdict::Pass(_)
        ));
        let prod = r#"{"guardrail":"alerts","profile":"prod"}"#;
        assert!(matches!(
            judge(prod, only_info(), Some(AT)),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn the_selector_is_the_namespace_plus_escaped_matchers() {
        let c = config(
            r#"{"guardrail":"alerts","alertMatchers":{"team":"pay\"}"},"matchers":{"cluster":"prod-eu"}}"#,
        );
        let Guardrail::Alerts(a) = &c.settings else {
            panic!()
        };
        let p = a.plan("shop", &c.common.matchers).unwrap();
        assert_eq!(
            p[0].1,
            r#"ALERTS{alertstate="firing",namespace="shop",cluster="prod-eu",team="pay\"}"}"#
        );
        // The rule-evaluation clock is read from the same source, without the alert-only matchers.
        assert_eq!(
            p[1].1,
            r#"max without (rule_group) (prometheus_rule_group_last_evaluation_timestamp_seconds{cluster="prod-eu"})"#
        );
    }
}
