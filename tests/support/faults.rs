//! Every way Prometheus (or the road to it) can fail, as fake-Prometheus scenarios or dead addresses, and the
//! healthy answer they replace. Shared by `tests/faces/fault_matrix.rs` and `tests/faces/secrets.rs`. Answers are built
//! from each request's own `time` parameter, so they are fresh whether a face evaluates "now" (plugin mode)
//! or a given instant.
// Each test binary uses part of this.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fake_prometheus::{FakePrometheus, RecordedRequest, Reply, Scenario};

/// Every guardrail the plugin offers.
pub const GUARDRAILS: [&str; 4] = ["restarts", "not-ready", "latest-image", "query"];
/// The one canary pod of the healthy answer.
pub const POD: &str = "web-6c8d7f9a1-aaaaa";
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

/// The configuration of `guardrail` on Prometheus at `address`, target from the AnalysisRun. `settle: 0s`:
/// the matrix judges the final answer to each fault at once (an empty answer would otherwise be Running while
/// it settles, which tests/engine/settle.rs covers).
pub fn config(guardrail: &str, address: &str) -> Value {
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

/// A healthy answer to every query of every guardrail: one fresh, ready pod with a tagged image and no
/// restarts; `sum(up)` is 1.
pub fn healthy(request: &RecordedRequest) -> Reply {
    healthy_with(request, 15.0, None)
}

/// [`healthy`] with samples `age` seconds old (the coverage values and every result timestamp) and, when
/// given, every value replaced by `value`.
pub fn healthy_with(request: &RecordedRequest, age: f64, value: Option<&str>) -> Reply {
    let query = request.param("query").unwrap_or_default();
    let at = evaluated_at(request) - age + 15.0;
    let pod: &[(&str, &str)] = &[("namespace", "shop"), ("pod", POD), ("container", "web")];
    let text = |default: String| value.map(str::to_string).unwrap_or(default);
    if query.starts_with("timestamp(") {
        Reply::vector(&[(pod, at, &text(format!("{}", at - 15.0)))])
    } else if query.starts_with("kube_pod_created") {
        Reply::vector(&[(pod, at, &text(format!("{}", at - 86_400.0)))])
    } else if query.contains("kube_pod_container_info") {
        let labels: &[(&str, &str)] = &[
            ("namespace", "shop"),
            ("pod", POD),
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
