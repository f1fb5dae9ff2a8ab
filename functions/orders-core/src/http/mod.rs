//! The orders API's routes, and the one mapping of each use case's outcome to an RFC 9457
//! problem. The HTTP plumbing (claims, bodies, problem+json, the invocation span) is
//! `platform::http`.

pub mod orders;
pub mod products;

use lambda_http::http::{StatusCode, header};
use platform::http::Problem;

use crate::domain::Chargeable;
use crate::service::{AdjustStockError, CancelOrderError, CreateOrderError, PutProductError};

pub use platform::http::{Caller, serve};

/// The scope that lets a user create and cancel their orders.
pub const SCOPE_ORDERS_WRITE: &str = "orders:write";
/// The scope that lets a user read their orders.
pub const SCOPE_ORDERS_READ: &str = "orders:read";
/// The scope that lets a user create and replace products.
pub const SCOPE_PRODUCTS_WRITE: &str = "products:write";

/// No such order, or not the caller's: the same answer, so ids cannot be probed.
pub fn order_not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "order-not-found",
        "Order not found",
        "no such order",
    )
}

pub fn product_not_found(product_id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "product-not-found",
        "Product not found",
        format!("product {product_id} does not exist"),
    )
    .with("productId", product_id)
}

fn busy(attempts: u32) -> Problem {
    Problem::unavailable(1).with_internal(format!("gave up after {attempts} attempts"))
}

impl From<CreateOrderError> for Problem {
    fn from(failure: CreateOrderError) -> Self {
        match failure {
            CreateOrderError::UnknownProduct(id) => product_not_found(id.as_str()),
            CreateOrderError::InsufficientStock {
                product,
                requested,
                available,
            } => Problem::new(
                StatusCode::CONFLICT,
                "insufficient-stock",
                "Insufficient stock",
                format!(
                    "product {product} has {available} left, {} requested",
                    requested.get()
                ),
            )
            .with("productId", product.as_str())
            .with("requested", requested.get())
            .with("available", available.max(0)),
            CreateOrderError::PriceChanged(product) => Problem::new(
                StatusCode::CONFLICT,
                "price-changed",
                "Price changed",
                format!("the price of product {product} changed while the order was placed; retry"),
            )
            .with("productId", product.as_str()),
            CreateOrderError::AboveMaxPerOrder {
                product,
                requested,
                limit,
            } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "max-per-order-exceeded",
                "Too many of one product",
                format!(
                    "at most {limit} of product {product} on one order, {} requested",
                    requested.get()
                ),
            )
            .with("productId", product.as_str())
            .with("maxPerOrder", limit)
            .with("requested", requested.get()),
            CreateOrderError::MixedCurrencies(a, b) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "currency-mismatch",
                "Currency mismatch",
                format!("the lines of one order must share one currency ({a} and {b} given)"),
            ),
            CreateOrderError::NotChargeable(total) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount-not-chargeable",
                "Amount not chargeable",
                format!(
                    "the payment provider cannot charge {total}: totals from {} to {} minor units in {}",
                    Chargeable::MIN_AMOUNT,
                    Chargeable::MAX_AMOUNT,
                    Chargeable::CURRENCIES.join(", ")
                ),
            )
            .with("total", serde_json::json!({"amount": total.amount(), "currency": total.currency().as_str()}))
            .with("minAmount", Chargeable::MIN_AMOUNT)
            .with("maxAmount", Chargeable::MAX_AMOUNT)
            .with("currencies", Chargeable::CURRENCIES.to_vec()),
            CreateOrderError::Unpriceable(e) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "total-out-of-range",
                "Total out of range",
                e.to_string(),
            ),
            CreateOrderError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used before with a different request",
            ),
            CreateOrderError::QuotaExceeded {
                limit,
                retry_after_secs,
            } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota-exceeded",
                "Too many orders",
                format!("at most {limit} orders a minute"),
            )
            .with("limit", limit)
            .with_header(header::RETRY_AFTER, retry_after_secs),
            CreateOrderError::Busy { attempts } => busy(attempts),
            // The use case answers an existing order as a replay; here it is a fault.
            e @ CreateOrderError::OrderExists => Problem::internal(e),
            CreateOrderError::Store(e) => e.into(),
        }
    }
}

