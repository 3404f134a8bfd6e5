//! Every way Prometheus (or the road to it) can fail, as fake-Prometheus scenarios or dead addresses, and the
//! healthy answer they replace. Shared by `tests/faces/fault_matrix.rs` and `tests/faces/secrets.rs`. Answers are built
//! from each request's own `time` parameter, so they are fresh whether a face evaluates "now" (plugin mode)
//! or a given instant.
//!
//! [`all`] are faults of the road and of every answer; [`range_answers`] are faults in the answers only the rank
//! test ([`RANK_TEST`]) reads: its per-step subqueries (a matrix per side) and its traffic proof.
// Each test binary uses part of this.

use std::time::Duration;

use rollouts_guardrails::engine::guardrails::regression::MAX_STEPS;
use serde_json::{json, Value};

use crate::support::faces;
use crate::support::fake_prometheus::{FakePrometheus, RecordedRequest, Reply, Scenario};

/// The matrix's columns: four guardrails, and `regression` with the rank test.
pub const GUARDRAILS: [&str; 5] = ["restarts", "not-ready", "latest-image", "query", RANK_TEST];
/// The column of `regression` with `method: mann-whitney`: the canary's p99 latency against the stable
/// ReplicaSet's, one-minute samples over 20 minutes (minSamples 10).
pub const RANK_TEST: &str = "regression mann-whitney";
/// The one canary pod of the healthy answer.
pub const POD: &str = "web-6c8d7f9a1-aaaaa";
/// The stable ReplicaSet's pod-template hash. A template takes it from the AnalysisRun args
/// (`stablePodTemplateHash: "{{args.stable-hash}}"`, the Rollout passing `podTemplateHashValue: Stable`); the
/// controller resolves the arg before either face sees the configuration, so the configuration carries it.
pub const STABLE_HASH: &str = "5d4c3b2a1";
/// The one stable pod of the healthy answer.
pub const STABLE_POD: &str = "web-5d4c3b2a1-bbbbb";
/// Requests per side over the window in the healthy answer (minRequests is 10).
const HEALTHY_REQUESTS: &str = "1200";
/// The measurement timeout every cell runs with: bounds the slow faults.
pub const TIMEOUT: &str = "1s";
/// The Prometheus `errorType`s (`promql/engine` and `web/api/v1`) plus one it may add tomorrow.
pub const ERROR_TYPES: [&str; 8] = [
    "bad_data",
    "execution",
    "timeout",
    "canceled",
    "internal",
    "unavailable",
    "not_found",
    "something_new",
];

/// The configuration of column `guardrail` on Prometheus at `address`, target from the AnalysisRun. `settle: 0s`:
/// the matrix judges the final answer to each fault at once (an empty answer would otherwise be Running while
/// it settles, which tests/engine/settle.rs covers).
pub fn config(guardrail: &str, address: &str) -> Value {
    if guardrail == RANK_TEST {
        return json!({
            "guardrail": "regression", "signal": "latency", "quantile": 0.99, "window": "20m",
            "method": "mann-whitney", "stablePodTemplateHash": STABLE_HASH,
            "address": address, "timeout": TIMEOUT, "settle": "0s",
        });
    }
    let mut c =
        json!({ "guardrail": guardrail, "address": address, "timeout": TIMEOUT, "settle": "0s" });
    if guardrail == "query" {
        c["query"] = json!("sum(up)");
        c["threshold"] = json!(1);
    }
    c
}

/// The evaluation instant the request asked about (unix seconds).
pub fn evaluated_at(request: &RecordedRequest) -> f64 {
    request
        .param("time")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0)
}

/// Which ReplicaSet a query selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Canary,
    Stable,
}

impl Side {
    fn of(query: &str) -> Side {
        let stable = format!("created_by_name=\"{}-{STABLE_HASH}\"", faces::ROLLOUT);
        if query.contains(&stable) {
            Side::Stable
        } else {
            Side::Canary
        }
    }
}

