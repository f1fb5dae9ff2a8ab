//! The orders service's queue (payment and shipment events) → its orders. The DynamoDB client is
//! built once, at init.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::cancel_deps;
use orders_core::consumer::consume;
use orders_core::service::Consumer;
use platform::config::process_env;
use platform::consumer::SqsEvent;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let metrics = Arc::new(Metrics::from_env());
    let deps = cancel_deps(&aws::config().await, metrics.clone())?;
    let consumer = Consumer::from_vars(process_env())?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(consume(&deps, &consumer, &metrics, event.payload))
                .await,
        )
    }))
    .await
}
