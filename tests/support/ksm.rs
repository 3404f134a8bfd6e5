//! kube-state-metrics series rendered as OpenMetrics text, from a description of pods over time.
//!
//! A [`Fixture`] is a sampling [`Timeline`] plus [`Pod`]s; each pod carries its containers and the
//! step functions ([`Steps`]) of everything that changes (phase, readiness, restart counter, waiting
//! reason, last termination reason). [`Fixture::render`] emits the families kube-state-metrics v2 exposes by
//! default, with its label names and label order, in the form `promtool tsdb create-blocks-from openmetrics`
//! accepts: one `# HELP`/`# TYPE` per family, families not interleaved, each series' samples in time order,
//! counters as an OpenMetrics counter family whose samples carry `_total`, and a final `# EOF`.
//!
//! What the rendering cannot express, and tests must know: backfilled data has no staleness markers, so a
//! series that stops (a pod that goes away, a waiting reason that clears) stays visible to instant queries for
//! the lookback delta (5 m by default) after its last sample, where a scraping Prometheus would hide it at once.
//! Container ids therefore stay constant across restarts (a new id would leave the old series visible).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The instants at which every live series has a sample: `start`, `start + step`, … up to `end` inclusive
/// (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Timeline {
    /// Every sampling instant, in order.
    pub fn instants(&self) -> impl Iterator<Item = i64> {
        assert!(self.step > 0, "timeline step must be positive");
        let Timeline { start, end, step } = *self;
        (0..)
            .map(move |i| start + i * step)
            .take_while(move |t| *t <= end)
    }
}

/// A value over time: `initial` until the first change, then each change from its instant on.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps<T> {
    initial: T,
    /// `(from, value)`, strictly increasing in `from`.
    changes: Vec<(i64, T)>,
}

impl<T> Steps<T> {
    /// A value that never changes.
    pub fn constant(value: T) -> Self {
        Steps {
            initial: value,
            changes: Vec::new(),
        }
    }

    /// The same value, changed to `value` from instant `from` on. Changes must be given in time order.
    pub fn then(mut self, from: i64, value: T) -> Self {
        if let Some((last, _)) = self.changes.last() {
            assert!(
                from > *last,
                "changes must be in time order: {from} after {last}"
            );
        }
        self.changes.push((from, value));
        self
    }

    /// The value at instant `t`.
    pub fn at(&self, t: i64) -> &T {
        self.changes
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map_or(&self.initial, |(_, value)| value)
    }
}

/// `status.phase` of a pod (`kube_pod_status_phase` has one series per phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    /// Every phase, in the order kube-state-metrics emits them.
    pub const ALL: [Phase; 5] = [
        Phase::Pending,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Unknown,
    ];

    /// The `phase` label value.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }
}

/// Status of the pod's `Ready` condition (`kube_pod_status_ready` has one series per status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    True,
    False,
    Unknown,
}

impl Condition {
    /// Every status, in the order kube-state-metrics emits them.
    pub const ALL: [Condition; 3] = [Condition::True, Condition::False, Condition::Unknown];

    /// The `condition` label value.
    pub fn label(self) -> &'static str {
        match self {
            Condition::True => "true",
            Condition::False => "false",
            Condition::Unknown => "unknown",
        }
    }
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    /// The image as written in the pod spec (`image_spec`).
    pub image_spec: String,
    /// The image the runtime reports in the container status (`image`).
    pub image: String,
    /// `image_id`; empty while the image was never pulled.
    pub image_id: String,
    /// `container_id`; empty while no container was created.
    pub container_id: String,
    /// `restartCount`, a counter.
    pub restarts: Steps<u64>,
    /// The container's `ready` flag.
    pub ready: Steps<bool>,
    /// `state.waiting.reason`; `None` while not waiting (the series then does not exist).
    pub waiting: Steps<Option<String>>,
    /// `lastState.terminated.reason`; `None` before the first termination (no series).
    pub last_terminated: Steps<Option<String>>,
}

impl Container {
    /// A running, ready container that never restarted, with `image_spec` and `image` both `image`, and an
    /// image id derived from the image (stable from one rendering to the next). [`Pod::container`] gives it
    /// a container id.
    pub fn new(name: &str, image: &str) -> Self {
        let repository = image_repository(image);
        Container {
            name: name.to_owned(),
            image_spec: image.to_owned(),
            image: image.to_owned(),
            image_id: format!("{repository}@sha256:{}", hex_digest(image, 64)),
            container_id: String::new(),
            restarts: Steps::constant(0),
            ready: Steps::constant(true),
            waiting: Steps::constant(None),
            last_terminated: Steps::constant(None),
        }
    }

