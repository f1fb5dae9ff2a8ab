//! Use cases: what happens between a validated request and the store, independent of HTTP.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::OrderStatus;
use crate::domain::{
    Currency, IdempotencyKey, Order, OrderId, OrderLines, PricingError, ProductId, Quantity, UserId,
};
use crate::events::{CloudEvent, EventType};
use crate::store::{
    CancelError, CreateOrderError, NewOrder, OrderCanceller, OrderWriter, StoreError, StoredOrder,
    as_created,
};

/// Bounded retries with full jitter for conflicts and throttling, which the SDK does not retry
/// inside a cancelled transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_millis(400),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`: a random time up to base · 2^attempt, capped.
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Everything create-order needs, built once at init.
#[derive(Debug, Clone)]
pub struct CreateOrderDeps<S> {
    pub store: S,
    pub orders_per_minute: u32,
    pub event_source: String,
    pub retry: RetryPolicy,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// A create request after validation.
#[derive(Debug, Clone)]
pub struct CreateOrder {
    pub user: UserId,
    pub lines: OrderLines,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The X-Ray trace header of the invocation, carried into the event.
    pub trace: Option<String>,
}

/// What a create request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new order was committed.
    New(Order),
    /// The same request was made before with this idempotency key: its order, as first answered.
    Replayed(Order),
}

