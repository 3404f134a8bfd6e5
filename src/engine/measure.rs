//! [`Engine`]: the one async function every face calls, from (analysis context, metric) to [`Measurement`].
//!
//! Every error becomes a `Failed` measurement here, in one place; nothing below returns a default.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;

use super::config::{Common, Config, ConfigError, Connection, GuardrailKind, ADDRESS_ENV};
use super::context::{AnalysisContext, MetricSpec, PLUGIN_NAME};
use super::defaults::{Effective, Origin};
use super::guardrails::{Answers, Plan, Scope, Target};
use super::observer::{InFlight, Observer, QueryOutcome, QueryTimer, Unobserved};
use super::phase::PhaseMap;
use super::promql::{Matchers, TargetSelector};
use super::settle::{self, Settling, Timeline};
use super::target;
use super::trust::TrustPolicy;
use super::verdict::{Failure, FailureClass, Verdict};
use super::{duration, Measurement, Phase};
use crate::prometheus::{Client, Endpoint, QueryError};

pub use super::target::POD_TEMPLATE_HASH_LABEL;

/// Metadata keys of every measurement.
pub mod metadata_key {
    pub const GUARDRAIL: &str = "guardrail";
    pub const PROFILE: &str = "profile";
    pub const TARGET: &str = "target";
    pub const PROMETHEUS: &str = "prometheus";
    pub const EVALUATED_AT: &str = "evaluatedAt";
    pub const FAILURE: &str = "failure";
    /// What a `Running` measurement waits for (`pod-series`, `request-series`, `requests`, `readiness`).
    pub const WAITING_FOR: &str = "waitingFor";
    pub const OFFENDERS: &str = "offenders";
    /// The effective `timeout`, `matchers` and `replicaLabels`, each with its origin
    /// (`template`, `registration`, `environment` or `default`).
    pub const EFFECTIVE_TIMEOUT: &str = "effective.timeout";
    pub const EFFECTIVE_MATCHERS: &str = "effective.matchers";
    pub const EFFECTIVE_REPLICA_LABELS: &str = "effective.replicaLabels";
    /// Prefix of the resolved PromQL of each query: `query.coverage`, `query.restarts-max`, …
    pub const QUERY_PREFIX: &str = "query.";
}

/// When a measurement is evaluated, and how long it may settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// At a fixed instant (incident reviews, replays): never settles.
    At(SystemTime),
    /// Now, on the timeline of a measurement that began at `started_at` (`None`: it begins now).
    Now {
        started_at: Option<SystemTime>,
        settle: SettlePolicy,
    },
}

/// How long a measurement evaluated now may settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlePolicy {
    /// The metric's `settle`, else the engine's default (plugin mode, gRPC).
    Configured,
    /// Exactly this long, whatever the metric says (`check`: zero unless `--settle`).
    Fixed(Duration),
}

/// The guardrail engine. Cheap to share: the Prometheus client pools its connections.
#[derive(Clone)]
pub struct Engine {
    client: Client,
    /// Which address, credentials, files and namespaces a template may use (see [`super::trust`]).
    trust: Arc<TrustPolicy>,
    /// `settle` for metrics that do not set it: [`DEFAULT_SETTLE`], or the controller's `GUARDRAILS_SETTLE`.
    default_settle: Duration,
    /// Told of every measurement and query (telemetry in the binary); nothing by default.
    observer: &'static dyn Observer,
}

impl Engine {
    /// A permissive engine (`check`: a person reading their own files) whose default Prometheus address
    /// comes from `GUARDRAILS_PROMETHEUS_ADDRESS`.
    pub fn from_env(client: Client) -> Engine {
        Engine::new(client, address_from_env())
    }

    /// A permissive engine with an explicit default address (used when a metric's configuration has none).
    pub fn new(client: Client, default_address: Option<String>) -> Engine {
        Engine::with_trust(client, TrustPolicy::permissive(default_address))
    }

    /// An engine under `trust` (plugin mode and `serve` use [`TrustPolicy::strict`]).
    pub fn with_trust(client: Client, trust: TrustPolicy) -> Engine {
        // The registration's `--settle` (or GUARDRAILS_SETTLE, which strict policies parse with it); a
        // permissive policy reads the environment here.
        let default_settle = match trust.defaults().settle {
            Some((settle, _)) => settle,
            None => settle::default_from_env(),
        };
        Engine {
            client,
            trust: Arc::new(trust),
            default_settle,
            observer: &Unobserved,
        }
    }

    /// The same engine with another controller-wide default `settle`.
    pub fn with_default_settle(self, default_settle: Duration) -> Engine {
        Engine {
            default_settle,
            ..self
        }
    }

    /// The controller-wide defaults of the registration (or `serve`'s flags).
    pub fn defaults(&self) -> &super::defaults::Defaults {
        self.trust.defaults()
    }

