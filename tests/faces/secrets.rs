//! Secrets hygiene: a bearer token, a basic-auth password and a custom header value, configured on every
//! failure path we can force (every Prometheus fault of the fault matrix, a hostile Prometheus echoing the
//! request's headers into its error bodies, configuration errors, an unusable header value, credentials in
//! the address), must never appear — verbatim or base64-encoded as in the `Authorization` header — in what
//! either remote face shows: the plugin's stderr (hclog lines at trace level, as the controller re-logs them),
//! measurement messages, values and metadata, gRPC replies and `/metrics`.
//!
//! Needs `go` on PATH (the plugin-mode face, see `tests/support/faces.rs`).
use crate::support;

use crate::support::faces;
use crate::support::faults;

use std::io::Read;
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use faces::Reply;
use serde_json::{json, Value};
use support::fake_prometheus::{Reply as FakeReply, Scenario};

const TOKEN: &str = "tok-S3CRET-bearer-7f3a";
const PASSWORD: &str = "pw-S3CRET-basic-91c2";
const HEADER: &str = "hdr-S3CRET-custom-c0de";

/// Every string that must never be shown: the three secrets and the basic-auth header's base64 payload.
fn forbidden() -> Vec<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("reader:{PASSWORD}"));
    vec![TOKEN.into(), PASSWORD.into(), HEADER.into(), basic]
}

/// The credential variants every failure path is forced with.
fn with_credentials(mut config: Value, variant: usize) -> Value {
    let extra = match variant {
        0 => json!({"bearerToken": TOKEN, "headers": {"X-Api-Key": HEADER}}),
        _ => {
            json!({"basicAuth": {"username": "reader", "password": PASSWORD}, "headers": {"X-Api-Key": HEADER}})
        }
    };
    if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    config
}

/// A hostile Prometheus that copies every request header into its answer, in each way an answer is shown.
fn echoes() -> Vec<faults::Fault> {
    let headers = |r: &support::fake_prometheus::RecordedRequest| format!("{:?}", r.headers);
    vec![
        faults::Fault {
            name: "echo in a 500 text body".into(),
            source: faults::Source::Fake(Scenario::handler(move |r| {
                FakeReply::text(500, &headers(r))
            })),
        },
        faults::Fault {
            name: "echo in a 400 JSON error".into(),
            source: faults::Source::Fake(Scenario::handler(move |r| {
                FakeReply::api_error(400, "bad_data", &headers(r))
            })),
        },
        faults::Fault {
            name: "echo in a 200 status:error".into(),
            source: faults::Source::Fake(Scenario::handler(move |r| FakeReply::Json {
                status: 200,
                body: json!({"status":"error","errorType":"execution","error": headers(r)})
                    .to_string(),
            })),
        },
        faults::Fault {
            name: "echo in warnings".into(),
            source: faults::Source::Fake(Scenario::handler(move |r| {
                FakeReply::json(
                    json!({"status":"success","warnings":[headers(r)],"data":{"resultType":"vector","result":[]}})
                        .to_string(),
                )
            })),
        },
        faults::Fault {
            name: "echo as a label value".into(),
            source: faults::Source::Fake(Scenario::handler(move |r| {
                let h = headers(r);
                let labels: &[(&str, &str)] = &[("pod", "web-6c8d7f9a1-aaaaa"), ("container", &h)];
                FakeReply::vector(&[(labels, faults::evaluated_at(r), "NaN")])
            })),
        },
        faults::Fault {
            name: "echo in a non-JSON 200".into(),
            source: faults::Source::Fake(Scenario::handler(move |r| FakeReply::Raw {
                status: 200,
                content_type: Some("text/html".into()),
                headers: vec![],
                body: headers(r).into_bytes(),
            })),
        },
    ]
}

/// Every configuration of the run: every fault × two guardrails × both credential variants, then the
/// configuration-error paths.
async fn configurations() -> (Vec<Value>, Vec<faults::Running>) {
    let mut running = Vec::new();
    for fault in faults::all().into_iter().chain(echoes()) {
        running.push(fault.start().await);
    }
    let mut configs = Vec::new();
    for fault in &running {
        for g in ["restarts", "query"] {
            if faults::scalar_is_legitimate(&fault.name, g) {
                continue;
            }
            for variant in 0..2 {
                configs.push(with_credentials(faults::config(g, &fault.address), variant));
            }
        }
    }
    let address = running[0].address.clone();
    configs.extend([
        // A typo beside the secrets: the error names keys, never values.
        json!({"guardrail": "restarts", "address": address, "bearerToken": TOKEN, "thresold": 1}),
        // Two authentications at once.
        json!({"guardrail": "restarts", "address": address, "bearerToken": TOKEN,
               "basicAuth": {"username": "reader", "password": PASSWORD}}),
        // Header values that cannot be sent.
        json!({"guardrail": "restarts", "address": address, "headers": {"X-Api-Key": format!("{HEADER}\r\nX-Injected: 1")}}),
        json!({"guardrail": "restarts", "address": address, "headers": {"X-Api-Key": format!("{HEADER}\u{0}")}}),
        // Secrets of the wrong type.
        json!({"guardrail": "restarts", "address": address, "bearerToken": [TOKEN]}),
        json!({"guardrail": "restarts", "address": address, "headers": {"X-Api-Key": {"v": HEADER}}}),
        json!({"guardrail": "restarts", "address": address, "basicAuth": {"username": "reader", "password": 7, "x": PASSWORD}}),
        // Credentials in the address, reachable and not.
        json!({"guardrail": "restarts", "address": format!("http://reader:{PASSWORD}@127.0.0.1:1/")}),
        json!({"guardrail": "restarts", "address": format!("http://reader:{PASSWORD}@prometheus.guardrails.invalid/")}),
        json!({"guardrail": "restarts", "address": format!("http://reader:{PASSWORD}@[::1")}),
        json!({"guardrail": "restarts", "address": format!("ftp://reader:{PASSWORD}@host/")}),
        // Unknown guardrail, with every secret set.
        json!({"guardrail": "nope", "address": address, "bearerToken": TOKEN, "headers": {"X-Api-Key": HEADER}}),
    ]);
    (configs, running)
}

fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[track_caller]
fn assert_clean(place: &str, text: &str) {
    for secret in forbidden() {
        if let Some(at) = text.find(&secret) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(120)
                .map_or(0, |(i, _)| i);
            panic!(
                "{place} shows a secret: …{}…",
                &text[start..(at + secret.len()).min(text.len())]
            );
        }
    }
}

fn check_replies(face: &str, configs: &[Value], replies: &[Reply]) {
    assert_eq!(configs.len(), replies.len(), "{face}");
    for (config, reply) in configs.iter().zip(replies) {
        assert_eq!(
            reply.phase, "Failed",
            "{face}: every path here fails: {config} → {reply:?}"
        );
        assert!(!reply.message.is_empty(), "{face}: {config}");
        assert_clean(
            &format!("{face} reply to {}", config["address"]),
            &format!("{} {} {:?}", reply.message, reply.value, reply.metadata),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_plugin_stderr_replies_or_metrics() -> Result<()> {
    let (configs, _running) = configurations().await;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let plugin_configs = configs.clone();
    let scrape = format!("http://{metrics}/metrics");
    let session = tokio::task::spawn_blocking(move || {
        faces::plugin_mode_scraping(
            &plugin_configs,
            &[
                ("RUST_LOG", "trace"),
                ("GUARDRAILS_METRICS_LISTEN", &metrics),
            ],
            Some(&scrape),
        )
    })
    .await??;
    check_replies("plugin", &configs, &session.replies);
    ensure!(
        session.logs.contains("\"@level\"") || session.logs.contains("plugin"),
        "the host logged nothing for the plugin: the stderr check would prove nothing"
    );
    assert_clean("plugin stderr (host log)", &session.logs);
    let scraped = session.scraped.context("no /metrics scrape")?;
    ensure!(
        scraped.contains("# TYPE"),
        "/metrics answered without metrics: {scraped}"
    );
    assert_clean("plugin /metrics", &scraped);
    Ok(())
}

/// `rollouts-guardrails serve` as a child with trace logging; killed when dropped.
struct Server {
    child: Child,
    listen: String,
    metrics: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_grpc_replies_server_stderr_or_metrics() -> Result<()> {
    let (configs, _running) = configurations().await;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let child = Command::new(env!("CARGO_BIN_EXE_rollouts-guardrails"))
        .args(["serve", "--listen", &listen, "--metrics-listen", &metrics])
        .env("RUST_LOG", "trace")
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut server = Server {
        child,
        listen,
        metrics,
    };
    // Drained as it comes: a full pipe would block the server's logging.
    let mut pipe = server.child.stderr.take().context("the server's stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let channel = loop {
        match tonic::transport::Channel::from_shared(format!("http://{}", server.listen))?
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("the gRPC server never listened")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let client =
        rollouts_guardrails::service::grpc::pb::metric_provider_client::MetricProviderClient::new(
            channel,
        );
    let mut calls = Vec::new();
    for config in &configs {
        let mut client = client.clone();
        let config = config.clone();
        calls.push(tokio::spawn(async move {
            faces::grpc_run(&mut client, &config).await
        }));
    }
    let mut replies = Vec::new();
    for (call, config) in calls.into_iter().zip(&configs) {
        match call.await? {
            Ok(reply) => replies.push(reply),
            // A gRPC error is a reply too: its status message must be clean.
            Err(e) => {
                assert_clean(&format!("gRPC error for {config}"), &format!("{e:#} {e:?}"));
                replies.push(Reply {
                    phase: "Failed".into(),
                    message: format!("{e:#}"),
                    value: String::new(),
                    metadata: Default::default(),
                });
            }
        }
    }
    check_replies("gRPC", &configs, &replies);
    let scraped = reqwest::get(format!("http://{}/metrics", server.metrics))
        .await?
        .text()
        .await?;
    ensure!(
        scraped.contains("# TYPE"),
        "/metrics answered without metrics: {scraped}"
    );
    assert_clean("gRPC /metrics", &scraped);
    let _ = server.child.kill();
    let _ = server.child.wait();
    let stderr = stderr
        .join()
        .map_err(|_| anyhow::anyhow!("the stderr reader panicked"))?;
    ensure!(
        !stderr.is_empty(),
        "the server logged nothing at trace level: the check would prove nothing"
    );
    assert_clean("gRPC server stderr", &stderr);
    Ok(())
}
