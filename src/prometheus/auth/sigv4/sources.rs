//! The links of the credential chain that read files or ask a service: shared config files, web identity
//! through STS, an assumed role, and the container credentials endpoint (EKS Pod Identity).
use super::*;

/// Static keys of the profile in the shared credentials file, else in the shared config file.
pub(super) fn shared_files(env: &AwsEnvironment) -> Result<Option<AwsCredentials>, AuthError> {
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
pub(super) fn ini_section(text: &str, section: &str) -> BTreeMap<String, String> {
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
pub(super) fn sts_endpoint(settings: &SigV4Settings) -> Result<Url, AuthError> {
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
                crate::prometheus::auth::shown_address(&raw)
            ))
        })
}

pub(super) fn session_name(env: &AwsEnvironment) -> String {
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

pub(super) async fn web_identity(
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

pub(super) async fn assume_role(
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
pub(super) fn sts_credentials(
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
pub(super) fn lifetime_until(expiration: SystemTime) -> Duration {
    expiration
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// The text of the first `<element>…</element>` of a machine-written XML document (STS answers: flat,
/// unprefixed element names, no attributes on the elements read), with the five predefined entities
/// unescaped.
pub(super) fn xml_text(document: &str, element: &str) -> Option<String> {
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
pub(super) fn container_uri(env: &AwsEnvironment) -> Result<Option<Url>, AuthError> {
    let invalid = |raw: &str| {
        AuthError::Settings(format!(
            "sigv4: AWS_CONTAINER_CREDENTIALS_FULL_URI `{}` must be https, or http to a loopback or EKS Pod \
             Identity agent address",
            crate::prometheus::auth::shown_address(raw)
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

pub(super) async fn container(
    env: &AwsEnvironment,
    http: &reqwest::Client,
    uri: Url,
) -> Result<(AwsCredentials, Duration), AuthError> {
    let address = display(&uri);
    let token = container_token(env).await?;
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

/// The container credentials endpoint's authorization token: `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
/// (EKS Pod Identity), else `AWS_CONTAINER_AUTHORIZATION_TOKEN`, else none.
async fn container_token(env: &AwsEnvironment) -> Result<Option<Secret>, AuthError> {
    Ok(
        match (
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
        },
    )
}
