//! The trust boundary between template authors and the controller's admin (docs/security.md): the
//! controller-side settings ([`ControllerArgs`], the `args` of the `metricProviderPlugins` registration or
//! `serve`'s flags), parsed once into a [`TrustPolicy`] that decides, for each template [`Connection`], which
//! address, credentials and files a measurement uses, and which namespace it may target.
//!
//! The rules, each proven in `tests/engine/trust_boundary.rs` and the conformance harness' `security.go`:
//! - A template's file keys are read only inside a `--credentials-dir` (after `..` and symlinks), never in the
//!   service-account directory, and through [`files::open`](crate::prometheus::files::open), which verifies
//!   what it opened. The permissive policy of `check` (a person with their own permissions) reads any file.
//! - The controller's credentials (`--bearer-token-file`, `--basic-auth-*`, `--tls-cert-file`) go only to the
//!   controller's address or an `--allowed-address` prefix, and only when the template brings none of its own.
//! - With `--allowed-address`, a template address outside every prefix (and the controller's) is refused.
//! - A pinned `--tenant` cannot be replaced by a template on those addresses.
//! - The managed stores' schemes (`--sigv4-*`, `--oauth2-*`, [`ManagedAuthArgs`]) are controller
//!   credentials like the others; two schemes at once are an invalid registration.
//! - A guardrail's target namespace is the AnalysisRun's unless `--allow-cross-namespace`.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use super::config::{Connection, ManagedAuth, PasswordSource, TlsSettings};
use super::defaults::{Defaults, DefaultsError};
use super::verdict::{Failure, FailureClass};
use crate::prometheus::auth::{AuthError, AwsEnvironment};
use crate::prometheus::files::{self, FileAccess, FileError};
use crate::prometheus::{Auth, Endpoint, TlsConfig};

mod args;
mod registration;
mod rules;

pub use args::{parse_registration, ControllerArgs, ManagedAuthArgs};
use registration::{controller_address, controller_auth};

/// The service-account token directories of a pod: never readable through a template, whatever
/// `--credentials-dir` says (the token's RBAC usually spans the cluster).
pub const SERVICE_ACCOUNT_DIRS: [&str; 2] = [
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/run/secrets/kubernetes.io/serviceaccount",
];

/// The Mimir/Cortex tenant header, compared case-insensitively with a template's custom headers.
const TENANT_HEADER: &str = "x-scope-orgid";

/// Why the controller-side settings are unusable. In plugin mode every measurement is Failed with it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    /// The registration `args` do not parse (unknown flag, missing value, …): clap's explanation, one line.
    #[error("invalid registration args of the metricProviderPlugins entry: {0}")]
    Args(String),
    #[error("{which} `{address}` is not an http:// or https:// URL")]
    Address { which: String, address: String },
    #[error("--credentials-dir {dir}: {problem}")]
    CredentialsDir { dir: String, problem: String },
    /// Two authentication schemes for the controller's address.
    #[error("{first} and {second} cannot be used together: the controller's address takes one authentication scheme")]
    ConflictingAuth {
        first: &'static str,
        second: &'static str,
    },
    /// The SigV4 or OAuth2 flags are incomplete or invalid.
    #[error("{0}")]
    ManagedAuth(AuthError),
    #[error(transparent)]
    Defaults(#[from] DefaultsError),
}

/// The decisions of the trust boundary, built once. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// `Err` when the controller-side settings are invalid: every measurement is Failed with the message.
    rules: Result<Arc<Rules>, TrustError>,
}

#[derive(Debug)]
struct Rules {
    /// Plugin mode and `serve`: template files confined, namespaces pinned. `check`: neither.
    strict: bool,
    /// Raw, as configured (`--address`, else the environment), parsed per measurement like a template's.
    controller_address: Option<String>,
    controller_auth: Auth,
    controller_tls: TlsConfig,
    tenant: Option<String>,
    /// Where a template's files may be read: `Within` the credentials directories when strict.
    template_files: FileAccess,
    /// The credentials directories, for messages.
    credentials_dirs: Vec<PathBuf>,
    allowed: Vec<Url>,
    cross_namespace: bool,
    /// Controller-wide defaults (matchers, replica labels, timeout, settle, …).
    defaults: Defaults,
    /// The controller pod's AWS environment, whose credential chain a template's `sigv4` signs with.
    aws: Arc<AwsEnvironment>,
    /// The roles a template's `sigv4.roleArn` may name when strict (`None`: any, for `check`).
    sigv4_roles: Option<Vec<String>>,
}

