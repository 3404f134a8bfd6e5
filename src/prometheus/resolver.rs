//! Host-name resolution for the HTTP client, marking its failures with a type of our own so that a DNS
//! failure can be told apart from a refused connection without matching on error texts.
use std::io;
use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The system resolver (`getaddrinfo`, on tokio's blocking pool), as reqwest's default.
pub(crate) struct SystemResolver;

/// A host name did not resolve to any address. Found again by downcasting in the error's source chain.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve host {host:?}")]
pub(crate) struct ResolveFailure {
    pub host: String,
    #[source]
    source: Option<io::Error>,
}

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lookup: io::Result<Vec<SocketAddr>> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(Iterator::collect);
            let addrs = match lookup {
                Ok(addrs) => addrs,
                Err(source) => {
                    return Err(Box::new(ResolveFailure {
                        host,
                        source: Some(source),
                    }) as _);
                }
            };
            if addrs.is_empty() {
                return Err(Box::new(ResolveFailure { host, source: None }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
