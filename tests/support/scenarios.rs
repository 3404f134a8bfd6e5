//! The canonical kube-state-metrics fixture (`tests/fixtures/prometheus/kube-state-metrics.om`): the
//! scenarios of the table in `tests/fixtures/prometheus/README.md`, their names for tests to refer to, and
//! the timeline (START/END) every test evaluates against.
//!
//! Samples every 30 s from START = 2026-01-01T11:00:00Z to END = 2026-01-01T12:00:00Z inclusive. Tests
//! evaluate at [`END`], or shift the fixture so END becomes "now" (see `prometheus::shift_openmetrics`).
#![allow(dead_code)]

use std::path::PathBuf;

use super::ksm::{Condition, Container, Fixture, Phase, Pod, Steps, Timeline};

/// First sampling instant, unix seconds (2026-01-01T11:00:00Z).
pub const START: i64 = 1_767_265_200;
/// [`START`] in RFC 3339.
pub const START_RFC3339: &str = "2026-01-01T11:00:00Z";
/// Last sampling instant, unix seconds (2026-01-01T12:00:00Z): where tests evaluate.
pub const END: i64 = 1_767_268_800;
/// [`END`] in RFC 3339.
pub const END_RFC3339: &str = "2026-01-01T12:00:00Z";
/// Seconds between two samples of a series.
pub const STEP: i64 = 30;
/// One minute, in seconds, to write instants as `END - 4 * MINUTE`.
pub const MINUTE: i64 = 60;

/// The sampling timeline of the fixture.
pub const TIMELINE: Timeline = Timeline {
    start: START,
    end: END,
    step: STEP,
};

/// A rollout's canary (or a decoy ReplicaSet) and the pods it has in the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub namespace: &'static str,
    pub rollout: &'static str,
    /// The pod-template hash: the ReplicaSet is `<rollout>-<hash>`.
    pub hash: &'static str,
    /// Names of the ReplicaSet's pods, in the order they are rendered.
    pub pods: &'static [&'static str],
}

impl Scenario {
    /// `<rollout>-<hash>`: the `created_by_name` of the pods.
    pub fn replica_set(&self) -> String {
        format!("{}-{}", self.rollout, self.hash)
    }

    /// `namespace/rollout`, for messages.
    pub fn target(&self) -> String {
        format!("{}/{}", self.namespace, self.rollout)
    }
}

