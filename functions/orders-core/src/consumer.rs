//! order-events: applies the payment and shipment events of the orders service's queue to their
//! orders, each exactly once in effect, in the shared inbox-guarded consumer loop.

use platform::config::{ConfigError, Vars};
use platform::consumer::{Producers, SqsBatchResponse, SqsEvent};
use platform::metrics::Metrics;

use crate::events::{SagaEventType, SagaFacts};
use crate::service::ports::OrderSaga;
use crate::service::{CancelOrderDeps, Consumer, apply};

/// Processes a batch of the order-events queue; answers the messages to retry.
pub async fn consume<S: OrderSaga>(
    deps: &CancelOrderDeps<S>,
    consumer: &Consumer,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    platform::consumer::consume::<SagaEventType, SagaFacts, _, _, _, _>(
        metrics,
        event,
        |event, now| async move { apply(deps, consumer, &event, now).await },
    )
    .await
}

impl Consumer {
    /// The consumer as template.yaml configures order-events: `CONSUMER_NAME` (its inbox
    /// records') and `EVENT_PRODUCERS` (which service produces each domain's events,
    /// `payment=payments;shipment=fulfillment`).
    pub fn from_vars(vars: impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            name: vars.required("CONSUMER_NAME")?,
            producers: producers(&vars)?,
        })
    }
}

/// `EVENT_PRODUCERS`, parsed.
pub fn producers(vars: &impl Vars) -> Result<Producers, ConfigError> {
    Producers::parse(&vars.required("EVENT_PRODUCERS")?).map_err(|reason| ConfigError::Invalid {
        name: "EVENT_PRODUCERS",
        reason,
    })
}