impl TrustPolicy {
    /// The policy of a person at a terminal (`check`, engine tests): template files read freely, any
    /// namespace, `default_address` when a template sets none, no controller credentials.
    pub fn permissive(default_address: Option<String>) -> TrustPolicy {
        TrustPolicy {
            rules: Ok(Arc::new(Rules {
                strict: false,
                controller_address: default_address,
                controller_auth: Auth::None,
                controller_tls: TlsConfig::default(),
                tenant: None,
                template_files: FileAccess::Unrestricted,
                credentials_dirs: Vec::new(),
                allowed: Vec::new(),
                cross_namespace: true,
                defaults: Defaults::default(),
                aws: Arc::new(AwsEnvironment::from_process()),
                sigv4_roles: None,
            })),
        }
    }

    /// The policy of `check`: [`permissive`](TrustPolicy::permissive), with `auth` (the person's own
    /// `--sigv4-*` or `--oauth2-*`) applied to whichever address is checked.
    pub fn permissive_with_auth(default_address: Option<String>, auth: Auth) -> TrustPolicy {
        let mut policy = TrustPolicy::permissive(default_address);
        if let Ok(rules) = &mut policy.rules {
            if let Some(rules) = Arc::get_mut(rules) {
                rules.controller_auth = auth;
            }
        }
        policy
    }

    /// The controller-side address used when a template sets none (`None` also when the settings are invalid).
    pub fn default_address(&self) -> Option<&str> {
        self.rules
            .as_ref()
            .ok()
            .and_then(|r| r.controller_address.as_deref())
    }

    /// The controller-wide defaults (the built-in ones when the settings are invalid: every measurement
    /// fails then anyway).
    pub fn defaults(&self) -> &Defaults {
        static BUILT_IN: std::sync::OnceLock<Defaults> = std::sync::OnceLock::new();
        match &self.rules {
            Ok(rules) => &rules.defaults,
            Err(_) => BUILT_IN.get_or_init(Defaults::default),
        }
    }

    /// The policy of plugin mode and `serve`. `env_address` is `GUARDRAILS_PROMETHEUS_ADDRESS`, used when
    /// `--address` is not given. SigV4 uses the process' AWS environment.
    pub fn strict(
        args: &ControllerArgs,
        env_address: Option<String>,
    ) -> Result<TrustPolicy, TrustError> {
        TrustPolicy::strict_in(args, env_address, AwsEnvironment::from_process())
    }

