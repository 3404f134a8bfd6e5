//! [`GuardrailsProvider`]: the `MetricProvider` RPCs over the [`Engine`], with plugin mode's semantics: a
//! request the engine cannot use is a `Failed` measurement with the reason; only a schema violation is
//! INVALID_ARGUMENT. `Run` honours the caller's deadline and waits for one of a bounded number of
//! measurement slots.
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::convert::{self, MalformedRequest};
use super::deadline::request_deadline;
use super::pb;
use super::pb::metric_provider_server::MetricProvider;
use crate::engine::{settle, Engine, Measurement, Phase, PLUGIN_NAME};

/// How long before the caller's deadline `Run` gives up, so that its DEADLINE_EXCEEDED (saying why) reaches the
/// caller before the caller's own deadline fires (and beats tonic's timeout layer, which would answer a bare
/// CANCELLED at the deadline itself): a tenth of the deadline, at least 50 ms (a loaded machine's reply path)
/// and at most 1 s.
pub fn deadline_reply_margin(deadline: Duration) -> Duration {
    (deadline / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// The `MetricProvider` service.
#[derive(Clone)]
pub struct GuardrailsProvider {
    engine: Engine,
    /// One permit per measurement allowed to run at once; `Run` waits (within its deadline) for a permit.
    measurements: Arc<Semaphore>,
}

impl GuardrailsProvider {
    /// A provider running at most `max_concurrent_measurements` measurements at once (at least one).
    pub fn new(engine: Engine, max_concurrent_measurements: usize) -> GuardrailsProvider {
        GuardrailsProvider {
            engine,
            measurements: Arc::new(Semaphore::new(max_concurrent_measurements.max(1))),
        }
    }

    async fn measure(&self, request: pb::RunRequest) -> Result<Measurement, Status> {
        let evaluation_time = convert::optional_time("evaluation_time", request.evaluation_time)
            .map_err(invalid_argument)?;
        let Some(metric) = request.metric else {
            tracing::warn!("gRPC Run without a metric");
            return Ok(Measurement::failed(
                "cannot read the Run arguments: no metric",
            ));
        };
        let context = convert::analysis_context(request.analysis);
        let metric = convert::metric_spec(metric);
        let work = self.engine.measure_at(&context, &metric, evaluation_time);
        self.guarded(&metric.name, None, work).await
    }

    /// One measurement under the server's bound on concurrent measurements; a panic becomes a Failed
    /// measurement (timed from `started_at` when given), never a dropped connection.
    async fn guarded(
        &self,
        metric: &str,
        started_at: Option<SystemTime>,
        work: impl std::future::Future<Output = Measurement>,
    ) -> Result<Measurement, Status> {
        let _permit = self
            .measurements
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        Ok(match AssertUnwindSafe(work).catch_unwind().await {
            Ok(measurement) => measurement,
            Err(_) => {
                tracing::error!(metric = %metric, "the measurement panicked");
                let mut failed = Measurement::failed("internal error: the measurement panicked");
                if started_at.is_some() {
                    failed.started_at = started_at;
                    failed.finished_at = Some(SystemTime::now());
                }
                failed
            }
        })
    }
}

#[tonic::async_trait]
impl MetricProvider for GuardrailsProvider {
    async fn init_plugin(
        &self,
        _request: Request<pb::InitPluginRequest>,
    ) -> Result<Response<pb::InitPluginResponse>, Status> {
        Ok(Response::new(pb::InitPluginResponse {}))
    }

    async fn run(
        &self,
        request: Request<pb::RunRequest>,
    ) -> Result<Response<pb::RunResponse>, Status> {
        let started = SystemTime::now();
        let deadline = request_deadline(request.metadata());
        let work = self.measure(request.into_inner());
        let mut measurement = match deadline {
            None => work.await?,
            Some(deadline) => {
                let budget = deadline.saturating_sub(deadline_reply_margin(deadline));
                tokio::time::timeout(budget, work).await.map_err(|_| {
                    Status::deadline_exceeded(format!(
                        "the measurement did not finish within the request deadline of {deadline:?}"
                    ))
                })??
            }
        };
        measurement.started_at.get_or_insert(started);
        // A Running measurement (settling) has no finish time yet; Resume finishes it.
        if measurement.phase != Phase::Running {
            measurement.finished_at.get_or_insert_with(SystemTime::now);
        }
        Ok(Response::new(pb::RunResponse {
            measurement: Some(convert::measurement_message(&measurement)),
        }))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        // As plugin mode: a Running measurement is measured again on its own `started_at`; any other is
        // returned as given.
        let request = request.into_inner();
        let running = match &request.measurement {
            Some(given) => {
                let given = convert::measurement(given.clone()).map_err(invalid_argument)?;
                (given.phase == Phase::Running && given.finished_at.is_none())
                    .then(|| given.started_at.unwrap_or_else(SystemTime::now))
            }
            None => None,
        };
        let Some(started_at) = running else {
            let measurement = given_measurement(request.measurement, false)?;
            return Ok(Response::new(pb::ResumeResponse {
                measurement: Some(measurement),
            }));
        };
        let Some(metric) = request.metric else {
            let mut failed = Measurement::failed("cannot read the Resume arguments: no metric");
            failed.started_at = Some(started_at);
            failed.finished_at = Some(SystemTime::now());
            return Ok(Response::new(pb::ResumeResponse {
                measurement: Some(convert::measurement_message(&failed)),
            }));
        };
        let context = convert::analysis_context(request.analysis);
        let metric = convert::metric_spec(metric);
        let work = self.engine.resume(&context, &metric, started_at);
        let measurement = self.guarded(&metric.name, Some(started_at), work).await?;
        Ok(Response::new(pb::ResumeResponse {
            measurement: Some(convert::measurement_message(&measurement)),
        }))
    }

    async fn terminate(
        &self,
        request: Request<pb::TerminateRequest>,
    ) -> Result<Response<pb::TerminateResponse>, Status> {
        let measurement = given_measurement(request.into_inner().measurement, true)?;
        Ok(Response::new(pb::TerminateResponse {
            measurement: Some(measurement),
        }))
    }

    async fn garbage_collect(
        &self,
        _request: Request<pb::GarbageCollectRequest>,
    ) -> Result<Response<pb::GarbageCollectResponse>, Status> {
        Ok(Response::new(pb::GarbageCollectResponse {}))
    }

    async fn r#type(
        &self,
        _request: Request<pb::TypeRequest>,
    ) -> Result<Response<pb::TypeResponse>, Status> {
        Ok(Response::new(pb::TypeResponse {
            r#type: PLUGIN_NAME.to_string(),
        }))
    }

    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let metadata = request
            .into_inner()
            .metric
            .map(|metric| self.engine.describe(&convert::metric_spec(metric)))
            .unwrap_or_default();
        Ok(Response::new(pb::GetMetadataResponse { metadata }))
    }
}

/// Resume and Terminate: the measurement given (validated), `finished_at` stamped for Terminate when unset;
/// a missing measurement is a `Failed` one saying so, as plugin mode answers.
fn given_measurement(
    given: Option<pb::Measurement>,
    finish: bool,
) -> Result<pb::Measurement, Status> {
    let mut measurement = match given {
        Some(given) => convert::measurement(given).map_err(invalid_argument)?,
        None => {
            let now = SystemTime::now();
            let mut m =
                Measurement::failed("cannot read the measurement arguments: no measurement");
            m.started_at = Some(now);
            m.finished_at = Some(now);
            m
        }
    };
    if finish && measurement.finished_at.is_none() {
        if measurement.phase == Phase::Running {
            // Terminated while settling: Failed, as in plugin mode (`settle::terminated_message`).
            measurement.phase = Phase::Failed;
            measurement.message = settle::terminated_message(&measurement.message);
            measurement.resume_at = None;
        }
        measurement.finished_at = Some(SystemTime::now());
    }
    Ok(convert::measurement_message(&measurement))
}

fn invalid_argument(error: MalformedRequest) -> Status {
    Status::invalid_argument(error.to_string())
}
