//! The trust boundary between template authors and the controller (docs/security.md), through the engine
//! and the gRPC face, each with the strict policy plugin mode and `serve` use: a hostile template must never
//! make the plugin read a controller-side file, send the controller's credentials (token, basic auth, client
//! certificate, pinned tenant) to an address it chose, follow a redirect elsewhere, target another namespace,
//! or carry a byte of a non-Prometheus body into a message, metadata or log line. Every refusal has a
//! positive control beside it: the allowed case does send what it should, so each test can fail.
//! (Plugin mode through argo-rollouts' own client: `tests/go/conformance/harness/security.go`.)
use crate::support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rollouts_guardrails::engine::trust::{ControllerArgs, TrustPolicy};
use rollouts_guardrails::engine::{Engine, Measurement, MetricSpec, Phase};
use rollouts_guardrails::prometheus::files::{self, FileAccess, FileError};
use rollouts_guardrails::prometheus::Client;
use rollouts_guardrails::service::grpc::pb::metric_provider_client::MetricProviderClient;
use rollouts_guardrails::service::grpc::{pb, GrpcServer};
use serde_json::{json, Value};
use support::analysis;
use support::fake_prometheus::{FakePrometheus, RecordedRequest, Reply, Scenario};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CONTROLLER_TOKEN: &str = "ctl-TOKEN-5b1e";
const CONTROLLER_PASSWORD: &str = "ctl-PASSWORD-77a0";
const FILE_SECRET: &str = "FILE-CONTENT-MARKER-9d2c";
const BODY_MARKER: &str = "BODY-MARKER-e41f";

// ---------------------------------------------------------------- fixtures

/// Every log line of this test binary, at trace level (the plugin's own lines, as the controller re-logs them).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    support::logs::captured()
}

fn metric(config: &Value) -> MetricSpec {
    analysis::metric("guard", config)
}

fn restarts(extra: Value) -> Value {
    let mut config = json!({"guardrail": "restarts", "timeout": "5s"});
    if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    config
}

/// A Prometheus that answers an empty vector and records every request (headers included).
async fn echo() -> FakePrometheus {
    FakePrometheus::start(Scenario::Always(Reply::success(
        r#"{"resultType":"vector","result":[]}"#,
    )))
    .await
}

fn strict(args: ControllerArgs) -> Engine {
    let trust = TrustPolicy::strict(&args, None).expect("valid controller-side settings");
    Engine::with_trust(Client::new(), trust)
}

async fn measure(engine: &Engine, config: Value) -> Measurement {
    let _ = logs();
    engine
        .measure(&analysis::shop_web(), &metric(&config))
        .await
}

/// Everything a tenant can read of a measurement.
fn shown(m: &Measurement) -> String {
    format!("{} {} {:?}", m.message, m.value, m.metadata)
}

fn assert_config_refusal(m: &Measurement, wants: &[&str]) {
    assert_eq!(m.phase, Phase::Failed, "{}", m.message);
    assert_eq!(
        m.metadata.get("failure").map(String::as_str),
        Some("config"),
        "{}",
        m.message
    );
    for want in wants {
        assert!(m.message.contains(want), "{want:?} not in {}", m.message);
    }
}

fn authorization(r: &RecordedRequest) -> Option<&str> {
    r.header("authorization")
}

/// A directory tree: `creds/` (the credentials directory, with `token`, `password` and a Kubernetes-style
/// `..data` symlink), and `outside/secret` (a controller-side file).
struct Tree {
    root: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let root = tempfile::tempdir().expect("tempdir");
        let creds = root.path().join("creds");
        std::fs::create_dir_all(creds.join("..2026_12_01")).expect("mkdir");
        std::fs::write(creds.join("..2026_12_01/token"), "tenant-token-inside\n").expect("write");
        std::fs::write(
            creds.join("..2026_12_01/password"),
            "tenant-password-inside",
        )
        .expect("write");
        std::os::unix::fs::symlink("..2026_12_01", creds.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/token", creds.join("token")).expect("link");
        std::os::unix::fs::symlink("..data/password", creds.join("password")).expect("link");
        std::fs::create_dir(root.path().join("outside")).expect("mkdir");
        std::fs::write(root.path().join("outside/secret"), FILE_SECRET).expect("write");
        Tree { root }
    }
    fn creds(&self) -> PathBuf {
        self.root.path().join("creds")
    }
    fn outside(&self) -> PathBuf {
        self.root.path().join("outside/secret")
    }
}

