//! Every hour (EventBridge Scheduler): authorizations a saga stranded are counted for the alarm.
//! The DynamoDB client is built once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use payments_core::metrics::AUTHORIZATIONS_STRANDED;
use payments_core::service::stranded_authorizations;
use payments_core::store::{DynamoLedger, LedgerTables};
use platform::config::{Vars, process_env};
use platform::metrics::{Metrics, Unit};
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let vars = process_env();
    let config = aws::config().await;
    let ledger = DynamoLedger::new(
        aws::dynamodb_client(&config),
        LedgerTables::from_vars(&vars)?,
    );
    let after = chrono::Duration::hours(i64::from(vars.positive("STRANDED_AFTER_HOURS")?));
    let metrics = Metrics::from_env();
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let stranded = metrics
            .measure(async {
                let stranded = stranded_authorizations(&ledger, chrono::Utc::now(), after).await?;
                metrics.add(AUTHORIZATIONS_STRANDED, Unit::Count, stranded.len() as f64);
                Ok::<_, Error>(stranded)
            })
            .await?;
        Ok::<_, Error>(serde_json::json!({ "stranded": stranded.len() }))
    }))
    .await
}
