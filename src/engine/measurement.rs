//! The measurement the engine returns: the same shape as Argo Rollouts' `v1alpha1.Measurement`.
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The phase of a measurement, spelled as Argo Rollouts' `AnalysisPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pending,
    Running,
    Successful,
    Failed,
    Error,
    Inconclusive,
}

impl Phase {
    /// Every phase, in argo-rollouts' order.
    pub const ALL: [Phase; 6] = [
        Phase::Pending,
        Phase::Running,
        Phase::Successful,
        Phase::Failed,
        Phase::Error,
        Phase::Inconclusive,
    ];

    /// The Go string value (`v1alpha1.AnalysisPhase`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Successful => "Successful",
            Phase::Failed => "Failed",
            Phase::Error => "Error",
            Phase::Inconclusive => "Inconclusive",
        }
    }

    /// Parses the Go string value; unknown strings are `None`.
    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "Pending" => Phase::Pending,
            "Running" => Phase::Running,
            "Successful" => Phase::Successful,
            "Failed" => Phase::Failed,
            "Error" => Phase::Error,
            "Inconclusive" => Phase::Inconclusive,
            _ => return None,
        })
    }
}

/// One measurement of one metric, as Argo Rollouts records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub phase: Phase,
    /// Why the phase is what it is; always set for `Failed`.
    pub message: String,
    /// The measured value as text (Argo shows it verbatim).
    pub value: String,
    /// Resolved queries, the redacted Prometheus address, offenders.
    pub metadata: BTreeMap<String, String>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Only set by asynchronous providers; this one never sets it, but it round-trips through Resume.
    pub resume_at: Option<SystemTime>,
}

impl Measurement {
    /// A `Failed` measurement with only a reason: for requests that never reached the engine (no metric, an
    /// undecodable argument). Times are the caller's to set.
    pub fn failed(message: impl Into<String>) -> Measurement {
        Measurement {
            phase: Phase::Failed,
            message: message.into(),
            value: String::new(),
            metadata: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            resume_at: None,
        }
    }
}
