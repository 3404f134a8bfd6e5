//! How a request authenticates ([`Auth`]), including the managed stores' schemes — AWS SigV4 for Amazon
//! Managed Service for Prometheus ([`sigv4`]) and OAuth2 client credentials ([`oauth2`]) — and
//! `Providers`, the credential and token caches a [`Client`](super::Client) shares among all its requests,
//! so concurrent measurements share one refresh.
//!
//! Every failure is an [`AuthError`]: it names what failed and why, never a secret, token, signature or
//! key, and maps to the nearest [`FailureClass`]: `config` for what the admin must fix (no credentials in
//! the chain, an unreadable secret file), `timeout` for an identity service that did not answer in time,
//! `query-error` for a refusal or an answer that cannot be used.
//!
//! # Template-side keys
//! Both schemes are also template keys (`engine::config::ManagedAuth`): `sigv4: {region, roleArn}` becomes
//! [`SigV4Settings::new`] with the controller pod's [`AwsEnvironment`], `oauth2: {tokenUrl, clientId,
//! clientSecretFile, scopes}` [`OAuth2Settings::new`]. The trust boundary (`engine::trust`) decides: SigV4 signs
//! with the pod's own AWS identity, so a template's is used only toward the controller's address or an
//! `--allowed-address` prefix, and assumes only a role the admin registered; `clientSecretFile` is a template
//! file key, confined to a `--credentials-dir` like `bearerTokenFile` (the client reads it under the endpoint's
//! [`FileAccess`], which is part of the token cache's key).
pub mod oauth2;
pub mod sigv4;

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{FailureClass, FileAccess, Secret};

pub use oauth2::OAuth2Settings;
pub use sigv4::{AwsEnvironment, SigV4Settings};

/// How long one request to an identity service (STS, a token endpoint, the container credentials
/// endpoint) may take. A measurement's own timeout, usually shorter, bounds it too.
pub const AUTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from an identity service (an STS answer is about 2 KiB, a token a few).
pub const MAX_AUTH_BODY_BYTES: usize = 64 * 1024;
/// How many distinct SigV4 or OAuth2 configurations keep a cache of their own; past this the caches start
/// afresh (a template-side key could otherwise grow them without bound).
pub const MAX_AUTH_CACHES: usize = 64;

/// How requests authenticate. Files are re-read whenever they are needed, because mounted secrets rotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(Secret),
    /// A file holding the bearer token (surrounding whitespace ignored).
    BearerFile(PathBuf),
    Basic {
        username: String,
        password: Secret,
    },
    /// A file holding the basic-auth password (surrounding whitespace ignored).
    BasicFile {
        username: String,
        password_file: PathBuf,
    },
    /// AWS Signature Version 4 (service `aps`) with the credentials of the controller pod's chain. Those
    /// are the pod's own credentials: only ever for the controller's address and `--allowed-address`
    /// prefixes (see `engine::trust`).
    SigV4(SigV4Settings),
    /// An OAuth2 client-credentials token, fetched from the token endpoint and sent as a bearer token.
    OAuth2(OAuth2Settings),
}

impl Auth {
    /// The scheme's name for summaries and messages (never a value).
    pub fn scheme(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) | Auth::BearerFile(_) => "bearer",
            Auth::Basic { .. } | Auth::BasicFile { .. } => "basic",
            Auth::SigV4(_) => "sigv4",
            Auth::OAuth2(_) => "oauth2",
        }
    }
}

