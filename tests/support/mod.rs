//! Support code shared by the integration tests: kube-state-metrics fixtures, a real Prometheus, and a fake
//! Prometheus for fault cases, and the plugin-mode and gRPC faces with the fault catalogue they share.
pub mod faces;
pub mod fake_cluster;
pub mod fake_prometheus;
pub mod faults;
pub mod ksm;
pub mod prometheus;
pub mod scenarios;
