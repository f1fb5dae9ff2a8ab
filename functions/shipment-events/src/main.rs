//! The fulfillment queue (order events) → the shipments table. The DynamoDB client is built once,
//! at init.

use fulfillment_core::consumer::consume;
use fulfillment_core::service::FulfillmentDeps;
use fulfillment_core::store::{DynamoShipments, ShipmentTables};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use platform::config::process_env;
use platform::consumer::SqsEvent;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let vars = process_env();
    let config = aws::config().await;
    let shipments = DynamoShipments::new(
        aws::dynamodb_client(&config),
        ShipmentTables::from_vars(&vars)?,
    );
    let deps = FulfillmentDeps::from_vars(shipments, &vars)?;
    let metrics = Metrics::from_env();
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(consume(&deps, &metrics, event.payload))
                .await,
        )
    }))
    .await
}
