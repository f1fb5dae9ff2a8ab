//! shipment-events: applies the order events of the fulfillment queue, each once in effect, in
//! the shared consumer loop.

use platform::config::{ConfigError, Vars};
use platform::consumer::{Producers, SqsBatchResponse, SqsEvent};
use platform::metrics::Metrics;

use crate::events::{OrderEventType, OrderFacts};
use crate::service::{FulfillmentDeps, Shipments, apply};

/// Processes a batch of the fulfillment queue; answers the messages to retry.
pub async fn consume<S: Shipments>(
    deps: &FulfillmentDeps<S>,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    platform::consumer::consume::<OrderEventType, OrderFacts, _, _, _, _>(
        metrics,
        event,
        |event, now| async move { apply(deps, &event, now).await },
    )
    .await
}

impl<S> FulfillmentDeps<S> {
    /// The consumer as template.yaml configures it: `EVENT_SOURCE`, `CONSUMER_NAME`,
    /// `EVENT_PRODUCERS`.
    pub fn from_vars(shipments: S, vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            shipments,
            event_source: vars.required("EVENT_SOURCE")?,
            consumer: vars.required("CONSUMER_NAME")?,
            producers: Producers::parse(&vars.required("EVENT_PRODUCERS")?).map_err(|reason| {
                ConfigError::Invalid {
                    name: "EVENT_PRODUCERS",
                    reason,
                }
            })?,
        })
    }
}
