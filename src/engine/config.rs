//! The plugin configuration: the JSON a template author writes under
//! `provider.plugin."rollouts-guardrails/prometheus"`, parsed strictly.
//!
//! Strict means: an unknown key is an error naming the key and the nearest valid one (a silently ignored typo
//! is how guardrails fail open), a key that the chosen guardrail does not use is an error, and every value is
//! type-checked. Numbers may arrive as JSON numbers or as strings, because `{{args.*}}` substitution usually
//! produces strings.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::duration;
use super::phase::{self, PhaseMap};
use super::promql;
use super::settle::{DEFAULT_SETTLE, MAX_SETTLE};
use crate::prometheus::Secret;

/// Environment variable a cluster admin sets once on the controller instead of `address` in every template.
pub const ADDRESS_ENV: &str = "GUARDRAILS_PROMETHEUS_ADDRESS";

/// Default bound on a whole measurement, every query included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a measurement may be allowed to take (a guard against `timeout: 1000h` typos).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a configuration was refused. Messages never contain credential values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the plugin configuration is not valid JSON: {0}")]
    Json(String),
    #[error("the plugin configuration must be a JSON object")]
    NotAnObject,
    #[error("unknown key `{key}`{}", suggestion(.nearest))]
    UnknownKey {
        key: String,
        nearest: Option<String>,
    },
    #[error("key `{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("missing key `{0}`")]
    Missing(&'static str),
    #[error("key `{key}` is not used by guardrail `{guardrail}`")]
    NotApplicable {
        key: String,
        guardrail: &'static str,
    },
    #[error("no Prometheus address: set `address` in the plugin configuration or {ADDRESS_ENV} on the controller")]
    NoAddress,
}

fn suggestion(nearest: &Option<String>) -> String {
    match nearest {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    }
}

/// Which check a metric performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl GuardrailKind {
    pub const ALL: [GuardrailKind; 11] = [
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
        }
    }

    /// Guardrails judged from request metrics (with a traffic proof).
    pub fn is_traffic(self) -> bool {
        matches!(self, GuardrailKind::ErrorRate | GuardrailKind::Latency)
    }

    pub fn parse(name: &str) -> Option<GuardrailKind> {
        GuardrailKind::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Keys only some guardrails use; any other guardrail refuses them.
    fn uses(self, key: &str) -> bool {
        use GuardrailKind::*;
        match key {
            "window" => matches!(
                self,
                Restarts | OomKilled | ErrorRate | Latency | Regression
            ),
            "images" => self == LatestImage,
            "query" => self == Query,
            "reasons" => self == WaitingReasons,
            "source" | "requestMetric" | "minRequests" | "service" => {
                self.is_traffic() || self == Regression
            }
            "errorLabel" | "errorRegex" => matches!(self, ErrorRate | Regression),
            "histogramMetric" | "quantile" => matches!(self, Latency | Regression),
            "matchers" => self.is_traffic() || matches!(self, Alerts | Regression | Gitops),
            "signal" | "stablePodTemplateHash" | "tolerance" => self == Regression,
            "minSeverity" => self == Alerts,
            "namespace" => !matches!(self, Query | Gitops),
            // Every guardrail proves freshness; for `query` it bounds the age of Prometheus' answer.
            "rollout" | "podTemplateHash" | "minPods" => !matches!(self, Query | Alerts | Gitops),
            _ => true,
        }
    }
}

/// `default`, or `prod`: the conservative variant (longer windows, zero tolerance, tighter staleness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Default,
    Prod,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Prod => "prod",
        }
    }
}

/// Basic authentication: a username and a password given inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: PasswordSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Inline(Secret),
    File(PathBuf),
}

/// TLS settings for the Prometheus connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// How to reach Prometheus. `Debug` shows no credential: they are [`Secret`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub address: Option<String>,
    pub headers: BTreeMap<String, Secret>,
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub tls: TlsSettings,
    pub tenant: Option<String>,
}

