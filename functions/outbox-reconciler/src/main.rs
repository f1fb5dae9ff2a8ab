//! Every few minutes (EventBridge Scheduler): outbox events no consumer recorded are sent again.
//! The clients are built once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::{Tables, event_consumers, events_publisher, reconcile_after};
use platform::config::process_env;
use platform::metrics::Metrics;
use platform::reconcile::Reconciler;
use platform::relay::SharedOutbox;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::config().await;
    let tables = Tables::from_env()?;
    let reconciler = Reconciler {
        client: aws::dynamodb_client(&config),
        outbox_table: tables.outbox,
        inbox_table: tables.inbox,
        consumers: event_consumers(&process_env())?,
        after: reconcile_after(process_env())?,
    };
    let publisher = events_publisher(&config, &process_env())?;
    let metrics = Metrics::from_env();
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let run = reconciler.run::<SharedOutbox, _>(&publisher, &metrics, chrono::Utc::now());
        let report = metrics.measure(run).await?;
        Ok::<_, Error>(serde_json::json!({
            "hours": report.hours,
            "recorded": report.recorded,
            "republished": report.republished,
            "givenUp": report.given_up,
        }))
    }))
    .await
}
