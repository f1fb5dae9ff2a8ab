//! PUT /products/{productId}. Clients are built once per environment, at init.

use lambda_http::Error;
use orders_core::config::Tables;
use orders_core::http;
use orders_core::store::DynamoStore;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store = DynamoStore::from_config(&aws::config().await, Tables::from_env()?);
    platform::http::run("put-product", &Metrics::from_env(), |req| {
        http::products::put(&store, req)
    })
    .await
}
