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

/// How Prometheus' engine begins an informational annotation (`annotations.PromQLInfo`), as opposed to a warning
/// (`PromQL warning: …`) or a store's partial-response error.
const PROMQL_INFO_PREFIX: &str = "PromQL info: ";

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
        _ => return Err(not_prometheus(body)),
    }
    // A warning says the data may be partial; an info (Prometheus' `PromQL info: …` annotation) does not. Prometheus
    // 3 sends infos apart, but the Thanos Querier lists them among the warnings
    // (docs/prometheus-compatibility.md), so they are told apart by the prefix Prometheus gives every info.
    let warnings: Vec<String> = envelope
        .warnings
        .unwrap_or_default()
        .iter()
        .filter(|w| !w.starts_with(PROMQL_INFO_PREFIX))
        .map(|w| excerpt(w))
        .collect();
    if !warnings.is_empty() {
        return Err(QueryError::Warnings { warnings });
    }
    // The first pass read the whole body as JSON, so whatever fails now is the shape of `data` (serde_json
    // reports an over-long `[ts, "v", x]` as a syntax error, hence no `json_error` here).
    // serde's message may quote a value of the body, so only where it failed is said.
    let success: SuccessBody = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "`data` is not a query result of the shape its resultType names (at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
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

/// Prometheus' own error in a non-2xx body (`"<errorType>: <error>"`, bounded and printable), or `None` when
/// the body is not Prometheus' JSON error: such a body is described by [`BodyShape`], never quoted.
pub fn prometheus_error_detail(body: &[u8]) -> Option<String> {
    let envelope = serde_json::from_slice::<Envelope>(body).ok()?;
    if envelope.status != "error" {
        return None;
    }
    let error = envelope.error?;
    Some(match envelope.error_type {
        Some(error_type) => excerpt(&format!("{error_type}: {error}")),
        None => excerpt(&error),
    })
}

/// What may be said about an answer that is not Prometheus': its status, the media type it declared and its
/// size. Never a byte of the body: the address may be one a template chose, and the body an internal page
/// (a cloud metadata endpoint, an admin UI) that the tenant reading the measurement must not see.
#[derive(Debug, Clone)]
pub struct BodyShape {
    status: u16,
    /// `type/subtype` of `Content-Type`, lowercased, only if it is a plain token pair (parameters dropped:
    /// they are the server's free text).
    content_type: Option<String>,
}

/// The longest media type shown.
const MAX_MEDIA_TYPE_CHARS: usize = 64;

impl BodyShape {
    pub fn of(status: u16, content_type: Option<String>) -> BodyShape {
        let content_type = content_type.and_then(|value| {
            let media = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let token = |part: &str| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
            };
            let valid = media.len() <= MAX_MEDIA_TYPE_CHARS
                && media
                    .split_once('/')
                    .is_some_and(|(a, b)| token(a) && token(b));
            valid.then_some(media)
        });
        BodyShape {
            status,
            content_type,
        }
    }

    /// The error for `body` (of which more arrived than was read when `capped`).
    pub fn not_prometheus(&self, address: &str, body: &[u8], capped: bool) -> QueryError {
        QueryError::NotPrometheus {
            address: address.to_owned(),
            status: self.status,
            content_type: self
                .content_type
                .clone()
                .unwrap_or_else(|| "no content type".to_owned()),
            size: if capped {
                format!("more than {}", format_size(body.len()))
            } else {
                format_size(body.len())
            },
        }
    }
}

