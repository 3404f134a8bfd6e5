//! A fake Prometheus for tests: a hyper 1 HTTP/1.1 server on `127.0.0.1:0`, driven by a [`Scenario`] of
//! [`Reply`]s (good answers and every way an answer can go wrong), recording every request and counting TCP
//! connections so tests can assert what the client sent and how. It stops when dropped.
// Shared by several test binaries, each of which uses only part of it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ReplyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The largest request body the fake reads (a query form is a few hundred bytes).
pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
/// The size of each chunk of a [`Reply::Huge`] body.
const HUGE_CHUNK_BYTES: usize = 64 * 1024;
/// How long a [`Reply::Truncated`] body pauses before the connection is closed.
const TRUNCATION_PAUSE: Duration = Duration::from_millis(50);
/// One sample of a [`Reply::Huge`] vector.
const HUGE_SAMPLE: &str = r#"{"metric":{},"value":[1,"1"]}"#;
const HUGE_PREFIX: &str = r#"{"status":"success","data":{"resultType":"vector","result":["#;
const HUGE_SUFFIX: &str = "]}}";

/// One sample for [`Reply::vector`]: labels, unix-seconds timestamp, value as Prometheus writes it.
pub type VectorSample<'a> = (&'a [(&'a str, &'a str)], f64, &'a str);

