//! What the use cases need of the database, as small traits: a use case names exactly the
//! operations it may do (the least privilege its function's IAM policy states too), and each
//! operation is written once. `crate::store::DynamoStore` implements them all.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use chrono::{DateTime, Utc};
use platform::consumer::Applied;
use platform::dynamo::StoreError;

use super::{
    AdjustStockError, ApplyError, CancelOrderError, CreateOrderError, Put, PutProductError,
};
use crate::domain::{
    MaxPerOrder, Money, Order, OrderId, OrderStatus, Product, ProductId, ProductName, Stock,
    StockAdjustment, UserId,
};
use crate::events::OrderEvent;

/// An order as stored, with the hash of the request that created it (when an idempotency key was given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub order: Order,
    pub request_hash: Option<String>,
}

/// Everything the order transaction writes.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub order: &'a Order,
    pub request_hash: Option<&'a str>,
    pub event: &'a OrderEvent,
    /// The per-user, per-minute order limit checked and counted in the same transaction.
    pub orders_per_minute: u32,
}

/// One page of a user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next: Option<PageKey>,
}

/// Where the next page of a user's orders starts (the last order of this page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageKey {
    #[serde(rename = "o")]
    pub order_id: OrderId,
    #[serde(rename = "c")]
    pub created_at: String,
}

/// Reads one order (strongly consistent).
pub trait ReadOrder: Send + Sync {
    fn order(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<StoredOrder>, StoreError>> + Send;
}

/// Lists a user's orders, newest first.
pub trait ListOrders: Send + Sync {
    fn orders_of(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&PageKey>,
    ) -> impl Future<Output = Result<OrderPage, StoreError>> + Send;
}

/// Reads the products of an order (one BatchGetItem); unknown ids are absent from the map.
pub trait ReadProducts: Send + Sync {
    fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> impl Future<Output = Result<HashMap<ProductId, Product>, StoreError>> + Send;
}

/// The one transaction that writes an order, its stock decrements, its event and its quota count.
pub trait PlaceOrder: Send + Sync {
    fn place_order(
        &self,
        new: &NewOrder<'_>,
    ) -> impl Future<Output = Result<(), CreateOrderError>> + Send;
}

/// One transaction: the order (still the caller's, still cancellable) becomes CANCELLED, the
/// stock of every line whose product is not in `not_restocked` comes back, and the
/// `order.cancelled` event is written. A line whose product no longer exists fails it with
/// [`CancelOrderError::ProductGone`] naming those products.
pub trait CancelOrder: Send + Sync {
    fn cancel_order(
        &self,
        order: &Order,
        event: &OrderEvent,
        not_restocked: &BTreeSet<ProductId>,
    ) -> impl Future<Output = Result<(), CancelOrderError>> + Send;
}

/// Reads one product.
pub trait ReadProduct: Send + Sync {
    fn product(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
}

/// A product's details as a PUT gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub id: ProductId,
    pub name: ProductName,
    pub price: Money,
    /// The stock a new product starts with (none given: 0). On an existing product, if given, it
    /// must equal the stock there is ([`PutProductError::StockDiffers`] otherwise): a replace
    /// never sets stock.
    pub stock: Option<Stock>,
    /// Replaced with the details: `None` removes a limit.
    pub max_per_order: Option<MaxPerOrder>,
}

/// Creates a product, or replaces its details in one conditional write that never touches its
/// stock.
pub trait WriteProduct: Send + Sync {
    fn put_product(
        &self,
        draft: &ProductDraft,
    ) -> impl Future<Output = Result<Put, PutProductError>> + Send;
}

/// Stock changes by a delta, recorded with the change in one transaction.
pub trait AdjustStockLevel: Send + Sync {
    /// Writes the adjustment record (only if there is none with its id) and adds the delta to the
    /// product's stock (only if it exists and keeps stock ≥ 0): all or nothing.
    fn adjust_stock(
        &self,
        adjustment: &StockAdjustment,
    ) -> impl Future<Output = Result<(), AdjustStockError>> + Send;

    /// An adjustment as recorded.
    fn adjustment(
        &self,
        product: &ProductId,
        adjustment_id: &str,
    ) -> impl Future<Output = Result<Option<StockAdjustment>, StoreError>> + Send;
}

/// The order-events consumer's effects, each written with the event id in the inbox.
pub trait EventInbox: Send + Sync {
    /// CREATED → CONFIRMED (the order the event's subject names), together with the event id in
    /// `consumer`'s inbox.
    fn confirm(
        &self,
        consumer: &str,
        order_id: OrderId,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Applied<OrderStatus>, ApplyError>> + Send;

    /// Records an event whose only effect is being recorded.
    fn record(
        &self,
        consumer: &str,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Applied<OrderStatus>, ApplyError>> + Send;
}

/// What create-order may do.
pub trait OrderWriter: ReadOrder + ReadProducts + PlaceOrder {}
impl<T: ReadOrder + ReadProducts + PlaceOrder> OrderWriter for T {}

/// What cancel-order may do.
pub trait OrderCanceller: ReadOrder + CancelOrder {}
impl<T: ReadOrder + CancelOrder> OrderCanceller for T {}

/// What the order-reading functions may do.
pub trait OrderReader: ReadOrder + ListOrders {}
impl<T: ReadOrder + ListOrders> OrderReader for T {}

/// What the catalogue functions may do.
pub trait Catalogue: ReadProduct + WriteProduct {}
impl<T: ReadProduct + WriteProduct> Catalogue for T {}

/// What adjust-stock may do.
pub trait StockKeeper: ReadProduct + AdjustStockLevel {}
impl<T: ReadProduct + AdjustStockLevel> StockKeeper for T {}
