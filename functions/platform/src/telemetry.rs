//! Logging: one JSON object per line through `tracing`, no colours, with the keys Powertools for
//! AWS Lambda writes (`level`, `message`, `timestamp`, `service`, `cold_start`, `function_name`,
//! `function_request_id`, `xray_trace_id`, `correlation_id`), so one order id or trace id finds every
//! line of that order in every function. Level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.

use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

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
    let format = PowertoolsFormat {
        service: var("POWERTOOLS_SERVICE_NAME", "orders"),
        function_name: var("AWS_LAMBDA_FUNCTION_NAME", "unknown"),
    };
    // Ignoring the error: a subscriber may already be installed (tests call this more than once).
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(format)
        .with_env_filter(filter)
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

/// Writes each event as one JSON object: the Powertools keys, then the fields of the spans it is
/// in (outermost first, inner ones winning) and of the event itself.
pub struct PowertoolsFormat {
    pub service: String,
    pub function_name: String,
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

impl<S, N> FormatEvent<S, N> for PowertoolsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields)
                {
                    spans.push(map);
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
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
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
