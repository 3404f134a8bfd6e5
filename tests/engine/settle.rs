//! Settling on the rollout's timeline, through the engine as plugin mode and gRPC call it (`measure`, then
//! `resume` on the measurement's own `startedAt`): data that appears later is measured (Running, …,
//! Successful), data that never appears fails after `settle` with what was waited for, data that stops or a
//! Prometheus that errs is answered at once, and a young pod that is not Ready yet is waited for while an old
//! one counts.
//!
//! The fake cluster behind the fake Prometheus changes only when a test says so (after the Nth measurement),
//! so no assertion depends on how fast the machine is; `settle` is a few seconds so the poll interval
//! (`min(10s, settle/6)`) is a fraction of a second.
use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rollouts_guardrails::engine::measure::{metadata_key, SettlePolicy, When};
use rollouts_guardrails::engine::{Engine, Measurement, MetricSpec, Phase};
use rollouts_guardrails::prometheus::Client;
use serde_json::{json, Value};
use support::analysis;
use support::fake_cluster::{prometheus, Cluster};
use support::fake_prometheus::FakePrometheus;

fn metric(guardrail: &str, fake: &FakePrometheus, extra: Value) -> MetricSpec {
    let mut config =
        json!({"guardrail": guardrail, "address": fake.url().as_str(), "timeout": "2s"});
    config
        .as_object_mut()
        .expect("object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    analysis::metric(guardrail, &config)
}

/// Runs a measurement the way argo's controller does: Run, then Resume at each `resumeAt` until it is no
/// longer Running. `between(n)` runs before the (n+1)-th call (n measurements taken so far). Every Running
/// answer is checked to resume one poll interval (`min(10s, settle/6)`) ahead at most, and never past
/// `startedAt + settle`.
async fn run_to_completion(
    engine: &Engine,
    metric: &MetricSpec,
    settle: Duration,
    mut between: impl FnMut(usize),
) -> Vec<Measurement> {
    let poll = (settle / 6).clamp(Duration::from_millis(200), Duration::from_secs(10));
    let check = |m: &Measurement, started_at: SystemTime| {
        if m.phase == Phase::Running {
            let resume_at = m
                .resume_at
                .expect("a Running measurement says when to resume");
            assert!(
                resume_at <= SystemTime::now() + poll,
                "resumeAt more than {poll:?} ahead"
            );
            assert!(
                resume_at <= started_at + settle,
                "resumeAt past the settle deadline"
            );
        }
    };
    between(0);
    let first = engine.measure(&analysis::shop_web(), metric).await;
    let started_at = first.started_at.expect("startedAt");
    check(&first, started_at);
    let mut taken = vec![first];
    while taken.last().expect("one").phase == Phase::Running {
        assert!(
            taken.len() < 100,
            "a settling measurement must end: {taken:#?}"
        );
        let last = taken.last().expect("one");
        let resume_at = last
            .resume_at
            .expect("a Running measurement says when to resume");
        tokio::time::sleep(
            resume_at
                .duration_since(SystemTime::now())
                .unwrap_or_default(),
        )
        .await;
        between(taken.len());
        let next = engine
            .resume(&analysis::shop_web(), metric, started_at)
            .await;
        check(&next, started_at);
        taken.push(next);
    }
    taken
}

fn phases(taken: &[Measurement]) -> Vec<Phase> {
    taken.iter().map(|m| m.phase).collect()
}

fn set(cluster: &Arc<Mutex<Cluster>>, change: impl FnOnce(&mut Cluster)) {
    change(&mut cluster.lock().expect("cluster"));
}

#[tokio::test]
async fn data_that_appears_after_the_run_started_is_measured_running_then_successful() {
    let cluster = Arc::new(Mutex::new(Cluster::none_yet()));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    let metric = metric("not-ready", &fake, json!({"settle": "6s"}));
    let settle = Duration::from_secs(6);
    // kube-state-metrics reports the pod only after the second measurement.
    let taken = run_to_completion(&engine, &metric, settle, |n| {
        if n == 2 {
            set(&cluster, |c| c.reported = true);
        }
    })
    .await;
    assert_eq!(
        phases(&taken),
        [Phase::Running, Phase::Running, Phase::Successful],
        "{taken:#?}"
    );
    let started_at = taken[0].started_at.expect("startedAt");
    for running in &taken[..2] {
        assert!(
            running
                .message
                .starts_with("waiting for kube-state-metrics to report the pods (up to 6s, "),
            "{}",
            running.message
        );
        assert!(
            running.message.contains(
                "no fresh kube-state-metrics series for pods of ReplicaSet shop/web-6c8d7f9a1"
            ),
            "{}",
            running.message
        );
        assert_eq!(running.metadata[metadata_key::WAITING_FOR], "pod-series");
        assert_eq!(
            running.finished_at, None,
            "argo resumes only unfinished measurements"
        );
        assert!(!running.metadata.contains_key(metadata_key::FAILURE));
    }
    assert!(
        taken.iter().all(|m| m.started_at == Some(started_at)),
        "one timeline"
    );
    let done = taken.last().expect("last");
    assert!(done.finished_at.is_some());
    assert_eq!(done.resume_at, None);
    assert_eq!(done.value, "0");
}

#[tokio::test]
async fn data_that_never_appears_fails_after_settle_saying_what_it_waited_for() {
    let cluster = Arc::new(Mutex::new(Cluster::none_yet()));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    let metric = metric("restarts", &fake, json!({"settle": "2s"}));
    let taken = run_to_completion(&engine, &metric, Duration::from_secs(2), |_| {}).await;
    let done = taken.last().expect("last");
    assert_eq!(done.phase, Phase::Failed, "{taken:#?}");
    assert_eq!(done.metadata[metadata_key::FAILURE], "no-data");
    assert!(
        done.message
            .ends_with("after waiting 2s for kube-state-metrics to report the pods"),
        "{}",
        done.message
    );
    assert!(
        taken.len() >= 3,
        "polled while settling: {:?}",
        phases(&taken)
    );
    let started_at = done.started_at.expect("startedAt");
    let finished_at = done.finished_at.expect("finishedAt");
    assert!(
        finished_at >= started_at + Duration::from_secs(2),
        "failed only after settle"
    );
    assert!(taken[..taken.len() - 1]
        .iter()
        .all(|m| m.phase == Phase::Running));
}

#[tokio::test]
async fn data_that_goes_stale_mid_settle_fails_at_once() {
    let cluster = Arc::new(Mutex::new(Cluster::none_yet()));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    // A long settle: the stale answer must not wait for it. Prometheus returns a stopped series for its
    // lookback (5m) after the last sample, so staleness 1m sees a 200 s old one as stale.
    let metric = metric(
        "restarts",
        &fake,
        json!({"settle": "10m", "staleness": "1m"}),
    );
    let taken = run_to_completion(&engine, &metric, Duration::from_secs(600), |n| {
        if n == 1 {
            set(&cluster, |c| {
                c.reported = true;
                c.sample_age = 200.0;
            });
        }
    })
    .await;
    assert_eq!(
        phases(&taken),
        [Phase::Running, Phase::Failed],
        "{taken:#?}"
    );
    let done = &taken[1];
    assert_eq!(done.metadata[metadata_key::FAILURE], "stale");
    assert!(
        done.message.starts_with("stale kube-state-metrics data"),
        "{}",
        done.message
    );
    assert!(!done.message.contains("after waiting"), "{}", done.message);
}

#[tokio::test]
async fn a_prometheus_that_errs_is_answered_at_once_inside_settle() {
    let cluster = Arc::new(Mutex::new(Cluster {
        unavailable: true,
        ..Cluster::none_yet()
    }));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    let m = engine
        .measure(
            &analysis::shop_web(),
            &metric("restarts", &fake, json!({"settle": "10m"})),
        )
        .await;
    assert_eq!(m.phase, Phase::Failed, "{m:#?}");
    assert_eq!(m.metadata[metadata_key::FAILURE], "query-error");
    assert_eq!(m.resume_at, None);
}

#[tokio::test]
async fn a_young_pod_not_ready_yet_is_waited_for_and_an_old_one_counts_at_once() {
    let cluster = Arc::new(Mutex::new(Cluster {
        reported: true,
        ready: false,
        pod_age: 20.0,
        ..Cluster::none_yet()
    }));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    let metric = metric("not-ready", &fake, json!({"settle": "2m"}));
    let young = engine.measure(&analysis::shop_web(), &metric).await;
    assert_eq!(young.phase, Phase::Running, "{young:#?}");
    assert_eq!(young.metadata[metadata_key::WAITING_FOR], "readiness");
    assert!(
        young
            .message
            .starts_with("waiting for the pods to become Ready"),
        "{}",
        young.message
    );
    set(&cluster, |c| c.pod_age = 600.0);
    let old = engine.measure(&analysis::shop_web(), &metric).await;
    assert_eq!(old.phase, Phase::Failed, "{old:#?}");
    assert_eq!(old.metadata[metadata_key::FAILURE], "threshold");
    assert!(
        old.message
            .starts_with("1 of 1 pod of ReplicaSet shop/web-6c8d7f9a1 not ready"),
        "{}",
        old.message
    );
}

#[tokio::test]
async fn the_young_pod_counts_once_the_measurement_has_settled() {
    let cluster = Arc::new(Mutex::new(Cluster {
        reported: true,
        ready: false,
        pod_age: 0.0,
        ..Cluster::none_yet()
    }));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    let metric = metric("not-ready", &fake, json!({"settle": "2s"}));
    let taken = run_to_completion(&engine, &metric, Duration::from_secs(2), |_| {}).await;
    let done = taken.last().expect("last");
    assert_eq!(done.phase, Phase::Failed, "{taken:#?}");
    assert_eq!(done.metadata[metadata_key::FAILURE], "threshold");
    assert!(
        done.message
            .ends_with("after waiting 2s for the pods to become Ready"),
        "{}",
        done.message
    );
}

#[tokio::test]
async fn an_explicit_evaluation_time_and_a_fixed_zero_settle_never_wait() {
    let cluster = Arc::new(Mutex::new(Cluster::none_yet()));
    let fake = prometheus(&cluster).await;
    let engine = Engine::new(Client::new(), None);
    let metric = metric("restarts", &fake, json!({"settle": "10m"}));
    let past = engine
        .measure_at(
            &analysis::shop_web(),
            &metric,
            Some(UNIX_EPOCH + Duration::from_secs(1_767_268_800)),
        )
        .await;
    assert_eq!(past.phase, Phase::Failed);
    assert!(!past.message.contains("after waiting"), "{}", past.message);
    let now = engine
        .measure_when(
            &analysis::shop_web(),
            &metric,
            When::Now {
                started_at: None,
                settle: SettlePolicy::Fixed(Duration::ZERO),
            },
        )
        .await;
    assert_eq!(now.phase, Phase::Failed);
    assert_eq!(now.metadata[metadata_key::FAILURE], "no-data");
}

#[tokio::test]
async fn the_controller_wide_default_settle_applies_where_the_metric_sets_none() {
    let cluster = Arc::new(Mutex::new(Cluster::none_yet()));
    let fake = prometheus(&cluster).await;
    let metric = metric("restarts", &fake, json!({}));
    let default = Engine::new(Client::new(), None)
        .measure(&analysis::shop_web(), &metric)
        .await;
    assert_eq!(default.phase, Phase::Running, "default settle 2m");
    assert!(
        default.message.contains("(up to 2m, "),
        "{}",
        default.message
    );
    let none = Engine::new(Client::new(), None)
        .with_default_settle(Duration::ZERO)
        .measure(&analysis::shop_web(), &metric)
        .await;
    assert_eq!(none.phase, Phase::Failed, "controller default settle 0");
}
