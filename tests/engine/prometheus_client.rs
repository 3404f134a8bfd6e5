//! The Prometheus client against a fake Prometheus: what it sends (method, path, parameters, credentials,
//! headers), what it makes of every kind of answer, and that no error ever carries a credential.
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rollouts_guardrails::prometheus::response::MAX_RESPONSE_BODY_BYTES;
use rollouts_guardrails::prometheus::{
    Auth, Client, Endpoint, FailureClass, QueryData, QueryError, Sample, Secret,
};
use support::fake_prometheus::{FakePrometheus, RecordedRequest, Reply, Scenario};
use url::Url;

const QUERY: &str = r#"sum(kube_pod_container_status_restarts_total{namespace="shop"})"#;
const TOKEN: &str = "tok-0f1e2d3c-bearer";
const PASSWORD: &str = "pw-9a8b7c-basic";
const HEADER_KEY: &str = "key-55aa66bb-header";

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

async fn query(fake: &FakePrometheus) -> Result<QueryData, QueryError> {
    Client::new()
        .instant_query(&Endpoint::new(fake.url()), QUERY, at())
        .await
}

async fn query_reply(reply: Reply) -> Result<QueryData, QueryError> {
    let fake = FakePrometheus::start(Scenario::Always(reply)).await;
    query(&fake).await
}

fn only_request(fake: &FakePrometheus) -> RecordedRequest {
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.into_iter().next().expect("one request")
}

/// A URL on which nothing listens: bind a port, then free it.
async fn dead_url() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    Url::parse(&format!("http://{address}/")).expect("url")
}

// ---------------------------------------------------------------- what is sent

#[tokio::test]
async fn posts_the_query_and_time_as_a_form_to_api_v1_query() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    assert_eq!(
        query(&fake).await.expect("query"),
        QueryData::Vector(vec![])
    );
    let request = only_request(&fake);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/v1/query");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.form,
        vec![
            ("query".into(), QUERY.into()),
            ("time".into(), "1700000000.123".into())
        ]
    );
    assert!(request.query.is_empty(), "{:?}", request.query);
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("x-scope-orgid"), None);
}

#[tokio::test]
async fn the_time_parameter_is_the_evaluation_time() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    for (at, want) in [
        (
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_712_345_678),
            "1712345678",
        ),
        (
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_712_345_678_500),
            "1712345678.5",
        ),
    ] {
        client
            .instant_query(&endpoint, "up", at)
            .await
            .expect("query");
        let last = fake.requests().pop().expect("a request");
        assert_eq!(last.param("time"), Some(want));
        let sent: f64 = want.parse().expect("number");
        let expected = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs_f64();
        assert_eq!(sent, expected);
    }
}

#[tokio::test]
async fn falls_back_to_get_on_405_and_501() {
    for refusal in [405, 501] {
        let fake = FakePrometheus::start(Scenario::handler(move |request| {
            if request.method == "POST" {
                Reply::text(refusal, "method not allowed")
            } else {
                Reply::vector(&[(&[("job", "api")], 1_700_000_000.0, "1")])
            }
        }))
        .await;
        let data = query(&fake).await.expect("query after fallback");
        assert!(
            matches!(data, QueryData::Vector(ref v) if v.len() == 1),
            "{data:?}"
        );
        let requests = fake.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[1].method, "GET");
        assert_eq!(requests[1].path, "/api/v1/query");
        assert_eq!(
            requests[1].query,
            vec![
                ("query".into(), QUERY.into()),
                ("time".into(), "1700000000.123".into())
            ]
        );
    }
}

#[tokio::test]
async fn other_refusals_do_not_fall_back() {
    let fake =
        FakePrometheus::start(Scenario::Always(Reply::text(404, "404 page not found"))).await;
    let err = query(&fake).await.expect_err("404");
    assert!(
        matches!(err, QueryError::NotPrometheus { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn the_path_prefix_is_honoured() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let client = Client::new();
    for prefix in ["/prometheus", "/prometheus/"] {
        client
            .instant_query(&Endpoint::new(fake.url_with_path(prefix)), "up", at())
            .await
            .expect(prefix);
    }
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec!["/prometheus/api/v1/query", "/prometheus/api/v1/query"]
    );
}

#[tokio::test]
async fn sequential_queries_reuse_one_connection() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[(&[], 1.0, "1")]))).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    for _ in 0..5 {
        client
            .instant_query(&endpoint, "up", at())
            .await
            .expect("query");
    }
    // A clone shares the pool too.
    client
        .clone()
        .instant_query(&endpoint, "up", at())
        .await
        .expect("query");
    assert_eq!(fake.requests().len(), 6);
    assert_eq!(fake.connections(), 1);
}

