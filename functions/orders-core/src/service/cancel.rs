//! Cancelling an order: the compensating action of create-order, in one transaction.

use chrono::{DateTime, Utc};
use platform::dynamo::StoreError;
use platform::retry::RetryPolicy;

use super::ports::OrderCanceller;
use crate::domain::{Order, OrderId, OrderStatus, UserId};
use crate::events::{OrderEventType, order_event};

/// Everything cancel-order needs, built once at init.
#[derive(Debug, Clone)]
pub struct CancelOrderDeps<S> {
    pub store: S,
    pub event_source: String,
    pub retry: RetryPolicy,
}

/// What a cancel request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The order was cancelled now: its stock is back and `order.cancelled` is in the outbox.
    Now(Order),
    /// It was cancelled before; nothing changed.
    Already(Order),
}

/// Why an order was not cancelled: the one outcome the store, the use case and the HTTP
/// mapping share.
#[derive(Debug, thiserror::Error)]
pub enum CancelOrderError {
    #[error("no such order for this user")]
    NotFound,
    /// The store found the order's status changed since it was read (the use case reads again).
    #[error("the order's status changed since it was read")]
    StatusChanged,
    #[error("a product of the order no longer exists")]
    ProductGone,
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels the caller's order: the compensating action of create-order, in one transaction.
pub async fn cancel_order<S: OrderCanceller>(
    deps: &CancelOrderDeps<S>,
    user: &UserId,
    order_id: OrderId,
    trace: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Cancelled, CancelOrderError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let order = match deps.store.order(order_id).await? {
            Some(stored) if &stored.order.user_id == user => stored.order,
            _ => return Err(CancelOrderError::NotFound),
        };
        if !order.status.is_cancellable() {
            return Ok(Cancelled::Already(order));
        }
        let cancelled = order.with_status(OrderStatus::Cancelled);
        let event = order_event(
            OrderEventType::OrderCancelled,
            &deps.event_source,
            &cancelled,
            now,
        )
        .traced(trace);
        match deps.store.cancel_order(&cancelled, &event).await {
            Ok(()) => return Ok(Cancelled::Now(cancelled)),
            // Someone else changed it (a concurrent cancel, or a confirmation): read it again.
            Err(
                CancelOrderError::StatusChanged | CancelOrderError::Store(StoreError::Transient),
            ) => {}
            Err(other) => return Err(other),
        }
        if attempt >= deps.retry.max_attempts {
            return Err(CancelOrderError::Busy { attempts: attempt });
        }
        tokio::time::sleep(deps.retry.delay(attempt - 1)).await;
    }
}