/// A parsed configuration, before profile defaults are applied (see [`Config::settings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub guardrail: GuardrailKind,
    pub profile: Profile,
    pub namespace: Option<String>,
    pub rollout: Option<String>,
    pub pod_template_hash: Option<String>,
    pub window: Option<Duration>,
    pub threshold: Option<f64>,
    pub min_pods: Option<u64>,
    pub timeout: Option<Duration>,
    pub staleness: Option<Duration>,
    pub images: Vec<String>,
    pub query: Option<String>,
    /// `waiting-reasons`: the reasons that fail (empty: [`DEFAULT_WAITING_REASONS`]).
    pub reasons: Vec<String>,
    /// `error-rate` / `latency`: where requests are counted.
    pub traffic: TrafficConfig,
    /// Extra exact label matchers (`error-rate`, `latency`, `alerts`), validated when queries are built.
    pub matchers: BTreeMap<String, String>,
    /// `alerts`: the lowest severity that counts.
    pub min_severity: Option<Severity>,
    /// `regression`: what is compared, the stable side, and the allowed relative excess.
    pub signal: Option<Signal>,
    pub stable_pod_template_hash: Option<String>,
    pub tolerance: Option<f64>,
    /// `gitops`: the reconciled object.
    pub gitops: Option<GitopsObject>,
    /// How long absence so far may settle (`None`: the controller-wide default).
    pub settle: Option<Duration>,
    /// `unprovenPhase`: the phase an unproven failure class reports instead of `Failed`.
    pub unproven_phase: PhaseMap,
    pub connection: Connection,
}

/// The object whose reconciliation `gitops` judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitopsObject {
    /// An Argo CD Application (`argocd_app_info{name}`).
    ArgoApplication(String),
    /// A Flux Kustomization (`gotk_reconcile_condition{kind="Kustomization",name}`).
    FluxKustomization(String),
    /// A Flux HelmRelease (`gotk_reconcile_condition{kind="HelmRelease",name}`).
    FluxHelmRelease(String),
}

/// What `regression` compares between canary and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    ErrorRate,
    Latency,
    Cpu,
    Memory,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Signal::ErrorRate,
        Signal::Latency,
        Signal::Cpu,
        Signal::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::ErrorRate => "error-rate",
            Signal::Latency => "latency",
            Signal::Cpu => "cpu",
            Signal::Memory => "memory",
        }
    }

    /// The default `tolerance`: latency 10 %, error ratio 50 %, CPU and memory 50 %.
    pub fn default_tolerance(self) -> f64 {
        match self {
            Signal::Latency => 0.1,
            Signal::ErrorRate | Signal::Cpu | Signal::Memory => 0.5,
        }
    }
}

/// The waiting reasons `waiting-reasons` fails on unless `reasons` is set.
pub const DEFAULT_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// The largest `minRequests` accepted (a guard against typos that would make every canary "too quiet").
pub const MAX_MIN_REQUESTS: f64 = 1e12;

/// The request-metric keys of `error-rate` and `latency`, as written (presets are applied in `traffic`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficConfig {
    pub source: Option<TrafficSource>,
    pub request_metric: Option<String>,
    pub histogram_metric: Option<String>,
    pub error_label: Option<String>,
    pub error_regex: Option<String>,
    /// `ingress-nginx`: the canary Service the ingress routes to.
    pub service: Option<String>,
    pub quantile: Option<f64>,
    pub min_requests: Option<u64>,
}

/// Where request metrics come from: each preset names its metrics and labels (see `traffic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficSource {
    /// Application metrics per pod: `http_requests_total{code}`, `http_request_duration_seconds_bucket`.
    Http,
    /// Istio sidecars (`reporter="destination"`): `istio_requests_total{response_code}`,
    /// `istio_request_duration_milliseconds_bucket`.
    Istio,
    /// The ingress-nginx controller: `nginx_ingress_controller_requests{status}`,
    /// `nginx_ingress_controller_request_duration_seconds_bucket`, selected by Service.
    IngressNginx,
}

impl TrafficSource {
    pub const ALL: [TrafficSource; 3] = [
        TrafficSource::Http,
        TrafficSource::Istio,
        TrafficSource::IngressNginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrafficSource::Http => "http",
            TrafficSource::Istio => "istio",
            TrafficSource::IngressNginx => "ingress-nginx",
        }
    }
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

/// The numbers a guardrail runs with: explicit keys win over the profile's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub window: Duration,
    /// `None` only for `query`, which may be judged by conditions instead.
    pub threshold: Option<f64>,
    pub min_pods: u64,
    pub timeout: Duration,
    pub staleness: Duration,
    /// Traffic guardrails: fewer requests in the window is "not enough traffic".
    pub min_requests: u64,
    /// `latency`: the quantile judged (0.95 default, 0.99 prod).
    pub quantile: f64,
    /// `alerts`: the lowest severity that counts (warning default, info prod).
    pub min_severity: Severity,
    /// `regression`: canary fails above stable × (1 + tolerance).
    pub tolerance: f64,
    /// How long absence so far (no series yet, a pod not Ready yet) is waited for. The engine replaces it
    /// with the effective value (the metric's `settle`, else the controller's default; `check`: zero unless
    /// `--settle`) before judging.
    pub settle: Duration,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "address",
    "guardrail",
    "profile",
    "namespace",
    "rollout",
    "podTemplateHash",
    "window",
    "threshold",
    "minPods",
    "timeout",
    "staleness",
    "images",
    "query",
    "reasons",
    "source",
    "requestMetric",
    "histogramMetric",
    "errorLabel",
    "errorRegex",
    "service",
    "quantile",
    "minRequests",
    "matchers",
    "minSeverity",
    "signal",
    "stablePodTemplateHash",
    "tolerance",
    "application",
    "kustomization",
    "helmRelease",
    "headers",
    "bearerToken",
    "bearerTokenFile",
    "basicAuth",
    "tls",
    "tenant",
    "settle",
    "unprovenPhase",
];
const BASIC_AUTH_KEYS: &[&str] = &["username", "password", "passwordFile"];
const TLS_KEYS: &[&str] = &["caFile", "certFile", "keyFile", "insecureSkipVerify"];

