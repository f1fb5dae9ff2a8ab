//! The reads: one order, a user's orders, and the products of an order.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use platform::dynamo::{Item, StoreError, batch_get, s};
use platform::events::rfc3339_millis;

use super::DynamoStore;
use super::items::{
    EXPIRING_INDEX, EXPIRY_HOUR, RESERVE_UNTIL, decode_order, decode_product, hour_of,
};
use crate::domain::{OrderId, Product, ProductId, UserId};
use crate::service::ports::{
    DueOrders, ListOrders, OrderPage, PageKey, ReadOrder, ReadProduct, ReadProducts, StoredOrder,
};

/// Name of the GSI that lists a user's orders newest first.
pub const ORDERS_BY_USER_INDEX: &str = "byUser";

impl ReadOrder for DynamoStore {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.orders)
            .key("orderId", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(decode_order).transpose()
    }
}

impl ListOrders for DynamoStore {
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
        // The index holds keys only (an order's later writes cost it nothing): the page's orders
        // are read from the table, in the index's order.
        let mut ids = out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut item| match item.remove("orderId") {
                Some(AttributeValue::S(id)) => Some(id),
                _ => None,
            })
            .collect::<Vec<_>>();
        let limit = limit as usize;
        let more = ids.len() > limit || out.last_evaluated_key.is_some();
        ids.truncate(limit);
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("orderId".to_owned(), s(id))]))
            .collect();
        let mut found: HashMap<String, Item> =
            batch_get(&self.client, &self.tables.orders, keys, false)
                .await?
                .into_iter()
                .filter_map(|item| match item.get("orderId") {
                    Some(AttributeValue::S(id)) => Some((id.clone(), item)),
                    _ => None,
                })
                .collect();
        let mut orders = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(item) = found.remove(id) {
                orders.push(decode_order(item)?.order);
            }
        }
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

impl ReadProducts for DynamoStore {
    async fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("productId".to_owned(), s(id.as_str()))]))
            .collect();
        batch_get(&self.client, &self.tables.products, keys, consistent)
            .await?
            .into_iter()
            .map(|item| decode_product(item).map(|product| (product.id.clone(), product)))
            .collect()
    }
}

impl ReadProduct for DynamoStore {
    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.products)
            .key("productId", s(id.as_str()))
            .send()
            .await?;
        out.item.map(decode_product).transpose()
    }
}

/// How far back the expiry looks for PENDING orders past their deadline (older ones would be a
/// stranded saga: the reconciler's alarm).
const EXPIRY_LOOKBACK_HOURS: i64 = 24;

impl DueOrders for DynamoStore {
    async fn due_orders(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut due = Vec::new();
        for back in (0..=EXPIRY_LOOKBACK_HOURS).rev() {
            let hour = hour_of(now - chrono::Duration::hours(back));
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.tables.orders)
                    .index_name(EXPIRING_INDEX)
                    .key_condition_expression("#hour = :hour AND #until <= :now")
                    .expression_attribute_names("#hour", EXPIRY_HOUR)
                    .expression_attribute_names("#until", RESERVE_UNTIL)
                    .expression_attribute_values(":hour", s(hour.clone()))
                    .expression_attribute_values(":now", s(rfc3339_millis::format(&now)))
                    .set_exclusive_start_key(start)
                    .send()
                    .await?;
                for item in out.items.unwrap_or_default() {
                    if let Some(id) = item
                        .get("orderId")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|raw| OrderId::parse(raw))
                    {
                        due.push(id);
                    }
                    if due.len() >= limit {
                        return Ok(due);
                    }
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(due)
    }
}
