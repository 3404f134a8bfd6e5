//! The gRPC face through a tonic client: the seven calls against a real Prometheus serving the canonical
//! fixture, plugin-mode semantics for bad requests, INVALID_ARGUMENT for malformed ones, deadlines, the
//! measurement limit, graceful drain, TLS and mutual TLS with a CA made at test time, health and `/metrics`.
//! Servers are started in-process on `127.0.0.1:0`.
use crate::support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use rollouts_guardrails::engine::{Engine, GuardrailKind, PLUGIN_NAME};
use rollouts_guardrails::prometheus::Client;
use rollouts_guardrails::service::grpc::pb::metric_provider_client::MetricProviderClient;
use rollouts_guardrails::service::grpc::pb::{self, Phase};
use rollouts_guardrails::service::grpc::{GrpcServer, ServeError, TlsFiles, SERVICE_NAME};
use rollouts_guardrails::telemetry;
use support::fake_prometheus::{FakePrometheus, Reply, Scenario};
use support::scenarios::{self, END, PAY_API, SHOP_WEB};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A server running in this process.
struct Running {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    async fn start(server: GrpcServer) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(server.run(listener, async move {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop: Some(stop),
            served,
        }
    }

    async fn client(&self) -> MetricProviderClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.address))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        MetricProviderClient::new(channel)
    }

    /// Asks for shutdown and waits for the server to finish draining.
    async fn shut_down(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.served.await.expect("the server task")
    }
}

fn engine() -> Engine {
    Engine::new(Client::new(), None).observed_by(telemetry::global())
}

fn at_end() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: END,
        nanos: 0,
    }
}

/// The AnalysisRun context Argo sends for the canary of `scenario`.
fn context(scenario: &scenarios::Scenario) -> pb::AnalysisContext {
    pb::AnalysisContext {
        namespace: scenario.namespace.to_string(),
        name: format!("{}-{}-2", scenario.rollout, scenario.hash),
        uid: "3f1c2d4e".into(),
        labels: BTreeMap::from([(
            "rollouts-pod-template-hash".to_string(),
            scenario.hash.to_string(),
        )]),
        owner_references: vec![pb::OwnerReference {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            name: scenario.rollout.to_string(),
            uid: "9a8b7c6d".into(),
            controller: true,
        }],
        args: BTreeMap::new(),
        proven_metrics: Vec::new(),
    }
}

fn metric(config: &str) -> pb::Metric {
    pb::Metric {
        name: "guard".into(),
        plugin_config_json: Some(config.to_string()),
        success_condition: String::new(),
        failure_condition: String::new(),
    }
}

fn run_request(
    analysis: Option<pb::AnalysisContext>,
    metric: Option<pb::Metric>,
) -> pb::RunRequest {
    pb::RunRequest {
        analysis,
        metric,
        evaluation_time: Some(at_end()),
    }
}

async fn run(
    client: &mut MetricProviderClient<Channel>,
    request: pb::RunRequest,
) -> Result<pb::Measurement> {
    client
        .run(request)
        .await?
        .into_inner()
        .measurement
        .context("Run answered without a measurement")
}

/// A fake Prometheus answering every query with `vector(1)` after `delay`.
async fn slow_prometheus(delay: Duration) -> FakePrometheus {
    FakePrometheus::start(Scenario::Always(Reply::SlowFirstByte {
        delay,
        then: Box::new(Reply::vector(&[(&[], END as f64, "1")])),
    }))
    .await
}

/// A `query` guardrail that passes when Prometheus answers 1.
fn query_config(fake: &FakePrometheus) -> String {
    format!(
        r#"{{"guardrail":"query","query":"vector(1)","threshold":5,"timeout":"1m","address":"{}"}}"#,
        fake.url()
    )
}

fn phase(measurement: &pb::Measurement) -> Phase {
    Phase::try_from(measurement.phase).expect("a known phase")
}

