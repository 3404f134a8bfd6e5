//! The registration `args` and `serve`'s flags: one clap struct for everything only the cluster admin
//! writes, and the parser that turns clap's explanation into one line.
use crate::engine::defaults::DefaultsArgs;
use crate::prometheus::auth::{AuthError, AwsEnvironment, OAuth2Settings, SigV4Settings};
use crate::prometheus::Auth;
use clap::{Args, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

use super::TrustError;

/// Controller-side settings: what only the cluster admin writes (the registration's `args`, `serve`'s
/// command line). One struct, one parser, shared by plugin mode and `serve`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerArgs {
    /// Prometheus address for templates that set none (overrides GUARDRAILS_PROMETHEUS_ADDRESS).
    #[arg(long, value_name = "URL")]
    pub address: Option<String>,
    /// Bearer token file sent to the controller's address (and --allowed-address prefixes) only.
    #[arg(long, value_name = "FILE", conflicts_with = "basic_auth_username")]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth username for the controller's address (needs --basic-auth-password-file).
    #[arg(long, value_name = "NAME", requires = "basic_auth_password_file")]
    pub basic_auth_username: Option<String>,
    /// Basic-auth password file for the controller's address (needs --basic-auth-username).
    #[arg(long, value_name = "FILE", requires = "basic_auth_username")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// PEM CA bundle trusted for the controller's address.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to the controller's address (needs --tls-key-file).
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Pinned X-Scope-OrgID for the controller's address: templates cannot replace it there.
    #[arg(long, value_name = "ORG")]
    pub tenant: Option<String>,
    /// A directory whose files templates may name (bearerTokenFile, basicAuth.passwordFile, tls.*File).
    /// Repeatable. Without it, template file keys are refused.
    #[arg(long = "credentials-dir", value_name = "DIR")]
    pub credentials_dirs: Vec<PathBuf>,
    /// An address prefix templates may use (e.g. https://mimir.internal/prometheus). Repeatable. When given,
    /// a template address outside every prefix (and the controller's address) is refused.
    #[arg(long = "allowed-address", value_name = "PREFIX")]
    pub allowed_addresses: Vec<String>,
    /// An IAM role a template's `sigv4.roleArn` may name (the controller's own --sigv4-role-arn always may).
    /// Repeatable. Without it a template may sign only as the controller pod's identity.
    #[arg(long = "sigv4-allowed-role-arn", value_name = "ARN")]
    pub sigv4_allowed_role_arns: Vec<String>,
    /// Let a template target pods of another namespace than its AnalysisRun's.
    #[arg(long)]
    pub allow_cross_namespace: bool,
    /// AWS SigV4 or OAuth2 client credentials for the controller's address (managed stores).
    #[command(flatten)]
    pub managed: ManagedAuthArgs,
    /// Controller-wide defaults (`--matcher`, `--replica-label`, `--timeout`, `--settle`,
    /// `--max-concurrent-queries`, `--metrics-listen`).
    #[command(flatten)]
    pub defaults: DefaultsArgs,
}

/// The managed stores' authentication, for the controller's address (and `--allowed-address` prefixes) in
/// plugin mode and `serve`, for the checked address in `check`. At most one scheme, and not with
/// `--bearer-token-file` or `--basic-auth-*`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedAuthArgs {
    /// Sign requests with AWS SigV4 (service aps) for this region (Amazon Managed Service for Prometheus),
    /// with the credentials of the pod's AWS chain (environment, shared files, IRSA web identity, EKS Pod
    /// Identity).
    #[arg(long, value_name = "REGION")]
    pub sigv4_region: Option<String>,
    /// An IAM role to assume (STS AssumeRole) with the chain's credentials before signing (needs
    /// --sigv4-region).
    #[arg(long, value_name = "ARN")]
    pub sigv4_role_arn: Option<String>,
    /// OAuth2 client-credentials token endpoint (http or https; redirects are not followed).
    #[arg(long, value_name = "URL")]
    pub oauth2_token_url: Option<String>,
    /// OAuth2 client id (needs --oauth2-token-url).
    #[arg(long, value_name = "ID")]
    pub oauth2_client_id: Option<String>,
    /// File holding the OAuth2 client secret, re-read at every token refresh (needs --oauth2-token-url).
    #[arg(long, value_name = "FILE")]
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// An OAuth2 scope to request. Repeatable.
    #[arg(long = "oauth2-scope", value_name = "SCOPE")]
    pub oauth2_scopes: Vec<String>,
}

