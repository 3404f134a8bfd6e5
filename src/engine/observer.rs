//! What a measurement reports while it runs, to an [`Observer`] handed to the engine
//! ([`super::Engine::observed_by`]): the binary hands in its telemetry, tests may hand in their own, and by
//! default nobody listens. The engine knows nothing of what an observer does with it.
use std::time::{Duration, Instant};

use super::{GuardrailKind, Phase};
use crate::failure::FailureClass;

/// Told of measurements and queries as they happen. Every method has a no-op default.
pub trait Observer: Send + Sync {
    /// A measurement started (`+1`) or ended, finished or cancelled (`-1`).
    fn in_flight(&self, _change: i64) {}
    /// A measurement finished; `guardrail` is `None` when the configuration failed before naming one.
    fn measurement_finished(
        &self,
        _guardrail: Option<GuardrailKind>,
        _phase: Phase,
        _failure: Option<FailureClass>,
    ) {
    }
    /// One Prometheus query ended after `elapsed`.
    fn query_finished(&self, _elapsed: Duration, _outcome: QueryOutcome) {}
}

/// Nobody listens.
pub struct Unobserved;

impl Observer for Unobserved {}

/// How one Prometheus query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// Prometheus answered with data.
    Ok,
    /// The query failed (transport, HTTP status, API error, undecodable answer).
    Error,
    /// The query was abandoned: the measurement timed out or the caller went away.
    Cancelled,
}

impl QueryOutcome {
    pub const ALL: [QueryOutcome; 3] = [
        QueryOutcome::Ok,
        QueryOutcome::Error,
        QueryOutcome::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QueryOutcome::Ok => "ok",
            QueryOutcome::Error => "error",
            QueryOutcome::Cancelled => "cancelled",
        }
    }
}

/// Keeps a measurement in flight while alive (finished or cancelled alike end it).
#[must_use = "the measurement counts as in flight only while the guard lives"]
pub struct InFlight {
    observer: &'static dyn Observer,
}

impl InFlight {
    pub fn new(observer: &'static dyn Observer) -> InFlight {
        observer.in_flight(1);
        InFlight { observer }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.observer.in_flight(-1);
    }
}

/// Times one Prometheus query; dropped unfinished (the query future was abandoned), it reports
/// [`QueryOutcome::Cancelled`].
#[must_use = "a timer reports when finished or dropped"]
pub struct QueryTimer {
    observer: &'static dyn Observer,
    started: Instant,
    finished: bool,
}

impl QueryTimer {
    pub fn start(observer: &'static dyn Observer) -> QueryTimer {
        QueryTimer {
            observer,
            started: Instant::now(),
            finished: false,
        }
    }

    pub fn finish(mut self, outcome: QueryOutcome) {
        self.report(outcome);
    }

    fn report(&mut self, outcome: QueryOutcome) {
        if !self.finished {
            self.finished = true;
            self.observer
                .query_finished(self.started.elapsed(), outcome);
        }
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        self.report(QueryOutcome::Cancelled);
    }
}
