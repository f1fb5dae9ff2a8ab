//! The reservation's expiry: PENDING orders not authorized by their deadline are cancelled and
//! their stock comes back (run every minute by a schedule).

use chrono::{DateTime, Utc};
use platform::dynamo::StoreError;

use super::cancel::{CancelBy, CancelOrderDeps, Cancelled, cancel_order};
use super::ports::{DueOrders, OrderCanceller};

/// At most this many orders per run; the next run takes the rest.
pub const EXPIRY_BATCH: usize = 500;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub cancelled: usize,
    /// Confirmed (or cancelled) between the read and the cancel: left alone.
    pub not_due: usize,
    /// Could not be cancelled this run (logged); the next run tries again.
    pub failed: usize,
}

/// Cancels every PENDING order whose deadline has passed at `now`.
pub async fn expire_orders<S: OrderCanceller + DueOrders>(
    deps: &CancelOrderDeps<S>,
    now: DateTime<Utc>,
) -> Result<Expired, StoreError> {
    let mut expired = Expired::default();
    for order_id in deps.store.due_orders(now, EXPIRY_BATCH).await? {
        match cancel_order(deps, &CancelBy::Expiry, order_id, None, now).await {
            Ok(Cancelled::Now(_)) => {
                tracing::info!(%order_id, "the reservation expired: order cancelled, stock back");
                expired.cancelled += 1;
            }
            Ok(Cancelled::Already(_) | Cancelled::NotDue(_)) => expired.not_due += 1,
            Err(error) => {
                tracing::warn!(%order_id, %error, "an expired order could not be cancelled");
                expired.failed += 1;
            }
        }
    }
    Ok(expired)
}
