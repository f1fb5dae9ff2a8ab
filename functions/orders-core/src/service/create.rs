//! Placing an order: price it from the catalogue, then commit it in one transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use platform::dynamo::StoreError;
use platform::metrics::{Metrics, Unit, names};
use platform::retry::RetryPolicy;
use sha2::{Digest, Sha256};

use super::ports::{NewOrder, OrderWriter, StoredOrder};
use super::terms::{Terms, TermsCache};
use crate::domain::{
    Checkout, Currency, DomainError, IdempotencyKey, Money, Order, OrderId, OrderLines,
    PaymentMethod, PricingError, ProductId, Quantity, ShippingAddress, UserId,
};
use crate::events::{OrderEventType, order_event};

/// Everything create-order needs, built once at init.
#[derive(Debug, Clone)]
pub struct CreateOrderDeps<S> {
    pub store: S,
    pub orders_per_minute: u32,
    pub event_source: String,
    /// How long an unpaid order holds its stock.
    pub reservation: chrono::Duration,
    pub retry: RetryPolicy,
    pub metrics: Arc<Metrics>,
    /// The products' prices and limits as last read (shared by the clones of these deps).
    pub terms: Arc<TermsCache>,
}

/// A create request after validation.
#[derive(Debug, Clone)]
pub struct CreateOrder {
    pub user: UserId,
    pub lines: OrderLines,
    pub payment_method: PaymentMethod,
    pub shipping_address: Option<ShippingAddress>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The X-Ray trace header of the invocation, carried into the event.
    pub trace: Option<String>,
}

/// What a create request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new order was committed.
    New(Order),
    /// The same request was made before with this idempotency key: its order as it is now
    /// (confirmed or cancelled since, perhaps).
    Replayed(Order),
}

/// Why no order was created: the one outcome the store, the use case and the HTTP mapping share.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("product {product} has {available} left, {requested} requested")]
    InsufficientStock {
        product: ProductId,
        requested: Quantity,
        available: i64,
    },
    #[error("at most {limit} of product {product} on one order, {requested} requested")]
    AboveMaxPerOrder {
        product: ProductId,
        requested: Quantity,
        limit: u32,
    },
    #[error("the lines of one order must share one currency ({0} and {1} given)")]
    MixedCurrencies(Currency, Currency),
    #[error("the price of product {0} changed since it was read")]
    PriceChanged(ProductId),
    #[error("the payment provider cannot charge {0}")]
    NotChargeable(Money),
    #[error("the order total is out of range: {0}")]
    Unpriceable(DomainError),
    #[error("the idempotency key was used before with a different request")]
    IdempotencyKeyReused,
    #[error("at most {limit} orders a minute")]
    QuotaExceeded { limit: u32, retry_after_secs: u32 },
    /// The store found an order with this id (the use case answers it as a replay).
    #[error("an order with this id already exists")]
    OrderExists,
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PricingError> for CreateOrderError {
    fn from(e: PricingError) -> Self {
        match e {
            PricingError::UnknownProduct(id) => CreateOrderError::UnknownProduct(id),
            PricingError::MixedCurrencies(a, b) => CreateOrderError::MixedCurrencies(a, b),
            PricingError::NotChargeable(total) => CreateOrderError::NotChargeable(total),
            PricingError::Domain(e) => CreateOrderError::Unpriceable(e),
        }
    }
}

impl CreateOrderError {
    /// The `reason` dimension of a refused order: a few stable values; `None` for the failures
    /// that are the service's, not the request's.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        match self {
            CreateOrderError::InsufficientStock { .. } => Some("insufficient-stock"),
            CreateOrderError::UnknownProduct(_) => Some("unknown-product"),
            CreateOrderError::QuotaExceeded { .. } => Some("quota"),
            CreateOrderError::AboveMaxPerOrder { .. } => Some("max-per-order"),
            CreateOrderError::MixedCurrencies(..)
            | CreateOrderError::PriceChanged(_)
            | CreateOrderError::NotChargeable(_)
            | CreateOrderError::Unpriceable(_)
            | CreateOrderError::IdempotencyKeyReused => Some("other"),
            CreateOrderError::OrderExists
            | CreateOrderError::Busy { .. }
            | CreateOrderError::Store(_) => None,
        }
    }
}