impl Config {
    /// Parses the raw JSON bytes of the plugin entry.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        match value {
            Value::Object(map) => Config::from_map(&map),
            _ => Err(ConfigError::NotAnObject),
        }
    }

    /// Parses an already-decoded JSON object.
    pub fn from_map(map: &Map<String, Value>) -> Result<Config, ConfigError> {
        check_keys(map, TOP_LEVEL_KEYS, "")?;
        let guardrail_name = string(map, "guardrail")?.ok_or(ConfigError::Missing("guardrail"))?;
        let guardrail =
            GuardrailKind::parse(&guardrail_name).ok_or_else(|| ConfigError::Invalid {
                key: "guardrail".into(),
                reason: format!(
                    "unknown guardrail `{guardrail_name}`; expected one of {}",
                    GuardrailKind::ALL
                        .map(|g| format!("`{}`", g.name()))
                        .join(", ")
                ),
            })?;
        for key in map.keys() {
            if !guardrail.uses(key) && !map[key].is_null() {
                return Err(ConfigError::NotApplicable {
                    key: key.clone(),
                    guardrail: guardrail.name(),
                });
            }
        }
        let profile = match string(map, "profile")?.as_deref() {
            None | Some("default") => Profile::Default,
            Some("prod") => Profile::Prod,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "profile".into(),
                    reason: format!("unknown profile `{other}`; expected `default` or `prod`"),
                })
            }
        };
        let timeout = duration_key(map, "timeout")?;
        if let Some(t) = timeout {
            if t.is_zero() || t > MAX_TIMEOUT {
                return Err(ConfigError::Invalid {
                    key: "timeout".into(),
                    reason: format!("must be between 1ms and {}", duration::format(MAX_TIMEOUT)),
                });
            }
        }
        let window = duration_key(map, "window")?;
        if window.is_some_and(|w| w < Duration::from_secs(1)) {
            return Err(ConfigError::Invalid {
                key: "window".into(),
                reason: "must be at least 1s".into(),
            });
        }
        let staleness = duration_key(map, "staleness")?;
        if staleness.is_some_and(|s| s.is_zero()) {
            return Err(ConfigError::Invalid {
                key: "staleness".into(),
                reason: "must be greater than 0".into(),
            });
        }
        let settle = duration_key(map, "settle")?;
        if settle.is_some_and(|s| s > MAX_SETTLE) {
            return Err(ConfigError::Invalid {
                key: "settle".into(),
                reason: format!("must be at most {}", duration::format(MAX_SETTLE)),
            });
        }
        let threshold = number(map, "threshold")?;
        if threshold.is_some_and(|t| t < 0.0) {
            return Err(ConfigError::Invalid {
                key: "threshold".into(),
                reason: "must not be negative".into(),
            });
        }
        let min_pods = match number(map, "minPods")? {
            None => None,
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= 100_000.0 => Some(n as u64),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    key: "minPods".into(),
                    reason: "must be a whole number of at least 1".into(),
                })
            }
        };
        let traffic = traffic(map)?;
        if guardrail == GuardrailKind::Latency && threshold.is_none() {
            // A latency objective is the service's own: there is no safe default.
            return Err(ConfigError::Missing("threshold"));
        }
        let min_severity = match string(map, "minSeverity")?.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                Severity::ALL
                    .into_iter()
                    .find(|s| s.name() == text)
                    .ok_or_else(|| ConfigError::Invalid {
                        key: "minSeverity".into(),
                        reason: format!(
                            "unknown severity `{text}`; expected one of {}",
                            Severity::ALL.map(|s| format!("`{}`", s.name())).join(", ")
                        ),
                    })?,
            ),
        };
        let signal = match string(map, "signal")?.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                Signal::ALL
                    .into_iter()
                    .find(|s| s.name() == text)
                    .ok_or_else(|| ConfigError::Invalid {
                        key: "signal".into(),
                        reason: format!(
                            "unknown signal `{text}`; expected one of {}",
                            Signal::ALL.map(|s| format!("`{}`", s.name())).join(", ")
                        ),
                    })?,
            ),
        };
        let stable_pod_template_hash = non_empty(string(map, "stablePodTemplateHash")?);
        if guardrail == GuardrailKind::Regression {
            if signal.is_none() {
                return Err(ConfigError::Missing("signal"));
            }
            if stable_pod_template_hash.is_none() {
                return Err(ConfigError::Missing("stablePodTemplateHash"));
            }
        }
        let tolerance = number(map, "tolerance")?;
        if tolerance.is_some_and(|t| !(0.0..=100.0).contains(&t)) {
            return Err(ConfigError::Invalid {
                key: "tolerance".into(),
                reason: "must be between 0 and 100 (0.1 = 10 % worse allowed)".into(),
            });
        }
        let mut gitops = Vec::new();
        for (key, make) in [
            (
                "application",
                GitopsObject::ArgoApplication as fn(String) -> GitopsObject,
            ),
            ("kustomization", GitopsObject::FluxKustomization),
            ("helmRelease", GitopsObject::FluxHelmRelease),
        ] {
            if let Some(name) = non_empty(string(map, key)?) {
                if name.len() > 253 {
                    return Err(ConfigError::Invalid {
                        key: key.into(),
                        reason: "longer than 253 characters".into(),
                    });
                }
                gitops.push(make(name));
            }
        }
        if guardrail == GuardrailKind::Gitops && gitops.len() != 1 {
            return Err(ConfigError::Invalid {
                key: "application".into(),
                reason: "set exactly one of `application` (Argo CD), `kustomization` or `helmRelease` (Flux)".into(),
            });
        }
        let query = string(map, "query")?;
        if guardrail == GuardrailKind::Query && query.as_deref().is_none_or(|q| q.trim().is_empty())
        {
            return Err(ConfigError::Missing("query"));
        }
        Ok(Config {
            guardrail,
            profile,
            namespace: non_empty(string(map, "namespace")?),
            rollout: non_empty(string(map, "rollout")?),
            pod_template_hash: non_empty(string(map, "podTemplateHash")?),
            window,
            threshold,
            min_pods,
            timeout,
            staleness,
            images: string_list(map, "images", "a list of image references")?,
            query,
            reasons: reasons(map)?,
            traffic,
            matchers: matchers(map)?,
            min_severity,
            signal,
            stable_pod_template_hash,
            tolerance,
            gitops: gitops.pop(),
            settle,
            unproven_phase: PhaseMap::parse(map.get(phase::KEY).unwrap_or(&Value::Null))?,
            connection: connection(map)?,
        })
    }

    /// The numbers to run with: explicit keys win over the profile's defaults.
    pub fn settings(&self) -> Settings {
        let prod = self.profile == Profile::Prod;
        let short = Duration::from_secs(if prod { 600 } else { 300 });
        let (default_window, default_threshold) = match self.guardrail {
            GuardrailKind::Restarts if prod => (short, Some(0.0)),
            GuardrailKind::Restarts => (short, Some(1.0)),
            GuardrailKind::OomKilled => (short, Some(0.0)),
            GuardrailKind::ErrorRate => (short, Some(if prod { 0.01 } else { 0.05 })),
            // Required at parse time: no default objective.
            GuardrailKind::Latency => (short, None),
            // An absolute floor: canary values at or below it pass whatever the ratio.
            GuardrailKind::Regression => (short, Some(0.0)),
            // How long "not Ready" may last before it reads as stuck (the message says which).
            GuardrailKind::Gitops => (Duration::from_secs(if prod { 300 } else { 600 }), Some(0.0)),
            GuardrailKind::NotReady
            | GuardrailKind::LatestImage
            | GuardrailKind::WaitingReasons
            | GuardrailKind::Alerts => (Duration::ZERO, Some(0.0)),
            GuardrailKind::Query => (Duration::ZERO, None),
        };
        Settings {
            window: self.window.unwrap_or(default_window),
            threshold: self.threshold.or(default_threshold),
            min_pods: self.min_pods.unwrap_or(1),
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
            staleness: self.staleness.unwrap_or(if prod {
                Duration::from_secs(120)
            } else {
                Duration::from_secs(300)
            }),
            min_requests: self
                .traffic
                .min_requests
                .unwrap_or(if prod { 50 } else { 10 }),
            quantile: self
                .traffic
                .quantile
                .unwrap_or(if prod { 0.99 } else { 0.95 }),
            min_severity: self.min_severity.unwrap_or(if prod {
                Severity::Info
            } else {
                Severity::Warning
            }),
            tolerance: self
                .tolerance
                .or(self.signal.map(Signal::default_tolerance))
                .unwrap_or(0.0),
            settle: self.settle.unwrap_or(DEFAULT_SETTLE),
        }
    }
}

