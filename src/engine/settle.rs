//! Settling: how long an *unproven* verdict that is absence-so-far (no series yet, not enough requests yet, a
//! pod not Ready yet) is waited for before it is answered, and how often it is looked at again meanwhile.
//!
//! A judge says what it would wait for with an [`Awaiting`] on its [`Failure`](super::verdict::Failure);
//! [`Timeline`] turns that into `Running` with a `resumeAt` (the controller calls `Resume`, as it does for
//! Argo's own Job provider) or, once `settle` has passed since the measurement's `startedAt`, into the final
//! answer "… after waiting 2m for …". Stale data, query errors, timeouts, configuration errors and proven
//! violations carry no `Awaiting` and are answered at once.
use std::time::{Duration, SystemTime};

use super::duration;

/// The default `settle`: long enough for two 30 s scrapes of kube-state-metrics plus a rate's second sample.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(120);

/// The longest `settle` a metric may ask for (a guard against `settle: 2h` typos holding a rollout).
pub const MAX_SETTLE: Duration = Duration::from_secs(30 * 60);

/// The longest poll interval while settling: new scrapes land every 5–60 s, so 10 s sees each soon.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest poll interval (a tiny `settle` in tests must not make the controller spin).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The environment variable carrying the controller-wide default `settle` (`GUARDRAILS_SETTLE=3m`).
pub const SETTLE_ENV: &str = "GUARDRAILS_SETTLE";

/// The controller-wide default `settle`: `GUARDRAILS_SETTLE` when valid (an invalid value is logged and the
/// built-in default used: the plugin never exits on bad input), else [`DEFAULT_SETTLE`].
pub fn default_from_env() -> Duration {
    match from_env() {
        Ok(settle) => settle.unwrap_or(DEFAULT_SETTLE),
        Err(reason) => {
            tracing::warn!("ignoring {SETTLE_ENV}: {reason}; using the default settle");
            DEFAULT_SETTLE
        }
    }
}

/// The controller-wide default `settle` from `GUARDRAILS_SETTLE` (`None` when unset or empty).
pub fn from_env() -> Result<Option<Duration>, String> {
    match std::env::var(SETTLE_ENV) {
        Ok(value) if !value.trim().is_empty() => parse(value.trim()).map(Some),
        _ => Ok(None),
    }
}

/// A `settle` duration as the registration's `--settle`, `check --settle` and `GUARDRAILS_SETTLE` take it:
/// `0s` to `30m`. The one parser of a controller-side settle (a template's `settle` key is the configuration's).
pub fn parse(text: &str) -> Result<Duration, String> {
    let settle = duration::parse(text).map_err(|e| e.to_string())?;
    if settle > MAX_SETTLE {
        return Err(format!(
            "settle {text} is longer than {}",
            duration::format(MAX_SETTLE)
        ));
    }
    Ok(settle)
}

/// What an unproven verdict waits for: an absence that is normal while a canary starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Awaiting {
    /// No (or too few) fresh kube-state-metrics series for the target pods yet.
    PodSeries,
    /// No request series for the target yet.
    RequestSeries,
    /// Fewer than `minRequests` requests while the canary is younger than the window.
    Requests,
    /// Target pods not Ready yet but younger than `settle`.
    Readiness,
}

impl Awaiting {
    /// Completes "waiting for …" and "after waiting 2m for …".
    pub fn describe(self) -> &'static str {
        match self {
            Awaiting::PodSeries => "kube-state-metrics to report the pods",
            Awaiting::RequestSeries => "request series for the canary",
            Awaiting::Requests => "enough requests to the canary",
            Awaiting::Readiness => "the pods to become Ready",
        }
    }

    /// The metadata value (`waitingFor`) of a `Running` measurement.
    pub fn name(self) -> &'static str {
        match self {
            Awaiting::PodSeries => "pod-series",
            Awaiting::RequestSeries => "request-series",
            Awaiting::Requests => "requests",
            Awaiting::Readiness => "readiness",
        }
    }
}

