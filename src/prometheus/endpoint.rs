//! Where and how to reach one Prometheus: [`Endpoint`] (address, headers, [`Auth`], tenant, [`TlsConfig`]),
//! the safe-to-print form of its address, and the request URL of an API path under it.
use std::fmt;
use std::path::PathBuf;

use url::Url;

use super::{Auth, FileAccess, QueryError, Secret};

/// One Prometheus-compatible API (Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics). `Debug` prints the
/// [display address](Endpoint::display_address), never userinfo, a query string or a header value.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL; may carry a path prefix (`http://host/prometheus/`) and userinfo (`http://user:pass@host`,
    /// which becomes basic auth and is never printed).
    pub address: Url,
    /// Custom headers; the values are secrets (they often carry API keys).
    pub headers: Vec<(String, Secret)>,
    pub auth: Auth,
    /// Sent as `X-Scope-OrgID` (Mimir, Cortex, Loki-style multi-tenancy).
    pub tenant: Option<String>,
    pub tls: TlsConfig,
    /// Where the files of [`Auth::BearerFile`], [`Auth::BasicFile`] and an OAuth2 client secret may be read
    /// from (the engine's trust policy confines a template's files; see `engine::trust`).
    pub files: FileAccess,
}

/// TLS settings. The client keeps one connection pool per distinct value, so this is the cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    /// A PEM bundle of extra root certificates, trusted besides the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; needs `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. For laboratories only.
    pub insecure_skip_verify: bool,
    /// Where the three files above may be read from.
    pub files: FileAccess,
}

/// The URL to send a request to, with the credentials that were embedded in the address taken out of it.
/// Deliberately not `Debug`: the URL may keep a key in its query string.
pub(crate) struct RequestTarget {
    pub url: Url,
    /// `http://user:pass@host` as (user, password), percent-decoded.
    pub userinfo: Option<(String, Secret)>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.display_address())
            .field("headers", &self.headers)
            .field("auth", &self.auth)
            .field("tenant", &self.tenant)
            .field("tls", &self.tls)
            .field("files", &self.files)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint at `address` with no headers, no auth, no tenant and default TLS.
    pub fn new(address: Url) -> Endpoint {
        Endpoint {
            address,
            headers: Vec::new(),
            auth: Auth::None,
            tenant: None,
            tls: TlsConfig::default(),
            files: FileAccess::Unrestricted,
        }
    }

    /// The address fit for messages, logs and metadata: no userinfo, no query string, no fragment.
    pub fn display_address(&self) -> String {
        display_url(&self.address)
    }

    /// The URL of `api_path` (e.g. `api/v1/query`) under the address' path prefix, as Prometheus' Go client
    /// joins them (`path.Join(prefix, api_path)`). The address' query string is kept (some gateways take a key
    /// there); the fragment and userinfo are not sent.
    pub(crate) fn request_target(&self, api_path: &str) -> Result<RequestTarget, QueryError> {
        let address = &self.address;
        if !matches!(address.scheme(), "http" | "https") {
            return Err(QueryError::Config {
                detail: format!("address {} must use http or https", self.display_address()),
            });
        }
        if address.host_str().is_none_or(str::is_empty) {
            return Err(QueryError::Config {
                detail: format!("address {} has no host", self.display_address()),
            });
        }
        let userinfo = if address.username().is_empty() && address.password().is_none() {
            None
        } else {
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| QueryError::Config {
                        detail: format!(
                            "userinfo of address {} is not valid utf-8",
                            self.display_address()
                        ),
                    })
            };
            let username = decode(address.username())?;
            let password = decode(address.password().unwrap_or(""))?;
            Some((username, Secret::new(password)))
        };
        let mut url = address.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        let path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            api_path.trim_start_matches('/')
        );
        url.set_path(&path);
        Ok(RequestTarget { url, userinfo })
    }
}

/// `url` fit for messages and logs: no userinfo, no query string, no fragment.
pub(crate) fn display_url(url: &Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot have userinfo at all (`mailto:`), which then carry none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str) -> Endpoint {
        Endpoint::new(Url::parse(address).expect("test address"))
    }

    #[test]
    fn display_address_drops_userinfo_query_and_fragment() {
        let e = endpoint("https://alice:s3cret@prom.example:9090/prometheus/?api_key=k3y#frag");
        assert_eq!(e.display_address(), "https://prom.example:9090/prometheus/");
        assert_eq!(
            endpoint("http://prom:9090").display_address(),
            "http://prom:9090/"
        );
        assert_eq!(
            endpoint("http://token@prom/").display_address(),
            "http://prom/"
        );
    }

    #[test]
    fn request_target_joins_the_path_prefix() {
        let cases = [
            ("http://prom:9090", "http://prom:9090/api/v1/query"),
            ("http://prom:9090/", "http://prom:9090/api/v1/query"),
            (
                "http://host/prometheus",
                "http://host/prometheus/api/v1/query",
            ),
            (
                "http://host/prometheus/",
                "http://host/prometheus/api/v1/query",
            ),
            (
                "http://host/a/b//?x=1#f",
                "http://host/a/b/api/v1/query?x=1",
            ),
        ];
        for (address, want) in cases {
            let target = endpoint(address)
                .request_target("api/v1/query")
                .expect(address);
            assert_eq!(target.url.as_str(), want, "{address}");
            assert!(target.userinfo.is_none());
        }
    }

    #[test]
    fn userinfo_becomes_credentials_and_leaves_the_url() {
        let target = endpoint("http://al%40ice:p%3Ass@prom:9090/")
            .request_target("api/v1/query")
            .expect("target");
        assert_eq!(target.url.as_str(), "http://prom:9090/api/v1/query");
        let (user, password) = target.userinfo.expect("userinfo");
        assert_eq!(user, "al@ice");
        assert_eq!(password.expose(), "p:ss");
    }

    #[test]
    fn non_http_addresses_are_config_errors() {
        for address in [
            "ftp://prom/",
            "unix:/var/run/prom.sock",
            "file:///etc/passwd",
        ] {
            let result = endpoint(address).request_target("api/v1/query");
            assert!(
                matches!(result, Err(QueryError::Config { .. })),
                "{address}"
            );
        }
    }

    #[test]
    fn endpoint_debug_redacts_secrets() {
        let mut e = endpoint("http://carol:url-pw-321@prom/?api_key=qk-111");
        e.headers.push(("X-Api-Key".into(), Secret::new("key-987")));
        e.auth = Auth::Basic {
            username: "bob".into(),
            password: Secret::new("pw-654"),
        };
        let debug = format!("{e:?}");
        for secret in ["key-987", "pw-654", "url-pw-321", "qk-111"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}
