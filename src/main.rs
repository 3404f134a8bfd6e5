//! The rollouts-guardrails binary: plugin mode when the Argo Rollouts controller starts it (magic cookie
//! set), otherwise a short explanation of what this binary is.
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use rollouts_guardrails::engine::{AnalysisContext, Measurement, MetricSpec, Phase};
use rollouts_guardrails::service::Provider;
use rollouts_guardrails::transport::{self, handshake};

const USAGE: &str = "\
rollouts-guardrails: fail-closed reliability guardrails for Argo Rollouts (a metric-provider plugin).

This binary is normally started by the Argo Rollouts controller as the metric-provider plugin
`rollouts-guardrails/prometheus` (the controller sets ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider).

Usage:
  rollouts-guardrails check ...   evaluate guardrails against Prometheus from the command line
  rollouts-guardrails serve ...   run the gRPC service
  rollouts-guardrails --help      show this help
";

/// Stands in for the engine until it is wired: every measurement fails, closed.
struct EngineNotWired;

impl Provider for EngineNotWired {
    fn run<'a>(
        &'a self,
        _ctx: &'a AnalysisContext,
        _metric: &'a MetricSpec,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>> {
        Box::pin(async {
            Measurement {
                phase: Phase::Failed,
                message: "engine not wired".into(),
                value: String::new(),
                metadata: BTreeMap::new(),
                started_at: None,
                finished_at: None,
                resume_at: None,
            }
        })
    }

    fn metadata(&self, _metric: &MetricSpec) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

fn main() -> ExitCode {
    if let Some(cookie) = std::env::var_os(handshake::MAGIC_COOKIE_KEY) {
        return plugin_mode(&cookie.to_string_lossy());
    }
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    eprint!("{USAGE}");
    ExitCode::FAILURE
}

fn plugin_mode(cookie: &str) -> ExitCode {
    if let Err(error) = handshake::check_cookie(cookie) {
        eprintln!(
            "rollouts-guardrails: {error}; this binary is a metric-provider plugin.\n\n{USAGE}"
        );
        return ExitCode::FAILURE;
    }
    rollouts_guardrails::logging::init();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime
                .block_on(transport::serve(Arc::new(EngineNotWired)))
                .map_err(anyhow::Error::from)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "plugin mode failed");
            ExitCode::FAILURE
        }
    }
}
