//! Cancelling an order — by its owner, a declined payment or the reservation's expiry: the
//! compensating action of create-order, in one transaction that restores the stock.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use platform::dynamo::{Consumed, StoreError};
use platform::metrics::{Metrics, Unit};
use platform::retry::RetryPolicy;

use super::ports::{ChangeOrderError, Deadline, OrderCanceller, OrderChange};
use crate::domain::{CancellationReason, Order, OrderId, OrderStatus, ProductId, UserId};
use crate::events::{OrderEventType, order_event};
use crate::metrics::STOCK_NOT_RESTORED;

/// Everything a cancel needs, built once at init (cancel-order, expire-orders, order-events).
#[derive(Debug, Clone)]
pub struct CancelOrderDeps<S> {
    pub store: S,
    pub event_source: String,
    pub retry: RetryPolicy,
    pub metrics: Arc<Metrics>,
}

/// Who cancels, which decides what may be cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelBy {
    /// The order's owner: any open order not shipped yet.
    Customer(UserId),
    /// The reservation's expiry: a PENDING order whose deadline has passed.
    Expiry,
    /// A declined payment (the consumed `payment.declined`, recorded with the cancel): a
    /// PENDING order.
    Decline {
        consumed: Consumed,
        decline_code: Option<String>,
    },
}

impl CancelBy {
    fn reason(&self) -> CancellationReason {
        match self {
            CancelBy::Customer(_) => CancellationReason::Customer,
            CancelBy::Expiry => CancellationReason::Expired,
            CancelBy::Decline { .. } => CancellationReason::PaymentDeclined,
        }
    }

    /// Whether the order may be cancelled this way at `now`.
    fn may_cancel(&self, order: &Order, now: DateTime<Utc>) -> bool {
        match self {
            CancelBy::Customer(_) => order.is_cancellable(),
            CancelBy::Expiry => order.status == OrderStatus::Pending && order.is_expired(now),
            CancelBy::Decline { .. } => order.status == OrderStatus::Pending,
        }
    }
}

/// What a cancel came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The order was cancelled now: its stock is back and `order.cancelled` is in the outbox.
    Now(Order),
    /// It was cancelled before; nothing changed.
    Already(Order),
    /// The expiry or a decline found the order not theirs to cancel (confirmed, not yet due).
    NotDue(Order),
}

/// Why an order was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelOrderError {
    #[error("no such order for this user")]
    NotFound,
    /// Shipped or fulfilled: past the point a cancel can undo (returns are out of scope).
    #[error("order {} is {} and can no longer be cancelled", .0.order_id, .0.status)]
    NotCancellable(Box<Order>),
    /// The consumed event that caused the cancel was applied before.
    #[error("the event was applied before")]
    AlreadyApplied,
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels an order in one transaction with its restock and `order.cancelled`.
///
/// A line whose product was deleted from the catalogue since cannot be restocked: the order is
/// cancelled all the same (a cancel must not fail on the shop's catalogue), that line's units are
/// counted in `StockNotRestored` and logged with the product id.
pub async fn cancel_order<S: OrderCanceller>(
    deps: &CancelOrderDeps<S>,
    by: &CancelBy,
    order_id: OrderId,
    trace: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Cancelled, CancelOrderError> {
    let mut attempt = 0;
    let mut gone = BTreeSet::new();
    loop {
        attempt += 1;
        let stored = match (deps.store.order(order_id).await?, by) {
            (Some(stored), CancelBy::Customer(user)) if &stored.order.user_id != user => {
                return Err(CancelOrderError::NotFound);
            }
            (Some(stored), _) => stored,
            (None, _) => return Err(CancelOrderError::NotFound),
        };
        let order = stored.order;
        if order.status == OrderStatus::Cancelled {
            return Ok(Cancelled::Already(order));
        }
        if !by.may_cancel(&order, now) {
            return match by {
                CancelBy::Customer(_) => Err(CancelOrderError::NotCancellable(Box::new(order))),
                _ => Ok(Cancelled::NotDue(order)),
            };
        }
        let from = order.status;
        let mut cancelled = order.cancelled(now, by.reason());
        let mut consumed = None;
        if let CancelBy::Decline {
            consumed: event,
            decline_code,
        } = by
        {
            cancelled = cancelled.with_payment(
                crate::domain::PaymentStatus::Declined,
                None,
                decline_code.clone(),
            );
            consumed = Some(event);
        }
        let event = order_event(
            OrderEventType::OrderCancelled,
            &deps.event_source,
            &cancelled,
            now,
        )
        .traced(trace);
        let change = OrderChange {
            order: &cancelled,
            request_hash: stored.request_hash.as_deref(),
            from,
            unshipped: true,
            deadline: match by {
                CancelBy::Expiry => Deadline::Passed(now),
                _ => Deadline::Any,
            },
            restock: cancelled
                .items
                .iter()
                .filter(|line| !gone.contains(&line.product_id))
                .collect(),
            event: Some(&event),
            consumed,
        };
        match deps.store.change_order(&change).await {
            Ok(()) => {
                not_restocked(deps, &cancelled, &gone);
                return Ok(Cancelled::Now(cancelled));
            }
            // Deleted products: cancel again without their lines (no pause: nothing is busy).
            Err(ChangeOrderError::ProductGone(products)) if !products.is_empty() => {
                gone.extend(products);
                continue;
            }
            Err(ChangeOrderError::AlreadyApplied) => return Err(CancelOrderError::AlreadyApplied),
            // Someone else changed it (a concurrent cancel, a confirmation): read it again.
            Err(ChangeOrderError::Changed | ChangeOrderError::Store(StoreError::Transient)) => {}
            Err(ChangeOrderError::ProductGone(_)) => {}
            Err(ChangeOrderError::Store(e)) => return Err(e.into()),
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
