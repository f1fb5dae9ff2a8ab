//! POST /orders. Clients and settings are built once per environment, at init.

use lambda_http::{Error, run, service_fn};
use orders_core::config::{OrderSettings, Tables};
use orders_core::metrics::Metrics;
use orders_core::service::{CreateOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use orders_core::{http, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let tables = Tables::from_env()?;
    let settings = OrderSettings::from_env()?;
    let config = orders_core::aws_config().await;
    let deps = CreateOrderDeps {
        store: DynamoStore::from_config(&config, tables),
        orders_per_minute: settings.orders_per_minute,
        event_source: settings.event_source,
        retry: RetryPolicy::default(),
        metrics: std::sync::Arc::new(Metrics::from_env()),
    };
    run(service_fn(|req| {
        deps.metrics
            .measure(http::serve("create-order", req, |req| {
                http::orders::create(&deps, req)
            }))
    }))
    .await
}
