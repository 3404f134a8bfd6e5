//! Fakes of the managed stores' identity services, each a hyper server on `127.0.0.1:0` stopped on drop:
//! - [`Verifier`]: an AWS SigV4 verifier written from the specification (canonical request, string to sign,
//!   derived key; HMAC and SHA-256 from `ring`, not `aws-sigv4`), proven against AWS' published test
//!   vectors in `tests/fixtures/sigv4/`;
//! - [`HttpFake`]: a server whose answers a closure chooses, recording every raw request; with it a fake
//!   Amazon Managed Service for Prometheus (answers only verified requests), a fake STS
//!   (`AssumeRoleWithWebIdentity`, `AssumeRole`) and a token endpoint that expires its tokens.
// Shared by several test binaries, each of which uses only part of it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::{digest, hmac};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request as received: method, raw path and query, headers in order (names lowercase), body bytes.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `application/x-www-form-urlencoded` parameter `name` of the body.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Parses a `header-signed-request.txt` of the AWS test suite: request line, `Name:value` lines, a
    /// blank line, the body.
    pub fn from_vector(text: &str) -> RawRequest {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let mut parts = request_line.splitn(3, ' ');
        let method = parts.next().expect("method").to_owned();
        let target = parts.next().expect("target");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header line");
                (name.to_ascii_lowercase(), value.to_owned())
            })
            .collect();
        RawRequest {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }
}

