//! The managed stores' authentication through the engine, with the strict policy of plugin mode and `serve`:
//! AWS SigV4 judged by a store that verifies signatures (its verifier first proven on AWS' published test
//! vectors), credentials from the environment, from a web-identity token exchanged at a fake STS, and from
//! an assumed role; OAuth2 client credentials from a token endpoint that expires its tokens. Every failure
//! is a Failed measurement with the reason, and no secret, token, key or signature reaches a message, the
//! metadata or a log line. (Through plugin mode, with the pod's AWS environment: `tests/plugin/managed_auth.rs`.)
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rollouts_guardrails::engine::trust::{ControllerArgs, ManagedAuthArgs, TrustPolicy};
use rollouts_guardrails::engine::{Engine, Measurement, MetricSpec, Phase};
use rollouts_guardrails::prometheus::auth::AwsEnvironment;
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::managed::{
    fake_amp, sts_answer, sts_error, verifier, HttpFake, Key, RawRequest, Verifier,
};

const ACCESS_KEY: &str = "AKIDGUARDRAILS01";
const SECRET_KEY: &str = "SECRET-KEY-8f3a/xY+0";
const WEB_TOKEN: &str = "WEB-IDENTITY-TOKEN-c41d";
const TEMP_KEY: &str = "ASIATEMPORARY01";
const TEMP_SECRET: &str = "TEMP-SECRET-2b7e";
const TEMP_TOKEN: &str = "SESSION-TOKEN-9a0c";
const ROLE_KEY: &str = "ASIAROLE0000002";
const ROLE_SECRET: &str = "ROLE-SECRET-55d1";
const ROLE_TOKEN: &str = "ROLE-SESSION-TOKEN-e3f2";
const CLIENT_SECRET: &str = "CLIENT-SECRET-71c9";
const CONTAINER_KEY: &str = "ASIACONTAINER03";
const CONTAINER_TOKEN: &str = "POD-IDENTITY-AUTH-TOKEN-0d3b";
const ROLE: &str = "arn:aws:iam::123456789012:role/guardrails-reader";
const ASSUMED: &str = "arn:aws:iam::123456789012:role/amp-query";

/// Every value that must never be shown, the access tokens the endpoint issues included (added as issued).
fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        Mutex::new(
            [
                ACCESS_KEY,
                TEMP_KEY,
                ROLE_KEY,
                CONTAINER_KEY,
                CONTAINER_TOKEN,
                SECRET_KEY,
                WEB_TOKEN,
                TEMP_SECRET,
                TEMP_TOKEN,
                ROLE_SECRET,
                ROLE_TOKEN,
                CLIENT_SECRET,
            ]
            .map(str::to_owned)
            .to_vec(),
        )
    })
}

/// Every measurement's message, value and metadata, checked for secrets at the end of each test.
fn shown() -> &'static Mutex<Vec<String>> {
    static SHOWN: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SHOWN.get_or_init(|| Mutex::new(Vec::new()))
}

/// Every log line of this test binary, at trace level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    support::logs::captured()
}

/// No secret in anything shown so far, nor in any log line; signatures the stores saw are secrets too.
fn assert_nothing_secret_shown(stores: &[&HttpFake]) {
    let mut secrets = secrets().lock().expect("secrets").clone();
    for store in stores {
        for request in store.requests() {
            if let Some(signature) = request
                .header("authorization")
                .and_then(|a| a.split("Signature=").nth(1))
            {
                secrets.push(signature.to_owned());
            }
        }
    }
    let logs = String::from_utf8_lossy(&logs().lock().expect("logs")).into_owned();
    let shown = shown().lock().expect("shown").join("\n");
    assert!(
        !logs.is_empty(),
        "nothing was logged: the log check proves nothing"
    );
    for secret in &secrets {
        assert!(!shown.contains(secret.as_str()), "{secret} shown: {shown}");
        assert!(!logs.contains(secret.as_str()), "{secret} logged");
    }
}

