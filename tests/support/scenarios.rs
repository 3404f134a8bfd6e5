//! The canonical kube-state-metrics fixture (`tests/fixtures/prometheus/kube-state-metrics.om`): the
//! scenarios of the table in `tests/fixtures/prometheus/README.md`, their names for tests to refer to, and
//! the timeline (START/END) every test evaluates against.
//!
//! Samples every 30 s from START = 2026-01-01T11:00:00Z to END = 2026-01-01T12:00:00Z inclusive. Tests
//! evaluate at [`END`], or shift the fixture so END becomes "now" (see `prometheus::shift_openmetrics`).

use std::path::PathBuf;

use std::fmt::Write as _;

use super::ksm::{render_labels, Condition, Container, Fixture, Phase, Pod, Steps, Timeline};

/// The guardrails that read kube-state-metrics' pod series for the canary.
pub const POD_GUARDRAILS: [&str; 5] = [
    "restarts",
    "not-ready",
    "latest-image",
    "waiting-reasons",
    "oom-killed",
];

/// First sampling instant, unix seconds (2026-01-01T11:00:00Z).
pub const START: i64 = 1_767_265_200;
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
    crate::root().join("tests/fixtures/prometheus/kube-state-metrics.om")
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

// ---------------------------------------------------------------------------------------------------------
// The second fixture, `tests/fixtures/prometheus/guardrails-extra.om`: request metrics (application, Istio,
// ingress-nginx), `ALERTS` and Prometheus' own rule-evaluation clock, beside the kube-state-metrics pods they
// belong to. Same timeline as the canonical fixture; tests evaluate at END.
// ---------------------------------------------------------------------------------------------------------

/// checkout/cart: 2 pods, 10 req/s each with 0.1 % 5xx; fast (p95 ≈ 0.18 s).
pub const CHECKOUT_CART: Scenario = Scenario {
    namespace: "checkout",
    rollout: "cart",
    hash: "5d4c3b2a1",
    pods: &["cart-5d4c3b2a1-k2m4p", "cart-5d4c3b2a1-x7r9t"],
};
/// checkout/pricing: 1 pod, 5 req/s of 200 and 1 req/s of 503 (ratio 1/6); slow (p95 ≈ 2.35 s).
pub const CHECKOUT_PRICING: Scenario = Scenario {
    namespace: "checkout",
    rollout: "pricing",
    hash: "6e5d4c3b2",
    pods: &["pricing-6e5d4c3b2-b3n5q"],
};
/// checkout/pricing's stable ReplicaSet: 10 req/s with 0.1 % 5xx, fast, 0.3 cores and 200 MiB per pod.
pub const CHECKOUT_PRICING_STABLE: Scenario = Scenario {
    namespace: "checkout",
    rollout: "pricing",
    hash: "0a9b8c7d6",
    pods: &["pricing-0a9b8c7d6-r2t4y", "pricing-0a9b8c7d6-u6i8o"],
};
/// CPU cores and working-set MiB per pod of each ReplicaSet with resource series (cart canary 0.2/200, cart
/// stable 0.25/250, pricing canary 0.9/600, pricing stable 0.3/200).
pub const RESOURCES: [(Scenario, f64, f64); 4] = [
    (CHECKOUT_CART, 0.2, 200.0),
    (EXTRA_DECOYS[0], 0.25, 250.0),
    (CHECKOUT_PRICING, 0.9, 600.0),
    (CHECKOUT_PRICING_STABLE, 0.3, 200.0),
];
/// checkout/quiet: 1 pod serving 0.01 req/s (3 requests in 5 m: not enough traffic).
pub const CHECKOUT_QUIET: Scenario = Scenario {
    namespace: "checkout",
    rollout: "quiet",
    hash: "7f6e5d4c3",
    pods: &["quiet-7f6e5d4c3-h8v2w"],
};
/// checkout/silent: 1 pod, no request series at all.
pub const CHECKOUT_SILENT: Scenario = Scenario {
    namespace: "checkout",
    rollout: "silent",
    hash: "8a7f6e5d4",
    pods: &["silent-8a7f6e5d4-z4c6d"],
};
/// mesh/orders: Istio sidecar metrics, 20 req/s with 0.1 % 5xx as the destination reports them, p95 ≈ 40 ms;
/// the source reporter's series (50 % 5xx) must be ignored.
pub const MESH_ORDERS: Scenario = Scenario {
    namespace: "mesh",
    rollout: "orders",
    hash: "1b2c3d4e5",
    pods: &["orders-1b2c3d4e5-m5p7r"],
};
/// edge/storefront: served through ingress-nginx, canary Service `storefront-canary` (8 req/s, 0.25 % 502).
pub const EDGE_STOREFRONT: Scenario = Scenario {
    namespace: "edge",
    rollout: "storefront",
    hash: "2c3d4e5f6",
    pods: &["storefront-2c3d4e5f6-q9w3e"],
};
/// The canary Service of [`EDGE_STOREFRONT`].
pub const EDGE_STOREFRONT_CANARY_SERVICE: &str = "storefront-canary";
/// Request decoys: 50 % 5xx, slow. The stable ReplicaSet of cart, cart's hash in another namespace, and a
/// rollout whose name extends cart's.
pub const EXTRA_DECOYS: [Scenario; 3] = [
    Scenario {
        namespace: "checkout",
        rollout: "cart",
        hash: "9c8b7a6f5",
        pods: &["cart-9c8b7a6f5-d4f6g"],
    },
    Scenario {
        namespace: "checkout-staging",
        rollout: "cart",
        hash: "5d4c3b2a1",
        pods: &["cart-5d4c3b2a1-k2m4p"],
    },
    Scenario {
        namespace: "checkout",
        rollout: "cart-api",
        hash: "5d4c3b2a1",
        pods: &["cart-api-5d4c3b2a1-j5k7l"],
    },
];
/// Namespace with a firing `info` alert and a pending `critical` one: passes the default profile (minimum
/// severity warning), fails prod (info).
pub const ALERTS_CALM_NAMESPACE: &str = "calm";
/// Namespace with firing `KubePodCrashLooping` (critical) and `KubeContainerWaiting` (warning).
pub const ALERTS_ALARMED_NAMESPACE: &str = "alarmed";