// ---------------------------------------------------------------- credentials and headers

#[tokio::test]
async fn bearer_token_is_sent() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let mut endpoint = Endpoint::new(fake.url());
    endpoint.auth = Auth::Bearer(Secret::new(TOKEN));
    Client::new()
        .instant_query(&endpoint, "up", at())
        .await
        .expect("query");
    assert_eq!(
        only_request(&fake).header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn bearer_token_file_is_reread_on_every_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token\n").expect("write");
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let mut endpoint = Endpoint::new(fake.url());
    endpoint.auth = Auth::BearerFile(token_file.clone());
    let client = Client::new();
    client
        .instant_query(&endpoint, "up", at())
        .await
        .expect("first");
    std::fs::write(&token_file, "rotated-token").expect("rewrite");
    client
        .instant_query(&endpoint, "up", at())
        .await
        .expect("second");
    let sent = authorizations(&fake);
    assert_eq!(
        sent,
        vec![
            Some("Bearer first-token".into()),
            Some("Bearer rotated-token".into())
        ]
    );
}

fn basic(username: &str, password: &str) -> String {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("{username}:{password}"))
    )
}

#[tokio::test]
async fn basic_auth_is_sent_from_config_file_and_userinfo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write");
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let client = Client::new();

    let mut endpoint = Endpoint::new(fake.url());
    endpoint.auth = Auth::Basic {
        username: "alice".into(),
        password: Secret::new(PASSWORD),
    };
    client
        .instant_query(&endpoint, "up", at())
        .await
        .expect("basic");

    endpoint.auth = Auth::BasicFile {
        username: "bob".into(),
        password_file: password_file.clone(),
    };
    client
        .instant_query(&endpoint, "up", at())
        .await
        .expect("basic file");

    let mut with_userinfo = fake.url();
    with_userinfo.set_username("carol").expect("username");
    with_userinfo
        .set_password(Some("p@ss:word"))
        .expect("password");
    client
        .instant_query(&Endpoint::new(with_userinfo), "up", at())
        .await
        .expect("userinfo");

    let sent = authorizations(&fake);
    assert_eq!(
        sent,
        vec![
            Some(basic("alice", PASSWORD)),
            Some(basic("bob", PASSWORD)),
            Some(basic("carol", "p@ss:word"))
        ]
    );
}

#[tokio::test]
async fn custom_headers_and_tenant_are_sent() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let mut endpoint = Endpoint::new(fake.url());
    endpoint.headers = vec![
        ("X-Api-Key".into(), Secret::new(HEADER_KEY)),
        ("X-Team".into(), Secret::new("sre")),
    ];
    endpoint.tenant = Some("tenant-a".into());
    Client::new()
        .instant_query(&endpoint, "up", at())
        .await
        .expect("query");
    let request = only_request(&fake);
    assert_eq!(request.header("x-api-key"), Some(HEADER_KEY));
    assert_eq!(request.header("x-team"), Some("sre"));
    assert_eq!(request.header("x-scope-orgid"), Some("tenant-a"));
}

#[tokio::test]
async fn unreadable_credentials_and_conflicts_are_config_errors() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let client = Client::new();
    let missing = Path::new("/nonexistent/rollouts-guardrails/token").to_path_buf();
    let mut endpoints = Vec::new();

    let mut e = Endpoint::new(fake.url());
    e.auth = Auth::BearerFile(missing.clone());
    endpoints.push(e);
    let mut e = Endpoint::new(fake.url());
    e.auth = Auth::BasicFile {
        username: "u".into(),
        password_file: missing.clone(),
    };
    endpoints.push(e);
    let mut userinfo = fake.url();
    userinfo.set_username("u").expect("username");
    let mut e = Endpoint::new(userinfo);
    e.auth = Auth::Bearer(Secret::new(TOKEN));
    endpoints.push(e);
    let mut e = Endpoint::new(fake.url());
    e.headers = vec![("Bad Header".into(), Secret::new(HEADER_KEY))];
    endpoints.push(e);
    let mut e = Endpoint::new(fake.url());
    e.headers = vec![("X-Api-Key".into(), Secret::new(format!("{HEADER_KEY}\n")))];
    endpoints.push(e);

    for endpoint in endpoints {
        let err = client
            .instant_query(&endpoint, "up", at())
            .await
            .expect_err("config");
        assert!(matches!(err, QueryError::Config { .. }), "{err:?}");
        assert_eq!(err.class(), FailureClass::Config);
        assert_no_secret(&err);
    }
    assert!(
        fake.requests().is_empty(),
        "nothing is sent with a broken configuration"
    );
}