    /// A container whose image was never pulled: empty `image_id` and `container_id`.
    pub fn never_pulled(mut self) -> Self {
        self.image_id.clear();
        self.container_id.clear();
        self
    }

    pub fn restarts(mut self, restarts: Steps<u64>) -> Self {
        self.restarts = restarts;
        self
    }

    pub fn ready(mut self, ready: Steps<bool>) -> Self {
        self.ready = ready;
        self
    }

    pub fn waiting(mut self, waiting: Steps<Option<String>>) -> Self {
        self.waiting = waiting;
        self
    }

    pub fn last_terminated(mut self, reason: Steps<Option<String>>) -> Self {
        self.last_terminated = reason;
        self
    }
}

/// One pod, created by a ReplicaSet, and the span during which kube-state-metrics exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub host_ip: String,
    pub pod_ip: String,
    /// `created_by_name` (with `created_by_kind="ReplicaSet"`).
    pub replica_set: String,
    pub priority_class: String,
    /// `metadata.creationTimestamp`, unix seconds (`kube_pod_created`).
    pub created: i64,
    /// First and last instant with samples; outside this span the pod has no series at all.
    pub first_sample: i64,
    pub last_sample: i64,
    pub phase: Steps<Phase>,
    /// The pod's `Ready` condition.
    pub ready: Steps<Condition>,
    pub containers: Vec<Container>,
}

impl Pod {
    /// A running, ready pod `<replica_set>-<suffix>` without containers, created at `created` (unix
    /// seconds) and exported over the whole rendering timeline. Uid, node and addresses are derived from the
    /// namespace and name, so they are stable from one rendering to the next.
    pub fn new(namespace: &str, replica_set: &str, suffix: &str, created: i64) -> Self {
        let name = format!("{replica_set}-{suffix}");
        let identity = format!("{namespace}/{name}");
        let digest = hex_digest(&identity, 32);
        let uid = format!(
            "{}-{}-4{}-a{}-{}",
            &digest[0..8],
            &digest[8..12],
            &digest[13..16],
            &digest[17..20],
            &digest[20..32]
        );
        let octet = |at: usize| u8::from_str_radix(&digest[at..at + 2], 16).unwrap_or(0);
        let node = octet(0) % 3 + 1;
        Pod {
            namespace: namespace.to_owned(),
            name,
            uid,
            node: format!("worker-{node}"),
            host_ip: format!("10.0.0.{}", 10 + node),
            pod_ip: format!("10.244.{node}.{}", octet(2) % 250 + 2),
            replica_set: replica_set.to_owned(),
            priority_class: String::new(),
            created,
            first_sample: i64::MIN,
            last_sample: i64::MAX,
            phase: Steps::constant(Phase::Running),
            ready: Steps::constant(Condition::True),
            containers: Vec::new(),
        }
    }

    /// Adds a container; one with an image id but no container id gets a `containerd://` id derived from
    /// the pod and container names.
    pub fn container(mut self, mut container: Container) -> Self {
        if container.container_id.is_empty() && !container.image_id.is_empty() {
            let identity = format!("{}/{}/{}", self.namespace, self.name, container.name);
            container.container_id = format!("containerd://{}", hex_digest(&identity, 64));
        }
        self.containers.push(container);
        self
    }

    pub fn created(mut self, created: i64) -> Self {
        self.created = created;
        self
    }

    /// Export the pod only from `first` to `last` inclusive.
    pub fn exported(mut self, first: i64, last: i64) -> Self {
        self.first_sample = first;
        self.last_sample = last;
        self
    }

    pub fn phase(mut self, phase: Steps<Phase>) -> Self {
        self.phase = phase;
        self
    }

    pub fn ready(mut self, ready: Steps<Condition>) -> Self {
        self.ready = ready;
        self
    }

    fn exported_at(&self, t: i64) -> bool {
        (self.first_sample..=self.last_sample).contains(&t)
    }
}

