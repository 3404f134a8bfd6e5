//! [`Client`]: instant queries against a Prometheus-compatible HTTP API, with authentication, a pooled
//! connection per TLS configuration, a capped streamed body, and errors that never carry a credential.
//!
//! The request is what Prometheus' Go client (`client_golang/api/prometheus/v1`) sends: `POST
//! <prefix>/api/v1/query` with the form `query`, `time`, falling back to `GET` with the same parameters when
//! the server answers 405 or 501.
use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Certificate, Identity, RequestBuilder, Response, StatusCode};

use super::auth::sigv4::{self, AwsCredentials};
use super::auth::Providers;
use super::coalesce::{round_to_millis, Coalescer};
use super::files::{self, FileAccess};
use super::resolver::{ResolveFailure, SystemResolver};
use super::response::{
    decode_query_response, excerpt, prometheus_error_detail, BodyShape, MAX_RESPONSE_BODY_BYTES,
};
use super::{Auth, Endpoint, QueryData, QueryError, Secret, TlsConfig};

/// How many endpoints' in-flight bounds are kept before the idle ones are forgotten.
const MAX_IDLE_ENDPOINTS: usize = 256;

/// How long a TCP (and TLS) connection may take to establish.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The client's own guard on one whole query (both requests of a fallback, and the body): Prometheus' default
/// `query.timeout` is 2 minutes. The engine normally wraps calls in a shorter timeout of its own.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest bearer-token or password file read.
pub const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 * 1024;
/// The largest CA, certificate or key PEM file read.
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;
/// How much of a non-2xx body is read to explain the failure.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// How many TLS configurations keep their own connection pool; past this the cache starts afresh.
pub const MAX_CONNECTION_POOLS: usize = 64;

const QUERY_PATH: &str = "api/v1/query";
/// The Mimir/Cortex tenant header (lowercase, as `HeaderName` compares).
pub(crate) const TENANT_HEADER: &str = "x-scope-orgid";
const USER_AGENT: &str = concat!("rollouts-guardrails/", env!("CARGO_PKG_VERSION"));

/// A Prometheus API client. Cheap to clone (an `Arc` inside); clones share the connection pools.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// One `reqwest::Client` (connection pool, keep-alive) per TLS configuration, built on first use.
    pools: Mutex<HashMap<TlsConfig, reqwest::Client>>,
    request_timeout: Duration,
    /// Identical requests in flight at the same moment are sent once (see [`super::coalesce`]).
    coalescer: Coalescer<RequestKey>,
    /// The SigV4 credentials and OAuth2 tokens, cached and refreshed once for every request that uses them.
    providers: Providers,
    /// At most this many requests in flight to one endpoint (scheme, host, port); more wait for a slot,
    /// inside the measurement's own timeout.
    max_in_flight: usize,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// Default bound on requests in flight to one endpoint (`--max-concurrent-queries`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Everything that makes two requests identical, credentials included (never printed: no `Debug`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    url: url::Url,
    tls: TlsConfig,
    headers: Vec<(String, Secret)>,
    tenant: Option<String>,
    authorization: Authorization,
    promql: String,
    at: SystemTime,
}

