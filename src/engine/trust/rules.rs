//! How a template's connection is held to the policy: the address it may use and whether the controller's
//! credentials go there, the tenant, and the template's own credentials (a template's `sigv4` is the
//! controller pod's identity and follows the controller's credentials' rule).
use url::Url;

use super::{config, display, parse_address, redact_raw_address, under, Rules, TENANT_HEADER};
use crate::engine::config::{ConfigError, Connection, ManagedAuth, PasswordSource};
use crate::engine::verdict::Failure;
use crate::prometheus::auth::SigV4Settings;
use crate::prometheus::Auth;

impl Rules {
    /// The address measured against (the template's, else the controller's) and whether it is trusted with
    /// the controller's credentials: the controller's own, one under an `--allowed-address` the admin vouches
    /// for, or any for `check` (the person's own). A template address outside every allowed prefix is refused.
    pub(super) fn address(&self, connection: &Connection) -> Result<(Url, bool), Failure> {
        let template_address = connection
            .address
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        let raw = template_address
            .or(self.controller_address.as_deref())
            .ok_or_else(|| config(ConfigError::NoAddress.to_string()))?;
        let address = parse_address(raw).ok_or_else(|| {
            config(format!(
                "Prometheus address `{}` is not an http:// or https:// URL",
                redact_raw_address(raw)
            ))
        })?;
        let controller = self.controller_address.as_deref().and_then(parse_address);
        let under_controller = controller.as_ref().is_some_and(|c| under(&address, c));
        let under_allowed = self.allowed.iter().any(|p| under(&address, p));
        if template_address.is_some()
            && !self.allowed.is_empty()
            && !under_controller
            && !under_allowed
        {
            return Err(config(format!(
                "address {} is outside every --allowed-address the controller's admin registered ({}): \
                 use one of them, or leave `address` unset to use the controller's",
                display(&address),
                self.allowed.iter().map(display).collect::<Vec<_>>().join(", ")
            )));
        }
        let trusted =
            !self.strict || template_address.is_none() || under_controller || under_allowed;
        Ok((address, trusted))
    }

    /// The tenant sent: the admin's pinned one on a trusted address (a template setting another, or an
    /// X-Scope-OrgID header, is refused), else the template's.
    pub(super) fn tenant(
        &self,
        connection: &Connection,
        trusted: bool,
        address: &Url,
    ) -> Result<Option<String>, Failure> {
        match &self.tenant {
            Some(pinned) if trusted => {
                let header = connection
                    .headers
                    .keys()
                    .any(|name| name.eq_ignore_ascii_case(TENANT_HEADER));
                if header || connection.tenant.as_ref().is_some_and(|t| t != pinned) {
                    return Err(config(format!(
                        "the tenant of {} is pinned by the controller's admin (--tenant): a template cannot set \
                         `tenant` or an X-Scope-OrgID header there",
                        display(address)
                    )));
                }
                Ok(Some(pinned.clone()))
            }
            _ => Ok(connection.tenant.clone()),
        }
    }
}

impl Rules {
    /// The template's own credentials. A template's `sigv4` signs with the controller pod's identity: only
    /// toward an address trusted with the controller's credentials, and assuming only a role the admin
    /// registered.
    pub(super) fn template_auth(
        &self,
        connection: &Connection,
        trusted: bool,
        address: &Url,
    ) -> Result<Auth, Failure> {
        match &connection.managed {
            Some(ManagedAuth::OAuth2(settings)) => return Ok(Auth::OAuth2(settings.clone())),
            Some(ManagedAuth::SigV4(settings)) => {
                return self.template_sigv4(settings, trusted, address)
            }
            None => {}
        }
        Ok(template_auth_of(connection))
    }

    fn template_sigv4(
        &self,
        settings: &SigV4Settings,
        trusted: bool,
        address: &Url,
    ) -> Result<Auth, Failure> {
        if !trusted {
            return Err(config(format!(
                "`sigv4` signs with the controller pod's own AWS identity, so it is used only toward the \
                 controller's address or an --allowed-address the admin registered, not {}",
                display(address)
            )));
        }
        if let (Some(role), Some(allowed)) = (&settings.role_arn, &self.sigv4_roles) {
            if !allowed.iter().any(|a| a == role) {
                return Err(config(format!(
                    "`sigv4.roleArn` {role} is not a role the controller's admin allows templates to assume \
                     (--sigv4-role-arn, --sigv4-allowed-role-arn)"
                )));
            }
        }
        // Validated when parsed; only the credential chain is the controller pod's.
        Ok(Auth::SigV4(SigV4Settings {
            environment: self.aws.clone(),
            ..settings.clone()
        }))
    }
}

/// The template's bearer or basic credentials.
pub(super) fn template_auth_of(connection: &Connection) -> Auth {
    match (
        &connection.bearer_token,
        &connection.bearer_token_file,
        &connection.basic_auth,
    ) {
        (Some(token), _, _) => Auth::Bearer(token.clone()),
        (None, Some(file), _) => Auth::BearerFile(file.clone()),
        (None, None, Some(basic)) => match &basic.password {
            PasswordSource::Inline(password) => Auth::Basic {
                username: basic.username.clone(),
                password: password.clone(),
            },
            PasswordSource::File(file) => Auth::BasicFile {
                username: basic.username.clone(),
                password_file: file.clone(),
            },
        },
        // Userinfo in the address: the client turns it into basic auth.
        (None, None, None) => Auth::None,
    }
}
