//! Logging: JSON lines through `tracing`, no colours, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once per process. Every event carries the fields of the span it is
/// in (the invocation span holds the request id, user id, order id and outcome).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .filter(|l| !l.is_empty())
        .map(|l| l.to_ascii_lowercase());
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