// ---------------------------------------------------------------- rule 3: files

#[tokio::test]
async fn template_file_keys_are_refused_without_a_credentials_dir() {
    let tree = Tree::new();
    let fake = echo().await;
    let engine = strict(ControllerArgs::default());
    let file = tree.outside().display().to_string();
    let cases = [
        ("bearerTokenFile", json!({"bearerTokenFile": file})),
        (
            "basicAuth.passwordFile",
            json!({"basicAuth": {"username": "u", "passwordFile": file}}),
        ),
        ("tls.caFile", json!({"tls": {"caFile": file}})),
        (
            "tls.certFile",
            json!({"tls": {"certFile": file, "keyFile": file}}),
        ),
    ];
    for (key, extra) in cases {
        let mut extra = extra;
        extra["address"] = json!(fake.url().to_string());
        let m = measure(&engine, restarts(extra)).await;
        assert_config_refusal(&m, &[key, "--credentials-dir", "none is registered"]);
        assert!(!shown(&m).contains(FILE_SECRET), "{}", shown(&m));
    }
    assert!(
        fake.requests().is_empty(),
        "a refused template sent a query"
    );
}

#[tokio::test]
async fn files_inside_a_credentials_dir_are_sent_and_escapes_are_refused() {
    let tree = Tree::new();
    let fake = echo().await;
    let engine = strict(ControllerArgs {
        credentials_dirs: vec![tree.creds()],
        ..ControllerArgs::default()
    });
    let address = fake.url().to_string();
    // Positive controls: a file of the credentials directory (through Kubernetes' own symlinks) is sent.
    let m = measure(
        &engine,
        restarts(json!({"address": address, "bearerTokenFile": tree.creds().join("token")})),
    )
    .await;
    assert_not_refused(&m);
    let m = measure(
        &engine,
        restarts(json!({"address": address, "basicAuth": {"username": "team", "passwordFile": tree.creds().join("password")}})),
    )
    .await;
    assert_not_refused(&m);
    let sent: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| authorization(r).map(str::to_owned))
        .collect();
    assert!(
        sent.contains(&"Bearer tenant-token-inside".to_owned()),
        "{sent:?}"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("team:tenant-password-inside");
    assert!(sent.contains(&format!("Basic {basic}")), "{sent:?}");
    let before = fake.requests().len();

    // `..` and a symlink out of the directory, and the directory's own parent.
    std::os::unix::fs::symlink(tree.outside(), tree.creds().join("escape")).expect("link");
    std::os::unix::fs::symlink(
        tree.root.path().join("outside"),
        tree.creds().join("dir-escape"),
    )
    .expect("link");
    for path in [
        tree.creds().join("../outside/secret"),
        tree.creds().join("escape"),
        tree.creds().join("dir-escape/secret"),
        tree.outside(),
    ] {
        let m = measure(
            &engine,
            restarts(json!({"address": address, "bearerTokenFile": path})),
        )
        .await;
        assert_config_refusal(
            &m,
            &["bearerTokenFile", "is not inside a --credentials-dir"],
        );
        assert!(!shown(&m).contains(FILE_SECRET), "{}", shown(&m));
    }
    assert_eq!(fake.requests().len(), before, "an escape sent a query");
}

#[tokio::test]
async fn a_symlink_swapped_after_the_check_is_not_read() {
    let tree = Tree::new();
    let access = FileAccess::Within {
        allowed: vec![tree.creds().canonicalize().expect("creds")].into(),
        denied: Vec::new().into(),
    };
    // The leaf: checked while it is a regular file inside, swapped for a link out before the open.
    let leaf = tree.creds().join("rotating");
    std::fs::write(&leaf, "inside").expect("write");
    access.check(&leaf).expect("inside at check time");
    std::fs::remove_file(&leaf).expect("remove");
    std::os::unix::fs::symlink(tree.outside(), &leaf).expect("swap");
    assert!(matches!(
        files::open(&leaf, &access),
        Err(FileError::Outside)
    ));
    // A directory on the path: checked while real, swapped for a link to the outside directory.
    let sub = tree.creds().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(sub.join("secret"), "inside").expect("write");
    access
        .check(&sub.join("secret"))
        .expect("inside at check time");
    std::fs::remove_dir_all(&sub).expect("remove");
    std::os::unix::fs::symlink(tree.root.path().join("outside"), &sub).expect("swap");
    assert!(matches!(
        files::open(&sub.join("secret"), &access),
        Err(FileError::Outside)
    ));
    // Positive control: the same open reads a file that stayed inside.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut files::open(&tree.creds().join("token"), &access).expect("inside"),
        &mut text,
    )
    .expect("read");
    assert_eq!(text, "tenant-token-inside\n");
}