impl From<CancelOrderError> for Problem {
    fn from(failure: CancelOrderError) -> Self {
        match failure {
            CancelOrderError::NotFound => order_not_found(),
            CancelOrderError::NotCancellable(order) => Problem::new(
                StatusCode::CONFLICT,
                "order-not-cancellable",
                "Order not cancellable",
                format!(
                    "order {} is {}{}: it can no longer be cancelled (returns and refunds are not handled here)",
                    order.order_id,
                    order.status,
                    if order.shipment_id.is_some() { " and shipped" } else { "" }
                ),
            )
            .with("status", order.status.as_str()),
            CancelOrderError::Busy { attempts } => busy(attempts),
            e @ CancelOrderError::AlreadyApplied => {
                Problem::internal(e)
            }
            CancelOrderError::Store(e) => e.into(),
        }
    }
}

impl From<PutProductError> for Problem {
    fn from(failure: PutProductError) -> Self {
        match failure {
            PutProductError::StockDiffers { product, current } => Problem::new(
                StatusCode::CONFLICT,
                "stock-differs",
                "Stock is not set by a replace",
                format!(
                    "product {product} has {current} in stock; leave `stock` out to replace its \
                     details, and change stock with POST /products/{product}/stock-adjustments"
                ),
            )
            .with("productId", product.as_str())
            .with("stock", current),
            PutProductError::Store(e) => e.into(),
        }
    }
}

impl From<AdjustStockError> for Problem {
    fn from(failure: AdjustStockError) -> Self {
        match failure {
            AdjustStockError::UnknownProduct(id) => product_not_found(id.as_str()),
            AdjustStockError::InsufficientStock {
                product,
                needs,
                available,
            } => Problem::new(
                StatusCode::CONFLICT,
                "insufficient-stock",
                "Insufficient stock",
                format!("product {product} has {available} left, the adjustment takes {needs}"),
            )
            .with("productId", product.as_str())
            .with("requested", needs)
            .with("available", available.max(0)),
            AdjustStockError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used before with a different adjustment",
            ),
            AdjustStockError::Busy { attempts } => busy(attempts),
            e @ AdjustStockError::AdjustmentExists => Problem::internal(e),
            AdjustStockError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use platform::dynamo::StoreError;

    use super::*;
    use crate::domain::{ProductId, Quantity};

    #[test]
    fn each_refusal_has_its_status() {
        let p = || ProductId::parse("p-1").unwrap();
        let cases = [
            (CreateOrderError::UnknownProduct(p()), 404),
            (
                CreateOrderError::InsufficientStock {
                    product: p(),
                    requested: Quantity::new(2).unwrap(),
                    available: 1,
                },
                409,
            ),
            (CreateOrderError::PriceChanged(p()), 409),
            (CreateOrderError::IdempotencyKeyReused, 422),
            (
                CreateOrderError::NotChargeable(
                    crate::domain::Money::new(49, crate::domain::Currency::parse("EUR").unwrap())
                        .unwrap(),
                ),
                422,
            ),
            (
                CreateOrderError::QuotaExceeded {
                    limit: 5,
                    retry_after_secs: 7,
                },
                429,
            ),
            (CreateOrderError::Busy { attempts: 4 }, 503),
            (CreateOrderError::Store(StoreError::Transient), 503),
            (CreateOrderError::Store(StoreError::Cancelled(vec![])), 500),
        ];
        for (failure, status) in cases {
            assert_eq!(Problem::from(failure).status.as_u16(), status);
        }
        assert_eq!(
            Problem::from(CancelOrderError::NotFound).status.as_u16(),
            404
        );
    }
}