/// The committed rendering of [`extra_fixture`].
pub fn extra_fixture_path() -> PathBuf {
    crate::root().join("tests/fixtures/prometheus/guardrails-extra.om")
}

/// Latency bucket bounds and the cumulative share of requests at or below each (the last is `+Inf`).
type Buckets = &'static [(&'static str, f64)];
const FAST_SECONDS: Buckets = &[
    ("0.05", 0.5),
    ("0.1", 0.9),
    ("0.25", 0.99),
    ("0.5", 1.0),
    ("1", 1.0),
    ("2.5", 1.0),
    ("+Inf", 1.0),
];
const SLOW_SECONDS: Buckets = &[
    ("0.05", 0.0),
    ("0.1", 0.0),
    ("0.25", 0.05),
    ("0.5", 0.1),
    ("1", 0.5),
    ("2.5", 1.0),
    ("+Inf", 1.0),
];
const FAST_MILLISECONDS: Buckets = &[
    ("5", 0.2),
    ("10", 0.5),
    ("25", 0.8),
    ("50", 0.99),
    ("100", 1.0),
    ("250", 1.0),
    ("+Inf", 1.0),
];

/// One counter-like series: labels and requests per second.
struct Flow {
    labels: Vec<(&'static str, String)>,
    per_second: f64,
}

/// The extra fixture: its pods (kube-state-metrics) and the request, alert and rule-evaluation families.
pub fn render_extra() -> String {
    let mut fixture = Fixture::new(TIMELINE);
    let all: Vec<Scenario> = [
        CHECKOUT_CART,
        CHECKOUT_PRICING,
        CHECKOUT_PRICING_STABLE,
        CHECKOUT_QUIET,
        CHECKOUT_SILENT,
        MESH_ORDERS,
        EDGE_STOREFRONT,
    ]
    .into_iter()
    .chain(EXTRA_DECOYS)
    .collect();
    for s in &all {
        for p in healthy(
            s,
            &format!("registry.local/{}/{}:1.0.0", s.namespace, s.rollout),
        ) {
            fixture = fixture.pod(p);
        }
    }
    let mut out = fixture.render();
    out.truncate(out.len() - "# EOF\n".len());

    // Application metrics, as a kubernetes-pods scrape labels them.
    let app = |s: &Scenario, pod: &str, code: &str, rps: f64| Flow {
        labels: vec![
            ("namespace", s.namespace.to_string()),
            ("pod", pod.to_string()),
            ("job", "kubernetes-pods".to_string()),
            ("code", code.to_string()),
            ("method", "GET".to_string()),
        ],
        per_second: rps,
    };
    let mut http = Vec::new();
    let mut http_latency: Vec<(&Scenario, &str, f64, Buckets)> = Vec::new();
    for pod in CHECKOUT_CART.pods {
        http.push(app(&CHECKOUT_CART, pod, "200", 10.0));
        http.push(app(&CHECKOUT_CART, pod, "500", 0.01));
        http_latency.push((&CHECKOUT_CART, pod, 10.01, FAST_SECONDS));
    }
    let pricing = CHECKOUT_PRICING.pods[0];
    http.push(app(&CHECKOUT_PRICING, pricing, "200", 5.0));
    http.push(app(&CHECKOUT_PRICING, pricing, "503", 1.0));
    http_latency.push((&CHECKOUT_PRICING, pricing, 6.0, SLOW_SECONDS));
    for pod in CHECKOUT_PRICING_STABLE.pods {
        http.push(app(&CHECKOUT_PRICING_STABLE, pod, "200", 10.0));
        http.push(app(&CHECKOUT_PRICING_STABLE, pod, "500", 0.01));
        http_latency.push((&CHECKOUT_PRICING_STABLE, pod, 10.01, FAST_SECONDS));
    }
    let quiet = CHECKOUT_QUIET.pods[0];
    http.push(app(&CHECKOUT_QUIET, quiet, "200", 0.01));
    http_latency.push((&CHECKOUT_QUIET, quiet, 0.01, FAST_SECONDS));
    for decoy in &EXTRA_DECOYS {
        http.push(app(decoy, decoy.pods[0], "200", 10.0));
        http.push(app(decoy, decoy.pods[0], "500", 10.0));
        http_latency.push((decoy, decoy.pods[0], 20.0, SLOW_SECONDS));
    }
    counter_family(&mut out, "http_requests", &http);
    let mut buckets = Vec::new();
    for (s, pod, rps, shape) in &http_latency {
        for (le, share) in shape.iter() {
            buckets.push(Flow {
                labels: vec![
                    ("namespace", s.namespace.to_string()),
                    ("pod", pod.to_string()),
                    ("job", "kubernetes-pods".to_string()),
                    ("le", le.to_string()),
                ],
                per_second: rps * share,
            });
        }
    }
    gauge_counter_family(&mut out, "http_request_duration_seconds_bucket", &buckets);

    // cAdvisor: one series per container, plus the pause container and the pod-level cgroup (container="")
    // that a sum over every series would double-count.
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    for (s, cores, mib) in &RESOURCES {
        for pod in s.pods {
            for (container, share) in [(s.rollout, 1.0), ("POD", 0.01), ("", 1.0)] {
                let labels = vec![
                    ("namespace", s.namespace.to_string()),
                    ("pod", pod.to_string()),
                    ("container", container.to_string()),
                    ("job", "kubelet".to_string()),
                ];
                cpu.push(Flow {
                    labels: labels.clone(),
                    per_second: cores * share,
                });
                memory.push((labels, mib * share * 1024.0 * 1024.0));
            }
        }
    }
    counter_family(&mut out, "container_cpu_usage_seconds", &cpu);
    let _ = writeln!(
        out,
        "# HELP container_memory_working_set_bytes Current working set in bytes."
    );
    let _ = writeln!(out, "# TYPE container_memory_working_set_bytes gauge");
    for (labels, bytes) in &memory {
        let rendered = render_labels(labels);
        for t in TIMELINE.instants() {
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{{rendered}}} {bytes} {t}"
            );
        }
    }

    // Istio: the destination sidecar's view (the one the preset reads) and the source's (a decoy).
    let orders = MESH_ORDERS.pods[0];
    let istio = |reporter: &str, code: &str, rps: f64| Flow {
        labels: vec![
            ("namespace", MESH_ORDERS.namespace.to_string()),
            ("pod", orders.to_string()),
            ("reporter", reporter.to_string()),
            ("destination_workload", MESH_ORDERS.rollout.to_string()),
            ("response_code", code.to_string()),
        ],
        per_second: rps,
    };
    counter_family(
        &mut out,
        "istio_requests",
        &[
            istio("destination", "200", 20.0),
            istio("destination", "500", 0.02),
            istio("source", "500", 20.0),
        ],
    );
    let istio_buckets: Vec<Flow> = FAST_MILLISECONDS
        .iter()
        .map(|(le, share)| Flow {
            labels: vec![
                ("namespace", MESH_ORDERS.namespace.to_string()),
                ("pod", orders.to_string()),
                ("reporter", "destination".to_string()),
                ("le", le.to_string()),
            ],
            per_second: 20.02 * share,
        })
        .collect();
    gauge_counter_family(
        &mut out,
        "istio_request_duration_milliseconds_bucket",
        &istio_buckets,
    );

    // ingress-nginx, scraped through a ServiceMonitor (its own namespace/service labels become exported_*).
    let nginx = |service: &str, status: &str, rps: f64| Flow {
        labels: vec![
            ("namespace", "ingress-nginx".to_string()),
            ("pod", "ingress-nginx-controller-7d9f8-abcde".to_string()),
            ("exported_namespace", EDGE_STOREFRONT.namespace.to_string()),
            ("exported_service", service.to_string()),
            ("ingress", "storefront".to_string()),
            ("status", status.to_string()),
        ],
        per_second: rps,
    };
    // ingress-nginx exposes a counter without the `_total` suffix, which OpenMetrics cannot express as a
    // counter: a gauge family keeps the real name.
    gauge_counter_family(
        &mut out,
        "nginx_ingress_controller_requests",
        &[
            nginx(EDGE_STOREFRONT_CANARY_SERVICE, "200", 8.0),
            nginx(EDGE_STOREFRONT_CANARY_SERVICE, "502", 0.02),
            nginx("storefront-stable", "500", 8.0),
        ],
    );

    // Alerts and the rule-evaluation clock.
    let alert = |namespace: &str, name: &str, state: &str, severity: &str| {
        let mut labels = vec![
            ("alertname", name.to_string()),
            ("alertstate", state.to_string()),
        ];
        if !namespace.is_empty() {
            labels.push(("namespace", namespace.to_string()));
        }
        labels.push(("severity", severity.to_string()));
        labels
    };
    let alerts = [
        alert(ALERTS_CALM_NAMESPACE, "CPUThrottlingHigh", "firing", "info"),
        alert(
            ALERTS_CALM_NAMESPACE,
            "KubePodNotReady",
            "pending",
            "critical",
        ),
        alert(
            ALERTS_ALARMED_NAMESPACE,
            "KubePodCrashLooping",
            "firing",
            "critical",
        ),
        alert(
            ALERTS_ALARMED_NAMESPACE,
            "KubeContainerWaiting",
            "firing",
            "warning",
        ),
        alert("calm-staging", "KubePodCrashLooping", "firing", "critical"),
        alert("", "Watchdog", "firing", "none"),
    ];
    let _ = writeln!(out, "# HELP ALERTS Alerts as Prometheus records them.");
    let _ = writeln!(out, "# TYPE ALERTS gauge");
    for labels in &alerts {
        let rendered = render_labels(labels);
        for t in TIMELINE.instants() {
            let _ = writeln!(out, "ALERTS{{{rendered}}} 1 {t}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP prometheus_rule_group_last_evaluation_timestamp_seconds The timestamp of the last rule group evaluation in seconds."
    );
    let _ = writeln!(
        out,
        "# TYPE prometheus_rule_group_last_evaluation_timestamp_seconds gauge"
    );
    for t in TIMELINE.instants() {
        let _ = writeln!(
            out,
            "prometheus_rule_group_last_evaluation_timestamp_seconds{{rule_group=\"/etc/prometheus/rules/kubernetes-apps.yaml;kubernetes-apps\"}} {} {t}",
            t - 10
        );
    }
    // GitOps reconcilers.
    let _ = writeln!(out, "# HELP argocd_app_info Information about application.");
    let _ = writeln!(out, "# TYPE argocd_app_info gauge");
    for (name, health, sync, last) in ARGO_APPS {
        let labels = vec![
            ("namespace", "argocd".to_string()),
            ("name", name.to_string()),
            ("project", "default".to_string()),
            ("dest_namespace", "checkout".to_string()),
            ("health_status", health.to_string()),
            ("sync_status", sync.to_string()),
        ];
        let rendered = render_labels(&labels);
        for t in TIMELINE.instants().filter(|t| *t <= END - last) {
            let _ = writeln!(out, "argocd_app_info{{{rendered}}} 1 {t}");
        }
    }
    let _ = writeln!(out, "# HELP gotk_reconcile_condition The current condition status of a GitOps Toolkit resource reconciliation.");
    let _ = writeln!(out, "# TYPE gotk_reconcile_condition gauge");
    for (kind, name, not_ready_from) in FLUX_OBJECTS {
        for status in ["True", "False", "Unknown", "Deleted"] {
            let labels = vec![
                ("kind", kind.to_string()),
                ("name", name.to_string()),
                ("exported_namespace", "flux-system".to_string()),
                ("type", "Ready".to_string()),
                ("status", status.to_string()),
            ];
            let rendered = render_labels(&labels);
            for t in TIMELINE.instants() {
                let ready = t < not_ready_from;
                let on = (status == "True" && ready) || (status == "False" && !ready);
                let _ = writeln!(
                    out,
                    "gotk_reconcile_condition{{{rendered}}} {} {t}",
                    u8::from(on)
                );
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Argo CD Applications: name, health, sync, and how long before END their series stops (0: fresh).
pub const ARGO_APPS: [(&str, &str, &str, i64); 4] = [
    ("cart", "Healthy", "Synced", 0),
    ("pricing", "Degraded", "OutOfSync", 0),
    ("cart-api", "Degraded", "Synced", 0),
    ("legacy", "Healthy", "Synced", 30 * MINUTE),
];

/// Flux objects: kind, name, and the instant from which Ready is False (after END: always Ready).
pub const FLUX_OBJECTS: [(&str, &str, i64); 4] = [
    ("Kustomization", "checkout", END + 1),
    ("Kustomization", "payments", START),
    ("Kustomization", "edge", END - 2 * MINUTE),
    ("HelmRelease", "checkout", START),
];

/// A counter family (`name_total` samples) growing at each flow's rate from 0 at START.
fn counter_family(out: &mut String, name: &str, flows: &[Flow]) {
    let _ = writeln!(out, "# HELP {name} Requests.");
    let _ = writeln!(out, "# TYPE {name} counter");
    write_flows(out, &format!("{name}_total"), flows);
}

/// Cumulative counts written as a gauge family, keeping the series name as given: histogram buckets (what
/// `rate` and `histogram_quantile` read) and counters without `_total`.
fn gauge_counter_family(out: &mut String, name: &str, flows: &[Flow]) {
    let _ = writeln!(out, "# HELP {name} Request duration buckets.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    write_flows(out, name, flows);
}

fn write_flows(out: &mut String, series: &str, flows: &[Flow]) {
    for flow in flows {
        let rendered = render_labels(&flow.labels);
        for t in TIMELINE.instants() {
            let value = (flow.per_second * (t - START) as f64 * 1000.0).round() / 1000.0;
            let _ = writeln!(out, "{series}{{{rendered}}} {value} {t}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The rank-test fixture (rendered by the tests that use it, not committed): canary and stable latency
// histograms of four rollouts in namespace `ranked`, whose per-minute shape differs (`regression` with
// `method: mann-whitney` compares one p99 per minute). Same timeline as the canonical fixture; tests
// evaluate at END with a 20-minute window.
// ---------------------------------------------------------------------------------------------------------

/// One ReplicaSet of the rank-test fixture and the upper bound (seconds) of its uniform request durations in
/// each minute of the timeline (minute 0 starts at START): p99 ≈ 0.99 × that bound.
pub struct Ranked {
    pub scenario: Scenario,
    /// Requests per second per pod.
    pub per_second: f64,
    /// The instant the ReplicaSet's pods appear (created and first exported); START for the whole timeline.
    pub from: i64,
    /// `minute → upper bound of the durations`.
    pub bound: fn(i64) -> f64,
}

/// A slow jitter (±`amplitude`) so that no two minutes tie, with a phase per ReplicaSet.
fn jitter(minute: i64, amplitude: f64, phase: f64) -> f64 {
    1.0 + amplitude * (1.7 * minute as f64 + phase).sin()
}

/// The minutes (from START) of the two one-minute spikes of [`RANKED_SPIKY`]'s canary: END-14m and END-6m.
pub const RANKED_SPIKE_MINUTES: [i64; 2] = [46, 54];

const fn ranked(
    rollout: &'static str,
    hash: &'static str,
    pods: &'static [&'static str],
) -> Scenario {
    Scenario {
        namespace: "ranked",
        rollout,
        hash,
        pods,
    }
}

/// `slow`: the canary 1.5× slower than its stable in every minute (p99 ≈ 0.45 s vs 0.30 s).
pub const RANKED_SLOW: Scenario = ranked("slow", "1a2b3c4d5", &["slow-1a2b3c4d5-aaaaa"]);
pub const RANKED_SLOW_STABLE: Scenario = ranked(
    "slow",
    "5d4c3b2a1",
    &["slow-5d4c3b2a1-bbbbb", "slow-5d4c3b2a1-ccccc"],
);
/// `spiky`: the canary like its stable except two one-minute spikes (p99 ≈ 0.89 s) in the last 20 minutes.
pub const RANKED_SPIKY: Scenario = ranked("spiky", "2b3c4d5e6", &["spiky-2b3c4d5e6-ddddd"]);
pub const RANKED_SPIKY_STABLE: Scenario = ranked("spiky", "6e5d4c3b2", &["spiky-6e5d4c3b2-eeeee"]);
/// `shifted`: the canary consistently 5 % slower than its stable (inside latency's 10 % tolerance).
pub const RANKED_SHIFTED: Scenario = ranked("shifted", "3c4d5e6f7", &["shifted-3c4d5e6f7-fffff"]);
pub const RANKED_SHIFTED_STABLE: Scenario =
    ranked("shifted", "7f6e5d4c3", &["shifted-7f6e5d4c3-ggggg"]);
/// `young`: a canary like its stable, created 5 minutes before END.
pub const RANKED_YOUNG: Scenario = ranked("young", "4d5e6f7a8", &["young-4d5e6f7a8-hhhhh"]);
pub const RANKED_YOUNG_STABLE: Scenario = ranked("young", "8a7f6e5d4", &["young-8a7f6e5d4-iiiii"]);

/// Every ReplicaSet of the rank-test fixture.
pub fn ranked_replica_sets() -> Vec<Ranked> {
    let at = |scenario, bound: fn(i64) -> f64| Ranked {
        scenario,
        per_second: 10.0,
        from: START,
        bound,
    };
    vec![
        at(RANKED_SLOW, |m| 0.45 * jitter(m, 0.04, 1.0)),
        at(RANKED_SLOW_STABLE, |m| 0.3 * jitter(m, 0.04, 0.0)),
        at(RANKED_SPIKY, |m| {
            if RANKED_SPIKE_MINUTES.contains(&m) {
                0.9
            } else {
                0.3 * jitter(m, 0.04, 2.0)
            }
        }),
        at(RANKED_SPIKY_STABLE, |m| 0.3 * jitter(m, 0.04, 0.0)),
        at(RANKED_SHIFTED, |m| 0.315 * jitter(m, 0.01, 0.0)),
        at(RANKED_SHIFTED_STABLE, |m| 0.3 * jitter(m, 0.01, 0.0)),
        Ranked {
            from: END - 5 * MINUTE,
            ..at(RANKED_YOUNG, |m| 0.3 * jitter(m, 0.04, 3.0))
        },
        at(RANKED_YOUNG_STABLE, |m| 0.3 * jitter(m, 0.04, 0.0)),
    ]
}

/// Bucket bounds of the rank-test histograms: every 25 ms to 1 s, then coarser.
fn ranked_bounds() -> Vec<String> {
    (1..=40)
        .map(|k| format_number_plain(0.025 * k as f64))
        .chain(["1.5", "2", "2.5", "5", "+Inf"].map(String::from))
        .collect()
}

/// `0.025`, `0.1`, `1`: a bound as Prometheus clients print it.
fn format_number_plain(v: f64) -> String {
    let rounded = (v * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

/// The rank-test fixture: the pods (kube-state-metrics) and their latency histograms.
pub fn render_ranked() -> String {
    let sets = ranked_replica_sets();
    let mut fixture = Fixture::new(TIMELINE);
    for set in &sets {
        let s = &set.scenario;
        for p in healthy(
            s,
            &format!("registry.local/{}/{}:1.0.0", s.namespace, s.rollout),
        ) {
            let p = if set.from > START {
                p.created(set.from).exported(set.from, END)
            } else {
                p
            };
            fixture = fixture.pod(p);
        }
    }
    let mut out = fixture.render();
    out.truncate(out.len() - "# EOF\n".len());
    let bounds = ranked_bounds();
    let name = "http_request_duration_seconds_bucket";
    let _ = writeln!(out, "# HELP {name} Request duration buckets.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for set in &sets {
        for pod in set.scenario.pods {
            for le in &bounds {
                let limit: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                let labels = render_labels(&[
                    ("namespace", set.scenario.namespace.to_string()),
                    ("pod", pod.to_string()),
                    ("job", "kubernetes-pods".to_string()),
                    ("le", le.clone()),
                ]);
                // Each 30 s interval (t - STEP, t] belongs to the minute it starts in.
                let mut count = 0.0;
                for t in TIMELINE.instants().filter(|t| *t >= set.from) {
                    if t > set.from {
                        let minute = (t - STEP - START) / MINUTE;
                        let bound = (set.bound)(minute);
                        let share = (limit / bound).min(1.0);
                        count += set.per_second * STEP as f64 * share;
                    }
                    let value = (count * 1000.0).round() / 1000.0;
                    let _ = writeln!(out, "{name}{{{labels}}} {value} {t}");
                }
            }
        }
    }
    // Requests with 0.1 % 5xx on every ReplicaSet: the error ratio does not regress anywhere.
    let _ = writeln!(out, "# HELP http_requests Requests.");
    let _ = writeln!(out, "# TYPE http_requests counter");
    for set in &sets {
        for pod in set.scenario.pods {
            for (code, share) in [("200", 0.999), ("500", 0.001)] {
                let labels = render_labels(&[
                    ("namespace", set.scenario.namespace.to_string()),
                    ("pod", pod.to_string()),
                    ("job", "kubernetes-pods".to_string()),
                    ("code", code.to_string()),
                    ("method", "GET".to_string()),
                ]);
                for t in TIMELINE.instants().filter(|t| *t >= set.from) {
                    let value =
                        (set.per_second * share * (t - set.from) as f64 * 1000.0).round() / 1000.0;
                    let _ = writeln!(out, "http_requests_total{{{labels}}} {value} {t}");
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
