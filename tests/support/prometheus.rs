//! A real store for integration tests, serving backfilled OpenMetrics data: Prometheus 2 (Debian's package, the
//! default), Prometheus 3, VictoriaMetrics or a Thanos Querier in front of Prometheus and a Thanos sidecar, chosen by
//! `GUARDRAILS_TEST_ENGINE=prometheus2|prometheus3|victoriametrics|thanos` ([`Store`]). The same fixtures and the
//! same expected verdicts run on each (`make test-engines`); docs/prometheus-compatibility.md lists how they differ.
//!
//! [`TestPrometheus`] writes the data (optionally shifted in time with [`shift_openmetrics`]) and loads it the way
//! each store takes history: for the Prometheus family `promtool tsdb create-blocks-from openmetrics` writes TSDB
//! blocks and `prometheus` starts on them with no scrape jobs; VictoriaMetrics starts empty and receives the samples
//! through `/api/v1/import/prometheus`. Every process binds a free loopback port and the launcher waits until the
//! store answers (for Thanos: until the Querier sees every sidecar). Dropping it kills every process and removes
//! its directory. [`shared`] and [`shared_now`] start one instance per test binary on the canonical fixture.
//! [`TestPrometheus::start_clusters`] holds several clusters' data: one Prometheus + sidecar per cluster with an
//! external label `cluster=<name>` behind one Querier on Thanos, a `cluster` label written into the data elsewhere.
//!
//! Statics are never dropped, so every process also gets a *guard*: a `sh` blocked reading a pipe whose write end
//! only this process holds. When the test process exits, however it exits, the pipe closes and the guard stops its
//! process and removes the directory, so no store outlives its test binary.
//!
//! A missing `prometheus`, `promtool`, `victoria-metrics` or engine binary is a panic telling how to install it:
//! tests never skip silently.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::scenarios;

/// How long a store may take to become ready before the launcher gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one HTTP exchange with the store may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(50);
/// Attempts at starting a process when another process took its free port first.
const PORT_ATTEMPTS: usize = 3;
/// The hint every "Prometheus tool not found" panic carries.
const INSTALL_HINT: &str = "install Prometheus: run `make deps`";
/// The hint a missing `victoria-metrics` panic carries.
const VICTORIA_METRICS_HINT: &str = "install VictoriaMetrics: run `make deps`";
/// The hint every "engine binary not found" panic carries.
const ENGINES_HINT: &str =
    "build the test engines: run `make engines-build` (tests/go/tools/build-engines.sh)";
/// The environment variable choosing the store.
pub const ENGINE_VARIABLE: &str = "GUARDRAILS_TEST_ENGINE";
/// Where tests/go/tools/build-engines.sh puts the engines it builds (overridable with `GUARDRAILS_ENGINES_BIN`).
const ENGINES_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/engines/bin");
/// The label telling clusters apart in a central store (a Thanos external label, a label in the data elsewhere).
pub const CLUSTER_LABEL: &str = "cluster";
/// The external label of the single Prometheus behind Thanos when the data names no cluster: a sidecar refuses
/// a Prometheus without external labels.
pub const DEFAULT_CLUSTER: &str = "default";
/// The label telling the two Prometheus of an HA pair apart (an external label on Thanos, a label in the data
/// elsewhere).
pub const REPLICA_LABEL: &str = "replica";
/// The replica labels the Thanos Querier deduplicates on, as a user deploying Prometheus pairs sets them.
pub const THANOS_REPLICA_LABELS: &[&str] = &["replica", "prometheus_replica"];
/// The guard: waits for its stdin to close, then stops its process (`$1`, TERM then KILL after 5 s) and removes
/// the instance directory (`$2`).
const GUARD_SCRIPT: &str = r#"read _ignored
kill "$1" 2>/dev/null
n=0
while kill -0 "$1" 2>/dev/null && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
kill -9 "$1" 2>/dev/null
rm -rf "$2""#;

