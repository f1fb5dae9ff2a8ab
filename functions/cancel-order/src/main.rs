//! POST /orders/{orderId}/cancel. Clients and settings are built once per environment, at init.

use lambda_http::{Error, run, service_fn};
use orders_core::config::{Tables, event_source_from_env};
use orders_core::metrics::Metrics;
use orders_core::service::{CancelOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use orders_core::{http, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let deps = CancelOrderDeps {
        store: DynamoStore::from_config(&orders_core::aws_config().await, Tables::from_env()?),
        event_source: event_source_from_env()?,
        retry: RetryPolicy::default(),
    };
    let metrics = Metrics::from_env();
    run(service_fn(|req| {
        metrics.measure(http::serve("cancel-order", req, |req| {
            http::orders::cancel(&deps, req)
        }))
    }))
    .await
}
