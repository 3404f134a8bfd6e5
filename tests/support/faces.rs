//! The two remote faces as test drivers, shared by `tests/faces/fault_matrix.rs` and `tests/faces/secrets.rs`: plugin mode
//! through argo-rollouts' own plugin client (`tests/go/hostile/cmd/pluginrun`, built once per test binary with
//! `go build`), and the gRPC service in this process through a tonic client.
// Each test binary uses part of this.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use rollouts_guardrails::engine::Engine;
use rollouts_guardrails::prometheus::Client;
use rollouts_guardrails::service::grpc::pb::metric_provider_client::MetricProviderClient;
use rollouts_guardrails::service::grpc::pb::{self, Phase};
use rollouts_guardrails::service::grpc::GrpcServer;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// The canary every measurement targets: the AnalysisRun's namespace, owner Rollout and hash label.
pub const NAMESPACE: &str = "shop";
pub const ROLLOUT: &str = "web";
pub const HASH: &str = "6c8d7f9a1";

/// One measurement as either face returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    pub phase: String,
    pub message: String,
    pub value: String,
    pub metadata: BTreeMap<String, String>,
}

/// What a plugin-mode session returned: one reply per configuration, and what the host logged for the plugin.
pub struct PluginSession {
    pub replies: Vec<Reply>,
    pub logs: String,
    /// The body `scrape` returned while the plugin ran, when asked for.
    pub scraped: Option<String>,
}

/// Builds `tests/go/hostile/cmd/pluginrun` once into this test binary's temporary directory.
fn pluginrun() -> Result<&'static Path> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = crate::target_tmpdir().join("pluginrun");
        let module = crate::root().join("tests/go/hostile");
        let output = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg("./cmd/pluginrun")
            .current_dir(&module)
            .env("GOFLAGS", "-mod=mod")
            .output()
            .map_err(|e| {
                format!("cannot run `go` ({e}): Go 1.24+ is needed for the plugin-mode face")
            })?;
        if !output.status.success() {
            return Err(format!(
                "go build ./cmd/pluginrun failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(out)
    });
    match built {
        Ok(path) => Ok(path.as_path()),
        Err(e) => bail!("{e}"),
    }
}

/// Runs every configuration through one plugin process, in order, as Argo's controller would, with `env`
/// added to the plugin's environment.
pub fn plugin_mode(configs: &[Value], env: &[(&str, &str)]) -> Result<PluginSession> {
    plugin_mode_scraping(configs, env, None)
}

/// [`plugin_mode`] with the registration `args` on the plugin's command line, as Argo passes them.
pub fn plugin_mode_with_args(
    configs: &[Value],
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<PluginSession> {
    plugin_mode_full(configs, env, args, None)
}

/// [`plugin_mode`], then a GET of `scrape` while the plugin still runs.
pub fn plugin_mode_scraping(
    configs: &[Value],
    env: &[(&str, &str)],
    scrape: Option<&str>,
) -> Result<PluginSession> {
    plugin_mode_full(configs, env, &[], scrape)
}

fn plugin_mode_full(
    configs: &[Value],
    env: &[(&str, &str)],
    args: &[&str],
    scrape: Option<&str>,
) -> Result<PluginSession> {
    let mut input = String::new();
    for config in configs {
        let line = serde_json::json!({
            "namespace": NAMESPACE, "rollout": ROLLOUT, "hash": HASH, "config": config,
        });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut command = Command::new(pluginrun()?);
    if let Some(url) = scrape {
        command.args(["-scrape", url]);
    }
    for arg in args {
        command.arg(format!("-arg={arg}"));
    }
    let mut child = command
        .arg("-bin")
        .arg(crate::plugin_binary())
        .envs(env.iter().copied())
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start pluginrun")?;
    let mut stdin = child.stdin.take().context("pluginrun stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = BufReader::new(child.stdout.take().context("pluginrun stdout")?);
    let mut replies = Vec::new();
    let mut logs = None;
    let mut scraped = None;
    for line in stdout.lines() {
        let line = line?;
        let value: Value =
            serde_json::from_str(&line).with_context(|| format!("reply {line:?}"))?;
        if let Some(text) = value.get("logs").and_then(Value::as_str) {
            logs = Some(text.to_string());
        } else if let Some(text) = value.get("scraped").and_then(Value::as_str) {
            scraped = Some(text.to_string());
        } else {
            replies.push(serde_json::from_value(value)?);
        }
    }
    writer.join().ok().context("the writer thread")??;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "pluginrun failed after {} replies: {}",
            replies.len(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if replies.len() != configs.len() {
        bail!(
            "{} replies for {} configurations",
            replies.len(),
            configs.len()
        );
    }
    Ok(PluginSession {
        replies,
        logs: logs.context("no logs line")?,
        scraped,
    })
}

/// A gRPC server over the production engine, in this process, on `127.0.0.1:0`; stops when dropped.
pub struct GrpcFace {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl GrpcFace {
    pub async fn start() -> Result<GrpcFace> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = GrpcServer::new(Engine::new(Client::new(), None));
        tokio::spawn(server.run(listener, async move {
            let _ = stopped.await;
        }));
        Ok(GrpcFace {
            address,
            stop: Some(stop),
        })
    }

    pub async fn client(&self) -> Result<MetricProviderClient<Channel>> {
        let channel = Channel::from_shared(format!("http://{}", self.address))?
            .connect()
            .await?;
        Ok(MetricProviderClient::new(channel))
    }
}

impl Drop for GrpcFace {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The AnalysisRun context the controller would send for the canary.
pub fn grpc_context() -> pb::AnalysisContext {
    pb::AnalysisContext {
        namespace: NAMESPACE.into(),
        name: format!("{ROLLOUT}-{HASH}-2"),
        uid: "3f1c2d4e".into(),
        labels: BTreeMap::from([("rollouts-pod-template-hash".to_string(), HASH.to_string())]),
        owner_references: vec![pb::OwnerReference {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            name: ROLLOUT.into(),
            uid: "9a8b7c6d".into(),
            controller: true,
        }],
        args: BTreeMap::new(),
        proven_metrics: Vec::new(),
    }
}

/// One `Run` through the gRPC face; a gRPC error is returned as the error.
pub async fn grpc_run(client: &mut MetricProviderClient<Channel>, config: &Value) -> Result<Reply> {
    let request = pb::RunRequest {
        analysis: Some(grpc_context()),
        metric: Some(pb::Metric {
            name: "guard".into(),
            plugin_config_json: Some(config.to_string()),
            success_condition: String::new(),
            failure_condition: String::new(),
        }),
        evaluation_time: None,
    };
    let m = client
        .run(request)
        .await?
        .into_inner()
        .measurement
        .context("Run answered without a measurement")?;
    // The same words as Argo's phases, so both faces compare alike.
    let phase = match Phase::try_from(m.phase) {
        Ok(Phase::Successful) => "Successful".to_string(),
        Ok(Phase::Failed) => "Failed".to_string(),
        Ok(other) => other.as_str_name().to_string(),
        Err(_) => format!("unknown phase {}", m.phase),
    };
    Ok(Reply {
        phase,
        message: m.message,
        value: m.value,
        metadata: m.metadata.into_iter().collect(),
    })
}