/// The store the tests query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Debian's `prometheus` (2.x), on blocks promtool wrote.
    Prometheus2,
    /// Prometheus 3 built by tests/go/tools/build-engines.sh, on blocks promtool wrote.
    Prometheus3,
    /// VictoriaMetrics single-node (Debian's package), data through its import API.
    VictoriaMetrics,
    /// A Thanos Querier in front of a Thanos sidecar per Prometheus 2 (one per cluster).
    Thanos,
}

impl Store {
    /// Every store, in the order `make test-engines` runs them.
    pub const ALL: [Store; 4] = [
        Store::Prometheus2,
        Store::Prometheus3,
        Store::VictoriaMetrics,
        Store::Thanos,
    ];

    /// The store named by [`ENGINE_VARIABLE`] (Prometheus 2 when unset); panics on an unknown name.
    pub fn from_env() -> Store {
        match std::env::var(ENGINE_VARIABLE) {
            Err(std::env::VarError::NotPresent) => Store::Prometheus2,
            Ok(name) if name.is_empty() => Store::Prometheus2,
            Ok(name) => Store::ALL
                .into_iter()
                .find(|store| store.name() == name)
                .unwrap_or_else(|| {
                    let names: Vec<&str> = Store::ALL.iter().map(|s| s.name()).collect();
                    panic!("{ENGINE_VARIABLE}={name:?} names no store; one of {names:?}")
                }),
            Err(e) => panic!("{ENGINE_VARIABLE}: {e}"),
        }
    }

    /// The name [`ENGINE_VARIABLE`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Store::Prometheus2 => "prometheus2",
            Store::Prometheus3 => "prometheus3",
            Store::VictoriaMetrics => "victoriametrics",
            Store::Thanos => "thanos",
        }
    }
}

/// One process of a running store.
struct Component {
    /// The process.
    process: Child,
    /// The guard `sh` (see the module documentation); killed first on drop so it cannot race us.
    guard: Child,
    /// The cluster whose data this process serves, for the Prometheus and sidecar of one cluster behind Thanos.
    cluster: Option<String>,
}

/// Where one part of a central store's data comes from: a cluster, and the replica of an HA pair when the
/// cluster runs two Prometheus scraping the same targets.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub cluster: &'a str,
    pub replica: Option<&'a str>,
}

/// A running store serving backfilled data.
pub struct TestPrometheus {
    /// The store's processes, the one answering queries first: stopped in this order.
    components: Vec<Component>,
    /// Holds the data, the TSDBs, the configurations and the logs; removed on drop.
    root: TempDir,
    /// `http://127.0.0.1:<port>` of the process answering queries.
    url: String,
    /// The log of the process answering queries.
    log: PathBuf,
    /// The instant the fixture's [`scenarios::END`] was shifted to.
    end: i64,
    /// Which store this is.
    store: Store,
}