    /// The address used when a metric's configuration has none.
    pub fn default_address(&self) -> Option<&str> {
        self.trust.default_address()
    }

    /// The same engine, telling `observer` of every measurement and query.
    pub fn observed_by(self, observer: &'static dyn Observer) -> Engine {
        Engine { observer, ..self }
    }

    /// Measures `metric` now; absence so far settles for the metric's `settle` (else the engine's default).
    pub async fn measure(&self, ctx: &AnalysisContext, metric: &MetricSpec) -> Measurement {
        self.measure_at(ctx, metric, None).await
    }

    /// Measures `metric`, evaluating every query at `at` (now when `None`). An explicit `at` never settles:
    /// data cannot appear in the past, so absence there is answered at once.
    pub async fn measure_at(
        &self,
        ctx: &AnalysisContext,
        metric: &MetricSpec,
        at: Option<SystemTime>,
    ) -> Measurement {
        let when = match at {
            Some(at) => When::At(at),
            None => When::Now {
                started_at: None,
                settle: SettlePolicy::Configured,
            },
        };
        self.measure_when(ctx, metric, when).await
    }

    /// `Resume`: measures `metric` again now, on the timeline of the measurement that `started_at` began
    /// (its `settle` deadline is `started_at + settle`, however often it was resumed).
    pub async fn resume(
        &self,
        ctx: &AnalysisContext,
        metric: &MetricSpec,
        started_at: SystemTime,
    ) -> Measurement {
        let when = When::Now {
            started_at: Some(started_at),
            settle: SettlePolicy::Configured,
        };
        self.measure_when(ctx, metric, when).await
    }

    /// The one place a verdict becomes a measurement: `Successful` through a proof; an unproven absence inside
    /// `settle` is `Running` with `resumeAt`; every other failure is `Failed`, or the `unprovenPhase` phase of
    /// its class.
    pub async fn measure_when(
        &self,
        ctx: &AnalysisContext,
        metric: &MetricSpec,
        when: When,
    ) -> Measurement {
        let _in_flight = InFlight::new(self.observer);
        let now = SystemTime::now();
        let (at, started_at) = match when {
            When::At(at) => (at, now),
            When::Now { started_at, .. } => (now, started_at.unwrap_or(now)),
        };
        let mut metadata = BTreeMap::new();
        metadata.insert(
            metadata_key::EVALUATED_AT.to_string(),
            chrono::DateTime::<chrono::Utc>::from(at)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let config = parse_config(metric);
        let timeline = Timeline {
            started_at,
            settle: self.settle_for(ctx, metric, when, &config),
        };
        let kind = config.as_ref().ok().map(|c| c.guardrail);
        let verdict = match &config {
            Ok(config) => self
                .try_evaluate(ctx, config, at, timeline.settle, &mut metadata)
                .await
                .unwrap_or_else(Verdict::Fail),
            Err(failure) => Verdict::Fail(failure.clone()),
        };
        let phases = config.map(|c| c.common.unproven_phase).unwrap_or_default();
        let Outcome {
            phase,
            value,
            message,
            class: failure_class,
            resume_at,
        } = outcome(verdict, &timeline, &phases, now, &mut metadata);
        tracing::info!(
            metric = %metric.name,
            guardrail = metadata.get(metadata_key::GUARDRAIL).map(String::as_str).unwrap_or(""),
            target = metadata.get(metadata_key::TARGET).map(String::as_str).unwrap_or(""),
            phase = phase.as_str(),
            value = %value,
            "measured: {message}"
        );
        self.observer
            .measurement_finished(kind, phase, failure_class);
        Measurement {
            phase,
            message,
            value,
            metadata,
            started_at: Some(started_at),
            // A Running measurement has no finish time: Argo resumes only measurements without one.
            finished_at: (phase != Phase::Running).then(SystemTime::now),
            resume_at,
        }
    }

    /// How long absence may settle in this measurement: never at a fixed instant, for a bad configuration
    /// or for a metric already proven in this AnalysisRun (absence now is data that stopped, not "not yet").
    fn settle_for(
        &self,
        ctx: &AnalysisContext,
        metric: &MetricSpec,
        when: When,
        config: &Result<Config, Failure>,
    ) -> Duration {
        match (when, config) {
            (When::At(_), _) | (_, Err(_)) => Duration::ZERO,
            _ if ctx.proven_metrics.contains(&metric.name) => Duration::ZERO,
            (
                When::Now {
                    settle: SettlePolicy::Fixed(settle),
                    ..
                },
                _,
            ) => settle,
            (
                When::Now {
                    settle: SettlePolicy::Configured,
                    ..
                },
                Ok(config),
            ) => config.common.settle.unwrap_or(self.default_settle),
        }
    }

    /// What the controller shows for a metric before any measurement (`GetMetadata`): the guardrail, the
    /// Prometheus address and the PromQL, with `<placeholders>` for target parts that come from the AnalysisRun.
    pub fn describe(&self, metric: &MetricSpec) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let config = match parse_config(metric) {
            Ok(config) => config,
            Err(failure) => {
                out.insert("error".to_string(), failure.message);
                return out;
            }
        };
        record_config(&mut out, &config);
        if let Ok(endpoint) = self.endpoint(&config.connection) {
            out.insert(
                metadata_key::PROMETHEUS.to_string(),
                endpoint.display_address(),
            );
        }
        if let Ok(target) = target::placeholder(&config, &self.trust.defaults().matchers) {
            if let Ok(plan) = config.settings.plan(&target) {
                let mut shown = BTreeMap::new();
                record_plan(&mut shown, &plan);
                out.extend(
                    shown
                        .into_iter()
                        .filter(|(k, _)| k.starts_with(metadata_key::QUERY_PREFIX))
                        .map(|(k, q)| (k, TargetSelector::show(&q))),
                );
            }
        }
        out
    }