/// A `query` guardrail that passes on the fake store's answer (one sample, 1).
fn query(extra: Value) -> MetricSpec {
    let mut config = json!({"guardrail": "query", "query": "up", "threshold": 5, "timeout": "5s"});
    if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    analysis::metric("guard", &config)
}

async fn measure(engine: &Engine, metric: &MetricSpec) -> Measurement {
    let _ = logs();
    let m = engine.measure(&analysis::shop_web(), metric).await;
    shown()
        .lock()
        .expect("shown")
        .push(format!("{} {} {:?}", m.message, m.value, m.metadata));
    m
}

fn failure(m: &Measurement) -> &str {
    m.metadata.get("failure").map(String::as_str).unwrap_or("")
}

fn assert_failed(m: &Measurement, class: &str, wants: &[&str]) {
    assert_eq!(
        (m.phase, failure(m)),
        (Phase::Failed, class),
        "{}",
        m.message
    );
    for want in wants {
        assert!(m.message.contains(want), "{want:?} not in {}", m.message);
    }
}

fn environment(vars: &[(&str, &str)]) -> AwsEnvironment {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AwsEnvironment::from_lookup(|name| vars.get(name).cloned())
}

fn sigv4_engine(address: &url::Url, role: Option<&str>, aws: AwsEnvironment) -> Engine {
    let args = ControllerArgs {
        address: Some(address.to_string()),
        managed: ManagedAuthArgs {
            sigv4_region: Some("us-east-1".into()),
            sigv4_role_arn: role.map(str::to_owned),
            ..ManagedAuthArgs::default()
        },
        ..ControllerArgs::default()
    };
    let trust = TrustPolicy::strict_in(&args, None, aws).expect("valid settings");
    Engine::with_trust(Client::new(), trust)
}

// ---------------------------------------------------------------- the verifier itself

#[test]
fn the_verifier_agrees_with_aws_published_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4");
    let mut cases = 0;
    for entry in std::fs::read_dir(&root).expect("fixtures") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
        let context: Value = serde_json::from_str(&read("context.json")).expect("context");
        let credentials = &context["credentials"];
        let id = credentials["access_key_id"].as_str().expect("id");
        let secret = credentials["secret_access_key"].as_str().expect("secret");
        let token = credentials["token"].as_str();
        let request = RawRequest::from_vector(&read("header-signed-request.txt"));
        let region = context["region"].as_str().expect("region");
        let service = context["service"].as_str().expect("service");
        let good = Verifier {
            region: region.into(),
            ..verifier(service, &[(id, secret, token)])
        };
        let verified = good
            .verify(&request)
            .unwrap_or_else(|why| panic!("{}: refused: {why}", dir.display()));
        assert_eq!(
            verified.canonical_request,
            read("header-canonical-request.txt"),
            "{}",
            dir.display()
        );
        assert_eq!(
            verified.string_to_sign,
            read("header-string-to-sign.txt"),
            "{}",
            dir.display()
        );
        assert_eq!(
            verified.signature,
            read("header-signature.txt").trim(),
            "{}",
            dir.display()
        );
        let wrong = Verifier {
            region: region.into(),
            ..verifier(
                service,
                &[(id, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX", token)],
            )
        };
        assert!(
            wrong.verify(&request).is_err(),
            "{}: a wrong key passed",
            dir.display()
        );
        cases += 1;
    }
    assert!(cases >= 10, "only {cases} vectors");
}

// ---------------------------------------------------------------- SigV4 through the engine

