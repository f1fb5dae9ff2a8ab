//! The outbox stream → the order-events FIFO queue. The SQS client is built once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::order_events_queue_from_env;
use orders_core::metrics::Metrics;
use orders_core::relay::{SqsPublisher, StreamEvent, relay};
use orders_core::telemetry;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = orders_core::aws_config().await;
    let publisher = SqsPublisher::new(
        orders_core::sqs_client(&config),
        order_events_queue_from_env()?,
    );
    let metrics = Metrics::from_env();
    run(service_fn(|event: LambdaEvent<StreamEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(relay(&publisher, &metrics, event.payload))
                .await,
        )
    }))
    .await
}