/// Why a request could not be authenticated. Messages name the service, the setting and the reason, and
/// never carry a credential: texts from identity services are reduced to their error codes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The settings themselves are invalid (a region, a role ARN, a token URL).
    #[error("{0}")]
    Settings(String),
    /// No link of the AWS credential chain holds credentials.
    #[error("sigv4: no AWS credentials: {0}")]
    NoCredentials(String),
    /// A credential file (web-identity token, client secret, shared credentials) cannot be used.
    #[error("{what} file {path}: {problem}")]
    File {
        what: &'static str,
        path: String,
        problem: String,
    },
    /// The identity service answered, and refused (HTTP status, and its error code when it gave one).
    #[error("{service} at {address} refused {action}: HTTP {status}{}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Refused {
        service: &'static str,
        address: String,
        action: String,
        status: u16,
        code: Option<String>,
    },
    /// The identity service could not be reached.
    #[error("{service} at {address} cannot be reached: {reason}")]
    Unreachable {
        service: &'static str,
        address: String,
        reason: String,
    },
    /// The identity service did not answer within [`AUTH_REQUEST_TIMEOUT`].
    #[error("{service} at {address} did not answer within {}s", AUTH_REQUEST_TIMEOUT.as_secs())]
    Timeout {
        service: &'static str,
        address: String,
    },
    /// The identity service answered 2xx with something that is not the expected document.
    #[error("{service} at {address} answered {problem}")]
    Malformed {
        service: &'static str,
        address: String,
        problem: String,
    },
    /// The request could not be signed.
    #[error("sigv4: the request cannot be signed: {0}")]
    Signing(String),
}

impl AuthError {
    pub fn class(&self) -> FailureClass {
        match self {
            AuthError::Settings(_) | AuthError::NoCredentials(_) | AuthError::File { .. } => {
                FailureClass::Config
            }
            AuthError::Timeout { .. } => FailureClass::Timeout,
            AuthError::Refused { .. }
            | AuthError::Unreachable { .. }
            | AuthError::Malformed { .. }
            | AuthError::Signing(_) => FailureClass::QueryError,
        }
    }
}

/// When a credential issued at `issued` for `lifetime` is replaced: at 80% of its lifetime, so a refresh
/// that fails or is slow still leaves the old one valid for the requests in flight.
pub(crate) fn refresh_at(issued: Instant, lifetime: Duration) -> Instant {
    issued + lifetime.mul_f64(0.8)
}

/// One cached value and the single-flight refresh of it: while one caller refreshes, the others wait for
/// its result instead of asking the identity service themselves — a failed refresh too: the callers that
/// were waiting for it get its error, and only a caller arriving after it asks again. Cancel-safe: a caller
/// dropped mid-refresh releases the lock and the next one refreshes.
pub(crate) struct Refreshing<T> {
    slot: tokio::sync::Mutex<Slot<T>>,
}

struct Slot<T> {
    fresh: Option<Fresh<T>>,
    /// The last refresh's failure and when it ended.
    failure: Option<(Instant, AuthError)>,
}

struct Fresh<T> {
    value: T,
    refresh_at: Instant,
}

impl<T: Clone> Refreshing<T> {
    pub(crate) fn new() -> Refreshing<T> {
        Refreshing {
            slot: tokio::sync::Mutex::new(Slot {
                fresh: None,
                failure: None,
            }),
        }
    }