    /// parse → target → plan → ask (one deadline) → judge.
    async fn try_evaluate(
        &self,
        ctx: &AnalysisContext,
        config: &Config,
        at: SystemTime,
        settle: Duration,
        metadata: &mut BTreeMap<String, String>,
    ) -> Result<Verdict, Failure> {
        record_config(metadata, config);
        let endpoint = self.endpoint(&config.connection)?;
        metadata.insert(
            metadata_key::PROMETHEUS.to_string(),
            endpoint.display_address(),
        );
        if config.guardrail.scope() != Scope::Global {
            self.trust
                .check_namespace(config.target.namespace.as_deref(), &ctx.namespace)?;
        }
        let defaults = self.trust.defaults();
        let target = target::resolve(config, ctx, &defaults.matchers)?;
        if let Some(described) = target.describe() {
            metadata.insert(metadata_key::TARGET.to_string(), described);
        }
        let effective = defaults.effective(&config.common);
        record_effective(metadata, config, &defaults.matchers, &target, &effective);
        let plan = config.settings.plan(&target)?;
        record_plan(metadata, &plan);
        let answers = self.ask(&endpoint, &plan, at, effective.timeout).await?;
        let common = Common {
            settle: Some(settle),
            timeout: Some(effective.timeout),
            replica_labels: Some(effective.replica_labels),
            ..config.common.clone()
        };
        Ok(config.settings.judge(&target, &answers, &common, at))
    }

    /// Runs every query of every side concurrently, all of them inside the measurement's one timeout.
    async fn ask(
        &self,
        endpoint: &Endpoint,
        plan: &Plan,
        at: SystemTime,
        timeout: Duration,
    ) -> Result<Vec<Answers>, Failure> {
        let queries = plan.sides.iter().enumerate().flat_map(|(side, s)| {
            s.queries.iter().map(move |(name, query)| async move {
                let timer = QueryTimer::start(self.observer);
                let result = self.client.instant_query(endpoint, query, at).await;
                timer.finish(match result {
                    Ok(_) => QueryOutcome::Ok,
                    Err(_) => QueryOutcome::Error,
                });
                (side, *name, result)
            })
        });
        let results = tokio::time::timeout(timeout, join_all(queries))
            .await
            .map_err(|_| {
                Failure::new(
                    FailureClass::Timeout,
                    format!(
                        "timed out after {} waiting for Prometheus at {} (no answer is no proof)",
                        duration::format(timeout),
                        endpoint.display_address()
                    ),
                )
            })?;
        let mut answers = vec![Answers::new(); plan.sides.len()];
        for (side, name, result) in results {
            match result {
                Ok(data) => {
                    answers[side].insert(name, data);
                }
                Err(error) => return Err(query_failure(name, &error)),
            }
        }
        Ok(answers)
    }

    fn endpoint(&self, connection: &Connection) -> Result<Endpoint, Failure> {
        self.trust.endpoint(connection)
    }
}

/// A verdict as a measurement reports it.
struct Outcome {
    phase: Phase,
    value: String,
    message: String,
    class: Option<FailureClass>,
    resume_at: Option<SystemTime>,
}

