//! The catalogue: replacing a product's details never touches its stock, and stock changes only by
//! a delta, one conditional transaction that never takes it below zero and applies a retried
//! adjustment once.

use chrono::{DateTime, Utc};
use platform::dynamo::StoreError;
use platform::retry::RetryPolicy;
use uuid::Uuid;

use super::ports::StockKeeper;
use crate::domain::{
    AdjustmentReason, IdempotencyKey, Product, ProductId, Stock, StockAdjustment, StockDelta,
    UserId,
};

/// What a PUT came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    Created(Product),
    /// The details were replaced; the stock is as it was.
    Replaced(Product),
}

/// Why a PUT changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutProductError {
    /// The body gave a stock other than the product's: a replace never sets stock.
    #[error("product {product} has {current} in stock; a replace never sets stock")]
    StockDiffers { product: ProductId, current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything adjust-stock needs, built once at init.
#[derive(Debug, Clone)]
pub struct AdjustStockDeps<S> {
    pub store: S,
    pub retry: RetryPolicy,
}

/// An adjustment request after validation.
#[derive(Debug, Clone)]
pub struct AdjustStock {
    pub product: ProductId,
    pub delta: StockDelta,
    pub reason: AdjustmentReason,
    pub by: UserId,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// What an adjustment came to: the adjustment and the product's stock just after it was read
/// back (orders taken in between are already counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjusted {
    New(StockAdjustment, Stock),
    /// The same adjustment was made before with this idempotency key; nothing changed now.
    Replayed(StockAdjustment, Stock),
}

/// Why the stock was not adjusted: shared by the store, the use case and the HTTP mapping.
#[derive(Debug, thiserror::Error)]
pub enum AdjustStockError {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("product {product} has {available} left, the adjustment takes {needs}")]
    InsufficientStock {
        product: ProductId,
        needs: i64,
        available: i64,
    },
    /// The store found an adjustment with this id (the use case answers it as a replay).
    #[error("an adjustment with this id already exists")]
    AdjustmentExists,
    #[error("the idempotency key was used before with a different adjustment")]
    IdempotencyKeyReused,
    #[error("the database stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adjusts a product's stock by a delta: the adjustment record and the stock change are one
/// transaction, so with an idempotency key a retry after a lost answer applies it once.
pub async fn adjust_stock<S: StockKeeper>(
    deps: &AdjustStockDeps<S>,
    request: &AdjustStock,
    now: DateTime<Utc>,
) -> Result<Adjusted, AdjustStockError> {
    let adjustment = StockAdjustment {
        product_id: request.product.clone(),
        adjustment_id: match &request.idempotency_key {
            Some(key) => key.to_string(),
            None => Uuid::now_v7().to_string(),
        },
        delta: request.delta,
        reason: request.reason.clone(),
        adjusted_by: request.by.clone(),
        adjusted_at: crate::domain::rfc3339_millis::truncate(now),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match deps.store.adjust_stock(&adjustment).await {
            Ok(()) => {
                let stock = stock_now(&deps.store, &adjustment.product_id).await?;
                return Ok(Adjusted::New(adjustment, stock));
            }
            Err(AdjustStockError::AdjustmentExists) => {
                let earlier = deps
                    .store
                    .adjustment(&adjustment.product_id, &adjustment.adjustment_id)
                    .await?
                    .ok_or(AdjustStockError::Busy { attempts: attempt })?;
                if !earlier.same_change(&adjustment) {
                    return Err(AdjustStockError::IdempotencyKeyReused);
                }
                let stock = stock_now(&deps.store, &adjustment.product_id).await?;
                return Ok(Adjusted::Replayed(earlier, stock));
            }
            Err(AdjustStockError::Store(StoreError::Transient)) => {
                if attempt >= deps.retry.max_attempts {
                    return Err(AdjustStockError::Busy { attempts: attempt });
                }
                tokio::time::sleep(deps.retry.delay(attempt - 1)).await;
            }
            Err(refused) => return Err(refused),
        }
    }
}

async fn stock_now<S: StockKeeper>(store: &S, id: &ProductId) -> Result<Stock, AdjustStockError> {
    match store.product(id).await? {
        Some(product) => Ok(product.stock),
        // Deleted between the adjustment and this read.
        None => Err(AdjustStockError::UnknownProduct(id.clone())),
    }
}
