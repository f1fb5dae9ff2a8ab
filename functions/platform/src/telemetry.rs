//! Logging: one JSON object per line through `tracing`, no colours, with the keys Powertools for
//! AWS Lambda writes (`level`, `message`, `timestamp`, `service`, `cold_start`, `function_name`,
//! `function_request_id`, `xray_trace_id`, `correlation_id`), so one order id or trace id finds every
//! line of that order in every function. Level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
//!
//! The lines are written by [`PowertoolsLayer`], a `tracing-subscriber` layer over the registry,
//! rather than by the `fmt` layer with its JSON fields: those keep each span's fields as JSON text
//! and parse and print it again at every `Span::record` and every line (four records and a line per
//! request were ~5 % of create-order's CPU per order). This layer keeps a span's fields as a JSON
//! map in the span and writes a line with one `write` to standard output.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber once per process.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|l| lambda_level(&l));
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let layer = PowertoolsLayer {
        service: var("POWERTOOLS_SERVICE_NAME", "orders"),
        function_name: var("AWS_LAMBDA_FUNCTION_NAME", "unknown"),
        sink: Arc::new(|line: &[u8]| {
            let _ = std::io::stdout().lock().write_all(line);
        }),
    };
    // Ignoring the error: a subscriber may already be installed (tests call this more than once).
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

/// Lambda's application log levels as `tracing` levels (Lambda's FATAL is tracing's ERROR).
fn lambda_level(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        _ => None,
    }
}

/// Where the lines go, one call per line with its newline.
pub type LineSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Writes each event as one JSON object on standard output: the Powertools keys, then the fields
/// of the spans it is in (outermost first, inner ones winning) and of the event itself.
pub struct PowertoolsLayer {
    pub service: String,
    pub function_name: String,
    /// Where each line goes, newline included (standard output; tests read it).
    pub sink: LineSink,
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_string()));
    }
}

/// The request id of the first invocation this process served: its lines are the cold start's.
static FIRST_REQUEST: OnceLock<String> = OnceLock::new();