/// Whether a family is a gauge or a counter (whose samples carry the `_total` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// A metric family: its OpenMetrics name (without `_total` for counters), type and help text.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const POD_INFO: Family = Family {
    name: "kube_pod_info",
    kind: Kind::Gauge,
    help: "Information about pod.",
};
const POD_CREATED: Family = Family {
    name: "kube_pod_created",
    kind: Kind::Gauge,
    help: "Unix creation timestamp",
};
const POD_STATUS_READY: Family = Family {
    name: "kube_pod_status_ready",
    kind: Kind::Gauge,
    help: "Describes whether the pod is ready to serve requests.",
};
const POD_STATUS_PHASE: Family = Family {
    name: "kube_pod_status_phase",
    kind: Kind::Gauge,
    help: "The pods current phase.",
};
const CONTAINER_INFO: Family = Family {
    name: "kube_pod_container_info",
    kind: Kind::Gauge,
    help: "Information about a container in a pod.",
};
const CONTAINER_RESTARTS: Family = Family {
    name: "kube_pod_container_status_restarts",
    kind: Kind::Counter,
    help: "The number of container restarts per container.",
};
const CONTAINER_READY: Family = Family {
    name: "kube_pod_container_status_ready",
    kind: Kind::Gauge,
    help: "Describes whether the containers readiness check succeeded.",
};
const CONTAINER_WAITING_REASON: Family = Family {
    name: "kube_pod_container_status_waiting_reason",
    kind: Kind::Gauge,
    help: "Describes the reason the container is currently in waiting state.",
};
const CONTAINER_LAST_TERMINATED_REASON: Family = Family {
    name: "kube_pod_container_status_last_terminated_reason",
    kind: Kind::Gauge,
    help: "Describes the last reason the container was in terminated state.",
};

/// A sampling timeline and the pods exported over it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    pub timeline: Timeline,
    pub pods: Vec<Pod>,
}

