//! `unprovenPhase` through the engine, the gRPC face and `check`: an unproven class (here `no-traffic`, a
//! low-traffic canary whose pods are proven) reports the mapped phase with the reason and the class kept in
//! `metadata.failure`; a proven violation stays Failed; during `settle` the measurement is Running, after it
//! the mapped phase; `Successful` and unknown classes are configuration errors. Plugin mode through argo's
//! own client is in the conformance harness (`tests/go/conformance/harness/settle.go`).
use crate::support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rollouts_guardrails::engine::measure::metadata_key;
use rollouts_guardrails::engine::{Engine, Measurement, MetricSpec, Phase};
use rollouts_guardrails::prometheus::Client;
use rollouts_guardrails::service::grpc::pb::metric_provider_client::MetricProviderClient;
use rollouts_guardrails::service::grpc::{pb, GrpcServer};
use serde_json::{json, Value};
use support::analysis;
use support::fake_cluster::{prometheus, Cluster};
use support::fake_prometheus::FakePrometheus;
use tokio::net::TcpListener;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");

fn config(fake: &FakePrometheus, extra: Value) -> Value {
    let mut config =
        json!({"guardrail": "error-rate", "address": fake.url().as_str(), "timeout": "2s"});
    config
        .as_object_mut()
        .expect("object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    config
}

fn metric(config: &Value) -> MetricSpec {
    analysis::metric("errors", config)
}

fn low_traffic() -> Value {
    json!({"unprovenPhase": {"no-traffic": "Inconclusive"}})
}

async fn measure(cluster: Cluster, extra: Value) -> Measurement {
    let cluster = Arc::new(Mutex::new(cluster));
    let fake = prometheus(&cluster).await;
    Engine::new(Client::new(), None)
        .measure(&analysis::shop_web(), &metric(&config(&fake, extra)))
        .await
}

#[tokio::test]
async fn a_quiet_canary_is_inconclusive_with_the_reason_and_the_class() {
    // 3 requests in the window, minRequests 10, the pod an hour old: no-traffic, not settling.
    let m = measure(Cluster::serving(Some(3.0)), low_traffic()).await;
    assert_eq!(m.phase, Phase::Inconclusive, "{m:#?}");
    assert_eq!(m.metadata[metadata_key::FAILURE], "no-traffic");
    assert!(
        m.message
            .starts_with("not enough traffic to judge ReplicaSet shop/web-6c8d7f9a1: 3 requests"),
        "{}",
        m.message
    );
    assert!(m.finished_at.is_some());
    let unmapped = measure(Cluster::serving(Some(3.0)), json!({})).await;
    assert_eq!(
        unmapped.phase,
        Phase::Failed,
        "without unprovenPhase: Failed"
    );
    assert_eq!(unmapped.metadata[metadata_key::FAILURE], "no-traffic");
}

#[tokio::test]
async fn a_proven_violation_stays_failed_whatever_is_mapped() {
    let all = json!({"unprovenPhase": {
        "no-traffic": "Inconclusive", "no-data": "Inconclusive", "stale": "Error",
        "query-error": "Error", "timeout": "Error"
    }});
    let m = measure(
        Cluster {
            errors: 50.0,
            ..Cluster::serving(Some(100.0))
        },
        all,
    )
    .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    assert_eq!(m.metadata[metadata_key::FAILURE], "threshold");
    let healthy = measure(Cluster::serving(Some(100.0)), low_traffic()).await;
    assert_eq!(healthy.phase, Phase::Successful, "{healthy:#?}");
}

#[tokio::test]
async fn during_settle_running_then_the_mapped_phase() {
    // No request series yet: absence so far, Running while settle lasts.
    let m = measure(
        Cluster::serving(None),
        json!({"unprovenPhase": {"no-traffic": "Inconclusive"}, "settle": "1m"}),
    )
    .await;
    assert_eq!(m.phase, Phase::Running, "{m:#?}");
    assert_eq!(m.metadata[metadata_key::WAITING_FOR], "request-series");
    assert!(!m.metadata.contains_key(metadata_key::FAILURE));
    // The same measurement resumed after its settle is over: the mapped phase, saying it waited.
    let cluster = Arc::new(Mutex::new(Cluster::serving(None)));
    let fake = prometheus(&cluster).await;
    let config = config(
        &fake,
        json!({"unprovenPhase": {"no-traffic": "Inconclusive"}, "settle": "1m"}),
    );
    let long_ago = SystemTime::now() - std::time::Duration::from_secs(61);
    let resumed = Engine::new(Client::new(), None)
        .resume(&analysis::shop_web(), &metric(&config), long_ago)
        .await;
    assert_eq!(resumed.phase, Phase::Inconclusive, "{resumed:#?}");
    assert_eq!(resumed.metadata[metadata_key::FAILURE], "no-traffic");
    assert!(
        resumed
            .message
            .ends_with("after waiting 1m for request series for the canary"),
        "{}",
        resumed.message
    );
    assert_eq!(resumed.started_at, Some(long_ago));
}

#[tokio::test]
async fn successful_and_unknown_classes_are_configuration_errors() {
    for (phases, expected) in [
        (json!({"no-traffic": "Successful"}), "invalid plugin configuration: key `unprovenPhase.no-traffic`: `Successful` is never allowed"),
        (json!({"no-trafic": "Inconclusive"}), "invalid plugin configuration: unknown key `unprovenPhase.no-trafic`; did you mean `no-traffic`?"),
        (json!({"threshold": "Inconclusive"}), "invalid plugin configuration: key `unprovenPhase.threshold`: `threshold` is always Failed"),
    ] {
        let m = measure(Cluster::serving(Some(3.0)), json!({"unprovenPhase": phases})).await;
        assert_eq!(m.phase, Phase::Failed, "{m:#?}");
        assert_eq!(m.metadata[metadata_key::FAILURE], "config");
        assert!(m.message.starts_with(expected), "{}", m.message);
    }
}

#[tokio::test]
async fn through_grpc_the_phase_and_the_class_arrive() {
    let cluster = Arc::new(Mutex::new(Cluster::serving(Some(3.0))));
    let fake = prometheus(&cluster).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(GrpcServer::new(Engine::new(Client::new(), None)).run(
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = MetricProviderClient::new(channel);
    let analysis = pb::AnalysisContext {
        namespace: "shop".into(),
        labels: BTreeMap::from([(
            "rollouts-pod-template-hash".to_string(),
            "6c8d7f9a1".to_string(),
        )]),
        owner_references: vec![pb::OwnerReference {
            kind: "Rollout".into(),
            name: "web".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let run = |extra: Value| pb::RunRequest {
        analysis: Some(analysis.clone()),
        metric: Some(pb::Metric {
            name: "errors".into(),
            plugin_config_json: Some(config(&fake, extra).to_string()),
            success_condition: String::new(),
            failure_condition: String::new(),
        }),
        evaluation_time: None,
    };
    let inconclusive = client
        .run(run(low_traffic()))
        .await
        .expect("run")
        .into_inner()
        .measurement
        .expect("measurement");
    assert_eq!(
        inconclusive.phase(),
        pb::Phase::Inconclusive,
        "{inconclusive:?}"
    );
    assert_eq!(inconclusive.metadata["failure"], "no-traffic");
    assert!(inconclusive.finished_at.is_some());
    let error = client
        .run(run(json!({"unprovenPhase": {"no-traffic": "Error"}})))
        .await
        .expect("run")
        .into_inner()
        .measurement
        .expect("measurement");
    assert_eq!(error.phase(), pb::Phase::Error, "{error:?}");
    // Settling through gRPC: Running with resume_at and no finished_at; Resume re-evaluates on started_at.
    cluster.lock().expect("cluster").requests = None;
    let running = client
        .run(run(json!({"settle": "1m"})))
        .await
        .expect("run")
        .into_inner()
        .measurement
        .expect("measurement");
    assert_eq!(running.phase(), pb::Phase::Running, "{running:?}");
    assert!(running.resume_at.is_some() && running.finished_at.is_none());
    assert_eq!(running.metadata["waitingFor"], "request-series");
    cluster.lock().expect("cluster").requests = Some(100.0);
    let request = run(json!({"settle": "1m"}));
    let resumed = client
        .resume(pb::ResumeRequest {
            analysis: request.analysis,
            metric: request.metric,
            measurement: Some(running.clone()),
        })
        .await
        .expect("resume")
        .into_inner()
        .measurement
        .expect("measurement");
    assert_eq!(resumed.phase(), pb::Phase::Successful, "{resumed:?}");
    assert_eq!(resumed.started_at, running.started_at, "one timeline");
    assert!(resumed.finished_at.is_some() && resumed.resume_at.is_none());
    // Terminated while settling: Failed (never left Running with a finish time), the reason kept.
    let terminated = client
        .terminate(pb::TerminateRequest {
            analysis: None,
            metric: None,
            measurement: Some(running.clone()),
        })
        .await
        .expect("terminate")
        .into_inner()
        .measurement
        .expect("measurement");
    assert_eq!(terminated.phase(), pb::Phase::Failed, "{terminated:?}");
    assert!(terminated.message.starts_with(
        "terminated by the controller before the measurement was proven: waiting for"
    ));
    assert!(terminated.finished_at.is_some() && terminated.resume_at.is_none());
    let _ = stop.send(());
    served.await.expect("server task").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_phase_and_exits_1_for_anything_not_successful() {
    let cluster = Arc::new(Mutex::new(Cluster::serving(Some(3.0))));
    let fake = prometheus(&cluster).await;
    let url = fake.url().to_string();
    let check = move |extra: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "check",
                "--prometheus",
                &url,
                "--guardrail",
                "error-rate",
                "--namespace",
                "shop",
                "--rollout",
                "web",
                "--pod-template-hash",
                "6c8d7f9a1",
                "--output",
                "json",
            ];
            args.extend(extra);
            Command::new(BIN).args(&args).output().expect("run check")
        })
    };
    let out = check(vec![
        "--set",
        r#"unprovenPhase={"no-traffic":"Inconclusive"}"#,
    ])
    .await
    .expect("join");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(row["phase"], "Inconclusive", "{row}");
    assert_eq!(row["metadata"]["failure"], "no-traffic");
    // check --settle: no request series for the first two measurements (5 queries each), then traffic; the
    // measurement settles into Successful.
    {
        let mut c = cluster.lock().expect("cluster");
        c.requests = Some(100.0);
        c.requests_from = fake.requests().len() + 10;
    }
    let out = check(vec!["--settle", "6s"]).await.expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let row: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(row["phase"], "Successful", "{row}\n{stderr}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stderr
            .matches("waiting for request series for the canary")
            .count(),
        2,
        "{stderr}"
    );
    cluster.lock().expect("cluster").requests = None;
    // Without --settle, absence is answered at once.
    let out = check(vec![]).await.expect("join");
    let row: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(row["phase"], "Failed", "{row}");
    assert!(
        !row["message"]
            .as_str()
            .unwrap_or("")
            .contains("after waiting"),
        "{row}"
    );
    // --settle with --at is refused.
    let out = check(vec!["--settle", "3s", "--at", "2026-01-01T00:00:00Z"])
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(2));
}
