//! order-events: applies the events of the order-events queue, each exactly once in effect, in
//! the shared inbox-guarded consumer loop.

use platform::consumer::{SqsBatchResponse, SqsEvent};
use platform::metrics::Metrics;

use crate::config::event_source;
use crate::domain::Order;
use crate::events::OrderEventType;
use crate::service::ports::EventInbox;
use crate::service::{Consumer, apply};
use platform::config::{ConfigError, Vars};

/// Processes a batch of the order-events queue; answers the messages to retry.
pub async fn consume<S: EventInbox>(
    store: &S,
    consumer: &Consumer,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    platform::consumer::consume::<OrderEventType, Order, _, _, _, _>(
        metrics,
        event,
        |event, now| async move { apply(store, consumer, &event, now).await },
    )
    .await
}

impl Consumer {
    /// The consumer as template.yaml configures order-events: `CONSUMER_NAME` (its inbox
    /// records') and `EVENT_SOURCE` (the producer it takes order events from).
    pub fn from_vars(vars: impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            name: vars.required("CONSUMER_NAME")?,
            producer: event_source(&vars)?,
        })
    }
}
