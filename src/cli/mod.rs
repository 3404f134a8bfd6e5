//! The `check` command: evaluate guardrails once, for CI, laptops, template debugging and incident reviews.
//!
//! Contract (other tools and tests depend on it):
//! `rollouts-guardrails check --prometheus URL --guardrail NAME [--namespace NS] [--rollout NAME]
//! [--pod-template-hash HASH] [--set KEY=VALUE]... [--at TIME] [--output table|json]`, or
//! `--template FILE [--arg NAME=VALUE]...` instead of `--guardrail` to evaluate every metric of an
//! (Cluster)AnalysisTemplate that uses this plugin. Exit status: 0 all Successful, 1 any other phase (Failed,
//! or the Inconclusive/Error an `unprovenPhase` names), 2 usage error.
//!
//! `check` does not settle unless asked: absence (no series yet) is answered at once. `--settle 2m` waits as
//! the controller would, measuring again every `min(10s, settle/6)` until the data is there or `settle` has
//! passed; it is refused with `--at` (data cannot appear at a fixed instant).
//!
//! The guardrails (`--guardrail`, and `check --help` lists them from [`GuardrailKind::ALL`]): `restarts`,
//! `not-ready`, `latest-image`, `waiting-reasons`, `oom-killed`, `error-rate`, `latency`, `alerts`,
//! `regression`, `gitops`, `query` and `replicas`. With `--guardrail`, a configuration, target or address the flags leave
//! unusable is a usage error (exit 2) said in terms of the flags; with `--template`, each metric's problems
//! are its own FAIL row.
//!
//! # Layout
//! - [`output`]: the PASS/FAIL table and JSON lines.
//! - [`validate`]: the `validate` command's flags and output (the checks: [`crate::validate`]).
//!
//! Templates are read by [`crate::manifest::template`], the reader `validate` uses too.
pub mod output;
pub mod validate;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

use crate::engine::config::{Config, ADDRESS_ENV};
use crate::engine::guardrails::Scope;
use crate::engine::measure::{SettlePolicy, When};
use crate::engine::promql::Matchers;
use crate::engine::target::{self, POD_TEMPLATE_HASH_LABEL};
use crate::engine::{
    AnalysisContext, Engine, GuardrailKind, Measurement, MetricSpec, OwnerReference, Phase,
};
use crate::manifest::template;

/// Exit status when every measurement is Successful.
pub const EXIT_PASS: u8 = 0;
/// Exit status when any measurement is Failed.
pub const EXIT_FAIL: u8 = 1;
/// Exit status of a usage error (bad flags, unreadable template, missing arg).
pub const EXIT_USAGE: u8 = 2;

/// The flags of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Prometheus base URL (sets `address`; default: the configuration's, else $GUARDRAILS_PROMETHEUS_ADDRESS).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// The guardrail to evaluate.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "template",
        required_unless_present = "template",
        value_parser = guardrail_names()
    )]
    pub guardrail: Option<String>,
    /// Namespace of the target (as the AnalysisRun's namespace would give it).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Rollout of the target (as the AnalysisRun's owner reference would give it).
    #[arg(long, value_name = "NAME")]
    pub rollout: Option<String>,
    /// Pod-template hash of the ReplicaSet to judge (as the AnalysisRun's label would give it).
    #[arg(long, value_name = "HASH")]
    pub pod_template_hash: Option<String>,
    /// Sets any configuration key; values are typed as in JSON (`threshold=2`, `window=10m`,
    /// `tls.insecureSkipVerify=true`, `images=["a:1","b"]`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Evaluate at a past instant (RFC 3339 or unix seconds): every query uses it.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Wait up to DUR for data that does not exist yet (no pod or request series, a pod not Ready yet), as
    /// the controller would with `settle`; default: answer at once. Not with --at.
    #[arg(long, value_name = "DUR", conflicts_with = "at")]
    pub settle: Option<String>,
    /// table (for people) or json (one object per metric and line).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Evaluate every metric of this AnalysisTemplate / ClusterAnalysisTemplate that uses this plugin.
    #[arg(long, value_name = "FILE")]
    pub template: Option<std::path::PathBuf>,
    /// A template argument (`{{args.NAME}}`). Repeatable.
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// AWS SigV4 or OAuth2 client credentials for the checked address (as the registration's args give
    /// them to the plugin).
    #[command(flatten)]
    pub auth: crate::engine::trust::ManagedAuthArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// A usage error: printed to stderr, exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--set {0}: expected KEY=VALUE")]
    SetSyntax(String),
    #[error("--set {key}: `{parent}` is not an object")]
    SetPath { key: String, parent: String },
    #[error("--at {0}: expected RFC 3339 (2026-01-01T12:00:00Z) or unix seconds")]
    At(String),
    #[error("--settle {0}")]
    Settle(String),
    #[error("--arg is for --template (use --set KEY=VALUE to set configuration keys)")]
    ArgWithoutTemplate,
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// The configuration the flags make is refused (said in terms of the flags).
    #[error("{0}")]
    Config(String),
}

