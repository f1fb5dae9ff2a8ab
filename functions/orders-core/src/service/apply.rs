//! Applying an order event from the queue: its effect on the order, once.

use chrono::{DateTime, Utc};
use platform::consumer::Applied;
use platform::dynamo::StoreError;
use platform::events::EventType;

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
    /// Events of this type come from one producer only.
    #[error("a {event_type} event from {producer:?}, not from {expected:?}")]
    UnexpectedSource {
        event_type: &'static str,
        producer: String,
        expected: String,
    },
    #[error("the event is about order {subject} but carries order {data}")]
    SubjectMismatch { subject: OrderId, data: OrderId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who consumes order events: the name its inbox records carry, and the `source` the events
/// must come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    pub producer: String,
}

/// Applies one event: `order.created` confirms the order; `order.cancelled` is only recorded.
/// Only events of the orders service (`source` = the consumer's producer) about the order they
/// carry are applied; the envelope's id was checked against its subject and type when parsed.
pub async fn apply<S: EventInbox>(
    store: &S,
    consumer: &Consumer,
    event: &OrderEvent,
    now: DateTime<Utc>,
) -> Result<Applied<OrderStatus>, ApplyError> {
    let producer = consumer.producer.as_str();
    let order_id =
        subject_order(event).ok_or_else(|| ApplyError::Subject(event.subject.clone()))?;
    if event.source != producer {
        return Err(ApplyError::UnexpectedSource {
            event_type: event.event_type.as_str(),
            producer: event.source.clone(),
            expected: producer.to_owned(),
        });
    }
    if event.data.order_id != order_id {
        return Err(ApplyError::SubjectMismatch {
            subject: order_id,
            data: event.data.order_id,
        });
    }
    match event.event_type {
        OrderEventType::OrderCreated => store.confirm(&consumer.name, order_id, event, now).await,
        OrderEventType::OrderCancelled => store.record(&consumer.name, event, now).await,
    }
}