/// Why no order was created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderFailure {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("product {product} has {available} left, {requested} requested")]
    InsufficientStock {
        product: ProductId,
        requested: Quantity,
        available: i64,
    },
    #[error("the lines of one order must share one currency ({0} and {1} given)")]
    MixedCurrencies(Currency, Currency),
    #[error("the price of product {0} kept changing")]
    PriceChanged(ProductId),
    #[error("the idempotency key was used before with a different request")]
    IdempotencyKeyReused,
    #[error("at most {limit} orders a minute")]
    QuotaExceeded { limit: u32, retry_after_secs: u32 },
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error("the order total is out of range: {0}")]
    Unpriceable(crate::domain::DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash of what was asked, stored with an idempotent order to recognise a reused key.
pub fn request_hash(lines: &OrderLines) -> String {
    let digest = Sha256::digest(lines.canonical().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates an order: prices it from the catalogue, then commits it in one transaction.
pub async fn create_order<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    request: &CreateOrder,
    now: DateTime<Utc>,
) -> Result<Created, CreateOrderFailure> {
    let (order_id, hash) = match &request.idempotency_key {
        Some(key) => (
            OrderId::from_idempotency_key(&request.user, key),
            Some(request_hash(&request.lines)),
        ),
        None => (OrderId::new_random(), None),
    };
    if hash.is_some()
        && let Some(existing) = deps.store.order(order_id).await?
    {
        return replay(existing, &request.user, hash.as_deref());
    }

    let ids: Vec<&ProductId> = request.lines.product_ids().collect();
    let mut price_rechecked = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let products = deps.store.products(&ids, price_rechecked).await?;
        let order = Order::price(order_id, request.user.clone(), &request.lines, now, |id| {
            products.get(id).map(|p| p.price)
        })
        .map_err(|e| match e {
            PricingError::UnknownProduct(id) => CreateOrderFailure::UnknownProduct(id),
            PricingError::MixedCurrencies(a, b) => CreateOrderFailure::MixedCurrencies(a, b),
            PricingError::Domain(e) => CreateOrderFailure::Unpriceable(e),
        })?;
        let event = CloudEvent::new(EventType::OrderCreated, &deps.event_source, &order, now)
            .traced(request.trace.as_deref());
        let new = NewOrder {
            order: &order,
            request_hash: hash.as_deref(),
            event: &event,
            orders_per_minute: deps.orders_per_minute,
        };
        let failure = match deps.store.create_order(&new).await {
            Ok(()) => return Ok(Created::New(order)),
            Err(failure) => failure,
        };
        match failure {
            CreateOrderError::OrderExists => {
                // A concurrent request with the same key won the race; answer what it created.
                return match deps.store.order(order_id).await? {
                    Some(existing) => replay(existing, &request.user, hash.as_deref()),
                    None => Err(CreateOrderFailure::Busy { attempts: attempt }),
                };
            }
            CreateOrderError::ProductMissing(id) => {
                return Err(CreateOrderFailure::UnknownProduct(id));
            }
            CreateOrderError::InsufficientStock {
                product,
                requested,
                available,
            } => {
                return Err(CreateOrderFailure::InsufficientStock {
                    product,
                    requested,
                    available,
                });
            }
            CreateOrderError::PriceChanged(id) if price_rechecked => {
                return Err(CreateOrderFailure::PriceChanged(id));
            }
            CreateOrderError::PriceChanged(_) => {
                tracing::info!("a price changed since it was read; re-reading once");
                price_rechecked = true;
            }
            CreateOrderError::QuotaExceeded => {
                return Err(CreateOrderFailure::QuotaExceeded {
                    limit: deps.orders_per_minute,
                    retry_after_secs: seconds_to_next_minute(now),
                });
            }
            CreateOrderError::Transient | CreateOrderError::Store(StoreError::Transient) => {
                if attempt >= deps.retry.max_attempts {
                    return Err(CreateOrderFailure::Busy { attempts: attempt });
                }
                deps.metrics.add(
                    crate::metrics::names::TRANSACTION_RETRIES,
                    crate::metrics::Unit::Count,
                    1.0,
                );
                let pause = deps.retry.delay(attempt - 1);
                tracing::warn!(
                    attempt,
                    pause_ms = pause.as_millis() as u64,
                    "transaction conflict or throttling; retrying"
                );
                tokio::time::sleep(pause).await;
            }
            CreateOrderError::Store(e) => return Err(e.into()),
        }
    }
}

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

#[derive(Debug, thiserror::Error)]
pub enum CancelFailure {
    #[error("no such order for this user")]
    NotFound,
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Cancel(#[from] CancelError),
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
) -> Result<Cancelled, CancelFailure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let order = match deps.store.order(order_id).await? {
            Some(stored) if &stored.order.user_id == user => stored.order,
            _ => return Err(CancelFailure::NotFound),
        };
        // Every status is named: a new one (say SHIPPED) must decide here whether it can be cancelled.
        match order.status {
            OrderStatus::Cancelled => return Ok(Cancelled::Already(order)),
            OrderStatus::Created | OrderStatus::Confirmed => {}
        }
        let cancelled = Order {
            status: OrderStatus::Cancelled,
            ..order
        };
        let event = CloudEvent::new(
            EventType::OrderCancelled,
            &deps.event_source,
            &cancelled,
            now,
        )
        .traced(trace);
        let retryable = match deps.store.cancel_order(&cancelled, &event).await {
            Ok(()) => return Ok(Cancelled::Now(cancelled)),
            // Someone else changed it (a concurrent cancel, or a confirmation): read it again.
            Err(CancelError::StatusChanged) => true,
            Err(CancelError::Store(StoreError::Transient)) => true,
            Err(other) => return Err(other.into()),
        };
        if retryable && attempt >= deps.retry.max_attempts {
            return Err(CancelFailure::Busy { attempts: attempt });
        }
        tokio::time::sleep(deps.retry.delay(attempt - 1)).await;
    }
}

fn replay(
    existing: StoredOrder,
    user: &UserId,
    hash: Option<&str>,
) -> Result<Created, CreateOrderFailure> {
    if &existing.order.user_id == user && existing.request_hash.as_deref() == hash {
        Ok(Created::Replayed(as_created(&existing.order)))
    } else {
        Err(CreateOrderFailure::IdempotencyKeyReused)
    }
}

fn seconds_to_next_minute(now: DateTime<Utc>) -> u32 {
    use chrono::Timelike;
    60 - now.second().min(59)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_is_bounded_by_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        for attempt in 0..40 {
            assert!(policy.delay(attempt) <= Duration::from_millis(50));
        }
        assert!(policy.delay(0) <= Duration::from_millis(10));
    }

    #[test]
    fn quota_retry_after_points_at_the_next_minute() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:00:45Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(seconds_to_next_minute(t), 15);
    }
}