    /// The cached value while it is fresh, else the value `fetch` returns (with its lifetime).
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<T, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Duration), AuthError>>,
    {
        let asked = Instant::now();
        let mut slot = self.slot.lock().await;
        if let Some(fresh) = slot
            .fresh
            .as_ref()
            .filter(|f| Instant::now() < f.refresh_at)
        {
            return Ok(fresh.value.clone());
        }
        // A refresh that failed while this caller waited for the lock was this caller's refresh too.
        if let Some((ended, error)) = &slot.failure {
            if *ended >= asked {
                return Err(error.clone());
            }
        }
        // The lifetime counts from before the request: the service's clock started no later than that.
        let issued = Instant::now();
        match fetch().await {
            Ok((value, lifetime)) => {
                slot.fresh = Some(Fresh {
                    value: value.clone(),
                    refresh_at: refresh_at(issued, lifetime),
                });
                slot.failure = None;
                Ok(value)
            }
            Err(error) => {
                slot.failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Forgets the cached value (the server refused it), so the next request fetches a new one.
    pub(crate) async fn invalidate(&self) {
        self.slot.lock().await.fresh = None;
    }
}

/// The caches of one [`Client`](super::Client): one credential source per SigV4 configuration and one token
/// source per OAuth2 configuration (and file access), each shared by every request that uses it.
#[derive(Default)]
pub(crate) struct Providers {
    sigv4: Mutex<HashMap<SigV4Settings, Arc<sigv4::CredentialSource>>>,
    oauth2: Mutex<HashMap<(OAuth2Settings, FileAccess), Arc<oauth2::TokenSource>>>,
}

impl Providers {
    pub(crate) fn sigv4(&self, settings: &SigV4Settings) -> Arc<sigv4::CredentialSource> {
        shared(&self.sigv4, settings.clone(), || {
            sigv4::CredentialSource::new(settings.clone())
        })
    }

    pub(crate) fn oauth2(
        &self,
        settings: &OAuth2Settings,
        files: &FileAccess,
    ) -> Arc<oauth2::TokenSource> {
        shared(&self.oauth2, (settings.clone(), files.clone()), || {
            oauth2::TokenSource::new(settings.clone(), files.clone())
        })
    }
}

fn shared<K: Eq + Hash, V>(
    map: &Mutex<HashMap<K, Arc<V>>>,
    key: K,
    make: impl FnOnce() -> V,
) -> Arc<V> {
    // The map is never left half-updated, so a panic elsewhere while holding the lock leaves it usable.
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if !map.contains_key(&key) && map.len() >= MAX_AUTH_CACHES {
        map.clear();
    }
    map.entry(key).or_insert_with(|| Arc::new(make())).clone()
}

/// An identity service's address fit for messages: no userinfo, query or fragment.
pub(crate) fn display(url: &url::Url) -> String {
    super::endpoint::display_url(url)
}

/// A configured address for a message, whether or not it parses: never its userinfo or query.
pub(crate) fn shown_address(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(url) => display(&url),
        _ => "<not a URL>".to_owned(),
    }
}

/// Maps a failure to reach an identity service; the URL is dropped first (it may carry a key).
pub(crate) fn transport_error(
    service: &'static str,
    address: &str,
    error: reqwest::Error,
) -> AuthError {
    let error = error.without_url();
    if error.is_timeout() {
        return AuthError::Timeout {
            service,
            address: address.to_owned(),
        };
    }
    let mut reason = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(cause) = current {
        let text = cause.to_string();
        if !reason.contains(&text) {
            if !reason.is_empty() {
                reason.push_str(": ");
            }
            reason.push_str(&text);
        }
        current = cause.source();
    }
    if reason.is_empty() {
        reason = error.to_string();
    }
    AuthError::Unreachable {
        service,
        address: address.to_owned(),
        reason: super::response::excerpt(&reason),
    }
}

/// Sends a request (`send`) and reads at most [`MAX_AUTH_BODY_BYTES`] of the answer, all within
/// [`AUTH_REQUEST_TIMEOUT`]. A redirect is never followed (the pool's policy): it comes back as its 3xx.
pub(crate) async fn exchange(
    service: &'static str,
    address: &str,
    send: impl Future<Output = Result<reqwest::Response, reqwest::Error>>,
) -> Result<(u16, Vec<u8>), AuthError> {
    let timeout = || AuthError::Timeout {
        service,
        address: address.to_owned(),
    };
    let exchange = async {
        let mut response = send
            .await
            .map_err(|e| transport_error(service, address, e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_AUTH_BODY_BYTES {
                        return Err(AuthError::Malformed {
                            service,
                            address: address.to_owned(),
                            problem: format!(
                                "HTTP {status} with a body larger than {MAX_AUTH_BODY_BYTES} bytes"
                            ),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok((status, body)),
                Err(error) if error.is_timeout() => return Err(timeout()),
                Err(_) => {
                    return Err(AuthError::Malformed {
                        service,
                        address: address.to_owned(),
                        problem: format!("HTTP {status} with a body that ended early"),
                    })
                }
            }
        }
    };
    tokio::time::timeout(AUTH_REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(timeout()))
}

/// An error code from an identity service, shown only when it is a plain identifier (`AccessDenied`,
/// `invalid_client`): anything else is the service's free text and is not shown.
pub(crate) fn plain_code(code: &str) -> Option<String> {
    let code = code.trim();
    (!code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':')))
    .then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn refresh_happens_at_four_fifths_of_the_lifetime() {
        let issued = Instant::now();
        assert_eq!(
            refresh_at(issued, Duration::from_secs(3600)),
            issued + Duration::from_secs(2880)
        );
        assert_eq!(
            refresh_at(issued, Duration::from_secs(10)),
            issued + Duration::from_secs(8)
        );
        assert_eq!(refresh_at(issued, Duration::ZERO), issued);
    }

    #[tokio::test]
    async fn a_fresh_value_is_reused_a_stale_one_refetched_and_failures_not_cached() {
        let fetches = AtomicUsize::new(0);
        let fetch = |lifetime: Duration| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok((n, lifetime)) }
        };
        let long = Refreshing::new();
        assert_eq!(long.get(|| fetch(Duration::from_secs(3600))).await, Ok(0));
        assert_eq!(long.get(|| fetch(Duration::from_secs(3600))).await, Ok(0));
        long.invalidate().await;
        assert_eq!(long.get(|| fetch(Duration::from_secs(3600))).await, Ok(1));
        // A lifetime of zero is due at once: every call fetches.
        let expired = Refreshing::new();
        assert_eq!(expired.get(|| fetch(Duration::ZERO)).await, Ok(2));
        assert_eq!(expired.get(|| fetch(Duration::ZERO)).await, Ok(3));
        let failing: Refreshing<usize> = Refreshing::new();
        let refused = || async { Err(AuthError::Settings("no".into())) };
        assert!(failing.get(refused).await.is_err());
        assert_eq!(failing.get(|| fetch(Duration::from_secs(60))).await, Ok(4));
    }

    // One thread: the waiters run (and queue on the lock) at the `yield_now`, before the refresh fails.
    #[tokio::test]
    async fn callers_waiting_for_a_failed_refresh_share_its_failure() {
        let cache: Arc<Refreshing<usize>> = Arc::new(Refreshing::new());
        let fetches = Arc::new(AtomicUsize::new(0));
        let (started, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let first = {
            let (cache, fetches, started, release) = (
                cache.clone(),
                fetches.clone(),
                started.clone(),
                release.clone(),
            );
            tokio::spawn(async move {
                cache
                    .get(|| async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        started.notify_one();
                        release.notified().await;
                        Err::<(usize, Duration), _>(AuthError::Settings("refused".into()))
                    })
                    .await
            })
        };
        started.notified().await;
        // These callers ask while the first refresh is in flight.
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                tokio::spawn(async move {
                    cache
                        .get(|| async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            Ok((7, Duration::from_secs(60)))
                        })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.notify_one();
        assert!(first.await.expect("first").is_err());
        for caller in waiting {
            assert!(caller.await.expect("caller").is_err());
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "one refresh for all of them"
        );
        // A caller arriving afterwards asks again.
        let later = cache
            .get(|| async { Ok((7, Duration::from_secs(60))) })
            .await;
        assert_eq!(later, Ok(7));
    }

    #[test]
    fn only_plain_codes_are_shown() {
        assert_eq!(plain_code(" AccessDenied "), Some("AccessDenied".into()));
        assert_eq!(plain_code("invalid_client"), Some("invalid_client".into()));
        assert_eq!(plain_code("bad token eyJhbGci"), None);
        assert_eq!(plain_code(""), None);
        assert_eq!(plain_code(&"x".repeat(65)), None);
    }
}
