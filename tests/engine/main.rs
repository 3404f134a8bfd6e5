//! The engine face: the guardrails through `Engine::measure`, against a real Prometheus or a fake one.
//!
//! One test target per face (`cargo test --test engine`); the support code is shared by every face.
use guardrails_test_support as support;

mod coalesce;
mod fail_closed;
mod fixtures_current;
mod guardrail_keys_doc;
mod guardrails;
mod guardrails_more;
mod ha_pair;
mod injection;
mod managed_auth;
mod multi_cluster;
mod multi_source;
mod parser_parity;
mod prometheus_client;
mod regression_ranked;
mod settle;
mod store_differences;
mod trust_boundary;
mod unproven_phase;
