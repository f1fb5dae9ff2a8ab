//! The DynamoDB store: item shapes, the order transaction and the reads around it.
//!
//! Items are (de)serialised with serde_dynamo; every user-supplied value travels in
//! `ExpressionAttributeValues`, never in an expression's text.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Tables;
use crate::domain::{
    Currency, Money, Order, OrderId, OrderStatus, Product, ProductId, ProductName, Quantity, Stock,
    UserId, rfc3339_millis,
};
use crate::events::CloudEvent;

mod cancel;
mod inbox;

pub use cancel::{CancelError, OrderCanceller};
pub use inbox::{Applied, EventInbox, INBOX_RETENTION};

/// How long an outbox item lives before DynamoDB's TTL may delete it.
pub const OUTBOX_RETENTION: Duration = Duration::days(7);
/// How long a per-minute quota counter is kept after its minute (TTL; never read after the minute).
const QUOTA_RETENTION: Duration = Duration::minutes(10);
/// Name of the GSI that lists a user's orders newest first.
pub const ORDERS_BY_USER_INDEX: &str = "byUser";

/// A failure of the database itself (not a business outcome).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed: {0}")]
    Sdk(String),
    #[error("an item in {table} does not have the expected shape: {source}")]
    Corrupt {
        table: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("could not encode an item: {0}")]
    Encode(#[from] serde_dynamo::Error),
    #[error("DynamoDB is throttling or busy")]
    Transient,
}

impl<E, R> From<SdkError<E, R>> for StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(err: SdkError<E, R>) -> Self {
        let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
        if is_transient_code(code) {
            return StoreError::Transient;
        }
        StoreError::Sdk(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string())
    }
}

fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "ThrottlingError"
            | "ThrottlingException"
            | "ProvisionedThroughputExceeded"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
    )
}

/// Why the order transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    #[error("an order with this id already exists")]
    OrderExists,
    #[error("product {0} does not exist")]
    ProductMissing(ProductId),
    #[error("product {product} has {available} left, {requested} requested")]
    InsufficientStock {
        product: ProductId,
        requested: Quantity,
        available: i64,
    },
    #[error("the price of product {0} changed since it was read")]
    PriceChanged(ProductId),
    #[error("the user's order quota for this minute is used up")]
    QuotaExceeded,
    #[error("the transaction met a conflicting write or throttling")]
    Transient,
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
    pub event: &'a CloudEvent,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    #[serde(rename = "o")]
    pub order_id: OrderId,
    #[serde(rename = "c")]
    pub created_at: String,
}

/// What create-order may do to the database.
pub trait OrderWriter: Send + Sync {
    /// Reads the products of an order (one BatchGetItem); unknown ids are absent from the map.
    fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> impl Future<Output = Result<HashMap<ProductId, Product>, StoreError>> + Send;

    /// The one transaction that writes an order, its stock decrements, its event and its quota count.
    fn create_order(
        &self,
        new: &NewOrder<'_>,
    ) -> impl Future<Output = Result<(), CreateOrderError>> + Send;

    /// Reads one order (strongly consistent).
    fn order(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<StoredOrder>, StoreError>> + Send;
}

/// What the order-reading functions may do.
pub trait OrderReader: Send + Sync {
    fn order(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<StoredOrder>, StoreError>> + Send;

    fn orders_of(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&PageKey>,
    ) -> impl Future<Output = Result<OrderPage, StoreError>> + Send;
}

/// What the catalogue functions may do.
pub trait Catalogue: Send + Sync {
    fn product(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Creates or replaces a product; answers whether it existed before.
    fn put_product(
        &self,
        product: &Product,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The products table's item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductItem {
    product_id: ProductId,
    name: ProductName,
    price_amount: i64,
    currency: Currency,
    stock: i64,
}

impl ProductItem {
    fn from_product(p: &Product) -> Self {
        Self {
            product_id: p.id.clone(),
            name: p.name.clone(),
            price_amount: p.price.amount(),
            currency: p.price.currency(),
            stock: p.stock.get(),
        }
    }

    fn into_product(self) -> Result<Product, crate::domain::DomainError> {
        Ok(Product {
            id: self.product_id,
            name: self.name,
            price: Money::new(self.price_amount, self.currency)?,
            stock: Stock::on_hand(self.stock)?,
        })
    }
}

/// The DynamoDB-backed store of products, orders and the outbox.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// The store over a client built from the shared AWS configuration.
    pub fn from_config(config: &aws_config::SdkConfig, tables: Tables) -> Self {
        Self::new(Client::new(config), tables)
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    fn decode_product(&self, item: HashMap<String, AttributeValue>) -> Result<Product, StoreError> {
        let raw: ProductItem =
            serde_dynamo::from_item(item).map_err(|source| StoreError::Corrupt {
                table: "products",
                source,
            })?;
        raw.into_product().map_err(|e| StoreError::Corrupt {
            table: "products",
            source: serde::de::Error::custom(e),
        })
    }

    /// Runs one transaction. `Ok(Err(reasons))`: a condition failed or a conflict cancelled it,
    /// with one reason per action, in request order.
    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<CancellationReason>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(ctx)) => match ctx.err() {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    Ok(Err(cancel.cancellation_reasons().to_vec()))
                }
                _ => Err(StoreError::from(SdkError::ServiceError(ctx))),
            },
            Err(other) => Err(StoreError::from(other)),
        }
    }

