//! How to reach Prometheus: the address, headers, one kind of credential and TLS, parsed from the
//! configuration. Credentials are [`Secret`]s, so `Debug` and errors never show them.
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::read::Keys;
use super::ConfigError;
use crate::prometheus::auth::{AwsEnvironment, OAuth2Settings, SigV4Settings};
use crate::prometheus::Secret;

/// Basic authentication: a username and a password given inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: PasswordSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Inline(Secret),
    File(PathBuf),
}

/// TLS settings for the Prometheus connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// A managed store's authentication set by the template (`sigv4`, `oauth2`): validated where the engine's
/// trust policy decides whether the template may use it (`engine::trust`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedAuth {
    /// `sigv4: {region, roleArn?}`: signed with the controller pod's own AWS identity, which the trust policy
    /// puts in (parsed with an empty environment).
    SigV4(SigV4Settings),
    /// `oauth2: {tokenUrl, clientId, clientSecretFile, scopes?}`: the secret file is a template file.
    OAuth2(OAuth2Settings),
}

/// How to reach Prometheus. `Debug` shows no credential: they are [`Secret`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub address: Option<String>,
    pub headers: BTreeMap<String, Secret>,
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub managed: Option<ManagedAuth>,
    pub tls: TlsSettings,
    pub tenant: Option<String>,
}

/// The connection keys of the top level.
pub const KEYS: &[&str] = &[
    "address",
    "headers",
    "bearerToken",
    "bearerTokenFile",
    "basicAuth",
    "sigv4",
    "oauth2",
    "tls",
    "tenant",
];
const BASIC_AUTH_KEYS: &[&str] = &["username", "password", "passwordFile"];
const SIGV4_KEYS: &[&str] = &["region", "roleArn"];
const OAUTH2_KEYS: &[&str] = &["tokenUrl", "clientId", "clientSecretFile", "scopes"];
const TLS_KEYS: &[&str] = &["caFile", "certFile", "keyFile", "insecureSkipVerify"];

impl Connection {
    pub fn parse(keys: &Keys) -> Result<Connection, ConfigError> {
        let basic_auth = match keys.object("basicAuth", "basicAuth.")? {
            None => None,
            Some(b) => Some(basic_auth(&b)?),
        };
        let bearer_token = keys.string("bearerToken")?.filter(|t| !t.is_empty());
        let bearer_token_file = keys.path("bearerTokenFile")?;
        let managed = managed_auth(keys)?;
        let credentials = usize::from(bearer_token.is_some())
            + usize::from(bearer_token_file.is_some())
            + usize::from(basic_auth.is_some())
            + usize::from(managed.is_some());
        if credentials > 1 {
            return Err(keys.invalid(
                "bearerToken",
                "set only one of `bearerToken`, `bearerTokenFile`, `basicAuth`, `sigv4` and `oauth2`",
            ));
        }
        Ok(Connection {
            address: keys.text("address")?,
            headers: headers(keys)?,
            bearer_token: bearer_token.map(Secret::new),
            bearer_token_file,
            basic_auth,
            managed,
            tls: tls(keys)?,
            tenant: keys.text("tenant")?,
        })
    }
}

fn headers(keys: &Keys) -> Result<BTreeMap<String, Secret>, ConfigError> {
    // The name is checked before the value's type, so a bad name is reported as such.
    if let Some(h) = keys.object("headers", "")? {
        for name in h.present() {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid_name {
                return Err(
                    keys.invalid("headers", &format!("`{name}` is not a valid header name"))
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for (name, value) in keys.strings("headers")? {
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(keys.invalid(&format!("headers.{name}"), "contains a line break"));
        }
        out.insert(name.clone(), Secret::new(value.clone()));
    }
    Ok(out)
}

fn basic_auth(b: &Keys) -> Result<BasicAuth, ConfigError> {
    b.only(BASIC_AUTH_KEYS)?;
    let username = b
        .string("username")?
        .filter(|u| !u.is_empty())
        .ok_or(ConfigError::Missing("basicAuth.username"))?;
    let password = match (b.string("password")?, b.path("passwordFile")?) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "basicAuth".into(),
                reason: "set `password` or `passwordFile`, not both".into(),
            })
        }
        (Some(p), None) => PasswordSource::Inline(Secret::new(p)),
        (None, Some(f)) => PasswordSource::File(f),
        (None, None) => return Err(ConfigError::Missing("basicAuth.password")),
    };
    Ok(BasicAuth { username, password })
}

fn managed_auth(keys: &Keys) -> Result<Option<ManagedAuth>, ConfigError> {
    let sigv4 = keys.object("sigv4", "sigv4.")?;
    let oauth2 = keys.object("oauth2", "oauth2.")?;
    match (sigv4, oauth2) {
        (Some(_), Some(_)) => Err(keys.invalid("sigv4", "set `sigv4` or `oauth2`, not both")),
        (Some(v), None) => {
            v.only(SIGV4_KEYS)?;
            let region = v
                .text("region")?
                .ok_or(ConfigError::Missing("sigv4.region"))?;
            let role_arn = v.text("roleArn")?;
            let settings =
                SigV4Settings::new(&region, role_arn.as_deref(), AwsEnvironment::default())
                    .map_err(|e| keys.invalid("sigv4", &e.to_string()))?;
            Ok(Some(ManagedAuth::SigV4(settings)))
        }
        (None, Some(o)) => {
            o.only(OAUTH2_KEYS)?;
            let settings = OAuth2Settings::new(
                &o.text("tokenUrl")?
                    .ok_or(ConfigError::Missing("oauth2.tokenUrl"))?,
                &o.text("clientId")?
                    .ok_or(ConfigError::Missing("oauth2.clientId"))?,
                o.path("clientSecretFile")?
                    .ok_or(ConfigError::Missing("oauth2.clientSecretFile"))?,
                o.string_list("scopes", "a list of scopes")?,
            )
            .map_err(|e| keys.invalid("oauth2", &e.to_string()))?;
            Ok(Some(ManagedAuth::OAuth2(settings)))
        }
        (None, None) => Ok(None),
    }
}

fn tls(keys: &Keys) -> Result<TlsSettings, ConfigError> {
    let Some(t) = keys.object("tls", "tls.")? else {
        return Ok(TlsSettings::default());
    };
    t.only(TLS_KEYS)?;
    let tls = TlsSettings {
        ca_file: t.path("caFile")?,
        cert_file: t.path("certFile")?,
        key_file: t.path("keyFile")?,
        insecure_skip_verify: t.boolean("insecureSkipVerify")?,
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err(ConfigError::Invalid {
            key: "tls".into(),
            reason: "`certFile` and `keyFile` go together".into(),
        });
    }
    Ok(tls)
}