#[tokio::test]
async fn all_seven_calls_against_a_real_prometheus() -> Result<()> {
    let prometheus = support::prometheus::shared();
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;
    let restarts = format!(
        r#"{{"guardrail":"restarts","address":"{}"}}"#,
        prometheus.url()
    );

    client.init_plugin(pb::InitPluginRequest {}).await?;

    let healthy = run(
        &mut client,
        run_request(Some(context(&SHOP_WEB)), Some(metric(&restarts))),
    )
    .await?;
    assert_eq!(phase(&healthy), Phase::Successful, "{}", healthy.message);
    assert_eq!(healthy.value, "0");
    assert_eq!(healthy.metadata["guardrail"], "restarts");
    assert_eq!(
        healthy.metadata["target"],
        format!("{}/{}", SHOP_WEB.namespace, SHOP_WEB.replica_set())
    );
    assert_eq!(healthy.metadata["evaluatedAt"], scenarios::END_RFC3339);
    assert!(healthy.started_at.is_some() && healthy.finished_at.is_some());

    let crashing = run(
        &mut client,
        run_request(Some(context(&PAY_API)), Some(metric(&restarts))),
    )
    .await?;
    assert_eq!(phase(&crashing), Phase::Failed);
    assert_eq!(crashing.metadata["failure"], "threshold");
    assert!(
        crashing.message.contains(scenarios::PAY_API_CRASHING_POD),
        "{}",
        crashing.message
    );

    let resumed = client
        .resume(pb::ResumeRequest {
            analysis: Some(context(&PAY_API)),
            metric: Some(metric(&restarts)),
            measurement: Some(crashing.clone()),
        })
        .await?
        .into_inner()
        .measurement;
    assert_eq!(
        resumed.as_ref(),
        Some(&crashing),
        "Resume returns the measurement given"
    );

    let unfinished = pb::Measurement {
        finished_at: None,
        ..crashing.clone()
    };
    let before = SystemTime::now();
    let terminated = client
        .terminate(pb::TerminateRequest {
            analysis: Some(context(&PAY_API)),
            metric: Some(metric(&restarts)),
            measurement: Some(unfinished),
        })
        .await?
        .into_inner()
        .measurement
        .context("Terminate answered without a measurement")?;
    assert_eq!(phase(&terminated), Phase::Failed, "the phase is kept");
    assert_eq!(terminated.message, crashing.message);
    let finished = SystemTime::try_from(terminated.finished_at.context("finished_at")?)?;
    assert!(finished >= before - Duration::from_secs(1));

    client
        .garbage_collect(pb::GarbageCollectRequest {
            analysis: Some(context(&PAY_API)),
            metric: Some(metric(&restarts)),
            limit: 10,
        })
        .await?;

    let kind = client.r#type(pb::TypeRequest {}).await?.into_inner().r#type;
    assert_eq!(kind, PLUGIN_NAME);

    let metadata = client
        .get_metadata(pb::GetMetadataRequest {
            metric: Some(metric(&restarts)),
        })
        .await?
        .into_inner()
        .metadata;
    assert_eq!(metadata["guardrail"], "restarts");
    assert_eq!(
        metadata["prometheus"].trim_end_matches('/'),
        prometheus.url()
    );
    assert!(
        metadata
            .iter()
            .any(|(k, v)| k.starts_with("query.") && v.contains("<namespace>")),
        "{metadata:?}"
    );
    server.shut_down().await?;
    Ok(())
}

