//! The managed stores' authentication through plugin mode: argo-rollouts' own plugin client starts the binary
//! with the registration args and the pod's AWS environment (IRSA), and a store that verifies SigV4
//! signatures judges its requests. (Every case through the engine: `tests/engine/managed_auth.rs`.)
use crate::support::faces;
use crate::support::managed::{fake_amp, sts_answer, sts_error, verifier, HttpFake, Key};
use serde_json::json;

const WEB_TOKEN: &str = "WEB-IDENTITY-TOKEN-c41d";
const TEMP_KEY: &str = "ASIATEMPORARY01";
const TEMP_SECRET: &str = "TEMP-SECRET-2b7e";
const TEMP_TOKEN: &str = "SESSION-TOKEN-9a0c";
const ROLE: &str = "arn:aws:iam::123456789012:role/guardrails-reader";

#[test]
fn plugin_mode_signs_with_irsa_credentials_from_the_pods_environment() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_TOKEN).expect("write");
    let (amp, sts) = runtime.block_on(async {
        let key = Key {
            secret: TEMP_SECRET.into(),
            session_token: Some(TEMP_TOKEN.into()),
        };
        let sts = HttpFake::start(move |r| {
            if r.form("WebIdentityToken").as_deref() == Some(WEB_TOKEN) {
                sts_answer("AssumeRoleWithWebIdentity", TEMP_KEY, &key)
            } else {
                sts_error(400, "InvalidIdentityToken", "bad token")
            }
        })
        .await;
        let amp = fake_amp(verifier(
            "aps",
            &[(TEMP_KEY, TEMP_SECRET, Some(TEMP_TOKEN))],
        ))
        .await;
        (amp, sts)
    });
    let address = format!("--address={}", amp.url());
    let sts_url = sts.url().to_string();
    let token_path = token_file.to_str().expect("utf-8");
    let configs = [
        json!({"guardrail": "query", "query": "up", "threshold": 5}),
        json!({"guardrail": "query", "query": "up", "threshold": 5}),
    ];
    let session = faces::plugin_mode_with_args(
        &configs,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path),
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_ENDPOINT_URL_STS", sts_url.as_str()),
        ],
        &[address.as_str(), "--sigv4-region=us-east-1"],
    )
    .expect("plugin mode through argo-rollouts' client");
    for reply in &session.replies {
        assert_eq!(reply.phase, "Successful", "{reply:#?}\n{}", session.logs);
    }
    assert_eq!(
        sts.requests().len(),
        1,
        "one exchange for both measurements"
    );
    assert_eq!(amp.requests().len(), 2);
    let mut secrets = vec![
        WEB_TOKEN.to_owned(),
        TEMP_SECRET.to_owned(),
        TEMP_TOKEN.to_owned(),
    ];
    secrets.extend(amp.requests().iter().filter_map(|r| {
        r.header("authorization")
            .and_then(|a| a.split("Signature=").nth(1))
            .map(str::to_owned)
    }));
    let shown = format!("{:?}\n{}", session.replies, session.logs);
    assert!(
        session.logs.contains("sigv4"),
        "the start-up summary names the scheme: {}",
        session.logs
    );
    for secret in &secrets {
        assert!(!shown.contains(secret.as_str()), "{secret} in {shown}");
    }
}
