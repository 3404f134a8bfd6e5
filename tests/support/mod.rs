//! Support code shared by the integration tests: kube-state-metrics fixtures, a real Prometheus, and a fake
//! Prometheus for fault cases, the plugin-mode and gRPC faces with the fault catalogue they share, fakes of the
//! managed stores' identity services, and the capture of every log line.
pub mod faces;
pub mod fake_cluster;
pub mod fake_prometheus;
pub mod faults;
pub mod ksm;
pub mod logs;
pub mod managed;
pub mod prometheus;
pub mod scenarios;
