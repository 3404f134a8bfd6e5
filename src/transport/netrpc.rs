//! Go `net/rpc` server framing over gob, on one yamux stream.
//!
//! Spec: `docs/wire/go-plugin-netrpc.md` (golang/go `src/net/rpc/server.go`: `ServeCodec`,
//! `readRequest`, `sendResponse`). A request is a gob `Request{ServiceMethod, Seq}` followed by the argument;
//! a reply is `Response{ServiceMethod, Seq, Error}` followed by the result (`struct{}` on error). Requests
//! are served concurrently, one task each; replies are written whole, under one lock, so each header stays
//! next to its body and type definitions precede their first use in stream order.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use bytes::BytesMut;
use futures::future::BoxFuture;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use crate::codec::gob::{Decoder, Encoder, Struct, StructType, Type, Value};

use super::mux::{StreamReader, StreamWriter};

/// A method's outcome: the reply's gob type and value, or the error text the Go client sees.
pub type Reply = Result<(Type, Value), String>;

/// One net/rpc service (Go's `rpc.Register` receiver).
pub trait Service: Send + Sync + 'static {
    /// The service name before the dot in `Service.Method`.
    fn name(&self) -> &'static str;
    /// Whether `method` exists (Go answers "can't find method" otherwise).
    fn has_method(&self, method: &str) -> bool;
    /// Runs `method` with its decoded argument.
    fn call(self: Arc<Self>, method: String, argument: Value) -> BoxFuture<'static, Reply>;
}

/// Counts calls in flight across every stream, so shutdown can drain them.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held while a call runs and its reply is written.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Resolves when no call is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// `rpc.Response`, defined once per stream by the encoder.
static RESPONSE_TYPE: LazyLock<Type> = LazyLock::new(|| {
    Type::Struct(Arc::new(StructType {
        name: "Response".into(),
        fields: vec![
            ("ServiceMethod".into(), Type::String),
            ("Seq".into(), Type::Uint),
            ("Error".into(), Type::String),
        ],
    }))
});

/// Go's `struct{}`: the reply body of Ping/Quit and of every error reply.
pub fn empty_struct() -> (Type, Value) {
    (
        Type::Struct(Arc::new(StructType {
            name: String::new(),
            fields: Vec::new(),
        })),
        Value::Struct(Struct {
            type_name: String::new(),
            fields: Vec::new(),
        }),
    )
}

/// The write side of a stream: the encoder's state and the stream, used by one reply at a time.
struct ReplyWriter {
    encoder: Encoder,
    stream: StreamWriter,
}

