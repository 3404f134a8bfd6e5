//! A real Prometheus for integration tests, serving backfilled OpenMetrics data.
//!
//! [`TestPrometheus`] writes the data (optionally shifted in time with [`shift_openmetrics`]), turns it into
//! TSDB blocks with `promtool tsdb create-blocks-from openmetrics`, starts `prometheus` on those blocks with
//! no scrape jobs on a free loopback port, and waits for `/-/ready`. Dropping it kills Prometheus and removes
//! its directory. [`shared`] and [`shared_now`] start one instance per test binary on the canonical fixture.
//!
//! Statics are never dropped, so every instance also spawns a *guard*: a `sh` blocked reading a pipe whose
//! write end only this process holds. When the test process exits, however it exits, the pipe closes and
//! the guard stops Prometheus and removes the directory, so no Prometheus outlives its test binary.
//!
//! Missing `prometheus` or `promtool` is a panic telling how to install them: tests never skip silently.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::scenarios;

/// How long Prometheus may take to answer `/-/ready` before the launcher gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one HTTP exchange with Prometheus may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(50);
/// Attempts at starting Prometheus when another process took the free port first.
const PORT_ATTEMPTS: usize = 3;
/// The hint every "tool not found" panic carries.
const INSTALL_HINT: &str = "install Prometheus: run `make deps`";
/// A configuration without scrape jobs: the data is only what was backfilled.
const CONFIG: &str =
    "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\nscrape_configs: []\n";
/// The guard: waits for its stdin to close, then stops Prometheus (`$1`, TERM then KILL after 5 s) and
/// removes the instance directory (`$2`).
const GUARD_SCRIPT: &str = r#"read _ignored
kill "$1" 2>/dev/null
n=0
while kill -0 "$1" 2>/dev/null && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
kill -9 "$1" 2>/dev/null
rm -rf "$2""#;

/// A running Prometheus serving backfilled data.
pub struct TestPrometheus {
    /// The `prometheus` process.
    process: Child,
    /// The guard `sh` (see the module documentation); killed first on drop so it cannot race us.
    guard: Child,
    /// Holds the data file, the TSDB, the configuration and Prometheus' log; removed on drop.
    root: TempDir,
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// The instant the fixture's [`scenarios::END`] was shifted to.
    end: i64,
}

/// One element of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` included when the result kept it); empty for a scalar.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl TestPrometheus {
    /// Prometheus on `openmetrics` as given (evaluate at [`scenarios::END`] for the canonical fixture).
    pub fn start(openmetrics: &str) -> Self {
        Self::start_ending_at(openmetrics, scenarios::END)
    }

    /// Prometheus on `openmetrics` shifted so that [`scenarios::END`] becomes `end` (unix seconds).
    pub fn start_ending_at(openmetrics: &str, end: i64) -> Self {
        let root = new_root();
        let data = root.path().join("data.om");
        let shifted = shift_openmetrics(openmetrics, end - scenarios::END);
        fs::write(&data, shifted)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", data.display()));
        Self::launch(root, &data, end)
    }

    /// Prometheus on the OpenMetrics file at `path`, unshifted.
    pub fn start_file(path: &Path) -> Self {
        Self::launch(new_root(), path, scenarios::END)
    }

    /// Prometheus on the canonical fixture shifted so that END is now: for code that evaluates at the
    /// current time (plugin mode). [`TestPrometheus::end`] tells which instant END became.
    pub fn start_canonical_now() -> Self {
        Self::start_ending_at(&scenarios::render(), unix_now())
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory holding the data, the TSDB and Prometheus' log (`prometheus.log`); removed on drop.
    pub fn directory(&self) -> &Path {
        self.root.path()
    }

    /// The instant (unix seconds) the data's [`scenarios::END`] maps to.
    pub fn end(&self) -> i64 {
        self.end
    }

    /// Runs an instant query at `at` (unix seconds) and returns its vector or scalar result. Panics on
    /// any error: this is for tests asserting facts about the data.
    pub fn query(&self, promql: &str, at: i64) -> Vec<Sample> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .append_pair("time", &at.to_string())
            .finish();
        let (status, body) = http_get(&self.url, &format!("/api/v1/query?{query}"))
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"));
        assert_eq!(status, 200, "query {promql:?}: HTTP {status}: {body}");
        parse_instant_result(&body).unwrap_or_else(|e| panic!("query {promql:?}: {e}: {body}"))
    }

    /// The single value of an instant query at `at`, `None` when the result is empty; panics when it has
    /// more than one element.
    pub fn query_value(&self, promql: &str, at: i64) -> Option<f64> {
        let mut samples = self.query(promql, at);
        assert!(
            samples.len() <= 1,
            "query {promql:?} returned {} elements, expected at most one: {samples:?}",
            samples.len()
        );
        samples.pop().map(|sample| sample.value)
    }

    /// Backfills `data` into `root` and starts Prometheus on it.
    fn launch(root: TempDir, data: &Path, end: i64) -> Self {
        let tsdb = root.path().join("tsdb");
        let output = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(data)
            .arg(&tsdb)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run promtool ({e}): {INSTALL_HINT}"));
        assert!(
            output.status.success(),
            "promtool tsdb create-blocks-from openmetrics {} failed ({}):\n{}{}",
            data.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let config = root.path().join("prometheus.yml");
        fs::write(&config, CONFIG)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));

        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(root.path(), port) {
                Ok((process, guard)) => {
                    return TestPrometheus {
                        process,
                        guard,
                        root,
                        url: format!("http://127.0.0.1:{port}"),
                        end,
                    }
                }
                Err(Failure::PortTaken(log)) => failures.push(log),
                Err(Failure::Fatal(message)) => panic!("{message}"),
            }
        }
        panic!(
            "prometheus could not bind a free port in {PORT_ATTEMPTS} attempts; last log:\n{}",
            failures.last().map_or("", String::as_str)
        );
    }
}

