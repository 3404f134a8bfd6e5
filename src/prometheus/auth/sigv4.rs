//! AWS Signature Version 4 for Amazon Managed Service for Prometheus (service `aps`): [`SigV4Settings`]
//! (region, an optional role to assume), the credential chain a controller pod has, cached until shortly
//! before the credentials expire (`CredentialSource`), and `sign`, which signs the final request with
//! the `aws-sigv4` crate.
//!
//! The chain, in the order of the AWS SDKs' default chain (the first link that holds credentials wins):
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared files: `[AWS_PROFILE]` (default `default`) of `AWS_SHARED_CREDENTIALS_FILE`
//!    (`~/.aws/credentials`), then of `AWS_CONFIG_FILE` (`~/.aws/config`), static keys only;
//! 3. a web-identity token (IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+
//!    `AWS_ROLE_SESSION_NAME`), exchanged at STS with `AssumeRoleWithWebIdentity`; the token file is re-read
//!    at every exchange (the kubelet rotates it);
//! 4. the container credentials endpoint (EKS Pod Identity, ECS): `AWS_CONTAINER_CREDENTIALS_FULL_URI` (or
//!    `_RELATIVE_URI`) with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (or `_TOKEN`).
//!
//! Then, with a `roleArn`, STS `AssumeRole` (signed with those credentials) gives the credentials used.
//! STS is `https://sts.<region>.amazonaws.com/` unless `AWS_ENDPOINT_URL_STS` (or `AWS_ENDPOINT_URL`) says
//! otherwise. The instance metadata service (IMDS) is not a link: a controller pod should not rely on the
//! node's role.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign as sign_request, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use url::Url;

use super::{display, exchange, plain_code, AuthError, Refreshing};
use crate::prometheus::files::{self, FileAccess};
use crate::prometheus::Secret;

/// The signing name of Amazon Managed Service for Prometheus.
pub const SERVICE: &str = "aps";
/// The STS API version of the `Action`s sent.
const STS_VERSION: &str = "2011-06-15";
/// How long credentials without an expiry (environment, shared files) are used before the chain is read
/// again (the shared files may be rewritten).
pub const STATIC_CREDENTIALS_LIFETIME: Duration = Duration::from_secs(300);
/// The largest web-identity or container authorization token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// The largest shared config or credentials file read.
const MAX_SHARED_FILE_BYTES: u64 = 1024 * 1024;
/// The ECS container credentials host, which `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is relative to.
const ECS_CREDENTIALS_HOST: &str = "http://169.254.170.2";

/// The environment variables the chain reads, captured in an [`AwsEnvironment`].
const VARIABLES: [&str; 16] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "HOME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// What a `sigv4` setting says: the region of the workspace (the credential scope and the STS region) and
/// an optional role to assume, and the environment whose chain provides the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SigV4Settings {
    pub region: String,
    pub role_arn: Option<String>,
    pub environment: Arc<AwsEnvironment>,
}

impl SigV4Settings {
    /// Validated settings: `region` like `us-east-1` (it becomes part of the STS host name), `role_arn` an
    /// ARN without spaces or control characters.
    pub fn new(
        region: &str,
        role_arn: Option<&str>,
        environment: AwsEnvironment,
    ) -> Result<SigV4Settings, AuthError> {
        let region = region.trim();
        let plausible_region = !region.is_empty()
            && region.len() <= 32
            && region.starts_with(|c: char| c.is_ascii_lowercase())
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !plausible_region {
            return Err(AuthError::Settings(format!(
                "sigv4 region `{}` is not an AWS region (like us-east-1)",
                crate::prometheus::response::excerpt(region)
            )));
        }
        let role_arn = role_arn.map(str::trim).filter(|r| !r.is_empty());
        if let Some(role) = role_arn {
            let plausible_role = role.starts_with("arn:")
                && role.len() <= 2048
                && !role.chars().any(|c| c.is_whitespace() || c.is_control());
            if !plausible_role {
                return Err(AuthError::Settings(format!(
                    "sigv4 role `{}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                    crate::prometheus::response::excerpt(role)
                )));
            }
        }
        Ok(SigV4Settings {
            region: region.to_owned(),
            role_arn: role_arn.map(str::to_owned),
            environment: Arc::new(environment),
        })
    }
}

