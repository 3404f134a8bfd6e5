//! OAuth2 client credentials (RFC 6749 §4.4): [`OAuth2Settings`] (token URL, client id, client secret file,
//! scopes) and `TokenSource`, which fetches an access token, caches it until 80% of its lifetime and lets
//! concurrent requests share one refresh.
//!
//! The token request is `POST <tokenUrl>` with the form `grant_type=client_credentials`, `client_id`,
//! `client_secret` (the `client_secret_post` method every common provider accepts) and `scope` (the scopes
//! joined by spaces). Redirects are never followed: the request carries the client secret, and a 3xx is a
//! refusal naming its status. The secret file is re-read at every refresh (mounted Secrets rotate).
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::ACCEPT;
use url::Url;

use super::{display, exchange, plain_code, shown_address, AuthError, Refreshing};
use crate::prometheus::client::MAX_CREDENTIAL_FILE_BYTES;
use crate::prometheus::files::{self, FileAccess};
use crate::prometheus::Secret;

/// The lifetime assumed when a token answer has no `expires_in` (RFC 6749 makes it optional): short, so a
/// token that does expire is replaced soon.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// What an `oauth2` setting says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OAuth2Settings {
    /// The token endpoint: http or https, no userinfo.
    pub token_url: Url,
    pub client_id: String,
    /// The file holding the client secret (surrounding whitespace ignored).
    pub client_secret_file: PathBuf,
    /// Sent as `scope`, joined by spaces; none: no `scope` parameter.
    pub scopes: Vec<String>,
}

impl OAuth2Settings {
    /// Validated settings: the token URL must be http(s) with a host and no userinfo, the client id
    /// non-empty, each scope a non-empty token without spaces.
    pub fn new(
        token_url: &str,
        client_id: &str,
        client_secret_file: PathBuf,
        scopes: Vec<String>,
    ) -> Result<OAuth2Settings, AuthError> {
        let url = Url::parse(token_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                AuthError::Settings(format!(
                    "oauth2 token URL `{}` is not an http:// or https:// URL",
                    shown_address(token_url)
                ))
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(AuthError::Settings(format!(
                "oauth2 token URL {} carries userinfo: the client authenticates with its id and secret file",
                display(&url)
            )));
        }
        let client_id = client_id.trim();
        if client_id.is_empty() || client_id.chars().any(char::is_control) {
            return Err(AuthError::Settings(
                "oauth2 client id is empty or holds control characters".into(),
            ));
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(AuthError::Settings(format!(
                "oauth2 scope `{}` is empty or holds spaces (give each scope on its own)",
                crate::prometheus::response::excerpt(bad)
            )));
        }
        Ok(OAuth2Settings {
            token_url: url,
            client_id: client_id.to_owned(),
            client_secret_file,
            scopes,
        })
    }
}

/// The tokens of one [`OAuth2Settings`] under one [`FileAccess`] (a template's secret file is confined).
pub(crate) struct TokenSource {
    settings: OAuth2Settings,
    files: FileAccess,
    cache: Refreshing<Secret>,
}

impl TokenSource {
    pub(crate) fn new(settings: OAuth2Settings, files: FileAccess) -> TokenSource {
        TokenSource {
            settings,
            files,
            cache: Refreshing::new(),
        }
    }

    /// An access token, from the cache or the token endpoint (through `http`).
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Secret, AuthError> {
        self.cache.get(|| self.fetch(http)).await
    }

    /// Forgets the cached token (the store refused it).
    pub(crate) async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(Secret, Duration), AuthError> {
        let settings = &self.settings;
        let file = &settings.client_secret_file;
        let secret = files::read_secret(file, &self.files, MAX_CREDENTIAL_FILE_BYTES)
            .await
            .map_err(|problem| AuthError::File {
                what: "oauth2 client secret",
                path: file.display().to_string(),
                problem,
            })?;
        let address = display(&settings.token_url);
        let scope = settings.scopes.join(" ");
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", secret.expose()),
        ];
        if !scope.is_empty() {
            form.push(("scope", scope.as_str()));
        }
        let request = http
            .post(settings.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&form);
        let (status, body) = exchange("oauth2 token endpoint", &address, request.send()).await?;
        token_answer(status, &body, &address)
    }
}

