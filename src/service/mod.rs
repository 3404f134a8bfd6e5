//! The Argo Rollouts metric-provider contract, mapped onto the engine.
pub mod grpc;