/// Starts Prometheus on `root/tsdb` listening on `port`, and its guard, then waits for readiness. On
/// failure both processes are stopped.
fn spawn(root: &Path, port: u16) -> Result<(Child, Child), Failure> {
    let log_path = root.join("prometheus.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| Failure::Fatal(format!("cannot create {}: {e}", log_path.display())))?;
    let mut process = Command::new("prometheus")
        .arg(format!(
            "--storage.tsdb.path={}",
            root.join("tsdb").display()
        ))
        .arg(format!(
            "--config.file={}",
            root.join("prometheus.yml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // The data is old: without a long retention Prometheus deletes it at start.
        .arg("--storage.tsdb.retention.time=100y")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| Failure::Fatal(format!("cannot run prometheus ({e}): {INSTALL_HINT}")))?;
    let guard = Command::new("sh")
        .args(["-c", GUARD_SCRIPT, "test-prometheus-guard"])
        .arg(process.id().to_string())
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut guard = match guard {
        Ok(guard) => guard,
        Err(e) => {
            stop(&mut process);
            return Err(Failure::Fatal(format!("cannot run sh: {e}")));
        }
    };
    match wait_ready(&mut process, port, &log_path) {
        Ok(()) => Ok((process, guard)),
        Err(failure) => {
            stop(&mut guard);
            stop(&mut process);
            Err(failure)
        }
    }
}

/// Polls `/-/ready` until it answers 200, Prometheus exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(process: &mut Child, port: u16, log_path: &Path) -> Result<(), Failure> {
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            if log.contains("address already in use") {
                return Err(Failure::PortTaken(log));
            }
            return Err(Failure::Fatal(format!(
                "prometheus exited during start-up ({status}); its log:\n{log}"
            )));
        }
        if let Ok((200, _)) = http_get(&url, "/-/ready") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            return Err(Failure::Fatal(format!(
                "prometheus at {url} not ready after {READY_TIMEOUT:?}; its log:\n{log}"
            )));
        }
        thread::sleep(READY_POLL);
    }
}

/// A fresh directory for one instance.
fn new_root() -> TempDir {
    tempfile::Builder::new()
        .prefix("test-prometheus-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

/// Kills and reaps `child` (ignoring a child that already exited).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        // The guard first, so that it cannot signal a process id the system has reused.
        stop(&mut self.guard);
        stop(&mut self.process);
        // `root` (a TempDir) removes the directory when the fields drop.
    }
}

/// Why one start attempt failed.
enum Failure {
    /// Another process bound the port between our probe and Prometheus' bind: try another port.
    PortTaken(String),
    /// Anything else: the message for the panic.
    Fatal(String),
}

/// The canonical fixture, unshifted: evaluate at [`scenarios::END`]. Started on first use, shared by the
/// tests of one binary.
pub fn shared() -> &'static TestPrometheus {
    static SHARED: OnceLock<TestPrometheus> = OnceLock::new();
    SHARED.get_or_init(|| TestPrometheus::start(&scenarios::render()))
}

/// The canonical fixture shifted so that END is the moment it started ([`TestPrometheus::end`]): for code
/// that evaluates "now". Started on first use, shared by the tests of one binary.
pub fn shared_now() -> &'static TestPrometheus {
    static SHARED_NOW: OnceLock<TestPrometheus> = OnceLock::new();
    SHARED_NOW.get_or_init(TestPrometheus::start_canonical_now)
}

/// Metrics whose sample *value* is itself a unix time (seconds): shifting moves their values too, so a pod
/// created at END−3m is still created 3 minutes before the shifted END. The Go harness keeps the same list.
pub const TIMESTAMP_VALUED_METRICS: &[&str] = &[
    "kube_pod_created",
    "prometheus_rule_group_last_evaluation_timestamp_seconds",
];

/// The extra fixture (`guardrails-extra.om`) shifted so that END is the moment it started: the request, alert,
/// regression and gitops guardrails evaluated "now", as plugin mode evaluates. Shared by the tests of one binary.
pub fn shared_extra_now() -> &'static TestPrometheus {
    static SHARED_EXTRA_NOW: OnceLock<TestPrometheus> = OnceLock::new();
    SHARED_EXTRA_NOW
        .get_or_init(|| TestPrometheus::start_ending_at(&scenarios::render_extra(), unix_now()))
}

