//! The guardrails, one module each behind one [`Guardrail`] enum. A module owns everything about its
//! guardrail: the configuration keys it accepts, its defaults per profile (parsed into its own typed
//! settings), the queries it plans and how it judges their answers, messages included. Nothing outside a
//! module knows its insides; [`GuardrailKind::ALL`] is the one list telemetry, the CLI's help and the docs
//! tests derive from.
//!
//! Adding a guardrail is one new module here plus one variant in [`GuardrailKind`] and [`Guardrail`]
//! (see docs/adding-a-guardrail.md).
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::config::read::Keys;
use super::config::{Common, Conditions, ConfigError, Profile};
use super::promql::{Matchers, TargetSelector};
use super::verdict::{Coverage, Failure, FailureClass, Verdict};
use crate::prometheus::QueryData;

pub mod alerts;
pub mod error_rate;
pub mod gitops;
pub mod latency;
pub mod latest_image;
pub mod not_ready;
pub mod oom_killed;
pub mod query;
pub mod regression;
pub mod replicas;
pub mod restarts;
pub mod waiting_reasons;

/// Which check a metric performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GuardrailKind {
    Restarts,
    NotReady,
    LatestImage,
    WaitingReasons,
    OomKilled,
    ErrorRate,
    Latency,
    Alerts,
    Regression,
    Gitops,
    Query,
    Replicas,
}

/// What a guardrail judges, and so which target keys it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The pods of one ReplicaSet (the canary): `namespace`, `rollout`, `podTemplateHash`, `minPods`.
    ReplicaSet,
    /// The ReplicaSet object itself, whether or not any pod exists: `namespace`, `rollout`, `podTemplateHash`.
    ReplicaSetObject,
    /// One namespace: `namespace`.
    Namespace,
    /// Nothing of the AnalysisRun's (the query or object is named in full).
    Global,
}

impl GuardrailKind {
    pub const ALL: [GuardrailKind; 12] = [
        GuardrailKind::Restarts,
        GuardrailKind::NotReady,
        GuardrailKind::LatestImage,
        GuardrailKind::WaitingReasons,
        GuardrailKind::OomKilled,
        GuardrailKind::ErrorRate,
        GuardrailKind::Latency,
        GuardrailKind::Alerts,
        GuardrailKind::Regression,
        GuardrailKind::Gitops,
        GuardrailKind::Query,
        GuardrailKind::Replicas,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GuardrailKind::Restarts => "restarts",
            GuardrailKind::NotReady => "not-ready",
            GuardrailKind::LatestImage => "latest-image",
            GuardrailKind::WaitingReasons => "waiting-reasons",
            GuardrailKind::OomKilled => "oom-killed",
            GuardrailKind::ErrorRate => "error-rate",
            GuardrailKind::Latency => "latency",
            GuardrailKind::Alerts => "alerts",
            GuardrailKind::Regression => "regression",
            GuardrailKind::Gitops => "gitops",
            GuardrailKind::Query => "query",
            GuardrailKind::Replicas => "replicas",
        }
    }

    /// One line for the CLI's help: what the guardrail fails on.
    pub fn summary(self) -> &'static str {
        match self {
            GuardrailKind::Restarts => restarts::SUMMARY,
            GuardrailKind::NotReady => not_ready::SUMMARY,
            GuardrailKind::LatestImage => latest_image::SUMMARY,
            GuardrailKind::WaitingReasons => waiting_reasons::SUMMARY,
            GuardrailKind::OomKilled => oom_killed::SUMMARY,
            GuardrailKind::ErrorRate => error_rate::SUMMARY,
            GuardrailKind::Latency => latency::SUMMARY,
            GuardrailKind::Alerts => alerts::SUMMARY,
            GuardrailKind::Regression => regression::SUMMARY,
            GuardrailKind::Gitops => gitops::SUMMARY,
            GuardrailKind::Query => query::SUMMARY,
            GuardrailKind::Replicas => replicas::SUMMARY,
        }
    }

    pub fn parse(name: &str) -> Option<GuardrailKind> {
        GuardrailKind::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The guardrail's own keys (the target keys of its [`Scope`] and the common keys aside).
    pub fn keys(self) -> Vec<&'static str> {
        let (own, requests) = match self {
            GuardrailKind::Restarts => (restarts::KEYS, false),
            GuardrailKind::NotReady => (not_ready::KEYS, false),
            GuardrailKind::LatestImage => (latest_image::KEYS, false),
            GuardrailKind::WaitingReasons => (waiting_reasons::KEYS, false),
            GuardrailKind::OomKilled => (oom_killed::KEYS, false),
            GuardrailKind::ErrorRate => (error_rate::KEYS, true),
            GuardrailKind::Latency => (latency::KEYS, true),
            GuardrailKind::Alerts => (alerts::KEYS, false),
            GuardrailKind::Regression => (regression::KEYS, true),
            GuardrailKind::Gitops => (gitops::KEYS, false),
            GuardrailKind::Query => (query::KEYS, false),
            GuardrailKind::Replicas => (replicas::KEYS, false),
        };
        let requests: &[&str] = if requests { super::traffic::KEYS } else { &[] };
        [requests, own].concat()
    }

    pub fn scope(self) -> Scope {
        match self {
            GuardrailKind::Alerts => Scope::Namespace,
            GuardrailKind::Gitops | GuardrailKind::Query => Scope::Global,
            GuardrailKind::Replicas => Scope::ReplicaSetObject,
            _ => Scope::ReplicaSet,
        }
    }
}

