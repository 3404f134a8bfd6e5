//! The rollouts-guardrails binary: plugin mode when the Argo Rollouts controller starts it (magic cookie set),
//! otherwise the command line (`check`, `validate`, `serve`). Thin: everything lives in the library; errors meet `anyhow` here.
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rollouts_guardrails::cli::{self, CheckArgs, OutputFormat};
use rollouts_guardrails::engine::measure::address_from_env;
use rollouts_guardrails::engine::trust::TrustPolicy;
use rollouts_guardrails::engine::Engine;
use rollouts_guardrails::plugin_mode;
use rollouts_guardrails::prometheus::auth::AwsEnvironment;
use rollouts_guardrails::prometheus::Client;
use rollouts_guardrails::service::grpc;
use rollouts_guardrails::telemetry;
use rollouts_guardrails::transport::handshake;

const ABOUT: &str = "Fail-closed reliability guardrails for Argo Rollouts: a metric-provider plugin over Prometheus.

Normally started by the Argo Rollouts controller as the metric-provider plugin `rollouts-guardrails/prometheus`
(the controller sets ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider and speaks go-plugin net/rpc on a unix socket).";

/// `--version`: the crate version and the git commit it was built from (build.rs; "unknown" outside a checkout).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GUARDRAILS_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(name = "rollouts-guardrails", version = VERSION, about = ABOUT, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate guardrails once against Prometheus (exit 0 all pass, 1 any fail, 2 usage error).
    Check(Box<CheckArgs>),
    /// Serve the MetricProvider gRPC API (health, reflection, optional TLS, /metrics).
    Serve(Box<grpc::ServeArgs>),
    /// Check the plugin configuration in AnalysisTemplates offline, querying nothing (exit 0 none, 1 problems, 2 usage).
    Validate(cli::validate::ValidateArgs),
}

fn main() -> ExitCode {
    if let Some(cookie) = std::env::var_os(handshake::MAGIC_COOKIE_KEY) {
        return plugin_mode(&cookie.to_string_lossy());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(cli::EXIT_USAGE),
            };
        }
    };
    match cli.command {
        Some(Command::Check(args)) => check(*args),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Validate(args)) => validate(args),
        None => {
            // A person ran the plugin by hand: say what this is, on stderr (stdout belongs to the handshake).
            let mut command = <Cli as clap::CommandFactory>::command();
            eprintln!("{}", command.render_help());
            eprintln!("This binary is a plugin: the Argo Rollouts controller starts it. Try `rollouts-guardrails check --help`.");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn check(args: CheckArgs) -> ExitCode {
    // People read the table; logs only when asked for with RUST_LOG.
    if std::env::var_os("RUST_LOG").is_some() {
        rollouts_guardrails::logging::init();
    }
    let auth = match args.auth.auth(AwsEnvironment::from_process()) {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("rollouts-guardrails check: {error}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let result = runtime().map(|runtime| {
        let trust = TrustPolicy::permissive_with_auth(address_from_env(), auth);
        let engine = Engine::with_trust(Client::new(), trust).observed_by(telemetry::global());
        runtime.block_on(cli::check(&args, &engine))
    });
    match result {
        Ok(Ok(rows)) => {
            let text = match args.output {
                OutputFormat::Table => cli::output::table(&rows),
                OutputFormat::Json => cli::output::json_lines(&rows),
            };
            print!("{text}");
            ExitCode::from(cli::exit_status(&rows))
        }
        Ok(Err(usage)) => {
            eprintln!("rollouts-guardrails check: {usage}");
            ExitCode::from(cli::EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("rollouts-guardrails check: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(args: cli::validate::ValidateArgs) -> ExitCode {
    ExitCode::from(cli::validate::run(&args))
}

fn serve(args: grpc::ServeArgs) -> ExitCode {
    rollouts_guardrails::logging::init();
    let result = TrustPolicy::strict(&args.controller, address_from_env())
        .map_err(anyhow::Error::from)
        .and_then(|trust| {
            tracing::info!(settings = %trust.summary(), "controller-side settings");
            let client = Client::with_max_in_flight(trust.defaults().max_concurrent_queries);
            let engine = Engine::with_trust(client, trust).observed_by(telemetry::global());
            runtime().and_then(|runtime| {
                runtime
                    .block_on(grpc::serve(args, engine))
                    .map_err(anyhow::Error::from)
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "serve failed");
            eprintln!("rollouts-guardrails serve: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `/metrics` beside plugin mode when the registration's `--metrics-listen` (else `GUARDRAILS_METRICS_LISTEN`)
/// is set: the controller's operator can scrape the guardrails themselves. Logs go through tracing (stderr);
/// stdout stays the handshake's.
fn spawn_plugin_metrics(registered: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let listen = match registered {
        Some(addr) => Some(addr),
        None => telemetry::metrics_listen_from_env()?,
    };
    if let Some(addr) = listen {
        tokio::spawn(async move {
            if let Err(error) = telemetry::serve_metrics(addr, std::future::pending()).await {
                tracing::error!(%error, "cannot serve /metrics");
            }
        });
    }
    Ok(())
}

fn plugin_mode(cookie: &str) -> ExitCode {
    if let Err(error) = handshake::check_cookie(cookie) {
        eprintln!("rollouts-guardrails: {error}; this binary is a metric-provider plugin started by the Argo Rollouts controller.");
        return ExitCode::FAILURE;
    }
    rollouts_guardrails::logging::init();
    // The registration's `args` (argo-rollouts: `exec.Command(pluginPath, args...)`). Invalid ones never stop
    // the plugin: it completes the handshake and fails every measurement with the reason, which is also logged.
    let trust = TrustPolicy::from_registration(std::env::args_os().skip(1), address_from_env());
    match trust.problem() {
        Some(problem) => tracing::error!(
            error = %problem,
            "controller-side settings are invalid: every measurement will be Failed"
        ),
        None => tracing::info!(settings = %trust.summary(), "controller-side settings"),
    }
    let defaults = trust.defaults().clone();
    let result = runtime().and_then(|runtime| {
        let client = Client::with_max_in_flight(defaults.max_concurrent_queries);
        let engine = Engine::with_trust(client, trust).observed_by(telemetry::global());
        runtime.block_on(async {
            spawn_plugin_metrics(defaults.metrics_listen)?;
            plugin_mode::serve(Arc::new(engine))
                .await
                .map_err(anyhow::Error::from)
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "plugin mode failed");
            ExitCode::FAILURE
        }
    }
}
