//! [`Engine`]: the one async function every face calls, from (analysis context, metric) to [`Measurement`].
//!
//! Every error becomes a `Failed` measurement here, in one place; nothing below returns a default.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;

use super::config::{Config, Connection, GuardrailKind, Settings, ADDRESS_ENV};
use super::context::{AnalysisContext, MetricSpec, PLUGIN_NAME};
use super::guardrail::{self, query_name, Answers};
use super::promql::{validate_namespace, TargetSelector};
use super::settle::{self, Settling, Timeline, DEFAULT_SETTLE, MAX_SETTLE, SETTLE_ENV};
use super::trust::TrustPolicy;
use super::verdict::{self, Coverage, Failure, FailureClass, Verdict};
use super::{alerts, gitops, regression, traffic};
use super::{condition, duration, Measurement, Phase};
use crate::prometheus::{Client, Endpoint, QueryError};
use crate::telemetry::{self, QueryOutcome};

/// The AnalysisRun label Argo Rollouts sets to the pod-template hash of the ReplicaSet under analysis.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";

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
        Engine {
            client,
            trust: Arc::new(trust),
            default_settle: default_settle_from_env(),
        }
    }

    /// The same engine with another controller-wide default `settle`.
    pub fn with_default_settle(self, default_settle: Duration) -> Engine {
        Engine {
            default_settle,
            ..self
        }
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
        let _in_flight = telemetry::global().measurement_in_flight();
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
            settle: match (when, &config) {
                (When::At(_), _) | (_, Err(_)) => Duration::ZERO,
                // Proven before in this AnalysisRun: absence now is data that stopped, not "not yet".
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
                ) => config.settle.unwrap_or(self.default_settle),
            },
        };
        let verdict = match &config {
            Ok(config) => self
                .try_evaluate(ctx, metric, config, at, timeline.settle, &mut metadata)
                .await
                .unwrap_or_else(Verdict::Fail),
            Err(failure) => Verdict::Fail(failure.clone()),
        };
        let phases = config.map(|c| c.unproven_phase).unwrap_or_default();
        let mut resume_at = None;
        let (phase, value, message, failure_class) = match verdict {
            Verdict::Pass(pass) => {
                if !pass.offenders.is_empty() {
                    metadata.insert(
                        metadata_key::OFFENDERS.to_string(),
                        pass.offenders.join("\n"),
                    );
                }
                (Phase::Successful, pass.value, pass.message, None)
            }
            Verdict::Fail(failure) => {
                if !failure.offenders.is_empty() {
                    metadata.insert(
                        metadata_key::OFFENDERS.to_string(),
                        failure.offenders.join("\n"),
                    );
                }
                let settling = failure
                    .awaiting
                    .map(|a| (a, timeline.settle(SystemTime::now())));
                match settling {
                    Some((awaiting, Settling::Wait { resume_at: next })) => {
                        metadata.insert(
                            metadata_key::WAITING_FOR.to_string(),
                            awaiting.name().to_string(),
                        );
                        resume_at = Some(next);
                        let message =
                            settle::waiting_message(&failure.message, &timeline, now, awaiting);
                        (Phase::Running, failure.value, message, None)
                    }
                    expired => {
                        metadata.insert(
                            metadata_key::FAILURE.to_string(),
                            failure.class.name().to_string(),
                        );
                        let message = match expired {
                            Some((awaiting, Settling::Expired { waited })) => {
                                settle::expired_message(&failure.message, waited, awaiting)
                            }
                            _ => failure.message,
                        };
                        (
                            phases.phase_of(failure.class),
                            failure.value,
                            message,
                            Some(failure.class),
                        )
                    }
                }
            }
        };
        tracing::info!(
            metric = %metric.name,
            guardrail = metadata.get(metadata_key::GUARDRAIL).map(String::as_str).unwrap_or(""),
            target = metadata.get(metadata_key::TARGET).map(String::as_str).unwrap_or(""),
            phase = phase.as_str(),
            value = %value,
            "measured: {message}"
        );
        telemetry::global().record_measurement(
            metadata.get(metadata_key::GUARDRAIL).map(String::as_str),
            phase,
            failure_class,
        );
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
        out.insert(
            metadata_key::GUARDRAIL.to_string(),
            config.guardrail.name().to_string(),
        );
        out.insert(
            metadata_key::PROFILE.to_string(),
            config.profile.name().to_string(),
        );
        if let Ok(endpoint) = self.endpoint(&config.connection) {
            out.insert(
                metadata_key::PROMETHEUS.to_string(),
                endpoint.display_address(),
            );
        }
        let settings = config.settings();
        if let Some(query) = &config.query {
            out.insert(
                format!("{}{}", metadata_key::QUERY_PREFIX, query_name::QUERY),
                query.clone(),
            );
            return out;
        }
        // Placeholders are lowercase alphanumerics so the selector validates; they are swapped for readable
        // markers afterwards. These queries are shown, never sent.
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| "ph0namespace".to_string());
        let rollout = config
            .rollout
            .clone()
            .unwrap_or_else(|| "ph0rollout".to_string());
        let hash = config
            .pod_template_hash
            .clone()
            .unwrap_or_else(|| "ph0hash".to_string());
        if config.guardrail == GuardrailKind::Gitops {
            if let Ok(plan) = gitops::plan(&config, &settings) {
                for (name, query) in plan {
                    out.insert(format!("{}{name}", metadata_key::QUERY_PREFIX), query);
                }
            }
            return out;
        }
        if config.guardrail == GuardrailKind::Alerts {
            if let Ok(plan) = alerts::plan(&config, &namespace) {
                for (name, query) in plan {
                    out.insert(
                        format!("{}{name}", metadata_key::QUERY_PREFIX),
                        query.replace("ph0namespace", "<namespace>"),
                    );
                }
            }
            return out;
        }
        if let Ok(target) = TargetSelector::new(&namespace, &rollout, &hash) {
            let mut plan = guardrail::plan(config.guardrail, &target, &settings);
            if config.guardrail.is_traffic() {
                if let Ok(traffic_plan) = traffic::plan(&config, &target, &settings) {
                    plan.extend(traffic_plan.queries);
                }
            }
            for (name, query) in plan {
                let shown = query
                    .replace("ph0namespace", "<namespace>")
                    .replace("ph0rollout", "<rollout>")
                    .replace("ph0hash", "<podTemplateHash>");
                out.insert(format!("{}{name}", metadata_key::QUERY_PREFIX), shown);
            }
        }
        out
    }

    async fn try_evaluate(
        &self,
        ctx: &AnalysisContext,
        metric: &MetricSpec,
        config: &Config,
        at: SystemTime,
        settle: Duration,
        metadata: &mut BTreeMap<String, String>,
    ) -> Result<Verdict, Failure> {
        metadata.insert(
            metadata_key::GUARDRAIL.to_string(),
            config.guardrail.name().to_string(),
        );
        metadata.insert(
            metadata_key::PROFILE.to_string(),
            config.profile.name().to_string(),
        );
        let settings = Settings {
            settle,
            ..config.settings()
        };
        let endpoint = self.endpoint(&config.connection)?;
        metadata.insert(
            metadata_key::PROMETHEUS.to_string(),
            endpoint.display_address(),
        );

        if config.guardrail == GuardrailKind::Query {
            for (which, text) in [
                ("successCondition", &metric.success_condition),
                ("failureCondition", &metric.failure_condition),
            ] {
                condition::validate(which, text)
                    .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
            }
            let query = config.query.clone().unwrap_or_default();
            metadata.insert(
                format!("{}{}", metadata_key::QUERY_PREFIX, query_name::QUERY),
                query.clone(),
            );
            let answers = self
                .ask(&endpoint, vec![(query_name::QUERY, query)], at, &settings)
                .await?;
            let data = answers
                .get(query_name::QUERY)
                .ok_or_else(|| Failure::new(FailureClass::QueryError, "the query has no answer"))?;
            verdict::answered_at(data, at, settings.staleness)?;
            return Ok(guardrail::judge_query(
                data,
                settings.threshold,
                &metric.success_condition,
                &metric.failure_condition,
            ));
        }

        for (which, text) in [
            ("successCondition", &metric.success_condition),
            ("failureCondition", &metric.failure_condition),
        ] {
            if !text.trim().is_empty() {
                return Err(Failure::new(
                    FailureClass::Config,
                    format!("{which} is not used by guardrail `{}`: it is judged by `threshold` (conditions apply to guardrail `query`)", config.guardrail.name()),
                ));
            }
        }
        if config.guardrail == GuardrailKind::Gitops {
            let plan = gitops::plan(config, &settings)?;
            record_plan(metadata, &plan);
            let answers = self.ask(&endpoint, plan, at, &settings).await?;
            return Ok(gitops::judge(config, &answers, &settings, at));
        }
        self.trust
            .check_namespace(config.namespace.as_deref(), &ctx.namespace)?;
        if config.guardrail == GuardrailKind::Alerts {
            let namespace = resolve_namespace(config, ctx)?;
            metadata.insert(metadata_key::TARGET.to_string(), namespace.clone());
            let plan = alerts::plan(config, &namespace)?;
            record_plan(metadata, &plan);
            let answers = self.ask(&endpoint, plan, at, &settings).await?;
            return Ok(alerts::judge(&namespace, &answers, &settings, at));
        }
        let target = resolve_target(config, ctx)?;
        metadata.insert(metadata_key::TARGET.to_string(), target.describe());
        if config.guardrail == GuardrailKind::Regression {
            return self
                .regression(config, &target, &endpoint, &settings, at, metadata)
                .await;
        }
        let traffic_plan = if config.guardrail.is_traffic() {
            Some(traffic::plan(config, &target, &settings)?)
        } else {
            None
        };
        let mut plan = guardrail::plan(config.guardrail, &target, &settings);
        if let Some(traffic_plan) = &traffic_plan {
            plan.extend(traffic_plan.queries.iter().cloned());
        }
        record_plan(metadata, &plan);
        let answers = self.ask(&endpoint, plan, at, &settings).await?;
        let coverage_data = answers.get(query_name::COVERAGE).ok_or_else(|| {
            Failure::new(FailureClass::QueryError, "coverage query has no answer")
        })?;
        let coverage = Coverage::prove(
            coverage_data,
            &target,
            at,
            settings.staleness,
            settings.min_pods,
        )?;
        Ok(match (&traffic_plan, config.guardrail) {
            (Some(traffic_plan), kind) => {
                traffic::judge(kind, traffic_plan, &coverage, &answers, &settings, at)
            }
            (None, GuardrailKind::WaitingReasons) => {
                guardrail::judge_waiting(&coverage, &answers, &settings, &config.reasons)
            }
            (None, kind) => {
                guardrail::judge(kind, &coverage, &answers, &settings, &config.images, at)
            }
        })
    }

    /// `regression`: both sides asked concurrently inside the one timeout, each proven, then compared.
    async fn regression(
        &self,
        config: &Config,
        target: &TargetSelector,
        endpoint: &Endpoint,
        settings: &Settings,
        at: SystemTime,
        metadata: &mut BTreeMap<String, String>,
    ) -> Result<Verdict, Failure> {
        let signal = config
            .signal
            .ok_or_else(|| Failure::new(FailureClass::Config, "missing key `signal`"))?;
        let stable_hash = config.stable_pod_template_hash.as_deref().ok_or_else(|| {
            Failure::new(FailureClass::Config, "missing key `stablePodTemplateHash`")
        })?;
        let stable = target
            .with_hash(stable_hash)
            .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
        metadata.insert("stable".to_string(), stable.describe());
        let canary_plan = regression::plan(signal, config, target, settings)?;
        let stable_plan = regression::plan(signal, config, &stable, settings)?;
        record_plan(metadata, &canary_plan.queries);
        for (name, query) in &stable_plan.queries {
            metadata.insert(
                format!("{}stable-{name}", metadata_key::QUERY_PREFIX),
                query.clone(),
            );
        }
        let (canary_answers, stable_answers) = tokio::join!(
            self.ask(endpoint, canary_plan.queries.clone(), at, settings),
            self.ask(endpoint, stable_plan.queries.clone(), at, settings)
        );
        let (canary_answers, stable_answers) = (canary_answers?, stable_answers?);
        let prove = |answers: &Answers, side: &TargetSelector, plan: &regression::SidePlan| {
            let data = answers.get(query_name::COVERAGE).ok_or_else(|| {
                Failure::new(FailureClass::QueryError, "coverage query has no answer")
            })?;
            let coverage = Coverage::prove(data, side, at, settings.staleness, settings.min_pods)?;
            let value = regression::side_value(signal, plan, &coverage, answers, settings, at)?;
            Ok::<_, Failure>((coverage, value))
        };
        let side = |which: &str, result: Result<(Coverage, f64), Failure>| {
            result.map_err(|f| Failure {
                message: format!("{which}: {}", f.message),
                ..f
            })
        };
        let canary = side("canary", prove(&canary_answers, target, &canary_plan))?;
        let stable = side("stable", prove(&stable_answers, &stable, &stable_plan))?;
        Ok(regression::judge(
            signal,
            (&canary.0, canary.1),
            (&stable.0, stable.1),
            settings,
        ))
    }

    /// Runs every query concurrently, all of them inside the measurement's one timeout.
    async fn ask(
        &self,
        endpoint: &Endpoint,
        plan: Vec<(&'static str, String)>,
        at: SystemTime,
        settings: &Settings,
    ) -> Result<Answers, Failure> {
        let queries = plan.iter().map(|(name, query)| async move {
            let timer = telemetry::global().time_query();
            let result = self.client.instant_query(endpoint, query, at).await;
            timer.finish(match result {
                Ok(_) => QueryOutcome::Ok,
                Err(_) => QueryOutcome::Error,
            });
            (*name, result)
        });
        let results = tokio::time::timeout(settings.timeout, join_all(queries))
            .await
            .map_err(|_| {
                Failure::new(
                    FailureClass::Timeout,
                    format!(
                        "timed out after {} waiting for Prometheus at {} (no answer is no proof)",
                        duration::format(settings.timeout),
                        endpoint.display_address()
                    ),
                )
            })?;
        let mut answers = Answers::new();
        for (name, result) in results {
            match result {
                Ok(data) => {
                    answers.insert(name, data);
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

/// `GUARDRAILS_PROMETHEUS_ADDRESS`, when set and not blank: a controller-side default address.
pub fn address_from_env() -> Option<String> {
    std::env::var(ADDRESS_ENV)
        .ok()
        .filter(|a| !a.trim().is_empty())
}

/// The controller-wide default `settle`: `GUARDRAILS_SETTLE` when valid (an invalid value is logged and the
/// built-in default used: the plugin never exits on bad input), else [`DEFAULT_SETTLE`].
fn default_settle_from_env() -> Duration {
    match settle_from_env() {
        Ok(settle) => settle.unwrap_or(DEFAULT_SETTLE),
        Err(reason) => {
            tracing::warn!("ignoring {SETTLE_ENV}: {reason}; using the default settle");
            DEFAULT_SETTLE
        }
    }
}

/// The controller-wide default `settle` from `GUARDRAILS_SETTLE` (`None` when unset or empty).
pub fn settle_from_env() -> Result<Option<Duration>, String> {
    match std::env::var(SETTLE_ENV) {
        Ok(value) if !value.trim().is_empty() => parse_settle(value.trim()).map(Some),
        _ => Ok(None),
    }
}

/// A `settle` duration as `--settle` and `GUARDRAILS_SETTLE` take it: `0s` to `30m`.
pub fn parse_settle(text: &str) -> Result<Duration, String> {
    let settle = duration::parse(text).map_err(|e| e.to_string())?;
    if settle > MAX_SETTLE {
        return Err(format!(
            "settle {text} is longer than {}",
            duration::format(MAX_SETTLE)
        ));
    }
    Ok(settle)
}

fn parse_config(metric: &MetricSpec) -> Result<Config, Failure> {
    let raw = metric.plugin_config.as_deref().ok_or_else(|| {
        Failure::new(
            FailureClass::Config,
            format!(
                "metric `{}` has no `{PLUGIN_NAME}` entry under provider.plugin",
                metric.name
            ),
        )
    })?;
    Config::from_json(raw).map_err(|e| {
        Failure::new(
            FailureClass::Config,
            format!("invalid plugin configuration: {e}"),
        )
    })
}

fn query_failure(name: &str, error: &QueryError) -> Failure {
    let class = match error.class() {
        crate::prometheus::FailureClass::Timeout => FailureClass::Timeout,
        crate::prometheus::FailureClass::Config => FailureClass::Config,
        crate::prometheus::FailureClass::QueryError => FailureClass::QueryError,
    };
    Failure::new(class, format!("{name} query failed: {error}"))
}

fn record_plan(metadata: &mut BTreeMap<String, String>, plan: &[(&'static str, String)]) {
    for (name, query) in plan {
        metadata.insert(
            format!("{}{name}", metadata_key::QUERY_PREFIX),
            query.clone(),
        );
    }
}

/// The namespace from the configuration, else the AnalysisRun's (for guardrails that judge a namespace).
fn resolve_namespace(config: &Config, ctx: &AnalysisContext) -> Result<String, Failure> {
    let namespace = config
        .namespace
        .clone()
        .or_else(|| Some(ctx.namespace.clone()).filter(|n| !n.is_empty()))
        .ok_or_else(|| {
            Failure::new(
                FailureClass::Config,
                "cannot determine the namespace: set `namespace`; the AnalysisRun has no namespace",
            )
        })?;
    validate_namespace(&namespace)
        .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
    Ok(namespace)
}

/// The target from the configuration, else from the AnalysisRun; a missing part is named.
fn resolve_target(config: &Config, ctx: &AnalysisContext) -> Result<TargetSelector, Failure> {
    let namespace = config
        .namespace
        .clone()
        .or_else(|| Some(ctx.namespace.clone()).filter(|n| !n.is_empty()));
    let rollout = config.rollout.clone().or_else(|| {
        ctx.owner_references
            .iter()
            .find(|o| o.kind == "Rollout" && !o.name.is_empty())
            .map(|o| o.name.clone())
    });
    let hash = config.pod_template_hash.clone().or_else(|| {
        ctx.labels
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .filter(|h| !h.is_empty())
    });
    let mut missing = Vec::new();
    if namespace.is_none() {
        missing.push("namespace (set `namespace`; the AnalysisRun has no namespace)");
    }
    if rollout.is_none() {
        missing.push(
            "rollout (set `rollout`; the AnalysisRun has no owner reference of kind Rollout)",
        );
    }
    if hash.is_none() {
        missing.push("podTemplateHash (set `podTemplateHash`; the AnalysisRun has no label rollouts-pod-template-hash)");
    }
    match (namespace, rollout, hash) {
        (Some(n), Some(r), Some(h)) => TargetSelector::new(&n, &r, &h)
            .map_err(|e| Failure::new(FailureClass::Config, e.to_string())),
        _ => Err(Failure::new(
            FailureClass::Config,
            format!(
                "cannot determine the target: missing {}",
                missing.join("; ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::OwnerReference;

    fn ctx() -> AnalysisContext {
        AnalysisContext {
            namespace: "shop".into(),
            name: "web-6c8d7f9a1-2".into(),
            labels: [(POD_TEMPLATE_HASH_LABEL.to_string(), "6c8d7f9a1".to_string())].into(),
            owner_references: vec![OwnerReference {
                kind: "Rollout".into(),
                name: "web".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_target_defaults_from_the_analysis_run() {
        let t = resolve_target(&config(r#"{"guardrail":"restarts"}"#), &ctx()).unwrap();
        assert_eq!(t.describe(), "shop/web-6c8d7f9a1");
        let t = resolve_target(&config(r#"{"guardrail":"restarts","namespace":"pay","rollout":"api","podTemplateHash":"7f6e5d4c3"}"#), &ctx()).unwrap();
        assert_eq!(t.describe(), "pay/api-7f6e5d4c3");
    }

    #[test]
    fn a_missing_target_part_is_named() {
        let err = resolve_target(
            &config(r#"{"guardrail":"restarts"}"#),
            &AnalysisContext::default(),
        )
        .unwrap_err();
        assert_eq!(err.class, FailureClass::Config);
        assert!(err.message.contains("missing namespace"), "{}", err.message);
        assert!(
            err.message.contains("no owner reference of kind Rollout"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("no label rollouts-pod-template-hash"),
            "{}",
            err.message
        );
        let mut c = ctx();
        c.labels.clear();
        let err = resolve_target(&config(r#"{"guardrail":"restarts"}"#), &c).unwrap_err();
        assert!(
            err.message
                .starts_with("cannot determine the target: missing podTemplateHash"),
            "{}",
            err.message
        );
    }

    #[test]
    fn hostile_args_are_refused_before_any_query() {
        let err = resolve_target(
            &config(r#"{"guardrail":"restarts","namespace":"shop\"} or vector(1) #"}"#),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(err.class, FailureClass::Config);
        assert!(
            err.message
                .starts_with("namespace `shop\"} or vector(1) #` is not a valid Kubernetes name"),
            "{}",
            err.message
        );
    }

    #[test]
    fn settle_is_bounded_wherever_it_is_set() {
        assert_eq!(parse_settle("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_settle("3m"), Ok(Duration::from_secs(180)));
        assert!(parse_settle("31m").unwrap_err().contains("longer than 30m"));
        assert!(parse_settle("soon").is_err());
        let err = Config::from_json(br#"{"guardrail":"restarts","settle":"2h"}"#).unwrap_err();
        assert_eq!(err.to_string(), "key `settle`: must be at most 30m");
        let config = config(r#"{"guardrail":"restarts","settle":"45s"}"#);
        assert_eq!(config.settle, Some(Duration::from_secs(45)));
        assert_eq!(config.settings().settle, Duration::from_secs(45));
    }
}
