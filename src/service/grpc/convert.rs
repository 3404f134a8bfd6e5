//! Pure mapping between the protobuf messages of `rollouts_guardrails.v1` and the engine's types: what a
//! request may leave unset becomes the engine's empty value; what breaks the schema (an unspecified or
//! unknown phase, a timestamp outside 0001-01-01..9999-12-31) is a [`MalformedRequest`].
use std::time::SystemTime;

use super::pb;
use crate::engine::{AnalysisContext, Measurement, MetricSpec, OwnerReference, Phase};

/// `0001-01-01T00:00:00Z`, the earliest instant `google.protobuf.Timestamp` allows.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// `9999-12-31T23:59:59Z`, the latest instant `google.protobuf.Timestamp` allows.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A request that decoded but breaks the schema's rules: answered with INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedRequest {
    /// A measurement's phase is `PHASE_UNSPECIFIED` or a number this schema does not define.
    #[error("{field}: phase {value} is not a phase (use PHASE_PENDING … PHASE_INCONCLUSIVE)")]
    Phase { field: &'static str, value: i32 },
    /// A timestamp outside the range `google.protobuf.Timestamp` allows, or with nanos outside 0..1e9.
    #[error("{field}: timestamp {seconds}s {nanos}ns is outside 0001-01-01..9999-12-31")]
    Timestamp {
        field: &'static str,
        seconds: i64,
        nanos: i32,
    },
}

/// The AnalysisRun context; unset is an empty context (the plugin configuration must then name the target).
pub fn analysis_context(context: Option<pb::AnalysisContext>) -> AnalysisContext {
    let Some(context) = context else {
        return AnalysisContext::default();
    };
    AnalysisContext {
        namespace: context.namespace,
        name: context.name,
        uid: context.uid,
        labels: context.labels,
        owner_references: context
            .owner_references
            .into_iter()
            .map(|owner| OwnerReference {
                api_version: owner.api_version,
                kind: owner.kind,
                name: owner.name,
                uid: owner.uid,
                controller: owner.controller,
            })
            .collect(),
        args: context.args,
        proven_metrics: context.proven_metrics.into_iter().collect(),
    }
}

/// The metric, as plugin mode maps `v1alpha1.Metric`.
pub fn metric_spec(metric: pb::Metric) -> MetricSpec {
    MetricSpec {
        name: metric.name,
        plugin_config: metric.plugin_config_json.map(String::into_bytes),
        success_condition: metric.success_condition,
        failure_condition: metric.failure_condition,
    }
}

/// The engine's measurement on the wire.
pub fn measurement_message(measurement: &Measurement) -> pb::Measurement {
    pb::Measurement {
        phase: phase_message(measurement.phase) as i32,
        message: measurement.message.clone(),
        value: measurement.value.clone(),
        metadata: measurement.metadata.clone(),
        started_at: measurement.started_at.map(prost_types::Timestamp::from),
        finished_at: measurement.finished_at.map(prost_types::Timestamp::from),
        resume_at: measurement.resume_at.map(prost_types::Timestamp::from),
    }
}

/// A measurement sent to Resume or Terminate, validated.
pub fn measurement(message: pb::Measurement) -> Result<Measurement, MalformedRequest> {
    let phase = pb::Phase::try_from(message.phase)
        .ok()
        .and_then(phase)
        .ok_or(MalformedRequest::Phase {
            field: "measurement.phase",
            value: message.phase,
        })?;
    Ok(Measurement {
        phase,
        message: message.message,
        value: message.value,
        metadata: message.metadata,
        started_at: optional_time("measurement.started_at", message.started_at)?,
        finished_at: optional_time("measurement.finished_at", message.finished_at)?,
        resume_at: optional_time("measurement.resume_at", message.resume_at)?,
    })
}

/// A timestamp field; unset stays `None`.
pub fn optional_time(
    field: &'static str,
    timestamp: Option<prost_types::Timestamp>,
) -> Result<Option<SystemTime>, MalformedRequest> {
    let Some(timestamp) = timestamp else {
        return Ok(None);
    };
    let malformed = MalformedRequest::Timestamp {
        field,
        seconds: timestamp.seconds,
        nanos: timestamp.nanos,
    };
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds)
        || !(0..1_000_000_000).contains(&timestamp.nanos)
    {
        return Err(malformed);
    }
    SystemTime::try_from(timestamp)
        .map(Some)
        .map_err(|_| malformed)
}