/// `--guardrail`'s values, each with its one-line summary: every guardrail of [`GuardrailKind::ALL`].
fn guardrail_names() -> PossibleValuesParser {
    PossibleValuesParser::new(
        GuardrailKind::ALL.map(|g| PossibleValue::new(g.name()).help(g.summary())),
    )
}

/// What the flags of a `--guardrail` run leave unusable, before anything is asked: the configuration
/// (`--guardrail`, `--set`), the target (`--namespace`, `--rollout`, `--pod-template-hash`) and the address
/// (`--prometheus`).
fn check_command_line(
    metric: &MetricSpec,
    context: &AnalysisContext,
    engine: &Engine,
) -> Result<(), UsageError> {
    let config = Config::from_metric(metric)
        .map_err(|e| {
            UsageError::Config(format!("the configuration from --guardrail and --set: {e}"))
        })?
        .ok_or_else(|| UsageError::Config("no configuration".into()))?;
    if let Err(failure) = target::resolve(&config, context, &Matchers::default()) {
        let needed = match config.guardrail.scope() {
            Scope::ReplicaSet | Scope::ReplicaSetObject => "--namespace, --rollout and --pod-template-hash are needed, or --template with a Rollout-side arg",
            Scope::Namespace => "--namespace is needed",
            Scope::Global => "",
        };
        return Err(UsageError::Config(
            if failure.message.starts_with("cannot determine") {
                needed.to_string()
            } else {
                format!(
                    "the target from --namespace, --rollout and --pod-template-hash: {}",
                    failure.message
                )
            },
        ));
    }
    if config.connection.address.is_none() && engine.default_address().is_none() {
        return Err(UsageError::Config(format!(
            "no Prometheus address: pass --prometheus URL (or set {ADDRESS_ENV})"
        )));
    }
    Ok(())
}

/// One evaluated metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub measurement: Measurement,
}

