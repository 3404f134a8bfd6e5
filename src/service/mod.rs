//! The Argo Rollouts metric-provider contract, mapped onto the engine.
//!
//! # Layout
//! - [`Provider`]: the seam the engine plugs into (one async measurement per call, plus metadata).
//! - [`plugin`]: the net/rpc `Plugin` service Argo's controller calls (`Run`, `Resume`, …), mapping gob
//!   values to [`AnalysisContext`]/[`MetricSpec`] and [`Measurement`] back to gob.
//! - [`grpc`]: the same contract as our own protobuf API (`rollouts_guardrails.v1.MetricProvider`), served by
//!   `rollouts-guardrails serve`.
pub mod grpc;
pub mod plugin;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::engine::{AnalysisContext, Engine, Measurement, MetricSpec};

/// What plugin mode needs from the engine. Object-safe so the transport can hold an `Arc<dyn Provider>`.
pub trait Provider: Send + Sync + 'static {
    /// Takes one measurement of `metric` for the AnalysisRun described by `ctx`.
    fn run<'a>(
        &'a self,
        ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>>;

    /// Measures a `Running` measurement again, on its own timeline: it began at `started_at`, so it settles
    /// until `started_at + settle`, however often it is resumed.
    fn resume<'a>(
        &'a self,
        ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
        started_at: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>>;

    /// Extra key/values Argo stores beside the metric's results (`GetMetadata`).
    fn metadata(&self, metric: &MetricSpec) -> BTreeMap<String, String>;
}

/// The guardrail engine is the production [`Provider`].
impl Provider for Engine {
    fn run<'a>(
        &'a self,
        ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>> {
        Box::pin(self.measure(ctx, metric))
    }

    fn resume<'a>(
        &'a self,
        ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
        started_at: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>> {
        Box::pin(Engine::resume(self, ctx, metric, started_at))
    }

    fn metadata(&self, metric: &MetricSpec) -> BTreeMap<String, String> {
        self.describe(metric)
    }
}