/// One series for [`Reply::matrix`]: labels and its `(unix-seconds timestamp, value as Prometheus writes it)`
/// points, in the order given (a fault may give them out of order).
pub type MatrixSeries<'a> = (&'a [(&'a str, &'a str)], Vec<(f64, String)>);

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `status` with `Content-Type: application/json` and `body`.
    Json { status: u16, body: String },
    /// Any status, content type, extra headers and body bytes.
    Raw {
        status: u16,
        content_type: Option<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Sleep `delay` before sending anything (not even headers), then answer `then`.
    SlowFirstByte { delay: Duration, then: Box<Reply> },
    /// Send a 200 JSON head at once, then each chunk after `interval`.
    SlowBody {
        chunks: Vec<Vec<u8>>,
        interval: Duration,
    },
    /// Close the connection without any response.
    Close,
    /// Declare `Content-Length: declared_length`, send `body` (shorter), then close.
    Truncated {
        declared_length: usize,
        body: Vec<u8>,
    },
    /// A valid vector answer of about `bytes` bytes, streamed in chunks; with or without `Content-Length`.
    Huge { bytes: usize, declare_length: bool },
    /// A 200 whose body is not JSON.
    Garbage,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: impl Into<String>) -> Reply {
        Reply::Json {
            status: 200,
            body: body.into(),
        }
    }

    /// 200 `{"status":"success","data":<data>}`.
    pub fn success(data: &str) -> Reply {
        Reply::json(format!(r#"{{"status":"success","data":{data}}}"#))
    }

    /// A successful vector of `(labels, timestamp, value)` samples.
    pub fn vector(samples: &[VectorSample<'_>]) -> Reply {
        let result: Vec<serde_json::Value> = samples
            .iter()
            .map(|(labels, timestamp, value)| {
                serde_json::json!({ "metric": labels_object(labels), "value": [timestamp, value] })
            })
            .collect();
        Reply::success(&serde_json::json!({ "resultType": "vector", "result": result }).to_string())
    }

    /// A successful matrix (the answer to a subquery or a range selector) of `series`.
    pub fn matrix(series: &[MatrixSeries<'_>]) -> Reply {
        let result: Vec<serde_json::Value> = series
            .iter()
            .map(|(labels, points)| {
                let values: Vec<serde_json::Value> = points
                    .iter()
                    .map(|(timestamp, value)| serde_json::json!([timestamp, value]))
                    .collect();
                serde_json::json!({ "metric": labels_object(labels), "values": values })
            })
            .collect();
        Reply::success(&serde_json::json!({ "resultType": "matrix", "result": result }).to_string())
    }

    /// `status` with Prometheus' JSON error body.
    pub fn api_error(status: u16, error_type: &str, error: &str) -> Reply {
        let body =
            serde_json::json!({ "status": "error", "errorType": error_type, "error": error });
        Reply::Json {
            status,
            body: body.to_string(),
        }
    }

    /// `status` with a plain-text body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::Raw {
            status,
            content_type: Some("text/plain; charset=utf-8".to_owned()),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// A series' labels as Prometheus writes them (`"metric": {…}`).
fn labels_object(labels: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect()
}

/// Chooses the reply of each request from the request itself (its `index` allows sequencing by closure).
pub type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// How the fake answers.
pub enum Scenario {
    /// The same reply to every request.
    Always(Reply),
    /// Request `i` gets reply `i`; any request beyond the list gets a 500 saying so.
    Sequence(Vec<Reply>),
    /// A closure decides.
    Handler(Handler),
}

impl Scenario {
    pub fn handler(f: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Scenario {
        Scenario::Handler(Arc::new(f))
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// 0-based order of arrival.
    pub index: usize,
    /// 1-based number of the TCP connection it arrived on.
    pub connection: usize,
    pub method: String,
    pub path: String,
    /// Query-string parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// `application/x-www-form-urlencoded` body parameters, decoded, in order.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of parameter `name`, from the form, else the query string.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(&self.query)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    scenario: Scenario,
    requests: Mutex<Vec<RecordedRequest>>,
    connections: AtomicUsize,
}

/// A running fake. Dropping it stops the accept loop and every open connection.
pub struct FakePrometheus {
    address: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakePrometheus {
    pub async fn start(scenario: Scenario) -> FakePrometheus {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake prometheus");
        let address = listener
            .local_addr()
            .expect("local address of the fake prometheus");
        let state = Arc::new(State {
            scenario,
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        FakePrometheus {
            address,
            state,
            task,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>/`
    pub fn url(&self) -> url::Url {
        self.url_with_path("/")
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url_with_path(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{}{path}", self.address)).expect("fake prometheus url")
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// How many TCP connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    // Ends when the owner drops the fake (the task is aborted) or the listener fails.
    while let Ok((stream, _)) = listener.accept().await {
        let connection = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| respond(state.clone(), connection, request));
            // A connection ends with an error in the scenarios that break it on purpose.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
}

async fn respond(
    state: Arc<State>,
    connection: usize,
    request: Request<Incoming>,
) -> Result<Response<ReplyBody>, BoxError> {
    let recorded = record(&state, connection, request).await?;
    let reply = match &state.scenario {
        Scenario::Always(reply) => reply.clone(),
        Scenario::Sequence(replies) => replies.get(recorded.index).cloned().unwrap_or_else(|| {
            Reply::text(
                500,
                &format!(
                    "fake prometheus: no reply scripted for request #{}",
                    recorded.index
                ),
            )
        }),
        Scenario::Handler(handler) => handler(&recorded),
    };
    render(reply).await
}

async fn record(
    state: &State,
    connection: usize,
    request: Request<Incoming>,
) -> Result<RecordedRequest, BoxError> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_REQUEST_BODY_BYTES)
        .collect()
        .await?
        .to_bytes();
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let decode = |bytes: &[u8]| -> Vec<(String, String)> {
        url::form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let mut requests = lock(&state.requests);
    let recorded = RecordedRequest {
        index: requests.len(),
        connection,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: decode(parts.uri.query().unwrap_or("").as_bytes()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        form: if is_form { decode(&body) } else { Vec::new() },
    };
    requests.push(recorded.clone());
    Ok(recorded)
}

async fn render(reply: Reply) -> Result<Response<ReplyBody>, BoxError> {
    let response = match reply {
        Reply::SlowFirstByte { delay, then } => {
            tokio::time::sleep(delay).await;
            return Box::pin(render(*then)).await;
        }
        Reply::Json { status, body } => {
            response(status, Some("application/json"), full(body.into_bytes()))
        }
        Reply::Raw {
            status,
            content_type,
            headers,
            body,
        } => {
            let mut response = response(status, content_type.as_deref(), full(body));
            for (name, value) in headers {
                response.headers_mut().append(
                    hyper::header::HeaderName::from_bytes(name.as_bytes())?,
                    HeaderValue::from_str(&value)?,
                );
            }
            response
        }
        Reply::SlowBody { chunks, interval } => {
            let chunks: VecDeque<Vec<u8>> = chunks.into();
            let stream = futures::stream::unfold(chunks, move |mut chunks| async move {
                let chunk = chunks.pop_front()?;
                tokio::time::sleep(interval).await;
                Some((Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))), chunks))
            });
            response(
                200,
                Some("application/json"),
                StreamBody::new(stream).boxed_unsync(),
            )
        }
        Reply::Close => return Err("fake prometheus: closing without a response".into()),
        Reply::Truncated {
            declared_length,
            body,
        } => {
            // A stream, so hyper does not know the real length and sends the declared one; the pause
            // before its end makes hyper flush what it has before it closes the short connection.
            let stream = futures::stream::unfold(Some(body), |body| async move {
                match body {
                    Some(body) => Some((Ok::<_, BoxError>(Frame::data(Bytes::from(body))), None)),
                    None => {
                        tokio::time::sleep(TRUNCATION_PAUSE).await;
                        None
                    }
                }
            });
            let stream = StreamBody::new(stream).boxed_unsync();
            let mut response = response(200, Some("application/json"), stream);
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(declared_length));
            response
        }
        Reply::Huge {
            bytes,
            declare_length,
        } => {
            let samples = bytes.saturating_sub(HUGE_PREFIX.len() + HUGE_SUFFIX.len())
                / (HUGE_SAMPLE.len() + 1);
            let total = HUGE_PREFIX.len()
                + samples * (HUGE_SAMPLE.len() + 1)
                + HUGE_SAMPLE.len()
                + HUGE_SUFFIX.len();
            let mut response = response(200, Some("application/json"), huge_body(samples));
            if declare_length {
                response
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(total));
            }
            response
        }
        Reply::Garbage => response(
            200,
            Some("text/html"),
            full(b"<html>\x00\xff not json }{ </html>".to_vec()),
        ),
    };
    Ok(response)
}

fn response(status: u16, content_type: Option<&str>, body: ReplyBody) -> Response<ReplyBody> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(content_type) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    response
}

fn full(body: Vec<u8>) -> ReplyBody {
    Full::new(Bytes::from(body))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// `HUGE_PREFIX`, `samples` times `HUGE_SAMPLE,`, a last `HUGE_SAMPLE`, `HUGE_SUFFIX`, in chunks.
fn huge_body(samples: usize) -> ReplyBody {
    let per_chunk = (HUGE_CHUNK_BYTES / (HUGE_SAMPLE.len() + 1)).max(1);
    let mut repeated = String::with_capacity(per_chunk * (HUGE_SAMPLE.len() + 1));
    for _ in 0..per_chunk {
        repeated.push_str(HUGE_SAMPLE);
        repeated.push(',');
    }
    let repeated = Bytes::from(repeated);
    // States: Some(remaining samples) while filling, None once the tail is sent.
    let stream = futures::stream::unfold((true, Some(samples)), move |(first, remaining)| {
        let repeated = repeated.clone();
        async move {
            if first {
                return Some((
                    Ok::<_, BoxError>(Frame::data(Bytes::from_static(HUGE_PREFIX.as_bytes()))),
                    (false, remaining),
                ));
            }
            let remaining = remaining?;
            if remaining == 0 {
                let tail = Bytes::from(format!("{HUGE_SAMPLE}{HUGE_SUFFIX}"));
                return Some((Ok(Frame::data(tail)), (false, None)));
            }
            let n = remaining.min(per_chunk);
            let chunk = repeated.slice(..n * (HUGE_SAMPLE.len() + 1));
            Some((Ok(Frame::data(chunk)), (false, Some(remaining - n))))
        }
    });
    StreamBody::new(stream).boxed_unsync()
}
