//! Query coalescing against a fake Prometheus that counts requests: identical concurrent queries are sent once
//! and share the answer or the failure; different instants, queries or credentials are never shared; a caller
//! giving up does not cancel the others; nothing is cached once the request is over.
use crate::support;

use std::time::{Duration, SystemTime};

use futures::future::join_all;
use rollouts_guardrails::prometheus::{Auth, Client, Endpoint, QueryData, QueryError, Secret};
use support::fake_prometheus::{FakePrometheus, Reply, Scenario};

const QUERY: &str = r#"sum(kube_pod_container_status_restarts_total{namespace="shop"})"#;
const CALLERS: usize = 16;
/// Long enough for every caller to join the request in flight.
const ANSWER_DELAY: Duration = Duration::from_millis(300);

fn at(millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

fn slow(reply: Reply) -> Reply {
    Reply::SlowFirstByte {
        delay: ANSWER_DELAY,
        then: Box::new(reply),
    }
}

fn one_sample() -> Reply {
    Reply::vector(&[(&[("namespace", "shop")], 1_700_000_000.0, "3")])
}

async fn slow_fake(reply: Reply) -> FakePrometheus {
    FakePrometheus::start(Scenario::Always(slow(reply))).await
}

#[tokio::test]
async fn identical_concurrent_queries_are_sent_once() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let results = join_all(
        (0..CALLERS).map(|_| client.instant_query(&endpoint, QUERY, at(1_700_000_000_000))),
    )
    .await;
    assert_eq!(fake.requests().len(), 1, "{:?}", fake.requests());
    let first = results[0].as_ref().expect("answer");
    assert!(matches!(first, QueryData::Vector(samples) if samples.len() == 1));
    for result in &results {
        assert_eq!(result.as_ref().expect("answer"), first);
    }
}

#[tokio::test]
async fn different_instants_are_separate_requests() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let results = join_all(
        (0..CALLERS as u64)
            .map(|i| client.instant_query(&endpoint, QUERY, at(1_700_000_000_000 + i))),
    )
    .await;
    assert!(results.iter().all(Result::is_ok));
    let requests = fake.requests();
    assert_eq!(requests.len(), CALLERS);
    let mut times: Vec<&str> = requests.iter().filter_map(|r| r.param("time")).collect();
    times.sort_unstable();
    times.dedup();
    assert_eq!(times.len(), CALLERS, "each instant is asked for: {times:?}");
}

#[tokio::test]
async fn instants_within_one_millisecond_share_the_request_prometheus_would_see() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let base = at(1_700_000_000_123);
    let results =
        join_all([0u64, 100_000, 499_999].map(|nanos| {
            client.instant_query(&endpoint, QUERY, base + Duration::from_nanos(nanos))
        }))
        .await;
    assert!(results.iter().all(Result::is_ok));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].param("time"), Some("1700000000.123"));
}

#[tokio::test]
async fn different_queries_or_endpoints_are_separate_requests() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let mut tenant = Endpoint::new(fake.url());
    tenant.tenant = Some("team-a".to_owned());
    let instant = at(1_700_000_000_000);
    let (a, b, c) = tokio::join!(
        client.instant_query(&endpoint, QUERY, instant),
        client.instant_query(&endpoint, "up", instant),
        client.instant_query(&tenant, QUERY, instant),
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn different_credentials_never_share_an_answer() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let with_token = |token: &str| {
        let mut endpoint = Endpoint::new(fake.url());
        endpoint.auth = Auth::Bearer(Secret::new(token));
        endpoint
    };
    let (alice, bob) = (with_token("tok-alice"), with_token("tok-bob"));
    let instant = at(1_700_000_000_000);
    let (a, a2, b) = tokio::join!(
        client.instant_query(&alice, QUERY, instant),
        client.instant_query(&alice, QUERY, instant),
        client.instant_query(&bob, QUERY, instant),
    );
    assert!(a.is_ok() && a2.is_ok() && b.is_ok());
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "one per identity: {requests:?}");
    let mut sent: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.header("authorization"))
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, ["Bearer tok-alice", "Bearer tok-bob"]);
}

#[tokio::test]
async fn a_failure_is_shared_by_every_caller() {
    let fake = slow_fake(Reply::api_error(422, "execution", "boom")).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let results = join_all(
        (0..CALLERS).map(|_| client.instant_query(&endpoint, QUERY, at(1_700_000_000_000))),
    )
    .await;
    assert_eq!(fake.requests().len(), 1);
    for result in results {
        match result {
            Err(QueryError::Http { status, detail, .. }) => {
                assert_eq!(status, 422);
                assert!(detail.contains("boom"), "{detail}");
            }
            other => panic!("expected the shared http error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_caller_giving_up_does_not_cancel_the_others() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let instant = at(1_700_000_000_000);
    let impatient = tokio::time::timeout(
        ANSWER_DELAY / 3,
        client.instant_query(&endpoint, QUERY, instant),
    );
    let patient = async {
        // Joins after the impatient caller started the request, and outlives it.
        tokio::time::sleep(ANSWER_DELAY / 6).await;
        client.instant_query(&endpoint, QUERY, instant).await
    };
    let (gave_up, answered) = tokio::join!(impatient, patient);
    assert!(gave_up.is_err(), "the impatient caller timed out");
    assert!(answered.is_ok(), "{answered:?}");
    assert_eq!(
        fake.requests().len(),
        1,
        "the patient caller joined, not resent"
    );
}

#[tokio::test]
async fn answers_are_not_cached_after_the_request() {
    let fake = FakePrometheus::start(Scenario::Always(one_sample())).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let instant = at(1_700_000_000_000);
    for _ in 0..3 {
        client
            .instant_query(&endpoint, QUERY, instant)
            .await
            .expect("answer");
    }
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn every_caller_abandoning_drops_the_request_and_the_next_caller_sends_anew() {
    let fake = slow_fake(one_sample()).await;
    let client = Client::new();
    let endpoint = Endpoint::new(fake.url());
    let instant = at(1_700_000_000_000);
    let abandoned = tokio::time::timeout(
        ANSWER_DELAY / 3,
        client.instant_query(&endpoint, QUERY, instant),
    )
    .await;
    assert!(abandoned.is_err());
    client
        .instant_query(&endpoint, QUERY, instant)
        .await
        .expect("a fresh request answers");
    assert_eq!(fake.requests().len(), 2);
}