#[tokio::test]
async fn the_service_account_directory_is_never_allowed() {
    for dir in [
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "/run/secrets/kubernetes.io/serviceaccount",
        "/var/run/secrets/kubernetes.io/serviceaccount/../serviceaccount/",
    ] {
        let error = TrustPolicy::strict(
            &ControllerArgs {
                credentials_dirs: vec![dir.into()],
                ..ControllerArgs::default()
            },
            None,
        )
        .expect_err(dir);
        assert!(error.to_string().contains("service-account"), "{error}");
    }
    // A credentials directory above it does not open it either (refused before touching the filesystem).
    let error = TrustPolicy::strict(
        &ControllerArgs {
            credentials_dirs: vec!["/".into()],
            ..ControllerArgs::default()
        },
        None,
    );
    assert!(
        error.is_err(),
        "the root directory is no credentials directory"
    );
    let tmp = std::env::temp_dir().canonicalize().expect("tmp");
    let access = FileAccess::Within {
        allowed: vec![PathBuf::from("/var"), PathBuf::from("/run"), tmp].into(),
        denied: rollouts_guardrails::engine::trust::SERVICE_ACCOUNT_DIRS
            .iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
            .into(),
    };
    for path in [
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "/run/secrets/kubernetes.io/serviceaccount/token",
        "/var/run/secrets/kubernetes.io/serviceaccount/../serviceaccount/ca.crt",
    ] {
        assert!(
            matches!(access.check(Path::new(path)), Err(FileError::Denied)),
            "{path}"
        );
    }
}

// ---------------------------------------------------------------- rule 4: credentials, tenant, namespace

#[tokio::test]
async fn controller_credentials_never_reach_a_template_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), CONTROLLER_TOKEN).expect("write");
    std::fs::write(dir.path().join("password"), CONTROLLER_PASSWORD).expect("write");
    let controller = echo().await;
    let tenant_server = echo().await;
    let bearer = strict(ControllerArgs {
        address: Some(controller.url().to_string()),
        bearer_token_file: Some(dir.path().join("token")),
        tenant: Some("org-admin".into()),
        ..ControllerArgs::default()
    });
    let basic = strict(ControllerArgs {
        address: Some(controller.url().to_string()),
        basic_auth_username: Some("ctl".into()),
        basic_auth_password_file: Some(dir.path().join("password")),
        ..ControllerArgs::default()
    });
    for engine in [&bearer, &basic] {
        // Hostile: the template's own address (also spelled with a trailing path, a different case).
        for address in [
            tenant_server.url().to_string(),
            format!("{}prometheus/", tenant_server.url()),
        ] {
            measure(engine, restarts(json!({"address": address}))).await;
        }
        // Positive control: no address of its own, the controller's address and credentials.
        measure(engine, restarts(json!({}))).await;
    }
    let hostile = tenant_server.requests();
    assert!(!hostile.is_empty(), "the template's server was never asked");
    for r in &hostile {
        assert_eq!(authorization(r), None, "{:?}", r.headers);
        assert_eq!(r.header("x-scope-orgid"), None, "{:?}", r.headers);
        let all = format!("{:?}", r.headers);
        assert!(
            !all.contains(CONTROLLER_TOKEN) && !all.contains("ctl"),
            "{all}"
        );
    }
    let sent: Vec<String> = controller
        .requests()
        .iter()
        .filter_map(|r| authorization(r).map(str::to_owned))
        .collect();
    assert!(
        sent.contains(&format!("Bearer {CONTROLLER_TOKEN}")),
        "{sent:?}"
    );
    assert!(sent.iter().any(|a| a.starts_with("Basic ")), "{sent:?}");
    assert!(controller
        .requests()
        .iter()
        .any(|r| r.header("x-scope-orgid") == Some("org-admin")));
}

#[tokio::test]
async fn a_pinned_tenant_cannot_be_replaced_on_the_controller_address() {
    let controller = echo().await;
    let engine = strict(ControllerArgs {
        address: Some(controller.url().to_string()),
        tenant: Some("org-admin".into()),
        ..ControllerArgs::default()
    });
    for extra in [
        json!({"tenant": "org-other"}),
        json!({"headers": {"X-Scope-OrgID": "org-other"}}),
        json!({"address": controller.url().to_string(), "tenant": "org-other"}),
    ] {
        let m = measure(&engine, restarts(extra)).await;
        assert_config_refusal(&m, &["--tenant"]);
    }
    assert!(controller.requests().is_empty());
    // Positive control: the pinned tenant is sent.
    measure(&engine, restarts(json!({"tenant": "org-admin"}))).await;
    assert!(controller
        .requests()
        .iter()
        .all(|r| r.header("x-scope-orgid") == Some("org-admin")));
    assert!(!controller.requests().is_empty());
}

