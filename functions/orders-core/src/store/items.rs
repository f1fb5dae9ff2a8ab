//! The items of the products and orders tables, and how they are read back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use platform::dynamo::{StoreError, decode, s};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Currency, MaxPerOrder, Money, Order, OrderStatus, Product, ProductId, ProductName, Stock,
    UserId,
};
use crate::service::ports::StoredOrder;

pub(super) const PRODUCTS: &str = "products";
pub(super) const ORDERS: &str = "orders";

/// The products table's item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProductItem {
    product_id: ProductId,
    name: ProductName,
    price_amount: i64,
    currency: Currency,
    stock: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_per_order: Option<MaxPerOrder>,
}

impl ProductItem {
    pub(super) fn from_product(p: &Product) -> Self {
        Self {
            product_id: p.id.clone(),
            name: p.name.clone(),
            price_amount: p.price.amount(),
            currency: p.price.currency(),
            stock: p.stock.get(),
            max_per_order: p.max_per_order,
        }
    }
}

/// A product item, decoded and checked against the domain's rules.
pub(super) fn decode_product(item: HashMap<String, AttributeValue>) -> Result<Product, StoreError> {
    let raw: ProductItem = decode(PRODUCTS, item)?;
    let corrupt = |e: crate::domain::DomainError| StoreError::Corrupt {
        table: PRODUCTS,
        source: serde::de::Error::custom(e),
    };
    Ok(Product {
        id: raw.product_id,
        name: raw.name,
        price: Money::new(raw.price_amount, raw.currency).map_err(corrupt)?,
        stock: Stock::on_hand(raw.stock).map_err(corrupt)?,
        max_per_order: raw.max_per_order,
    })
}

/// What a product was when a condition on it failed (an order line, a replace, an adjustment):
/// its stock, price and limit.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StockAndPrice {
    #[serde(default)]
    pub stock: i64,
    pub price_amount: Option<i64>,
    pub currency: Option<String>,
    pub max_per_order: Option<u32>,
}

impl StockAndPrice {
    pub(super) fn priced_at(&self, price: Money) -> bool {
        self.price_amount == Some(price.amount())
            && self.currency.as_deref() == Some(price.currency().as_str())
    }
}

/// The order's reservation deadline, stored apart from `expiresAt`: that name is the table's TTL
/// attribute (the quota counters'), which would delete the order.
pub(super) const RESERVE_UNTIL: &str = "reserveUntil";
/// The hour of a PENDING order's deadline (`2026-12-02T11`): the hash key of the sparse
/// [`EXPIRING_INDEX`], present only while the order is PENDING.
pub(super) const EXPIRY_HOUR: &str = "expiryHour";
/// The sparse GSI of PENDING orders by deadline (hash expiryHour, range reserveUntil).
pub const EXPIRING_INDEX: &str = "expiring";

/// The hour bucket of a deadline.
pub(super) fn hour_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// An order item: the order's own attributes (its deadline as `reserveUntil`), the expiry
/// index's key while PENDING, and the request hash of an idempotent create.
pub(super) fn encode_order(
    order: &Order,
    request_hash: Option<&str>,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(order)?;
    if let Some(deadline) = item.remove("expiresAt") {
        item.insert(RESERVE_UNTIL.to_owned(), deadline);
    }
    if let (OrderStatus::Pending, Some(deadline)) = (order.status, order.expires_at) {
        item.insert(EXPIRY_HOUR.to_owned(), s(hour_of(deadline)));
    }
    if let Some(hash) = request_hash {
        item.insert("requestHash".to_owned(), s(hash));
    }
    Ok(item)
}

/// The inverse of [`encode_order`].
pub(super) fn decode_order(
    mut item: HashMap<String, AttributeValue>,
) -> Result<StoredOrder, StoreError> {
    let request_hash = match item.remove("requestHash") {
        Some(AttributeValue::S(hash)) => Some(hash),
        _ => None,
    };
    item.remove(EXPIRY_HOUR);
    item.remove("expiresAt");
    if let Some(deadline) = item.remove(RESERVE_UNTIL) {
        item.insert("expiresAt".to_owned(), deadline);
    }
    Ok(StoredOrder {
        order: decode(ORDERS, item)?,
        request_hash,
    })
}

/// The key of a user's per-minute order counter, kept in the orders table.
pub(super) fn quota_key(user: &UserId, at: DateTime<Utc>) -> String {
    format!("quota#{}#{}", at.format("%Y%m%dT%H%M"), user.as_str())
}