/// `523 B`, `1.2 KiB`, `3.4 MiB`.
pub fn format_size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let n = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if n < KIB * KIB {
        format!("{:.1} KiB", n / KIB)
    } else {
        format!("{:.1} MiB", n / (KIB * KIB))
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

/// A body that does not even parse as Prometheus' envelope is not a Prometheus answer; only a JSON text cut
/// short is reported as truncated.
fn json_error(body: &[u8], error: serde_json::Error) -> QueryError {
    let json_prefix = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    match error.classify() {
        serde_json::error::Category::Eof if json_prefix => QueryError::Truncated,
        _ => not_prometheus(body),
    }
}

/// What the pure decoder knows; the client fills in the address, status and content type (see
/// [`BodyShape::not_prometheus`]).
fn not_prometheus(body: &[u8]) -> QueryError {
    QueryError::NotPrometheus {
        address: String::new(),
        status: 200,
        content_type: String::new(),
        size: format_size(body.len()),
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
    fn infos_listed_among_warnings_pass_but_a_warning_beside_them_fails() {
        // The Thanos Querier puts Prometheus' infos in `warnings` (tests/guardrails_more.rs, ingress-nginx's
        // `nginx_ingress_controller_requests` counter has no `_total`).
        let info = br#"{"status":"success","warnings":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"nginx_ingress_controller_requests\""],"data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            decode_query_response(info).expect("an info is no warning"),
            QueryData::Vector(vec![])
        );
        let both = br#"{"status":"success","warnings":["PromQL info: metric might not be a counter","PromQL warning: encountered a mix of histograms and floats","receive series from store 127.0.0.1:10901: rpc error"],"data":{"resultType":"vector","result":[]}}"#;
        match decode_query_response(both) {
            Err(QueryError::Warnings { warnings }) => assert_eq!(
                warnings,
                vec![
                    "PromQL warning: encountered a mix of histograms and floats".to_owned(),
                    "receive series from store 127.0.0.1:10901: rpc error".to_owned()
                ]
            ),
            other => panic!("expected Warnings, got {other:?}"),
        }
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
        let others: &[&[u8]] = &[
            b"<html>bad gateway</html>",
            b"",
            b" \n",
            b"MARKER plain text",
            br#"{"status":"partial","data":{"resultType":"vector","result":[]}}"#,
            br#"{"data":{"resultType":"vector","result":[]}}"#,
            br#"{"status":5,"MARKER":"x"}"#,
            br#"[1,2,3]"#,
        ];
        for body in others {
            let result = decode_query_response(body);
            assert!(
                matches!(result, Err(QueryError::NotPrometheus { .. })),
                "{}: {result:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn no_byte_of_a_foreign_body_reaches_a_message() {
        for body in [
            &b"<html>MARKER-1</html>"[..],
            br#"{"status":"MARKER-1"}"#,
            br#"{"status":"success","data":"MARKER-1"}"#,
            br#"{"status":"success","data":{"resultType":"MARKER-1","result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"],"MARKER-1":true,"x":{"y":"MARKER-1"}}], "z": ["MARKER-1"]}}"#,
        ] {
            let text = format!("{:?}", decode_query_response(body));
            assert!(!text.contains("MARKER"), "{text}");
        }
        let shape = BodyShape::of(200, Some("text/html; charset=MARKER".into()));
        let err = shape.not_prometheus("http://h/", &[b'x'; 1300], false);
        assert_eq!(
            err.to_string(),
            "not a Prometheus API answer from http://h/: HTTP 200, text/html, 1.3 KiB"
        );
        let shape = BodyShape::of(502, Some("MARKER <script>".into()));
        let err = shape.not_prometheus("http://h/", b"", true);
        assert_eq!(
            err.to_string(),
            "not a Prometheus API answer from http://h/: HTTP 502, no content type, more than 0 B"
        );
    }

    #[test]
    fn only_prometheus_json_errors_are_quoted() {
        let json = br#"{"status":"error","errorType":"execution","error":"query timed out"}"#;
        assert_eq!(
            prometheus_error_detail(json).as_deref(),
            Some("execution: query timed out")
        );
        assert_eq!(prometheus_error_detail(b"upstream connect error\r\n"), None);
        assert_eq!(prometheus_error_detail(b""), None);
        assert_eq!(prometheus_error_detail(br#"{"error":"MARKER"}"#), None);
        let long = format!(r#"{{"status":"error","error":"{}"}}"#, "x".repeat(10_000));
        assert_eq!(
            prometheus_error_detail(long.as_bytes())
                .expect("error")
                .chars()
                .count(),
            MAX_DETAIL_CHARS + 1
        );
        assert_eq!(
            prometheus_error_detail(br#"{"status":"error","error":"line1\nforged log line"}"#)
                .as_deref(),
            Some("line1 forged log line")
        );
    }
}