/// Refuses keys outside `known`, naming the nearest valid one.
fn check_keys(map: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), ConfigError> {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            return Err(ConfigError::UnknownKey {
                key: format!("{prefix}{key}"),
                nearest: nearest(key, known),
            });
        }
    }
    Ok(())
}

/// The known key closest to `key` by edit distance (case-insensitive), if it is close enough to be a typo.
pub(crate) fn nearest(key: &str, known: &[&str]) -> Option<String> {
    let key_lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key_lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::WrongType {
            key: key.to_string(),
            expected: "a string",
        }),
    }
}

fn number(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: key.to_string(),
        expected: "a number",
    };
    let n = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(wrong)?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| wrong())?,
        Some(_) => return Err(wrong()),
    };
    if !n.is_finite() {
        return Err(wrong());
    }
    Ok(Some(n))
}

fn boolean(map: &Map<String, Value>, key: &str, full_key: &str) -> Result<bool, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
        Some(_) => Err(ConfigError::WrongType {
            key: full_key.to_string(),
            expected: "true or false",
        }),
    }
}

fn duration_key(map: &Map<String, Value>, key: &str) -> Result<Option<Duration>, ConfigError> {
    match string(map, key).map_err(|_| ConfigError::WrongType {
        key: key.to_string(),
        expected: "a duration such as `5m`",
    })? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => duration::parse(&s)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                key: key.to_string(),
                reason: e.to_string(),
            }),
    }
}

