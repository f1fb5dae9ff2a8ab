//! The compensating transaction: cancel an order, restore its stock, write `order.cancelled`.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::Update;
use platform::dynamo::{StoreError, TransactError, Transaction, n, outbox_put, s};
use platform::events::rfc3339_millis;

use super::DynamoStore;
use crate::domain::{Order, OrderStatus, ProductId};
use crate::events::OrderEvent;
use crate::service::CancelOrderError;
use crate::service::ports::CancelOrder;

/// What each action of the transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Order,
    /// The restock of the order's line at this index.
    Restock(usize),
    Outbox,
}

impl CancelOrder for DynamoStore {
    async fn cancel_order(
        &self,
        order: &Order,
        event: &OrderEvent,
        not_restocked: &BTreeSet<ProductId>,
    ) -> Result<(), CancelOrderError> {
        debug_assert_eq!(event.data.status, OrderStatus::Cancelled);
        let [open_1, open_2] = OrderStatus::CANCELLABLE;
        let mut tx = Transaction::with_capacity(order.items.len() + 2);
        tx.update(
            Action::Order,
            Update::builder()
                .table_name(&self.tables.orders)
                .key("orderId", s(order.order_id.to_string()))
                .update_expression("SET #status = :cancelled, cancelledAt = :at")
                .condition_expression("userId = :user AND #status IN (:open_1, :open_2)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":cancelled", s(OrderStatus::Cancelled.as_str()))
                .expression_attribute_values(":open_1", s(open_1.as_str()))
                .expression_attribute_values(":open_2", s(open_2.as_str()))
                .expression_attribute_values(":user", s(order.user_id.as_str()))
                .expression_attribute_values(
                    ":at",
                    s(rfc3339_millis::format(
                        &order.cancelled_at.unwrap_or(event.time),
                    )),
                )
                .build()
                .map_err(StoreError::from)?,
        );
        for (i, line) in order.items.iter().enumerate() {
            if not_restocked.contains(&line.product_id) {
                continue;
            }
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
        tx.put(Action::Outbox, outbox_put(&self.tables.outbox, event)?);
        match tx.commit(&self.client).await {
            Ok(()) => Ok(()),
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Order) => {
                Err(CancelOrderError::StatusChanged)
            }
            Err(TransactError::Cancelled(c))
                if c.failed()
                    .any(|(action, _)| matches!(action, Action::Restock(_))) =>
            {
                let gone = c
                    .failed()
                    .filter_map(|(action, _)| match action {
                        Action::Restock(i) => Some(order.items[i].product_id.clone()),
                        _ => None,
                    })
                    .collect();
                Err(CancelOrderError::ProductGone(gone))
            }
            Err(TransactError::Cancelled(c)) => Err(c.unexplained().into()),
            Err(TransactError::Store(e)) => Err(e.into()),
        }
    }
}
