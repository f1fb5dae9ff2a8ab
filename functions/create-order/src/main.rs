//! POST /orders. Clients and settings are built once per environment, at init.

use std::sync::Arc;

use lambda_http::Error;
use orders_core::config::{OrderSettings, Tables};
use orders_core::http;
use orders_core::service::{CreateOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let tables = Tables::from_env()?;
    let settings = OrderSettings::from_env()?;
    let deps = CreateOrderDeps {
        store: DynamoStore::from_config(&aws::config().await, tables),
        orders_per_minute: settings.orders_per_minute,
        event_source: settings.event_source,
        reservation: settings.reservation,
        retry: RetryPolicy::default(),
        metrics: Arc::new(Metrics::from_env()),
        terms: Default::default(),
    };
    platform::http::run("create-order", &deps.metrics, |req| {
        http::orders::create(&deps, req)
    })
    .await
}