#[tokio::test]
async fn client_certificates_go_only_to_the_controller_address() {
    let pki = Pki::make();
    let controller = TlsEcho::start(&pki).await;
    let tenant_server = TlsEcho::start(&pki).await;
    let engine = strict(ControllerArgs {
        address: Some(controller.url()),
        tls_ca_file: Some(pki.dir.path().join("ca.pem")),
        tls_cert_file: Some(pki.dir.path().join("client.pem")),
        tls_key_file: Some(pki.dir.path().join("client.key")),
        ..ControllerArgs::default()
    });
    // Hostile: the template's address, trusting any server certificate so the handshake completes.
    let m = measure(
        &engine,
        restarts(json!({"address": tenant_server.url(), "tls": {"insecureSkipVerify": true}})),
    )
    .await;
    assert_not_refused(&m);
    // Hostile: a template `tls` while the controller's certificate would be used.
    let m = measure(
        &engine,
        restarts(json!({"tls": {"insecureSkipVerify": true}})),
    )
    .await;
    assert_config_refusal(&m, &["`tls` cannot be set"]);
    // Positive control.
    measure(&engine, restarts(json!({}))).await;
    let hostile = tenant_server.seen();
    assert!(!hostile.is_empty(), "the template's server was never asked");
    assert!(hostile.iter().all(|s| !s.client_certificate), "{hostile:?}");
    let own = controller.seen();
    assert!(
        !own.is_empty() && own.iter().all(|s| s.client_certificate),
        "{own:?}"
    );
}

#[tokio::test]
async fn allowed_addresses_bound_what_a_template_may_choose() {
    let allowed = echo().await;
    let other = echo().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), CONTROLLER_TOKEN).expect("write");
    let engine = strict(ControllerArgs {
        bearer_token_file: Some(dir.path().join("token")),
        allowed_addresses: vec![format!("{}mimir", allowed.url())],
        ..ControllerArgs::default()
    });
    for address in [
        other.url().to_string(),
        format!("{}mimir-other/", allowed.url()),
        allowed.url().to_string(),
    ] {
        let m = measure(&engine, restarts(json!({"address": address}))).await;
        assert_config_refusal(&m, &["outside every --allowed-address"]);
    }
    assert!(other.requests().is_empty() && allowed.requests().is_empty());
    // Positive control: inside the prefix, the admin-vouched address gets the controller's token.
    measure(
        &engine,
        restarts(json!({"address": format!("{}mimir/", allowed.url())})),
    )
    .await;
    let requests = allowed.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| authorization(r) == Some(&*format!("Bearer {CONTROLLER_TOKEN}"))));
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let elsewhere = echo().await;
    let redirector = FakePrometheus::start(Scenario::Always(Reply::Raw {
        status: 307,
        content_type: None,
        headers: vec![(
            "Location".into(),
            format!("{}api/v1/query", elsewhere.url()),
        )],
        body: Vec::new(),
    }))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), CONTROLLER_TOKEN).expect("write");
    let engine = strict(ControllerArgs {
        address: Some(redirector.url().to_string()),
        bearer_token_file: Some(dir.path().join("token")),
        ..ControllerArgs::default()
    });
    let m = measure(&engine, restarts(json!({}))).await;
    assert_eq!(m.phase, Phase::Failed);
    assert!(
        m.message
            .contains("answered http 307: redirects are not followed"),
        "{}",
        m.message
    );
    assert!(
        !shown(&m).contains(&elsewhere.address().port().to_string()),
        "{}",
        shown(&m)
    );
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
    // Positive control: the redirector itself got the token (so the check above is about the redirect).
    assert!(redirector
        .requests()
        .iter()
        .all(|r| authorization(r) == Some(&*format!("Bearer {CONTROLLER_TOKEN}"))));
}

