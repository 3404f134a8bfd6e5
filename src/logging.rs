//! hclog-compatible JSON log lines on stderr.
//!
//! go-plugin's host parses each stderr line that is JSON as an hclog entry (go-plugin `log_entry.go`
//! `parseJSON`, see `docs/wire/go-plugin-netrpc.md`): `@level`, `@message` and `@timestamp`
//! must be strings (the host asserts their types and panics otherwise) and the timestamp must use exactly
//! Go's layout `2006-01-02T15:04:05.000000Z07:00`; every other key is shown as a key/value pair.
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";
/// The `@module` every line carries.
pub const MODULE: &str = "rollouts-guardrails";

/// Installs the global subscriber: hclog JSON on stderr, filtered by `RUST_LOG` (default `info`).
/// Calling it twice keeps the first subscriber.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(HclogLayer::new(std::io::stderr))
        .try_init();
}

/// A layer writing one hclog JSON line per event to `W`.
pub struct HclogLayer<W> {
    writer: W,
}

impl<W> HclogLayer<W> {
    pub fn new(writer: W) -> Self {
        HclogLayer { writer }
    }
}

impl<S, W> Layer<S> for HclogLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = FieldCollector::default();
        event.record(&mut fields);
        let line = format_line(
            *event.metadata().level(),
            &fields.message,
            &chrono::Utc::now(),
            fields.fields,
        );
        // One write per line, so concurrent events do not interleave.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

/// hclog's level names.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// One JSON line (with its newline). Event fields become top-level keys; the `@` keys are always strings
/// and win over a field of the same name.
fn format_line(
    level: Level,
    message: &str,
    at: &chrono::DateTime<chrono::Utc>,
    fields: Map<String, Value>,
) -> String {
    let mut object = fields;
    object.insert("@level".into(), Value::String(level_name(level).into()));
    object.insert("@message".into(), Value::String(message.into()));
    object.insert(
        "@timestamp".into(),
        Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    );
    object.insert("@module".into(), Value::String(MODULE.into()));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    fields: Map<String, Value>,
}

impl FieldCollector {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers.
        let value = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.put(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn timestamp_has_go_layout_with_six_fractional_digits() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let line = format_line(Level::WARN, "hi", &at, Map::new());
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["@timestamp"], "2024-01-02T03:04:05.123456Z");
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "hi");
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    }

    #[test]
    fn events_become_one_json_line_with_fields_and_string_at_keys() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(HclogLayer::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                stream = 7u64,
                reason = "bad \"quote\"\nnewline",
                "rpc failed"
            );
        });
        let out = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1);
        let v: Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(v["@level"], "error");
        assert_eq!(v["@message"], "rpc failed");
        assert_eq!(v["stream"], 7);
        assert_eq!(v["reason"], "bad \"quote\"\nnewline");
        assert!(v["@timestamp"].is_string() && v["@module"].is_string());
    }
}
