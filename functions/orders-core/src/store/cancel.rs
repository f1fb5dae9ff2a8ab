//! The compensating transaction: cancel an order, restore its stock, write `order.cancelled`.

use std::future::Future;

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::{DynamoStore, StoreError, build_err, failed_at, n, s, unexplained};
use crate::domain::{Order, OrderId, OrderStatus, rfc3339_millis};
use crate::events::CloudEvent;

/// Why the cancel transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("the order's status changed since it was read")]
    StatusChanged,
    #[error("a product of the order no longer exists")]
    ProductGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What cancel-order may do to the database.
pub trait OrderCanceller: Send + Sync {
    fn order(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<super::StoredOrder>, StoreError>> + Send;

    /// One transaction: the order (still the caller's, still CREATED or CONFIRMED) becomes
    /// CANCELLED, every line's stock comes back, and the `order.cancelled` event is written.
    fn cancel_order(
        &self,
        order: &Order,
        event: &CloudEvent,
    ) -> impl Future<Output = Result<(), CancelError>> + Send;
}

impl OrderCanceller for DynamoStore {
    async fn order(&self, id: OrderId) -> Result<Option<super::StoredOrder>, StoreError> {
        self.get_order(id).await
    }

    async fn cancel_order(&self, order: &Order, event: &CloudEvent) -> Result<(), CancelError> {
        let mut actions = Vec::with_capacity(order.items.len() + 2);
        let cancel = Update::builder()
            .table_name(&self.tables.orders)
            .key("orderId", s(order.order_id.to_string()))
            .update_expression("SET #status = :cancelled, cancelledAt = :at")
            .condition_expression("userId = :user AND #status IN (:created, :confirmed)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s("CANCELLED"))
            .expression_attribute_values(":created", s("CREATED"))
            .expression_attribute_values(":confirmed", s("CONFIRMED"))
            .expression_attribute_values(":user", s(order.user_id.as_str()))
            .expression_attribute_values(":at", s(rfc3339_millis::format(&event.time)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        actions.push(TransactWriteItem::builder().update(cancel).build());
        for line in &order.items {
            let restock = Update::builder()
                .table_name(&self.tables.products)
                .key("productId", s(line.product_id.as_str()))
                .update_expression("SET stock = stock + :qty")
                .condition_expression("attribute_exists(productId)")
                .expression_attribute_values(":qty", n(line.quantity.get()))
                .build()
                .map_err(build_err)?;
            actions.push(TransactWriteItem::builder().update(restock).build());
        }
        debug_assert_eq!(event.data.status, OrderStatus::Cancelled);
        actions.push(self.outbox_put(event)?);
        match self.transact(actions).await? {
            Ok(()) => Ok(()),
            Err(reasons) if failed_at(&reasons, 0) => Err(CancelError::StatusChanged),
            Err(reasons) if (1..=order.items.len()).any(|i| failed_at(&reasons, i)) => {
                Err(CancelError::ProductGone)
            }
            Err(reasons) => Err(unexplained(&reasons).into()),
        }
    }
}