/// Serves net/rpc on one stream until the peer half-closes it, sends an undecodable header, or the session
/// ends; then waits for this stream's calls to finish and half-closes our side.
pub async fn serve(
    mut reader: StreamReader,
    writer: StreamWriter,
    mut buffered: BytesMut,
    services: Vec<Arc<dyn Service>>,
    in_flight: Arc<InFlight>,
) {
    let stream_id = reader.id();
    let services: HashMap<&'static str, Arc<dyn Service>> =
        services.into_iter().map(|s| (s.name(), s)).collect();
    let replies = Arc::new(Mutex::new(ReplyWriter {
        encoder: Encoder::new(),
        stream: writer,
    }));
    let mut decoder = Decoder::new();
    let mut calls = JoinSet::new();
    // An undecodable request ends the stream with RST rather than FIN: the host may still be writing the rest
    // of it, and after a FIN that write would wait forever for window we never grant.
    let mut undecodable = false;
    loop {
        let header = match next_value(&mut reader, &mut decoder, &mut buffered).await {
            Ok(Some(header)) => header,
            Ok(None) => break,
            Err(reason) => {
                tracing::warn!(stream = stream_id, %reason, "rpc: server cannot decode request, resetting the stream");
                undecodable = true;
                break;
            }
        };
        let service_method = header
            .field("ServiceMethod")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let seq = match header.field("Seq") {
            Some(Value::Uint(seq)) => *seq,
            _ => 0,
        };
        let body = match next_value(&mut reader, &mut decoder, &mut buffered).await {
            Ok(Some(body)) => Ok(body),
            Ok(None) => break,
            Err(BodyError::Recoverable(reason)) => Err(reason),
            Err(BodyError::Fatal(reason)) => {
                tracing::warn!(stream = stream_id, %reason, "rpc: undecodable request body, resetting the stream");
                undecodable = true;
                break;
            }
        };
        let guard = in_flight.enter();
        let target = route(&services, &service_method);
        let replies = replies.clone();
        calls.spawn(async move {
            let reply = match (target, body) {
                (Err(error), _) | (Ok(_), Err(error)) => Err(error),
                (Ok((service, method)), Ok(argument)) => service.call(method, argument).await,
            };
            write_reply(&replies, &service_method, seq, reply).await;
            drop(guard);
        });
        // Reap finished calls so a long-lived stream does not accumulate their handles.
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    let replies = replies.lock().await;
    if undecodable {
        replies.stream.reset();
    } else {
        replies.stream.close();
    }
}

/// Go's `readRequestHeader` lookup, with its exact error texts.
fn route(
    services: &HashMap<&'static str, Arc<dyn Service>>,
    service_method: &str,
) -> Result<(Arc<dyn Service>, String), String> {
    let Some(dot) = service_method.rfind('.') else {
        return Err(format!(
            "rpc: service/method request ill-formed: {service_method}"
        ));
    };
    let (service_name, method) = (&service_method[..dot], &service_method[dot + 1..]);
    let Some(service) = services.get(service_name) else {
        return Err(format!("rpc: can't find service {service_method}"));
    };
    if !service.has_method(method) {
        return Err(format!("rpc: can't find method {service_method}"));
    }
    Ok((service.clone(), method.to_string()))
}

async fn write_reply(replies: &Mutex<ReplyWriter>, service_method: &str, seq: u64, reply: Reply) {
    let (error, (body_type, body)) = match reply {
        Ok(body) => (String::new(), body),
        Err(error) => (error, empty_struct()),
    };
    let header = response_header(service_method, seq, error);
    let mut writer = replies.lock().await;
    let mut bytes = Vec::new();
    if let Err(e) = writer.encoder.encode(&RESPONSE_TYPE, &header, &mut bytes) {
        tracing::error!(%service_method, error = %e, "rpc: cannot encode the response header");
        return;
    }
    if let Err(e) = writer.encoder.encode(&body_type, &body, &mut bytes) {
        // The header is already in `bytes` (and its definitions in the encoder's state), so a body must
        // follow: send the error form, whose type always encodes.
        tracing::error!(%service_method, error = %e, "rpc: cannot encode the reply body");
        bytes.clear();
        let header = response_header(
            service_method,
            seq,
            format!("rpc: cannot encode the reply: {e}"),
        );
        let (empty_type, empty) = empty_struct();
        if writer
            .encoder
            .encode(&RESPONSE_TYPE, &header, &mut bytes)
            .is_err()
            || writer
                .encoder
                .encode(&empty_type, &empty, &mut bytes)
                .is_err()
        {
            return;
        }
    }
    if let Err(e) = writer.stream.write_all(&bytes).await {
        tracing::debug!(%service_method, error = %e, "rpc: reply not delivered");
    }
}

/// net/rpc's `Response` header: the method answered, the request's sequence number and the error text
/// (empty on success).
fn response_header(service_method: &str, seq: u64, error: String) -> Value {
    Value::Struct(Struct {
        type_name: "Response".into(),
        fields: vec![
            (
                "ServiceMethod".into(),
                Value::String(service_method.to_string()),
            ),
            ("Seq".into(), Value::Uint(seq)),
            ("Error".into(), Value::String(error)),
        ],
    })
}

enum BodyError {
    /// The value's messages were consumed; the stream is still in sync.
    Recoverable(String),
    Fatal(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Recoverable(reason) | BodyError::Fatal(reason) => f.write_str(reason),
        }
    }
}

/// The next whole gob value on the stream; `Ok(None)` at the end of the stream.
async fn next_value(
    reader: &mut StreamReader,
    decoder: &mut Decoder,
    buffered: &mut BytesMut,
) -> Result<Option<Value>, BodyError> {
    loop {
        match decoder.decode(buffered) {
            Ok(Some(value)) => return Ok(Some(value)),
            Ok(None) => {}
            // Go's gob errors all read "gob: …"; a Go host sees ours the same way.
            Err(e) if e.is_recoverable() => {
                return Err(BodyError::Recoverable(format!("gob: {e}")))
            }
            Err(e) => return Err(BodyError::Fatal(format!("gob: {e}"))),
        }
        match reader.read().await {
            Some(chunk) => buffered.extend_from_slice(&chunk),
            None => return Ok(None),
        }
    }
}