/// `text` with `delta_seconds` added to every sample's timestamp (and to the value of every
/// [`TIMESTAMP_VALUED_METRICS`] sample); comment lines (`# TYPE`, `# HELP`, `# EOF`, …), blank lines and
/// samples without a timestamp are left as they are.
///
/// Timestamps are OpenMetrics seconds, integral or with a fraction (kept as written). Panics on a sample
/// line it cannot parse: test data must be well formed.
pub fn shift_openmetrics(text: &str, delta_seconds: i64) -> String {
    if delta_seconds == 0 {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for line in text.split_inclusive('\n') {
        let (content, newline) = match line.strip_suffix('\n') {
            Some(content) => (content, "\n"),
            None => (line, ""),
        };
        if content.is_empty() || content.starts_with('#') {
            out.push_str(line);
            continue;
        }
        let series_end = end_of_series(content)
            .unwrap_or_else(|| panic!("not an OpenMetrics sample line: {content:?}"));
        let (series, rest) = content.split_at(series_end);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        match fields.as_slice() {
            [_value] => out.push_str(line),
            [value, timestamp] => {
                let shifted = shift_timestamp(timestamp, delta_seconds)
                    .unwrap_or_else(|| panic!("bad timestamp {timestamp:?} in {content:?}"));
                let name = series.split('{').next().unwrap_or(series).trim();
                let value = if TIMESTAMP_VALUED_METRICS.contains(&name) {
                    shift_timestamp(value, delta_seconds)
                        .unwrap_or_else(|| panic!("bad timestamp value {value:?} in {content:?}"))
                } else {
                    (*value).to_owned()
                };
                out.push_str(series);
                out.push(' ');
                out.push_str(&value);
                out.push(' ');
                out.push_str(&shifted);
                out.push_str(newline);
            }
            _ => panic!("unsupported OpenMetrics sample line (exemplar?): {content:?}"),
        }
    }
    out
}

/// The byte index just after a sample line's series: after the closing `}` of its labels (skipping quoted
/// values and their escapes), or after the metric name when it has no labels.
fn end_of_series(line: &str) -> Option<usize> {
    let Some(open) = line.find('{') else {
        return line.find(' ');
    };
    if line[..open].contains(' ') {
        return line.find(' ');
    }
    let mut in_quotes = false;
    let mut escaped = false;
    for (offset, c) in line[open..].char_indices() {
        match (in_quotes, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_quotes = !in_quotes,
            (false, _, '}') => return Some(open + offset + 1),
            _ => {}
        }
    }
    None
}

/// `timestamp` (`[-]seconds[.fraction]`) plus `delta` seconds, the fraction kept as written.
fn shift_timestamp(timestamp: &str, delta: i64) -> Option<String> {
    let (seconds, fraction) = match timestamp.split_once('.') {
        Some((seconds, fraction)) => (seconds, Some(fraction)),
        None => (timestamp, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    // A negative timestamp with a fraction (-1.5) would need borrowing; test data has none.
    if seconds < 0 && fraction.is_some() {
        return None;
    }
    let shifted = seconds.checked_add(delta)?;
    if shifted < 0 && fraction.is_some() {
        return None;
    }
    Some(match fraction {
        Some(fraction) => format!("{shifted}.{fraction}"),
        None => shifted.to_string(),
    })
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(now.as_secs()).expect("the clock fits in i64 seconds")
}

/// A loopback TCP port nobody listened on a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the bound port: {e}"))
        .port()
}

/// A blocking HTTP/1.0 GET of `path` (with its query) on `base` (`http://host:port`): status and body.
/// HTTP/1.0 keeps it simple: Go answers without chunking and closes the connection after the body.
fn http_get(base: &str, path: &str) -> io::Result<(u16, String)> {
    let authority = base.strip_prefix("http://").unwrap_or(base);
    let address: SocketAddr = authority
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{authority}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&address, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("response without end of headers"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("response without a status code"))?;
    Ok((status, body.to_owned()))
}

/// The `data.result` of a successful instant query, as samples.
fn parse_instant_result(body: &str) -> Result<Vec<Sample>, String> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("response is not JSON ({e})"))?;
    if json["status"] != "success" {
        return Err("status is not success".to_owned());
    }
    let data = &json["data"];
    let value_of = |pair: &serde_json::Value| -> Result<f64, String> {
        pair.get(1)
            .and_then(serde_json::Value::as_str)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad [time, value] pair {pair}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("vector result is not an array")?
            .iter()
            .map(|element| {
                let labels = element["metric"]
                    .as_object()
                    .ok_or("vector element without metric")?
                    .iter()
                    .map(|(name, value)| {
                        (name.clone(), value.as_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                Ok(Sample {
                    labels,
                    value: value_of(&element["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: value_of(&data["result"])?,
        }]),
        other => Err(format!("unsupported result type {other:?}")),
    }
}