// ---------------------------------------------------------------- answers that succeed

#[tokio::test]
async fn vector_scalar_and_matrix_answers_are_parsed() {
    let vector = query_reply(Reply::vector(&[
        (
            &[("pod", "api-1"), ("namespace", "shop")],
            1_700_000_000.5,
            "3",
        ),
        (
            &[("pod", "api-2"), ("namespace", "shop")],
            1_700_000_000.5,
            "0",
        ),
    ]))
    .await
    .expect("vector");
    let QueryData::Vector(samples) = vector else {
        panic!("expected a vector, got {vector:?}")
    };
    assert_eq!(samples.len(), 2);
    assert_eq!(
        samples[0].labels.get("pod").map(String::as_str),
        Some("api-1")
    );
    assert_eq!(
        samples[0].labels.get("namespace").map(String::as_str),
        Some("shop")
    );
    assert_eq!(
        (samples[0].timestamp, samples[0].value),
        (1_700_000_000.5, 3.0)
    );
    assert_eq!(samples[1].value, 0.0);

    let scalar = query_reply(Reply::success(
        r#"{"resultType":"scalar","result":[1700000000.123,"42.5"]}"#,
    ))
    .await;
    assert_eq!(
        scalar.expect("scalar"),
        QueryData::Scalar(Sample {
            labels: Default::default(),
            timestamp: 1_700_000_000.123,
            value: 42.5
        })
    );

    let matrix = query_reply(Reply::success(
        r#"{"resultType":"matrix","result":[{"metric":{"pod":"a"},"values":[[10,"1"],[20,"2"]]},{"metric":{"pod":"b"},"values":[]}]}"#,
    ))
    .await
    .expect("matrix");
    let QueryData::Matrix(series) = matrix else {
        panic!("expected a matrix, got {matrix:?}")
    };
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].samples, vec![(10.0, 1.0), (20.0, 2.0)]);
    assert!(series[1].samples.is_empty());
}

#[tokio::test]
async fn nan_and_infinities_are_parsed_faithfully() {
    let data = query_reply(Reply::vector(&[
        (&[("v", "nan")], 1.0, "NaN"),
        (&[("v", "+inf")], 1.0, "+Inf"),
        (&[("v", "-inf")], 1.0, "-Inf"),
    ]))
    .await
    .expect("special values");
    let QueryData::Vector(samples) = data else {
        panic!("expected a vector, got {data:?}")
    };
    assert!(samples[0].value.is_nan());
    assert_eq!(samples[1].value, f64::INFINITY);
    assert_eq!(samples[2].value, f64::NEG_INFINITY);
}

#[tokio::test]
async fn prometheus_3_infos_do_not_fail_the_query() {
    let reply = Reply::json(
        r#"{"status":"success","infos":["PromQL info: metric might not be a counter"],"data":{"resultType":"vector","result":[]}}"#,
    );
    assert_eq!(
        query_reply(reply).await.expect("infos"),
        QueryData::Vector(vec![])
    );
}

