//! The consumer's inbox: each processed event id, written in the same transaction as its effect,
//! so a redelivered message finds its id and changes nothing.

use std::future::Future;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};

use super::{DynamoStore, StoreError, build_err, failed_at, n, s, unexplained};
use crate::domain::{OrderId, OrderStatus, rfc3339_millis};
use crate::events::EventType;

/// How long a processed event id is remembered: longer than the queue keeps a message (14 days).
pub const INBOX_RETENTION: Duration = Duration::days(15);

/// What processing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The effect was applied now.
    Done,
    /// This event id was processed before: nothing changed.
    Duplicate,
    /// The order was not in a state the event applies to (e.g. confirming a cancelled order);
    /// the event is recorded as processed and nothing else changes.
    Skipped(OrderStatus),
}

/// What the order-events consumer may do.
pub trait EventInbox: Send + Sync {
    /// CREATED → CONFIRMED, together with the event id.
    fn confirm(
        &self,
        event_id: &str,
        order_id: OrderId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Records an event whose only effect is being recorded.
    fn record(
        &self,
        event_id: &str,
        event_type: EventType,
        order_id: OrderId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;
}

impl DynamoStore {
    fn inbox_put(
        &self,
        event_id: &str,
        event_type: EventType,
        order_id: OrderId,
        at: DateTime<Utc>,
    ) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.tables.inbox)
            .item("eventId", s(event_id))
            .item("type", s(event_type.as_str()))
            .item("orderId", s(order_id.to_string()))
            .item("processedAt", s(rfc3339_millis::format(&at)))
            .item("expiresAt", n((at + INBOX_RETENTION).timestamp()))
            .condition_expression("attribute_not_exists(eventId)")
            .build()
            .map_err(build_err)
    }
}

impl EventInbox for DynamoStore {
    async fn confirm(
        &self,
        event_id: &str,
        order_id: OrderId,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let inbox = self.inbox_put(event_id, EventType::OrderCreated, order_id, at)?;
        let confirm = Update::builder()
            .table_name(&self.tables.orders)
            .key("orderId", s(order_id.to_string()))
            .update_expression("SET #status = :confirmed, confirmedAt = :at")
            .condition_expression("#status = :created")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":confirmed", s("CONFIRMED"))
            .expression_attribute_values(":created", s("CREATED"))
            .expression_attribute_values(":at", s(rfc3339_millis::format(&at)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        let actions = vec![
            TransactWriteItem::builder().put(inbox).build(),
            TransactWriteItem::builder().update(confirm).build(),
        ];
        let reasons = match self.transact(actions).await? {
            Ok(()) => return Ok(Applied::Done),
            Err(reasons) => reasons,
        };
        if failed_at(&reasons, 0) {
            return Ok(Applied::Duplicate);
        }
        if !failed_at(&reasons, 1) {
            return Err(unexplained(&reasons));
        }
        let status = match reasons[1].item().and_then(|item| item.get("status")) {
            Some(AttributeValue::S(status)) if status == "CANCELLED" => OrderStatus::Cancelled,
            Some(AttributeValue::S(status)) if status == "CONFIRMED" => OrderStatus::Confirmed,
            None if reasons[1].item().is_none_or(|i| i.is_empty()) => {
                return Err(StoreError::Sdk(format!("order {order_id} does not exist")));
            }
            other => {
                return Err(StoreError::Sdk(format!(
                    "order {order_id} has status {other:?}"
                )));
            }
        };
        // Remember the event without touching the order.
        self.record(event_id, EventType::OrderCreated, order_id, at)
            .await
            .map(|applied| match applied {
                Applied::Done => Applied::Skipped(status),
                other => other,
            })
    }

    async fn record(
        &self,
        event_id: &str,
        event_type: EventType,
        order_id: OrderId,
        at: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let put = self.inbox_put(event_id, event_type, order_id, at)?;
        let result = self
            .client
            .put_item()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .condition_expression("attribute_not_exists(eventId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Applied::Done),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Applied::Duplicate)
            }
            Err(e) => Err(e.into()),
        }
    }
}
