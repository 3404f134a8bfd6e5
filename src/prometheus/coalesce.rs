//! Query coalescing: identical instant queries in flight at the same moment are sent to Prometheus once and
//! the one answer (or the one failure) is handed to every caller.
//!
//! "Identical" is the whole request: the URL, the TLS configuration, every header value, the tenant, the
//! resolved credentials (so two callers with different tokens never share an answer), the PromQL and the
//! evaluation instant at Prometheus' resolution (milliseconds; [`round_to_millis`]). The key holds the
//! credentials as [`Secret`](super::Secret)s, which print as `<redacted>`; the key is never printed.
//!
//! Cancel-safety: the request is a [`Shared`] future driven by whichever caller polls it. A caller that drops
//! its future leaves the others waiting on the same request; when the last caller is gone the request is
//! dropped, as an uncoalesced query would be. The in-flight map holds only weak handles and forgets an entry
//! as soon as its request finishes or is abandoned, so a later caller always sends a fresh request.
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::future::{FutureExt, Shared, WeakShared};

use super::{QueryData, QueryError};

/// Past this many entries the map is swept of abandoned ones before a new one is added.
pub const SWEEP_THRESHOLD: usize = 1024;

/// What every caller of one shared request receives.
pub(crate) type Answer = Arc<Result<QueryData, QueryError>>;
type BoxedRequest = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// In-flight requests by key. Cheap to share behind the client's `Arc`.
pub(crate) struct Coalescer<K> {
    inflight: Arc<Mutex<HashMap<K, Entry>>>,
    next_id: AtomicU64,
}

struct Entry {
    id: u64,
    request: WeakShared<BoxedRequest>,
}