/// The environment variables of the credential chain, captured once (the process' own, or a test's).
/// `Debug` names the variables that are set, never their values.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AwsEnvironment {
    vars: BTreeMap<&'static str, String>,
}

impl AwsEnvironment {
    /// The process' environment.
    pub fn from_process() -> AwsEnvironment {
        AwsEnvironment::from_lookup(|name| std::env::var(name).ok())
    }

    /// The variables `lookup` gives (empty values count as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> AwsEnvironment {
        AwsEnvironment {
            vars: VARIABLES
                .iter()
                .filter_map(|name| {
                    lookup(name)
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| (*name, v))
                })
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// A set of AWS credentials. Never printed (no `Debug`): the secret key and the session token sign requests.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl AwsCredentials {
    /// The values a server might echo and a message must never carry.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.secret_access_key.expose().to_owned()];
        secrets.extend(self.session_token.iter().map(|t| t.expose().to_owned()));
        secrets
    }
}

/// The credentials of one [`SigV4Settings`], resolved through the chain and cached until 80% of their
/// lifetime; concurrent requests share one resolution.
pub(crate) struct CredentialSource {
    settings: SigV4Settings,
    cache: Refreshing<AwsCredentials>,
}

impl CredentialSource {
    pub(crate) fn new(settings: SigV4Settings) -> CredentialSource {
        CredentialSource {
            settings,
            cache: Refreshing::new(),
        }
    }

    /// Credentials for signing, from the cache or the chain. `http` sends the STS and container requests.
    pub(crate) async fn credentials(
        &self,
        http: &reqwest::Client,
    ) -> Result<AwsCredentials, AuthError> {
        self.cache.get(|| resolve(&self.settings, http)).await
    }

    /// Forgets the cached credentials (the store refused them).
    pub(crate) async fn invalidate(&self) {
        self.cache.invalidate().await;
    }
}

/// Signs `request` in place for `service` in `region`: adds `X-Amz-Date`, `X-Amz-Security-Token` (temporary
/// credentials) and `Authorization`, each marked sensitive. Signed: the method, the URL (path and query),
/// `host`, `content-type`, the tenant header and the body's SHA-256; custom headers are not signed (their
/// values are secrets the signer would log at trace level). Returns the signature, for scrubbing.
pub(crate) fn sign(
    request: &mut reqwest::Request,
    region: &str,
    service: &str,
    credentials: &AwsCredentials,
    at: SystemTime,
) -> Result<String, AuthError> {
    let signing_error = |e: &dyn fmt::Display| AuthError::Signing(e.to_string());
    let (instructions, signature) = {
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter(|(name, _)| {
                *name == CONTENT_TYPE || name.as_str() == crate::prometheus::client::TENANT_HEADER
            })
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
            .collect();
        let body = request.body().and_then(|b| b.as_bytes()).unwrap_or(&[]);
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| signing_error(&e))?;
        let identity = Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose(),
            credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            None,
            "rollouts-guardrails",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_error(&e))?
            .into();
        // aws-sigv4 logs the request and the canonical request at trace level: not through our log.
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            sign_request(signable, &params)
        })
        .map_err(|e| signing_error(&e))?
        .into_parts()
    };
    let (headers, _) = instructions.into_parts();
    for header in headers {
        let mut value = HeaderValue::from_str(header.value()).map_err(|e| signing_error(&e))?;
        value.set_sensitive(true);
        request.headers_mut().insert(header.name(), value);
    }
    Ok(signature)
}

/// The chain, then the optional role.
async fn resolve(
    settings: &SigV4Settings,
    http: &reqwest::Client,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let (base, lifetime) = chain(settings, http).await?;
    match &settings.role_arn {
        None => Ok((base, lifetime)),
        Some(role) => assume_role(settings, http, &base, role).await,
    }
}

