//! The guardrail engine: one async function from (analysis context, metric) to [`Measurement`], shared by
//! plugin mode, the gRPC service and the CLI.
//!
//! # Layout
//! - [`context`]: what the engine is asked (the AnalysisRun's context and the metric).
//! - [`config`]: the plugin configuration, parsed strictly, with profile defaults.
//! - [`duration`]: `5m`-style durations.
//! - [`promql`]: validated targets and the PromQL built from them (the only door into a query).
//! - [`image`]: judging image references (`latest`, untagged, digest-pinned).
//! - [`measurement`]: what the engine hands back (phase, value, message, metadata, times).
pub mod config;
pub mod context;
pub mod duration;
pub mod image;
pub mod measurement;
pub mod promql;

pub use context::{AnalysisContext, MetricSpec, OwnerReference, PLUGIN_NAME};
pub use measurement::{Measurement, Phase};
