//! The answer of `/api/v1/query` as pure functions over bytes: the strict response model ([`QueryData`]) and
//! the decoder that fails closed on anything that is not exactly Prometheus' shape.
//!
//! Spec: <https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview>.
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::QueryError;

/// The largest body the client reads (32 MiB): the amount of memory one answer can make us allocate. A
/// guardrail query returns a handful of series; an answer this large is a runaway query, not evidence.
pub const MAX_RESPONSE_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How many characters of a server-provided text go into an error message.
pub const MAX_DETAIL_CHARS: usize = 300;

/// The result of an instant query, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    Vector(Vec<Sample>),
    /// A scalar: its labels are empty.
    Scalar(Sample),
    Matrix(Vec<Series>),
    String(String),
}

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    /// Unix seconds (Prometheus' float timestamp).
    pub timestamp: f64,
    /// Parsed faithfully: `NaN`, `+Inf` and `-Inf` stay what they are; the engine decides what they prove.
    pub value: f64,
}

/// A series of a range-vector result: `(unix seconds, value)` pairs in Prometheus' order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(f64, f64)>,
}

/// The envelope, read first and without `data`, so an error answer is reported as such even when its `data`
/// has an unexpected shape.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    warnings: Option<Vec<String>>,
    /// Prometheus 3's informational notes: they do not make the data partial, so they are accepted.
    #[allow(dead_code)]
    infos: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct SuccessBody {
    data: Data,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<RawSample>),
    Scalar(RawPoint),
    Matrix(Vec<RawSeries>),
    String(RawPoint),
}

/// `[<unix seconds>, "<value>"]`
#[derive(Deserialize)]
struct RawPoint(f64, String);

#[derive(Deserialize)]
struct RawSample {
    metric: BTreeMap<String, String>,
    value: Option<RawPoint>,
    histogram: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawSeries {
    metric: BTreeMap<String, String>,
    values: Option<Vec<RawPoint>>,
    histograms: Option<IgnoredAny>,
}

/// Decodes the body of a 2xx answer. `Ok` only for `"status": "success"`, no warnings, and a `data` whose
/// `result` has exactly the shape its `resultType` names.
pub fn decode_query_response(body: &[u8]) -> Result<QueryData, QueryError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| json_error(body, e))?;
    match envelope.status.as_str() {
        "success" => {}
        "error" => {
            return Err(QueryError::Api {
                error_type: excerpt(
                    envelope
                        .error_type
                        .as_deref()
                        .unwrap_or("<missing errorType>"),
                ),
                error: excerpt(envelope.error.as_deref().unwrap_or("<missing error>")),
            })
        }
        other => return Err(malformed(format!("unknown status {:?}", excerpt(other)))),
    }
    if let Some(warnings) = envelope.warnings.filter(|w| !w.is_empty()) {
        return Err(QueryError::Warnings {
            warnings: warnings.iter().map(|w| excerpt(w)).collect(),
        });
    }
    // The first pass read the whole body as JSON, so whatever fails now is the shape of `data` (serde_json
    // reports an over-long `[ts, "v", x]` as a syntax error, hence no `json_error` here).
    let success: SuccessBody =
        serde_json::from_slice(body).map_err(|e| malformed(excerpt(&e.to_string())))?;
    match success.data {
        Data::Vector(samples) => samples
            .into_iter()
            .map(vector_sample)
            .collect::<Result<_, _>>()
            .map(QueryData::Vector),
        Data::Scalar(point) => Ok(QueryData::Scalar(Sample {
            labels: BTreeMap::new(),
            timestamp: point.0,
            value: parse_value(&point.1)?,
        })),
        Data::Matrix(series) => series
            .into_iter()
            .map(matrix_series)
            .collect::<Result<_, _>>()
            .map(QueryData::Matrix),
        Data::String(point) => Ok(QueryData::String(point.1)),
    }
}