/// The `Authorization` a request carries, resolved from [`Auth`] or the address' userinfo (an OAuth2 token
/// is a bearer token; SigV4 signs each request with the credentials).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Authorization {
    None,
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    SigV4 {
        region: String,
        credentials: AwsCredentials,
    },
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new() -> Client {
        Client::with_request_timeout(DEFAULT_REQUEST_TIMEOUT)
    }

    /// A client whose own guard on one whole query is `request_timeout` (see [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(request_timeout: Duration) -> Client {
        Client::with_limits(request_timeout, DEFAULT_MAX_IN_FLIGHT)
    }

    /// A client that sends at most `max_in_flight` requests at once to one endpoint (at least 1).
    pub fn with_max_in_flight(max_in_flight: usize) -> Client {
        Client::with_limits(DEFAULT_REQUEST_TIMEOUT, max_in_flight)
    }

    fn with_limits(request_timeout: Duration, max_in_flight: usize) -> Client {
        Client {
            inner: Arc::new(Inner {
                pools: Mutex::new(HashMap::new()),
                request_timeout,
                coalescer: Coalescer::default(),
                providers: Providers::default(),
                max_in_flight: max_in_flight.max(1),
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The slot semaphore of the endpoint of `url`.
    fn slots(&self, url: &url::Url) -> Arc<tokio::sync::Semaphore> {
        let origin = url.origin().ascii_serialization();
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots.len() >= MAX_IDLE_ENDPOINTS && !slots.contains_key(&origin) {
            // Addresses come from templates too: forget the endpoints nothing is querying right now (their
            // semaphore is referenced by the map alone) rather than grow without bound.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots
            .entry(origin)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.inner.max_in_flight)))
            .clone()
    }

    /// One instant query (`/api/v1/query`, POST form `query` + `time`; on 405/501 falls back to GET, as
    /// client_golang does), evaluated at `at`. Cancel-safe: dropping the future abandons the request and holds
    /// nothing; the engine wraps calls in its own total timeout.
    pub async fn instant_query(
        &self,
        endpoint: &Endpoint,
        promql: &str,
        at: SystemTime,
    ) -> Result<QueryData, QueryError> {
        let started = Instant::now();
        let address = endpoint.display_address();
        let outcome = tokio::time::timeout(
            self.inner.request_timeout,
            self.query(endpoint, promql, at, &address),
        )
        .await
        .unwrap_or_else(|_| {
            Err(QueryError::Timeout {
                address: address.clone(),
            })
        });
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(_) => {
                tracing::debug!(query = promql, address = %address, elapsed_ms, "prometheus query answered")
            }
            Err(error) => {
                tracing::debug!(query = promql, address = %address, elapsed_ms, %error, "prometheus query failed")
            }
        }
        outcome
    }

    async fn query(
        &self,
        endpoint: &Endpoint,
        promql: &str,
        at: SystemTime,
        address: &str,
    ) -> Result<QueryData, QueryError> {
        // Prometheus evaluates at millisecond resolution; rounding here lets identical queries coalesce.
        let at = round_to_millis(at);
        let target = endpoint.request_target(QUERY_PATH)?;
        let authorization = self.authorization(endpoint, target.userinfo).await?;
        // What a server or proxy might echo back: header values, the token, the password, and the encoded
        // basic credentials (from which the password is one base64 decode away).
        let mut secrets: Vec<String> = endpoint
            .headers
            .iter()
            .map(|(_, value)| value.expose().to_owned())
            .collect();
        match &authorization {
            Authorization::None => {}
            Authorization::Bearer(token) => secrets.push(token.expose().to_owned()),
            Authorization::Basic { username, password } => {
                secrets.push(password.expose().to_owned());
                secrets.push(BASE64_STANDARD.encode(format!("{username}:{}", password.expose())));
            }
            Authorization::SigV4 { credentials, .. } => secrets.extend(credentials.secrets()),
        }
        let key = RequestKey {
            url: target.url.clone(),
            tls: endpoint.tls.clone(),
            headers: endpoint.headers.clone(),
            tenant: endpoint.tenant.clone(),
            authorization: authorization.clone(),
            promql: promql.to_owned(),
            at,
        };
        let (client, endpoint, url) = (self.clone(), endpoint.clone(), target.url);
        let (promql, address) = (promql.to_owned(), address.to_owned());
        let slots = self.slots(&url);
        let request = async move {
            // Only the request that goes out takes a slot (coalesced followers wait for its answer). The
            // semaphore is never closed, so acquiring only waits.
            let _slot = slots.acquire_owned().await;
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            client
                .send_query(&endpoint, &url, &authorization, &promql, at, &address)
                .await
                .map_err(|error| error.scrubbed(&secrets))
        };
        self.inner.coalescer.run(key, request).await
    }

    async fn send_query(
        &self,
        endpoint: &Endpoint,
        url: &url::Url,
        authorization: &Authorization,
        promql: &str,
        at: SystemTime,
        address: &str,
    ) -> Result<QueryData, QueryError> {
        let headers = request_headers(endpoint, authorization)?;
        let pool = self.pool(&endpoint.tls)?;
        let time = format_time(at)?;
        let params = [("query", promql), ("time", time.as_str())];
        // The signatures sent, scrubbed from any text the server sends back.
        let mut signatures = Vec::new();

        let post = pool
            .post(url.clone())
            .headers(headers.clone())
            .form(&params);
        let mut response = send(&pool, post, authorization, address, &mut signatures).await?;
        if matches!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            // Drain the refusal so its connection goes back to the pool.
            read_prefix(&mut response, MAX_ERROR_BODY_BYTES).await;
            let mut get_url = url.clone();
            get_url.query_pairs_mut().extend_pairs(params);
            let get = pool.get(get_url).headers(headers);
            response = send(&pool, get, authorization, address, &mut signatures).await?;
        }
        let signatures: Vec<&str> = signatures.iter().map(String::as_str).collect();
        self.answer(endpoint, response, address)
            .await
            .map_err(|error| error.scrubbed(&signatures))
    }

    /// Turns the store's answer into data or the error saying why not. A 401 or 403 to a managed scheme
    /// (SigV4, OAuth2) says that the credentials were refused, and drops the cached ones.
    async fn answer(
        &self,
        endpoint: &Endpoint,
        mut response: Response,
        address: &str,
    ) -> Result<QueryData, QueryError> {
        let status = response.status();
        let shape = BodyShape::of(status.as_u16(), content_type(&response));
        if status.is_success() {
            let body = read_capped(&mut response, MAX_RESPONSE_BODY_BYTES, address).await?;
            return decode_query_response(&body).map_err(|error| match error {
                QueryError::NotPrometheus { .. } => shape.not_prometheus(address, &body, false),
                other => other,
            });
        }
        if status.is_redirection() {
            // Not followed: the request may carry credentials, and the new location is the server's choice.
            // The location itself is not shown either (it is part of a non-Prometheus answer).
            read_prefix(&mut response, MAX_ERROR_BODY_BYTES).await;
            return Err(QueryError::Http {
                address: address.to_owned(),
                status: status.as_u16(),
                detail: "redirects are not followed; configure the final address".to_owned(),
            });
        }
        let body = read_prefix(&mut response, MAX_ERROR_BODY_BYTES + 1).await;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            if let Some(refusal) = self.refused(endpoint, &body).await {
                return Err(QueryError::Http {
                    address: address.to_owned(),
                    status: status.as_u16(),
                    detail: refusal,
                });
            }
        }
        match prometheus_error_detail(&body) {
            Some(detail) => Err(QueryError::Http {
                address: address.to_owned(),
                status: status.as_u16(),
                detail,
            }),
            None => {
                let capped = body.len() > MAX_ERROR_BODY_BYTES;
                Err(shape.not_prometheus(
                    address,
                    &body[..body.len().min(MAX_ERROR_BODY_BYTES)],
                    capped,
                ))
            }
        }
    }

    /// Why a managed scheme's request was refused (401/403), after dropping its cached credentials so the
    /// next measurement fetches new ones; `None` for the other schemes (their refusal is described as any
    /// other answer).
    async fn refused(&self, endpoint: &Endpoint, body: &[u8]) -> Option<String> {
        let store_says = prometheus_error_detail(body)
            .map(|detail| format!(" (the store says: {detail})"))
            .unwrap_or_default();
        match &endpoint.auth {
            Auth::SigV4(settings) => {
                self.inner.providers.sigv4(settings).invalidate().await;
                Some(format!(
                    "the SigV4 signature was refused (region {}, service {}){store_says}: check the region \
                     of the workspace and that the credentials' role may query it (aps:QueryMetrics)",
                    settings.region,
                    sigv4::SERVICE
                ))
            }
            Auth::OAuth2(settings) => {
                self.inner
                    .providers
                    .oauth2(settings, &endpoint.files)
                    .invalidate()
                    .await;
                Some(format!(
                    "the OAuth2 token of client `{}` from {} was refused{store_says}: check its scopes",
                    settings.client_id,
                    super::endpoint::display_url(&settings.token_url)
                ))
            }
            _ => None,
        }
    }

    /// Resolves the request's `Authorization`: reads credential files now (they rotate), takes an OAuth2
    /// token or SigV4 credentials from their cache (refreshing them when due).
    async fn authorization(
        &self,
        endpoint: &Endpoint,
        userinfo: Option<(String, Secret)>,
    ) -> Result<Authorization, QueryError> {
        let files = &endpoint.files;
        match (&endpoint.auth, userinfo) {
            (Auth::None, None) => Ok(Authorization::None),
            (Auth::None, Some((username, password))) => {
                Ok(Authorization::Basic { username, password })
            }
            (_, Some(_)) => Err(QueryError::Config {
                detail: "the address carries userinfo and auth is configured too; use one of them"
                    .to_owned(),
            }),
            (Auth::Bearer(token), None) => Ok(Authorization::Bearer(token.clone())),
            (Auth::BearerFile(path), None) => Ok(Authorization::Bearer(
                read_secret_file(path, "bearer token", files).await?,
            )),
            (Auth::Basic { username, password }, None) => Ok(Authorization::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            (
                Auth::BasicFile {
                    username,
                    password_file,
                },
                None,
            ) => Ok(Authorization::Basic {
                username: username.clone(),
                password: read_secret_file(password_file, "basic auth password", files).await?,
            }),
            (Auth::SigV4(settings), None) => {
                // STS and the container endpoint are AWS' (public roots), never the store's TLS settings.
                let http = self.pool(&TlsConfig::default())?;
                let credentials = self
                    .inner
                    .providers
                    .sigv4(settings)
                    .credentials(&http)
                    .await?;
                Ok(Authorization::SigV4 {
                    region: settings.region.clone(),
                    credentials,
                })
            }
            (Auth::OAuth2(settings), None) => {
                // The token endpoint is reached with the store's TLS settings (the admin's CA).
                let http = self.pool(&endpoint.tls)?;
                let source = self.inner.providers.oauth2(settings, files);
                Ok(Authorization::Bearer(source.token(&http).await?))
            }
        }
    }

    /// The connection pool for `tls`, built (reading its PEM files) on first use.
    fn pool(&self, tls: &TlsConfig) -> Result<reqwest::Client, QueryError> {
        if let Some(pool) = self.pools().get(tls) {
            return Ok(pool.clone());
        }
        let built = build_pool(tls)?;
        let mut pools = self.pools();
        if pools.len() >= MAX_CONNECTION_POOLS {
            pools.clear();
        }
        Ok(pools.entry(tls.clone()).or_insert(built).clone())
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<TlsConfig, reqwest::Client>> {
        // The map is never left half-updated, so a panic elsewhere while holding the lock leaves it usable.
        self.inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads a credential file under `access`, trimmed of surrounding whitespace. Errors name the file, never its
/// content.
async fn read_secret_file(
    path: &Path,
    what: &str,
    access: &FileAccess,
) -> Result<Secret, QueryError> {
    files::read_secret(path, access, MAX_CREDENTIAL_FILE_BYTES)
        .await
        .map_err(|problem| QueryError::Config {
            detail: format!("{what} file {}: {problem}", path.display()),
        })
}

/// The `Content-Type` of an answer, if it is readable text.
fn content_type(response: &Response) -> Option<String> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Custom headers (marked sensitive, so no `Debug` of the request shows them) and the tenant header.
fn request_headers(
    endpoint: &Endpoint,
    authorization: &Authorization,
) -> Result<HeaderMap, QueryError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &endpoint.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| QueryError::Config {
            detail: format!("header name {:?} is invalid", excerpt(name)),
        })?;
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| QueryError::Config {
            detail: format!("the value of header {header} is invalid"),
        })?;
        value.set_sensitive(true);
        if header == AUTHORIZATION && !matches!(authorization, Authorization::None) {
            return Err(QueryError::Config {
                detail: "an Authorization header and auth are both configured; use one of them"
                    .to_owned(),
            });
        }
        if header == TENANT_HEADER && endpoint.tenant.is_some() {
            return Err(QueryError::Config {
                detail: "an X-Scope-OrgID header and a tenant are both configured; use one of them"
                    .to_owned(),
            });
        }
        headers.append(header, value);
    }
    if let Some(tenant) = &endpoint.tenant {
        let value = HeaderValue::from_str(tenant).map_err(|_| QueryError::Config {
            detail: format!("tenant {:?} is not a valid header value", excerpt(tenant)),
        })?;
        headers.insert(HeaderName::from_static(TENANT_HEADER), value);
    }
    Ok(headers)
}

