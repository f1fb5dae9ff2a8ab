//! POST /products/{productId}/stock-adjustments. Clients are built once per environment, at init.

use lambda_http::Error;
use orders_core::config::Tables;
use orders_core::http;
use orders_core::service::{AdjustStockDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let deps = AdjustStockDeps {
        store: DynamoStore::from_config(&aws::config().await, Tables::from_env()?),
        retry: RetryPolicy::default(),
    };
    platform::http::run("adjust-stock", &Metrics::from_env(), |req| {
        http::products::adjust(&deps, req)
    })
    .await
}