/// #1: 3 healthy pods, image `registry.local/shop/web:1.4.2`, 0 restarts.
pub const SHOP_WEB: Scenario = Scenario {
    namespace: "shop",
    rollout: "web",
    hash: "6c8d7f9a1",
    pods: &[
        "web-6c8d7f9a1-4xkqz",
        "web-6c8d7f9a1-7bw2m",
        "web-6c8d7f9a1-h9tdp",
    ],
};
/// #1d decoy: the stable ReplicaSet of shop/web.
pub const DECOY_SHOP_WEB_STABLE: Scenario = Scenario {
    namespace: "shop",
    rollout: "web",
    hash: "5b7c9d8e2",
    pods: &["web-5b7c9d8e2-2hq8r", "web-5b7c9d8e2-m4vxn"],
};
/// #1d decoy: the same ReplicaSet name as shop/web's canary, in another namespace.
pub const DECOY_SHOP_STAGING_WEB: Scenario = Scenario {
    namespace: "shop-staging",
    rollout: "web",
    hash: "6c8d7f9a1",
    pods: &["web-6c8d7f9a1-9ctwl"],
};
/// #1d decoy: a rollout whose name has `web` as a prefix, same hash.
pub const DECOY_SHOP_WEBSHOP: Scenario = Scenario {
    namespace: "shop",
    rollout: "webshop",
    hash: "6c8d7f9a1",
    pods: &["webshop-6c8d7f9a1-kd5rf"],
};
/// #1d decoy: a rollout named `web-api`, whose ReplicaSet `web-api-6c8d7f9a1` ends like shop/web's.
pub const DECOY_SHOP_WEB_API: Scenario = Scenario {
    namespace: "shop",
    rollout: "web-api",
    hash: "6c8d7f9a1",
    pods: &["web-api-6c8d7f9a1-x7ngs"],
};
/// #2: pod A crash-loops (0→3 restarts in the last 5 m, not ready for the last 4 m); pod B healthy.
pub const PAY_API: Scenario = Scenario {
    namespace: "pay",
    rollout: "api",
    hash: "7f6e5d4c3",
    pods: &[PAY_API_CRASHING_POD, "api-7f6e5d4c3-q2w6j"],
};
/// #2: the crash-looping pod of pay/api.
pub const PAY_API_CRASHING_POD: &str = "api-7f6e5d4c3-b8kzt";
/// #3: one container restarted 4 times between 11:00 and 11:30 and once at 11:57; ready.
pub const PAY_LEDGER: Scenario = Scenario {
    namespace: "pay",
    rollout: "ledger",
    hash: "8a7b6c5d4",
    pods: &[PAY_LEDGER_RESTARTED_POD, "ledger-8a7b6c5d4-t6hxz"],
};
/// #3: the pod of pay/ledger whose container restarted (counter 5 at END).
pub const PAY_LEDGER_RESTARTED_POD: &str = "ledger-8a7b6c5d4-f5lnc";
/// #4: one pod not ready for the last 10 m, 0 restarts.
pub const PAY_WORKER: Scenario = Scenario {
    namespace: "pay",
    rollout: "worker",
    hash: "9b8c7d6e5",
    pods: &[PAY_WORKER_NOT_READY_POD, "worker-9b8c7d6e5-p7zrw"],
};
/// #4: the pod of pay/worker that is not ready.
pub const PAY_WORKER_NOT_READY_POD: &str = "worker-9b8c7d6e5-d2vmk";
/// #5: image `registry.local/media/encoder:latest`.
pub const MEDIA_ENCODER: Scenario = Scenario {
    namespace: "media",
    rollout: "encoder",
    hash: "1a2b3c4d5",
    pods: &["encoder-1a2b3c4d5-g4sbl"],
};
/// #6: image `registry.local:5000/team/app` (no tag, registry with a port).
pub const MEDIA_THUMBS: Scenario = Scenario {
    namespace: "media",
    rollout: "thumbs",
    hash: "2b3c4d5e6",
    pods: &["thumbs-2b3c4d5e6-n6cfq"],
};
/// #7: containers `resizer` (`:latest` pinned by digest) and `envoy` (`v1.30.1`).
pub const MEDIA_RESIZER: Scenario = Scenario {
    namespace: "media",
    rollout: "resizer",
    hash: "3c4d5e6f7",
    pods: &["resizer-3c4d5e6f7-w9jtd"],
};
/// #8: one pod stuck pulling `nginx` (ImagePullBackOff, Pending, not ready).
pub const MEDIA_UPLOADER: Scenario = Scenario {
    namespace: "media",
    rollout: "uploader",
    hash: "4d5e6f7a8",
    pods: &["uploader-4d5e6f7a8-r5mhx"],
};
/// #9: 2 healthy pods whose series all stop at END − 4 m.
pub const OPS_STALE: Scenario = Scenario {
    namespace: "ops",
    rollout: "stale",
    hash: "5e6f7a8b9",
    pods: &["stale-5e6f7a8b9-c8fpv", "stale-5e6f7a8b9-l2qkd"],
};
/// #10: 2 healthy pods whose series all stop at END − 30 m.
pub const OPS_GONE: Scenario = Scenario {
    namespace: "ops",
    rollout: "gone",
    hash: "6f7a8b9c0",
    pods: &["gone-6f7a8b9c0-s4gwb", "gone-6f7a8b9c0-z9rnh"],
};
/// #11: no series at all.
pub const OPS_GHOST: Scenario = Scenario {
    namespace: "ops",
    rollout: "ghost",
    hash: "7a8b9c0d1",
    pods: &[],
};
/// #12: one pod created at END − 3 m whose restart counter is already 2 at its first sample.
pub const PAY_YOUNG: Scenario = Scenario {
    namespace: "pay",
    rollout: "young",
    hash: "8b9c0d1e2",
    pods: &["young-8b9c0d1e2-j7xdc"],
};

/// The numbered scenarios #1–#12 (without decoys), in table order.
pub const SCENARIOS: [Scenario; 12] = [
    SHOP_WEB,
    PAY_API,
    PAY_LEDGER,
    PAY_WORKER,
    MEDIA_ENCODER,
    MEDIA_THUMBS,
    MEDIA_RESIZER,
    MEDIA_UPLOADER,
    OPS_STALE,
    OPS_GONE,
    OPS_GHOST,
    PAY_YOUNG,
];