/// `regression` with `method: mann-whitney` through gRPC gives the engine's verdicts: the slow canary of the
/// rank-test fixture fails, the spiky one passes, with the samples and the test's outcome in metadata.
#[tokio::test]
async fn the_rank_test_regression_through_grpc() -> Result<()> {
    let prometheus = support::prometheus::TestPrometheus::start(&scenarios::render_ranked());
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;
    let config = |stable: &scenarios::Scenario| {
        format!(
            r#"{{"guardrail":"regression","signal":"latency","quantile":0.99,"window":"20m","method":"mann-whitney","stablePodTemplateHash":"{}","address":"{}"}}"#,
            stable.hash,
            prometheus.url()
        )
    };
    let slow = run(
        &mut client,
        run_request(
            Some(context(&scenarios::RANKED_SLOW)),
            Some(metric(&config(&scenarios::RANKED_SLOW_STABLE))),
        ),
    )
    .await?;
    assert_eq!(phase(&slow), Phase::Failed, "{}", slow.message);
    assert_eq!(slow.metadata["failure"], "threshold");
    assert!(
        slow.message.contains("(×1.50 > 1.10), Mann-Whitney p = 3.4e-08 < 0.05 on 20 vs 20 one-minute samples: regression"),
        "{}",
        slow.message
    );
    assert_eq!(slow.metadata["mann-whitney.samples"], "20 vs 20");
    assert_eq!(slow.metadata["samples.canary"].split(',').count(), 20);
    let spiky = run(
        &mut client,
        run_request(
            Some(context(&scenarios::RANKED_SPIKY)),
            Some(metric(&config(&scenarios::RANKED_SPIKY_STABLE))),
        ),
    )
    .await?;
    assert_eq!(phase(&spiky), Phase::Successful, "{}", spiky.message);
    assert!(
        spiky.message.contains("no regression (not significant)"),
        "{}",
        spiky.message
    );
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn bad_requests_are_failed_measurements_as_in_plugin_mode() -> Result<()> {
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;

    let no_metric = run(&mut client, run_request(Some(context(&SHOP_WEB)), None)).await?;
    assert_eq!(phase(&no_metric), Phase::Failed);
    assert_eq!(
        no_metric.message,
        "cannot read the Run arguments: no metric"
    );

    let invalid_json = run(
        &mut client,
        run_request(Some(context(&SHOP_WEB)), Some(metric("{not json"))),
    )
    .await?;
    assert_eq!(phase(&invalid_json), Phase::Failed);
    assert_eq!(invalid_json.metadata["failure"], "config");
    assert!(
        invalid_json
            .message
            .starts_with("invalid plugin configuration:"),
        "{}",
        invalid_json.message
    );

    let unconfigured = run(
        &mut client,
        run_request(
            Some(context(&SHOP_WEB)),
            Some(pb::Metric {
                plugin_config_json: None,
                ..metric("")
            }),
        ),
    )
    .await?;
    assert_eq!(phase(&unconfigured), Phase::Failed);
    assert!(
        unconfigured.message.contains(PLUGIN_NAME),
        "{}",
        unconfigured.message
    );

    let no_context = run(
        &mut client,
        run_request(
            None,
            Some(metric(
                r#"{"guardrail":"restarts","address":"http://127.0.0.1:1"}"#,
            )),
        ),
    )
    .await?;
    assert_eq!(phase(&no_context), Phase::Failed);
    assert!(
        no_context
            .message
            .starts_with("cannot determine the target: missing namespace"),
        "{}",
        no_context.message
    );

    let no_measurement = client
        .resume(pb::ResumeRequest::default())
        .await?
        .into_inner()
        .measurement
        .context("Resume answered without a measurement")?;
    assert_eq!(phase(&no_measurement), Phase::Failed);

    let no_metadata = client
        .get_metadata(pb::GetMetadataRequest { metric: None })
        .await?
        .into_inner()
        .metadata;
    assert!(no_metadata.is_empty());
    let bad_config = client
        .get_metadata(pb::GetMetadataRequest {
            metric: Some(metric(r#"{"guardrail":"nope"}"#)),
        })
        .await?
        .into_inner()
        .metadata;
    assert!(bad_config.contains_key("error"), "{bad_config:?}");
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn only_malformed_requests_are_invalid_argument() -> Result<()> {
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;

    let unspecified = client
        .resume(pb::ResumeRequest {
            measurement: Some(pb::Measurement::default()),
            ..Default::default()
        })
        .await
        .expect_err("an unspecified phase is malformed");
    assert_eq!(unspecified.code(), Code::InvalidArgument);
    assert!(unspecified.message().contains("measurement.phase"));

    let unknown = client
        .terminate(pb::TerminateRequest {
            measurement: Some(pb::Measurement {
                phase: 42,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("an unknown phase is malformed");
    assert_eq!(unknown.code(), Code::InvalidArgument);

    let mut out_of_range = run_request(Some(context(&SHOP_WEB)), Some(metric("{}")));
    out_of_range.evaluation_time = Some(prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    });
    let status = client
        .run(out_of_range)
        .await
        .expect_err("a timestamp out of range is malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("evaluation_time"));
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn the_request_deadline_is_honoured() -> Result<()> {
    let fake = slow_prometheus(Duration::from_secs(10)).await;
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;
    let mut request = tonic::Request::new(run_request(
        Some(context(&SHOP_WEB)),
        Some(metric(&query_config(&fake))),
    ));
    // A deadline the server answers ahead of (a tenth of it, 100 ms here), even on a loaded machine.
    request.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let status = client
        .run(request)
        .await
        .expect_err("Prometheus answers after the deadline");
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("request deadline"),
        "answered by the server, not the client: {status:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn measurements_beyond_the_limit_wait_for_a_slot() -> Result<()> {
    let fake = slow_prometheus(Duration::from_millis(700)).await;
    let server = Running::start(GrpcServer::new(engine()).max_concurrent_measurements(1)).await;
    let request = run_request(Some(context(&SHOP_WEB)), Some(metric(&query_config(&fake))));
    let mut first_client = server.client().await;
    let first_request = request.clone();
    let first = tokio::spawn(async move { run(&mut first_client, first_request).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut client = server.client().await;
    let mut waiting = tonic::Request::new(request.clone());
    waiting.set_timeout(Duration::from_millis(250));
    let status = client
        .run(waiting)
        .await
        .expect_err("the only slot is taken for longer than the deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded);

    let first = first.await??;
    assert_eq!(phase(&first), Phase::Successful, "{}", first.message);
    let next = run(&mut client, request).await?;
    assert_eq!(
        phase(&next),
        Phase::Successful,
        "the slot is free again: {}",
        next.message
    );
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_drains_in_flight_calls_and_refuses_new_ones() -> Result<()> {
    let fake = slow_prometheus(Duration::from_millis(800)).await;
    let server = Running::start(GrpcServer::new(engine())).await;
    let address = server.address;
    let mut client = server.client().await;
    let request = run_request(Some(context(&SHOP_WEB)), Some(metric(&query_config(&fake))));
    let in_flight = tokio::spawn(async move { run(&mut client, request).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.shut_down().await?;
    let measurement = in_flight.await??;
    assert_eq!(
        phase(&measurement),
        Phase::Successful,
        "the call in flight at shutdown completed: {}",
        measurement.message
    );
    let refused = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await;
    assert!(
        refused.is_err(),
        "a new connection after shutdown is refused"
    );
    Ok(())
}

#[tokio::test]
async fn the_drain_is_bounded_by_the_grace_period() -> Result<()> {
    let fake = slow_prometheus(Duration::from_secs(20)).await;
    let server =
        Running::start(GrpcServer::new(engine()).shutdown_grace(Duration::from_millis(300))).await;
    let mut client = server.client().await;
    let request = run_request(Some(context(&SHOP_WEB)), Some(metric(&query_config(&fake))));
    let _in_flight = tokio::spawn(async move { run(&mut client, request).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let result = server.shut_down().await;
    assert!(
        matches!(result, Err(ServeError::DrainTimedOut(grace)) if grace == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    Ok(())
}

#[tokio::test]
async fn health_reports_the_service_serving() -> Result<()> {
    let server = Running::start(GrpcServer::new(engine())).await;
    let channel = Channel::from_shared(format!("http://{}", server.address))?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel);
    for service in ["", SERVICE_NAME] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown services are not found");
    assert_eq!(unknown.code(), Code::NotFound);
    server.shut_down().await?;
    Ok(())
}

/// A CA, a server certificate for `localhost` and a client certificate, made now.
struct TestPki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl TestPki {
    fn make() -> Result<TestPki> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rollouts-guardrails test CA");
        let ca = ca_params.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec!["localhost".to_string()])?;
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(vec!["argo-rollouts".to_string()])?;
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca, &ca_key)?;

        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("server.pem"), server.pem())?;
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem())?;
        std::fs::write(dir.path().join("ca.pem"), ca.pem())?;
        Ok(TestPki {
            dir,
            ca_pem: ca.pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    fn files(&self, require_client_certificates: bool) -> TlsFiles {
        TlsFiles {
            cert: self.dir.path().join("server.pem"),
            key: self.dir.path().join("server.key"),
            client_ca: require_client_certificates.then(|| self.dir.path().join("ca.pem")),
        }
    }

    async fn client(
        &self,
        address: SocketAddr,
        with_certificate: bool,
    ) -> Result<MetricProviderClient<Channel>> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost");
        if with_certificate {
            tls = tls.identity(Identity::from_pem(
                &self.client_cert_pem,
                &self.client_key_pem,
            ));
        }
        let channel = Channel::from_shared(format!("https://{address}"))?
            .tls_config(tls)?
            .connect()
            .await?;
        Ok(MetricProviderClient::new(channel))
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca() -> Result<()> {
    let pki = TestPki::make()?;
    let server =
        Running::start(GrpcServer::new(engine()).tls(pki.files(false).load().await?)).await;
    let mut client = pki.client(server.address, false).await?;
    let kind = client.r#type(pb::TypeRequest {}).await?.into_inner().r#type;
    assert_eq!(kind, PLUGIN_NAME);

    let address = server.address;
    let plaintext = async move {
        let channel = Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        MetricProviderClient::new(channel)
            .r#type(pb::TypeRequest {})
            .await?;
        Ok::<_, anyhow::Error>(())
    };
    let plaintext = tokio::time::timeout(Duration::from_secs(5), plaintext).await;
    assert!(
        !matches!(plaintext, Ok(Ok(()))),
        "a plaintext client must not be served by a TLS server"
    );
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() -> Result<()> {
    let pki = TestPki::make()?;
    let server = Running::start(GrpcServer::new(engine()).tls(pki.files(true).load().await?)).await;
    let mut client = pki.client(server.address, true).await?;
    let kind = client.r#type(pb::TypeRequest {}).await?.into_inner().r#type;
    assert_eq!(kind, PLUGIN_NAME);

    let anonymous = match pki.client(server.address, false).await {
        Ok(mut client) => client.r#type(pb::TypeRequest {}).await.map(|_| ()).is_ok(),
        Err(_) => false,
    };
    assert!(!anonymous, "a client without a certificate is refused");
    server.shut_down().await?;
    Ok(())
}

#[tokio::test]
async fn tls_files_are_read_with_errors_naming_them() -> Result<()> {
    let pki = TestPki::make()?;
    let mut files = pki.files(true);
    files.key = pki.dir.path().join("missing.key");
    let error = files.load().await.expect_err("the key is missing");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read private key {}", files.key.display())),
        "{error}"
    );
    Ok(())
}

/// The plugin's `/metrics` endpoint on a free loopback port, stopped by [`MetricsEndpoint::stop`].
struct MetricsEndpoint {
    address: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl MetricsEndpoint {
    async fn start() -> Result<MetricsEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(telemetry::serve_metrics_on(listener, async move {
            let _ = stopped.await;
        }));
        Ok(MetricsEndpoint {
            address,
            stop,
            served,
        })
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.served).await??;
        Ok(())
    }
}

fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_measurements_by_guardrail_phase_and_class() -> Result<()> {
    let fake = slow_prometheus(Duration::from_millis(0)).await;
    let metrics = MetricsEndpoint::start().await?;
    let metrics_address = metrics.address;
    let scrape = || async {
        let response = reqwest::get(format!("http://{metrics_address}/metrics")).await?;
        anyhow::ensure!(response.status() == 200, "status {}", response.status());
        let content_type = response.headers()["content-type"].to_str()?.to_string();
        anyhow::ensure!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        Ok::<_, anyhow::Error>(response.text().await?)
    };
    let successful =
        r#"rollouts_guardrails_measurements_total{guardrail="query",phase="Successful"}"#;
    let config = r#"rollouts_guardrails_measurement_failures_total{class="config"}"#;
    let latency = r#"rollouts_guardrails_prometheus_query_duration_seconds_count{outcome="ok"}"#;
    let before = scrape().await?;

    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;
    let passed = run(
        &mut client,
        run_request(Some(context(&SHOP_WEB)), Some(metric(&query_config(&fake)))),
    )
    .await?;
    assert_eq!(phase(&passed), Phase::Successful, "{}", passed.message);
    let failed = run(
        &mut client,
        run_request(Some(context(&SHOP_WEB)), Some(metric("[]"))),
    )
    .await?;
    assert_eq!(phase(&failed), Phase::Failed);

    let after = scrape().await?;
    for series in [successful, config, latency] {
        assert!(
            series_value(&after, series) >= series_value(&before, series) + 1.0,
            "{series} did not grow"
        );
    }
    assert!(after.contains("rollouts_guardrails_build_info{version=\""));
    assert!(
        !after.contains(&fake.url().to_string()) && !after.contains("127.0.0.1"),
        "no address or query leaks into /metrics"
    );
    server.shut_down().await?;
    metrics.stop().await?;
    Ok(())
}

/// One minimal configuration per guardrail (every one of `GuardrailKind::ALL`).
fn one_of_each(fake: &FakePrometheus) -> Vec<(GuardrailKind, String)> {
    GuardrailKind::ALL
        .into_iter()
        .map(|kind| {
            let extra = match kind {
                GuardrailKind::Latency => r#","threshold":1"#,
                GuardrailKind::Regression => {
                    r#","signal":"cpu","stablePodTemplateHash":"0a9b8c7d6""#
                }
                GuardrailKind::Gitops => r#","application":"web""#,
                GuardrailKind::Query => r#","query":"vector(1)","threshold":5"#,
                _ => "",
            };
            let config = format!(
                r#"{{"guardrail":"{}","address":"{}"{extra}}}"#,
                kind.name(),
                fake.url()
            );
            (kind, config)
        })
        .collect()
}

#[tokio::test]
async fn metrics_label_every_guardrail_after_one_measurement_of_each() -> Result<()> {
    let fake = slow_prometheus(Duration::from_millis(0)).await;
    let metrics = MetricsEndpoint::start().await?;
    let metrics_address = metrics.address;
    let scrape = || async {
        let response = reqwest::get(format!("http://{metrics_address}/metrics")).await?;
        Ok::<_, anyhow::Error>(response.text().await?)
    };
    let measured = |text: &str, guardrail: &str| {
        ["Successful", "Failed", "Error"]
            .iter()
            .map(|phase| {
                let series = format!(
                    r#"rollouts_guardrails_measurements_total{{guardrail="{guardrail}",phase="{phase}"}}"#
                );
                text.lines()
                    .find_map(|l| l.strip_prefix(series.as_str())?.strip_prefix(' '))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let before = scrape().await?;
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;
    for (kind, config) in one_of_each(&fake) {
        let m = run(
            &mut client,
            run_request(Some(context(&SHOP_WEB)), Some(metric(&config))),
        )
        .await?;
        assert_ne!(
            m.metadata.get("failure").map(String::as_str),
            Some("config"),
            "{}: {}",
            kind.name(),
            m.message
        );
    }
    let after = scrape().await?;
    for kind in GuardrailKind::ALL {
        assert!(
            measured(&after, kind.name()) >= measured(&before, kind.name()) + 1.0,
            "guardrail=\"{}\" did not grow:\n{after}",
            kind.name()
        );
    }
    server.shut_down().await?;
    metrics.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_metric_the_caller_marks_proven_is_answered_at_once_never_settled() -> Result<()> {
    // No series at all, evaluated now with `settle: 10m`: a first measurement settles (Running, resumeAt); once
    // the metric has been Successful in this AnalysisRun the absence is data that stopped, Failed at once.
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let server = Running::start(GrpcServer::new(engine())).await;
    let mut client = server.client().await;
    let config = format!(
        r#"{{"guardrail":"restarts","address":"{}","settle":"10m","timeout":"2s"}}"#,
        fake.url()
    );
    let request = |proven_metrics: Vec<String>| pb::RunRequest {
        analysis: Some(pb::AnalysisContext {
            proven_metrics,
            ..context(&SHOP_WEB)
        }),
        metric: Some(metric(&config)),
        evaluation_time: None,
    };
    let first = run(&mut client, request(Vec::new())).await?;
    assert_eq!(phase(&first), Phase::Running, "{}", first.message);
    assert!(
        first.resume_at.is_some(),
        "a settling measurement says when to resume"
    );
    let proven = run(&mut client, request(vec!["guard".into()])).await?;
    assert_eq!(phase(&proven), Phase::Failed, "{}", proven.message);
    assert!(
        proven
            .message
            .contains("no fresh kube-state-metrics series"),
        "{}",
        proven.message
    );
    server.shut_down().await?;
    Ok(())
}
