//! Controller-wide defaults from the plugin registration's `args`: the source every measurement reads
//! (`--matcher`), which labels tell replicas apart (`--replica-label`), the default `timeout` and `settle`, the
//! bound on queries in flight (`--max-concurrent-queries`) and where `/metrics` listens (`--metrics-listen`).
//!
//! Precedence, for each value: the template's key, then the registration's arg, then the environment, then the
//! built-in default. [`Effective`] says which one won, for the measurement's metadata (never a credential:
//! none of these is one).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::config::{default_replica_labels, Common, DEFAULT_TIMEOUT, MAX_TIMEOUT};
use super::duration;
use super::promql::{self, Matchers};
use super::settle;

/// Default bound on queries in flight to one Prometheus endpoint.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 16;

/// The registration args for controller-wide defaults (flattened into `ControllerArgs`).
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultsArgs {
    /// LABEL=VALUE on every series every guardrail reads (e.g. cluster=prod-eu for a central store).
    /// Repeatable. Templates may add matchers, not change these (see overrideControllerMatchers).
    #[arg(long = "matcher", value_name = "LABEL=VALUE")]
    pub matchers: Vec<String>,
    /// A label that tells replicas of one exporter or store apart (repeatable; replaces the default list
    /// instance, replica, prometheus_replica, __replica__, kubernetes_pod_name).
    #[arg(long = "replica-label", value_name = "LABEL")]
    pub replica_labels: Vec<String>,
    /// `timeout` for templates that set none (default 10s, at most 5m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// `settle` for templates that set none (overrides GUARDRAILS_SETTLE; default 2m, at most 30m).
    #[arg(long, value_name = "DURATION")]
    pub settle: Option<String>,
    /// Queries in flight to one Prometheus endpoint at most (default 16); more wait inside their
    /// measurement's timeout.
    #[arg(long, value_name = "N")]
    pub max_concurrent_queries: Option<usize>,
    /// Serve the plugin's own /metrics on ADDR (overrides GUARDRAILS_METRICS_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Template,
    Registration,
    Environment,
    Default,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Template => "template",
            Origin::Registration => "registration",
            Origin::Environment => "environment",
            Origin::Default => "default",
        }
    }
}

/// The parsed controller-wide defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub matchers: Matchers,
    pub replica_labels: Option<Vec<String>>,
    pub timeout: Option<Duration>,
    /// `(settle, origin)` when the registration or the environment set one.
    pub settle: Option<(Duration, Origin)>,
    pub max_concurrent_queries: usize,
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            matchers: Matchers::default(),
            replica_labels: None,
            timeout: None,
            settle: None,
            max_concurrent_queries: DEFAULT_MAX_CONCURRENT_QUERIES,
            metrics_listen: None,
        }
    }
}

/// Why a default arg is unusable (every measurement is then Failed with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value}: {reason}")]
pub struct DefaultsError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

impl Defaults {
    /// Parses the args; `env_settle` is `GUARDRAILS_SETTLE` (used when `--settle` is not given).
    pub fn parse(
        args: &DefaultsArgs,
        env_settle: Option<Duration>,
    ) -> Result<Defaults, DefaultsError> {
        let error = |flag, value: &str, reason: String| DefaultsError {
            flag,
            value: value.to_string(),
            reason,
        };
        let mut pairs = BTreeMap::new();
        for raw in &args.matchers {
            let Some((label, value)) = raw.split_once('=') else {
                return Err(error("--matcher", raw, "expected LABEL=VALUE".into()));
            };
            if pairs.insert(label.to_string(), value.to_string()).is_some() {
                return Err(error(
                    "--matcher",
                    raw,
                    format!("label `{label}` given twice"),
                ));
            }
        }
        let matchers = Matchers::new(pairs)
            .map_err(|e| error("--matcher", &args.matchers.join(","), e.to_string()))?;
        for label in &args.replica_labels {
            promql::validate_label_name(label)
                .map_err(|e| error("--replica-label", label, e.to_string()))?;
        }
        let timeout = args
            .timeout
            .as_deref()
            .map(|t| {
                let d = duration::parse(t).map_err(|e| error("--timeout", t, e.to_string()))?;
                if d.is_zero() || d > MAX_TIMEOUT {
                    let bounds =
                        format!("must be between 1ms and {}", duration::format(MAX_TIMEOUT));
                    return Err(error("--timeout", t, bounds));
                }
                Ok(d)
            })
            .transpose()?;
        let registered = args
            .settle
            .as_deref()
            .map(|t| settle::parse(t).map_err(|reason| error("--settle", t, reason)))
            .transpose()?;
        let settle = match registered {
            Some(settle) => Some((settle, Origin::Registration)),
            None => env_settle.map(|s| (s, Origin::Environment)),
        };
        let max_concurrent_queries = match args.max_concurrent_queries {
            Some(0) => {
                return Err(error(
                    "--max-concurrent-queries",
                    "0",
                    "must be at least 1".into(),
                ))
            }
            Some(n) => n,
            None => DEFAULT_MAX_CONCURRENT_QUERIES,
        };
        let metrics_listen = args
            .metrics_listen
            .as_deref()
            .map(|a| {
                a.trim()
                    .parse()
                    .map_err(|e| error("--metrics-listen", a, format!("{e}")))
            })
            .transpose()?;
        Ok(Defaults {
            matchers,
            replica_labels: (!args.replica_labels.is_empty()).then(|| args.replica_labels.clone()),
            timeout,
            settle,
            max_concurrent_queries,
            metrics_listen,
        })
    }