/// Assembles one log line from span and event fields (the formatter's pure part).
pub fn log_line(
    level: &str,
    service: &str,
    function_name: &str,
    span_fields: Vec<Map<String, Value>>,
    mut event_fields: Map<String, Value>,
) -> Map<String, Value> {
    let mut fields = Map::new();
    for span in span_fields {
        fields.extend(span);
    }
    let message = event_fields
        .remove("message")
        .unwrap_or(Value::String(String::new()));
    fields.extend(event_fields);
    // The runtime's span names them requestId / xrayTraceId; a message's own trace wins.
    let request_id = fields.remove("requestId");
    let runtime_trace = fields.remove("xrayTraceId");
    let mut line = Map::new();
    line.insert("level".into(), level.into());
    line.insert("message".into(), message);
    line.insert(
        "timestamp".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    line.insert("service".into(), service.into());
    let cold = request_id
        .as_ref()
        .and_then(Value::as_str)
        .map(|id| FIRST_REQUEST.get_or_init(|| id.to_owned()) == id)
        .unwrap_or(false);
    line.insert("cold_start".into(), cold.into());
    line.insert("function_name".into(), function_name.into());
    if let Some(id) = request_id {
        line.insert("function_request_id".into(), id);
    }
    match fields.remove("xray_trace_id").or(runtime_trace) {
        Some(trace) => line.insert("xray_trace_id".into(), trace),
        None => None,
    };
    if let Some(order) = fields.get("order_id").cloned() {
        line.insert("correlation_id".into(), order);
    }
    line.extend(fields);
    line
}

/// A span's fields so far, kept in the span (recorded values overwrite or add members).
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for PowertoolsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    spans.push(fields.clone());
                }
            }
        }
        let mut event_fields = Map::new();
        event.record(&mut JsonVisitor(&mut event_fields));
        let level = event.metadata().level().as_str();
        let line = log_line(
            level,
            &self.service,
            &self.function_name,
            spans,
            event_fields,
        );
        // One write of the whole line (a log line is never interleaved with another's).
        let mut text = Value::Object(line).to_string().into_bytes();
        text.push(b'\n');
        (self.sink)(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// The lines `f` logs through the layer, parsed.
    fn logged(f: impl FnOnce()) -> Vec<Value> {
        let lines = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let layer = PowertoolsLayer {
            service: "orders".into(),
            function_name: "create-order".into(),
            sink: Arc::new(move |line: &[u8]| sink.lock().unwrap().extend_from_slice(line)),
        };
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_line_carries_its_spans_fields_as_recorded_when_it_is_written() {
        let lines = logged(|| {
            let runtime = tracing::info_span!("invocation", requestId = "req-7");
            let _runtime = runtime.enter();
            let request = tracing::info_span!(
                "request",
                operation = "create-order",
                status = tracing::field::Empty,
                outcome = "pending",
            );
            let _request = request.enter();
            tracing::info!(cause = "none", "before");
            request.record("status", 201);
            request.record("outcome", "ok");
            tracing::info!("request done");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let [before, done] = [&lines[0], &lines[1]];
        assert_eq!(before["message"], "before");
        assert_eq!(before["cause"], "none");
        assert_eq!(before["outcome"], "pending");
        assert!(before.get("status").is_none(), "{before}");
        assert_eq!(done["message"], "request done");
        assert_eq!(done["status"], 201);
        assert_eq!(done["outcome"], "ok");
        assert_eq!(done["operation"], "create-order");
        assert_eq!(done["function_request_id"], "req-7");
        assert_eq!(done["level"], "INFO");
        assert!(
            done.get("cause").is_none(),
            "an event's fields are its own: {done}"
        );
    }

    #[test]
    fn an_inner_span_wins_over_an_outer_one() {
        let lines = logged(|| {
            let outer = tracing::info_span!("batch", order_id = "o-outer");
            let _outer = outer.enter();
            let inner = tracing::info_span!("message", order_id = "o-inner");
            let _inner = inner.enter();
            tracing::warn!("applied");
        });
        assert_eq!(lines[0]["order_id"], "o-inner");
        assert_eq!(lines[0]["correlation_id"], "o-inner");
        assert_eq!(lines[0]["level"], "WARN");
    }

    #[test]
    fn every_lambda_log_level_maps_to_a_tracing_level() {
        for (lambda, tracing) in [
            ("TRACE", "trace"),
            ("DEBUG", "debug"),
            ("INFO", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
        ] {
            assert_eq!(lambda_level(lambda), Some(tracing));
        }
        assert_eq!(lambda_level(""), None);
        assert_eq!(lambda_level("LOUD"), None);
    }

    #[test]
    fn lines_carry_the_powertools_keys() {
        let runtime = map(json!({"requestId": "req-1", "xrayTraceId": "Root=1-a-b"}));
        let request = map(json!({"order_id": "o-1", "user_id": "alice", "status": 201}));
        let event = map(json!({"message": "request done"}));
        let line = log_line(
            "INFO",
            "orders",
            "create-order",
            vec![runtime, request],
            event,
        );
        for key in [
            "level",
            "message",
            "timestamp",
            "service",
            "cold_start",
            "function_name",
            "function_request_id",
            "xray_trace_id",
            "correlation_id",
        ] {
            assert!(line.contains_key(key), "{key} missing from {line:?}");
        }
        assert_eq!(line["message"], "request done");
        assert_eq!(line["function_request_id"], "req-1");
        assert_eq!(line["xray_trace_id"], "Root=1-a-b");
        assert_eq!(line["correlation_id"], "o-1");
        assert_eq!(line["user_id"], "alice");
        assert!(!line.contains_key("requestId"));
    }

    #[test]
    fn a_message_trace_wins_over_the_invocation_trace() {
        let runtime = map(json!({"requestId": "req-9", "xrayTraceId": "Root=1-consumer"}));
        let message = map(json!({"xray_trace_id": "Root=1-order", "order_id": "o-2"}));
        let line = log_line(
            "INFO",
            "orders",
            "order-events",
            vec![runtime, message],
            Map::new(),
        );
        assert_eq!(line["xray_trace_id"], "Root=1-order");
    }

    #[test]
    fn only_the_first_invocation_is_the_cold_start() {
        let first = FIRST_REQUEST.get_or_init(|| "first".to_owned()).clone();
        let cold = log_line(
            "INFO",
            "s",
            "f",
            vec![map(json!({"requestId": first}))],
            Map::new(),
        );
        let warm = log_line(
            "INFO",
            "s",
            "f",
            vec![map(json!({"requestId": "later"}))],
            Map::new(),
        );
        assert_eq!(cold["cold_start"], true);
        assert_eq!(warm["cold_start"], false);
    }
}
