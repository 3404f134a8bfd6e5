//! A fake cluster behind the fake Prometheus: what kube-state-metrics and the canary's request metrics have
//! reported about one canary pod (`shop/web-6c8d7f9a1-x7k2p`), answered by query shape. Tests change it
//! between measurements (never on a timer), so a measurement sequence is deterministic.
// Shared by several test binaries, each of which uses only part of it.

use std::sync::{Arc, Mutex};

use super::fake_prometheus::{FakePrometheus, RecordedRequest, Reply, Scenario};

/// The canary pod's name.
pub const POD: &str = "web-6c8d7f9a1-x7k2p";

/// What has been reported about the one canary pod.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    /// Whether kube-state-metrics has scraped the pod yet (no series before).
    pub reported: bool,
    /// Seconds since the pod's last kube-state-metrics sample (beyond `staleness`: the series stopped).
    pub sample_age: f64,
    pub ready: bool,
    /// Seconds since the pod was created.
    pub pod_age: f64,
    /// Requests to the canary in the window (`None`: no request series).
    pub requests: Option<f64>,
    /// 5xx responses among them.
    pub errors: f64,
    /// The fake's request index (0-based, all queries counted) before which there is no request series:
    /// traffic that starts after a number of queries, not after a time.
    pub requests_from: usize,
    /// Answer every query with HTTP 503.
    pub unavailable: bool,
}

impl Cluster {
    /// A pod created 5 s ago that kube-state-metrics has not reported yet.
    pub fn none_yet() -> Cluster {
        Cluster {
            reported: false,
            sample_age: 0.0,
            ready: true,
            pod_age: 5.0,
            requests: None,
            errors: 0.0,
            requests_from: 0,
            unavailable: false,
        }
    }

    /// A healthy pod, reported and Ready for an hour, serving `requests` requests in the window.
    pub fn serving(requests: Option<f64>) -> Cluster {
        Cluster {
            reported: true,
            pod_age: 3600.0,
            requests,
            ..Cluster::none_yet()
        }
    }

    fn answer(&self, request: &RecordedRequest) -> Reply {
        if self.unavailable {
            return Reply::api_error(503, "unavailable", "the TSDB is starting");
        }
        let query = request.param("query").unwrap_or("");
        let at: f64 = request
            .param("time")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0);
        let pod: &[(&str, &str)] = &[("namespace", "shop"), ("pod", POD)];
        let whole: &[(&str, &str)] = &[];
        if !self.reported {
            return Reply::vector(&[]);
        }
        let text = |v: f64| v.to_string();
        if query.contains("kube_pod_container_status_waiting_reason") {
            Reply::vector(&[])
        } else if query.contains("kube_pod_status_ready") {
            Reply::vector(&[(pod, at, if self.ready { "1" } else { "0" })])
        } else if query.contains("kube_pod_created") {
            Reply::vector(&[(pod, at, &text((at - self.pod_age).floor()))])
        } else if query.starts_with("timestamp(kube_pod_info") {
            Reply::vector(&[(pod, at, &text(at - self.sample_age))])
        } else if query.contains("http_requests_total") {
            let requests = self
                .requests
                .filter(|_| request.index >= self.requests_from);
            match requests {
                None => Reply::vector(&[]),
                Some(_) if query.starts_with("max(") => {
                    Reply::vector(&[(whole, at, &text(at - 5.0))])
                }
                Some(_) if query.contains("5..") => {
                    Reply::vector(&[(whole, at, &text(self.errors))])
                }
                Some(requests) => Reply::vector(&[(whole, at, &text(requests))]),
            }
        } else {
            Reply::vector(&[])
        }
    }
}

/// A fake Prometheus answering from `cluster`, which the test may change between measurements.
pub async fn prometheus(cluster: &Arc<Mutex<Cluster>>) -> FakePrometheus {
    let shared = Arc::clone(cluster);
    FakePrometheus::start(Scenario::handler(move |request| {
        shared.lock().expect("cluster").answer(request)
    }))
    .await
}
