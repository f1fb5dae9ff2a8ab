//! The outbox stream → the events FIFO topic. The SNS and SQS clients are built once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::events_publisher;
use platform::config::process_env;
use platform::metrics::Metrics;
use platform::relay::SharedOutbox;
use platform::relay::{StreamEvent, relay};
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::config().await;
    let publisher = events_publisher(&config, &process_env())?;
    let metrics = Metrics::from_env();
    run(service_fn(|event: LambdaEvent<StreamEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(relay::<SharedOutbox, _>(
                    &publisher,
                    &metrics,
                    event.payload,
                ))
                .await,
        )
    }))
    .await
}
