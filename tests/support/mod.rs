pub mod fake_prometheus;