/// The hash of what was asked (lines, payment method, address), stored with an idempotent order
/// to recognise a reused key.
pub fn request_hash(request: &CreateOrder) -> String {
    let address = request
        .shipping_address
        .as_ref()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .unwrap_or_default();
    let canonical = format!(
        "{}\npaymentMethod={}\nshippingAddress={address}",
        request.lines.canonical(),
        request.payment_method
    );
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates an order: prices it from the catalogue, then commits it in one transaction.
///
/// A request with an idempotency key is not looked up first: its order id is derived from the key,
/// so the transaction itself finds a replay (the order's `attribute_not_exists` condition). Only a
/// keyed request that is refused reads the order, so a retry whose first try succeeded is answered
/// with that order even when its products have sold out or changed since.
pub async fn create_order<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    request: &CreateOrder,
    now: DateTime<Utc>,
) -> Result<Created, CreateOrderError> {
    let (order_id, hash) = match &request.idempotency_key {
        Some(key) => (
            OrderId::from_idempotency_key(&request.user, key),
            Some(request_hash(request)),
        ),
        None => (OrderId::new_random(), None),
    };
    match place(deps, request, order_id, hash.as_deref(), now).await {
        Err(CreateOrderError::OrderExists) => match deps.store.order(order_id).await? {
            Some(existing) => replay(existing, &request.user, hash.as_deref()),
            // Seen by the transaction, gone by the read: only a deleted order can do that.
            None => Err(CreateOrderError::Busy { attempts: 1 }),
        },
        Err(refused) if hash.is_some() && refused.refusal_reason().is_some() => {
            match deps.store.order(order_id).await? {
                Some(existing) => replay(existing, &request.user, hash.as_deref()),
                None => Err(refused),
            }
        }
        outcome => outcome,
    }
}

/// Prices the order on its products' terms and commits it, retrying conflicts and throttling.
async fn place<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    request: &CreateOrder,
    order_id: OrderId,
    hash: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Created, CreateOrderError> {
    let ids: Vec<&ProductId> = request.lines.product_ids().collect();
    // Terms read consistently, not remembered: what a refusal must rest on.
    let mut fresh = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (terms, remembered) = terms_of(deps, &ids, fresh).await?;
        let order = match priced(deps, request, order_id, &terms, now) {
            Ok(order) => order,
            // A refusal on remembered terms is never final: read them again, consistently.
            Err(_) if remembered && !fresh => {
                fresh = true;
                continue;
            }
            Err(refused) => return Err(refused),
        };
        let event = order_event(
            OrderEventType::OrderCreated,
            &deps.event_source,
            &order,
            now,
        )
        .traced(request.trace.as_deref());
        let new = NewOrder {
            order: &order,
            request_hash: hash,
            event: &event,
            orders_per_minute: deps.orders_per_minute,
        };
        match deps.store.place_order(&new).await {
            Ok(()) => return Ok(Created::New(order)),
            Err(CreateOrderError::Store(StoreError::Transient)) => {
                if attempt >= deps.retry.max_attempts {
                    return Err(CreateOrderError::Busy { attempts: attempt });
                }
                deps.metrics
                    .add(names::TRANSACTION_RETRIES, Unit::Count, 1.0);
                let pause = deps.retry.delay(attempt - 1);
                tracing::warn!(
                    attempt,
                    pause_ms = pause.as_millis() as u64,
                    "transaction conflict or throttling; retrying"
                );
                tokio::time::sleep(pause).await;
            }
            Err(changed @ CreateOrderError::PriceChanged(_)) => {
                deps.terms.forget(&ids);
                if fresh {
                    return Err(changed);
                }
                tracing::info!("a price changed since it was read; re-reading once");
                fresh = true;
            }
            Err(refused) => {
                // The transaction saw the products as they are: what was remembered of them (a
                // limit, their existence) may be what changed.
                if matches!(
                    refused,
                    CreateOrderError::UnknownProduct(_) | CreateOrderError::AboveMaxPerOrder { .. }
                ) {
                    deps.terms.forget(&ids);
                }
                return Err(refused);
            }
        }
    }
}