impl ManagedAuthArgs {
    /// The scheme these flags select (`Auth::None` when none is given), validated; `aws` is the environment
    /// whose credential chain SigV4 uses.
    pub fn auth(&self, aws: AwsEnvironment) -> Result<Auth, AuthError> {
        let sigv4 = self.sigv4_region.is_some() || self.sigv4_role_arn.is_some();
        let oauth2 = self.oauth2_token_url.is_some()
            || self.oauth2_client_id.is_some()
            || self.oauth2_client_secret_file.is_some()
            || !self.oauth2_scopes.is_empty();
        if sigv4 && oauth2 {
            return Err(AuthError::Settings(
                "--sigv4-* and --oauth2-* cannot be used together: give one authentication scheme"
                    .into(),
            ));
        }
        if sigv4 {
            let region = self.sigv4_region.as_deref().ok_or_else(|| {
                AuthError::Settings("--sigv4-role-arn needs --sigv4-region".into())
            })?;
            return SigV4Settings::new(region, self.sigv4_role_arn.as_deref(), aws)
                .map(Auth::SigV4)
                .map_err(|e| AuthError::Settings(format!("--sigv4-region/--sigv4-role-arn: {e}")));
        }
        if oauth2 {
            let (Some(url), Some(id), Some(file)) = (
                &self.oauth2_token_url,
                &self.oauth2_client_id,
                &self.oauth2_client_secret_file,
            ) else {
                return Err(AuthError::Settings(
                    "OAuth2 needs all of --oauth2-token-url, --oauth2-client-id and --oauth2-client-secret-file"
                        .into(),
                ));
            };
            return OAuth2Settings::new(url, id, file.clone(), self.oauth2_scopes.clone())
                .map(Auth::OAuth2)
                .map_err(|e| {
                    AuthError::Settings(format!(
                        "--oauth2-token-url/--oauth2-client-id/--oauth2-scope: {e}"
                    ))
                });
        }
        Ok(Auth::None)
    }

    /// The flags that select a scheme, for conflict messages.
    pub(super) fn flags(&self) -> [Option<&'static str>; 2] {
        [
            (self.sigv4_region.is_some() || self.sigv4_role_arn.is_some())
                .then_some("--sigv4-region"),
            (self.oauth2_token_url.is_some()
                || self.oauth2_client_id.is_some()
                || self.oauth2_client_secret_file.is_some())
            .then_some("--oauth2-token-url"),
        ]
    }
}

/// The registration `args` as Argo passes them: `exec.Command(pluginPath, args...)`, one argv entry each.
#[derive(Parser, Debug)]
#[command(
    name = "rollouts-guardrails",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Registration {
    #[command(flatten)]
    controller: ControllerArgs,
}

/// Parses the registration `args`; clap's explanation becomes one line.
pub fn parse_registration<I, T>(args: I) -> Result<ControllerArgs, TrustError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    match Registration::try_parse_from(&args) {
        Ok(registration) => Ok(registration.controller),
        Err(error) => {
            let rendered = error.render().to_string();
            let mut message = rendered
                .lines()
                .take_while(|line| !line.starts_with("Usage:"))
                .map(|line| line.trim().trim_start_matches("error: "))
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            if args
                .iter()
                .any(|a| a.to_string_lossy().starts_with("--") && a.to_string_lossy().contains(' '))
            {
                message.push_str(
                    " (each entry of `args` is one argument: write `--flag=value`, or the flag and its value as two entries)",
                );
            }
            Err(TrustError::Args(message))
        }
    }
}
