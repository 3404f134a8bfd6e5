//! `error-rate`: the canary's ratio of error responses over the window, judged only over proven traffic.
use super::{coverage_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::promql::TargetSelector;
use crate::engine::traffic::{self, error_ratio, prove_traffic, round6, Measure, TrafficSettings};
use crate::engine::verdict::{format_number, judge_limit, round3, Coverage, Failure, Verdict};
use std::time::SystemTime;

pub const SUMMARY: &str = "the canary's ratio of error responses (http, istio, ingress-nginx)";
pub const KEYS: &[&str] = &[
    "window",
    "threshold",
    "source",
    "requestMetric",
    "minRequests",
    "service",
    "matchers",
    "errorLabel",
    "errorRegex",
];

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
        let mut queries = vec![coverage_query(target)];
        queries.extend(traffic::plan(&self.traffic, Measure::Errors, target)?.queries);
        Ok(queries)
    }

    pub fn judge(
        &self,
        target: &TargetSelector,
        coverage: &Coverage,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let plan = traffic::plan(&self.traffic, Measure::Errors, target)?;
        let traffic = prove_traffic(
            &self.traffic,
            &plan,
            coverage,
            answers,
            common.staleness,
            at,
        )?;
        let (errors, ratio) = error_ratio(&traffic, answers)?;
        let value = format_number(round6(ratio));
        let message = format!(
            "error ratio {value} ({} of {} requests with {}) in the last {} to ReplicaSet {} (threshold {})",
            format_number(round3(errors)),
            format_number(round3(traffic.requests)),
            plan.error_matcher,
            duration::format(self.traffic.window),
            coverage.target(),
            format_number(self.threshold)
        );
        Ok(judge_limit(
            &traffic,
            ratio > self.threshold,
            value,
            message,
        ))
    }
}
