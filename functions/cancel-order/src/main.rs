//! POST /orders/{orderId}/cancel. Clients and settings are built once per environment, at init.

use std::sync::Arc;

use lambda_http::Error;
use orders_core::config::cancel_deps;
use orders_core::http;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let metrics = Arc::new(Metrics::from_env());
    let deps = cancel_deps(&aws::config().await, metrics.clone())?;
    platform::http::run("cancel-order", &metrics, |req| {
        http::orders::cancel(&deps, req)
    })
    .await
}