async fn chain(
    settings: &SigV4Settings,
    http: &reqwest::Client,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let env = &settings.environment;
    match (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => {
            return Ok((
                AwsCredentials {
                    access_key_id: id.trim().to_owned(),
                    secret_access_key: Secret::new(secret.trim()),
                    session_token: env.get("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
                },
                STATIC_CREDENTIALS_LIFETIME,
            ))
        }
        (Some(_), None) => {
            return Err(AuthError::NoCredentials(
                "AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(AuthError::NoCredentials(
                "AWS_SECRET_ACCESS_KEY is set without AWS_ACCESS_KEY_ID".into(),
            ))
        }
        (None, None) => {}
    }
    if let Some(credentials) = shared_files(env)? {
        return Ok((credentials, STATIC_CREDENTIALS_LIFETIME));
    }
    match (
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.get("AWS_ROLE_ARN"),
    ) {
        (Some(file), Some(role)) => {
            return web_identity(settings, http, Path::new(file), role).await
        }
        (Some(_), None) => {
            return Err(AuthError::NoCredentials(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN".into(),
            ))
        }
        _ => {}
    }
    if let Some(uri) = container_uri(env)? {
        return container(env, http, uri).await;
    }
    Err(AuthError::NoCredentials(
        "none of AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared credentials and config files, \
         AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN (IRSA) or AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod \
         Identity) is set in the environment"
            .into(),
    ))
}

/// Static keys of the profile in the shared credentials file, else in the shared config file.
fn shared_files(env: &AwsEnvironment) -> Result<Option<AwsCredentials>, AuthError> {
    let profile = env.get("AWS_PROFILE").unwrap_or("default").trim();
    let home = env.get("HOME").map(PathBuf::from);
    let credentials_file = env
        .get("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config_file = env
        .get("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    for (file, section) in [
        (credentials_file, profile.to_owned()),
        (config_file, config_section),
    ] {
        let Some(file) = file.filter(|f| f.exists()) else {
            continue;
        };
        let bytes = files::read_bounded(&file, &FileAccess::Unrestricted, MAX_SHARED_FILE_BYTES)
            .map_err(|problem| AuthError::File {
                what: "shared AWS",
                path: file.display().to_string(),
                problem,
            })?;
        let text = String::from_utf8_lossy(&bytes);
        let keys = ini_section(&text, &section);
        match (
            keys.get("aws_access_key_id"),
            keys.get("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => {
                return Ok(Some(AwsCredentials {
                    access_key_id: id.clone(),
                    secret_access_key: Secret::new(secret.as_str()),
                    session_token: keys
                        .get("aws_session_token")
                        .map(|t| Secret::new(t.as_str())),
                }))
            }
            (None, None) => {}
            _ => {
                return Err(AuthError::File {
                    what: "shared AWS",
                    path: file.display().to_string(),
                    problem: format!(
                        "[{section}] has only one of aws_access_key_id and aws_secret_access_key"
                    ),
                })
            }
        }
    }
    Ok(None)
}

/// The `key = value` pairs of `[section]` in an INI text (keys lowercase, `#`/`;` comment lines skipped).
fn ini_section(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut current: Option<&str> = None;
    let mut keys = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
            continue;
        }
        if current != Some(section) {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            keys.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    keys
}

/// STS: the environment's endpoint override, else the region's endpoint.
fn sts_endpoint(settings: &SigV4Settings) -> Result<Url, AuthError> {
    let env = &settings.environment;
    let raw = env
        .get("AWS_ENDPOINT_URL_STS")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let suffix = if settings.region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://sts.{}.{suffix}/", settings.region)
        });
    Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            AuthError::Settings(format!(
                "sigv4: the STS endpoint `{}` (AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL) is not an http(s) URL",
                super::shown_address(&raw)
            ))
        })
}

fn session_name(env: &AwsEnvironment) -> String {
    env.get("AWS_ROLE_SESSION_NAME")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            format!("rollouts-guardrails-{now}")
        })
}

