//! The guardrails' own metrics (measurements by guardrail and phase, failures by class, Prometheus query
//! latency, measurements in flight, build info) and the hyper server exposing them at `/metrics` in the
//! Prometheus text format 0.0.4.
//!
//! The engine does not reach for it: [`Telemetry`] is an [`Observer`] handed to the engine, which tells it
//! of every measurement (typed guardrail and failure class) and query.
//!
//! Hand-rolled rather than the `prometheus-client` crate: every label comes from a closed set (guardrail
//! kinds, Argo phases, failure classes, query outcomes), so each series is a fixed atomic counter updated
//! without locks or allocation, every series exists from the start (no missing-series gaps in rate()), and no
//! label can ever carry a peer-controlled string (an address, a query, a credential). The exposition is ~100
//! lines; a dependency would bring a registry, dynamic label sets and OpenMetrics we do not need.
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::engine::observer::{Observer, QueryOutcome};
use crate::engine::GuardrailKind;
use crate::engine::Phase;
use crate::failure::FailureClass;

/// The environment variable that makes plugin mode serve `/metrics` on this address (`0.0.0.0:9465`).
pub const METRICS_LISTEN_ENV: &str = "GUARDRAILS_METRICS_LISTEN";
/// The path of the exposition.
pub const METRICS_PATH: &str = "/metrics";
/// The content type of the Prometheus text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Concurrent scrape connections; more wait in the accept queue (a scraper needs one).
pub const MAX_METRICS_CONNECTIONS: usize = 16;
/// How long a scraper may take to send its request head (slow-loris bound).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open scrape connections get to finish after shutdown is asked.
pub const METRICS_DRAIN: Duration = Duration::from_secs(2);
/// Upper bounds (seconds) of the Prometheus query latency histogram.
pub const QUERY_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The guardrail label values: every guardrail, then `unknown` for a configuration that failed before naming
/// one.
const GUARDRAILS: usize = GuardrailKind::ALL.len() + 1;

fn guardrail_label(index: usize) -> &'static str {
    GuardrailKind::ALL
        .get(index)
        .map_or("unknown", |g| g.name())
}
const PHASES: [Phase; 6] = Phase::ALL;
const CLASSES: [FailureClass; 8] = [
    FailureClass::NoData,
    FailureClass::NoTraffic,
    FailureClass::Ambiguous,
    FailureClass::Stale,
    FailureClass::QueryError,
    FailureClass::Timeout,
    FailureClass::Config,
    FailureClass::Threshold,
];

fn outcome_index(outcome: QueryOutcome) -> usize {
    QueryOutcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or(0)
}

/// Errors of the `/metrics` server.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The listen address did not parse.
    #[error("invalid metrics listen address `{address}` (from {source_name}): {source}")]
    Address {
        address: String,
        source_name: &'static str,
        #[source]
        source: std::net::AddrParseError,
    },
    /// The socket could not be bound.
    #[error("cannot listen for /metrics on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A latency histogram with fixed buckets ([`QUERY_LATENCY_BUCKETS`]) and an overflow (`+Inf`) bucket.
#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last is `+Inf`. Cumulated when rendered.
    buckets: [AtomicU64; QUERY_LATENCY_BUCKETS.len() + 1],
    /// Sum of observations in nanoseconds (584 years before it wraps).
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = QUERY_LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(QUERY_LATENCY_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The process' metrics. One instance per process: [`global`].
#[derive(Debug, Default)]
pub struct Telemetry {
    /// `[guardrail][phase]` measurement counts.
    measurements: [[AtomicU64; PHASES.len()]; GUARDRAILS],
    /// Failed measurements per failure class.
    failures: [AtomicU64; CLASSES.len()],
    /// Prometheus query latency, per outcome.
    query_latency: [Histogram; QueryOutcome::ALL.len()],
    /// Measurements started and not yet finished (or dropped).
    in_flight: AtomicI64,
}

static GLOBAL: LazyLock<Telemetry> = LazyLock::new(Telemetry::default);

/// The process-wide metrics the engine records into and `/metrics` renders.
pub fn global() -> &'static Telemetry {
    &GLOBAL
}

