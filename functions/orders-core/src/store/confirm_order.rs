//! The consumer's transactions: each event's effect, written with the event id in the inbox, so a
//! redelivered message finds its id and changes nothing.

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};
use platform::consumer::Applied;
use platform::dynamo::{Recorded, StoreError, TransactError, Transaction, inbox_put, record, s};
use platform::events::rfc3339_millis;
use serde::Deserialize;

use super::DynamoStore;
use super::items::ORDERS;
use crate::domain::{OrderId, OrderStatus};
use crate::events::OrderEvent;
use crate::service::ApplyError;
use crate::service::ports::EventInbox;

/// What each action of the confirm transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Inbox,
    Confirm,
}

/// What an order was when it could not be confirmed.
#[derive(Debug, Deserialize)]
struct StatusOnly {
    status: OrderStatus,
}

impl EventInbox for DynamoStore {
    async fn confirm(
        &self,
        consumer: &str,
        order_id: OrderId,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> Result<Applied<OrderStatus>, ApplyError> {
        let mut tx = Transaction::with_capacity(2);
        tx.put(
            Action::Inbox,
            inbox_put(&self.tables.inbox, consumer, event, at)?,
        );
        tx.update(
            Action::Confirm,
            Update::builder()
                .table_name(&self.tables.orders)
                .key("orderId", s(order_id.to_string()))
                .update_expression("SET #status = :confirmed, confirmedAt = :at")
                .condition_expression("#status = :created")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":confirmed", s(OrderStatus::Confirmed.as_str()))
                .expression_attribute_values(":created", s(OrderStatus::Created.as_str()))
                .expression_attribute_values(":at", s(rfc3339_millis::format(&at)))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(StoreError::from)?,
        );
        let cancellation = match tx.commit(&self.client).await {
            Ok(()) => return Ok(Applied::Done),
            Err(TransactError::Cancelled(c)) => c,
            Err(TransactError::Store(e)) => return Err(e.into()),
        };
        if cancellation.failed_at(Action::Inbox) {
            return Ok(Applied::Duplicate);
        }
        if !cancellation.failed_at(Action::Confirm) {
            return Err(cancellation.unexplained().into());
        }
        let status = match cancellation.old_item::<StatusOnly>(ORDERS, Action::Confirm) {
            None => return Err(ApplyError::UnknownOrder(order_id)),
            Some(found) => found?.status,
        };
        // Remember the event without touching the order.
        Ok(match self.record(consumer, event, at).await? {
            Applied::Done => Applied::Skipped(status),
            other => other,
        })
    }

    async fn record(
        &self,
        consumer: &str,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> Result<Applied<OrderStatus>, ApplyError> {
        let put = inbox_put(&self.tables.inbox, consumer, event, at)?;
        Ok(match record(&self.client, put).await? {
            Recorded::Now => Applied::Done,
            Recorded::Before => Applied::Duplicate,
        })
    }
}
