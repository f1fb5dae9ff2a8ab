//! Every transition of an order after its creation, in one conditional transaction: the order
//! replaced (only if still as read), the restocks, its event in the outbox, the consumed event in
//! the inbox. And the inbox record alone, for an event with no other effect.

use aws_sdk_dynamodb::types::{Put, Update};
use platform::dynamo::{
    Consumed, Recorded, StoreError, TransactError, Transaction, consumed_put, n, outbox_put,
    record, s,
};
use platform::events::rfc3339_millis;

use super::DynamoStore;
use super::items::{RESERVE_UNTIL, encode_order};
use crate::service::ports::{ChangeOrder, ChangeOrderError, Deadline, OrderChange, RecordConsumed};

/// What each action of the transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Order,
    /// The restock of the change's line at this index.
    Restock(usize),
    Outbox,
    Inbox,
}

impl ChangeOrder for DynamoStore {
    async fn change_order(&self, change: &OrderChange<'_>) -> Result<(), ChangeOrderError> {
        let order = change.order;
        let mut condition = "#status = :from".to_owned();
        if change.unshipped {
            condition.push_str(" AND attribute_not_exists(shipmentId)");
        }
        let mut put = Put::builder()
            .table_name(&self.tables.orders)
            .set_item(Some(encode_order(order, change.request_hash)?))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(change.from.as_str()));
        match change.deadline {
            Deadline::Any => {}
            Deadline::NotPassed(at) => {
                condition.push_str(&format!(" AND {RESERVE_UNTIL} > :at"));
                put = put.expression_attribute_values(":at", s(rfc3339_millis::format(&at)));
            }
            Deadline::Passed(at) => {
                condition.push_str(&format!(" AND {RESERVE_UNTIL} <= :at"));
                put = put.expression_attribute_values(":at", s(rfc3339_millis::format(&at)));
            }
        }
        let mut tx = Transaction::with_capacity(change.restock.len() + 3);
        tx.put(
            Action::Order,
            put.condition_expression(condition)
                .build()
                .map_err(StoreError::from)?,
        );
        for (i, line) in change.restock.iter().enumerate() {
            tx.update(
                Action::Restock(i),
                Update::builder()
                    .table_name(&self.tables.products)
                    .key("productId", s(line.product_id.as_str()))
                    .update_expression("SET stock = stock + :qty")
                    .condition_expression("attribute_exists(productId)")
                    .expression_attribute_values(":qty", n(line.quantity.get()))
                    .build()
                    .map_err(StoreError::from)?,
            );
        }
        if let Some(event) = change.event {
            tx.put(Action::Outbox, outbox_put(&self.tables.outbox, event)?);
        }
        if let Some(consumed) = change.consumed {
            tx.put(
                Action::Inbox,
                consumed_put(&self.tables.inbox, consumed, event_time(change))?,
            );
        }
        let c = match tx.commit(&self.client).await {
            Ok(()) => return Ok(()),
            Err(TransactError::Cancelled(c)) => c,
            Err(TransactError::Store(e)) => return Err(e.into()),
        };
        if c.failed_at(Action::Inbox) {
            return Err(ChangeOrderError::AlreadyApplied);
        }
        if c.failed_at(Action::Order) {
            return Err(ChangeOrderError::Changed);
        }
        let gone: Vec<_> = c
            .failed()
            .filter_map(|(action, _)| match action {
                Action::Restock(i) => Some(change.restock[i].product_id.clone()),
                _ => None,
            })
            .collect();
        if !gone.is_empty() {
            return Err(ChangeOrderError::ProductGone(gone));
        }
        Err(c.unexplained().into())
    }
}

/// When the change was made: its event's time, or now.
fn event_time(change: &OrderChange<'_>) -> chrono::DateTime<chrono::Utc> {
    change.event.map_or_else(chrono::Utc::now, |e| e.time)
}

impl RecordConsumed for DynamoStore {
    async fn record(&self, consumed: &Consumed) -> Result<Recorded, StoreError> {
        let put = consumed_put(&self.tables.inbox, consumed, chrono::Utc::now())?;
        record(&self.client, put).await
    }
}
