//! The order-events queue → the orders' effects. The DynamoDB client is built once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::Tables;
use orders_core::consumer::consume;
use orders_core::service::Consumer;
use orders_core::store::DynamoStore;
use platform::config::process_env;
use platform::consumer::SqsEvent;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store = DynamoStore::from_config(&aws::config().await, Tables::from_env()?);
    let consumer = Consumer::from_vars(process_env())?;
    let metrics = Metrics::from_env();
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(consume(&store, &consumer, &metrics, event.payload))
                .await,
        )
    }))
    .await
}