    /// The outbox put of an event, kept for [`OUTBOX_RETENTION`]; never overwrites an event.
    fn outbox_put(&self, event: &CloudEvent) -> Result<TransactWriteItem, StoreError> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(event)?;
        item.insert(
            "expiresAt".to_owned(),
            n((event.time + OUTBOX_RETENTION).timestamp()),
        );
        let put = Put::builder()
            .table_name(&self.tables.outbox)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn get_order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.orders)
            .key("orderId", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(decode_order).transpose()
    }
}

fn decode_order(mut item: HashMap<String, AttributeValue>) -> Result<StoredOrder, StoreError> {
    let request_hash = match item.remove("requestHash") {
        Some(AttributeValue::S(hash)) => Some(hash),
        _ => None,
    };
    let order = serde_dynamo::from_item(item).map_err(|source| StoreError::Corrupt {
        table: "orders",
        source,
    })?;
    Ok(StoredOrder {
        order,
        request_hash,
    })
}

fn quota_key(user: &UserId, at: DateTime<Utc>) -> String {
    format!("quota#{}#{}", at.format("%Y%m%dT%H%M"), user.as_str())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Sdk(e.to_string())
}

impl OrderWriter for DynamoStore {
    async fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("productId".to_owned(), s(id.as_str()))]))
            .collect::<Vec<_>>();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(consistent)
            .build()
            .map_err(build_err)?;
        let mut found = HashMap::with_capacity(ids.len());
        // BatchGetItem may answer part of the keys; ask again for the rest (bounded: 25 keys at most).
        for _ in 0..5 {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.tables.products, request)
                .send()
                .await?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.tables.products)
                .unwrap_or_default()
            {
                let product = self.decode_product(item)?;
                found.insert(product.id.clone(), product);
            }
            match out
                .unprocessed_keys
                .and_then(|mut rest| rest.remove(&self.tables.products))
            {
                Some(rest) if !rest.keys.is_empty() => request = rest,
                _ => return Ok(found),
            }
        }
        Err(StoreError::Transient)
    }

    async fn create_order(&self, new: &NewOrder<'_>) -> Result<(), CreateOrderError> {
        let order = new.order;
        let mut order_item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(order).map_err(StoreError::from)?;
        if let Some(hash) = new.request_hash {
            order_item.insert("requestHash".to_owned(), s(hash));
        }
        let mut actions = Vec::with_capacity(order.items.len() + 3);
        actions.push(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.tables.orders)
                        .set_item(Some(order_item))
                        .condition_expression("attribute_not_exists(orderId)")
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        );
        for line in &order.items {
            actions.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.tables.products)
                            .key("productId", s(line.product_id.as_str()))
                            .update_expression("SET stock = stock - :qty")
                            .condition_expression(
                                "attribute_exists(productId) AND stock >= :qty \
                                 AND priceAmount = :price AND currency = :currency",
                            )
                            .expression_attribute_values(":qty", n(line.quantity.get()))
                            .expression_attribute_values(":price", n(line.unit_price.amount()))
                            .expression_attribute_values(
                                ":currency",
                                s(line.unit_price.currency().as_str()),
                            )
                            .return_values_on_condition_check_failure(
                                ReturnValuesOnConditionCheckFailure::AllOld,
                            )
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        actions.push(self.outbox_put(new.event)?);
        actions.push(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.tables.orders)
                        .key("orderId", s(quota_key(&order.user_id, order.created_at)))
                        .update_expression(
                            "SET orderCount = if_not_exists(orderCount, :zero) + :one, \
                             expiresAt = :expires",
                        )
                        .condition_expression(
                            "attribute_not_exists(orderCount) OR orderCount < :limit",
                        )
                        .expression_attribute_values(":zero", n(0))
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":limit", n(new.orders_per_minute))
                        .expression_attribute_values(
                            ":expires",
                            n((order.created_at + QUOTA_RETENTION).timestamp()),
                        )
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        );

        match self.transact(actions).await? {
            Ok(()) => Ok(()),
            Err(reasons) => Err(explain_cancellation(order, &reasons)),
        }
    }

    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        self.get_order(id).await
    }
}