// ---------------------------------------------------------------- answers that fail closed

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let address = dead_url().await;
    let err = Client::new()
        .instant_query(&Endpoint::new(address.clone()), "up", at())
        .await
        .expect_err("refused");
    match &err {
        QueryError::Connect {
            address: shown,
            reason,
        } => {
            assert_eq!(shown, address.as_str());
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert_eq!(err.class(), FailureClass::QueryError);
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    let address = Url::parse("http://prometheus.rollouts-guardrails.invalid:9090/").expect("url");
    let err = Client::new()
        .instant_query(&Endpoint::new(address), "up", at())
        .await
        .expect_err("dns");
    match err {
        QueryError::Dns { address, host } => {
            assert_eq!(host, "prometheus.rollouts-guardrails.invalid");
            assert_eq!(
                address,
                "http://prometheus.rollouts-guardrails.invalid:9090/"
            );
        }
        other => panic!("expected Dns, got {other:?}"),
    }
}

#[tokio::test]
async fn a_connection_closed_without_answer_is_a_connect_error() {
    let err = query_reply(Reply::Close).await.expect_err("closed");
    assert!(matches!(err, QueryError::Connect { .. }), "{err:?}");
}

/// The engine's own timeout around the call returns promptly, and the client is usable afterwards.
async fn assert_cancel_safe(slow: Reply) {
    let fake = FakePrometheus::start(Scenario::Sequence(vec![slow, Reply::vector(&[])])).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        client.instant_query(&endpoint, "up", at()),
    )
    .await;
    assert!(
        outcome.is_err(),
        "the slow answer must not complete: {outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    client
        .instant_query(&endpoint, "up", at())
        .await
        .expect("the client still works");
}

/// The client's own request timeout turns a slow answer into `Timeout`.
async fn assert_request_timeout(slow: Reply) {
    let fake = FakePrometheus::start(Scenario::Always(slow)).await;
    let client = Client::with_request_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = client
        .instant_query(&Endpoint::new(fake.url()), "up", at())
        .await
        .expect_err("timeout");
    assert!(matches!(err, QueryError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), FailureClass::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_first_byte_is_cancel_safe_and_times_out() {
    let slow = || Reply::SlowFirstByte {
        delay: Duration::from_secs(10),
        then: Box::new(Reply::vector(&[])),
    };
    assert_cancel_safe(slow()).await;
    assert_request_timeout(slow()).await;
}

#[tokio::test]
async fn a_slow_body_is_cancel_safe_and_times_out() {
    let slow = || Reply::SlowBody {
        chunks: vec![
            br#"{"status":"success","#.to_vec(),
            br#""data":{"resultType":"vector","result":[]}}"#.to_vec(),
        ],
        interval: Duration::from_secs(10),
    };
    assert_cancel_safe(slow()).await;
    assert_request_timeout(slow()).await;
}

#[tokio::test]
async fn a_slow_but_timely_body_is_read_whole() {
    let reply = Reply::SlowBody {
        chunks: vec![
            br#"{"status":"success","#.to_vec(),
            br#""data":{"resultType":"vector","result":[]}}"#.to_vec(),
        ],
        interval: Duration::from_millis(50),
    };
    assert_eq!(
        query_reply(reply).await.expect("slow body"),
        QueryData::Vector(vec![])
    );
}

#[tokio::test]
async fn http_errors_carry_prometheus_error_or_only_the_shape_of_the_body() {
    let cases = [
        (
            Reply::api_error(400, "bad_data", "1:5: parse error: unexpected identifier"),
            400,
            "bad_data: 1:5: parse error: unexpected identifier",
        ),
        (
            Reply::api_error(422, "execution", "expanding series: too many samples"),
            422,
            "execution: expanding series: too many samples",
        ),
        (
            Reply::api_error(503, "timeout", "query timed out in expression evaluation"),
            503,
            "timeout: query timed out in expression evaluation",
        ),
    ];
    for (reply, status, detail) in cases {
        match query_reply(reply).await {
            Err(QueryError::Http {
                status: got,
                detail: got_detail,
                ..
            }) => {
                assert_eq!((got, got_detail.as_str()), (status, detail));
            }
            other => panic!("expected Http {status}, got {other:?}"),
        }
    }
    // Anything else is described, never quoted: the address may be a template's and the body internal.
    let foreign = [
        (
            Reply::text(
                502,
                "upstream connect error or disconnect/reset before headers",
            ),
            502,
            "text/plain",
            "57 B",
        ),
        (
            Reply::text(401, "Unauthorized\n"),
            401,
            "text/plain",
            "13 B",
        ),
        (
            Reply::Raw {
                status: 500,
                content_type: Some("text/html".into()),
                headers: vec![],
                body: b"<h1>500</h1>".to_vec(),
            },
            500,
            "text/html",
            "12 B",
        ),
    ];
    for (reply, status, content_type, size) in foreign {
        match query_reply(reply).await {
            Err(QueryError::NotPrometheus {
                status: got,
                content_type: got_type,
                size: got_size,
                ..
            }) => {
                assert_eq!(
                    (got, got_type.as_str(), got_size.as_str()),
                    (status, content_type, size)
                );
            }
            other => panic!("expected NotPrometheus {status}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_their_target_is_not_shown() {
    let reply = Reply::Raw {
        status: 302,
        content_type: None,
        headers: vec![(
            "Location".into(),
            "https://user:leak@elsewhere.example/login?token=leak#x".into(),
        )],
        body: Vec::new(),
    };
    let fake = FakePrometheus::start(Scenario::Always(reply)).await;
    let err = query(&fake).await.expect_err("redirect");
    match &err {
        QueryError::Http {
            status: 302,
            detail,
            ..
        } => assert!(detail.contains("redirects are not followed"), "{detail}"),
        other => panic!("expected Http 302, got {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("leak") && !text.contains("elsewhere"),
        "{text}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_status_error_is_an_api_error_for_every_error_type() {
    for error_type in support::faults::ERROR_TYPES {
        match query_reply(Reply::api_error(200, error_type, "it went wrong")).await {
            Err(QueryError::Api {
                error_type: got,
                error,
            }) => {
                assert_eq!(got, error_type);
                assert_eq!(error, "it went wrong");
            }
            other => panic!("{error_type}: expected Api, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_not_a_prometheus_answer() {
    let err = query_reply(Reply::Garbage).await.expect_err("garbage");
    assert!(
        matches!(err, QueryError::NotPrometheus { status: 200, .. }),
        "{err:?}"
    );
    let err = query_reply(Reply::Json {
        status: 200,
        body: String::new(),
    })
    .await
    .expect_err("empty");
    assert!(
        matches!(err, QueryError::NotPrometheus { ref size, .. } if size == "0 B"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_truncated_body_is_truncated() {
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}"#.to_vec();
    let err = query_reply(Reply::Truncated {
        declared_length: body.len() + 100,
        body,
    })
    .await
    .expect_err("truncated");
    assert!(matches!(err, QueryError::Truncated), "{err:?}");
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_malformed() {
    for data in [
        r#"{"resultType":"streams","result":[]}"#,
        r#"{"resultType":"vector","result":{"not":"a list"}}"#,
        r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"one"]}]}"#,
        r#"{"resultType":"scalar","result":[{"metric":{},"value":[1,"1"]}]}"#,
    ] {
        let err = query_reply(Reply::success(data)).await.expect_err(data);
        assert!(
            matches!(err, QueryError::Malformed { .. }),
            "{data}: {err:?}"
        );
    }
}

#[tokio::test]
async fn warnings_fail_the_query() {
    let reply = Reply::json(
        r#"{"status":"success","warnings":["partial response: store gateway unavailable"],"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0"]}]}}"#,
    );
    match query_reply(reply).await {
        Err(QueryError::Warnings { warnings }) => {
            assert_eq!(
                warnings,
                vec!["partial response: store gateway unavailable".to_owned()]
            )
        }
        other => panic!("expected Warnings, got {other:?}"),
    }
}

#[tokio::test]
async fn a_body_over_the_cap_is_too_large() {
    for declare_length in [true, false] {
        let fake = FakePrometheus::start(Scenario::Always(Reply::Huge {
            bytes: MAX_RESPONSE_BODY_BYTES + 1024 * 1024,
            declare_length,
        }))
        .await;
        match query(&fake).await {
            Err(QueryError::TooLarge { limit }) => assert_eq!(limit, MAX_RESPONSE_BODY_BYTES),
            other => panic!("declare_length={declare_length}: expected TooLarge, got {other:?}"),
        }
    }
    // Just under the cap is fine.
    let fake = FakePrometheus::start(Scenario::Always(Reply::Huge {
        bytes: 1024 * 1024,
        declare_length: false,
    }))
    .await;
    assert!(matches!(query(&fake).await, Ok(QueryData::Vector(v)) if v.len() > 1000));
}

// ---------------------------------------------------------------- no credential in any error

fn assert_no_secret(err: &QueryError) {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    let shown = format!("{err} | {err:?}");
    for secret in [
        TOKEN,
        PASSWORD,
        HEADER_KEY,
        "userinfo-pw-7e7e",
        &BASE64_STANDARD.encode(format!("alice:{PASSWORD}")),
    ] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
}

/// Endpoints carrying every kind of credential at once (one `Auth` each, plus a secret header).
fn credentialed_endpoints(address: &Url) -> Vec<Endpoint> {
    let with = |auth: Auth| {
        let mut endpoint = Endpoint::new(address.clone());
        endpoint.auth = auth;
        endpoint.headers = vec![("X-Api-Key".into(), Secret::new(HEADER_KEY))];
        endpoint.tenant = Some("tenant-a".into());
        endpoint
    };
    let mut userinfo = address.clone();
    userinfo.set_username("dave").expect("username");
    userinfo
        .set_password(Some("userinfo-pw-7e7e"))
        .expect("password");
    let mut from_userinfo = with(Auth::None);
    from_userinfo.address = userinfo;
    vec![
        with(Auth::Bearer(Secret::new(TOKEN))),
        with(Auth::Basic {
            username: "alice".into(),
            password: Secret::new(PASSWORD),
        }),
        from_userinfo,
    ]
}

/// A reply that echoes every credential the request carried, as a hostile or debugging proxy might.
fn echo(request: &RecordedRequest, kind: usize) -> Reply {
    let echoed = request
        .headers
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let quoted = serde_json::Value::from(echoed.clone()).to_string();
    match kind {
        0 => Reply::text(401, &format!("denied: {echoed}")),
        1 => Reply::Json {
            status: 403,
            body: format!(r#"{{"status":"error","errorType":"auth","error":{quoted}}}"#),
        },
        2 => Reply::Json {
            status: 200,
            body: format!(r#"{{"status":"error","errorType":{quoted},"error":{quoted}}}"#),
        },
        3 => Reply::json(format!(
            r#"{{"status":"success","warnings":[{quoted}],"data":{{"resultType":"vector","result":[]}}}}"#
        )),
        4 => Reply::success(&format!(
            r#"{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,{quoted}]}}]}}"#
        )),
        5 => Reply::success(&format!(r#"{{"resultType":{quoted},"result":[]}}"#)),
        _ => Reply::Raw {
            status: 200,
            content_type: None,
            headers: vec![],
            body: format!("<{echoed}>").into_bytes(),
        },
    }
}

#[tokio::test]
async fn no_error_carries_a_credential_even_when_the_server_echoes_it() {
    const ECHO_KINDS: usize = 7;
    let fake = FakePrometheus::start(Scenario::handler(|request| {
        echo(request, request.index % ECHO_KINDS)
    }))
    .await;
    let client = Client::new();
    for endpoint in credentialed_endpoints(&fake.url()) {
        for _ in 0..ECHO_KINDS {
            let err = client
                .instant_query(&endpoint, "up", at())
                .await
                .expect_err("echo");
            assert_no_secret(&err);
        }
    }
    // The fake really did receive (and echo) the credentials.
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.header("authorization") == Some(&*format!("Bearer {TOKEN}"))));
}

#[tokio::test]
async fn no_transport_error_carries_a_credential() {
    let slow = Reply::SlowFirstByte {
        delay: Duration::from_secs(10),
        then: Box::new(Reply::vector(&[])),
    };
    let truncated = Reply::Truncated {
        declared_length: 1000,
        body: b"{".to_vec(),
    };
    let huge = Reply::Huge {
        bytes: MAX_RESPONSE_BODY_BYTES + 1,
        declare_length: true,
    };
    let mut addresses = vec![
        dead_url().await,
        Url::parse("http://prometheus.rollouts-guardrails.invalid/").expect("url"),
    ];
    let mut fakes = Vec::new();
    for reply in [Reply::Close, slow, truncated, huge, Reply::Garbage] {
        let fake = FakePrometheus::start(Scenario::Always(reply)).await;
        addresses.push(fake.url());
        fakes.push(fake);
    }
    let client = Client::with_request_timeout(Duration::from_millis(300));
    for address in &addresses {
        for endpoint in credentialed_endpoints(address) {
            let err = client
                .instant_query(&endpoint, "up", at())
                .await
                .expect_err("failure");
            assert_no_secret(&err);
        }
    }
}

// ---------------------------------------------------------------- the fake itself

/// `SlowBody` really sends its head first (so the client is stuck in the body, not in the head), and
/// `SlowFirstByte` really sends nothing.
#[tokio::test]
async fn the_fake_sends_slow_body_headers_at_once_and_slow_first_byte_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fake = FakePrometheus::start(Scenario::Sequence(vec![
        Reply::SlowBody {
            chunks: vec![b"{}".to_vec()],
            interval: Duration::from_secs(10),
        },
        Reply::SlowFirstByte {
            delay: Duration::from_secs(10),
            then: Box::new(Reply::vector(&[])),
        },
    ]))
    .await;
    for expect_head in [true, false] {
        let mut stream = tokio::net::TcpStream::connect(fake.address())
            .await
            .expect("connect");
        stream
            .write_all(b"GET /api/v1/query HTTP/1.1\r\nhost: fake\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) => {
                assert!(
                    expect_head,
                    "unexpected bytes: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                );
                assert!(
                    buf[..n].starts_with(b"HTTP/1.1 200"),
                    "{:?}",
                    String::from_utf8_lossy(&buf[..n])
                );
            }
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => assert!(!expect_head, "no head within 500 ms"),
        }
    }
}

// ---------------------------------------------------------------- golden vectors from the Go peers
// Made by tests/go/prometheus-golden (client_golang v1.20.5, prometheus/common v0.60.1).

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prometheus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn form_pairs(encoded: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Our requests carry what client_golang's `v1.API.Query` sends, including its POST→GET fallback on 405.
#[tokio::test]
async fn requests_match_client_golang() {
    let golden: serde_json::Value =
        serde_json::from_str(&fixture("client_golang_requests.json")).expect("json");
    let promql = golden["query"].as_str().expect("query");
    let nanos = golden["time_unix_nanos"].as_u64().expect("time");
    let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
    let fake = FakePrometheus::start(Scenario::handler(|request| {
        if request.method == "POST" && request.path.starts_with("/refuse-post/") {
            Reply::text(405, "")
        } else {
            Reply::vector(&[])
        }
    }))
    .await;
    let client = Client::new();
    for prefix in ["/prometheus/", "/refuse-post/"] {
        client
            .instant_query(&Endpoint::new(fake.url_with_path(prefix)), promql, at)
            .await
            .expect(prefix);
    }
    let ours = fake.requests();
    let theirs = golden["requests"].as_array().expect("requests");
    assert_eq!(ours.len(), theirs.len());
    for (ours, theirs) in ours.iter().zip(theirs) {
        let field = |name: &str| theirs[name].as_str().expect(name).to_owned();
        assert_eq!(ours.method, field("method"));
        assert_eq!(ours.path, field("path"));
        assert_eq!(
            ours.header("content-type").unwrap_or(""),
            field("content_type")
        );
        assert_eq!(ours.query, form_pairs(&field("raw_query")));
        assert_eq!(ours.form, form_pairs(&field("body")));
    }
}

/// Answers encoded by Prometheus' own model types decode to what client_golang reads from them.
#[tokio::test]
async fn answers_encoded_by_prometheus_model_decode_like_client_golang() {
    let data = query_reply(Reply::json(fixture("answer_vector.json")))
        .await
        .expect("vector");
    let QueryData::Vector(samples) = data else {
        panic!("expected a vector, got {data:?}")
    };
    let expected: Vec<serde_json::Value> =
        serde_json::from_str(&fixture("answer_vector.expected.json")).expect("expected json");
    assert_eq!(samples.len(), expected.len());
    for (sample, want) in samples.iter().zip(&expected) {
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(want["labels"].clone()).expect("labels");
        assert_eq!(sample.labels, labels);
        assert_eq!(
            sample.timestamp,
            want["timestamp"].as_f64().expect("timestamp")
        );
        let value: f64 = want["value"]
            .as_str()
            .expect("value")
            .parse()
            .expect("go-formatted float");
        assert!(
            sample.value.to_bits() == value.to_bits() || (sample.value.is_nan() && value.is_nan()),
            "{labels:?}: {} != {value}",
            sample.value
        );
    }

    let matrix = query_reply(Reply::json(fixture("answer_matrix.json")))
        .await
        .expect("matrix");
    let QueryData::Matrix(series) = matrix else {
        panic!("expected a matrix, got {matrix:?}")
    };
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].samples,
        vec![(1_699_999_940.123, 0.0), (1_700_000_000.123, 2.5)]
    );

    let scalar = query_reply(Reply::json(fixture("answer_scalar.json")))
        .await
        .expect("scalar");
    assert!(
        matches!(scalar, QueryData::Scalar(Sample { value: 42.0, .. })),
        "{scalar:?}"
    );
    let string = query_reply(Reply::json(fixture("answer_string.json")))
        .await
        .expect("string");
    assert_eq!(string, QueryData::String("hello \"prometheus\"".into()));
}

/// The `Authorization` header of every request the fake received, in order.
fn authorizations(fake: &FakePrometheus) -> Vec<Option<String>> {
    fake.requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}
