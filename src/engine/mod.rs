//! The guardrail engine: one async function from (analysis context, metric) to [`Measurement`], shared by
//! plugin mode, the gRPC service and the CLI.
//!
//! # Layout
//! - [`measurement`]: what the engine hands back (phase, value, message, metadata, times).
//! - [`context`]: what the engine is asked (the AnalysisRun's context and the metric).
pub mod context;
pub mod measurement;

pub use context::{AnalysisContext, MetricSpec, OwnerReference};
pub use measurement::{Measurement, Phase};