/// Sends one request with its authorization: a bearer or basic header (reqwest marks both sensitive), or
/// a SigV4 signature over the final request (its signature is pushed to `signatures`).
async fn send(
    pool: &reqwest::Client,
    request: RequestBuilder,
    authorization: &Authorization,
    address: &str,
    signatures: &mut Vec<String>,
) -> Result<Response, QueryError> {
    let request = match authorization {
        Authorization::None | Authorization::SigV4 { .. } => request,
        Authorization::Bearer(token) => request.bearer_auth(token.expose()),
        Authorization::Basic { username, password } => {
            request.basic_auth(username, Some(password.expose()))
        }
    };
    let mut request = request.build().map_err(|e| send_error(e, address))?;
    if let Authorization::SigV4 {
        region,
        credentials,
    } = authorization
    {
        let signature = sigv4::sign(
            &mut request,
            region,
            sigv4::SERVICE,
            credentials,
            SystemTime::now(),
        )?;
        signatures.push(signature);
    }
    pool.execute(request)
        .await
        .map_err(|e| send_error(e, address))
}

/// `at` as Prometheus' `time` parameter: decimal unix seconds, exact to the nanosecond (client_golang sends
/// `strconv.FormatFloat(seconds, 'f', -1, 64)`; Prometheus keeps milliseconds).
pub(crate) fn format_time(at: SystemTime) -> Result<String, QueryError> {
    let since_epoch =
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| QueryError::Config {
                detail: "the evaluation time is before 1970".to_owned(),
            })?;
    let fraction = format!("{:09}", since_epoch.subsec_nanos());
    let fraction = fraction.trim_end_matches('0');
    Ok(if fraction.is_empty() {
        since_epoch.as_secs().to_string()
    } else {
        format!("{}.{fraction}", since_epoch.as_secs())
    })
}

mod http;

use http::{build_pool, read_capped, read_prefix, send_error};

#[cfg(test)]
mod tests;
