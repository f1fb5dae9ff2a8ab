//! order-events: applies the events of the order-events queue, each exactly once in effect, in
//! the shared inbox-guarded consumer loop.

use platform::consumer::{SqsBatchResponse, SqsEvent};
use platform::metrics::Metrics;

use crate::domain::Order;
use crate::events::OrderEventType;
use crate::service::apply;
use crate::service::ports::EventInbox;

/// Processes a batch of the order-events queue; answers the messages to retry. `producer` is the
/// `source` order events must come from (the orders service's `EVENT_SOURCE`).
pub async fn consume<S: EventInbox>(
    store: &S,
    producer: &str,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    platform::consumer::consume::<OrderEventType, Order, _, _, _, _>(
        metrics,
        event,
        |event, now| async move { apply(store, producer, &event, now).await },
    )
    .await
}
