//! Unit tests of `client`.
use super::*;

/// The engine spawns queries on a multi-threaded runtime and shares one client.
#[test]
fn client_and_query_future_are_send_and_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Sync>(_: &T) {}
    let client = Client::new();
    let endpoint = Endpoint::new(url::Url::parse("http://prom:9090/").expect("url"));
    let future = client.instant_query(&endpoint, "up", SystemTime::now());
    assert_send(&future);
    assert_send(&client);
    assert_sync(&client);
}

#[test]
fn time_parameter_is_exact_decimal_seconds() {
    let at = |secs: u64, nanos: u32| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    assert_eq!(
        format_time(at(1_700_000_000, 0)).expect("whole"),
        "1700000000"
    );
    assert_eq!(
        format_time(at(1_700_000_000, 123_000_000)).expect("millis"),
        "1700000000.123"
    );
    assert_eq!(format_time(at(5, 1)).expect("nanos"), "5.000000001");
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    assert!(matches!(
        format_time(before),
        Err(QueryError::Config { .. })
    ));
}

#[test]
fn tls_files_must_exist_and_hold_pem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let missing = dir.path().join("missing.pem");
    let cases = [
        TlsConfig {
            ca_file: Some(missing.clone()),
            ..TlsConfig::default()
        },
        TlsConfig {
            ca_file: Some(garbage.clone()),
            ..TlsConfig::default()
        },
        TlsConfig {
            cert_file: Some(garbage.clone()),
            ..TlsConfig::default()
        },
        TlsConfig {
            cert_file: Some(garbage.clone()),
            key_file: Some(garbage.clone()),
            ..TlsConfig::default()
        },
    ];
    for tls in cases {
        match build_pool(&tls) {
            Err(QueryError::Config { detail }) => {
                assert!(!detail.contains("not a certificate"), "{detail}")
            }
            Err(other) => panic!("{tls:?}: expected Config, got {other:?}"),
            Ok(_) => panic!("{tls:?}: expected Config, got a client"),
        }
    }
    assert!(build_pool(&TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    })
    .is_ok());
}

#[tokio::test]
async fn credential_files_are_trimmed_and_errors_name_the_file_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "  tok-abc\n").expect("write");
    assert_eq!(
        read_secret_file(&token, "bearer token", &FileAccess::Unrestricted)
            .await
            .expect("token")
            .expose(),
        "tok-abc"
    );

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let big = dir.path().join("big");
    std::fs::write(&big, "s".repeat(MAX_CREDENTIAL_FILE_BYTES as usize + 1)).expect("write");
    for path in [empty, big, dir.path().join("missing")] {
        match read_secret_file(&path, "bearer token", &FileAccess::Unrestricted).await {
            Err(QueryError::Config { detail }) => {
                assert!(detail.contains(&path.display().to_string()), "{detail}");
                assert!(!detail.contains("sss"), "{detail}");
            }
            other => panic!(
                "{}: expected Config, got {:?}",
                path.display(),
                other.map(|_| ())
            ),
        }
    }
}

#[test]
fn idle_endpoint_bounds_are_forgotten_and_busy_ones_kept() {
    let client = Client::with_max_in_flight(2);
    let url =
        |i: usize| url::Url::parse(&format!("http://10.0.0.{}:{}", i % 250, 9000 + i)).unwrap();
    let busy = client.slots(&url(0));
    for i in 1..=3 * MAX_IDLE_ENDPOINTS {
        drop(client.slots(&url(i)));
    }
    let kept = client.inner.slots.lock().unwrap().len();
    assert!(kept <= MAX_IDLE_ENDPOINTS, "{kept} endpoints kept");
    // The endpoint still in use keeps its bound: the same semaphore, not a fresh one with new slots.
    assert!(Arc::ptr_eq(&busy, &client.slots(&url(0))));
}
