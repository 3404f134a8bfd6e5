//! The plugin face: go-plugin net/rpc over yamux and gob, as the Argo Rollouts controller speaks it.
//!
//! One test target per face (`cargo test --test plugin`); the support code is shared by every face.
use guardrails_test_support as support;

mod gob_fixtures;
mod gob_golden;
mod managed_auth;
mod plugin_mode_guardrails;
mod plugin_transport;
mod wire_docs;