/// Maps the per-action cancellation reasons (in request order: order, one per line, outbox, quota)
/// to the business outcome. Conditions that failed win over transient reasons.
pub fn explain_cancellation(order: &Order, reasons: &[CancellationReason]) -> CreateOrderError {
    if failed_at(reasons, 0) {
        return CreateOrderError::OrderExists;
    }
    let failed = |i: usize| failed_at(reasons, i);
    let lines = &order.items;
    for (i, line) in lines.iter().enumerate() {
        if !failed(i + 1) {
            continue;
        }
        let current = reasons[i + 1].item();
        let Some(current) = current.filter(|item| !item.is_empty()) else {
            return CreateOrderError::ProductMissing(line.product_id.clone());
        };
        let number = |name: &str| match current.get(name) {
            Some(AttributeValue::N(v)) => v.parse::<i64>().ok(),
            _ => None,
        };
        let available = number("stock").unwrap_or(0);
        let price_same = number("priceAmount") == Some(line.unit_price.amount())
            && matches!(current.get("currency"), Some(AttributeValue::S(c)) if c == line.unit_price.currency().as_str());
        if available < i64::from(line.quantity.get()) {
            return CreateOrderError::InsufficientStock {
                product: line.product_id.clone(),
                requested: line.quantity,
                available,
            };
        }
        if !price_same {
            return CreateOrderError::PriceChanged(line.product_id.clone());
        }
    }
    if failed(lines.len() + 2) {
        return CreateOrderError::QuotaExceeded;
    }
    match unexplained(reasons) {
        StoreError::Transient => CreateOrderError::Transient,
        other => CreateOrderError::Store(other),
    }
}

/// Whether action `i` of a cancelled transaction failed its condition.
fn failed_at(reasons: &[CancellationReason], i: usize) -> bool {
    reasons
        .get(i)
        .and_then(|r| r.code())
        .is_some_and(|c| c == "ConditionalCheckFailed")
}

/// A cancelled transaction whose conditions all held: a conflict or throttling (transient), or else
/// something unexpected, named by its reason codes.
fn unexplained(reasons: &[CancellationReason]) -> StoreError {
    if reasons
        .iter()
        .filter_map(|r| r.code())
        .any(is_transient_code)
    {
        return StoreError::Transient;
    }
    let codes = reasons
        .iter()
        .map(|r| r.code().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(",");
    StoreError::Sdk(format!("transaction cancelled for reasons [{codes}]"))
}

impl OrderReader for DynamoStore {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        self.get_order(id).await
    }

    async fn orders_of(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&PageKey>,
    ) -> Result<OrderPage, StoreError> {
        let start = after.map(|key| {
            HashMap::from([
                ("orderId".to_owned(), s(key.order_id.to_string())),
                ("userId".to_owned(), s(user.as_str())),
                ("createdAt".to_owned(), s(key.created_at.clone())),
            ])
        });
        // One more than asked: if it comes back, there is a next page.
        let out = self
            .client
            .query()
            .table_name(&self.tables.orders)
            .index_name(ORDERS_BY_USER_INDEX)
            .key_condition_expression("userId = :user")
            .expression_attribute_values(":user", s(user.as_str()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        let mut orders = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| decode_order(item).map(|stored| stored.order))
            .collect::<Result<Vec<_>, _>>()?;
        let limit = limit as usize;
        let more = orders.len() > limit || out.last_evaluated_key.is_some();
        orders.truncate(limit);
        let next = match orders.last() {
            Some(last) if more => Some(PageKey {
                order_id: last.order_id,
                created_at: rfc3339_millis::format(&last.created_at),
            }),
            _ => None,
        };
        Ok(OrderPage { orders, next })
    }
}

impl Catalogue for DynamoStore {
    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.products)
            .key("productId", s(id.as_str()))
            .send()
            .await?;
        out.item.map(|item| self.decode_product(item)).transpose()
    }

    async fn put_product(&self, product: &Product) -> Result<bool, StoreError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(ProductItem::from_product(product))?;
        let out = self
            .client
            .put_item()
            .table_name(&self.tables.products)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld)
            .send()
            .await?;
        Ok(out.attributes.is_some_and(|old| !old.is_empty()))
    }
}