/// The decoys of #1: broken ReplicaSets whose names or namespaces resemble shop/web's canary.
pub const DECOYS: [Scenario; 4] = [
    DECOY_SHOP_WEB_STABLE,
    DECOY_SHOP_STAGING_WEB,
    DECOY_SHOP_WEBSHOP,
    DECOY_SHOP_WEB_API,
];

/// The digest pinning media/resizer's `resizer` image.
pub const RESIZER_DIGEST: &str =
    "sha256:9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4b6d8f0a1c3e5b7d9f";

/// Where the committed rendering lives.
pub fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prometheus/kube-state-metrics.om")
}

/// The canonical fixture rendered as OpenMetrics text (what the committed file must contain).
pub fn render() -> String {
    fixture().render()
}

/// The canonical fixture: every scenario and decoy over [`TIMELINE`].
pub fn fixture() -> Fixture {
    let mut fixture = Fixture::new(TIMELINE);
    let mut add = |pods: Vec<Pod>| fixture.pods.extend(pods);

    // #1 shop/web: healthy canary.
    add(healthy(&SHOP_WEB, "registry.local/shop/web:1.4.2"));

    // #1d decoys: restarting (+5 in the last 5 m), not ready, `:latest`.
    add(decoy(
        &DECOY_SHOP_WEB_STABLE,
        "registry.local/shop/web:latest",
    ));
    add(decoy(
        &DECOY_SHOP_STAGING_WEB,
        "registry.local/shop/web:latest",
    ));
    add(decoy(
        &DECOY_SHOP_WEBSHOP,
        "registry.local/shop/webshop:latest",
    ));
    add(decoy(
        &DECOY_SHOP_WEB_API,
        "registry.local/shop/web-api:latest",
    ));

    // #2 pay/api: pod A restarts at END-4m, END-2m30s, END-1m; not ready from END-4m; back-off at the end.
    let api_image = "registry.local/pay/api:2.0.1";
    add(vec![
        pod(&PAY_API, PAY_API_CRASHING_POD, 2)
            .ready(Steps::constant(Condition::True).then(END - 4 * MINUTE, Condition::False))
            .container(
                Container::new("api", api_image)
                    .restarts(
                        Steps::constant(0)
                            .then(END - 4 * MINUTE, 1)
                            .then(END - 5 * MINUTE / 2, 2)
                            .then(END - MINUTE, 3),
                    )
                    .ready(Steps::constant(true).then(END - 4 * MINUTE, false))
                    .waiting(
                        Steps::constant(None).then(END - STEP, Some("CrashLoopBackOff".into())),
                    )
                    .last_terminated(
                        Steps::constant(None).then(END - 4 * MINUTE, Some("Error".into())),
                    ),
            ),
        pod(&PAY_API, PAY_API.pods[1], 2).container(Container::new("api", api_image)),
    ]);

    // #3 pay/ledger: restarts at 11:05, 11:12, 11:20, 11:28 and 11:57 (END-3m); always ready.
    let ledger_image = "registry.local/pay/ledger:3.1.0";
    add(vec![
        pod(&PAY_LEDGER, PAY_LEDGER_RESTARTED_POD, 3).container(
            Container::new("ledger", ledger_image)
                .restarts(
                    Steps::constant(0)
                        .then(START + 5 * MINUTE, 1)
                        .then(START + 12 * MINUTE, 2)
                        .then(START + 20 * MINUTE, 3)
                        .then(START + 28 * MINUTE, 4)
                        .then(END - 3 * MINUTE, 5),
                )
                .last_terminated(
                    Steps::constant(None).then(START + 5 * MINUTE, Some("OOMKilled".into())),
                ),
        ),
        pod(&PAY_LEDGER, PAY_LEDGER.pods[1], 3).container(Container::new("ledger", ledger_image)),
    ]);

    // #4 pay/worker: one pod not ready from END-10m.
    let worker_image = "registry.local/pay/worker:1.8.0";
    add(vec![
        pod(&PAY_WORKER, PAY_WORKER_NOT_READY_POD, 4)
            .ready(Steps::constant(Condition::True).then(END - 10 * MINUTE, Condition::False))
            .container(
                Container::new("worker", worker_image)
                    .ready(Steps::constant(true).then(END - 10 * MINUTE, false)),
            ),
        pod(&PAY_WORKER, PAY_WORKER.pods[1], 4).container(Container::new("worker", worker_image)),
    ]);

    // #5–#7 media: image references.
    add(healthy(
        &MEDIA_ENCODER,
        "registry.local/media/encoder:latest",
    ));
    add(healthy(&MEDIA_THUMBS, "registry.local:5000/team/app"));
    let resizer_image = format!("registry.local/media/resizer:latest@{RESIZER_DIGEST}");
    let mut resizer = Container::new("resizer", &resizer_image);
    resizer.image_id = format!("registry.local/media/resizer@{RESIZER_DIGEST}");
    add(vec![pod(&MEDIA_RESIZER, MEDIA_RESIZER.pods[0], 5)
        .container(resizer)
        .container(Container::new(
            "envoy",
            "docker.io/envoyproxy/envoy:v1.30.1",
        ))]);

    // #8 media/uploader: stuck pulling an untagged image since before START.
    add(vec![pod(&MEDIA_UPLOADER, MEDIA_UPLOADER.pods[0], 0)
        .created(START - 20 * MINUTE)
        .phase(Steps::constant(Phase::Pending))
        .ready(Steps::constant(Condition::False))
        .container(
            Container::new("uploader", "nginx")
                .never_pulled()
                .ready(Steps::constant(false))
                .waiting(Steps::constant(Some("ImagePullBackOff".into()))),
        )]);

    // #9 ops/stale and #10 ops/gone: healthy pods whose series stop early.
    add(healthy(&OPS_STALE, "registry.local/ops/stale:0.9.4")
        .into_iter()
        .map(|pod| pod.exported(START, END - 4 * MINUTE))
        .collect());
    add(healthy(&OPS_GONE, "registry.local/ops/gone:0.3.0")
        .into_iter()
        .map(|pod| pod.exported(START, END - 30 * MINUTE))
        .collect());

    // #11 ops/ghost: nothing.

    // #12 pay/young: born at END-3m with 2 restarts already.
    let born = END - 3 * MINUTE;
    add(vec![pod(&PAY_YOUNG, PAY_YOUNG.pods[0], 0)
        .created(born)
        .exported(born, END)
        .container(
            Container::new("young", "registry.local/pay/young:1.0.0")
                .restarts(Steps::constant(2))
                .last_terminated(Steps::constant(Some("Error".into()))),
        )]);

    fixture
}

