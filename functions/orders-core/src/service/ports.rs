//! What the use cases need of the database, as small traits: a use case names exactly the
//! operations it may do (the least privilege its function's IAM policy states too), and each
//! operation is written once. `crate::store::DynamoStore` implements them all.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use platform::dynamo::{Consumed, Recorded, StoreError};

use super::{AdjustStockError, CreateOrderError, Put, PutProductError};
use crate::domain::{
    MaxPerOrder, Money, Order, OrderId, OrderLine, OrderStatus, Product, ProductId, ProductName,
    Stock, StockAdjustment, UserId,
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

/// What an order's transition checks of its reservation deadline, in the write's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Nothing.
    Any,
    /// Not passed at this instant (a confirmation).
    NotPassed(DateTime<Utc>),
    /// Passed at this instant (the expiry).
    Passed(DateTime<Utc>),
}

/// One transition of an order, in one transaction: the order as it becomes (replacing the item
/// only if it is still in status `from`, not shipped unless `from` allows, and its deadline as
/// `deadline` says), the stock of `restock`'s lines back, the order's event, and the consumed
/// event in the consumer's inbox.
#[derive(Debug, Clone)]
pub struct OrderChange<'a> {
    pub order: &'a Order,
    pub request_hash: Option<&'a str>,
    pub from: OrderStatus,
    /// Whether the order must not have a shipment yet.
    pub unshipped: bool,
    pub deadline: Deadline,
    pub restock: Vec<&'a OrderLine>,
    pub event: Option<&'a OrderEvent>,
    pub consumed: Option<&'a Consumed>,
}

/// Why an order's transition was not written.
#[derive(Debug, thiserror::Error)]
pub enum ChangeOrderError {
    /// The order is no longer as it was read (the caller reads it again).
    #[error("the order changed since it was read")]
    Changed,
    /// The consumer applied this event before.
    #[error("the event was applied before")]
    AlreadyApplied,
    /// These products of the restocked lines no longer exist.
    #[error("products of the order no longer exist: {0:?}")]
    ProductGone(Vec<ProductId>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every transition of an order after its creation (cancel, confirm, ship, fulfil, expire, a
/// payment's news), written by one conditional transaction.
pub trait ChangeOrder: Send + Sync {
    fn change_order(
        &self,
        change: &OrderChange<'_>,
    ) -> impl Future<Output = Result<(), ChangeOrderError>> + Send;
}

/// Records a consumed event whose only effect is being recorded.
pub trait RecordConsumed: Send + Sync {
    fn record(
        &self,
        consumed: &Consumed,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}

/// The PENDING orders whose reservation deadline has passed.
pub trait DueOrders: Send + Sync {
    fn due_orders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send;
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

/// What create-order may do.
pub trait OrderWriter: ReadOrder + ReadProducts + PlaceOrder {}
impl<T: ReadOrder + ReadProducts + PlaceOrder> OrderWriter for T {}

/// What cancel-order (and the expiry) may do.
pub trait OrderCanceller: ReadOrder + ChangeOrder {}
impl<T: ReadOrder + ChangeOrder> OrderCanceller for T {}

/// What the orders service's saga consumer may do.
pub trait OrderSaga: ReadOrder + ChangeOrder + RecordConsumed {}
impl<T: ReadOrder + ChangeOrder + RecordConsumed> OrderSaga for T {}

/// What the order-reading functions may do.
pub trait OrderReader: ReadOrder + ListOrders {}
impl<T: ReadOrder + ListOrders> OrderReader for T {}

/// What the catalogue functions may do.
pub trait Catalogue: ReadProduct + WriteProduct {}
impl<T: ReadProduct + WriteProduct> Catalogue for T {}

/// What adjust-stock may do.
pub trait StockKeeper: ReadProduct + AdjustStockLevel {}
impl<T: ReadProduct + AdjustStockLevel> StockKeeper for T {}
