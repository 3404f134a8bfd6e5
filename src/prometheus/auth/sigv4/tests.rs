//! Unit tests of `sigv4`.
use super::*;

fn env(vars: &[(&str, &str)]) -> AwsEnvironment {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AwsEnvironment::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn settings_refuse_what_cannot_be_a_region_or_a_role() {
    for region in ["", "US-EAST-1", "us-east-1.evil.com", "eu west", "1abc"] {
        assert!(
            SigV4Settings::new(region, None, AwsEnvironment::default()).is_err(),
            "{region}"
        );
    }
    for role in [
        "role/x",
        "arn:aws:iam::1:role/a b",
        "arn:aws:iam::1:role/\u{7}x",
    ] {
        assert!(
            SigV4Settings::new("us-east-1", Some(role), AwsEnvironment::default()).is_err(),
            "{role}"
        );
    }
    let ok = SigV4Settings::new(
        " eu-west-1 ",
        Some("arn:aws:iam::123456789012:role/reader"),
        AwsEnvironment::default(),
    )
    .expect("valid");
    assert_eq!(ok.region, "eu-west-1");
}

#[test]
fn the_environment_prints_names_only() {
    let e = env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDVALUE"),
        ("AWS_SECRET_ACCESS_KEY", "SECRETVALUE"),
        ("UNRELATED", "x"),
    ]);
    let debug = format!("{e:?}");
    assert!(debug.contains("AWS_SECRET_ACCESS_KEY"), "{debug}");
    assert!(
        !debug.contains("SECRETVALUE") && !debug.contains("AKIDVALUE"),
        "{debug}"
    );
    assert!(!debug.contains("UNRELATED"), "{debug}");
}

#[test]
fn profiles_are_read_from_the_credentials_then_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = dir.path().join("credentials");
    std::fs::write(
            &credentials,
            "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = sd\n\n[other]\nregion = x\n",
        )
        .expect("write");
    let config = dir.path().join("config");
    std::fs::write(
            &config,
            "[profile other]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=so\naws_session_token=to\n",
        )
        .expect("write");
    let paths = |profile: &str| {
        env(&[
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.to_str().expect("utf-8"),
            ),
            ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
            ("AWS_PROFILE", profile),
        ])
    };
    let default = shared_files(&paths("default"))
        .expect("read")
        .expect("found");
    assert_eq!(default.access_key_id, "AKIDDEFAULT");
    assert!(default.session_token.is_none());
    let other = shared_files(&paths("other")).expect("read").expect("found");
    assert_eq!(other.access_key_id, "AKIDOTHER");
    assert_eq!(other.session_token.as_ref().map(Secret::expose), Some("to"));
    assert!(shared_files(&paths("missing")).expect("read").is_none());
    std::fs::write(&credentials, "[default]\naws_access_key_id = AKIDHALF\n").expect("write");
    let half = shared_files(&paths("default"))
        .err()
        .expect("half a key pair");
    assert!(half.to_string().contains("only one of"), "{half}");
    assert!(!half.to_string().contains("AKIDHALF"), "{half}");
}

#[test]
fn sts_answers_give_credentials_and_refusals_only_their_code() {
    let answer = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalr/K7MDENG&amp;x</SecretAccessKey>
      <SessionToken>IQoJb3JpZ2luX2Vj</SessionToken>
      <Expiration>2999-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
    let (credentials, lifetime) =
        sts_credentials(200, answer.as_bytes(), "http://sts/", "x".into()).expect("answer");
    assert_eq!(credentials.access_key_id, "ASIAEXAMPLE");
    assert_eq!(credentials.secret_access_key.expose(), "wJalr/K7MDENG&x");
    assert!(lifetime > Duration::from_secs(3600));
    let refusal = r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
<Message>token eyJSECRET is bad</Message></Error></ErrorResponse>"#;
    let error = sts_credentials(
        400,
        refusal.as_bytes(),
        "http://sts/",
        "AssumeRoleWithWebIdentity".into(),
    )
    .err()
    .expect("refused");
    let text = error.to_string();
    assert!(text.contains("HTTP 400 InvalidIdentityToken"), "{text}");
    assert!(!text.contains("eyJSECRET"), "{text}");
    assert!(sts_credentials(200, b"<html>", "http://sts/", "x".into()).is_err());
}

#[test]
fn container_endpoints_must_be_https_or_local() {
    for (uri, ok) in [
        ("https://creds.example/", true),
        ("http://127.0.0.1:8080/creds", true),
        ("http://169.254.170.23/v1/credentials", true),
        ("http://[fd00:ec2::23]/v1/credentials", true),
        ("http://10.0.0.1/creds", false),
        ("http://metadata.evil/", false),
        ("file:///etc/passwd", false),
    ] {
        let result = container_uri(&env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)]));
        assert_eq!(result.is_ok(), ok, "{uri}");
    }
    let relative = container_uri(&env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x")]))
        .expect("relative")
        .expect("set");
    assert_eq!(relative.as_str(), "http://169.254.170.2/v2/x");
}