fn string_list(
    map: &Map<String, Value>,
    key: &str,
    expected: &'static str,
) -> Result<Vec<String>, ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: key.into(),
        expected,
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        // A single reference, as `{{args.image}}` substitution produces.
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.trim().to_string()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(wrong)
            })
            .collect(),
        Some(_) => Err(wrong()),
    }
}

/// `reasons`: a list (or one comma-separated string, as `{{args.*}}` gives) of Kubernetes reason words.
fn reasons(map: &Map<String, Value>) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for item in string_list(map, "reasons", "a list of waiting reasons")? {
        for reason in item.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if reason.len() > 63 || !reason.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ConfigError::Invalid {
                    key: "reasons".into(),
                    reason: format!("`{reason}` is not a reason such as `CrashLoopBackOff`"),
                });
            }
            out.push(reason.to_string());
        }
    }
    Ok(out)
}

fn traffic(map: &Map<String, Value>) -> Result<TrafficConfig, ConfigError> {
    let source = match string(map, "source")?.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            TrafficSource::ALL
                .into_iter()
                .find(|s| s.name() == text)
                .ok_or_else(|| ConfigError::Invalid {
                    key: "source".into(),
                    reason: format!(
                        "unknown source `{text}`; expected one of {}",
                        TrafficSource::ALL
                            .map(|s| format!("`{}`", s.name()))
                            .join(", ")
                    ),
                })?,
        ),
    };
    let quantile = number(map, "quantile")?;
    if quantile.is_some_and(|q| !(q > 0.0 && q < 1.0)) {
        return Err(ConfigError::Invalid {
            key: "quantile".into(),
            reason: "must be between 0 and 1 (exclusive), e.g. 0.95".into(),
        });
    }
    let min_requests = match number(map, "minRequests")? {
        None => None,
        Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= MAX_MIN_REQUESTS => Some(n as u64),
        Some(_) => {
            return Err(ConfigError::Invalid {
                key: "minRequests".into(),
                reason: "must be a whole number of at least 1 (no traffic proves nothing)".into(),
            })
        }
    };
    Ok(TrafficConfig {
        source,
        request_metric: non_empty(string(map, "requestMetric")?),
        histogram_metric: non_empty(string(map, "histogramMetric")?),
        error_label: non_empty(string(map, "errorLabel")?),
        error_regex: non_empty(string(map, "errorRegex")?),
        service: non_empty(string(map, "service")?),
        quantile,
        min_requests,
    })
}

/// `matchers`: an object of label → exact value.
fn matchers(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    if let Some(m) = object(map, "matchers")? {
        for (label, value) in m {
            promql::validate_label_name(label).map_err(|e| ConfigError::Invalid {
                key: "matchers".into(),
                reason: e.to_string(),
            })?;
            let Value::String(v) = value else {
                return Err(ConfigError::WrongType {
                    key: format!("matchers.{label}"),
                    expected: "a string",
                });
            };
            out.insert(label.clone(), v.clone());
        }
    }
    Ok(out)
}

fn path(
    map: &Map<String, Value>,
    key: &str,
    full_key: &str,
) -> Result<Option<PathBuf>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
        Some(_) => Err(ConfigError::WrongType {
            key: full_key.to_string(),
            expected: "a file path",
        }),
    }
}

