//! `replicas`: the canary ReplicaSet has the pods it wants at all. A canary whose pods were never created
//! (quota exceeded, admission denied, no node fits) otherwise fails only as "no fresh kube-state-metrics
//! series", which sends an operator to the wrong place; this guardrail says "ReplicaSet shop/web-6c8d7f9a1
//! wants 3 pods, 0 ready after 4m". It judges the ReplicaSet's own series (`kube_replicaset_*`), so it needs no
//! pod to exist, and passes only through a [`FreshSample`] proof of them.
use std::time::SystemTime;

use super::{answer, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, ConfigError};
use crate::engine::duration;
use crate::engine::pods::plural;
use crate::engine::promql::{Selector, SelectorError, TargetSelector};
use crate::engine::verdict::{
    format_number, unix_seconds, vector, Failure, FailureClass, FreshSample, Proof, Verdict,
};

pub const SUMMARY: &str = "the canary ReplicaSet has fewer ready pods than it wants";
pub const KEYS: &[&str] = &["threshold"];

/// The name of each query in metadata (`query.<name>`).
pub mod query_name {
    pub const DESIRED: &str = "desired";
    pub const REPORTED: &str = "reported";
    pub const READY: &str = "ready-replicas";
    pub const CREATED: &str = "replicaset-created";
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replicas {
    /// More missing pods (wanted − ready) than this fail (0 by default).
    pub threshold: f64,
}

fn of_replica_set(metric: &str, target: &TargetSelector) -> Result<String, SelectorError> {
    let selector = Selector::new("metric", metric)?
        .equal("namespace", target.namespace())?
        .equal("replicaset", target.replica_set())?;
    Ok(target.matchers().apply(selector)?.render())
}

impl Replicas {
    pub fn parse(keys: &Keys) -> Result<Replicas, ConfigError> {
        Ok(Replicas {
            threshold: config::threshold(keys, 0.0)?,
        })
    }

    pub fn plan(&self, target: &TargetSelector) -> Result<Vec<Query>, Failure> {
        let selector = |metric| {
            of_replica_set(metric, target)
                .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))
        };
        let desired = selector("kube_replicaset_spec_replicas")?;
        Ok(vec![
            (query_name::DESIRED, desired.clone()),
            (query_name::REPORTED, format!("timestamp({desired})")),
            (
                query_name::READY,
                selector("kube_replicaset_status_ready_replicas")?,
            ),
            (query_name::CREATED, selector("kube_replicaset_created")?),
        ])
    }

    pub fn judge(
        &self,
        target: &TargetSelector,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let what = format!(
            "kube_replicaset_spec_replicas for ReplicaSet {}",
            target.describe()
        );
        let reported = one(answers, query_name::REPORTED, &what)?.ok_or_else(|| {
            Failure::new(
                FailureClass::NoData,
                format!(
                    "no {what} — is kube-state-metrics scraped, and does the ReplicaSet exist?"
                ),
            )
        })?;
        let proof = FreshSample::prove(reported, at, common.staleness, &what)?;
        let desired = one(answers, query_name::DESIRED, &what)?.unwrap_or(0.0);
        let ready = one(answers, query_name::READY, "ready replicas")?.unwrap_or(0.0);
        let age = match one(answers, query_name::CREATED, "creation time")? {
            Some(created) => format!(
                " after {}",
                duration::format(std::time::Duration::from_secs(
                    (unix_seconds(at) - created).max(0.0) as u64
                ))
            ),
            None => String::new(),
        };
        let missing = (desired - ready).max(0.0);
        let message = format!(
            "ReplicaSet {} wants {} pod{}, {} ready{age} (threshold {})",
            target.describe(),
            format_number(desired),
            plural(desired),
            format_number(ready),
            format_number(self.threshold)
        );
        let value = format_number(missing);
        if missing > self.threshold {
            return Ok(Verdict::Fail(Failure {
                class: FailureClass::Threshold,
                message,
                value,
                offenders: vec![target.describe()],
                awaiting: None,
            }));
        }
        Ok(proof.pass(value, message, Vec::new()))
    }
}

/// The one finite value of answer `name`, `None` when it is empty; more than one series is ambiguous.
fn one(answers: &Answers, name: &'static str, what: &str) -> Result<Option<f64>, Failure> {
    match vector(answer(answers, name)?, name)? {
        [] => Ok(None),
        [sample] if sample.value.is_finite() => Ok(Some(sample.value)),
        [sample] => Err(Failure::new(
            FailureClass::QueryError,
            format!("{what}: {}", format_number(sample.value)),
        )),
        more => Err(Failure::new(
            FailureClass::QueryError,
            format!(
                "{} series of {what}: ambiguous (two kube-state-metrics?)",
                more.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::query_name::*;
    use crate::engine::guardrails::testing::*;

    fn replicas(desired: &[f64], reported: &[f64], ready: &[f64]) -> Verdict {
        let samples = |v: &[f64]| v.iter().map(|v| s(&[], *v)).collect::<Vec<_>>();
        let mut ans = answers(&[], vec![]);
        ans.insert(DESIRED, QueryData::Vector(samples(desired)));
        ans.insert(REPORTED, QueryData::Vector(samples(reported)));
        ans.insert(READY, QueryData::Vector(samples(ready)));
        ans.insert(CREATED, QueryData::Vector(samples(&[AT - 240.0])));
        judge(r#"{"guardrail":"replicas"}"#, ans)
    }

    #[test]
    fn a_canary_without_its_pods_is_named_as_such() {
        let Verdict::Fail(f) = replicas(&[3.0], &[AT - 10.0], &[0.0]) else {
            panic!()
        };
        assert_eq!((f.class, f.value.as_str()), (FailureClass::Threshold, "3"));
        assert_eq!(
            f.message,
            "ReplicaSet pay/api-7f6e5d4c3 wants 3 pods, 0 ready after 4m (threshold 0)"
        );
        assert!(matches!(
            replicas(&[3.0], &[AT - 10.0], &[3.0]),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn it_passes_only_on_fresh_unambiguous_series() {
        let Verdict::Fail(f) = replicas(&[], &[], &[]) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        let Verdict::Fail(f) = replicas(&[3.0], &[AT - 3600.0], &[3.0]) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Stale);
        let Verdict::Fail(f) = replicas(&[3.0], &[AT, AT], &[3.0]) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::QueryError);
        let names: Vec<_> = planned(r#"{"guardrail":"replicas"}"#)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, [DESIRED, REPORTED, READY, CREATED]);
    }
}