/// A pod of `scenario` named `name`, created `days` days (plus an hour) before START.
fn pod(scenario: &Scenario, name: &str, days: i64) -> Pod {
    let replica_set = scenario.replica_set();
    let suffix = name
        .strip_prefix(&format!("{replica_set}-"))
        .unwrap_or_else(|| panic!("pod {name} is not named after its replica set {replica_set}"));
    Pod::new(
        scenario.namespace,
        &replica_set,
        suffix,
        START - days * 86_400 - 60 * MINUTE,
    )
}

/// Every pod of `scenario`, ready, running `image` in one container named after the rollout.
fn healthy(scenario: &Scenario, image: &str) -> Vec<Pod> {
    scenario
        .pods
        .iter()
        .map(|name| pod(scenario, name, 1).container(Container::new(scenario.rollout, image)))
        .collect()
}

/// Every pod of `scenario` broken in every way a guardrail looks at: 7 restarts before the last 5 m and
/// one more each minute from END-4m30s (+5), not ready, crash-looping, running `image` (`:latest`).
fn decoy(scenario: &Scenario, image: &str) -> Vec<Pod> {
    let restarts = (0..5).fold(Steps::constant(7), |steps, i| {
        steps.then(END - 4 * MINUTE - STEP + i * MINUTE, 8 + i as u64)
    });
    scenario
        .pods
        .iter()
        .map(|name| {
            pod(scenario, name, 1)
                .ready(Steps::constant(Condition::False))
                .container(
                    Container::new(scenario.rollout, image)
                        .restarts(restarts.clone())
                        .ready(Steps::constant(false))
                        .waiting(Steps::constant(Some("CrashLoopBackOff".into())))
                        .last_terminated(Steps::constant(Some("Error".into()))),
                )
        })
        .collect()
}
