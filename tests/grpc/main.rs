//! The gRPC face: `rollouts-guardrails serve` and its MetricProvider service.
//!
//! One test target per face (`cargo test --test grpc`); the support code is shared by every face.
use guardrails_test_support as support;

mod grpc_service;
