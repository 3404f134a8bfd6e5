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

mod sources;

#[cfg(test)]
use sources::sts_credentials;
use sources::{assume_role, container, container_uri, shared_files, web_identity};

#[cfg(test)]
mod tests;
