//! [`QueryError`]: every way an instant query can fail, each with the context a reader needs and never a
//! credential; [`FailureClass`] groups them for messages and metrics.

/// Every way an instant query can fail. The engine turns each into a `Failed` measurement with the message as
/// its reason, so messages are lowercase, name the Prometheus address (as
/// [`Endpoint::display_address`](super::Endpoint::display_address) gives it) where one applies, and never
/// contain a secret: texts that come from the server are scrubbed of every configured credential.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The TCP or TLS connection failed (refused, reset, closed before any response, bad certificate, …).
    #[error("cannot reach prometheus at {address}: {reason}")]
    Connect { address: String, reason: String },
    /// The host name of the address did not resolve.
    #[error("cannot resolve host {host:?} of prometheus at {address}")]
    Dns { address: String, host: String },
    /// The client's own per-request guard (connect timeout or whole-request timeout) fired.
    #[error("prometheus at {address} did not answer in time")]
    Timeout { address: String },
    /// A non-2xx HTTP status whose body is Prometheus' JSON error (`detail`, bounded and scrubbed), or a
    /// redirect (never followed).
    #[error("prometheus at {address} answered http {status}: {detail}")]
    Http {
        address: String,
        status: u16,
        detail: String,
    },
    /// A 2xx answer with `"status": "error"`.
    #[error("prometheus rejected the query ({error_type}): {error}")]
    Api { error_type: String, error: String },
    /// The body is not a Prometheus API answer (an HTML page, a proxy's text, an empty body, JSON of another
    /// API): described by status, declared media type and size only, never by its content, because the
    /// address may be a template's choice and the body an internal page.
    #[error("not a Prometheus API answer from {address}: HTTP {status}, {content_type}, {size}")]
    NotPrometheus {
        address: String,
        status: u16,
        content_type: String,
        size: String,
    },
    /// The body ended before the JSON did (connection dropped mid-body, short Content-Length).
    #[error("prometheus answer was truncated: the body ended early")]
    Truncated,
    /// JSON, but not the shape of a Prometheus query answer.
    #[error("prometheus answer is malformed: {detail}")]
    Malformed { detail: String },
    /// Prometheus answered with warnings: the data may be partial, and partial data proves nothing.
    #[error("prometheus answered with warnings (partial data is no proof): {}", warnings.join("; "))]
    Warnings { warnings: Vec<String> },
    /// The body is larger than the client accepts.
    #[error("prometheus answer exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The request could not be authenticated (SigV4 credentials, an OAuth2 token): the reason, never a
    /// credential.
    #[error("authentication failed: {0}")]
    Auth(#[from] super::AuthError),
    /// The client could not be configured for this endpoint: unreadable credential file (named, never its
    /// content), bad CA/certificate/key, invalid address or header.
    #[error("prometheus client configuration is invalid: {detail}")]
    Config { detail: String },
}

pub use crate::failure::FailureClass;

impl QueryError {
    pub fn class(&self) -> FailureClass {
        match self {
            QueryError::Timeout { .. } => FailureClass::Timeout,
            QueryError::Config { .. } => FailureClass::Config,
            QueryError::Auth(error) => error.class(),
            QueryError::Connect { .. }
            | QueryError::Dns { .. }
            | QueryError::Http { .. }
            | QueryError::Api { .. }
            | QueryError::NotPrometheus { .. }
            | QueryError::Truncated
            | QueryError::Malformed { .. }
            | QueryError::Warnings { .. }
            | QueryError::TooLarge { .. } => FailureClass::QueryError,
        }
    }

    /// Replaces every occurrence of each non-empty `secret` in the error's texts with `<redacted>`: a server
    /// or proxy may echo a request header back in its error page, and the message must still be safe to log.
    pub(crate) fn scrubbed(self, secrets: &[&str]) -> QueryError {
        let scrub = |text: String| scrub(text, secrets);
        match self {
            QueryError::Connect { address, reason } => QueryError::Connect {
                address,
                reason: scrub(reason),
            },
            QueryError::Http {
                address,
                status,
                detail,
            } => QueryError::Http {
                address,
                status,
                detail: scrub(detail),
            },
            QueryError::Api { error_type, error } => QueryError::Api {
                error_type: scrub(error_type),
                error: scrub(error),
            },
            QueryError::Malformed { detail } => QueryError::Malformed {
                detail: scrub(detail),
            },
            QueryError::Warnings { warnings } => QueryError::Warnings {
                warnings: warnings.into_iter().map(scrub).collect(),
            },
            QueryError::Config { detail } => QueryError::Config {
                detail: scrub(detail),
            },
            other @ (QueryError::Auth(_)
            | QueryError::Dns { .. }
            | QueryError::Timeout { .. }
            | QueryError::NotPrometheus { .. }
            | QueryError::Truncated
            | QueryError::TooLarge { .. }) => other,
        }
    }
}

fn scrub(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, super::secret::REDACTED);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_group_the_variants() {
        assert_eq!(
            QueryError::Timeout {
                address: "a".into()
            }
            .class(),
            FailureClass::Timeout
        );
        assert_eq!(
            QueryError::Config { detail: "d".into() }.class(),
            FailureClass::Config
        );
        assert_eq!(QueryError::Truncated.class(), FailureClass::QueryError);
        assert_eq!(
            QueryError::Warnings { warnings: vec![] }.class(),
            FailureClass::QueryError
        );
    }

    #[test]
    fn scrubbing_removes_every_secret_from_server_texts() {
        let err = QueryError::Http {
            address: "http://prom:9090/".into(),
            status: 401,
            detail: "bad header Authorization: Bearer tok-123 for user alice:pw-456".into(),
        }
        .scrubbed(&["tok-123", "pw-456", ""]);
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("tok-123") && !text.contains("pw-456"),
            "{text}"
        );
        assert!(text.contains("Bearer <redacted>"), "{text}");
    }

    #[test]
    fn warnings_message_lists_every_warning() {
        let err = QueryError::Warnings {
            warnings: vec!["one".into(), "two".into()],
        };
        assert_eq!(
            err.to_string(),
            "prometheus answered with warnings (partial data is no proof): one; two"
        );
    }
}
