//! Logging: JSON lines through `tracing`, no colours, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once per process. Every event carries the fields of the span it is
/// in (the invocation span holds the request id, user id, order id and outcome).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|l| lambda_level(&l));
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Ignoring the error: a subscriber may already be installed (tests call this more than once).
    let _ = tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
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

#[cfg(test)]
mod tests {
    use super::lambda_level;

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
}