impl Telemetry {
    /// Counts one finished measurement. `guardrail` is `None` when the configuration failed before naming
    /// one (counted as `unknown`); `failure` is set for failed measurements.
    pub fn record_measurement(
        &self,
        guardrail: Option<GuardrailKind>,
        phase: Phase,
        failure: Option<FailureClass>,
    ) {
        let g = guardrail
            .and_then(|kind| GuardrailKind::ALL.iter().position(|known| *known == kind))
            .unwrap_or(GUARDRAILS - 1);
        let p = PHASES.iter().position(|known| *known == phase).unwrap_or(0);
        self.measurements[g][p].fetch_add(1, Ordering::Relaxed);
        if let Some(class) = failure {
            if let Some(c) = CLASSES.iter().position(|known| *known == class) {
                self.failures[c].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Measurements currently in flight.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The exposition in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_measurements(&mut out);
        self.render_failures(&mut out);
        self.render_query_latency(&mut out);
        family(
            &mut out,
            "rollouts_guardrails_measurements_in_flight",
            "gauge",
            "Measurements started and not yet finished.",
        );
        line(
            &mut out,
            format_args!(
                "rollouts_guardrails_measurements_in_flight {}",
                self.in_flight()
            ),
        );
        family(
            &mut out,
            "rollouts_guardrails_build_info",
            "gauge",
            "The running build; the value is always 1.",
        );
        line(
            &mut out,
            format_args!(
                "rollouts_guardrails_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        );
        out
    }

    fn render_measurements(&self, out: &mut String) {
        family(
            out,
            "rollouts_guardrails_measurements_total",
            "counter",
            "Measurements taken, by guardrail and phase.",
        );
        for g in 0..GUARDRAILS {
            let guardrail = guardrail_label(g);
            for (p, phase) in PHASES.iter().enumerate() {
                line(
                    out,
                    format_args!(
                        "rollouts_guardrails_measurements_total{{guardrail=\"{guardrail}\",phase=\"{}\"}} {}",
                        phase.as_str(),
                        self.measurements[g][p].load(Ordering::Relaxed)
                    ),
                );
            }
        }
    }

    fn render_failures(&self, out: &mut String) {
        family(
            out,
            "rollouts_guardrails_measurement_failures_total",
            "counter",
            "Measurements that failed (Failed, or the Inconclusive or Error an unprovenPhase maps), by failure class.",
        );
        for (c, class) in CLASSES.iter().enumerate() {
            line(
                out,
                format_args!(
                    "rollouts_guardrails_measurement_failures_total{{class=\"{}\"}} {}",
                    class.name(),
                    self.failures[c].load(Ordering::Relaxed)
                ),
            );
        }
    }

    fn render_query_latency(&self, out: &mut String) {
        let name = "rollouts_guardrails_prometheus_query_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Latency of each Prometheus instant query, by outcome (ok, error, cancelled).",
        );
        for outcome in QueryOutcome::ALL {
            let histogram = &self.query_latency[outcome_index(outcome)];
            let label = outcome.name();
            let mut cumulative = 0u64;
            let bounds = QUERY_LATENCY_BUCKETS.iter().map(|b| b.to_string());
            for (i, bound) in bounds.chain(["+Inf".to_string()]).enumerate() {
                cumulative += histogram.buckets[i].load(Ordering::Relaxed);
                line(
                    out,
                    format_args!(
                        "{name}_bucket{{outcome=\"{label}\",le=\"{bound}\"}} {cumulative}"
                    ),
                );
            }
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            line(out, format_args!("{name}_sum{{outcome=\"{label}\"}} {sum}"));
            line(
                out,
                format_args!(
                    "{name}_count{{outcome=\"{label}\"}} {}",
                    histogram.count.load(Ordering::Relaxed)
                ),
            );
        }
    }
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    line(out, format_args!("# HELP {name} {help}"));
    line(out, format_args!("# TYPE {name} {kind}"));
}

/// One line of the exposition (writing to a String cannot fail).
fn line(out: &mut String, text: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(text);
    out.push('\n');
}

/// The engine reports into the telemetry it is handed ([`crate::engine::Engine::observed_by`]).
impl Observer for Telemetry {
    fn in_flight(&self, change: i64) {
        self.in_flight.fetch_add(change, Ordering::Relaxed);
    }

    fn measurement_finished(
        &self,
        guardrail: Option<GuardrailKind>,
        phase: Phase,
        failure: Option<FailureClass>,
    ) {
        self.record_measurement(guardrail, phase, failure);
    }

    fn query_finished(&self, elapsed: Duration, outcome: QueryOutcome) {
        self.query_latency[outcome_index(outcome)].observe(elapsed);
    }
}

/// The `/metrics` address from [`METRICS_LISTEN_ENV`], when set and not blank.
pub fn metrics_listen_from_env() -> Result<Option<SocketAddr>, TelemetryError> {
    match std::env::var(METRICS_LISTEN_ENV) {
        Ok(raw) if !raw.trim().is_empty() => {
            raw.trim()
                .parse()
                .map(Some)
                .map_err(|source| TelemetryError::Address {
                    address: raw.trim().to_string(),
                    source_name: METRICS_LISTEN_ENV,
                    source,
                })
        }
        _ => Ok(None),
    }
}

/// Binds `addr` and serves [`global`]'s metrics at `/metrics` until `shutdown` completes.
pub async fn serve_metrics(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind {
            address: addr,
            source,
        })?;
    serve_metrics_on(listener, shutdown).await;
    Ok(())
}

/// Serves [`global`]'s metrics on an already bound listener until `shutdown` completes, then gives open
/// connections [`METRICS_DRAIN`] to finish.
pub async fn serve_metrics_on(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let local = listener.local_addr().ok();
    tracing::info!(address = ?local, "serving {METRICS_PATH}");
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_METRICS_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Accept errors (EMFILE, a reset before accept) are transient: back off, keep serving.
                    tracing::warn!(%error, "/metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service_fn(answer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "/metrics connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(METRICS_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("/metrics connections still open after {METRICS_DRAIN:?}; closing them");
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(respond(request.method(), request.uri().path()))
}

/// The response to `method path`: the exposition for `GET|HEAD /metrics`, 405 or 404 otherwise.
fn respond(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if path != METRICS_PATH {
        *response.status_mut() = StatusCode::NOT_FOUND;
        *response.body_mut() = Full::new(Bytes::from_static(b"not found: try /metrics\n"));
        return response;
    }
    if method != Method::GET && method != Method::HEAD {
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    if method == Method::GET {
        *response.body_mut() = Full::new(Bytes::from(global().render()));
    }
    response
}

#[cfg(test)]
mod tests;