#[tokio::test]
async fn sigv4_with_environment_keys_passes_a_verifying_store_and_a_wrong_key_fails() {
    let amp = fake_amp(verifier("aps", &[(ACCESS_KEY, SECRET_KEY, None)])).await;
    let workspace = amp.url().join("workspaces/ws-1234/").expect("workspace");
    let good = sigv4_engine(
        &workspace,
        None,
        environment(&[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]),
    );
    let m = measure(&good, &query(json!({}))).await;
    assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    let requests = amp.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/workspaces/ws-1234/api/v1/query");
    assert!(requests[0].header("x-amz-date").is_some());

    let wrong = sigv4_engine(
        &workspace,
        None,
        environment(&[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret-key"),
        ]),
    );
    secrets()
        .lock()
        .expect("secrets")
        .push("not-the-secret-key".into());
    let m = measure(&wrong, &query(json!({}))).await;
    assert_failed(
        &m,
        "query-error",
        &["http 403", "SigV4 signature was refused", "us-east-1"],
    );
    assert_nothing_secret_shown(&[&amp]);
}

#[tokio::test]
async fn web_identity_is_exchanged_at_sts_once_and_an_assumed_role_signs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{WEB_TOKEN}\n")).expect("write");
    let web_identity = Key {
        secret: TEMP_SECRET.into(),
        session_token: Some(TEMP_TOKEN.into()),
    };
    let role_key = Key {
        secret: ROLE_SECRET.into(),
        session_token: Some(ROLE_TOKEN.into()),
    };
    // STS: AssumeRoleWithWebIdentity for the right token and role; AssumeRole signed by its credentials.
    let sts_verifier = verifier("sts", &[(TEMP_KEY, TEMP_SECRET, Some(TEMP_TOKEN))]);
    let sts = HttpFake::start(move |r| match r.form("Action").as_deref() {
        Some("AssumeRoleWithWebIdentity") => {
            if r.form("WebIdentityToken").as_deref() == Some(WEB_TOKEN)
                && r.form("RoleArn").as_deref() == Some(ROLE)
            {
                sts_answer("AssumeRoleWithWebIdentity", TEMP_KEY, &web_identity)
            } else {
                sts_error(400, "InvalidIdentityToken", "bad token")
            }
        }
        Some("AssumeRole") => match sts_verifier.verify(r) {
            Ok(_) if r.form("RoleArn").as_deref() == Some(ASSUMED) => {
                sts_answer("AssumeRole", ROLE_KEY, &role_key)
            }
            _ => sts_error(403, "SignatureDoesNotMatch", "no"),
        },
        _ => sts_error(400, "InvalidAction", "?"),
    })
    .await;
    let amp = fake_amp(verifier(
        "aps",
        &[
            (TEMP_KEY, TEMP_SECRET, Some(TEMP_TOKEN)),
            (ROLE_KEY, ROLE_SECRET, Some(ROLE_TOKEN)),
        ],
    ))
    .await;
    let aws = || {
        environment(&[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.to_str().expect("utf-8"),
            ),
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_ENDPOINT_URL_STS", sts.url().as_str()),
            ("HOME", dir.path().to_str().expect("utf-8")),
        ])
    };

    let irsa = sigv4_engine(&amp.url(), None, aws());
    for _ in 0..3 {
        let m = measure(&irsa, &query(json!({}))).await;
        assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    }
    assert_eq!(
        sts.requests().len(),
        1,
        "the credentials are cached until 80% of their hour"
    );
    let signed_with: Vec<String> = amp
        .requests()
        .iter()
        .filter_map(|r| r.header("x-amz-security-token").map(str::to_owned))
        .collect();
    assert_eq!(signed_with, [TEMP_TOKEN; 3]);

    let assumed = sigv4_engine(&amp.url(), Some(ASSUMED), aws());
    let m = measure(&assumed, &query(json!({}))).await;
    assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    let actions: Vec<Option<String>> = sts.requests().iter().map(|r| r.form("Action")).collect();
    assert_eq!(
        actions,
        [
            Some("AssumeRoleWithWebIdentity".to_owned()),
            Some("AssumeRoleWithWebIdentity".to_owned()),
            Some("AssumeRole".to_owned())
        ]
    );
    let last = amp.requests().last().cloned().expect("request");
    assert_eq!(last.header("x-amz-security-token"), Some(ROLE_TOKEN));
    assert_nothing_secret_shown(&[&amp, &sts]);
}

