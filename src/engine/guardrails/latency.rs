//! `latency`: a quantile of the canary's request durations over the window, judged only over proven
//! traffic. The objective is the service's own, so `threshold` has no default.
use super::{coverage_query, created_query, Evidence, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError, Profile};
use crate::engine::duration;
use crate::engine::promql::TargetSelector;
use crate::engine::traffic::{self, latency_seconds, round6, Measure, TrafficSettings};
use crate::engine::verdict::{format_number, judge_limit, round3, Failure, Verdict};

pub const SUMMARY: &str = "a quantile of the canary's request latency above `threshold` seconds";
/// Its keys besides the request keys of [`traffic::KEYS`].
pub const KEYS: &[&str] = &["threshold", "histogramMetric", "quantile"];

#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Seconds; required.
    pub threshold: f64,
    /// The quantile judged (0.95 by default, 0.99 in `prod`).
    pub quantile: f64,
    pub traffic: TrafficSettings,
}

impl Latency {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<Latency, ConfigError> {
        let traffic = TrafficSettings::parse(keys, profile)?;
        let quantile = traffic::quantile(keys, profile)?;
        let threshold = config::required_threshold(keys)?;
        traffic.check(Measure::Latency(quantile))?;
        Ok(Latency {
            threshold,
            quantile,
            traffic,
        })
    }

    pub fn plan(&self, target: &TargetSelector) -> Result<Vec<Query>, Failure> {
        // The pods' creation: the canary's age decides whether too few requests may still settle.
        let mut queries = vec![coverage_query(target), created_query(target)];
        queries
            .extend(traffic::plan(&self.traffic, Measure::Latency(self.quantile), target)?.queries);
        Ok(queries)
    }

    pub fn judge(&self, evidence: &Evidence) -> Result<Verdict, Failure> {
        let measure = Measure::Latency(self.quantile);
        let (plan, traffic) = self.traffic.proven(measure, evidence)?;
        let quantile = latency_seconds(&plan, &evidence.coverage, evidence.answers)?;
        let value = format_number(round6(quantile));
        let message = format!(
            "p{} latency {value}s over {} requests in the last {} to ReplicaSet {} (threshold {}s)",
            format_number(self.quantile * 100.0),
            format_number(round3(traffic.requests)),
            duration::format(self.traffic.window),
            evidence.coverage.target(),
            format_number(self.threshold)
        );
        let exceeded = quantile > self.threshold;
        Ok(judge_limit(&traffic, exceeded, value, message))
    }
}
