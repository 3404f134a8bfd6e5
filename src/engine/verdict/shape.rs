//! What an answer must look like: its result type, and an instant that is the one asked about.
use super::*;

/// Proves that an answer is about the instant asked for: Prometheus stamps every instant-query sample with the
/// evaluation time, so a sample older than `staleness` before `at` is a cached or replayed answer (a caching
/// proxy, a lagging replica) that proves nothing about `at`.
pub fn answered_at(data: &QueryData, at: SystemTime, staleness: Duration) -> Result<(), Failure> {
    let now = unix_seconds(at);
    let timestamps: Vec<f64> = match data {
        QueryData::Vector(samples) => samples.iter().map(|s| s.timestamp).collect(),
        QueryData::Scalar(sample) => vec![sample.timestamp],
        QueryData::Matrix(_) | QueryData::String(_) => Vec::new(),
    };
    // A NaN age (no valid timestamp) fails too.
    match timestamps
        .iter()
        .map(|t| now - t)
        .find(|age| age.is_nan() || *age > staleness.as_secs_f64())
    {
        None => Ok(()),
        Some(age) if age.is_finite() => Err(Failure::new(
            FailureClass::Stale,
            format!(
                "the query's answer is stamped {} before the evaluation instant, older than staleness {} (a cached or delayed answer proves nothing)",
                duration::format(Duration::from_secs_f64(age.min(1e12))),
                duration::format(staleness)
            ),
        )),
        Some(_) => Err(Failure::new(
            FailureClass::QueryError,
            "the query's answer carries no valid timestamp",
        )),
    }
}

pub(super) fn unexpected(kind: &str) -> Failure {
    Failure::new(
        FailureClass::QueryError,
        format!("the query returned a {kind}; expected an instant vector or a scalar"),
    )
}

/// The samples of an instant-vector answer, or a failure naming the query.
pub fn vector<'a>(data: &'a QueryData, query: &str) -> Result<&'a [Sample], Failure> {
    match data {
        QueryData::Vector(samples) => Ok(samples),
        other => Err(Failure::new(
            FailureClass::QueryError,
            format!(
                "{query} query returned a {}; expected an instant vector",
                kind_name(other)
            ),
        )),
    }
}

/// `vector`, `scalar`, `matrix` or `string`: what an answer is, for messages.
pub fn kind_name(data: &QueryData) -> &'static str {
    match data {
        QueryData::Vector(_) => "vector",
        QueryData::Scalar(_) => "scalar",
        QueryData::Matrix(_) => "matrix",
        QueryData::String(_) => "string",
    }
}