/// The one place a verdict becomes a phase: `Successful` through a proof; an unproven absence inside `settle`
/// is `Running` with `resumeAt`; every other failure is `Failed`, or the `unprovenPhase` phase of its class.
fn outcome(
    verdict: Verdict,
    timeline: &Timeline,
    phases: &PhaseMap,
    now: SystemTime,
    metadata: &mut BTreeMap<String, String>,
) -> Outcome {
    let (details, offenders) = match &verdict {
        Verdict::Pass(pass) => (&pass.details, &pass.offenders),
        Verdict::Fail(failure) => (&failure.details, &failure.offenders),
    };
    metadata.extend(details.iter().map(|(k, v)| (k.to_string(), v.clone())));
    if !offenders.is_empty() {
        metadata.insert(metadata_key::OFFENDERS.to_string(), offenders.join("\n"));
    }
    let failure = match verdict {
        Verdict::Pass(pass) => {
            return Outcome {
                phase: Phase::Successful,
                value: pass.value,
                message: pass.message,
                class: None,
                resume_at: None,
            }
        }
        Verdict::Fail(failure) => failure,
    };
    let settling = failure
        .awaiting
        .map(|a| (a, timeline.settle(SystemTime::now())));
    if let Some((awaiting, Settling::Wait { resume_at })) = settling {
        metadata.insert(
            metadata_key::WAITING_FOR.to_string(),
            awaiting.name().to_string(),
        );
        return Outcome {
            phase: Phase::Running,
            message: settle::waiting_message(&failure.message, timeline, now, awaiting),
            value: failure.value,
            class: None,
            resume_at: Some(resume_at),
        };
    }
    metadata.insert(
        metadata_key::FAILURE.to_string(),
        failure.class.name().to_string(),
    );
    let message = match settling {
        Some((awaiting, Settling::Expired { waited })) => {
            settle::expired_message(&failure.message, waited, awaiting)
        }
        _ => failure.message,
    };
    Outcome {
        phase: phases.phase_of(failure.class),
        value: failure.value,
        message,
        class: Some(failure.class),
        resume_at: None,
    }
}

/// `GUARDRAILS_PROMETHEUS_ADDRESS`, when set and not blank: a controller-side default address.
pub fn address_from_env() -> Option<String> {
    std::env::var(ADDRESS_ENV)
        .ok()
        .filter(|a| !a.trim().is_empty())
}

fn parse_config(metric: &MetricSpec) -> Result<Config, Failure> {
    let config_failure = |e: ConfigError| {
        Failure::new(
            FailureClass::Config,
            format!("invalid plugin configuration: {e}"),
        )
    };
    Config::from_metric(metric)
        .map_err(config_failure)?
        .ok_or_else(|| {
            Failure::new(
                FailureClass::Config,
                format!(
                    "metric `{}` has no `{PLUGIN_NAME}` entry under provider.plugin",
                    metric.name
                ),
            )
        })
}

fn query_failure(name: &str, error: &QueryError) -> Failure {
    Failure::new(error.class(), format!("{name} query failed: {error}"))
}

fn record_config(metadata: &mut BTreeMap<String, String>, config: &Config) {
    metadata.insert(
        metadata_key::GUARDRAIL.to_string(),
        config.guardrail.name().to_string(),
    );
    metadata.insert(
        metadata_key::PROFILE.to_string(),
        config.profile.name().to_string(),
    );
}

/// The effective timeout, source matchers and replica labels, each with where it came from.
fn record_effective(
    metadata: &mut BTreeMap<String, String>,
    config: &Config,
    controller: &Matchers,
    target: &Target,
    effective: &Effective,
) {
    metadata.insert(
        metadata_key::EFFECTIVE_TIMEOUT.to_string(),
        format!(
            "{} ({})",
            duration::format(effective.timeout),
            effective.timeout_from.name()
        ),
    );
    metadata.insert(
        metadata_key::EFFECTIVE_REPLICA_LABELS.to_string(),
        format!(
            "{} ({})",
            effective.replica_labels.join(","),
            effective.replica_labels_from.name()
        ),
    );
    let matchers = target.matchers();
    let shown = if config.guardrail == GuardrailKind::Query {
        // `query` runs its PromQL as written.
        match controller.is_empty() {
            true => "none".to_string(),
            false => format!(
                "{} (registration) not applied: the query guardrail runs its PromQL as written",
                controller.describe()
            ),
        }
    } else if matchers.is_empty() {
        "none".to_string()
    } else {
        matchers
            .iter()
            .map(|(label, value)| {
                let from = match config.common.matchers.get(label) {
                    Some(_) => Origin::Template,
                    None => Origin::Registration,
                };
                format!("{label}={value} ({})", from.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    metadata.insert(metadata_key::EFFECTIVE_MATCHERS.to_string(), shown);
}

fn record_plan(metadata: &mut BTreeMap<String, String>, plan: &Plan) {
    for side in &plan.sides {
        let prefix = match side.label {
            Some(label) => {
                metadata.insert(label.to_string(), side.described.clone());
                format!("{}{label}-", metadata_key::QUERY_PREFIX)
            }
            None => metadata_key::QUERY_PREFIX.to_string(),
        };
        for (name, query) in &side.queries {
            metadata.insert(format!("{prefix}{name}"), query.clone());
        }
    }
}

#[cfg(test)]
mod tests;