/// The token of a token endpoint's answer, or why not: a refusal by status and RFC 6749 `error` code only
/// (its `error_description` is the server's free text).
fn token_answer(status: u16, body: &[u8], address: &str) -> Result<(Secret, Duration), AuthError> {
    const SERVICE: &str = "oauth2 token endpoint";
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let code = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
            .and_then(plain_code);
        let action = if (300..400).contains(&status) {
            "the token request (redirects are not followed; configure the final token URL)"
                .to_owned()
        } else {
            "the client credentials".to_owned()
        };
        return Err(AuthError::Refused {
            service: SERVICE,
            address: address.to_owned(),
            action,
            status,
            code,
        });
    }
    let malformed = |problem: &str| AuthError::Malformed {
        service: SERVICE,
        address: address.to_owned(),
        problem: format!("HTTP {status} {problem}"),
    };
    let json = json.ok_or_else(|| malformed("with a body that is not JSON"))?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("without access_token"))?;
    if let Some(kind) = json.get("token_type").and_then(|t| t.as_str()) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(malformed(&format!(
                "with token_type `{}`, not bearer",
                plain_code(kind).unwrap_or_else(|| "?".into())
            )));
        }
    }
    // `expires_in` is a number of seconds; some servers write it as a string.
    let lifetime = match json.get("expires_in") {
        None | Some(serde_json::Value::Null) => DEFAULT_TOKEN_LIFETIME,
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Duration::from_secs)
            .ok_or_else(|| malformed("with an expires_in that is not a number of seconds"))?,
    };
    Ok((Secret::new(token), lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_bad_urls_ids_and_scopes() {
        let file = PathBuf::from("/secret");
        for url in [
            "ftp://idp/token",
            "idp/token",
            "http://user:pw@idp/token",
            "",
        ] {
            let error = OAuth2Settings::new(url, "id", file.clone(), vec![]).err();
            let error = error.unwrap_or_else(|| panic!("{url} accepted"));
            assert!(!error.to_string().contains("pw"), "{error}");
        }
        assert!(OAuth2Settings::new("https://idp/token", " ", file.clone(), vec![]).is_err());
        assert!(
            OAuth2Settings::new("https://idp/token", "id", file.clone(), vec!["a b".into()])
                .is_err()
        );
        let ok = OAuth2Settings::new(
            "https://idp/oauth2/token",
            "guardrails",
            file,
            vec!["read".into(), "metrics".into()],
        )
        .expect("valid");
        assert_eq!(ok.token_url.as_str(), "https://idp/oauth2/token");
    }

    #[test]
    fn token_answers_and_refusals() {
        let ok = |body: &str| token_answer(200, body.as_bytes(), "http://idp/");
        let (token, lifetime) =
            ok(r#"{"access_token":"tok","token_type":"Bearer","expires_in":120}"#).expect("ok");
        assert_eq!(
            (token.expose(), lifetime),
            ("tok", Duration::from_secs(120))
        );
        let (_, lifetime) = ok(r#"{"access_token":"tok","expires_in":"60"}"#).expect("string");
        assert_eq!(lifetime, Duration::from_secs(60));
        let (_, lifetime) = ok(r#"{"access_token":"tok"}"#).expect("no expiry");
        assert_eq!(lifetime, DEFAULT_TOKEN_LIFETIME);
        for bad in [
            "not json",
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":"tok","token_type":"mac"}"#,
            r#"{"access_token":"tok","expires_in":"soon"}"#,
        ] {
            let error = ok(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!error.to_string().contains("tok\""), "{error}");
        }
        let refused = token_answer(
            401,
            br#"{"error":"invalid_client","error_description":"secret s3cr3t is wrong"}"#,
            "http://idp/",
        )
        .expect_err("refused");
        let text = refused.to_string();
        assert!(text.contains("HTTP 401 invalid_client"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let redirect = token_answer(302, b"", "http://idp/").expect_err("redirect");
        assert!(
            redirect.to_string().contains("redirects are not followed"),
            "{redirect}"
        );
    }
}
