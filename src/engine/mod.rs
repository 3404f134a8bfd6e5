//! The guardrail engine: one async function from (analysis context, metric) to [`Measurement`], shared by
//! plugin mode, the gRPC service and the CLI.
//!
//! # Layout
//! In the order a measurement flows:
//! - [`context`]: what the engine is asked (the AnalysisRun's context and the metric).
//! - [`config`]: the one parser: plugin configuration and conditions into a typed [`config::Config`].
//! - [`guardrails`]: one module per guardrail behind one enum: its keys, defaults, queries, judge, messages.
//! - [`target`]: the target from the configuration and the AnalysisRun.
//! - [`promql`]: validated targets and selectors, the only door into a query.
//! - [`traffic`]: request metrics (presets, queries, the traffic proof) for the request guardrails.
//! - [`pods`]: reading kube-state-metrics answers about the covered pods.
//! - [`verdict`]: fail-closed verdicts: `Successful` only through a proof of fresh, covering data.
//! - [`defaults`]: controller-wide defaults from the registration (`--matcher`, `--timeout`, …).
//! - [`trust`]: the trust boundary: controller-side settings, which address, credentials, files and
//!   namespaces a template may use.
//! - [`settle`]: how long absence-so-far (no series yet, a pod not Ready yet) is waited for, and how often.
//! - [`phase`]: `unprovenPhase`, the phase an unproven failure class reports instead of `Failed`.
//! - [`measure`]: the [`Engine`]: parse → target → plan → ask (one deadline) → judge → measurement.
//! - [`measurement`]: what the engine hands back (phase, value, message, metadata, times).
//! - [`observer`]: what a measurement reports while it runs, to whoever is handed in (telemetry).
//! - [`condition`], [`duration`], [`image`]: Argo's expr-lang conditions, `5m`-style durations, image
//!   references.
pub mod condition;
pub mod config;
pub mod context;
pub mod defaults;
pub mod duration;
pub mod guardrails;
pub mod image;
pub mod measure;
pub mod measurement;
pub mod observer;
pub mod phase;
pub mod pods;
pub mod promql;
pub mod settle;
pub mod target;
pub mod traffic;
pub mod trust;
pub mod verdict;

pub use context::{AnalysisContext, MetricSpec, OwnerReference, PLUGIN_NAME};
pub use guardrails::GuardrailKind;
pub use measure::Engine;
pub use measurement::{Measurement, Phase};
