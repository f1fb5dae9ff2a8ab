//! Cancelling an order: the compensating action of create-order, in one transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use platform::dynamo::StoreError;
use platform::metrics::{Metrics, Unit};
use platform::retry::RetryPolicy;

use super::ports::OrderCanceller;
use crate::domain::{Order, OrderId, ProductId, UserId};
use crate::events::{OrderEventType, order_event};
use crate::metrics::STOCK_NOT_RESTORED;

/// Everything cancel-order needs, built once at init.
#[derive(Debug, Clone)]
pub struct CancelOrderDeps<S> {
    pub store: S,
    pub event_source: String,
    pub retry: RetryPolicy,
    pub metrics: Arc<Metrics>,
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
    /// The store found these products of the order gone (the use case cancels without them).
    #[error("products of the order no longer exist: {0:?}")]
    ProductGone(Vec<ProductId>),
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels the caller's order: the compensating action of create-order, in one transaction.
///
/// A line whose product was deleted from the catalogue since cannot be restocked: the order is
/// cancelled all the same (the customer's cancel must not fail on the shop's catalogue), that
/// line's units are counted in `StockNotRestored` and logged with the product id.
pub async fn cancel_order<S: OrderCanceller>(
    deps: &CancelOrderDeps<S>,
    user: &UserId,
    order_id: OrderId,
    trace: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Cancelled, CancelOrderError> {
    let mut attempt = 0;
    let mut gone = BTreeSet::new();
    loop {
        attempt += 1;
        let order = match deps.store.order(order_id).await? {
            Some(stored) if &stored.order.user_id == user => stored.order,
            _ => return Err(CancelOrderError::NotFound),
        };
        if !order.status.is_cancellable() {
            return Ok(Cancelled::Already(order));
        }
        let cancelled = order.cancelled(now);
        let event = order_event(
            OrderEventType::OrderCancelled,
            &deps.event_source,
            &cancelled,
            now,
        )
        .traced(trace);
        match deps.store.cancel_order(&cancelled, &event, &gone).await {
            Ok(()) => {
                not_restocked(deps, &cancelled, &gone);
                return Ok(Cancelled::Now(cancelled));
            }
            // Deleted products: cancel again without their lines (no pause: nothing is busy).
            Err(CancelOrderError::ProductGone(products)) if !products.is_empty() => {
                gone.extend(products);
                continue;
            }
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

fn not_restocked<S>(deps: &CancelOrderDeps<S>, order: &Order, gone: &BTreeSet<ProductId>) {
    for line in order.items.iter().filter(|l| gone.contains(&l.product_id)) {
        let units = line.quantity.get();
        tracing::warn!(
            product_id = %line.product_id,
            units,
            "the product no longer exists: the order is cancelled without restocking this line"
        );
        deps.metrics
            .add(STOCK_NOT_RESTORED, Unit::Count, f64::from(units));
    }
}
