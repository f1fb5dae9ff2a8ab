//! POST /orders/{orderId}/cancel. Clients and settings are built once per environment, at init.

use std::sync::Arc;

use lambda_http::Error;
use orders_core::config::{Tables, event_source};
use orders_core::http;
use orders_core::service::{CancelOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use platform::config::process_env;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let metrics = Arc::new(Metrics::from_env());
    let deps = CancelOrderDeps {
        store: DynamoStore::from_config(&aws::config().await, Tables::from_env()?),
        event_source: event_source(&process_env())?,
        retry: RetryPolicy::default(),
        metrics: metrics.clone(),
    };
    platform::http::run("cancel-order", &metrics, |req| {
        http::orders::cancel(&deps, req)
    })
    .await
}