/// A guardrail with its typed settings, every default of the profile applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Guardrail {
    Restarts(restarts::Restarts),
    NotReady(not_ready::NotReady),
    LatestImage(latest_image::LatestImage),
    WaitingReasons(waiting_reasons::WaitingReasons),
    OomKilled(oom_killed::OomKilled),
    ErrorRate(error_rate::ErrorRate),
    Latency(latency::Latency),
    Alerts(alerts::Alerts),
    Regression(regression::Regression),
    Gitops(gitops::Gitops),
    Query(query::Query),
    Replicas(replicas::Replicas),
}

/// The name of each query in metadata (`query.<name>`) and in answers; each module names its own, these two
/// are shared by every pod guardrail.
pub mod query_name {
    pub const COVERAGE: &str = "coverage";
    pub const WAITING: &str = "waiting";
    /// When each pod was created (`kube_pod_created`): bounds windows and tells a starting pod from a stuck one.
    pub const CREATED: &str = "created";
}

/// One query of a plan: its name and its PromQL.
pub type Query = (&'static str, String);

/// Answers by query name.
pub type Answers = BTreeMap<&'static str, QueryData>;

/// The queries of one measurement, in sides asked together under one deadline: one side, or the canary and
/// the stable ReplicaSet for `regression`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sides: Vec<Side>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// `None` for the measured target; `Some("stable")` for the side it is compared with (metadata
    /// `stable` and `query.stable-<name>`).
    pub label: Option<&'static str>,
    /// The side's target as shown in metadata (for a labelled side).
    pub described: String,
    pub queries: Vec<Query>,
}

impl Plan {
    pub fn one(queries: Vec<Query>) -> Plan {
        Plan {
            sides: vec![Side {
                label: None,
                described: String::new(),
                queries,
            }],
        }
    }
}

/// What a measurement judges, resolved from the configuration and the AnalysisRun.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The pods (or the object) of one ReplicaSet; the selector carries the source's matchers.
    ReplicaSet(TargetSelector),
    /// One namespace, read from the source the matchers select.
    Namespace(String, Matchers),
    /// Nothing of the AnalysisRun's, read from the source the matchers select.
    Global(Matchers),
}

impl Target {
    /// The metadata `target` value, when there is one.
    pub fn describe(&self) -> Option<String> {
        match self {
            Target::ReplicaSet(t) => Some(t.describe()),
            Target::Namespace(n, _) => Some(n.clone()),
            Target::Global(_) => None,
        }
    }

    fn replica_set(&self) -> Result<&TargetSelector, Failure> {
        match self {
            Target::ReplicaSet(t) => Ok(t),
            _ => Err(Failure::new(
                FailureClass::Config,
                "this guardrail judges a ReplicaSet",
            )),
        }
    }

    /// The source's matchers.
    pub fn matchers(&self) -> &Matchers {
        match self {
            Target::ReplicaSet(t) => t.matchers(),
            Target::Namespace(_, m) | Target::Global(m) => m,
        }
    }