/// What a fake answers: status, content type, body.
pub type Answer = (u16, &'static str, String);
type Handler = Arc<dyn Fn(&RawRequest) -> Answer + Send + Sync>;

/// A loopback HTTP/1.1 server answering through a closure and recording every request.
pub struct HttpFake {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    task: JoinHandle<()>,
}

impl HttpFake {
    pub async fn start(
        handler: impl Fn(&RawRequest) -> Answer + Send + Sync + 'static,
    ) -> HttpFake {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, recorded) = (handler.clone(), recorded.clone());
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (handler, recorded) = (handler.clone(), recorded.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = Limited::new(body, 1024 * 1024)
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let raw = RawRequest {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                query: parts.uri.query().unwrap_or("").to_owned(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(n, v)| {
                                        (
                                            n.as_str().to_owned(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                            };
                            let (status, content_type, body) = handler(&raw);
                            recorded.lock().expect("requests").push(raw);
                            let response = Response::builder()
                                .status(status)
                                .header("content-type", content_type)
                                .body(Full::new(Bytes::from(body)))
                                .expect("response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpFake {
            address,
            requests,
            task,
        }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/", self.address)).expect("url")
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for HttpFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- SigV4

/// A key the verifier accepts: the secret of an access key id, and the session token it was issued with.
#[derive(Debug, Clone)]
pub struct Key {
    pub secret: String,
    pub session_token: Option<String>,
}

/// An AWS SigV4 (`AWS4-HMAC-SHA256`, signature in the `Authorization` header) verifier for one region and
/// service, written from AWS' specification ("Create a canonical request", "Create a string to sign",
/// "Calculate the signature") for the request shapes of the test suite's header cases.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub region: String,
    pub service: String,
    pub keys: BTreeMap<String, Key>,
}

/// The parts of one verification, for comparing with a test vector.
#[derive(Debug)]
pub struct Verification {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl Verifier {
    /// Verifies `request`; `Err` says why it is refused.
    pub fn verify(&self, request: &RawRequest) -> Result<Verification, String> {
        let authorization = request
            .header("authorization")
            .ok_or("no Authorization header")?;
        let rest = authorization
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("not AWS4-HMAC-SHA256")?;
        let mut fields = BTreeMap::new();
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or("malformed Authorization")?;
            fields.insert(k.to_owned(), v.to_owned());
        }
        let credential = fields.get("Credential").ok_or("no Credential")?;
        let signed_headers = fields.get("SignedHeaders").ok_or("no SignedHeaders")?;
        let signature = fields.get("Signature").ok_or("no Signature")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(format!("malformed credential scope {credential}"));
        };
        if region != self.region || service != self.service {
            return Err(format!(
                "scope {region}/{service} is not {}/{}",
                self.region, self.service
            ));
        }
        let key = self
            .keys
            .get(access_key_id)
            .ok_or_else(|| format!("unknown access key {access_key_id}"))?;
        let amz_date = request.header("x-amz-date").ok_or("no X-Amz-Date")?;
        if !amz_date.starts_with(date) {
            return Err("X-Amz-Date and the credential scope disagree".into());
        }
        let signed: Vec<&str> = signed_headers.split(';').collect();
        for required in ["host", "x-amz-date"] {
            if !signed.contains(&required) {
                return Err(format!("{required} is not signed"));
            }
        }
        match (&key.session_token, request.header("x-amz-security-token")) {
            (None, None) => {}
            (Some(want), Some(got)) if want == got => {
                if !signed.contains(&"x-amz-security-token") {
                    return Err("x-amz-security-token is not signed".into());
                }
            }
            _ => return Err("the session token does not belong to the access key".into()),
        }
        let canonical_request = canonical_request(request, &signed);
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical_request.as_bytes())
        );
        let mut signing_key = format!("AWS4{}", key.secret).into_bytes();
        for part in [date, region, service, "aws4_request"] {
            signing_key = hmac_sha256(&signing_key, part.as_bytes());
        }
        let expected = hex(&hmac_sha256(&signing_key, string_to_sign.as_bytes()));
        if &expected != signature {
            return Err("the signature does not match".into());
        }
        Ok(Verification {
            canonical_request,
            string_to_sign,
            signature: expected,
        })
    }
}

/// A verifier for `service` in us-east-1 that knows `keys` (access key id, secret, session token).
pub fn verifier(service: &str, keys: &[(&str, &str, Option<&str>)]) -> Verifier {
    Verifier {
        region: "us-east-1".into(),
        service: service.into(),
        keys: keys
            .iter()
            .map(|(id, secret, token)| {
                (
                    id.to_string(),
                    Key {
                        secret: secret.to_string(),
                        session_token: token.map(str::to_owned),
                    },
                )
            })
            .collect(),
    }
}

/// The canonical request of `request` over the `signed` headers (lowercase, sorted as given).
pub fn canonical_request(request: &RawRequest, signed: &[&str]) -> String {
    let payload = request
        .header("x-amz-content-sha256")
        .map(str::to_owned)
        .unwrap_or_else(|| sha256_hex(&request.body));
    let headers: String = signed
        .iter()
        .map(|name| {
            let values: Vec<String> = request
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload}",
        request.method,
        canonical_uri(&request.path),
        canonical_query(&request.query),
        signed.join(";")
    )
}

/// The path, normalized (`.`/`..` segments and empty segments removed) and each segment URI-encoded again
/// (the double encoding of every service but S3).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = path.ends_with('/') && !segments.is_empty();
    let mut uri = format!(
        "/{}",
        segments
            .iter()
            .map(|s| uri_encode(s))
            .collect::<Vec<_>>()
            .join("/")
    );
    if trailing {
        uri.push('/');
    }
    uri
}

/// The query's parameters decoded, re-encoded strictly, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (uri_encode(&decode(k)), uri_encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 encoding of everything but the unreserved characters, uppercase hex.
fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fake Amazon Managed Service for Prometheus: every request is verified; a verified one gets a vector
/// of one fresh sample `1`, any other a 403 as AMP answers it (a JSON `message`, not a Prometheus answer).
pub async fn fake_amp(verifier: Verifier) -> HttpFake {
    HttpFake::start(move |request| match verifier.verify(request) {
        Ok(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs_f64();
            (
                200,
                "application/json",
                format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{now},"1"]}}]}}}}"#
                ),
            )
        }
        Err(why) => (
            403,
            "application/json",
            format!(r#"{{"message":"The request signature we calculated does not match ({why})"}}"#),
        ),
    })
    .await
}

/// An STS answer with `credentials` valid for an hour.
pub fn sts_answer(action: &str, access_key_id: &str, key: &Key) -> Answer {
    let expiration = chrono::Utc::now() + chrono::Duration::hours(1);
    (
        200,
        "text/xml",
        format!(
            r#"<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <{action}Result>
    <Credentials>
      <AccessKeyId>{access_key_id}</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
  </{action}Result>
</{action}Response>"#,
            key.secret,
            key.session_token.as_deref().unwrap_or_default(),
            expiration.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
}

/// An STS error answer.
pub fn sts_error(status: u16, code: &str, message: &str) -> Answer {
    (
        status,
        "text/xml",
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
        ),
    )
}
