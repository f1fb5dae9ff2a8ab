//! The outbox stream → the order-events FIFO queue. The SQS client is built once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::{order_events_queue, relay_dead_letter_queue};
use orders_core::events::OrderOutbox;
use platform::config::process_env;
use platform::metrics::Metrics;
use platform::relay::{SqsPublisher, StreamEvent, relay};
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let publisher = SqsPublisher::new(
        aws::sqs_client(&aws::config().await),
        order_events_queue(process_env())?,
        relay_dead_letter_queue(process_env())?,
    );
    let metrics = Metrics::from_env();
    run(service_fn(|event: LambdaEvent<StreamEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(relay::<OrderOutbox, _>(&publisher, &metrics, event.payload))
                .await,
        )
    }))
    .await
}