async fn web_identity(
    settings: &SigV4Settings,
    http: &reqwest::Client,
    token_file: &Path,
    role: &str,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let token = files::read_secret(token_file, &FileAccess::Unrestricted, MAX_TOKEN_FILE_BYTES)
        .await
        .map_err(|problem| AuthError::File {
            what: "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
            path: token_file.display().to_string(),
            problem,
        })?;
    let endpoint = sts_endpoint(settings)?;
    let address = display(&endpoint);
    let session = session_name(&settings.environment);
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", STS_VERSION),
        ("RoleArn", role),
        ("RoleSessionName", session.as_str()),
        ("WebIdentityToken", token.expose()),
    ];
    let request = http.post(endpoint).header(ACCEPT, "text/xml").form(&form);
    let (status, body) = exchange("sts", &address, request.send()).await?;
    sts_credentials(
        status,
        &body,
        &address,
        format!("AssumeRoleWithWebIdentity of role {role}"),
    )
}

async fn assume_role(
    settings: &SigV4Settings,
    http: &reqwest::Client,
    base: &AwsCredentials,
    role: &str,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let endpoint = sts_endpoint(settings)?;
    let address = display(&endpoint);
    let session = session_name(&settings.environment);
    let form = [
        ("Action", "AssumeRole"),
        ("Version", STS_VERSION),
        ("RoleArn", role),
        ("RoleSessionName", session.as_str()),
    ];
    let mut request = http
        .post(endpoint)
        .header(ACCEPT, "text/xml")
        .form(&form)
        .build()
        .map_err(|e| AuthError::Signing(e.without_url().to_string()))?;
    sign(
        &mut request,
        &settings.region,
        "sts",
        base,
        SystemTime::now(),
    )?;
    let (status, body) = exchange("sts", &address, http.execute(request)).await?;
    sts_credentials(
        status,
        &body,
        &address,
        format!("AssumeRole of role {role}"),
    )
}

/// The `Credentials` of an STS answer, or why not: a refusal by status and STS' error code only.
fn sts_credentials(
    status: u16,
    body: &[u8],
    address: &str,
    action: String,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let text = std::str::from_utf8(body).unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(AuthError::Refused {
            service: "sts",
            address: address.to_owned(),
            action,
            status,
            code: xml_text(text, "Code").and_then(|c| plain_code(&c)),
        });
    }
    let malformed = |what: &str| AuthError::Malformed {
        service: "sts",
        address: address.to_owned(),
        problem: format!("HTTP {status} without {what} (not an STS answer?)"),
    };
    let field = |name: &str| xml_text(text, name).filter(|v| !v.is_empty());
    let credentials = AwsCredentials {
        access_key_id: field("AccessKeyId").ok_or_else(|| malformed("Credentials.AccessKeyId"))?,
        secret_access_key: Secret::new(
            field("SecretAccessKey").ok_or_else(|| malformed("Credentials.SecretAccessKey"))?,
        ),
        session_token: Some(Secret::new(
            field("SessionToken").ok_or_else(|| malformed("Credentials.SessionToken"))?,
        )),
    };
    let expiration = field("Expiration")
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
        .ok_or_else(|| malformed("a valid Credentials.Expiration"))?;
    Ok((credentials, lifetime_until(expiration.into())))
}