    fn namespace(&self) -> Result<&str, Failure> {
        match self {
            Target::Namespace(n, _) => Ok(n),
            _ => Err(Failure::new(
                FailureClass::Config,
                "this guardrail judges a namespace",
            )),
        }
    }
}

/// What a request judge looks at for one side: its target, the coverage proof, its answers and the clock.
pub struct Evidence<'a> {
    pub target: &'a TargetSelector,
    pub coverage: Coverage,
    pub answers: &'a Answers,
    pub staleness: Duration,
    pub at: SystemTime,
}

/// The one answer of `name` in `answers`.
pub fn answer<'a>(answers: &'a Answers, name: &'static str) -> Result<&'a QueryData, Failure> {
    answers.get(name).ok_or_else(|| {
        Failure::new(
            FailureClass::QueryError,
            format!("{name} query has no answer"),
        )
    })
}

/// The [`Coverage`] proof of a pod guardrail, from its `coverage` answer.
pub fn prove_coverage(
    answers: &Answers,
    target: &TargetSelector,
    common: &Common,
    at: SystemTime,
) -> Result<Coverage, Failure> {
    let data = answers
        .get(query_name::COVERAGE)
        .ok_or_else(|| Failure::new(FailureClass::QueryError, "coverage query has no answer"))?;
    Coverage::prove(
        data,
        target,
        at,
        common.staleness,
        common.min_pods,
        &common.replica_labels_or_default(),
    )
}

/// The coverage query every pod guardrail asks first.
pub fn coverage_query(target: &TargetSelector) -> Query {
    (query_name::COVERAGE, target.coverage())
}

/// The pods' creation times.
pub fn created_query(target: &TargetSelector) -> Query {
    (query_name::CREATED, target.created())
}

/// The waiting-reasons query pod guardrails ask last, to name why an offending container waits.
pub fn waiting_query(target: &TargetSelector) -> Query {
    (query_name::WAITING, target.waiting())
}

impl Guardrail {
    pub fn parse(
        kind: GuardrailKind,
        keys: &Keys,
        profile: Profile,
        conditions: &Conditions,
    ) -> Result<Guardrail, ConfigError> {
        Ok(match kind {
            GuardrailKind::Restarts => {
                Guardrail::Restarts(restarts::Restarts::parse(keys, profile)?)
            }
            GuardrailKind::NotReady => Guardrail::NotReady(not_ready::NotReady::parse(keys)?),
            GuardrailKind::LatestImage => {
                Guardrail::LatestImage(latest_image::LatestImage::parse(keys)?)
            }
            GuardrailKind::WaitingReasons => {
                Guardrail::WaitingReasons(waiting_reasons::WaitingReasons::parse(keys)?)
            }
            GuardrailKind::OomKilled => {
                Guardrail::OomKilled(oom_killed::OomKilled::parse(keys, profile)?)
            }
            GuardrailKind::ErrorRate => {
                Guardrail::ErrorRate(error_rate::ErrorRate::parse(keys, profile)?)
            }
            GuardrailKind::Latency => Guardrail::Latency(latency::Latency::parse(keys, profile)?),
            GuardrailKind::Alerts => Guardrail::Alerts(alerts::Alerts::parse(keys, profile)?),
            GuardrailKind::Regression => {
                Guardrail::Regression(regression::Regression::parse(keys, profile)?)
            }
            GuardrailKind::Gitops => Guardrail::Gitops(gitops::Gitops::parse(keys, profile)?),
            GuardrailKind::Query => Guardrail::Query(query::Query::parse(keys, conditions)?),
            GuardrailKind::Replicas => Guardrail::Replicas(replicas::Replicas::parse(keys)?),
        })
    }

