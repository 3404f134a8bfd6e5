//! The HTTP side of a query: reqwest errors explained without their secrets, bodies read with a cap, and
//! the connection pools per TLS configuration.
use super::*;

/// Maps a failure to get response headers. The URL is dropped from the error first: it may hold a key.
pub(super) fn send_error(error: reqwest::Error, address: &str) -> QueryError {
    let error = error.without_url();
    if let Some(failure) = find_source::<ResolveFailure>(&error) {
        return QueryError::Dns {
            address: address.to_owned(),
            host: failure.host.clone(),
        };
    }
    if error.is_timeout() {
        return QueryError::Timeout {
            address: address.to_owned(),
        };
    }
    QueryError::Connect {
        address: address.to_owned(),
        reason: excerpt(&source_chain(&error)),
    }
}

pub(super) fn find_source<'a, T: StdError + 'static>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The messages of `error`'s causes, outermost first, skipping one already contained in the previous.
pub(super) fn source_chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = error.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !parts
            .last()
            .is_some_and(|previous| previous.contains(&text))
        {
            parts.push(text);
        }
        current = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    parts.join(": ")
}

/// Reads a 2xx body, stopping as soon as it would exceed `limit`.
pub(super) async fn read_capped(
    response: &mut Response,
    limit: usize,
    address: &str,
) -> Result<Vec<u8>, QueryError> {
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return Err(QueryError::TooLarge { limit });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(QueryError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) if error.is_timeout() => {
                return Err(QueryError::Timeout {
                    address: address.to_owned(),
                })
            }
            Err(_) => return Err(QueryError::Truncated),
        }
    }
}

/// Reads at most `limit` bytes of a body whose only use is to explain a failure; a broken body yields what
/// arrived.
pub(super) async fn read_prefix(response: &mut Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// One connection pool: rustls, the given roots and identity, no redirects (a custom header holding an API
/// key must not follow a redirect to another host), our resolver.
pub(super) fn build_pool(tls: &TlsConfig) -> Result<reqwest::Client, QueryError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(SystemResolver))
        .user_agent(USER_AGENT);
    if let Some(ca_file) = &tls.ca_file {
        let pem = read_pem_file(ca_file, "ca", &tls.files)?;
        let roots = Certificate::from_pem_bundle(&pem).map_err(|_| QueryError::Config {
            detail: format!(
                "ca file {} is not a PEM certificate bundle",
                ca_file.display()
            ),
        })?;
        if roots.is_empty() {
            return Err(QueryError::Config {
                detail: format!("ca file {} holds no certificate", ca_file.display()),
            });
        }
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let mut pem = read_pem_file(cert_file, "certificate", &tls.files)?;
            pem.push(b'\n');
            pem.extend(read_pem_file(key_file, "key", &tls.files)?);
            let identity = Identity::from_pem(&pem).map_err(|_| QueryError::Config {
                detail: format!(
                    "certificate file {} and key file {} do not hold a PEM certificate and private key",
                    cert_file.display(),
                    key_file.display()
                ),
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(QueryError::Config {
                detail: "a client certificate needs both cert_file and key_file".to_owned(),
            })
        }
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|error| QueryError::Config {
        detail: format!(
            "cannot build the http client: {}",
            excerpt(&source_chain(&error))
        ),
    })
}

pub(super) fn read_pem_file(
    path: &Path,
    what: &str,
    access: &FileAccess,
) -> Result<Vec<u8>, QueryError> {
    files::read_bounded(path, access, MAX_PEM_FILE_BYTES).map_err(|problem| QueryError::Config {
        detail: format!("{what} file {}: {problem}", path.display()),
    })
}