/// What is left of a credential's life until `expiration` (zero when already past: used once, then
/// refreshed).
fn lifetime_until(expiration: SystemTime) -> Duration {
    expiration
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// The text of the first `<element>…</element>` of a machine-written XML document (STS answers: flat,
/// unprefixed element names, no attributes on the elements read), with the five predefined entities
/// unescaped.
fn xml_text(document: &str, element: &str) -> Option<String> {
    let open = format!("<{element}>");
    let close = format!("</{element}>");
    let start = document.find(&open)? + open.len();
    let end = start + document[start..].find(&close)?;
    Some(
        document[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The container credentials endpoint, when configured: a full URI must be https or a loopback / EKS Pod
/// Identity agent address (as the SDKs require), a relative one is under the ECS host.
fn container_uri(env: &AwsEnvironment) -> Result<Option<Url>, AuthError> {
    let invalid = |raw: &str| {
        AuthError::Settings(format!(
            "sigv4: AWS_CONTAINER_CREDENTIALS_FULL_URI `{}` must be https, or http to a loopback or EKS Pod \
             Identity agent address",
            super::shown_address(raw)
        ))
    };
    if let Some(raw) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let url = Url::parse(raw.trim()).map_err(|_| invalid(raw))?;
        let allowed = match (url.scheme(), url.host()) {
            ("https", Some(_)) => true,
            ("http", Some(url::Host::Ipv4(ip))) => {
                ip.is_loopback() || ip == std::net::Ipv4Addr::new(169, 254, 170, 23)
            }
            ("http", Some(url::Host::Ipv6(ip))) => {
                ip.is_loopback() || ip == "fd00:ec2::23".parse::<std::net::Ipv6Addr>().unwrap_or(ip)
            }
            ("http", Some(url::Host::Domain(name))) => name == "localhost",
            _ => false,
        };
        return if allowed {
            Ok(Some(url))
        } else {
            Err(invalid(raw))
        };
    }
    match env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        Some(relative) => Url::parse(&format!("{ECS_CREDENTIALS_HOST}{}", relative.trim()))
            .map(Some)
            .map_err(|_| invalid(relative)),
        None => Ok(None),
    }
}

async fn container(
    env: &AwsEnvironment,
    http: &reqwest::Client,
    uri: Url,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let address = display(&uri);
    let token = match (
        env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => Some(
            files::read_secret(
                Path::new(file),
                &FileAccess::Unrestricted,
                MAX_TOKEN_FILE_BYTES,
            )
            .await
            .map_err(|problem| AuthError::File {
                what: "container authorization token (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)",
                path: file.to_owned(),
                problem,
            })?,
        ),
        (None, Some(token)) => Some(Secret::new(token.trim())),
        (None, None) => None,
    };
    let mut request = http.get(uri).header(ACCEPT, "application/json");
    if let Some(token) = &token {
        let mut value = HeaderValue::from_str(token.expose()).map_err(|_| AuthError::File {
            what: "container authorization token",
            path: "AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)".into(),
            problem: "not a valid header value".into(),
        })?;
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    let (status, body) =
        exchange("container credentials endpoint", &address, request.send()).await?;
    if !(200..300).contains(&status) {
        return Err(AuthError::Refused {
            service: "container credentials endpoint",
            address,
            action: "the credentials request".into(),
            status,
            code: serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("Code").and_then(|c| c.as_str()).and_then(plain_code)),
        });
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        access_key_id: String,
        secret_access_key: String,
        token: Option<String>,
        expiration: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|_| AuthError::Malformed {
        service: "container credentials endpoint",
        address: address.clone(),
        problem: format!("HTTP {status} without AccessKeyId and SecretAccessKey"),
    })?;
    let lifetime = match &answer.expiration {
        None => STATIC_CREDENTIALS_LIFETIME,
        Some(expiration) => chrono::DateTime::parse_from_rfc3339(expiration)
            .map(|e| lifetime_until(e.into()))
            .map_err(|_| AuthError::Malformed {
                service: "container credentials endpoint",
                address: address.clone(),
                problem: format!("HTTP {status} with an Expiration that is not RFC 3339"),
            })?,
    };
    Ok((
        AwsCredentials {
            access_key_id: answer.access_key_id,
            secret_access_key: Secret::new(answer.secret_access_key),
            session_token: answer.token.map(Secret::new),
        },
        lifetime,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> AwsEnvironment {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsEnvironment::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn settings_refuse_what_cannot_be_a_region_or_a_role() {
        for region in ["", "US-EAST-1", "us-east-1.evil.com", "eu west", "1abc"] {
            assert!(
                SigV4Settings::new(region, None, AwsEnvironment::default()).is_err(),
                "{region}"
            );
        }
        for role in [
            "role/x",
            "arn:aws:iam::1:role/a b",
            "arn:aws:iam::1:role/\u{7}x",
        ] {
            assert!(
                SigV4Settings::new("us-east-1", Some(role), AwsEnvironment::default()).is_err(),
                "{role}"
            );
        }
        let ok = SigV4Settings::new(
            " eu-west-1 ",
            Some("arn:aws:iam::123456789012:role/reader"),
            AwsEnvironment::default(),
        )
        .expect("valid");
        assert_eq!(ok.region, "eu-west-1");
    }

    #[test]
    fn the_environment_prints_names_only() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDVALUE"),
            ("AWS_SECRET_ACCESS_KEY", "SECRETVALUE"),
            ("UNRELATED", "x"),
        ]);
        let debug = format!("{e:?}");
        assert!(debug.contains("AWS_SECRET_ACCESS_KEY"), "{debug}");
        assert!(
            !debug.contains("SECRETVALUE") && !debug.contains("AKIDVALUE"),
            "{debug}"
        );
        assert!(!debug.contains("UNRELATED"), "{debug}");
    }

    #[test]
    fn profiles_are_read_from_the_credentials_then_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = sd\n\n[other]\nregion = x\n",
        )
        .expect("write");
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[profile other]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=so\naws_session_token=to\n",
        )
        .expect("write");
        let paths = |profile: &str| {
            env(&[
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    credentials.to_str().expect("utf-8"),
                ),
                ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
                ("AWS_PROFILE", profile),
            ])
        };
        let default = shared_files(&paths("default"))
            .expect("read")
            .expect("found");
        assert_eq!(default.access_key_id, "AKIDDEFAULT");
        assert!(default.session_token.is_none());
        let other = shared_files(&paths("other")).expect("read").expect("found");
        assert_eq!(other.access_key_id, "AKIDOTHER");
        assert_eq!(other.session_token.as_ref().map(Secret::expose), Some("to"));
        assert!(shared_files(&paths("missing")).expect("read").is_none());
        std::fs::write(&credentials, "[default]\naws_access_key_id = AKIDHALF\n").expect("write");
        let half = shared_files(&paths("default"))
            .err()
            .expect("half a key pair");
        assert!(half.to_string().contains("only one of"), "{half}");
        assert!(!half.to_string().contains("AKIDHALF"), "{half}");
    }

    #[test]
    fn sts_answers_give_credentials_and_refusals_only_their_code() {
        let answer = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalr/K7MDENG&amp;x</SecretAccessKey>
      <SessionToken>IQoJb3JpZ2luX2Vj</SessionToken>
      <Expiration>2999-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let (credentials, lifetime) =
            sts_credentials(200, answer.as_bytes(), "http://sts/", "x".into()).expect("answer");
        assert_eq!(credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key.expose(), "wJalr/K7MDENG&x");
        assert!(lifetime > Duration::from_secs(3600));
        let refusal = r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
<Message>token eyJSECRET is bad</Message></Error></ErrorResponse>"#;
        let error = sts_credentials(
            400,
            refusal.as_bytes(),
            "http://sts/",
            "AssumeRoleWithWebIdentity".into(),
        )
        .err()
        .expect("refused");
        let text = error.to_string();
        assert!(text.contains("HTTP 400 InvalidIdentityToken"), "{text}");
        assert!(!text.contains("eyJSECRET"), "{text}");
        assert!(sts_credentials(200, b"<html>", "http://sts/", "x".into()).is_err());
    }

    #[test]
    fn container_endpoints_must_be_https_or_local() {
        for (uri, ok) in [
            ("https://creds.example/", true),
            ("http://127.0.0.1:8080/creds", true),
            ("http://169.254.170.23/v1/credentials", true),
            ("http://[fd00:ec2::23]/v1/credentials", true),
            ("http://10.0.0.1/creds", false),
            ("http://metadata.evil/", false),
            ("file:///etc/passwd", false),
        ] {
            let result = container_uri(&env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)]));
            assert_eq!(result.is_ok(), ok, "{uri}");
        }
        let relative = container_uri(&env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x")]))
            .expect("relative")
            .expect("set");
        assert_eq!(relative.as_str(), "http://169.254.170.2/v2/x");
    }
}
