//! The Prometheus HTTP API client: instant queries, authentication, and a strict response model.
//!
//! # Layout
//! In the order a query flows:
//! - [`endpoint`]: where and how to reach a Prometheus ([`Endpoint`], [`TlsConfig`]) and its safe-to-print
//!   address.
//! - [`auth`]: how a request authenticates ([`Auth`]): bearer, basic, AWS SigV4 (Amazon Managed Service for
//!   Prometheus) and OAuth2 client credentials, with the credential and token caches of the managed schemes.
//! - [`files`]: [`FileAccess`], which credential files may be read, and an open that cannot be raced.
//! - [`secret`]: [`Secret`], a credential that prints as `<redacted>`.
//! - [`client`]: [`Client`], one pooled HTTP client per TLS configuration; sends the query, reads the body
//!   under a cap.
//! - [`coalesce`]: identical queries in flight at the same moment share one request and its answer.
//! - [`resolver`]: host-name resolution whose failures are recognisable as DNS failures.
//! - [`response`]: the answer as pure functions over bytes: [`QueryData`] and its fail-closed decoder.
//! - [`error`]: [`QueryError`] and its [`FailureClass`]; no variant ever carries a credential.
pub mod auth;
pub mod client;
mod coalesce;
pub mod endpoint;
pub mod error;
pub mod files;
mod resolver;
pub mod response;
pub mod secret;

pub use auth::{Auth, AuthError};
pub use client::Client;
pub use endpoint::{Endpoint, TlsConfig};
pub use error::{FailureClass, QueryError};
pub use files::FileAccess;
pub use response::{QueryData, Sample, Series};
pub use secret::Secret;