impl<K> Default for Coalescer<K> {
    fn default() -> Self {
        Coalescer {
            inflight: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> Coalescer<K> {
    /// The answer to the request `key` names: joins the identical request in flight, or starts `request`
    /// and lets later identical callers join it until it finishes.
    pub(crate) async fn run<F>(&self, key: K, request: F) -> Result<QueryData, QueryError>
    where
        F: Future<Output = Result<QueryData, QueryError>> + Send + 'static,
    {
        let shared = self.join_or_start(key, request);
        unshare(&shared.await)
    }

    /// How many requests are in flight (live entries); for tests.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        // Upgraded handles are dropped after the lock is released (see `join_or_start`).
        let mut live = Vec::new();
        let inflight = lock(&self.inflight);
        live.extend(
            inflight
                .values()
                .filter_map(|entry| entry.request.upgrade()),
        );
        drop(inflight);
        live.len()
    }

    fn join_or_start<F>(&self, key: K, request: F) -> Shared<BoxedRequest>
    where
        F: Future<Output = Result<QueryData, QueryError>> + Send + 'static,
    {
        // The lock is never held while a request is polled or dropped: `Forget` (below) locks the map when a
        // request finishes or is abandoned, and that happens outside this function. Handles upgraded while
        // sweeping may turn out to be the last ones (another caller may drop its own meanwhile), so they are
        // kept in `live`, declared first and therefore dropped after the lock guard.
        let mut live = Vec::new();
        let mut inflight = lock(&self.inflight);
        if let Some(existing) = inflight.get(&key).and_then(|entry| entry.request.upgrade()) {
            return existing;
        }
        if inflight.len() >= SWEEP_THRESHOLD {
            inflight.retain(|_, entry| match entry.request.upgrade() {
                Some(request) => {
                    live.push(request);
                    true
                }
                None => false,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let forget = Forget {
            inflight: Arc::clone(&self.inflight),
            key: Some(key.clone()),
            id,
        };
        let boxed: BoxedRequest = Box::pin(async move {
            // Moved in, so it is dropped when the request finishes or when every caller has gone.
            let _forget = forget;
            Arc::new(request.await)
        });
        let shared = boxed.shared();
        if let Some(weak) = shared.downgrade() {
            inflight.insert(key, Entry { id, request: weak });
        }
        shared
    }
}

/// Removes its own entry (not a newer one under the same key) from the in-flight map when dropped.
struct Forget<K: Hash + Eq> {
    inflight: Arc<Mutex<HashMap<K, Entry>>>,
    key: Option<K>,
    id: u64,
}

impl<K: Hash + Eq> Drop for Forget<K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut inflight = lock(&self.inflight);
            if inflight.get(&key).is_some_and(|entry| entry.id == self.id) {
                inflight.remove(&key);
            }
        }
    }
}

fn lock<K>(map: &Mutex<HashMap<K, Entry>>) -> MutexGuard<'_, HashMap<K, Entry>> {
    // Every update is a single insert or remove, so a panic elsewhere cannot leave the map half-updated.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `at` rounded to the nearest millisecond, as Prometheus rounds the `time` parameter: two instants that
/// round alike are the same evaluation to Prometheus, so they may share one request.
pub(crate) fn round_to_millis(at: SystemTime) -> SystemTime {
    let Ok(since_epoch) = at.duration_since(SystemTime::UNIX_EPOCH) else {
        // Before 1970: left as it is; the request fails on it with a configuration error.
        return at;
    };
    let nanos = since_epoch.as_nanos();
    let millis = (nanos + 500_000) / 1_000_000;
    let Ok(millis) = u64::try_from(millis) else {
        return at;
    };
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

/// One caller's own copy of the shared answer.
fn unshare(answer: &Answer) -> Result<QueryData, QueryError> {
    match answer.as_ref() {
        Ok(data) => Ok(data.clone()),
        Err(error) => Err(clone_error(error)),
    }
}

/// A field-for-field copy: every caller gets the same failure (already scrubbed of credentials).
fn clone_error(error: &QueryError) -> QueryError {
    match error {
        QueryError::Connect { address, reason } => QueryError::Connect {
            address: address.clone(),
            reason: reason.clone(),
        },
        QueryError::Auth(error) => QueryError::Auth(error.clone()),
        QueryError::Dns { address, host } => QueryError::Dns {
            address: address.clone(),
            host: host.clone(),
        },
        QueryError::Timeout { address } => QueryError::Timeout {
            address: address.clone(),
        },
        QueryError::Http {
            address,
            status,
            detail,
        } => QueryError::Http {
            address: address.clone(),
            status: *status,
            detail: detail.clone(),
        },
        QueryError::Api { error_type, error } => QueryError::Api {
            error_type: error_type.clone(),
            error: error.clone(),
        },
        QueryError::NotPrometheus {
            address,
            status,
            content_type,
            size,
        } => QueryError::NotPrometheus {
            address: address.clone(),
            status: *status,
            content_type: content_type.clone(),
            size: size.clone(),
        },
        QueryError::Truncated => QueryError::Truncated,
        QueryError::Malformed { detail } => QueryError::Malformed {
            detail: detail.clone(),
        },
        QueryError::Warnings { warnings } => QueryError::Warnings {
            warnings: warnings.clone(),
        },
        QueryError::TooLarge { limit } => QueryError::TooLarge { limit: *limit },
        QueryError::Config { detail } => QueryError::Config {
            detail: detail.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn empty() -> QueryData {
        QueryData::Vector(Vec::new())
    }

    #[test]
    fn rounds_like_prometheus() {
        let at = |nanos: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
        assert_eq!(round_to_millis(at(1_000_499_999)), at(1_000_000_000));
        assert_eq!(round_to_millis(at(1_000_500_000)), at(1_001_000_000));
        assert_eq!(round_to_millis(at(7_000_000_000)), at(7_000_000_000));
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(round_to_millis(before), before);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_request_and_the_map_empties() {
        let coalescer: Coalescer<&'static str> = Coalescer::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let request = |calls: Arc<AtomicUsize>, mut gate: tokio::sync::watch::Receiver<bool>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = gate.wait_for(|open| *open).await;
            Ok(empty())
        };
        let first = coalescer.run("k", request(calls.clone(), gate.clone()));
        let second = coalescer.run("k", request(calls.clone(), gate.clone()));
        let other = coalescer.run("other", request(calls.clone(), gate.clone()));
        let opener = async {
            tokio::task::yield_now().await;
            release.send(true).expect("gate");
        };
        let (a, b, c, ()) = tokio::join!(first, second, other, opener);
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one request per distinct key"
        );
        assert_eq!(coalescer.in_flight(), 0);
        assert!(
            lock(&coalescer.inflight).is_empty(),
            "finished entries are forgotten"
        );
    }

    #[tokio::test]
    async fn an_abandoned_request_is_forgotten() {
        let coalescer: Coalescer<u8> = Coalescer::default();
        let pending = coalescer.run(1, futures::future::pending());
        let polled = tokio::time::timeout(Duration::from_millis(10), pending).await;
        assert!(polled.is_err(), "the request never answers");
        assert!(lock(&coalescer.inflight).is_empty());
        let fresh = coalescer.run(1, async { Ok(empty()) }).await;
        assert!(fresh.is_ok(), "a later caller sends a fresh request");
    }

    #[test]
    fn every_error_variant_is_copied_exactly() {
        let errors = [
            QueryError::Connect {
                address: "a".into(),
                reason: "r".into(),
            },
            QueryError::Dns {
                address: "a".into(),
                host: "h".into(),
            },
            QueryError::Timeout {
                address: "a".into(),
            },
            QueryError::Http {
                address: "a".into(),
                status: 503,
                detail: "d".into(),
            },
            QueryError::Api {
                error_type: "t".into(),
                error: "e".into(),
            },
            QueryError::NotPrometheus {
                address: "a".into(),
                status: 200,
                content_type: "text/html".into(),
                size: "1 B".into(),
            },
            QueryError::Truncated,
            QueryError::Malformed { detail: "d".into() },
            QueryError::Warnings {
                warnings: vec!["w".into()],
            },
            QueryError::TooLarge { limit: 9 },
            QueryError::Config { detail: "d".into() },
        ];
        for error in &errors {
            let copy = clone_error(error);
            assert_eq!(format!("{copy:?}"), format!("{error:?}"));
        }
    }
}