    /// The values a measurement of `common` runs with, and where each came from.
    pub fn effective(&self, common: &Common) -> Effective {
        let (timeout, timeout_from) = match (common.timeout, self.timeout) {
            (Some(t), _) => (t, Origin::Template),
            (None, Some(t)) => (t, Origin::Registration),
            (None, None) => (DEFAULT_TIMEOUT, Origin::Default),
        };
        let (replica_labels, replica_labels_from) =
            match (&common.replica_labels, &self.replica_labels) {
                (Some(l), _) => (l.clone(), Origin::Template),
                (None, Some(l)) => (l.clone(), Origin::Registration),
                (None, None) => (default_replica_labels(), Origin::Default),
            };
        Effective {
            timeout,
            timeout_from,
            replica_labels,
            replica_labels_from,
        }
    }

    /// `settle` of a template that sets none, and where it came from.
    pub fn settle(&self, built_in: Duration) -> (Duration, Origin) {
        self.settle.unwrap_or((built_in, Origin::Default))
    }
}

/// The effective values of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub timeout: Duration,
    pub timeout_from: Origin,
    pub replica_labels: Vec<String>,
    pub replica_labels_from: Origin,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut DefaultsArgs)) -> DefaultsArgs {
        let mut a = DefaultsArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn every_arg_is_validated_and_names_itself() {
        for (bad, flag) in [
            (
                args(|a| a.matchers = vec!["cluster".into()]),
                "--matcher cluster",
            ),
            (
                args(|a| a.matchers = vec!["a-b=x".into()]),
                "--matcher a-b=x",
            ),
            (
                args(|a| a.matchers = vec!["c=a".into(), "c=b".into()]),
                "--matcher c=b",
            ),
            (
                args(|a| a.replica_labels = vec!["not ok".into()]),
                "--replica-label not ok",
            ),
            (args(|a| a.timeout = Some("10h".into())), "--timeout 10h"),
            (args(|a| a.timeout = Some("0s".into())), "--timeout 0s"),
            (args(|a| a.settle = Some("2h".into())), "--settle 2h"),
            (
                args(|a| a.max_concurrent_queries = Some(0)),
                "--max-concurrent-queries 0",
            ),
            (
                args(|a| a.metrics_listen = Some("nowhere".into())),
                "--metrics-listen nowhere",
            ),
        ] {
            let err = Defaults::parse(&bad, None).unwrap_err();
            assert!(err.to_string().starts_with(flag), "{err}");
        }
    }

    #[test]
    fn the_template_wins_then_the_registration_then_the_environment_then_the_default() {
        let common = crate::engine::config::Config::from_json(br#"{"guardrail":"restarts"}"#)
            .unwrap()
            .common;
        let none = Defaults::parse(&DefaultsArgs::default(), None).unwrap();
        let e = none.effective(&common);
        assert_eq!(
            (e.timeout, e.timeout_from),
            (DEFAULT_TIMEOUT, Origin::Default)
        );
        assert_eq!(e.replica_labels_from, Origin::Default);
        assert_eq!(none.settle(Duration::from_secs(120)).1, Origin::Default);
        let env = Defaults::parse(&DefaultsArgs::default(), Some(Duration::from_secs(30))).unwrap();
        assert_eq!(
            env.settle(Duration::ZERO),
            (Duration::from_secs(30), Origin::Environment)
        );
        let registered = Defaults::parse(
            &args(|a| {
                a.timeout = Some("20s".into());
                a.settle = Some("1m".into());
                a.replica_labels = vec!["shard".into()];
            }),
            Some(Duration::from_secs(30)),
        )
        .unwrap();
        let e = registered.effective(&common);
        assert_eq!(
            (e.timeout, e.timeout_from),
            (Duration::from_secs(20), Origin::Registration)
        );
        assert_eq!(e.replica_labels, ["shard"]);
        assert_eq!(
            registered.settle(Duration::ZERO),
            (Duration::from_secs(60), Origin::Registration)
        );
        let own = crate::engine::config::Config::from_json(
            br#"{"guardrail":"restarts","timeout":"3s","replicaLabels":["r"]}"#,
        )
        .unwrap()
        .common;
        let e = registered.effective(&own);
        assert_eq!(
            (e.timeout, e.timeout_from),
            (Duration::from_secs(3), Origin::Template)
        );
        assert_eq!(
            (e.replica_labels.as_slice(), e.replica_labels_from),
            (&["r".to_string()][..], Origin::Template)
        );
    }
}