/// One element of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` included when the result kept it); empty for a scalar.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl TestPrometheus {
    /// The store on `openmetrics` as given (evaluate at [`scenarios::END`] for the canonical fixture).
    pub fn start(openmetrics: &str) -> Self {
        Self::start_ending_at(openmetrics, scenarios::END)
    }

    /// The store on `openmetrics` shifted so that [`scenarios::END`] becomes `end` (unix seconds).
    pub fn start_ending_at(openmetrics: &str, end: i64) -> Self {
        let shifted = shift_openmetrics(openmetrics, end - scenarios::END);
        Self::launch(Store::from_env(), &[(None, shifted)], end)
    }

    /// The store on the OpenMetrics file at `path`, unshifted.
    pub fn start_file(path: &Path) -> Self {
        let text = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self::launch(Store::from_env(), &[(None, text)], scenarios::END)
    }

    /// The store on the canonical fixture shifted so that END is now: for code that evaluates at the current
    /// time (plugin mode). [`TestPrometheus::end`] tells which instant END became.
    pub fn start_canonical_now() -> Self {
        Self::start_ending_at(&scenarios::render(), unix_now())
    }

    /// A central store holding several clusters' data, each `(cluster, openmetrics)` shifted so that
    /// [`scenarios::END`] becomes `end`: on Thanos one Prometheus + sidecar per cluster with the external label
    /// `cluster=<name>`, behind one Querier; on the other stores one instance whose data carries the label.
    pub fn start_clusters(store: Store, clusters: &[(&str, &str)], end: i64) -> Self {
        let data: Vec<(Option<Origin>, String)> = clusters
            .iter()
            .map(|(cluster, text)| {
                let origin = Origin {
                    cluster,
                    replica: None,
                };
                (Some(origin), shift_openmetrics(text, end - scenarios::END))
            })
            .collect();
        Self::launch(store, &data, end)
    }

    /// A central store holding `cluster`'s data from an HA pair: every replica scraped the same `openmetrics`
    /// (shifted so that [`scenarios::END`] becomes `end`). On Thanos one Prometheus + sidecar per replica with the
    /// external labels `cluster=<cluster>, replica=<replica>` behind one Querier that deduplicates on `replica`;
    /// on the other stores one instance holding every replica's copy, told apart only by the `replica` label in
    /// the data (a store that does not deduplicate).
    pub fn start_replicas(
        store: Store,
        cluster: &str,
        replicas: &[&str],
        openmetrics: &str,
        end: i64,
    ) -> Self {
        let shifted = shift_openmetrics(openmetrics, end - scenarios::END);
        let data: Vec<(Option<Origin>, String)> = replicas
            .iter()
            .map(|replica| {
                let origin = Origin {
                    cluster,
                    replica: Some(replica),
                };
                (Some(origin), shifted.clone())
            })
            .collect();
        Self::launch(store, &data, end)
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory holding the data, the TSDBs and the logs; removed on drop.
    pub fn directory(&self) -> &Path {
        self.root.path()
    }

    /// The log of the process answering queries (inside [`TestPrometheus::directory`]).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops the processes serving `cluster`'s data, as when that cluster's Prometheus goes down: on Thanos its
    /// sidecar and Prometheus (the Querier and the other clusters keep running); on the other stores, where one
    /// instance holds every cluster, the whole store. Panics when no process serves `cluster`.
    pub fn stop_cluster(&mut self, cluster: &str) {
        let serves = |component: &Component| match self.store {
            Store::Thanos => component.cluster.as_deref() == Some(cluster),
            _ => true,
        };
        let (mut stopped, kept): (Vec<Component>, Vec<Component>) =
            self.components.drain(..).partition(serves);
        self.components = kept;
        assert!(!stopped.is_empty(), "no process serves cluster {cluster}");
        stop_all(&mut stopped);
    }

    /// Which store this is.
    pub fn store(&self) -> Store {
        self.store
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

    /// Starts `store` on `clusters` (each with the cluster it belongs to, `None` when the data names none).
    fn launch(store: Store, clusters: &[(Option<Origin>, String)], end: i64) -> Self {
        let root = new_root();
        let mut components = Vec::new();
        let started = match store {
            Store::Prometheus2 | Store::Prometheus3 => {
                let program = match store {
                    Store::Prometheus2 => PathBuf::from("prometheus"),
                    _ => engine_binary("prometheus3"),
                };
                let data = merged(clusters);
                backfill(&data, root.path(), None)
                    .and_then(|dir| start_prometheus(&program, &dir, None, &mut components))
            }
            Store::VictoriaMetrics => {
                start_victoria_metrics(&merged(clusters), root.path(), &mut components)
            }
            Store::Thanos => start_thanos(clusters, root.path(), &mut components),
        };
        match started {
            Ok((url, log)) => TestPrometheus {
                components,
                root,
                url,
                log,
                end,
                store,
            },
            Err(message) => {
                stop_all(&mut components);
                panic!("{} did not start: {message}", store.name())
            }
        }
    }
}

/// Every cluster's data in one OpenMetrics text, each sample labelled with its cluster (when it has one).
fn merged(clusters: &[(Option<Origin>, String)]) -> String {
    if let [(None, text)] = clusters {
        return text.clone();
    }
    let mut out = String::new();
    for (cluster, text) in clusters {
        let labelled = match cluster {
            Some(Origin { cluster, replica }) => {
                let text = with_label(text, CLUSTER_LABEL, cluster);
                match replica {
                    Some(replica) => with_label(&text, REPLICA_LABEL, replica),
                    None => text,
                }
            }
            None => text.clone(),
        };
        for line in labelled.lines().filter(|line| *line != "# EOF") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Writes `text` to `parent/<name>/data.om` (`parent` itself when `name` is `None`) and turns it into TSDB blocks
/// in `tsdb` beside it with promtool; returns the instance directory.
fn backfill(text: &str, parent: &Path, name: Option<&str>) -> Result<PathBuf, String> {
    let dir = match name {
        Some(name) => parent.join(name),
        None => parent.to_owned(),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let data = dir.join("data.om");
    fs::write(&data, text).map_err(|e| format!("cannot write {}: {e}", data.display()))?;
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&data)
        .arg(dir.join("tsdb"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}): {INSTALL_HINT}"));
    if !output.status.success() {
        return Err(format!(
            "promtool tsdb create-blocks-from openmetrics {} failed ({}):\n{}{}",
            data.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir)
}

/// Starts `program` (a Prometheus) on `dir/tsdb` with no scrape jobs and, when given, the external label
/// `cluster=<name>`; returns its URL and log.
fn start_prometheus(
    program: &Path,
    dir: &Path,
    origin: Option<Origin>,
    components: &mut Vec<Component>,
) -> Result<(String, PathBuf), String> {
    let config = dir.join("prometheus.yml");
    let external = match origin {
        Some(Origin { cluster, replica }) => {
            let replica = replica
                .map(|r| format!("    {REPLICA_LABEL}: {r:?}\n"))
                .unwrap_or_default();
            format!("  external_labels:\n    {CLUSTER_LABEL}: {cluster:?}\n{replica}")
        }
        None => String::new(),
    };
    let text = format!(
        "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n{external}scrape_configs: []\n"
    );
    fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = dir.join("prometheus.log");
    let url = start_component(components, &log, "/-/ready", |ports| {
        let mut command = Command::new(program);
        command
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", ports.http))
            // The data is old: without a long retention Prometheus deletes it at start.
            .arg("--storage.tsdb.retention.time=100y");
        command
    })?;
    Ok((url, log))
}

/// Starts VictoriaMetrics on an empty storage and imports `openmetrics` through its import API; returns its URL
/// and log.
fn start_victoria_metrics(
    openmetrics: &str,
    root: &Path,
    components: &mut Vec<Component>,
) -> Result<(String, PathBuf), String> {
    let log = root.join("victoria-metrics.log");
    let storage = root.join("victoria-metrics");
    let program = victoria_metrics_binary();
    let url = start_component(components, &log, "/health", |ports| {
        let mut command = Command::new(&program);
        command
            .arg(format!("-storageDataPath={}", storage.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", ports.http))
            // The data is old: without a long retention VictoriaMetrics drops it on import.
            .arg("-retentionPeriod=100y");
        command
    })?;
    let body = prometheus_text(openmetrics);
    let (status, answer) = http_post(&url, "/api/v1/import/prometheus", &body)
        .map_err(|e| format!("import into {url}: {e}"))?;
    if status != 204 && status != 200 {
        return Err(format!("import into {url}: HTTP {status}: {answer}"));
    }
    // Imported rows sit in in-memory buffers for up to a second; a flush makes them searchable now.
    let (status, answer) =
        http_get(&url, "/internal/force_flush").map_err(|e| format!("flush {url}: {e}"))?;
    if status != 200 {
        return Err(format!("flush {url}: HTTP {status}: {answer}"));
    }
    Ok((url, log))
}

/// Starts one Prometheus 2 + Thanos sidecar per cluster and a Thanos Querier over all the sidecars (replica labels
/// [`THANOS_REPLICA_LABELS`], partial responses refused); returns the Querier's URL and log once it sees every
/// sidecar.
fn start_thanos(
    clusters: &[(Option<Origin>, String)],
    root: &Path,
    components: &mut Vec<Component>,
) -> Result<(String, PathBuf), String> {
    let thanos = engine_binary("thanos");
    let mut behind = Vec::new();
    let mut endpoints = Vec::new();
    for (index, (origin, text)) in clusters.iter().enumerate() {
        let origin = origin.unwrap_or(Origin {
            cluster: DEFAULT_CLUSTER,
            replica: None,
        });
        let cluster = origin.cluster;
        let name = format!("{cluster}-{index}");
        let dir = backfill(text, root, Some(&name))?;
        let first = behind.len();
        let (prometheus, _) =
            start_prometheus(Path::new("prometheus"), &dir, Some(origin), &mut behind)?;
        let log = dir.join("sidecar.log");
        let mut grpc = 0;
        start_component(&mut behind, &log, "/-/ready", |ports| {
            grpc = ports.grpc;
            let mut command = Command::new(&thanos);
            command
                .arg("sidecar")
                .arg(format!("--prometheus.url={prometheus}"))
                .arg(format!("--tsdb.path={}", dir.join("tsdb").display()))
                .arg(format!("--http-address=127.0.0.1:{}", ports.http))
                .arg(format!("--grpc-address=127.0.0.1:{}", ports.grpc));
            command
        })?;
        endpoints.push(format!("127.0.0.1:{grpc}"));
        // The sidecar before its Prometheus when they stop.
        behind[first..].reverse();
        for component in &mut behind[first..] {
            component.cluster = Some(cluster.to_owned());
        }
    }
    let log = root.join("thanos-query.log");
    let mut querier = Vec::new();
    let url = start_component(&mut querier, &log, "/-/ready", |ports| {
        let mut command = Command::new(&thanos);
        command
            .arg("query")
            .arg(format!("--http-address=127.0.0.1:{}", ports.http))
            .arg(format!("--grpc-address=127.0.0.1:{}", ports.grpc))
            .arg("--no-query.partial-response");
        for label in THANOS_REPLICA_LABELS {
            command.arg(format!("--query.replica-label={label}"));
        }
        for endpoint in &endpoints {
            command.arg(format!("--endpoint={endpoint}"));
        }
        command
    });
    // The Querier first, so that nothing queries a store whose sidecars are already gone.
    components.append(&mut querier);
    components.append(&mut behind);
    let url = url?;
    wait_for_stores(&url, endpoints.len(), &log)?;
    Ok((url, log))
}

/// Polls the Querier's `/api/v1/stores` until `count` sidecars answer without error, or [`READY_TIMEOUT`] passes.
fn wait_for_stores(url: &str, count: usize, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::new();
    loop {
        if let Ok((200, body)) = http_get(url, "/api/v1/stores") {
            let healthy = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|json| json["data"]["sidecar"].as_array().cloned())
                .map_or(0, |stores| {
                    stores
                        .iter()
                        .filter(|store| {
                            store["lastError"].is_null() && !store["labelSets"].is_null()
                        })
                        .count()
                });
            if healthy == count {
                return Ok(());
            }
            last = body;
        }
        if Instant::now() >= deadline {
            let log = fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "the Querier at {url} did not see {count} sidecars within {READY_TIMEOUT:?}; last /api/v1/stores: \
                 {last}\nits log:\n{log}"
            ));
        }
        thread::sleep(READY_POLL);
    }
}

/// The loopback ports one start attempt of a process listens on.
struct Ports {
    /// Its HTTP listener (the URL).
    http: u16,
    /// Its gRPC listener, for the processes that have one.
    grpc: u16,
}

/// Spawns `command(ports)` with its stderr in `log`, and its guard; waits until `ready` answers 200 on the HTTP
/// port, retrying with other ports when the log says one was taken. Returns the URL; the component is pushed on
/// `components` as soon as it exists so that a failure stops it.
fn start_component(
    components: &mut Vec<Component>,
    log: &Path,
    ready: &str,
    mut command: impl FnMut(&Ports) -> Command,
) -> Result<String, String> {
    let mut taken = Vec::new();
    for _ in 0..PORT_ATTEMPTS {
        let ports = Ports {
            http: free_port(),
            grpc: free_port(),
        };
        let file =
            fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut command = command(&ports);
        let program = command.get_program().to_string_lossy().into_owned();
        let mut process = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                let hint = match program.as_str() {
                    "victoria-metrics" => VICTORIA_METRICS_HINT,
                    "prometheus" => INSTALL_HINT,
                    _ => ENGINES_HINT,
                };
                panic!("cannot run {program} ({e}): {hint}")
            });
        let guard = Command::new("sh")
            .args(["-c", GUARD_SCRIPT, "test-store-guard"])
            .arg(process.id().to_string())
            .arg(log.parent().unwrap_or(log))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let guard = match guard {
            Ok(guard) => guard,
            Err(e) => {
                stop(&mut process);
                return Err(format!("cannot run sh: {e}"));
            }
        };
        let index = components.len();
        components.push(Component {
            process,
            guard,
            cluster: None,
        });
        match wait_ready(&mut components[index].process, ports.http, ready, log) {
            Ok(()) => return Ok(format!("http://127.0.0.1:{}", ports.http)),
            Err(failure) => {
                let mut component = components.remove(index);
                stop(&mut component.guard);
                stop(&mut component.process);
                match failure {
                    Failure::PortTaken(log) => taken.push(log),
                    Failure::Fatal(message) => return Err(message),
                }
            }
        }
    }
    Err(format!(
        "could not bind a free port in {PORT_ATTEMPTS} attempts; last log:\n{}",
        taken.last().map_or("", String::as_str)
    ))
}

/// Polls `ready` until it answers 200, the process exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(process: &mut Child, port: u16, ready: &str, log_path: &Path) -> Result<(), Failure> {
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            if log.contains("address already in use") {
                return Err(Failure::PortTaken(log));
            }
            return Err(Failure::Fatal(format!(
                "{} exited during start-up ({status}); its log:\n{log}",
                log_path.display()
            )));
        }
        if let Ok((200, _)) = http_get(&url, ready) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            return Err(Failure::Fatal(format!(
                "{url} not ready after {READY_TIMEOUT:?}; its log:\n{log}"
            )));
        }
        thread::sleep(READY_POLL);
    }
}