#[tokio::test]
async fn eks_pod_identity_credentials_come_from_the_container_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, CONTAINER_TOKEN).expect("write");
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(6))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    // The EKS Pod Identity agent: credentials only for the pod's authorization token.
    let agent = HttpFake::start(move |r| {
        if r.header("authorization") == Some(CONTAINER_TOKEN) {
            let answer = json!({
                "AccessKeyId": CONTAINER_KEY,
                "SecretAccessKey": TEMP_SECRET,
                "Token": TEMP_TOKEN,
                "AccountId": "123456789012",
                "Expiration": expiration,
            });
            (200, "application/json", answer.to_string())
        } else {
            (
                401,
                "application/json",
                r#"{"Code":"AccessDeniedException"}"#.into(),
            )
        }
    })
    .await;
    let amp = fake_amp(verifier(
        "aps",
        &[(CONTAINER_KEY, TEMP_SECRET, Some(TEMP_TOKEN))],
    ))
    .await;
    let uri = agent.url().join("v1/credentials").expect("uri");
    let aws = |token: &Path| {
        environment(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token.to_str().expect("utf-8"),
            ),
            ("HOME", dir.path().to_str().expect("utf-8")),
        ])
    };
    let engine = sigv4_engine(&amp.url(), None, aws(&token_file));
    for _ in 0..2 {
        let m = measure(&engine, &query(json!({}))).await;
        assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    }
    assert_eq!(agent.requests().len(), 1, "cached until 80% of six hours");
    assert_eq!(agent.requests()[0].path, "/v1/credentials");
    // A wrong authorization token: the agent refuses, the measurement says so.
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-token").expect("write");
    secrets()
        .lock()
        .expect("secrets")
        .push("not-the-token".into());
    let m = measure(
        &sigv4_engine(&amp.url(), None, aws(&wrong)),
        &query(json!({})),
    )
    .await;
    assert_failed(
        &m,
        "query-error",
        &[
            "container credentials endpoint",
            "HTTP 401 AccessDeniedException",
        ],
    );
    assert_nothing_secret_shown(&[&amp, &agent]);
}

#[tokio::test]
async fn sts_refusals_and_a_missing_chain_are_failed_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_TOKEN).expect("write");
    let sts =
        HttpFake::start(|_| sts_error(403, "AccessDenied", &format!("token {WEB_TOKEN} denied")))
            .await;
    let amp = fake_amp(verifier("aps", &[])).await;
    let refused = sigv4_engine(
        &amp.url(),
        None,
        environment(&[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.to_str().expect("utf-8"),
            ),
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_ENDPOINT_URL_STS", sts.url().as_str()),
            ("HOME", dir.path().to_str().expect("utf-8")),
        ]),
    );
    let m = measure(&refused, &query(json!({}))).await;
    assert_failed(
        &m,
        "query-error",
        &[
            "authentication failed",
            "sts",
            "AssumeRoleWithWebIdentity",
            "HTTP 403 AccessDenied",
        ],
    );
    assert!(
        amp.requests().is_empty(),
        "an unsigned request reached the store"
    );

    let none = sigv4_engine(
        &amp.url(),
        None,
        environment(&[("HOME", dir.path().to_str().expect("utf-8"))]),
    );
    let m = measure(&none, &query(json!({}))).await;
    assert_failed(
        &m,
        "config",
        &["no AWS credentials", "AWS_WEB_IDENTITY_TOKEN_FILE"],
    );

    let missing_file = sigv4_engine(
        &amp.url(),
        None,
        environment(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
            ("AWS_ROLE_ARN", ROLE),
            ("HOME", dir.path().to_str().expect("utf-8")),
        ]),
    );
    let m = measure(&missing_file, &query(json!({}))).await;
    assert_failed(&m, "config", &["web identity token", "/nonexistent/token"]);
    assert!(amp.requests().is_empty());
    assert_nothing_secret_shown(&[&amp, &sts]);
}