/// Whether `query` is a subquery, `(<expression>)[<range>:<step>]`: the rank test's per-step samples.
fn is_subquery(query: &str) -> bool {
    query.ends_with(']') && query.contains(")[")
}

/// The steps Prometheus evaluates a subquery `(…)[<range>s:<step>s]` at, asked at `at`: the multiples of step
/// in `(at - range, at]`, oldest first. `None` when the query is no subquery in seconds.
fn subquery_steps(query: &str, at: f64) -> Option<Vec<f64>> {
    let (_, tail) = query.rsplit_once(")[")?;
    let (range, step) = tail.strip_suffix(']')?.split_once(':')?;
    let seconds = |d: &str| d.strip_suffix('s')?.parse::<f64>().ok();
    let (range, step) = (seconds(range)?, seconds(step)?);
    let last = (at / step).floor() * step;
    let count = (range / step).floor() as usize + 1;
    Some(
        (0..count)
            .rev()
            .map(|i| last - i as f64 * step)
            .filter(|t| *t > at - range)
            .collect(),
    )
}

/// The healthy per-step p99 latency of a side at the steps of [`subquery_steps`]: a stable around 0.3 s and a
/// canary a little faster, so the rank test finds no regression.
fn healthy_steps(query: &str, at: f64) -> Option<Vec<(f64, f64)>> {
    let base = match Side::of(query) {
        Side::Canary => 0.29,
        Side::Stable => 0.30,
    };
    let steps = subquery_steps(query, at)?;
    Some(
        steps
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, base + 0.01 * (i % 4) as f64))
            .collect(),
    )
}

/// Steps as a matrix's points, values as Prometheus writes them.
fn points(steps: &[(f64, f64)]) -> Vec<(f64, String)> {
    steps
        .iter()
        .map(|(t, v)| (*t, prometheus_float(*v)))
        .collect()
}

/// A float as Prometheus' JSON writes it (`NaN`, `+Inf`, `-Inf`, else the shortest decimal).
fn prometheus_float(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "+Inf".into(),
        v if v == f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v}"),
    }
}

/// A healthy answer to every query of every column: one fresh, ready pod per side with a tagged image and no
/// restarts; `sum(up)` is 1; per side 1200 requests, the last one fresh, and 20 one-minute p99 latency steps,
/// the canary's no slower than the stable's.
pub fn healthy(request: &RecordedRequest) -> Reply {
    healthy_with(request, 15.0, None)
}

/// [`healthy`] with samples `age` seconds old (the coverage values, every result timestamp, the latest request
/// and the subqueries' steps) and, when given, every value replaced by `value`.
pub fn healthy_with(request: &RecordedRequest, age: f64, value: Option<&str>) -> Reply {
    let query = request.param("query").unwrap_or_default();
    let at = evaluated_at(request) - age + 15.0;
    let pod_name = match Side::of(query) {
        Side::Canary => POD,
        Side::Stable => STABLE_POD,
    };
    let pod: &[(&str, &str)] = &[
        ("namespace", "shop"),
        ("pod", pod_name),
        ("container", "web"),
    ];
    let text = |default: String| value.map(str::to_string).unwrap_or(default);
    if is_subquery(query) {
        // The subquery as Prometheus evaluates it `age - 15` seconds before the asked instant.
        let Some(steps) = healthy_steps(query, at) else {
            return Reply::api_error(
                400,
                "bad_data",
                "fake prometheus: not a subquery in seconds",
            );
        };
        let mut points = points(&steps);
        if let Some(value) = value {
            for point in &mut points {
                point.1 = value.to_string();
            }
        }
        Reply::matrix(&[(&[], points)])
    } else if query.starts_with("timestamp(") {
        Reply::vector(&[(pod, at, &text(format!("{}", at - 15.0)))])
    } else if query.starts_with("sum((increase(") {
        Reply::vector(&[(&[], at, &text(HEALTHY_REQUESTS.into()))])
    } else if query.starts_with("max((timestamp(") {
        Reply::vector(&[(&[], at, &text(format!("{}", at - 15.0)))])
    } else if query.starts_with("kube_pod_created") {
        Reply::vector(&[(pod, at, &text(format!("{}", at - 86_400.0)))])
    } else if query.contains("kube_pod_container_info") {
        let labels: &[(&str, &str)] = &[
            ("namespace", "shop"),
            ("pod", pod_name),
            ("container", "web"),
            ("image_spec", "registry.local/web:1.0"),
        ];
        Reply::vector(&[(labels, at, &text("1".into()))])
    } else if query.contains("waiting_reason") {
        Reply::vector(&[])
    } else if query.contains("kube_pod_status_ready") || query == "sum(up)" {
        Reply::vector(&[(pod, at, &text("1".into()))])
    } else {
        Reply::vector(&[(pod, at, &text("0".into()))])
    }
}