/// Runs `check` and returns the exit status. Errors are usage errors (exit 2).
pub async fn check(args: &CheckArgs, engine: &Engine) -> Result<Vec<Row>, UsageError> {
    if args.template.is_none() && !args.args.is_empty() {
        return Err(UsageError::ArgWithoutTemplate);
    }
    let at = args.at.as_deref().map(parse_at).transpose()?;
    let settle = args
        .settle
        .as_deref()
        .map(|text| crate::engine::settle::parse(text).map_err(UsageError::Settle))
        .transpose()?;
    if settle.is_some() && at.is_some() {
        // clap refuses the pair too; the library contract does not rely on it.
        return Err(UsageError::Settle(
            "cannot be combined with --at: data cannot appear at a fixed instant".into(),
        ));
    }
    let when = |started_at| match at {
        Some(at) => When::At(at),
        None => When::Now {
            started_at: Some(started_at),
            settle: SettlePolicy::Fixed(settle.unwrap_or_default()),
        },
    };
    let context = context(args);
    let metrics = match &args.template {
        Some(path) => template_metrics(path, args)?,
        None => vec![command_line_metric(args, &context, engine)?],
    };
    // Every metric on its own timeline, concurrently, as the controller measures a template's metrics.
    let measured = metrics.into_iter().map(|metric| {
        let context = &context;
        async move {
            let started_at = SystemTime::now();
            let mut measurement = engine
                .measure_when(context, &metric, when(started_at))
                .await;
            while measurement.phase == Phase::Running {
                let resume_at = measurement.resume_at.unwrap_or_else(SystemTime::now);
                eprintln!("{}: {}", metric.name, measurement.message);
                let pause = resume_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tokio::time::sleep(pause).await;
                measurement = engine
                    .measure_when(context, &metric, when(started_at))
                    .await;
            }
            Row {
                metric: metric.name,
                measurement,
            }
        }
    });
    Ok(futures::future::join_all(measured).await)
}

/// `--template`: every metric of the template that uses this plugin, with the command line's `--set`s.
fn template_metrics(
    path: &std::path::Path,
    args: &CheckArgs,
) -> Result<Vec<MetricSpec>, UsageError> {
    let mut specs = Vec::new();
    for metric in template::load(path, &args.args)? {
        let mut config = metric.config;
        apply_overrides(&mut config, args)?;
        specs.push(MetricSpec {
            name: metric.name,
            plugin_config: Some(Value::Object(config).to_string().into_bytes()),
            success_condition: metric.success_condition,
            failure_condition: metric.failure_condition,
        });
    }
    Ok(specs)
}

/// `--guardrail` and `--set`: one metric, its configuration checked as a usage error (exit 2).
fn command_line_metric(
    args: &CheckArgs,
    context: &AnalysisContext,
    engine: &Engine,
) -> Result<MetricSpec, UsageError> {
    let mut config = Map::new();
    if let Some(g) = &args.guardrail {
        config.insert("guardrail".into(), Value::String(g.clone()));
    }
    apply_overrides(&mut config, args)?;
    let name = config
        .get("guardrail")
        .and_then(Value::as_str)
        .unwrap_or("guardrail")
        .to_string();
    let metric = MetricSpec {
        name,
        plugin_config: Some(Value::Object(config).to_string().into_bytes()),
        ..Default::default()
    };
    check_command_line(&metric, context, engine)?;
    Ok(metric)
}

/// The exit status for a set of rows: 0 when every one is Successful (and there is at least one).
pub fn exit_status(rows: &[Row]) -> u8 {
    if !rows.is_empty()
        && rows
            .iter()
            .all(|r| r.measurement.phase == Phase::Successful)
    {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}

/// The AnalysisRun the controller would have passed, from the target flags.
fn context(args: &CheckArgs) -> AnalysisContext {
    let mut ctx = AnalysisContext {
        namespace: args.namespace.clone().unwrap_or_default(),
        ..Default::default()
    };
    if let Some(rollout) = &args.rollout {
        ctx.owner_references.push(OwnerReference {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            name: rollout.clone(),
            controller: true,
            ..Default::default()
        });
    }
    if let Some(hash) = &args.pod_template_hash {
        ctx.labels
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    }
    ctx
}

/// `--prometheus` and `--set` on top of a metric's configuration.
fn apply_overrides(config: &mut Map<String, Value>, args: &CheckArgs) -> Result<(), UsageError> {
    if let Some(address) = &args.prometheus {
        config.insert("address".into(), Value::String(address.clone()));
    }
    for assignment in &args.set {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| UsageError::SetSyntax(assignment.clone()))?;
        if key.is_empty() {
            return Err(UsageError::SetSyntax(assignment.clone()));
        }
        // Typed as in JSON: `2` is a number, `true` a bool, `["a"]` a list; anything else is a string.
        let value =
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        match key.split_once('.') {
            None => {
                config.insert(key.to_string(), value);
            }
            Some((parent, child)) => {
                let entry = config
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(object) = entry else {
                    return Err(UsageError::SetPath {
                        key: key.to_string(),
                        parent: parent.to_string(),
                    });
                };
                object.insert(child.to_string(), value);
            }
        }
    }
    Ok(())
}