#[tokio::test]
async fn sigv4_credentials_go_only_to_the_controller_address() {
    let amp = fake_amp(verifier("aps", &[(ACCESS_KEY, SECRET_KEY, None)])).await;
    let elsewhere = HttpFake::start(|_| {
        (
            200,
            "application/json",
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
        )
    })
    .await;
    let engine = sigv4_engine(
        &amp.url(),
        None,
        environment(&[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]),
    );
    measure(
        &engine,
        &query(json!({"address": elsewhere.url().to_string()})),
    )
    .await;
    let m = measure(&engine, &query(json!({}))).await;
    assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    let hostile = elsewhere.requests();
    assert_eq!(hostile.len(), 1);
    for (name, value) in &hostile[0].headers {
        assert!(
            name != "authorization" && !name.starts_with("x-amz-") && !value.contains(ACCESS_KEY),
            "{name}: {value}"
        );
    }
}

#[tokio::test]
async fn conflicting_schemes_are_an_invalid_registration() {
    for args in [
        vec![
            "--address=http://127.0.0.1:9/",
            "--bearer-token-file=/t",
            "--sigv4-region=us-east-1",
        ],
        vec![
            "--address=http://127.0.0.1:9/",
            "--sigv4-region=us-east-1",
            "--oauth2-token-url=http://127.0.0.1:9/token",
            "--oauth2-client-id=c",
            "--oauth2-client-secret-file=/s",
        ],
        vec![
            "--oauth2-token-url=http://127.0.0.1:9/token",
            "--oauth2-client-id=c",
        ],
        vec![
            "--oauth2-token-url=file:///etc/passwd",
            "--oauth2-client-id=c",
            "--oauth2-client-secret-file=/s",
        ],
        vec!["--sigv4-role-arn=arn:aws:iam::1:role/x"],
    ] {
        let trust = TrustPolicy::from_registration(args.clone(), None);
        assert!(trust.problem().is_some(), "{args:?} accepted");
        let engine = Engine::with_trust(Client::new(), trust);
        let m = measure(&engine, &query(json!({}))).await;
        assert_failed(&m, "config", &[]);
        let named = args
            .iter()
            .filter(|a| !a.starts_with("--address"))
            .any(|a| m.message.contains(a.split('=').next().expect("flag")));
        assert!(named, "{args:?}: {}", m.message);
    }
}

// ---------------------------------------------------------------- OAuth2

/// A token endpoint issuing `tok-N` for `lifetime` seconds to the right client (after `delay`), and a store
/// that accepts only tokens it issued that have not expired.
struct OAuth2Fixture {
    idp: HttpFake,
    store: HttpFake,
    _dir: tempfile::TempDir,
    secret_file: std::path::PathBuf,
}

impl OAuth2Fixture {
    async fn start(lifetime: u64, delay: Duration) -> OAuth2Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_file = dir.path().join("client-secret");
        std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).expect("write");
        let issued = AtomicUsize::new(0);
        let valid: Arc<Mutex<BTreeMap<String, std::time::Instant>>> = Arc::default();
        let (count, tokens) = (issued, valid.clone());
        let idp = HttpFake::start(move |r| {
            std::thread::sleep(delay);
            if r.form("grant_type").as_deref() != Some("client_credentials")
                || r.form("client_id").as_deref() != Some("guardrails")
                || r.form("client_secret").as_deref() != Some(CLIENT_SECRET)
            {
                return (
                    401,
                    "application/json",
                    r#"{"error":"invalid_client"}"#.into(),
                );
            }
            let n = count.fetch_add(1, Ordering::SeqCst);
            let token = format!(
                "ACCESS-TOKEN-{n}-{}",
                r.form("scope").unwrap_or_default().replace(' ', "+")
            );
            secrets().lock().expect("secrets").push(token.clone());
            let expires = std::time::Instant::now() + Duration::from_secs(lifetime);
            tokens
                .lock()
                .expect("tokens")
                .insert(token.clone(), expires);
            (
                200,
                "application/json",
                json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime})
                    .to_string(),
            )
        })
        .await;
        let store = HttpFake::start(move |r| {
            let token = r.header("authorization").and_then(|a| a.strip_prefix("Bearer "));
            let fresh = token
                .and_then(|t| valid.lock().expect("tokens").get(t).copied())
                .is_some_and(|expires| std::time::Instant::now() < expires);
            if fresh {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs_f64();
                (
                    200,
                    "application/json",
                    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{now},"1"]}}]}}}}"#),
                )
            } else {
                (401, "text/plain", "token expired or unknown".into())
            }
        })
        .await;
        OAuth2Fixture {
            idp,
            store,
            _dir: dir,
            secret_file,
        }
    }

    fn engine(&self, token_url: &url::Url) -> Engine {
        let args = ControllerArgs {
            address: Some(self.store.url().to_string()),
            managed: ManagedAuthArgs {
                oauth2_token_url: Some(token_url.to_string()),
                oauth2_client_id: Some("guardrails".into()),
                oauth2_client_secret_file: Some(self.secret_file.clone()),
                oauth2_scopes: vec!["metrics:read".into(), "tenant".into()],
                ..ManagedAuthArgs::default()
            },
            ..ControllerArgs::default()
        };
        Engine::with_trust(
            Client::new(),
            TrustPolicy::strict(&args, None).expect("valid settings"),
        )
    }

    fn token_requests(&self) -> usize {
        self.idp.requests().len()
    }
}

