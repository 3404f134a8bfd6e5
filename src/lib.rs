//! rollouts-guardrails: fail-closed reliability guardrails for Argo Rollouts.
//!
//! A guardrail (`restarts`, `not-ready`, `latest-image`, `waiting-reasons`, `oom-killed`, `error-rate`,
//! `latency`, `alerts`, `regression`, `gitops`, `query` or `replicas`: [`engine::GuardrailKind::ALL`]) becomes PromQL,
//! Prometheus answers, and the engine turns the answer into a [`engine::Measurement`]. A measurement is `Successful` only when every query
//! returned fresh data covering the target and the threshold or condition held; everything else is `Failed`
//! with the reason.
//!
//! # Layout
//! In the order data flows when the Argo Rollouts controller calls us:
//! - [`codec`]: Go's `encoding/gob`, as pure functions over bytes (no knowledge of Argo).
//! - [`transport`]: the go-plugin process contract (handshake, unix socket), the yamux multiplexer, the
//!   MuxBroker and Go net/rpc framing over gob.
//! - [`service`]: the Argo metric-provider contract (`Plugin.Run`, …) and the gRPC `MetricProvider`
//!   service, mapped onto the engine.
//! - [`plugin_mode`]: the transport wired to the `Plugin` service (above both).
//! - [`engine`]: the one parser, one module per guardrail, PromQL, verdicts: one async function from
//!   (analysis context, metric) to measurement, shared by every face.
//! - [`prometheus`]: the HTTP API client and its response model.
//! - [`stats`]: the Mann-Whitney U test and medians over per-step samples (pure arithmetic).
//! - [`manifest`]: Kubernetes manifests and Argo's AnalysisTemplates read once, for `check` and `validate`.
//! - [`validate`]: the GitOps pre-merge gate (CRD schemas, references, policies, immutable fields).
//! - [`failure`]: why a measurement failed, one closed set shared by the client, the engine and telemetry.
//! - [`cli`]: the `check` and `validate` commands, for CI, laptops and incident reviews.
//! - [`logging`]: hclog-compatible JSON lines on stderr.
//! - [`telemetry`]: the guardrails' own metrics and the `/metrics` endpoint, handed to the engine as its observer.
#![forbid(unsafe_code)]

pub mod cli;
pub mod codec;
pub mod engine;
pub mod failure;
pub mod logging;
pub mod manifest;
pub mod plugin_mode;
pub mod prometheus;
pub mod service;
pub mod stats;
pub mod telemetry;
pub mod transport;
pub mod validate;
