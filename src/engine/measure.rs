//! [`Engine`]: the one async function every face calls, from (analysis context, metric) to [`Measurement`].
//!
//! Every error becomes a `Failed` measurement here, in one place; nothing below returns a default.
use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::future::join_all;

use std::time::Duration;

use super::config::{Config, ConfigError, Connection, GuardrailKind, PasswordSource, ADDRESS_ENV};
use super::context::{AnalysisContext, MetricSpec, PLUGIN_NAME};
use super::guardrails::{Answers, Plan};
use super::observer::{InFlight, Observer, QueryOutcome, QueryTimer, Unobserved};
use super::promql::TargetSelector;
use super::target;
use super::verdict::{Failure, FailureClass, Verdict};
use super::{duration, Measurement, Phase};
use crate::prometheus::{Auth, Client, Endpoint, QueryError, TlsConfig};

pub use super::target::POD_TEMPLATE_HASH_LABEL;

/// Metadata keys of every measurement.
pub mod metadata_key {
    pub const GUARDRAIL: &str = "guardrail";
    pub const PROFILE: &str = "profile";
    pub const TARGET: &str = "target";
    pub const PROMETHEUS: &str = "prometheus";
    pub const EVALUATED_AT: &str = "evaluatedAt";
    pub const FAILURE: &str = "failure";
    pub const OFFENDERS: &str = "offenders";
    /// Prefix of the resolved PromQL of each query: `query.coverage`, `query.restarts-max`, …
    pub const QUERY_PREFIX: &str = "query.";
}

/// The guardrail engine. Cheap to share: the Prometheus client pools its connections.
#[derive(Clone)]
pub struct Engine {
    client: Client,
    default_address: Option<String>,
    /// Told of every measurement and query (telemetry in the binary); nothing by default.
    observer: &'static dyn Observer,
}

impl Engine {
    /// An engine whose default Prometheus address comes from `GUARDRAILS_PROMETHEUS_ADDRESS`.
    pub fn from_env(client: Client) -> Engine {
        let default_address = std::env::var(ADDRESS_ENV)
            .ok()
            .filter(|a| !a.trim().is_empty());
        Engine {
            client,
            default_address,
            observer: &Unobserved,
        }
    }

    /// An engine with an explicit default address (used when a metric's configuration has none).
    pub fn new(client: Client, default_address: Option<String>) -> Engine {
        Engine {
            client,
            default_address,
            observer: &Unobserved,
        }
    }

    /// The same engine, telling `observer` of every measurement and query.
    pub fn observed_by(self, observer: &'static dyn Observer) -> Engine {
        Engine { observer, ..self }
    }

    /// The address used when a metric's configuration has none.
    pub fn default_address(&self) -> Option<&str> {
        self.default_address.as_deref()
    }

    /// Measures `metric` now.
    pub async fn measure(&self, ctx: &AnalysisContext, metric: &MetricSpec) -> Measurement {
        self.measure_at(ctx, metric, None).await
    }

    /// Measures `metric`, evaluating every query at `at` (now when `None`).
    pub async fn measure_at(
        &self,
        ctx: &AnalysisContext,
        metric: &MetricSpec,
        at: Option<SystemTime>,
    ) -> Measurement {
        let _in_flight = InFlight::new(self.observer);
        let started_at = SystemTime::now();
        let at = at.unwrap_or(started_at);
        let mut metadata = BTreeMap::new();
        metadata.insert(
            metadata_key::EVALUATED_AT.to_string(),
            chrono::DateTime::<chrono::Utc>::from(at)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let mut kind = None;
        let verdict = self
            .try_evaluate(ctx, metric, at, &mut metadata, &mut kind)
            .await
            .unwrap_or_else(Verdict::Fail);
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
                metadata.insert(
                    metadata_key::FAILURE.to_string(),
                    failure.class.name().to_string(),
                );
                if !failure.offenders.is_empty() {
                    metadata.insert(
                        metadata_key::OFFENDERS.to_string(),
                        failure.offenders.join("\n"),
                    );
                }
                (
                    Phase::Failed,
                    failure.value,
                    failure.message,
                    Some(failure.class),
                )
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
        self.observer
            .measurement_finished(kind, phase, failure_class);
        Measurement {
            phase,
            message,
            value,
            metadata,
            started_at: Some(started_at),
            finished_at: Some(SystemTime::now()),
            resume_at: None,
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
        if let Ok(target) = target::placeholder(&config) {
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
        metric: &MetricSpec,
        at: SystemTime,
        metadata: &mut BTreeMap<String, String>,
        kind: &mut Option<GuardrailKind>,
    ) -> Result<Verdict, Failure> {
        let config = parse_config(metric)?;
        *kind = Some(config.guardrail);
        record_config(metadata, &config);
        let endpoint = self.endpoint(&config.connection)?;
        metadata.insert(
            metadata_key::PROMETHEUS.to_string(),
            endpoint.display_address(),
        );
        let target = target::resolve(&config, ctx)?;
        if let Some(described) = target.describe() {
            metadata.insert(metadata_key::TARGET.to_string(), described);
        }
        let plan = config.settings.plan(&target)?;
        record_plan(metadata, &plan);
        let answers = self
            .ask(&endpoint, &plan, at, config.common.timeout)
            .await?;
        Ok(config.settings.judge(&target, &answers, &config.common, at))
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
        let raw = connection
            .address
            .clone()
            .or_else(|| self.default_address.clone())
            .ok_or_else(|| {
                Failure::new(
                    FailureClass::Config,
                    super::config::ConfigError::NoAddress.to_string(),
                )
            })?;
        let address = url::Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Failure::new(
                    FailureClass::Config,
                    format!(
                        "Prometheus address `{}` is not an http:// or https:// URL",
                        redact_raw_address(&raw)
                    ),
                )
            })?;
        let auth = match (
            &connection.bearer_token,
            &connection.bearer_token_file,
            &connection.basic_auth,
        ) {
            (Some(token), _, _) => Auth::Bearer(token.clone()),
            (None, Some(file), _) => Auth::BearerFile(file.clone()),
            (None, None, Some(basic)) => match &basic.password {
                PasswordSource::Inline(password) => Auth::Basic {
                    username: basic.username.clone(),
                    password: password.clone(),
                },
                PasswordSource::File(file) => Auth::BasicFile {
                    username: basic.username.clone(),
                    password_file: file.clone(),
                },
            },
            (None, None, None) => Auth::None,
        };
        Ok(Endpoint {
            address,
            headers: connection
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            auth,
            tenant: connection.tenant.clone(),
            tls: TlsConfig {
                ca_file: connection.tls.ca_file.clone(),
                cert_file: connection.tls.cert_file.clone(),
                key_file: connection.tls.key_file.clone(),
                insecure_skip_verify: connection.tls.insecure_skip_verify,
            },
        })
    }
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

/// An address that did not parse, shown without anything that looks like userinfo.
fn redact_raw_address(raw: &str) -> String {
    let raw = raw.trim();
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &raw[..scheme_end], &raw[at + 1..])
        }
        (None, Some(at)) => format!("<redacted>@{}", &raw[at + 1..]),
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_addresses_lose_their_userinfo() {
        assert_eq!(
            redact_raw_address("http://user:pw@host:9090"),
            "http://<redacted>@host:9090"
        );
        assert_eq!(redact_raw_address("user:pw@host"), "<redacted>@host");
        assert_eq!(redact_raw_address("ftp://host"), "ftp://host");
    }
}
