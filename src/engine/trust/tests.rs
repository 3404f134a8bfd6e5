//! Unit tests of `trust`.
use super::*;
use crate::prometheus::Secret;

fn strict(args: &[&str]) -> TrustPolicy {
    TrustPolicy::from_registration(args.iter().copied(), None)
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

#[test]
fn registration_args_parse_in_both_spellings_and_typos_are_named() {
    let args = parse_registration([
        "--address=http://prom:9090",
        "--credentials-dir",
        "/tmp",
        "--allowed-address",
        "https://mimir/prometheus",
        "--allow-cross-namespace",
    ])
    .expect("parses");
    assert_eq!(args.address.as_deref(), Some("http://prom:9090"));
    assert_eq!(args.credentials_dirs, [PathBuf::from("/tmp")]);
    assert!(args.allow_cross_namespace);
    let err = parse_registration(["--adress=http://prom:9090"]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("'--adress'") && text.contains("'--address'"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    let err = parse_registration(["--address http://prom:9090"]).unwrap_err();
    assert!(err.to_string().contains("one argument"), "{err}");
    let err = parse_registration(["--basic-auth-username", "u"]).unwrap_err();
    assert!(
        err.to_string().contains("--basic-auth-password-file"),
        "{err}"
    );
}

#[test]
fn invalid_settings_fail_every_measurement_with_their_message() {
    let policy = strict(&["--bogus"]);
    let failure = policy.endpoint(&Connection::default()).unwrap_err();
    assert_eq!(failure.class, FailureClass::Config);
    assert!(failure.message.contains("--bogus"), "{}", failure.message);
    let policy = strict(&["--address=ftp://x"]);
    assert!(policy.problem().is_some());
    let policy = strict(&["--credentials-dir=/var/run/secrets/kubernetes.io/serviceaccount"]);
    assert!(policy.problem().is_some());
    let policy = strict(&["--credentials-dir=relative"]);
    assert!(policy.problem().is_some());
}

#[test]
fn prefixes_match_whole_path_components() {
    let prefix = url("https://mimir.internal/prometheus");
    assert!(under(&url("https://mimir.internal/prometheus"), &prefix));
    assert!(under(&url("https://mimir.internal/prometheus/"), &prefix));
    assert!(under(
        &url("https://mimir.internal:443/prometheus/x"),
        &prefix
    ));
    assert!(!under(
        &url("https://mimir.internal/prometheus-other"),
        &prefix
    ));
    assert!(!under(&url("http://mimir.internal/prometheus"), &prefix));
    assert!(!under(
        &url("https://mimir.internal:8443/prometheus"),
        &prefix
    ));
    assert!(!under(
        &url("https://mimir.internal.evil/prometheus"),
        &prefix
    ));
    assert!(!under(
        &url("https://mimir.internal@evil/prometheus"),
        &prefix
    ));
    assert!(under(
        &url("http://prom:9090/any"),
        &url("http://prom:9090")
    ));
}

#[test]
fn controller_credentials_stay_with_the_controller_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "tok").expect("write");
    let policy = TrustPolicy::strict(
        &ControllerArgs {
            address: Some("http://prom:9090".into()),
            bearer_token_file: Some(token.clone()),
            tenant: Some("org-a".into()),
            ..ControllerArgs::default()
        },
        None,
    )
    .expect("policy");
    let own = policy.endpoint(&Connection::default()).expect("own");
    assert_eq!(own.auth, Auth::BearerFile(token));
    assert_eq!(own.tenant.as_deref(), Some("org-a"));
    let elsewhere = policy
        .endpoint(&Connection {
            address: Some("http://evil:80".into()),
            ..Connection::default()
        })
        .expect("elsewhere");
    assert_eq!(elsewhere.auth, Auth::None);
    assert_eq!(elsewhere.tenant, None);
    let replaced = policy.endpoint(&Connection {
        tenant: Some("org-b".into()),
        ..Connection::default()
    });
    assert!(replaced.unwrap_err().message.contains("--tenant"));
    let own_token = policy
        .endpoint(&Connection {
            bearer_token: Some(Secret::new("mine")),
            ..Connection::default()
        })
        .expect("template token");
    assert_eq!(own_token.auth, Auth::Bearer(Secret::new("mine")));
}

#[test]
fn namespaces_are_pinned_unless_allowed() {
    let policy = strict(&[]);
    assert!(policy.check_namespace(None, "shop").is_ok());
    assert!(policy.check_namespace(Some("shop"), "shop").is_ok());
    assert!(policy.check_namespace(Some("pay"), "shop").is_err());
    assert!(policy.check_namespace(Some("pay"), "").is_err());
    assert!(strict(&["--allow-cross-namespace"])
        .check_namespace(Some("pay"), "shop")
        .is_ok());
    assert!(TrustPolicy::permissive(None)
        .check_namespace(Some("pay"), "shop")
        .is_ok());
}

#[test]
fn raw_addresses_lose_their_userinfo() {
    assert_eq!(
        redact_raw_address("http://user:pw@host:9090"),
        "http://<redacted>@host:9090"
    );
    assert_eq!(redact_raw_address("user:pw@host"), "<redacted>@host");
    assert_eq!(redact_raw_address("ftp://host"), "ftp://host");
}