/// Where a fault lives.
pub enum Source {
    /// A fake Prometheus answering with this scenario.
    Fake(Scenario),
    /// An address nothing good answers on.
    Address(String),
}

/// One fault of the matrix.
pub struct Fault {
    pub name: String,
    pub source: Source,
}

/// A running fault: the fake (kept alive) and the address to configure.
pub struct Running {
    pub name: String,
    pub address: String,
    _fake: Option<FakePrometheus>,
}

impl Fault {
    pub async fn start(self) -> Running {
        match self.source {
            Source::Fake(scenario) => {
                let fake = FakePrometheus::start(scenario).await;
                Running {
                    name: self.name,
                    address: fake.url().to_string(),
                    _fake: Some(fake),
                }
            }
            Source::Address(address) => Running {
                name: self.name,
                address,
                _fake: None,
            },
        }
    }
}

fn fake(name: &str, scenario: Scenario) -> Fault {
    Fault {
        name: name.to_string(),
        source: Source::Fake(scenario),
    }
}

fn always(name: &str, reply: Reply) -> Fault {
    fake(name, Scenario::Always(reply))
}

/// A port on which nothing listens (bound, then released).
fn refused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("address"))
}

/// The healthy baseline, as a fault-free scenario.
pub fn baseline() -> Fault {
    fake("none (healthy baseline)", Scenario::handler(healthy))
}

