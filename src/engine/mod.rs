//! The guardrail engine: one async function from (analysis context, metric) to [`Measurement`], shared by
//! plugin mode, the gRPC service and the CLI.
//!
//! # Layout
//! - [`context`]: what the engine is asked (the AnalysisRun's context and the metric).
//! - [`config`]: the plugin configuration, parsed strictly, with profile defaults.
//! - [`duration`]: `5m`-style durations.
//! - [`promql`]: validated targets and the PromQL built from them (the only door into a query).
//! - [`condition`]: Argo's expr-lang success/failure conditions.
//! - [`guardrail`]: the queries of each guardrail and how each judges the answers.
//! - [`traffic`]: `error-rate` and `latency`: request-metric presets, their PromQL and judges.
//! - [`regression`]: `regression`: canary versus stable for one signal, each side proven on its own.
//! - [`alerts`]: `alerts`: firing `ALERTS` in the target's namespace, judged against live rule evaluation.
//! - [`gitops`]: `gitops`: the Argo CD Application or Flux object deploying the target is healthy.
//! - [`image`]: judging image references (`latest`, untagged, digest-pinned).
//! - [`verdict`]: fail-closed verdicts: `Successful` only through a proof of fresh, covering data.
//! - [`trust`]: the trust boundary: controller-side settings, which address, credentials, files and
//!   namespaces a template may use.
//! - [`settle`]: how long absence-so-far (no series yet, a pod not Ready yet) is waited for, and how often.
//! - [`phase`]: `unprovenPhase`, the phase an unproven failure class reports instead of `Failed`.
//! - [`measure`]: the [`Engine`]: config → target → queries (one timeout) → verdict → measurement.
//! - [`measurement`]: what the engine hands back (phase, value, message, metadata, times).
pub mod alerts;
pub mod condition;
pub mod config;
pub mod context;
pub mod duration;
pub mod gitops;
pub mod guardrail;
pub mod image;
pub mod measure;
pub mod measurement;
pub mod phase;
pub mod promql;
pub mod regression;
pub mod settle;
pub mod traffic;
pub mod trust;
pub mod verdict;

pub use context::{AnalysisContext, MetricSpec, OwnerReference, PLUGIN_NAME};
pub use measure::Engine;
pub use measurement::{Measurement, Phase};
