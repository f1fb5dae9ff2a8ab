//! Applying an order event from the queue: its effect on the order, once.

use chrono::{DateTime, Utc};
use platform::consumer::Applied;
use platform::dynamo::StoreError;

use super::ports::EventInbox;
use crate::domain::{OrderId, OrderStatus};
use crate::events::{OrderEvent, OrderEventType, subject_order};

/// Why an event could not be applied (the message is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the subject {0:?} is not an order id")]
    Subject(String),
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies one event: `order.created` confirms the order; `order.cancelled` is only recorded.
pub async fn apply<S: EventInbox>(
    store: &S,
    event: &OrderEvent,
    now: DateTime<Utc>,
) -> Result<Applied<OrderStatus>, ApplyError> {
    let order_id =
        subject_order(event).ok_or_else(|| ApplyError::Subject(event.subject.clone()))?;
    match event.event_type {
        OrderEventType::OrderCreated => store.confirm(order_id, event, now).await,
        OrderEventType::OrderCancelled => store.record(event, now).await,
    }
}