/// The poll interval for a `settle`: `min(10s, settle / 6)`, at least 200 ms, so a measurement is looked at
/// about six times or every 10 s, whichever is more often.
pub fn poll_interval(settle: Duration) -> Duration {
    (settle / 6).clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)
}

/// Where a measurement stands on its own timeline: when it started and how long it may settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The measurement's own `startedAt` (kept across `Resume`).
    pub started_at: SystemTime,
    /// How long absence may be waited for; zero answers at once.
    pub settle: Duration,
}

/// What to do with an unproven verdict that carries an [`Awaiting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settling {
    /// Still inside `settle`: answer `Running`, look again at `resume_at` (never past the deadline).
    Wait { resume_at: SystemTime },
    /// `settle` is over (or zero): answer now; `waited` is what the message says was waited.
    Expired { waited: Duration },
}

impl Timeline {
    /// `startedAt + settle`: the latest moment an unproven measurement may still be `Running`.
    pub fn deadline(&self) -> SystemTime {
        self.started_at + self.settle
    }

    /// Whether to wait again, judged at `now`.
    pub fn settle(&self, now: SystemTime) -> Settling {
        let deadline = self.deadline();
        if self.settle.is_zero() || now >= deadline {
            return Settling::Expired {
                waited: self.settle,
            };
        }
        let next = now + poll_interval(self.settle);
        Settling::Wait {
            resume_at: next.min(deadline),
        }
    }
}

/// "… after waiting 2m for kube-state-metrics to report the pods".
pub fn expired_message(message: &str, waited: Duration, awaiting: Awaiting) -> String {
    if waited.is_zero() {
        return message.to_string();
    }
    format!(
        "{message} after waiting {} for {}",
        duration::format(waited),
        awaiting.describe()
    )
}

/// "waiting for kube-state-metrics to report the pods (up to 2m, 40s so far): …".
pub fn waiting_message(
    message: &str,
    timeline: &Timeline,
    now: SystemTime,
    awaiting: Awaiting,
) -> String {
    let so_far = now.duration_since(timeline.started_at).unwrap_or_default();
    format!(
        "waiting for {} (up to {}, {} so far): {message}",
        awaiting.describe(),
        duration::format(timeline.settle),
        duration::format(Duration::from_secs(so_far.as_secs())),
    )
}

/// The message of a settling measurement the controller terminated (rollout aborted, promoted or replaced)
/// before it was proven: it becomes `Failed`, because a `Running` measurement with `FinishedAt` would stay
/// in flight for the controller forever, and nothing was proven.
pub fn terminated_message(message: &str) -> String {
    format!("terminated by the controller before the measurement was proven: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_268_800 + s)
    }

    #[test]
    fn the_poll_interval_is_a_sixth_of_settle_within_bounds() {
        assert_eq!(
            poll_interval(Duration::from_secs(120)),
            Duration::from_secs(10)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(3)),
            Duration::from_millis(500)
        );
        assert_eq!(poll_interval(Duration::from_millis(300)), MIN_POLL_INTERVAL);
    }

    #[test]
    fn waiting_never_resumes_past_the_deadline() {
        let timeline = Timeline {
            started_at: t(0),
            settle: Duration::from_secs(120),
        };
        assert_eq!(timeline.settle(t(0)), Settling::Wait { resume_at: t(10) });
        assert_eq!(
            timeline.settle(t(115)),
            Settling::Wait { resume_at: t(120) }
        );
        assert_eq!(
            timeline.settle(t(120)),
            Settling::Expired {
                waited: Duration::from_secs(120)
            }
        );
    }

    #[test]
    fn zero_settle_answers_at_once_without_the_waiting_suffix() {
        let timeline = Timeline {
            started_at: t(0),
            settle: Duration::ZERO,
        };
        let Settling::Expired { waited } = timeline.settle(t(0)) else {
            panic!("zero settle must not wait");
        };
        assert_eq!(
            expired_message("no series", waited, Awaiting::PodSeries),
            "no series"
        );
        assert_eq!(
            expired_message("no series", Duration::from_secs(120), Awaiting::PodSeries),
            "no series after waiting 2m for kube-state-metrics to report the pods"
        );
    }
}