fn object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ConfigError::WrongType {
            key: key.to_string(),
            expected: "an object",
        }),
    }
}

fn connection(map: &Map<String, Value>) -> Result<Connection, ConfigError> {
    let mut headers = BTreeMap::new();
    if let Some(h) = object(map, "headers")? {
        for (name, value) in h {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid_name {
                return Err(ConfigError::Invalid {
                    key: "headers".into(),
                    reason: format!("`{name}` is not a valid header name"),
                });
            }
            let Value::String(v) = value else {
                return Err(ConfigError::WrongType {
                    key: format!("headers.{name}"),
                    expected: "a string",
                });
            };
            if v.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(ConfigError::Invalid {
                    key: format!("headers.{name}"),
                    reason: "contains a line break".into(),
                });
            }
            headers.insert(name.clone(), Secret::new(v.clone()));
        }
    }
    let basic_auth = match object(map, "basicAuth")? {
        None => None,
        Some(b) => {
            check_keys(b, BASIC_AUTH_KEYS, "basicAuth.")?;
            let username = match b.get("username") {
                Some(Value::String(u)) if !u.is_empty() => u.clone(),
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    return Err(ConfigError::Missing("basicAuth.username"))
                }
                Some(_) => {
                    return Err(ConfigError::WrongType {
                        key: "basicAuth.username".into(),
                        expected: "a string",
                    })
                }
            };
            let inline = match b.get("password") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => {
                    return Err(ConfigError::WrongType {
                        key: "basicAuth.password".into(),
                        expected: "a string",
                    })
                }
            };
            let file = path(b, "passwordFile", "basicAuth.passwordFile")?;
            let password = match (inline, file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "basicAuth".into(),
                        reason: "set `password` or `passwordFile`, not both".into(),
                    })
                }
                (Some(p), None) => PasswordSource::Inline(Secret::new(p)),
                (None, Some(f)) => PasswordSource::File(f),
                (None, None) => return Err(ConfigError::Missing("basicAuth.password")),
            };
            Some(BasicAuth { username, password })
        }
    };
    let tls = match object(map, "tls")? {
        None => TlsSettings::default(),
        Some(t) => {
            check_keys(t, TLS_KEYS, "tls.")?;
            let tls = TlsSettings {
                ca_file: path(t, "caFile", "tls.caFile")?,
                cert_file: path(t, "certFile", "tls.certFile")?,
                key_file: path(t, "keyFile", "tls.keyFile")?,
                insecure_skip_verify: boolean(t, "insecureSkipVerify", "tls.insecureSkipVerify")?,
            };
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(ConfigError::Invalid {
                    key: "tls".into(),
                    reason: "`certFile` and `keyFile` go together".into(),
                });
            }
            tls
        }
    };
    let bearer_token = match string(map, "bearerToken")? {
        Some(t) if !t.is_empty() => Some(Secret::new(t)),
        _ => None,
    };
    let bearer_token_file = path(map, "bearerTokenFile", "bearerTokenFile")?;
    let credentials = usize::from(bearer_token.is_some())
        + usize::from(bearer_token_file.is_some())
        + usize::from(basic_auth.is_some());
    if credentials > 1 {
        return Err(ConfigError::Invalid {
            key: "bearerToken".into(),
            reason: "set only one of `bearerToken`, `bearerTokenFile` and `basicAuth`".into(),
        });
    }
    Ok(Connection {
        address: non_empty(string(map, "address")?),
        headers,
        bearer_token,
        bearer_token_file,
        basic_auth,
        tls,
        tenant: non_empty(string(map, "tenant")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(json.as_bytes())
    }

    #[test]
    fn a_typo_names_the_key_and_the_nearest_valid_one() {
        let err = parse(r#"{"guardrail":"restarts","thresold":1}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key `thresold`; did you mean `threshold`?"
        );
        let err = parse(r#"{"guardrail":"restarts","podtemplatehash":"abc"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key `podtemplatehash`; did you mean `podTemplateHash`?"
        );
        let err = parse(r#"{"guardrail":"restarts","colour":"red"}"#).unwrap_err();
        assert_eq!(err.to_string(), "unknown key `colour`");
        let err = parse(r#"{"guardrail":"restarts","basicAuth":{"username":"u","pasword":"p"}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key `basicAuth.pasword`; did you mean `password`?"
        );
        let err =
            parse(r#"{"guardrail":"restarts","tls":{"insecureSkipVerfy":true}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key `tls.insecureSkipVerfy`; did you mean `insecureSkipVerify`?"
        );
    }

    #[test]
    fn profile_defaults_and_explicit_keys() {
        let c = parse(r#"{"guardrail":"restarts"}"#).unwrap();
        let s = c.settings();
        assert_eq!(
            (s.window, s.threshold, s.staleness, s.min_pods, s.timeout),
            (
                Duration::from_secs(300),
                Some(1.0),
                Duration::from_secs(300),
                1,
                DEFAULT_TIMEOUT
            )
        );
        let s = parse(r#"{"guardrail":"restarts","profile":"prod"}"#)
            .unwrap()
            .settings();
        assert_eq!(
            (s.window, s.threshold, s.staleness),
            (
                Duration::from_secs(600),
                Some(0.0),
                Duration::from_secs(120)
            )
        );
        let s = parse(r#"{"guardrail":"restarts","profile":"prod","window":"15m","threshold":"2","staleness":"90s","minPods":"3"}"#)
            .unwrap()
            .settings();
        assert_eq!(
            (s.window, s.threshold, s.staleness, s.min_pods),
            (
                Duration::from_secs(900),
                Some(2.0),
                Duration::from_secs(90),
                3
            )
        );
        for g in ["not-ready", "latest-image"] {
            let s = parse(&format!(r#"{{"guardrail":"{g}"}}"#))
                .unwrap()
                .settings();
            assert_eq!(s.threshold, Some(0.0));
        }
        assert_eq!(
            parse(r#"{"guardrail":"query","query":"up"}"#)
                .unwrap()
                .settings()
                .threshold,
            None
        );
    }

    #[test]
    fn staleness_bounds_the_query_guardrail_answer_too() {
        let c =
            parse(r#"{"guardrail":"query","query":"up","threshold":1,"staleness":"1m"}"#).unwrap();
        assert_eq!(c.settings().staleness, Duration::from_secs(60));
    }

    #[test]
    fn values_are_type_checked() {
        let cases = [
            (r#"{"guardrail":"restarts","threshold":"one"}"#, "key `threshold` must be a number"),
            (r#"{"guardrail":"restarts","threshold":-1}"#, "key `threshold`: must not be negative"),
            (r#"{"guardrail":"restarts","minPods":0}"#, "key `minPods`: must be a whole number of at least 1"),
            (r#"{"guardrail":"restarts","minPods":1.5}"#, "key `minPods`: must be a whole number of at least 1"),
            (r#"{"guardrail":"restarts","window":"5"}"#, "key `window`: invalid duration `5`: expected a number followed by a unit (ms, s, m, h, d, w), e.g. `5m` or `1h30m`"),
            (r#"{"guardrail":"restarts","window":300}"#, "key `window` must be a duration such as `5m`"),
            (r#"{"guardrail":"restarts","timeout":"1h"}"#, "key `timeout`: must be between 1ms and 5m"),
            (r#"{"guardrail":"restarts","profile":"production"}"#, "key `profile`: unknown profile `production`; expected `default` or `prod`"),
            (r#"{"guardrail":"restart"}"#, "key `guardrail`: unknown guardrail `restart`; expected one of `restarts`, `not-ready`, `latest-image`, `waiting-reasons`, `oom-killed`, `error-rate`, `latency`, `alerts`, `regression`, `gitops`, `query`"),
            (r#"{"threshold":1}"#, "missing key `guardrail`"),
            (r#"{"guardrail":"query"}"#, "missing key `query`"),
            (r#"{"guardrail":"query","query":"  "}"#, "missing key `query`"),
            (r#"[1]"#, "the plugin configuration must be a JSON object"),
            (r#"{"guardrail":"restarts","images":["nginx"]}"#, "key `images` is not used by guardrail `restarts`"),
            (r#"{"guardrail":"not-ready","window":"5m"}"#, "key `window` is not used by guardrail `not-ready`"),
            (r#"{"guardrail":"query","query":"up","namespace":"x"}"#, "key `namespace` is not used by guardrail `query`"),
            (r#"{"guardrail":"restarts","tls":{"certFile":"/c"}}"#, "key `tls`: `certFile` and `keyFile` go together"),
            (r#"{"guardrail":"restarts","headers":{"X-A":"a\r\nb"}}"#, "key `headers.X-A`: contains a line break"),
        ];
        for (json, message) in cases {
            assert_eq!(parse(json).unwrap_err().to_string(), message, "{json}");
        }
        assert!(matches!(parse("{").unwrap_err(), ConfigError::Json(_)));
    }

    #[test]
    fn credentials_never_show_in_debug_or_errors() {
        let c = parse(r#"{"guardrail":"restarts","bearerToken":"tok-SECRET-1","headers":{"X-Api-Key":"hdr-SECRET-2"}}"#).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        let c = parse(
            r#"{"guardrail":"restarts","basicAuth":{"username":"u","password":"pw-SECRET-3"}}"#,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("SECRET"));
        let err = parse(r#"{"guardrail":"restarts","bearerToken":"tok-SECRET-1","basicAuth":{"username":"u","password":"pw-SECRET-3"}}"#).unwrap_err();
        assert!(!err.to_string().contains("SECRET"));
        let err = parse(r#"{"guardrail":"restarts","headers":{"X-Api-Key":7}}"#).unwrap_err();
        assert_eq!(err.to_string(), "key `headers.X-Api-Key` must be a string");
    }

    #[test]
    fn target_and_images_accept_argument_shapes() {
        let c = parse(r#"{"guardrail":"latest-image","namespace":"","rollout":"web","images":"nginx:1.25","minPods":2}"#).unwrap();
        assert_eq!(
            c.namespace, None,
            "an empty substituted arg falls back to the AnalysisRun"
        );
        assert_eq!(c.rollout.as_deref(), Some("web"));
        assert_eq!(c.images, vec!["nginx:1.25".to_string()]);
        assert_eq!(c.min_pods, Some(2));
        let c = parse(r#"{"guardrail":"latest-image","images":["a:1","b"]}"#).unwrap();
        assert_eq!(c.images.len(), 2);
        assert!(parse(r#"{"guardrail":"latest-image","images":[1]}"#).is_err());
    }

    #[test]
    fn new_guardrail_keys_and_defaults() {
        let cases = [
            (r#"{"guardrail":"waiting-reasons","reasons":["CrashLoop BackOff"]}"#, "key `reasons`: `CrashLoop BackOff` is not a reason such as `CrashLoopBackOff`"),
            (r#"{"guardrail":"waiting-reasons","window":"5m"}"#, "key `window` is not used by guardrail `waiting-reasons`"),
            (r#"{"guardrail":"error-rate","source":"linkerd"}"#, "key `source`: unknown source `linkerd`; expected one of `http`, `istio`, `ingress-nginx`"),
            (r#"{"guardrail":"error-rate","minRequests":0}"#, "key `minRequests`: must be a whole number of at least 1 (no traffic proves nothing)"),
            (r#"{"guardrail":"error-rate","quantile":0.9}"#, "key `quantile` is not used by guardrail `error-rate`"),
            (r#"{"guardrail":"latency","threshold":1,"quantile":1}"#, "key `quantile`: must be between 0 and 1 (exclusive), e.g. 0.95"),
            (r#"{"guardrail":"latency"}"#, "missing key `threshold`"),
            (r#"{"guardrail":"alerts","rollout":"web"}"#, "key `rollout` is not used by guardrail `alerts`"),
            (r#"{"guardrail":"alerts","minSeverity":"page"}"#, "key `minSeverity`: unknown severity `page`; expected one of `none`, `info`, `warning`, `critical`"),
            (r#"{"guardrail":"alerts","matchers":{"__name__":"x"}}"#, "key `matchers`: label name `__name__` is not valid: names starting with `__` are reserved"),
            (r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"a","tolerance":-1}"#, "key `tolerance`: must be between 0 and 100 (0.1 = 10 % worse allowed)"),
        ];
        for (json, message) in cases {
            assert_eq!(parse(json).unwrap_err().to_string(), message, "{json}");
        }
        let c = parse(r#"{"guardrail":"waiting-reasons","reasons":"CrashLoopBackOff, OOMKilled"}"#)
            .unwrap();
        assert_eq!(
            c.reasons,
            vec!["CrashLoopBackOff".to_string(), "OOMKilled".to_string()]
        );
        let d = parse(r#"{"guardrail":"error-rate"}"#).unwrap().settings();
        let p = parse(r#"{"guardrail":"error-rate","profile":"prod"}"#)
            .unwrap()
            .settings();
        assert_eq!(
            (d.threshold, d.min_requests, d.window.as_secs()),
            (Some(0.05), 10, 300)
        );
        assert_eq!(
            (p.threshold, p.min_requests, p.window.as_secs()),
            (Some(0.01), 50, 600)
        );
        let l = parse(r#"{"guardrail":"latency","threshold":"0.25","profile":"prod"}"#)
            .unwrap()
            .settings();
        assert_eq!((l.threshold, l.quantile), (Some(0.25), 0.99));
        let a = parse(r#"{"guardrail":"alerts"}"#).unwrap().settings();
        assert_eq!(
            (a.min_severity, a.threshold),
            (Severity::Warning, Some(0.0))
        );
        let r =
            parse(r#"{"guardrail":"regression","signal":"memory","stablePodTemplateHash":"a"}"#)
                .unwrap()
                .settings();
        assert_eq!(r.tolerance, 0.5);
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("thresold", "threshold"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
