//! Support code shared by the integration tests: kube-state-metrics fixtures, a real Prometheus, and a fake
//! Prometheus for fault cases.
pub mod fake_cluster;
pub mod fake_prometheus;
pub mod ksm;
pub mod prometheus;
pub mod scenarios;
