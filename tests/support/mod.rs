//! Support code shared by the integration tests: kube-state-metrics fixtures, a real Prometheus, a fake
//! Prometheus for fault cases, and fakes of the managed stores' identity services.
pub mod fake_cluster;
pub mod fake_prometheus;
pub mod ksm;
pub mod managed;
pub mod prometheus;
pub mod scenarios;
