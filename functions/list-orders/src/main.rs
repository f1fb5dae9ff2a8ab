//! GET /orders. Clients are built once per environment, at init.

use lambda_http::{Error, run, service_fn};
use orders_core::config::Tables;
use orders_core::metrics::Metrics;
use orders_core::store::DynamoStore;
use orders_core::{http, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store = DynamoStore::from_config(&orders_core::aws_config().await, Tables::from_env()?);
    let metrics = Metrics::from_env();
    run(service_fn(|req| {
        metrics.measure(http::serve("list-orders", req, |req| {
            http::orders::list(&store, req)
        }))
    }))
    .await
}
