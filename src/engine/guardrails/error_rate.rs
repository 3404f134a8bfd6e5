//! `error-rate`: the canary's ratio of error responses over the window, judged only over proven traffic.
use super::{coverage_query, created_query, Evidence, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::promql::TargetSelector;
use crate::engine::traffic::{self, error_ratio, round6, Measure, TrafficSettings};
use crate::engine::verdict::{format_number, judge_limit, round3, Failure, Verdict};

pub const SUMMARY: &str = "the canary's ratio of error responses (http, istio, ingress-nginx)";
/// Its keys besides the request keys of [`traffic::KEYS`].
pub const KEYS: &[&str] = &["threshold", "errorLabel", "errorRegex"];

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRate {
    /// A higher error ratio fails (0.05 by default, 0.01 in `prod`).
    pub threshold: f64,
    pub traffic: TrafficSettings,
}

impl ErrorRate {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<ErrorRate, ConfigError> {
        let traffic = TrafficSettings::parse(keys, profile)?;
        traffic.check(Measure::Errors)?;
        Ok(ErrorRate {
            threshold: config::threshold(keys, profile.pick(0.05, 0.01))?,
            traffic,
        })
    }

    pub fn plan(&self, target: &TargetSelector) -> Result<Vec<Query>, Failure> {
        // The pods' creation: the canary's age decides whether too few requests may still settle.
        let mut queries = vec![coverage_query(target), created_query(target)];
        queries.extend(traffic::plan(&self.traffic, Measure::Errors, target)?.queries);
        Ok(queries)
    }

    pub fn judge(&self, evidence: &Evidence) -> Result<Verdict, Failure> {
        let (plan, traffic) = self.traffic.proven(Measure::Errors, evidence)?;
        let (errors, ratio) = error_ratio(&traffic, evidence.answers)?;
        let value = format_number(round6(ratio));
        let message = format!(
            "error ratio {value} ({} of {} requests with {}) in the last {} to ReplicaSet {} (threshold {})",
            format_number(round3(errors)),
            format_number(round3(traffic.requests)),
            plan.error_matcher,
            duration::format(self.traffic.window),
            evidence.coverage.target(),
            format_number(self.threshold)
        );
        let exceeded = ratio > self.threshold;
        Ok(judge_limit(&traffic, exceeded, value, message))
    }
}