/// A binary built by tests/go/tools/build-engines.sh; panics with the build hint when it is missing.
fn engine_binary(name: &str) -> PathBuf {
    let bin = std::env::var_os("GUARDRAILS_ENGINES_BIN")
        .map_or_else(|| PathBuf::from(ENGINES_BIN), PathBuf::from);
    let path = bin.join(name);
    assert!(
        path.is_file(),
        "{} is missing: {ENGINES_HINT}",
        path.display()
    );
    path
}

/// VictoriaMetrics: Debian's package (`make deps` installs it).
fn victoria_metrics_binary() -> PathBuf {
    PathBuf::from("victoria-metrics")
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

/// Stops every component in order, each guard before its process so that it cannot signal a reused process id.
fn stop_all(components: &mut Vec<Component>) {
    for component in components.iter_mut() {
        stop(&mut component.guard);
        stop(&mut component.process);
    }
    components.clear();
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        stop_all(&mut self.components);
        // `root` (a TempDir) removes the directory when the fields drop.
    }
}

/// Why one start attempt failed.
enum Failure {
    /// Another process bound the port between our probe and its bind: try another port.
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
    http_exchange(base, "GET", path, "")
}

/// A blocking HTTP/1.0 POST of `body` (text) to `path` on `base`: status and body.
fn http_post(base: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    http_exchange(base, "POST", path, body)
}