/// The terms of the order's products: remembered ones unless `fresh`, the rest read (and then
/// remembered). Also says whether any of them was remembered rather than read now.
async fn terms_of<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    ids: &[&ProductId],
    fresh: bool,
) -> Result<(HashMap<ProductId, Terms>, bool), StoreError> {
    let now = Instant::now();
    let mut terms = if fresh {
        HashMap::new()
    } else {
        deps.terms.lookup(ids, now)
    };
    let remembered = !terms.is_empty();
    let missing: Vec<&ProductId> = ids
        .iter()
        .copied()
        .filter(|id| !terms.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        let read: HashMap<ProductId, Terms> = deps
            .store
            .products(&missing, fresh)
            .await?
            .into_iter()
            .map(|(id, product)| (id, Terms::from(&product)))
            .collect();
        deps.terms
            .remember(read.iter().map(|(id, t)| (id, *t)), now);
        terms.extend(read);
    }
    Ok((terms, remembered))
}

/// The order priced on `terms`, each line within its product's per-order limit (checked again in
/// the transaction's condition: it may change meanwhile).
fn priced<S>(
    deps: &CreateOrderDeps<S>,
    request: &CreateOrder,
    order_id: OrderId,
    terms: &HashMap<ProductId, Terms>,
    now: DateTime<Utc>,
) -> Result<Order, CreateOrderError> {
    for line in request.lines.iter() {
        if let Some(limit) = terms.get(line.product_id).and_then(|t| t.max_per_order)
            && !limit.allows(line.quantity)
        {
            return Err(CreateOrderError::AboveMaxPerOrder {
                product: line.product_id.clone(),
                requested: line.quantity,
                limit: limit.get(),
            });
        }
    }
    let checkout = Checkout {
        payment_method: request.payment_method.clone(),
        shipping_address: request.shipping_address.clone(),
        expires_at: now + deps.reservation,
    };
    Ok(Order::price(
        order_id,
        request.user.clone(),
        &request.lines,
        checkout,
        now,
        |id| terms.get(id).map(|t| t.price),
    )?)
}

fn replay(
    existing: StoredOrder,
    user: &UserId,
    hash: Option<&str>,
) -> Result<Created, CreateOrderError> {
    if &existing.order.user_id == user && existing.request_hash.as_deref() == hash {
        Ok(Created::Replayed(existing.order))
    } else {
        Err(CreateOrderError::IdempotencyKeyReused)
    }
}

/// Seconds until the next minute starts (when a per-minute quota frees up).
pub(crate) fn seconds_to_next_minute(now: DateTime<Utc>) -> u32 {
    use chrono::Timelike;
    60 - now.second().min(59)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_retry_after_points_at_the_next_minute() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:00:45Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(seconds_to_next_minute(t), 15);
    }

    #[test]
    fn only_the_requests_failures_are_refusals() {
        let busy = CreateOrderError::Busy { attempts: 4 };
        assert_eq!(busy.refusal_reason(), None);
        assert_eq!(
            CreateOrderError::Store(StoreError::Transient).refusal_reason(),
            None
        );
        let quota = CreateOrderError::QuotaExceeded {
            limit: 10,
            retry_after_secs: 5,
        };
        assert_eq!(quota.refusal_reason(), Some("quota"));
    }
}