#[tokio::test]
async fn a_measurement_targets_its_own_namespace() {
    let fake = echo().await;
    let address = fake.url().to_string();
    let engine = strict(ControllerArgs::default());
    for config in [
        restarts(json!({"address": address, "namespace": "pay"})),
        json!({"guardrail": "alerts", "address": address, "namespace": "pay"}),
    ] {
        let m = measure(&engine, config).await;
        assert_config_refusal(&m, &["`pay`", "`shop`", "--allow-cross-namespace"]);
    }
    assert!(fake.requests().is_empty());
    // Positive controls: the own namespace, and another one when the admin allows it.
    measure(
        &engine,
        restarts(json!({"address": address, "namespace": "shop"})),
    )
    .await;
    let n = fake.requests().len();
    assert!(n > 0);
    let open = strict(ControllerArgs {
        allow_cross_namespace: true,
        ..ControllerArgs::default()
    });
    measure(
        &open,
        restarts(json!({"address": address, "namespace": "pay"})),
    )
    .await;
    assert!(fake.requests().len() > n);
    assert!(fake.requests()[n..].iter().all(|r| r
        .param("query")
        .is_some_and(|q| q.contains("namespace=\"pay\""))));
}

#[tokio::test]
async fn invalid_registration_args_fail_every_measurement_with_the_reason() {
    let fake = echo().await;
    for (args, want) in [
        (vec!["--adress=http://prom:9090"], "'--address'"),
        (vec!["--address http://prom:9090"], "one argument"),
        (vec!["--credentials-dir=relative/dir"], "absolute"),
        (vec!["--allowed-address=ftp://x"], "--allowed-address"),
    ] {
        let engine = Engine::with_trust(Client::new(), TrustPolicy::from_registration(args, None));
        let m = measure(
            &engine,
            restarts(json!({"address": fake.url().to_string()})),
        )
        .await;
        assert_config_refusal(&m, &[want]);
    }
    assert!(fake.requests().is_empty());
}

// ---------------------------------------------------------------- rule 5: foreign bodies

#[tokio::test]
async fn nothing_of_a_non_prometheus_body_reaches_a_message_metadata_or_log() {
    let pages = [
        Reply::Raw {
            status: 200,
            content_type: Some("text/html; charset=utf-8".into()),
            headers: vec![],
            body: format!("<html><body>{BODY_MARKER} instance-id i-0abc</body></html>")
                .into_bytes(),
        },
        Reply::text(200, &format!("{BODY_MARKER} ami-id\nhostname\n")),
        Reply::text(500, &format!("{BODY_MARKER} admin console")),
        Reply::Raw {
            status: 403,
            content_type: Some(format!("text/html; {BODY_MARKER}")),
            headers: vec![],
            body: format!("<h1>{BODY_MARKER}</h1>").into_bytes(),
        },
        Reply::json(json!({"status": BODY_MARKER, "data": BODY_MARKER}).to_string()),
        Reply::json(json!({"status": "success", "data": BODY_MARKER}).to_string()),
        Reply::json(json!({"AccessKeyId": BODY_MARKER, "Code": "Success"}).to_string()),
    ];
    let engine = strict(ControllerArgs::default());
    let mut messages = Vec::new();
    for page in pages {
        let fake = FakePrometheus::start(Scenario::Always(page)).await;
        let m = measure(
            &engine,
            restarts(json!({"address": fake.url().to_string()})),
        )
        .await;
        assert_eq!(m.phase, Phase::Failed);
        assert!(!shown(&m).contains(BODY_MARKER), "{}", shown(&m));
        messages.push(m.message);
    }
    assert!(
        messages[0].contains("not a Prometheus API answer from")
            && messages[0].contains("HTTP 200, text/html, "),
        "{}",
        messages[0]
    );
    assert!(
        messages[2].contains("HTTP 500, text/plain, "),
        "{}",
        messages[2]
    );
    // The gRPC face shows the same measurement.
    let fake = FakePrometheus::start(Scenario::Always(Reply::text(
        200,
        &format!("{BODY_MARKER} page"),
    )))
    .await;
    let mut client = grpc(strict(ControllerArgs::default())).await;
    let reply = grpc_run(
        &mut client,
        &restarts(json!({"address": fake.url().to_string()})),
    )
    .await;
    assert!(!format!("{reply:?}").contains(BODY_MARKER), "{reply:?}");
    assert!(
        reply.message.contains("not a Prometheus API answer"),
        "{}",
        reply.message
    );
    let logged = String::from_utf8_lossy(&logs().lock().expect("logs")).into_owned();
    assert!(
        logged.contains("not a Prometheus API answer"),
        "the log check would prove nothing"
    );
    assert!(!logged.contains(BODY_MARKER), "a body reached the log");
}