/// One HTTP/1.0 exchange: `method path` with `body` (sent with its length when not empty).
fn http_exchange(base: &str, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let authority = base.strip_prefix("http://").unwrap_or(base);
    let address: SocketAddr = authority
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{authority}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&address, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {authority}\r\n")?;
    if !body.is_empty() {
        write!(
            stream,
            "Content-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        )?;
    }
    write!(stream, "\r\n")?;
    stream.write_all(body.as_bytes())?;
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

/// `openmetrics` as the Prometheus text format VictoriaMetrics imports: comment lines (`# TYPE`, `# EOF`, …) and
/// blank lines dropped, each timestamp turned from seconds (with an optional fraction) into milliseconds. Panics on
/// a sample line it cannot parse: test data must be well formed.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + openmetrics.len() / 8);
    for content in openmetrics.lines() {
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let series_end = end_of_series(content)
            .unwrap_or_else(|| panic!("not an OpenMetrics sample line: {content:?}"));
        let (series, rest) = content.split_at(series_end);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (value, milliseconds) = match fields.as_slice() {
            [value] => (*value, None),
            [value, timestamp] => (
                *value,
                Some(
                    milliseconds(timestamp)
                        .unwrap_or_else(|| panic!("bad timestamp {timestamp:?} in {content:?}")),
                ),
            ),
            _ => panic!("unsupported OpenMetrics sample line (exemplar?): {content:?}"),
        };
        out.push_str(series);
        out.push(' ');
        out.push_str(value);
        if let Some(milliseconds) = milliseconds {
            out.push(' ');
            out.push_str(&milliseconds.to_string());
        }
        out.push('\n');
    }
    out
}

/// An OpenMetrics timestamp (`seconds[.fraction]`, not negative) in milliseconds, sub-millisecond digits dropped.
fn milliseconds(timestamp: &str) -> Option<i64> {
    let (seconds, fraction) = timestamp.split_once('.').unwrap_or((timestamp, ""));
    if !seconds.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .ok()?;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// `openmetrics` with the label `name="value"` added to every sample (first among its labels); comment and blank
/// lines are left as they are. `value` must need no escaping (a cluster name). Panics on a sample line it cannot
/// parse, or on a sample that already has the label.
pub fn with_label(openmetrics: &str, name: &str, value: &str) -> String {
    assert!(
        !value.contains(['"', '\\', '\n']),
        "label value {value:?} needs escaping"
    );
    let mut out = String::with_capacity(openmetrics.len() * 5 / 4);
    for line in openmetrics.split_inclusive('\n') {
        if line.trim_end().is_empty() || line.starts_with('#') {
            out.push_str(line);
            continue;
        }
        let series_end = end_of_series(line.trim_end_matches('\n'))
            .unwrap_or_else(|| panic!("not an OpenMetrics sample line: {line:?}"));
        let series = &line[..series_end];
        assert!(
            !series.contains(&format!("{{{name}=\"")) && !series.contains(&format!(",{name}=\"")),
            "{series} already has the label {name}"
        );
        match series.find('{') {
            Some(open) => {
                let separator = if series[open + 1..].starts_with('}') {
                    ""
                } else {
                    ","
                };
                out.push_str(&line[..=open]);
                out.push_str(&format!("{name}=\"{value}\"{separator}"));
                out.push_str(&line[open + 1..]);
            }
            None => {
                out.push_str(series);
                out.push_str(&format!("{{{name}=\"{value}\"}}"));
                out.push_str(&line[series_end..]);
            }
        }
    }
    out
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
