//! Every face at once: the fault matrix and credential hygiene through plugin mode and gRPC alike.
//!
//! One test target per face (`cargo test --test faces`); the support code is shared by every face.
use guardrails_test_support as support;

mod fault_matrix;
mod secrets;