// ---------------------------------------------------------------- the gRPC face

#[tokio::test]
async fn grpc_callers_are_template_authors() {
    let tree = Tree::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), CONTROLLER_TOKEN).expect("write");
    let controller = echo().await;
    let tenant_server = echo().await;
    let mut client = grpc(strict(ControllerArgs {
        address: Some(controller.url().to_string()),
        bearer_token_file: Some(dir.path().join("token")),
        ..ControllerArgs::default()
    }))
    .await;
    let m = grpc_run(
        &mut client,
        &restarts(json!({"bearerTokenFile": tree.outside()})),
    )
    .await;
    assert_eq!(m.phase(), pb::Phase::Failed);
    assert!(
        m.message.contains("bearerTokenFile") && m.message.contains("--credentials-dir"),
        "{}",
        m.message
    );
    let m = grpc_run(&mut client, &restarts(json!({"namespace": "pay"}))).await;
    assert!(
        m.message.contains("--allow-cross-namespace"),
        "{}",
        m.message
    );
    grpc_run(
        &mut client,
        &restarts(json!({"address": tenant_server.url().to_string()})),
    )
    .await;
    grpc_run(&mut client, &restarts(json!({}))).await;
    assert!(!tenant_server.requests().is_empty());
    assert!(tenant_server
        .requests()
        .iter()
        .all(|r| authorization(r).is_none()));
    assert!(controller
        .requests()
        .iter()
        .all(|r| authorization(r) == Some(&*format!("Bearer {CONTROLLER_TOKEN}"))));
    assert!(!controller.requests().is_empty());
}

async fn grpc(engine: Engine) -> MetricProviderClient<tonic::transport::Channel> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    // Stopped with the test's runtime.
    tokio::spawn(GrpcServer::new(engine).run(listener, std::future::pending()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    MetricProviderClient::new(channel)
}

async fn grpc_run(
    client: &mut MetricProviderClient<tonic::transport::Channel>,
    config: &Value,
) -> pb::Measurement {
    let c = analysis::shop_web();
    let request = pb::RunRequest {
        analysis: Some(pb::AnalysisContext {
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            uid: "3f1c2d4e".into(),
            labels: c.labels.clone(),
            owner_references: vec![pb::OwnerReference {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: "Rollout".into(),
                name: "web".into(),
                uid: "9a8b7c6d".into(),
                controller: true,
            }],
            args: BTreeMap::new(),
            proven_metrics: Vec::new(),
        }),
        metric: Some(pb::Metric {
            name: "guard".into(),
            plugin_config_json: Some(config.to_string()),
            success_condition: String::new(),
            failure_condition: String::new(),
        }),
        evaluation_time: Some(prost_types::Timestamp::from(SystemTime::now())),
    };
    client
        .run(request)
        .await
        .expect("run")
        .into_inner()
        .measurement
        .expect("a measurement")
}

// ---------------------------------------------------------------- a TLS echo server

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written to a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let server_key = KeyPair::generate().expect("key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .expect("server");
        let client_key = KeyPair::generate().expect("key");
        let mut client_params =
            CertificateParams::new(vec!["argo-rollouts".to_string()]).expect("params");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &ca, &ca_key)
            .expect("client");
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            std::fs::File::create(dir.path().join(name))
                .and_then(|mut f| f.write_all(pem.as_bytes()))
                .expect("write");
        }
        Pki { dir }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    client_certificate: bool,
}

/// HTTPS on 127.0.0.1:0 that accepts but does not require a client certificate, records whether one was
/// presented, and answers every request with an empty vector.
struct TlsEcho {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsEcho {
    async fn start(pki: &Pki) -> TlsEcho {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.dir.path().join("ca.pem")).expect("ca"))
            .expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![
                    CertificateDer::from_pem_file(pki.dir.path().join("server.pem")).expect("cert"),
                ],
                PrivateKeyDer::from_pem_file(pki.dir.path().join("server.key")).expect("key"),
            )
            .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_certificate = tls.get_ref().1.peer_certificates().is_some();
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    record
                        .lock()
                        .expect("seen")
                        .push(Seen { client_certificate });
                    let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsEcho { port, seen }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

/// A positive control: the measurement got past the trust policy (whatever Prometheus then answered).
#[track_caller]
fn assert_not_refused(m: &Measurement) {
    assert_ne!(
        m.metadata.get("failure").map(String::as_str),
        Some("config"),
        "{}",
        m.message
    );
}
