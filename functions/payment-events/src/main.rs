//! The payments queue (order events) → the payment provider and the payments ledger. The
//! clients, and the provider's secret key (from Secrets Manager), are read once, at init.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use payments_core::consumer::{Redelivery, consume, settings};
use payments_core::secret::secret_string;
use payments_core::service::PaymentsDeps;
use payments_core::store::{DynamoLedger, LedgerTables};
use payments_core::stripe::{DEFAULT_BASE, Stripe};
use platform::config::{Vars, process_env};
use platform::consumer::SqsEvent;
use platform::metrics::Metrics;
use platform::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let vars = process_env();
    let config = aws::config().await;
    let secret_key = secret_string(&config, &vars.required("PAYMENT_SECRET_ARN")?).await?;
    let base = vars
        .var("PAYMENT_API_BASE")
        .filter(|base| !base.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_BASE.to_owned());
    let (event_source, consumer, producers) = settings(&vars)?;
    let deps = PaymentsDeps {
        ledger: DynamoLedger::new(
            aws::dynamodb_client(&config),
            LedgerTables::from_vars(&vars)?,
        ),
        provider: Stripe::new(&base, secret_key)?,
        event_source,
        consumer,
        producers,
    };
    let redelivery = Redelivery::from_vars(&config, &vars)?;
    let metrics = Metrics::from_env();
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(
            metrics
                .measure(consume(&deps, &redelivery, &metrics, event.payload))
                .await,
        )
    }))
    .await
}