/// Every fault, in the order the matrix lists them.
pub fn all() -> Vec<Fault> {
    let mut faults = vec![
        Fault {
            name: "connection refused".into(),
            source: Source::Address(refused_address()),
        },
        Fault {
            name: "DNS failure".into(),
            source: Source::Address("http://prometheus.guardrails.invalid:9090".into()),
        },
        always(
            "timeout (no answer)",
            Reply::SlowFirstByte {
                delay: Duration::from_secs(3600),
                then: Box::new(Reply::vector(&[])),
            },
        ),
        fake(
            "slow first byte (3 s)",
            Scenario::handler(|r| Reply::SlowFirstByte {
                delay: Duration::from_secs(3),
                then: Box::new(healthy(r)),
            }),
        ),
        always(
            "slow body (a chunk every 2 s)",
            Reply::SlowBody {
                chunks: vec![
                    b"{\"status\":".to_vec(),
                    b"\"success\",\"data\":".to_vec(),
                    b"{\"resultType\":\"vector\",\"result\":[]}}".to_vec(),
                ],
                interval: Duration::from_secs(2),
            },
        ),
        always(
            "HTTP 400 bad_data",
            Reply::api_error(400, "bad_data", "parse error"),
        ),
        always("HTTP 401 (text)", Reply::text(401, "unauthorized")),
        always(
            "HTTP 422 execution",
            Reply::api_error(422, "execution", "query too expensive"),
        ),
        always("HTTP 500 (text)", Reply::text(500, "internal server error")),
        always(
            "HTTP 503 unavailable",
            Reply::api_error(503, "unavailable", "shutting down"),
        ),
    ];
    for error_type in ERROR_TYPES {
        faults.push(always(
            &format!("200 `status: error`, errorType {error_type}"),
            Reply::Json {
                status: 200,
                body: json!({"status":"error","errorType":error_type,"error":"boom"}).to_string(),
            },
        ));
    }
    faults.extend([
        always("not JSON", Reply::Garbage),
        always(
            "truncated body (Content-Length not met)",
            Reply::Truncated {
                declared_length: 200,
                body: br#"{"status":"success","data":{"resultT"#.to_vec(),
            },
        ),
        always(
            "wrong resultType (matrix)",
            Reply::success(
                r#"{"resultType":"matrix","result":[{"metric":{"pod":"web-6c8d7f9a1-aaaaa"},"values":[[1,"1"]]}]}"#,
            ),
        ),
        always(
            "wrong resultType (string)",
            Reply::success(r#"{"resultType":"string","result":[1,"x"]}"#),
        ),
        always("empty vector", Reply::vector(&[])),
        fake("NaN", Scenario::handler(|r| healthy_with(r, 15.0, Some("NaN")))),
        fake("+Inf", Scenario::handler(|r| healthy_with(r, 15.0, Some("+Inf")))),
        fake("-Inf", Scenario::handler(|r| healthy_with(r, 15.0, Some("-Inf")))),
        fake(
            "stale (samples 10 min old)",
            Scenario::handler(|r| healthy_with(r, 600.0, None)),
        ),
        always(
            "`warnings` (partial data)",
            Reply::json(
                r#"{"status":"success","warnings":["partial response: store down"],"data":{"resultType":"vector","result":[{"metric":{"pod":"web-6c8d7f9a1-aaaaa"},"value":[1,"1"]}]}}"#,
            ),
        ),
        fake(
            "a scalar where a vector is expected",
            Scenario::handler(|r| {
                let at = evaluated_at(r);
                Reply::success(&format!(r#"{{"resultType":"scalar","result":[{at},"1"]}}"#))
            }),
        ),
        always(
            "huge response (40 MiB)",
            Reply::Huge {
                bytes: 40 * 1024 * 1024,
                declare_length: false,
            },
        ),
        always("connection closed without an answer", Reply::Close),
    ]);
    faults
}

/// The one cell that is not a fault: a user's `query` may legitimately return a scalar.
pub fn scalar_is_legitimate(fault: &str, guardrail: &str) -> bool {
    fault == "a scalar where a vector is expected" && guardrail == "query"
}

/// The healthy answer, except to the queries `fault` answers itself (`Some`).
fn instead_of_healthy(
    name: &str,
    fault: impl Fn(&RecordedRequest, &str) -> Option<Reply> + Send + Sync + 'static,
) -> Fault {
    fake(
        name,
        Scenario::handler(move |r| {
            let query = r.param("query").unwrap_or_default();
            fault(r, query).unwrap_or_else(|| healthy(r))
        }),
    )
}

/// The healthy answer, except that `side`'s samples subquery is answered by `change` of its healthy steps.
fn samples_of(
    name: &str,
    side: Side,
    change: impl Fn(Vec<(f64, f64)>) -> Reply + Send + Sync + 'static,
) -> Fault {
    instead_of_healthy(name, move |r, query| {
        let steps = healthy_steps(query, evaluated_at(r)).filter(|_| Side::of(query) == side)?;
        Some(change(steps))
    })
}

/// A vector answer as a matrix of the same series, each with its one sample as its one point.
fn vector_as_matrix(reply: Reply) -> Reply {
    let Reply::Json { body, .. } = reply else {
        return reply;
    };
    let answer: Value = serde_json::from_str(&body).expect("the healthy answer is JSON");
    let series: Vec<Value> = answer["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| json!({ "metric": s["metric"], "values": [s["value"]] }))
        .collect();
    Reply::success(&json!({ "resultType": "matrix", "result": series }).to_string())
}

/// Whether a column reads the answers [`range_answers`] break: only the rank test asks a subquery and proves
/// traffic; the other columns' queries get the healthy answer under those faults.
pub fn reads_range_answers(column: &str) -> bool {
    column == RANK_TEST
}

/// The faults in the answers only the rank test reads, in the order the matrix lists them: every other query
/// gets the healthy answer.
pub fn range_answers() -> Vec<Fault> {
    let traffic =
        |query: &str| query.starts_with("sum((increase(") || query.starts_with("max((timestamp(");
    vec![
        instead_of_healthy(
            "a matrix where a vector is expected (traffic proof)",
            move |r, query| traffic(query).then(|| vector_as_matrix(healthy(r))),
        ),
        samples_of(
            "a vector where a matrix is expected (canary samples)",
            Side::Canary,
            |steps| {
                let (t, v) = steps.last().copied().unwrap_or_default();
                Reply::vector(&[(&[], t, &prometheus_float(v))])
            },
        ),
        samples_of(
            "two series for one side (stable samples, one per cluster)",
            Side::Stable,
            |steps| {
                let points = points(&steps);
                Reply::matrix(&[
                    (&[("cluster", "eu-1")], points.clone()),
                    (&[("cluster", "us-1")], points),
                ])
            },
        ),
        samples_of(
            "NaN/±Inf canary steps (9 finite, minSamples 10)",
            Side::Canary,
            |steps| {
                let broken = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
                let steps: Vec<(f64, f64)> = steps
                    .into_iter()
                    .enumerate()
                    .map(|(i, (t, v))| if i < 11 { (t, broken[i % 3]) } else { (t, v) })
                    .collect();
                Reply::matrix(&[(&[], points(&steps))])
            },
        ),
        samples_of(
            "too few steps (a canary 5 minutes old)",
            Side::Canary,
            |steps| {
                let young = &steps[steps.len().saturating_sub(5)..];
                Reply::matrix(&[(&[], points(young))])
            },
        ),
        samples_of(
            "the last step stale (canary steps end 10 min ago)",
            Side::Canary,
            |steps| {
                let old: Vec<(f64, f64)> = steps.into_iter().map(|(t, v)| (t - 600.0, v)).collect();
                Reply::matrix(&[(&[], points(&old))])
            },
        ),
        samples_of(
            "steps out of order (canary, newest first)",
            Side::Canary,
            |mut steps| {
                steps.reverse();
                Reply::matrix(&[(&[], points(&steps))])
            },
        ),
        samples_of(
            "duplicate timestamps (stable, every step twice)",
            Side::Stable,
            |steps| {
                let twice: Vec<(f64, f64)> = steps.into_iter().flat_map(|s| [s, s]).collect();
                Reply::matrix(&[(&[], points(&twice))])
            },
        ),
        samples_of("a non-numeric step value (canary)", Side::Canary, |steps| {
            let mut points = points(&steps);
            if let Some(point) = points.get_mut(3) {
                point.1 = "fast".into();
            }
            Reply::matrix(&[(&[], points)])
        }),
        samples_of(
            &format!("more steps than MAX_STEPS {MAX_STEPS} (canary)"),
            Side::Canary,
            |steps| {
                let (last, v) = steps.last().copied().unwrap_or_default();
                let many: Vec<(f64, f64)> = (0..MAX_STEPS + 2)
                    .rev()
                    .map(|i| (last - 60.0 * i as f64, v))
                    .collect();
                Reply::matrix(&[(&[], points(&many))])
            },
        ),
        samples_of(
            "HTTP 500 on the canary's samples query only",
            Side::Canary,
            |_| {
                Reply::api_error(
                    500,
                    "internal",
                    "query processing would load too many samples",
                )
            },
        ),
    ]
}