fn phase_message(phase: Phase) -> pb::Phase {
    match phase {
        Phase::Pending => pb::Phase::Pending,
        Phase::Running => pb::Phase::Running,
        Phase::Successful => pb::Phase::Successful,
        Phase::Failed => pb::Phase::Failed,
        Phase::Error => pb::Phase::Error,
        Phase::Inconclusive => pb::Phase::Inconclusive,
    }
}

fn phase(message: pb::Phase) -> Option<Phase> {
    Some(match message {
        pb::Phase::Unspecified => return None,
        pb::Phase::Pending => Phase::Pending,
        pb::Phase::Running => Phase::Running,
        pb::Phase::Successful => Phase::Successful,
        pb::Phase::Failed => Phase::Failed,
        pb::Phase::Error => Phase::Error,
        pb::Phase::Inconclusive => Phase::Inconclusive,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn every_phase_round_trips_and_unspecified_or_unknown_is_malformed() {
        for phase in Phase::ALL {
            let m = Measurement {
                phase,
                message: "m".into(),
                value: "1".into(),
                metadata: BTreeMap::from([("k".into(), "v".into())]),
                started_at: Some(UNIX_EPOCH + Duration::new(1_767_268_800, 5)),
                finished_at: None,
                resume_at: Some(UNIX_EPOCH + Duration::from_secs(1)),
            };
            assert_eq!(measurement(measurement_message(&m)), Ok(m));
        }
        for bad in [0, 7, -1] {
            let message = pb::Measurement {
                phase: bad,
                ..Default::default()
            };
            assert_eq!(
                measurement(message),
                Err(MalformedRequest::Phase {
                    field: "measurement.phase",
                    value: bad
                })
            );
        }
    }

    #[test]
    fn timestamps_outside_the_protobuf_range_are_malformed() {
        let ts = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
        assert_eq!(optional_time("t", None), Ok(None));
        assert_eq!(
            optional_time("t", ts(MIN_TIMESTAMP_SECONDS, 999_999_999)),
            Ok(Some(
                UNIX_EPOCH - Duration::from_secs(MIN_TIMESTAMP_SECONDS.unsigned_abs())
                    + Duration::from_nanos(999_999_999)
            ))
        );
        for (seconds, nanos) in [
            (MAX_TIMESTAMP_SECONDS + 1, 0),
            (MIN_TIMESTAMP_SECONDS - 1, 0),
            (i64::MAX, 0),
            (0, -1),
            (0, 1_000_000_000),
        ] {
            let error = optional_time("evaluation_time", ts(seconds, nanos)).unwrap_err();
            assert_eq!(
                error,
                MalformedRequest::Timestamp {
                    field: "evaluation_time",
                    seconds,
                    nanos
                }
            );
        }
    }

    #[test]
    fn the_context_and_metric_map_field_by_field() {
        let context = analysis_context(Some(pb::AnalysisContext {
            namespace: "shop".into(),
            name: "web-1".into(),
            uid: "u".into(),
            labels: BTreeMap::from([("rollouts-pod-template-hash".into(), "6c8d7f9a1".into())]),
            owner_references: vec![pb::OwnerReference {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: "Rollout".into(),
                name: "web".into(),
                uid: "r".into(),
                controller: true,
            }],
            args: BTreeMap::from([("a".into(), "b".into())]),
            proven_metrics: vec!["earlier".into()],
        }));
        assert_eq!(context.namespace, "shop");
        assert_eq!(context.owner_references[0].name, "web");
        assert!(context.owner_references[0].controller);
        assert_eq!(context.args["a"], "b");
        assert!(context.proven_metrics.contains("earlier"));
        assert_eq!(analysis_context(None), AnalysisContext::default());
        let metric = metric_spec(pb::Metric {
            name: "guard".into(),
            plugin_config_json: Some(r#"{"guardrail":"restarts"}"#.into()),
            success_condition: "s".into(),
            failure_condition: "f".into(),
        });
        assert_eq!(
            metric.plugin_config.as_deref(),
            Some(br#"{"guardrail":"restarts"}"#.as_slice())
        );
        assert_eq!(
            metric_spec(pb::Metric::default()).plugin_config,
            None,
            "an unset configuration stays absent, not empty"
        );
    }
}