/// The status an order had when it was created (the idempotent replay answers that body).
pub fn as_created(order: &Order) -> Order {
    Order {
        status: OrderStatus::Created,
        ..order.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderLines, UserId};

    fn order_of(lines: &[(&str, u32)]) -> Order {
        let lines = OrderLines::new(
            lines
                .iter()
                .map(|(id, q)| (ProductId::parse(id).unwrap(), Quantity::new(*q).unwrap()))
                .collect(),
        )
        .unwrap();
        let eur = Currency::parse("EUR").unwrap();
        Order::price(
            OrderId::new_random(),
            UserId::parse("alice").unwrap(),
            &lines,
            Utc::now(),
            |_| Some(Money::new(100, eur).unwrap()),
        )
        .unwrap()
    }

    fn reason(code: &str, item: Option<&[(&str, AttributeValue)]>) -> CancellationReason {
        CancellationReason::builder()
            .code(code)
            .set_item(item.map(|attrs| {
                attrs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect()
            }))
            .build()
    }

    #[test]
    fn short_line_is_reported_with_what_is_left() {
        let order = order_of(&[("a", 1), ("b", 5)]);
        let stock_b = [
            ("stock", n(3)),
            ("priceAmount", n(100)),
            ("currency", s("EUR")),
        ];
        let reasons = [
            reason("None", None),
            reason("None", None),
            reason("ConditionalCheckFailed", Some(&stock_b)),
            reason("None", None),
            reason("None", None),
        ];
        match explain_cancellation(&order, &reasons) {
            CreateOrderError::InsufficientStock {
                product,
                requested,
                available,
            } => {
                assert_eq!(product.as_str(), "b");
                assert_eq!(requested.get(), 5);
                assert_eq!(available, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_product_has_no_old_item() {
        let order = order_of(&[("a", 1)]);
        let reasons = [
            reason("None", None),
            reason("ConditionalCheckFailed", None),
            reason("None", None),
            reason("None", None),
        ];
        assert!(matches!(
            explain_cancellation(&order, &reasons),
            CreateOrderError::ProductMissing(p) if p.as_str() == "a"
        ));
    }

    #[test]
    fn changed_price_with_enough_stock_is_a_price_change() {
        let order = order_of(&[("a", 1)]);
        let current = [
            ("stock", n(10)),
            ("priceAmount", n(150)),
            ("currency", s("EUR")),
        ];
        let reasons = [
            reason("None", None),
            reason("ConditionalCheckFailed", Some(&current)),
            reason("None", None),
            reason("None", None),
        ];
        assert!(matches!(
            explain_cancellation(&order, &reasons),
            CreateOrderError::PriceChanged(_)
        ));
    }

    #[test]
    fn existing_order_quota_and_conflicts_are_told_apart() {
        let order = order_of(&[("a", 1)]);
        let none = || reason("None", None);
        let exists = [
            reason("ConditionalCheckFailed", None),
            none(),
            none(),
            none(),
        ];
        assert!(matches!(
            explain_cancellation(&order, &exists),
            CreateOrderError::OrderExists
        ));
        let quota = [
            none(),
            none(),
            none(),
            reason("ConditionalCheckFailed", None),
        ];
        assert!(matches!(
            explain_cancellation(&order, &quota),
            CreateOrderError::QuotaExceeded
        ));
        let conflict = [none(), reason("TransactionConflict", None), none(), none()];
        assert!(matches!(
            explain_cancellation(&order, &conflict),
            CreateOrderError::Transient
        ));
        let throttled = [none(), none(), reason("ThrottlingError", None), none()];
        assert!(matches!(
            explain_cancellation(&order, &throttled),
            CreateOrderError::Transient
        ));
        let validation = [none(), reason("ValidationError", None), none(), none()];
        assert!(matches!(
            explain_cancellation(&order, &validation),
            CreateOrderError::Store(_)
        ));
    }
}