/// Label pairs of a series, in emission order.
type Labels = Vec<(&'static str, String)>;
/// One series being rendered: its labels and its samples `(instant, value)`.
type Series = (Labels, Vec<(i64, String)>);
/// A series' labels and its value at one instant (`None`: no sample then).
type Point = (Labels, Option<String>);

impl Fixture {
    pub fn new(timeline: Timeline) -> Self {
        Fixture {
            timeline,
            pods: Vec::new(),
        }
    }

    pub fn pod(mut self, pod: Pod) -> Self {
        self.pods.push(pod);
        self
    }

    /// The OpenMetrics text of every family, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_family(&mut out, &POD_INFO, |pod, _| {
            vec![(
                pod_labels(pod, |labels| {
                    labels.extend([
                        ("host_ip", pod.host_ip.clone()),
                        ("pod_ip", pod.pod_ip.clone()),
                        ("node", pod.node.clone()),
                        ("created_by_kind", "ReplicaSet".to_owned()),
                        ("created_by_name", pod.replica_set.clone()),
                        ("priority_class", pod.priority_class.clone()),
                        ("host_network", "false".to_owned()),
                    ])
                }),
                Some("1".to_owned()),
            )]
        });
        self.render_family(&mut out, &POD_CREATED, |pod, _| {
            vec![(pod_labels(pod, |_| {}), Some(pod.created.to_string()))]
        });
        self.render_family(&mut out, &POD_STATUS_READY, |pod, t| {
            let current = *pod.ready.at(t);
            Condition::ALL
                .iter()
                .map(|condition| {
                    (
                        pod_labels(pod, |labels| {
                            labels.push(("condition", condition.label().to_owned()))
                        }),
                        Some(flag(*condition == current)),
                    )
                })
                .collect()
        });
        self.render_family(&mut out, &POD_STATUS_PHASE, |pod, t| {
            let current = *pod.phase.at(t);
            Phase::ALL
                .iter()
                .map(|phase| {
                    (
                        pod_labels(pod, |labels| {
                            labels.push(("phase", phase.label().to_owned()))
                        }),
                        Some(flag(*phase == current)),
                    )
                })
                .collect()
        });
        self.render_container_family(&mut out, &CONTAINER_INFO, |container, _| {
            vec![(
                vec![
                    ("image_spec", container.image_spec.clone()),
                    ("image", container.image.clone()),
                    ("image_id", container.image_id.clone()),
                    ("container_id", container.container_id.clone()),
                ],
                Some("1".to_owned()),
            )]
        });
        self.render_container_family(&mut out, &CONTAINER_RESTARTS, |container, t| {
            vec![(Vec::new(), Some(container.restarts.at(t).to_string()))]
        });
        self.render_container_family(&mut out, &CONTAINER_READY, |container, t| {
            vec![(Vec::new(), Some(flag(*container.ready.at(t))))]
        });
        self.render_container_family(&mut out, &CONTAINER_WAITING_REASON, |container, t| {
            reason_series(&container.waiting, t)
        });
        self.render_container_family(
            &mut out,
            &CONTAINER_LAST_TERMINATED_REASON,
            |container, t| reason_series(&container.last_terminated, t),
        );
        out.push_str("# EOF\n");
        out
    }

    /// Renders one family whose series belong to pods. `series_at(pod, t)` lists, for instant `t`, each
    /// series' labels and its value (`None`: the series has no sample at `t`).
    fn render_family(
        &self,
        out: &mut String,
        family: &Family,
        series_at: impl Fn(&Pod, i64) -> Vec<Point>,
    ) {
        let mut all: Vec<Series> = Vec::new();
        for pod in &self.pods {
            // Series keyed by their labels, kept in first-seen order.
            let mut index: BTreeMap<Labels, usize> = BTreeMap::new();
            for t in self.timeline.instants().filter(|t| pod.exported_at(*t)) {
                for (labels, value) in series_at(pod, t) {
                    let Some(value) = value else { continue };
                    let slot = *index.entry(labels.clone()).or_insert_with(|| {
                        all.push((labels, Vec::new()));
                        all.len() - 1
                    });
                    all[slot].1.push((t, value));
                }
            }
        }
        write_family(out, family, &all);
    }

    /// Renders one family whose series belong to containers: the pod's `namespace, pod, uid` and the
    /// `container` label come first, then the labels `series_at(container, t)` adds.
    fn render_container_family(
        &self,
        out: &mut String,
        family: &Family,
        series_at: impl Fn(&Container, i64) -> Vec<Point>,
    ) {
        self.render_family(out, family, |pod, t| {
            pod.containers
                .iter()
                .flat_map(|container| {
                    series_at(container, t)
                        .into_iter()
                        .map(|(extra, value)| {
                            let labels = pod_labels(pod, |labels| {
                                labels.push(("container", container.name.clone()));
                                labels.extend(extra);
                            });
                            (labels, value)
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        });
    }
}

/// `namespace, pod, uid`, then whatever `extend` appends.
fn pod_labels(pod: &Pod, extend: impl FnOnce(&mut Labels)) -> Labels {
    let mut labels = vec![
        ("namespace", pod.namespace.clone()),
        ("pod", pod.name.clone()),
        ("uid", pod.uid.clone()),
    ];
    extend(&mut labels);
    labels
}

/// A `reason` series with value 1 while the reason is set, none otherwise.
fn reason_series(reason: &Steps<Option<String>>, t: i64) -> Vec<Point> {
    match reason.at(t) {
        Some(reason) => vec![(vec![("reason", reason.clone())], Some("1".to_owned()))],
        None => Vec::new(),
    }
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

/// Writes `# HELP`, `# TYPE` and every sample of one family (nothing when it has no series: promtool
/// accepts metadata without samples, but an empty family says nothing).
fn write_family(out: &mut String, family: &Family, series: &[Series]) {
    if series.is_empty() {
        return;
    }
    let (type_name, suffix) = match family.kind {
        Kind::Gauge => ("gauge", ""),
        Kind::Counter => ("counter", "_total"),
    };
    let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
    let _ = writeln!(out, "# TYPE {} {type_name}", family.name);
    for (labels, samples) in series {
        let rendered = render_labels(labels);
        for (t, value) in samples {
            let _ = writeln!(out, "{}{suffix}{{{rendered}}} {value} {t}", family.name);
        }
    }
}

/// `name="value",…` with values escaped as OpenMetrics requires (`\\`, `\"`, `\n`).
pub fn render_labels(labels: &[(&str, String)]) -> String {
    labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Escapes a label value for OpenMetrics text: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Escapes `# HELP` text (OpenMetrics escapes the same three characters there).
fn escape_help(help: &str) -> String {
    escape_label_value(help)
}

/// The repository part of an image reference: without `@digest` and without a `:tag` after the last `/`.
fn image_repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let name_start = without_digest.rfind('/').map_or(0, |slash| slash + 1);
    match without_digest[name_start..].find(':') {
        Some(colon) => &without_digest[..name_start + colon],
        None => without_digest,
    }
}

/// `len` lowercase hex digits derived deterministically from `seed` (FNV-1a, re-seeded per 16 digits):
/// stable fake uids and digests, not a cryptographic hash.
pub fn hex_digest(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut round: u64 = 0;
    while out.len() < len {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ round;
        for byte in seed.bytes().chain(round.to_le_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let _ = write!(out, "{hash:016x}");
        round += 1;
    }
    out.truncate(len);
    out
}
