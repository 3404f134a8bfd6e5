//! Serves the gRPC face exactly as `rollouts-guardrails serve` does, for clients outside Rust (the grpcurl
//! test in `tests/grpc-client/run.sh`) before the binary grows the subcommand.
//!
//! Run: `cargo run --example grpc_serve -- --listen 127.0.0.1:9464 --metrics-listen 127.0.0.1:9465`, then
//! `grpcurl -plaintext 127.0.0.1:9464 list`. Stop with Ctrl-C or SIGTERM (in-flight calls are drained).
use clap::Parser;
use rollouts_guardrails::engine::Engine;
use rollouts_guardrails::prometheus::Client;
use rollouts_guardrails::service::grpc::{serve, ServeArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    serve(cli.serve, Engine::from_env(Client::new())).await?;
    Ok(())
}
