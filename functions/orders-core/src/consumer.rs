//! order-events: applies the events of the order-events queue, each exactly once in effect, in
//! the shared inbox-guarded consumer loop.

use platform::consumer::{SqsBatchResponse, SqsEvent};
use platform::metrics::Metrics;

use crate::domain::Order;
use crate::events::OrderEventType;
use crate::service::apply;
use crate::service::ports::EventInbox;

/// Processes a batch of the order-events queue; answers the messages to retry.
pub async fn consume<S: EventInbox>(
    store: &S,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    platform::consumer::consume::<OrderEventType, Order, _, _, _, _>(
        metrics,
        event,
        |event, now| async move { apply(store, &event, now).await },
    )
    .await
}