#[tokio::test]
async fn oauth2_tokens_are_cached_between_measurements_and_sent_as_bearer() {
    let fixture = OAuth2Fixture::start(3600, Duration::ZERO).await;
    let engine = fixture.engine(&fixture.idp.url().join("oauth2/token").expect("url"));
    for _ in 0..4 {
        let m = measure(&engine, &query(json!({}))).await;
        assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    }
    assert_eq!(
        fixture.token_requests(),
        1,
        "one token for four measurements"
    );
    let request = &fixture.idp.requests()[0];
    assert_eq!(request.path, "/oauth2/token");
    assert_eq!(
        request.form("scope").as_deref(),
        Some("metrics:read tenant")
    );
    assert_eq!(fixture.store.requests().len(), 4);
    assert_nothing_secret_shown(&[&fixture.store]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_measurements_share_one_token_refresh() {
    // The endpoint takes 300 ms: every measurement asks for a token while the first request is in flight.
    let fixture = OAuth2Fixture::start(3600, Duration::from_millis(300)).await;
    let engine = fixture.engine(&fixture.idp.url());
    let metrics: Vec<MetricSpec> = (0..10)
        .map(|i| query(json!({"query": format!("up{{n=\"{i}\"}}")})))
        .collect();
    let all = futures::future::join_all(metrics.iter().map(|m| measure(&engine, m))).await;
    for m in &all {
        assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    }
    assert_eq!(fixture.token_requests(), 1, "ten measurements, one refresh");
    assert_eq!(fixture.store.requests().len(), 10);
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_the_store_refuses_it() {
    // Tokens live 1 s at the store; the plugin replaces them at 80% (0.8 s), so after 1.2 s it must hold a
    // new one, or the store answers 401.
    let fixture = OAuth2Fixture::start(1, Duration::ZERO).await;
    let engine = fixture.engine(&fixture.idp.url());
    let m = measure(&engine, &query(json!({}))).await;
    assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let m = measure(&engine, &query(json!({}))).await;
    assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    assert_eq!(fixture.token_requests(), 2);
    let tokens: Vec<String> = fixture
        .store
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_fails_the_measurement_with_the_reason() {
    let fixture = OAuth2Fixture::start(3600, Duration::ZERO).await;
    /// name, status, content type, body, class, what the message says
    type Case<'a> = (&'a str, u16, &'static str, String, &'a str, &'a [&'a str]);
    let answers: [Case; 4] = [
        (
            "401",
            401,
            "application/json",
            json!({"error": "invalid_client", "error_description": format!("secret {CLIENT_SECRET} is wrong")}).to_string(),
            "query-error",
            &["oauth2 token endpoint", "refused the client credentials", "HTTP 401 invalid_client"],
        ),
        ("500", 500, "text/html", "<h1>oops</h1>".into(), "query-error", &["HTTP 500"]),
        ("bad json", 200, "application/json", "{not json".into(), "query-error", &["not JSON"]),
        (
            "no token",
            200,
            "application/json",
            r#"{"token_type":"bearer"}"#.into(),
            "query-error",
            &["without access_token"],
        ),
    ];
    for (name, status, content_type, body, class, wants) in answers {
        let idp = HttpFake::start(move |_| (status, content_type, body.clone())).await;
        let engine = fixture.engine(&idp.url());
        let m = measure(&engine, &query(json!({}))).await;
        assert_failed(&m, class, wants);
        assert!(!m.message.contains("oops"), "{name}: {}", m.message);
    }
    // A redirect is not followed: its target is never asked.
    let target =
        HttpFake::start(|_| (200, "application/json", r#"{"access_token":"x"}"#.into())).await;
    let location = target.url().to_string();
    let redirecting = HttpFake::start(move |_| (302, "text/plain", location.clone())).await;
    let engine = fixture.engine(&redirecting.url());
    let m = measure(&engine, &query(json!({}))).await;
    assert_failed(&m, "query-error", &["redirects are not followed"]);
    assert!(target.requests().is_empty());
    // A token endpoint slower than the measurement: Failed timeout, never a hang.
    let slow = HttpFake::start(|_| {
        std::thread::sleep(Duration::from_secs(3));
        (200, "application/json", r#"{"access_token":"late"}"#.into())
    })
    .await;
    let engine = fixture.engine(&slow.url());
    let m = measure(&engine, &query(json!({"timeout": "1s"}))).await;
    assert_failed(&m, "timeout", &[]);
    // An unreadable client secret file: Failed config naming the file, never its content.
    let args = ControllerArgs {
        address: Some(fixture.store.url().to_string()),
        managed: ManagedAuthArgs {
            oauth2_token_url: Some(fixture.idp.url().to_string()),
            oauth2_client_id: Some("guardrails".into()),
            oauth2_client_secret_file: Some("/nonexistent/client-secret".into()),
            ..ManagedAuthArgs::default()
        },
        ..ControllerArgs::default()
    };
    let engine = Engine::with_trust(
        Client::new(),
        TrustPolicy::strict(&args, None).expect("valid"),
    );
    let m = measure(&engine, &query(json!({}))).await;
    assert_failed(
        &m,
        "config",
        &["oauth2 client secret file /nonexistent/client-secret"],
    );
    assert!(
        fixture.store.requests().is_empty(),
        "no request without a token"
    );
    assert_nothing_secret_shown(&[&fixture.store]);
}

// ---------------------------------------------------------------- template-side keys

fn template_engine(address: &url::Url, extra: ControllerArgs, aws: AwsEnvironment) -> Engine {
    let args = ControllerArgs {
        address: Some(address.to_string()),
        ..extra
    };
    let trust = TrustPolicy::strict_in(&args, None, aws).expect("valid settings");
    Engine::with_trust(Client::new(), trust)
}

#[tokio::test]
async fn a_template_signs_with_sigv4_only_toward_the_controller_address_and_as_an_allowed_role() {
    let amp = fake_amp(verifier("aps", &[(ACCESS_KEY, SECRET_KEY, None)])).await;
    let elsewhere = HttpFake::start(|_| (200, "application/json", "{}".into())).await;
    let aws = || {
        environment(&[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ])
    };
    // The registration names no scheme: the template's `sigv4` is what signs.
    let engine = template_engine(&amp.url(), ControllerArgs::default(), aws());
    let m = measure(&engine, &query(json!({"sigv4": {"region": "us-east-1"}}))).await;
    assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    assert!(amp.requests()[0].header("authorization").is_some());

    // Toward an address the template chose: the pod's identity is not offered, nothing is sent.
    let away = json!({"sigv4": {"region": "us-east-1"}, "address": elsewhere.url().to_string()});
    let m = measure(&engine, &query(away)).await;
    assert_failed(
        &m,
        "config",
        &["`sigv4` signs with the controller pod's own AWS identity"],
    );
    assert!(elsewhere.requests().is_empty(), "nothing sent there");

    // A role the admin did not register is refused before STS is asked; a registered one is tried.
    let role = json!({"sigv4": {"region": "us-east-1", "roleArn": ASSUMED}});
    let m = measure(&engine, &query(role.clone())).await;
    assert_failed(&m, "config", &[ASSUMED, "--sigv4-allowed-role-arn"]);
    let allowing = template_engine(
        &amp.url(),
        ControllerArgs {
            sigv4_allowed_role_arns: vec![ASSUMED.into()],
            ..ControllerArgs::default()
        },
        environment(&[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            // STS is a dead loopback port: the role is tried (not refused as config) and fails there.
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/"),
        ]),
    );
    let m = measure(&allowing, &query(role)).await;
    assert_eq!(m.phase, Phase::Failed, "{}", m.message);
    assert_ne!(failure(&m), "config", "{}", m.message);
    assert_nothing_secret_shown(&[&amp, &elsewhere]);
}

#[tokio::test]
async fn a_template_oauth2_secret_is_a_template_file_inside_a_credentials_dir() {
    let fixture = OAuth2Fixture::start(3600, Duration::ZERO).await;
    let secret_dir = fixture.secret_file.parent().expect("dir").to_path_buf();
    let config = |secret: &Path| {
        json!({"oauth2": {
            "tokenUrl": fixture.idp.url().to_string(),
            "clientId": "guardrails",
            "clientSecretFile": secret,
            "scopes": ["metrics:read"],
        }})
    };
    let confined = template_engine(
        &fixture.store.url(),
        ControllerArgs::default(),
        AwsEnvironment::default(),
    );
    let m = measure(&confined, &query(config(&fixture.secret_file))).await;
    assert_failed(
        &m,
        "config",
        &["oauth2.clientSecretFile", "--credentials-dir"],
    );
    assert_eq!(fixture.token_requests(), 0, "the secret is not read");

    let allowed = template_engine(
        &fixture.store.url(),
        ControllerArgs {
            credentials_dirs: vec![secret_dir],
            ..ControllerArgs::default()
        },
        AwsEnvironment::default(),
    );
    for _ in 0..2 {
        let m = measure(&allowed, &query(config(&fixture.secret_file))).await;
        assert_eq!(m.phase, Phase::Successful, "{}", m.message);
    }
    assert_eq!(fixture.token_requests(), 1, "the token is cached");
    assert_nothing_secret_shown(&[&fixture.store, &fixture.idp]);
}

#[test]
fn template_managed_keys_are_checked_when_parsed() {
    use rollouts_guardrails::engine::config::Config;
    for (config, wants) in [
        (r#"{"guardrail":"restarts","sigv4":{}}"#, "sigv4.region"),
        (
            r#"{"guardrail":"restarts","sigv4":{"region":"US East"}}"#,
            "not an AWS region",
        ),
        (
            r#"{"guardrail":"restarts","sigv4":{"region":"us-east-1","profile":"x"}}"#,
            "sigv4.profile",
        ),
        (
            r#"{"guardrail":"restarts","oauth2":{"tokenUrl":"file:///etc/passwd","clientId":"c","clientSecretFile":"/s"}}"#,
            "not an http:// or https:// URL",
        ),
        (
            r#"{"guardrail":"restarts","oauth2":{"tokenUrl":"http://idp/t","clientId":"c"}}"#,
            "oauth2.clientSecretFile",
        ),
        (
            r#"{"guardrail":"restarts","sigv4":{"region":"us-east-1"},"bearerToken":"t"}"#,
            "set only one of",
        ),
    ] {
        let error = Config::from_json(config.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains(wants), "{config}: {error:?}");
    }
}