    /// [`strict`](TrustPolicy::strict) with an explicit AWS environment for SigV4's credential chain.
    pub fn strict_in(
        args: &ControllerArgs,
        env_address: Option<String>,
        aws: AwsEnvironment,
    ) -> Result<TrustPolicy, TrustError> {
        let controller_address = controller_address(args, env_address)?;
        let allowed = args
            .allowed_addresses
            .iter()
            .map(|prefix| {
                parse_address(prefix).ok_or_else(|| TrustError::Address {
                    which: "--allowed-address".to_owned(),
                    address: redact_raw_address(prefix),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let env_settle = super::settle::from_env().map_err(|reason| DefaultsError {
            flag: super::settle::SETTLE_ENV,
            value: String::new(),
            reason,
        })?;
        let defaults = Defaults::parse(&args.defaults, env_settle)?;
        let denied = denied_dirs();
        let credentials_dirs = args
            .credentials_dirs
            .iter()
            .map(|dir| credentials_dir(dir, &denied))
            .collect::<Result<Vec<_>, _>>()?;
        let controller_auth = controller_auth(args, aws.clone())?;
        let sigv4_roles = args
            .managed
            .sigv4_role_arn
            .iter()
            .chain(&args.sigv4_allowed_role_arns)
            .map(|arn| arn.trim().to_owned())
            .collect();
        Ok(TrustPolicy {
            rules: Ok(Arc::new(Rules {
                strict: true,
                controller_address,
                controller_auth,
                controller_tls: TlsConfig {
                    ca_file: args.tls_ca_file.clone(),
                    cert_file: args.tls_cert_file.clone(),
                    key_file: args.tls_key_file.clone(),
                    insecure_skip_verify: false,
                    files: FileAccess::Unrestricted,
                },
                tenant: args.tenant.clone().filter(|t| !t.is_empty()),
                template_files: FileAccess::Within {
                    allowed: credentials_dirs.clone().into(),
                    denied: denied.into(),
                },
                credentials_dirs,
                allowed,
                cross_namespace: args.allow_cross_namespace,
                defaults,
                aws: Arc::new(aws),
                sigv4_roles: Some(sigv4_roles),
            })),
        })
    }

    /// Plugin mode: parses the registration `args` (argv after the program name) and builds the strict
    /// policy; a failure becomes a policy that fails every measurement with it (the plugin still answers).
    pub fn from_registration<I, T>(args: I, env_address: Option<String>) -> TrustPolicy
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let policy =
            parse_registration(args).and_then(|args| TrustPolicy::strict(&args, env_address));
        policy.unwrap_or_else(|error| TrustPolicy { rules: Err(error) })
    }

    /// Why every measurement fails, when the controller-side settings are invalid.
    pub fn problem(&self) -> Option<&TrustError> {
        self.rules.as_ref().err()
    }

    /// A one-line summary for the startup log (no credential, no path content).
    pub fn summary(&self) -> String {
        match &self.rules {
            Err(error) => format!("invalid: {error}"),
            Ok(rules) => format!(
                "address={} credentials={} tenant={} credentials-dirs={} allowed-addresses={} cross-namespace={}",
                rules
                    .controller_address
                    .as_deref()
                    .and_then(parse_address)
                    .map(|u| crate::prometheus::Endpoint::new(u).display_address())
                    .unwrap_or_else(|| "none".to_owned()),
                match (&rules.controller_auth, &rules.controller_tls.cert_file) {
                    (Auth::None, None) => "none",
                    (Auth::None, Some(_)) => "client-certificate",
                    (auth, _) => auth.scheme(),
                },
                if rules.tenant.is_some() { "pinned" } else { "template" },
                rules.credentials_dirs.len(),
                rules.allowed.len(),
                rules.cross_namespace
            ),
        }
    }

    /// The endpoint a template's connection is measured against, or the `config` failure saying why not.
    pub fn endpoint(&self, connection: &Connection) -> Result<Endpoint, Failure> {
        let rules = self.rules()?;
        let (address, trusted) = rules.address(connection)?;
        let template_auth = connection.bearer_token.is_some()
            || connection.bearer_token_file.is_some()
            || connection.basic_auth.is_some()
            || connection.managed.is_some()
            || !address.username().is_empty()
            || address.password().is_some();
        let template_tls = connection.tls != TlsSettings::default();
        self.check_template_files(rules, connection)?;

        let controller_credentials = trusted
            && !template_auth
            && (rules.controller_auth != Auth::None || rules.controller_tls.cert_file.is_some());
        if controller_credentials && template_tls && rules.strict {
            return Err(config(format!(
                "`tls` cannot be set by a template while the controller's credentials are sent to {}: \
                 the admin's --tls-* registration args apply there",
                display(&address)
            )));
        }
        let (auth, files) = if template_auth {
            (
                rules.template_auth(connection, trusted, &address)?,
                rules.template_files.clone(),
            )
        } else if trusted {
            (rules.controller_auth.clone(), FileAccess::Unrestricted)
        } else {
            (Auth::None, FileAccess::Unrestricted)
        };
        let tls = if template_tls {
            TlsConfig {
                ca_file: connection.tls.ca_file.clone(),
                cert_file: connection.tls.cert_file.clone(),
                key_file: connection.tls.key_file.clone(),
                insecure_skip_verify: connection.tls.insecure_skip_verify,
                files: rules.template_files.clone(),
            }
        } else if trusted {
            rules.controller_tls.clone()
        } else {
            TlsConfig::default()
        };
        let tenant = rules.tenant(connection, trusted, &address)?;
        Ok(Endpoint {
            address,
            headers: connection
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            auth,
            tenant,
            tls,
            files,
        })
    }

    /// A guardrail's target namespace (`namespace` of the template, when set) must be the AnalysisRun's,
    /// unless the admin allows more: otherwise a tenant could watch another team's pods through it.
    pub fn check_namespace(
        &self,
        template_namespace: Option<&str>,
        run_namespace: &str,
    ) -> Result<(), Failure> {
        let rules = self.rules()?;
        match template_namespace {
            None => Ok(()),
            Some(_) if rules.cross_namespace => Ok(()),
            Some(namespace) if namespace == run_namespace => Ok(()),
            Some(namespace) if run_namespace.is_empty() => Err(config(format!(
                "namespace `{namespace}` cannot be checked against the AnalysisRun's, which is unknown: leave \
                 `namespace` unset, or the controller's admin registers --allow-cross-namespace"
            ))),
            Some(namespace) => Err(config(format!(
                "namespace `{namespace}` is not the AnalysisRun's namespace `{run_namespace}`: a measurement \
                 targets its own namespace unless the controller's admin registers --allow-cross-namespace"
            ))),
        }
    }

    fn rules(&self) -> Result<&Rules, Failure> {
        self.rules
            .as_deref()
            .map_err(|error| config(error.to_string()))
    }

    /// Every file key of the template, checked before any request (the client checks again at open).
    fn check_template_files(&self, rules: &Rules, connection: &Connection) -> Result<(), Failure> {
        if !rules.strict {
            return Ok(());
        }
        let password_file =
            connection
                .basic_auth
                .as_ref()
                .and_then(|basic| match &basic.password {
                    PasswordSource::File(file) => Some(file),
                    PasswordSource::Inline(_) => None,
                });
        let oauth2_secret = match &connection.managed {
            Some(ManagedAuth::OAuth2(settings)) => Some(&settings.client_secret_file),
            _ => None,
        };
        let keys = [
            ("bearerTokenFile", connection.bearer_token_file.as_ref()),
            ("basicAuth.passwordFile", password_file),
            ("oauth2.clientSecretFile", oauth2_secret),
            ("tls.caFile", connection.tls.ca_file.as_ref()),
            ("tls.certFile", connection.tls.cert_file.as_ref()),
            ("tls.keyFile", connection.tls.key_file.as_ref()),
        ];
        for (key, path) in keys {
            let Some(path) = path else { continue };
            if let Err(problem) = rules.template_files.check(path) {
                return Err(config(file_refusal(
                    key,
                    path,
                    &problem,
                    &rules.credentials_dirs,
                )));
            }
        }
        Ok(())
    }
}

fn file_refusal(key: &str, path: &Path, problem: &FileError, dirs: &[PathBuf]) -> String {
    let registered = if dirs.is_empty() {
        "none is registered".to_owned()
    } else {
        format!(
            "registered: {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let why = match problem {
        // Whether the file exists is not said: that would tell a tenant about the controller's files.
        FileError::Io(_) | FileError::Outside => "is not inside a --credentials-dir".to_owned(),
        other => other.to_string(),
    };
    format!(
        "`{key}` {} {why}: a template may name only files inside a --credentials-dir that the controller's \
         admin adds to the `args` of the metricProviderPlugins registration ({registered}); a Secret of the \
         template's own namespace reaches the plugin inline, as `bearerToken` or `basicAuth.password` from \
         the template's args (valueFrom.secretKeyRef)",
        path.display()
    )
}

/// A `--credentials-dir`, canonical, refused if it is or lies inside a service-account directory.
fn credentials_dir(dir: &Path, denied: &[PathBuf]) -> Result<PathBuf, TrustError> {
    let error = |problem: String| TrustError::CredentialsDir {
        dir: dir.display().to_string(),
        problem,
    };
    if !dir.is_absolute() {
        return Err(error("is not an absolute path".to_owned()));
    }
    let never = || {
        error(
            "is the service-account token directory, which is never readable from a template"
                .to_owned(),
        )
    };
    if denied.iter().any(|d| files::normalize(dir).starts_with(d)) {
        return Err(never());
    }
    let canonical = std::fs::canonicalize(dir).map_err(|e| error(e.to_string()))?;
    if !canonical.is_dir() {
        return Err(error("is not a directory".to_owned()));
    }
    if canonical == Path::new("/") {
        return Err(error("is the root directory".to_owned()));
    }
    if denied.iter().any(|d| canonical.starts_with(d)) {
        return Err(never());
    }
    Ok(canonical)
}

/// The service-account directories, literally and (where they exist) resolved.
fn denied_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = SERVICE_ACCOUNT_DIRS.iter().map(PathBuf::from).collect();
    for dir in SERVICE_ACCOUNT_DIRS {
        if let Ok(real) = std::fs::canonicalize(dir) {
            dirs.push(real);
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

fn parse_address(raw: &str) -> Option<Url> {
    Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Whether `address` lies under `prefix`: same scheme, host and port, and a path at or below the prefix'
/// path, component-wise (`/prometheus` covers `/prometheus/api`, not `/prometheus-other`).
fn under(address: &Url, prefix: &Url) -> bool {
    if address.scheme() != prefix.scheme()
        || address.host_str() != prefix.host_str()
        || address.port_or_known_default() != prefix.port_or_known_default()
    {
        return false;
    }
    let base = prefix.path().trim_end_matches('/');
    let path = address.path();
    base.is_empty() || path == base || path.starts_with(&format!("{base}/"))
}

fn display(url: &Url) -> String {
    Endpoint::new(url.clone()).display_address()
}

fn config(message: String) -> Failure {
    Failure::new(FailureClass::Config, message)
}

/// An address that did not parse, shown without anything that looks like userinfo.
pub(crate) fn redact_raw_address(raw: &str) -> String {
    let raw = raw.trim();
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &raw[..scheme_end], &raw[at + 1..])
        }
        (None, Some(at)) => format!("<redacted>@{}", &raw[at + 1..]),
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests;
