//! The gRPC face: `rollouts_guardrails.v1.MetricProvider` (`proto/rollouts_guardrails/v1/provider.proto`)
//! over the same engine as plugin mode, with the `grpc.health.v1` health service, server reflection (v1 and
//! v1alpha), request deadlines, a measurement concurrency limit, optional TLS and mutual TLS, and graceful
//! shutdown on SIGTERM/SIGINT that drains in-flight calls within a bounded grace period.
//!
//! # Layout
//! - [`pb`]: the generated messages, server and client (compiled by `build.rs`).
//! - [`convert`]: pure mapping between the messages and the engine's types.
//! - [`deadline`]: the caller's deadline from `grpc-timeout`.
//! - [`provider`]: the seven RPCs over the engine.
//! - this module: [`GrpcServer`] (in-process, on any listener) and [`serve`] (the `serve` command).
pub mod convert;
pub mod deadline;
pub mod provider;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::engine::{duration, Engine};
use crate::telemetry;
pub use provider::GuardrailsProvider;

/// The generated `rollouts_guardrails.v1` messages, `MetricProvider` server and client.
#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]
pub mod pb {
    tonic::include_proto!("rollouts_guardrails.v1");

    /// The encoded descriptors of `provider.proto` and its imports, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("rollouts_guardrails_v1_descriptor");
}

/// The full name of the service, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "rollouts_guardrails.v1.MetricProvider";
/// The largest request message accepted (a Run request is a few KiB; the engine's config is small).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// HTTP/2 streams one connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Measurements running at once unless `--max-concurrent-measurements` says otherwise; more Runs wait.
pub const DEFAULT_MAX_CONCURRENT_MEASUREMENTS: usize = 64;
/// How long in-flight calls get to finish after SIGTERM/SIGINT unless `--shutdown-grace` says otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The largest certificate, key or CA file read (PEM bundles are a few KiB).
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve the MetricProvider gRPC API (with health, reflection, optional TLS and /metrics).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the gRPC listener, e.g. `0.0.0.0:9464`.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA bundle (mutual TLS; needs --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Measurements running at once; further Runs wait for a slot within their deadline.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENT_MEASUREMENTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_concurrent_measurements: usize,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT, e.g. `30s`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_grace)]
    pub shutdown_grace: Duration,
    /// The controller-side settings (address, credentials, credentials directories, allowed addresses):
    /// `serve`'s callers are template authors, under the same trust boundary as plugin mode.
    #[command(flatten)]
    pub controller: crate::engine::trust::ControllerArgs,
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|e| e.to_string())
}

/// Why the gRPC service could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC listener could not be bound.
    #[error("cannot listen for gRPC on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PEM file is larger than [`MAX_PEM_FILE_BYTES`].
    #[error("{what} {path} is larger than {MAX_PEM_FILE_BYTES} bytes")]
    TlsFileTooLarge { what: &'static str, path: PathBuf },
    /// tonic refused the TLS configuration.
    #[error("invalid TLS configuration: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// Reflection could not load the service descriptors (a build defect).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while serving.
    #[error("the gRPC server failed: {0}")]
    Transport(#[source] tonic::transport::Error),
    /// The `/metrics` server could not start.
    #[error(transparent)]
    Metrics(#[from] telemetry::TelemetryError),
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// In-flight calls were still running when the grace period ended; they were abandoned.
    #[error("in-flight calls did not finish within the shutdown grace period of {}", duration::format(*.0))]
    DrainTimedOut(Duration),
}

/// The PEM files of the server's TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA bundle.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files into tonic's configuration.
    pub async fn load(&self) -> Result<ServerTlsConfig, ServeError> {
        let cert = read_pem("certificate", &self.cert).await?;
        let key = read_pem("private key", &self.key).await?;
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read_pem("client CA", ca).await?));
        }
        Ok(config)
    }
}

async fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, ServeError> {
    let file_error = |source| ServeError::TlsFile {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(file_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(file_error)?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(ServeError::TlsFileTooLarge {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The gRPC server, ready to serve on any listener (tests use `127.0.0.1:0`).
pub struct GrpcServer {
    engine: Engine,
    tls: Option<ServerTlsConfig>,
    max_concurrent_measurements: usize,
    shutdown_grace: Duration,
}

impl GrpcServer {
    /// A plaintext server with the default limits.
    pub fn new(engine: Engine) -> GrpcServer {
        GrpcServer {
            engine,
            tls: None,
            max_concurrent_measurements: DEFAULT_MAX_CONCURRENT_MEASUREMENTS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    /// Serves TLS (mutual TLS when the configuration has a client CA).
    pub fn tls(mut self, tls: ServerTlsConfig) -> GrpcServer {
        self.tls = Some(tls);
        self
    }

    /// Measurements running at once (at least one).
    pub fn max_concurrent_measurements(mut self, limit: usize) -> GrpcServer {
        self.max_concurrent_measurements = limit.max(1);
        self
    }

    /// How long in-flight calls get after `shutdown` completes.
    pub fn shutdown_grace(mut self, grace: Duration) -> GrpcServer {
        self.shutdown_grace = grace;
        self
    }

    /// Serves on `listener` until `shutdown` completes, then reports NOT_SERVING, refuses new connections
    /// and lets in-flight calls finish within the grace period.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let provider = pb::metric_provider_server::MetricProviderServer::new(
            GuardrailsProvider::new(self.engine, self.max_concurrent_measurements),
        )
        .max_decoding_message_size(MAX_REQUEST_BYTES);
        health
            .set_service_status(SERVICE_NAME, ServingStatus::Serving)
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let mut builder = Server::builder().max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls).map_err(ServeError::Tls)?;
        }
        let address = listener.local_addr().ok();
        tracing::info!(address = ?address, "serving gRPC {SERVICE_NAME}");

        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new connections, draining in-flight calls");
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
                .await;
            let _ = draining_tx.send(());
        };
        let server = builder
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(provider)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
        let grace = self.shutdown_grace;
        let grace_over = async move {
            match draining_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended before shutdown was asked: nothing to wait for.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            served = server => served.map_err(ServeError::Transport),
            () = grace_over => Err(ServeError::DrainTimedOut(grace)),
        }
    }
}

/// `rollouts-guardrails serve`: binds `--listen` (and `--metrics-listen`), serves until SIGTERM or SIGINT,
/// then drains within `--shutdown-grace`.
pub async fn serve(args: ServeArgs, engine: Engine) -> Result<(), ServeError> {
    let metrics_listen = engine.defaults().metrics_listen;
    let mut server = GrpcServer::new(engine)
        .max_concurrent_measurements(args.max_concurrent_measurements)
        .shutdown_grace(args.shutdown_grace);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.client_ca.clone(),
        };
        server = server.tls(files.load().await?);
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Bind {
            address: args.listen,
            source,
        })?;
    let shutdown = shutdown_signal()?;
    let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
    // `--metrics-listen` is one of the controller-side defaults (`ControllerArgs`), shared with plugin mode.
    let metrics = match metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| telemetry::TelemetryError::Bind { address, source })?;
            let mut stopped = metrics_stopped.clone();
            Some(tokio::spawn(telemetry::serve_metrics_on(
                listener,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    let served = server.run(listener, shutdown).await;
    // /metrics stays up while draining, so the drain itself can be watched; it stops last.
    let _ = stop_metrics.send(true);
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    served
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C). Handlers are installed before this returns, so a signal
/// arriving while the server starts is not lost.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).map_err(|source| ServeError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|source| ServeError::Signal {
        signal: "SIGINT",
        source,
    })?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}