/// `2026-01-01T12:00:00Z`, `2026-01-01T14:05:00+02:00` or `1767268800` / `1767268800.5`.
pub fn parse_at(text: &str) -> Result<SystemTime, UsageError> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        let nanos = t
            .timestamp_nanos_opt()
            .ok_or_else(|| UsageError::At(text.to_string()))?;
        if nanos < 0 {
            return Err(UsageError::At(text.to_string()));
        }
        return Ok(UNIX_EPOCH + Duration::from_nanos(nanos as u64));
    }
    match text.parse::<f64>() {
        Ok(secs) if (0.0..1e11).contains(&secs) => Ok(UNIX_EPOCH + Duration::from_secs_f64(secs)),
        _ => Err(UsageError::At(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        check: CheckArgs,
    }

    fn args(line: &[&str]) -> CheckArgs {
        Cli::try_parse_from(std::iter::once("check").chain(line.iter().copied()))
            .unwrap()
            .check
    }

    #[test]
    fn set_types_values_as_json_and_nests_one_level() {
        let a = args(&[
            "--guardrail",
            "restarts",
            "--set",
            "threshold=2",
            "--set",
            "window=10m",
            "--set",
            "tls.insecureSkipVerify=true",
            "--set",
            "images=[\"a:1\"]",
        ]);
        let mut config = Map::new();
        apply_overrides(&mut config, &a).unwrap();
        assert_eq!(config["threshold"], Value::from(2));
        assert_eq!(config["window"], Value::from("10m"));
        assert_eq!(config["tls"]["insecureSkipVerify"], Value::Bool(true));
        assert_eq!(config["images"][0], Value::from("a:1"));
        let bad = args(&["--guardrail", "restarts", "--set", "threshold"]);
        assert!(matches!(
            apply_overrides(&mut Map::new(), &bad),
            Err(UsageError::SetSyntax(_))
        ));
    }

    #[test]
    fn at_accepts_rfc3339_and_unix_seconds() {
        let expected = UNIX_EPOCH + Duration::from_secs(1_767_268_800);
        assert_eq!(parse_at("2026-01-01T12:00:00Z").unwrap(), expected);
        assert_eq!(parse_at("2026-01-01T14:00:00+02:00").unwrap(), expected);
        assert_eq!(parse_at("1767268800").unwrap(), expected);
        for bad in ["yesterday", "-5", "NaN", "2026-01-01"] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_target_flags_become_the_analysis_run_defaults() {
        let ctx = context(&args(&[
            "--guardrail",
            "restarts",
            "--namespace",
            "shop",
            "--rollout",
            "web",
            "--pod-template-hash",
            "6c8d7f9a1",
        ]));
        assert_eq!(ctx.namespace, "shop");
        assert_eq!(ctx.owner_references[0].kind, "Rollout");
        assert_eq!(ctx.labels[POD_TEMPLATE_HASH_LABEL], "6c8d7f9a1");
    }

    #[test]
    fn guardrail_and_template_are_exclusive_and_one_is_required() {
        assert!(Cli::try_parse_from(["check"]).is_err());
        assert!(
            Cli::try_parse_from(["check", "--guardrail", "restarts", "--template", "t.yaml"])
                .is_err()
        );
        let with_arg =
            Cli::try_parse_from(["check", "--guardrail", "restarts", "--arg", "a=b"]).unwrap();
        let engine = Engine::new(crate::prometheus::Client::new(), None);
        let result = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(check(&with_arg.check, &engine));
        assert!(matches!(result, Err(UsageError::ArgWithoutTemplate)));
    }
}
