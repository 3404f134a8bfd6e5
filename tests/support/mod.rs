//! Support code shared by the integration tests: kube-state-metrics fixtures and a real Prometheus.
pub mod ksm;
pub mod prometheus;
pub mod scenarios;
