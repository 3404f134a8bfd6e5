//! The controller's side of the trust policy, read from the plugin registration: its Prometheus address and
//! the one authentication scheme sent there.
use super::{parse_address, redact_raw_address, ControllerArgs, TrustError};
use crate::prometheus::auth::AwsEnvironment;
use crate::prometheus::Auth;

/// The controller's Prometheus: `--address`, else `GUARDRAILS_PROMETHEUS_ADDRESS`; refused when unparsable
/// (redacted: it may carry credentials).
pub(super) fn controller_address(
    args: &ControllerArgs,
    env_address: Option<String>,
) -> Result<Option<String>, TrustError> {
    let (address, which) = match (&args.address, env_address) {
        (Some(address), _) => (address.trim().to_owned(), "--address"),
        (None, Some(address)) => (
            address.trim().to_owned(),
            crate::engine::config::ADDRESS_ENV,
        ),
        (None, None) => return Ok(None),
    };
    if parse_address(&address).is_none() {
        return Err(TrustError::Address {
            which: which.to_owned(),
            address: redact_raw_address(&address),
        });
    }
    Ok(Some(address))
}

/// The one authentication scheme of the controller's address: a bearer token file, basic auth, or a managed
/// store's (SigV4, OAuth2); two given at once is an error naming both.
pub(super) fn controller_auth(
    args: &ControllerArgs,
    aws: AwsEnvironment,
) -> Result<Auth, TrustError> {
    let schemes: Vec<&'static str> = [
        args.bearer_token_file
            .is_some()
            .then_some("--bearer-token-file"),
        (args.basic_auth_username.is_some() || args.basic_auth_password_file.is_some())
            .then_some("--basic-auth-username"),
    ]
    .into_iter()
    .chain(args.managed.flags())
    .flatten()
    .collect();
    if let [first, second, ..] = schemes[..] {
        return Err(TrustError::ConflictingAuth { first, second });
    }
    let managed = args.managed.auth(aws).map_err(TrustError::ManagedAuth)?;
    Ok(
        match (
            &args.bearer_token_file,
            &args.basic_auth_username,
            &args.basic_auth_password_file,
        ) {
            (Some(file), _, _) => Auth::BearerFile(file.clone()),
            (None, Some(username), Some(file)) => Auth::BasicFile {
                username: username.clone(),
                password_file: file.clone(),
            },
            _ => managed,
        },
    )
}
