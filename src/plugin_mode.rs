//! Plugin mode: the go-plugin transport wired to the Argo `Plugin` service. Above both, so the transport knows
//! no service and the service no session.
//!
//! [`serve`] ties them together: listen, announce, accept the host's one connection, accept the control,
//! stdout and stderr streams in that order (go-plugin `rpc_server.go` `ServeConn`), then broker streams, until
//! Control.Quit, SIGTERM/SIGINT or the host hanging up; then drain calls in flight for [`DRAIN_GRACE`] and
//! remove the socket and our temp dir. Wire formats: docs/wire/go-plugin-netrpc.md.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::service::plugin::PluginService;
use crate::service::Provider;
use crate::transport::broker::Broker;
use crate::transport::control::{Control, Dispenser};
use crate::transport::handshake::{self, HandshakeError, PluginListener};
use crate::transport::mux::{Session, Stream};
use crate::transport::netrpc::{self, InFlight, Service};

/// How long shutdown waits for calls in flight (the host kills us about 2 s after Quit).
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long the final frames (the Quit reply, GoAway) may take to be written.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

/// Why plugin mode could not run.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("cannot accept the host's connection on {path}: {source}")]
    Accept {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks the host's environment, binds the private socket and announces it on stdout.
fn listen() -> Result<PluginListener, TransportError> {
    if std::env::var_os(handshake::CLIENT_CERT_ENV).is_some() {
        return Err(HandshakeError::MtlsRequested.into());
    }
    let offered = std::env::var(handshake::PROTOCOL_VERSIONS_ENV).ok();
    let (version, listed) = handshake::negotiate_version(offered.as_deref());
    if !listed {
        tracing::warn!(
            offered = offered.as_deref().unwrap_or_default(),
            version,
            "the host does not list our protocol version; announcing it anyway"
        );
    }
    let socket_dir = std::env::var_os(handshake::SOCKET_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let group = std::env::var(handshake::SOCKET_GROUP_ENV)
        .ok()
        .filter(|g| !g.is_empty());
    let listener = PluginListener::bind(socket_dir.as_deref(), group.as_deref())?;
    handshake::announce(&handshake::handshake_line(version, listener.path()))?;
    tracing::debug!(socket = %listener.path().display(), "plugin listening");
    Ok(listener)
}

/// Serves plugin mode until the host quits or hangs up, or we are signalled. The caller has checked the
/// magic cookie.
pub async fn serve(provider: Arc<dyn Provider>) -> Result<(), TransportError> {
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|source| TransportError::Signal {
            signal: "SIGTERM",
            source,
        })?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|source| TransportError::Signal {
            signal: "SIGINT",
            source,
        })?;
    let mut listener = listen()?;

    let (quit, mut quit_requested) = watch::channel(false);
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = quit_requested.wait_for(|q| *q) => {}
        }
    };
    tokio::pin!(stop);

    let connection = tokio::select! {
        accepted = listener.accept() => accepted.map_err(|source| TransportError::Accept {
            path: listener.path().to_path_buf(),
            source,
        })?,
        () = &mut stop => return Ok(()),
    };
    listener.stop_listening();
    let mut session = Session::server(connection);
    let in_flight = Arc::new(InFlight::default());
    let broker = Arc::new(Broker::new());
    let control: Vec<Arc<dyn Service>> = vec![
        Arc::new(Control::new(quit)),
        Arc::new(Dispenser::new(broker.clone())),
    ];
    let plugin: Arc<dyn Service> = Arc::new(PluginService::new(provider));
    // Held until shutdown: the host's stdout/stderr streams, which we leave idle.
    let mut stdio: Vec<Stream> = Vec::new();
    let mut accepted = 0usize;
    loop {
        let stream = tokio::select! {
            stream = session.accept() => stream,
            () = &mut stop => break,
        };
        let Some(stream) = stream else {
            tracing::info!("host closed the connection, shutting down");
            break;
        };
        accepted += 1;
        match accepted {
            1 => {
                let (reader, writer) = stream.into_split();
                tokio::spawn(netrpc::serve(
                    reader,
                    writer,
                    BytesMut::new(),
                    control.clone(),
                    in_flight.clone(),
                ));
            }
            2 | 3 => stdio.push(stream),
            _ => serve_brokered(stream, broker.clone(), plugin.clone(), in_flight.clone()),
        }
    }
    if tokio::time::timeout(DRAIN_GRACE, in_flight.idle())
        .await
        .is_err()
    {
        tracing::warn!("calls still in flight after {DRAIN_GRACE:?}; closing anyway");
    }
    session.handle().close_and_flush(FLUSH_GRACE).await;
    drop(stdio);
    drop(listener);
    Ok(())
}

/// A broker stream: once the broker connects it, the `Plugin` service's calls are served on it.
fn serve_brokered(
    stream: Stream,
    broker: Arc<Broker>,
    plugin: Arc<dyn Service>,
    in_flight: Arc<InFlight>,
) {
    tokio::spawn(async move {
        match broker.connect(stream).await {
            Ok(connected) => {
                netrpc::serve(
                    connected.reader,
                    connected.writer,
                    connected.buffered,
                    vec![plugin],
                    in_flight,
                )
                .await
            }
            Err(error) => tracing::warn!(%error, "broker stream refused"),
        }
    });
}