    pub fn kind(&self) -> GuardrailKind {
        match self {
            Guardrail::Restarts(_) => GuardrailKind::Restarts,
            Guardrail::NotReady(_) => GuardrailKind::NotReady,
            Guardrail::LatestImage(_) => GuardrailKind::LatestImage,
            Guardrail::WaitingReasons(_) => GuardrailKind::WaitingReasons,
            Guardrail::OomKilled(_) => GuardrailKind::OomKilled,
            Guardrail::ErrorRate(_) => GuardrailKind::ErrorRate,
            Guardrail::Latency(_) => GuardrailKind::Latency,
            Guardrail::Alerts(_) => GuardrailKind::Alerts,
            Guardrail::Regression(_) => GuardrailKind::Regression,
            Guardrail::Gitops(_) => GuardrailKind::Gitops,
            Guardrail::Query(_) => GuardrailKind::Query,
            Guardrail::Replicas(_) => GuardrailKind::Replicas,
        }
    }

    /// The metric's conditions against the guardrail: `query` needs something to judge by and compiles
    /// them; every other guardrail refuses them.
    pub fn check_conditions(&self, conditions: &Conditions) -> Result<(), ConfigError> {
        match self {
            Guardrail::Query(q) => q.check_conditions(conditions),
            other => super::config::refuse_conditions(other.kind(), conditions),
        }
    }

    /// The queries to ask for `target`.
    pub fn plan(&self, target: &Target) -> Result<Plan, Failure> {
        Ok(match self {
            Guardrail::Restarts(g) => Plan::one(g.plan(target.replica_set()?)),
            Guardrail::NotReady(_) => Plan::one(not_ready::plan(target.replica_set()?)),
            Guardrail::LatestImage(_) => Plan::one(latest_image::plan(target.replica_set()?)),
            Guardrail::WaitingReasons(_) => Plan::one(waiting_reasons::plan(target.replica_set()?)),
            Guardrail::OomKilled(g) => Plan::one(g.plan(target.replica_set()?)),
            Guardrail::ErrorRate(g) => Plan::one(g.plan(target.replica_set()?)?),
            Guardrail::Latency(g) => Plan::one(g.plan(target.replica_set()?)?),
            Guardrail::Alerts(g) => Plan::one(g.plan(target.namespace()?, target.matchers())?),
            Guardrail::Regression(g) => g.plan(target.replica_set()?)?,
            Guardrail::Gitops(g) => Plan::one(g.plan(target.matchers())?),
            Guardrail::Query(g) => Plan::one(g.plan()),
            Guardrail::Replicas(g) => Plan::one(g.plan(target.replica_set()?)?),
        })
    }

    /// Judges the answers of [`Guardrail::plan`] (one [`Answers`] per side).
    pub fn judge(
        &self,
        target: &Target,
        answers: &[Answers],
        common: &Common,
        at: SystemTime,
    ) -> Verdict {
        self.try_judge(target, answers, common, at)
            .unwrap_or_else(Verdict::Fail)
    }

    fn try_judge(
        &self,
        target: &Target,
        answers: &[Answers],
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let first = || {
            answers
                .first()
                .ok_or_else(|| Failure::new(FailureClass::QueryError, "no answers"))
        };
        let pods = || prove_coverage(first()?, target.replica_set()?, common, at);
        let evidence = || -> Result<Evidence, Failure> {
            Ok(Evidence {
                target: target.replica_set()?,
                coverage: pods()?,
                answers: first()?,
                staleness: common.staleness,
                at,
            })
        };
        match self {
            Guardrail::Restarts(g) => g.judge(&pods()?, first()?, at),
            Guardrail::NotReady(g) => {
                g.judge(&pods()?, first()?, at, common.settle.unwrap_or_default())
            }
            Guardrail::LatestImage(g) => g.judge(&pods()?, first()?),
            Guardrail::WaitingReasons(g) => g.judge(&pods()?, first()?),
            Guardrail::OomKilled(g) => g.judge(&pods()?, first()?),
            Guardrail::ErrorRate(g) => g.judge(&evidence()?),
            Guardrail::Latency(g) => g.judge(&evidence()?),
            Guardrail::Regression(g) => g.judge(target.replica_set()?, answers, common, at),
            Guardrail::Alerts(g) => g.judge(target.namespace()?, first()?, common, at),
            Guardrail::Gitops(g) => g.judge(first()?, common, at),
            Guardrail::Query(g) => g.judge(first()?, common, at),
            Guardrail::Replicas(g) => g.judge(target.replica_set()?, first()?, common, at),
        }
    }
}

#[cfg(test)]
pub mod testing;