/// What a non-2xx answer says: `"<errorType>: <error>"` when the body is Prometheus' JSON error, else a short
/// printable excerpt of the body.
pub fn http_error_detail(body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        if let Some(error) = envelope.error {
            return match envelope.error_type {
                Some(error_type) => excerpt(&format!("{error_type}: {error}")),
                None => excerpt(&error),
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = excerpt(text.trim());
    if text.is_empty() {
        "empty body".to_owned()
    } else {
        text
    }
}

/// Parses a sample value the way Go's `strconv.ParseFloat` reads Prometheus' output: decimal numbers,
/// `NaN`, `+Inf`, `-Inf`.
pub fn parse_value(text: &str) -> Result<f64, QueryError> {
    text.parse::<f64>()
        .map_err(|_| malformed(format!("sample value {:?} is not a number", excerpt(text))))
}

fn vector_sample(raw: RawSample) -> Result<Sample, QueryError> {
    match (raw.value, raw.histogram) {
        (Some(point), None) => Ok(Sample {
            labels: raw.metric,
            timestamp: point.0,
            value: parse_value(&point.1)?,
        }),
        (None, Some(_)) => Err(malformed(
            "native histogram samples are not supported".to_owned(),
        )),
        (Some(_), Some(_)) => Err(malformed(
            "a sample has both a value and a histogram".to_owned(),
        )),
        (None, None) => Err(malformed("a vector sample has no value".to_owned())),
    }
}

fn matrix_series(raw: RawSeries) -> Result<Series, QueryError> {
    if raw.histograms.is_some() {
        return Err(malformed(
            "native histogram samples are not supported".to_owned(),
        ));
    }
    let values = raw
        .values
        .ok_or_else(|| malformed("a matrix series has no values".to_owned()))?;
    let samples = values
        .into_iter()
        .map(|point| Ok((point.0, parse_value(&point.1)?)))
        .collect::<Result<_, QueryError>>()?;
    Ok(Series {
        labels: raw.metric,
        samples,
    })
}

fn json_error(body: &[u8], error: serde_json::Error) -> QueryError {
    use serde_json::error::Category;
    if body.iter().all(u8::is_ascii_whitespace) {
        return QueryError::NotJson {
            detail: "empty body".to_owned(),
        };
    }
    match error.classify() {
        Category::Eof => QueryError::Truncated,
        Category::Syntax | Category::Io => QueryError::NotJson {
            detail: format!(
                "{error}; body starts with {:?}",
                excerpt(&String::from_utf8_lossy(&body[..body.len().min(64)]))
            ),
        },
        Category::Data => malformed(excerpt(&error.to_string())),
    }
}

fn malformed(detail: String) -> QueryError {
    QueryError::Malformed { detail }
}

/// At most [`MAX_DETAIL_CHARS`] characters of `text`, control characters replaced, so a server cannot flood a
/// message or forge log lines.
pub(crate) fn excerpt(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_DETAIL_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decodes_a_vector() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"api"},"value":[1700000000.5,"1"]},
            {"metric":{},"value":[1700000000,"0.25"]}]}}"#;
        let data = decode_query_response(body).expect("vector");
        assert_eq!(
            data,
            QueryData::Vector(vec![
                Sample {
                    labels: labels(&[("__name__", "up"), ("job", "api")]),
                    timestamp: 1700000000.5,
                    value: 1.0
                },
                Sample {
                    labels: BTreeMap::new(),
                    timestamp: 1700000000.0,
                    value: 0.25
                },
            ])
        );
    }

    #[test]
    fn decodes_an_empty_vector() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            decode_query_response(body).expect("empty"),
            QueryData::Vector(vec![])
        );
    }

    #[test]
    fn decodes_scalar_matrix_and_string() {
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[12.5,"3"]}}"#;
        assert_eq!(
            decode_query_response(scalar).expect("scalar"),
            QueryData::Scalar(Sample {
                labels: BTreeMap::new(),
                timestamp: 12.5,
                value: 3.0
            })
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1,"1"],[2,"2.5"]]}]}}"#;
        assert_eq!(
            decode_query_response(matrix).expect("matrix"),
            QueryData::Matrix(vec![Series {
                labels: labels(&[("pod", "a")]),
                samples: vec![(1.0, 1.0), (2.0, 2.5)]
            }])
        );
        let string = br#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#;
        assert_eq!(
            decode_query_response(string).expect("string"),
            QueryData::String("hello".into())
        );
    }

    #[test]
    fn parses_special_values_faithfully() {
        assert!(parse_value("NaN").expect("nan").is_nan());
        assert_eq!(parse_value("+Inf").expect("+inf"), f64::INFINITY);
        assert_eq!(parse_value("-Inf").expect("-inf"), f64::NEG_INFINITY);
        assert_eq!(parse_value("1e+06").expect("exp"), 1e6);
        assert_eq!(parse_value("-0.5").expect("neg"), -0.5);
        for bad in ["", " 1", "one", "1,5", "0x10"] {
            assert!(
                matches!(parse_value(bad), Err(QueryError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_error_status_is_an_api_error_even_with_odd_data() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3","data":{"x":1}}"#;
        match decode_query_response(body) {
            Err(QueryError::Api { error_type, error }) => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(error, "parse error at char 3");
            }
            other => panic!("expected Api, got {other:?}"),
        }
    }

    #[test]
    fn warnings_fail_closed_but_infos_do_not() {
        let warned = br#"{"status":"success","warnings":["store unavailable"],"data":{"resultType":"vector","result":[]}}"#;
        match decode_query_response(warned) {
            Err(QueryError::Warnings { warnings }) => {
                assert_eq!(warnings, vec!["store unavailable".to_owned()])
            }
            other => panic!("expected Warnings, got {other:?}"),
        }
        let empty_warnings =
            br#"{"status":"success","warnings":[],"data":{"resultType":"vector","result":[]}}"#;
        assert!(decode_query_response(empty_warnings).is_ok());
        let infos = br#"{"status":"success","infos":["PromQL info: metric might not be a counter"],"data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            decode_query_response(infos).expect("infos"),
            QueryData::Vector(vec![])
        );
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        let cases: &[&[u8]] = &[
            br#"{"status":"success"}"#,
            br#"{"status":"success","data":{"resultType":"streams","result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"vector"}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,1]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1",2]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1]}}"#,
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}}]}}"#,
            br#"{"status":"partial","data":{"resultType":"vector","result":[]}}"#,
            br#"{"data":{"resultType":"vector","result":[]}}"#,
            br#"[1,2,3]"#,
        ];
        for body in cases {
            let result = decode_query_response(body);
            assert!(
                matches!(result, Err(QueryError::Malformed { .. })),
                "{}: {result:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn truncated_and_non_json_bodies_are_told_apart() {
        let full = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        for cut in [1, 10, full.len() - 1] {
            assert!(
                matches!(
                    decode_query_response(&full[..cut]),
                    Err(QueryError::Truncated)
                ),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            decode_query_response(b"<html>bad gateway</html>"),
            Err(QueryError::NotJson { .. })
        ));
        assert!(matches!(
            decode_query_response(b""),
            Err(QueryError::NotJson { .. })
        ));
        assert!(matches!(
            decode_query_response(b" \n"),
            Err(QueryError::NotJson { .. })
        ));
    }

    #[test]
    fn http_error_detail_prefers_prometheus_json() {
        let json = br#"{"status":"error","errorType":"execution","error":"query timed out"}"#;
        assert_eq!(http_error_detail(json), "execution: query timed out");
        assert_eq!(
            http_error_detail(b"upstream connect error\r\n"),
            "upstream connect error"
        );
        assert_eq!(http_error_detail(b""), "empty body");
        let long = "x".repeat(10_000);
        assert_eq!(
            http_error_detail(long.as_bytes()).chars().count(),
            MAX_DETAIL_CHARS + 1
        );
        assert_eq!(
            http_error_detail(b"line1\nforged log line"),
            "line1 forged log line"
        );
    }
}
