//! Every minute (EventBridge Scheduler): unpaid reservations past their deadline are cancelled.
//! The DynamoDB client is built once, at init.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orders_core::config::cancel_deps;
use orders_core::metrics::{EXPIRY_FAILURES, ORDERS_EXPIRED};
use orders_core::service::expire_orders;
use platform::metrics::{Metrics, Unit};
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let metrics = Arc::new(Metrics::from_env());
    let deps = cancel_deps(&aws::config().await, metrics.clone())?;
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let expired = metrics
            .measure(async {
                let expired = expire_orders(&deps, chrono::Utc::now()).await?;
                metrics.add(ORDERS_EXPIRED, Unit::Count, expired.cancelled as f64);
                metrics.add(EXPIRY_FAILURES, Unit::Count, expired.failed as f64);
                Ok::<_, Error>(expired)
            })
            .await?;
        Ok::<_, Error>(serde_json::json!({
            "cancelled": expired.cancelled,
            "notDue": expired.not_due,
            "failed": expired.failed,
        }))
    }))
    .await
}
