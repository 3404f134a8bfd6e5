//! Why a measurement failed, as one small closed set shared by the Prometheus client (which classifies its
//! own errors), the engine (every verdict) and telemetry (the `class` label): no mapping between copies.

/// Why a measurement failed, as a small closed set (used in messages, metadata and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// Prometheus answered, but not about the target.
    NoData,
    /// The target's pods are proven, but there is no request series or fewer than `minRequests` requests.
    NoTraffic,
    /// The target is reported by series from more than one source (cluster, store): never merged.
    Ambiguous,
    /// Data exists but is older than `staleness`.
    Stale,
    /// Prometheus could not be asked or its answer could not be trusted.
    QueryError,
    /// The measurement did not finish within `timeout`.
    Timeout,
    /// The metric's configuration is invalid or incomplete.
    Config,
    /// The guardrail saw the data and it violates the threshold or condition.
    Threshold,
}

impl FailureClass {
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::NoData => "no-data",
            FailureClass::NoTraffic => "no-traffic",
            FailureClass::Ambiguous => "ambiguous",
            FailureClass::Stale => "stale",
            FailureClass::QueryError => "query-error",
            FailureClass::Timeout => "timeout",
            FailureClass::Config => "config",
            FailureClass::Threshold => "threshold",
        }
    }
}
