//! The order transaction: the order, each line's stock decrement (only if enough is left, at the
//! price the order was priced at), the `order.created` event and the user's quota count — all or
//! nothing.

use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, Update};
use chrono::Duration;
use platform::dynamo::{Cancellation, StoreError, TransactError, Transaction, n, outbox_put, s};

use super::DynamoStore;
use super::items::{PRODUCTS, StockAndPrice, encode_order, quota_key};
use crate::domain::Order;
use crate::service::CreateOrderError;
use crate::service::ports::{NewOrder, PlaceOrder};

/// How long a per-minute quota counter is kept after its minute (TTL; never read after the minute).
const QUOTA_RETENTION: Duration = Duration::minutes(10);

/// What each action of the transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Order,
    /// The stock decrement of the order's line at this index.
    Line(usize),
    Outbox,
    Quota,
}

impl PlaceOrder for DynamoStore {
    async fn place_order(&self, new: &NewOrder<'_>) -> Result<(), CreateOrderError> {
        let order = new.order;
        let order_item = encode_order(order, new.request_hash)?;
        let mut tx = Transaction::with_capacity(order.items.len() + 3);
        tx.put(
            Action::Order,
            Put::builder()
                .table_name(&self.tables.orders)
                .set_item(Some(order_item))
                .condition_expression("attribute_not_exists(orderId)")
                .build()
                .map_err(StoreError::from)?,
        );
        for (i, line) in order.items.iter().enumerate() {
            tx.update(
                Action::Line(i),
                Update::builder()
                    .table_name(&self.tables.products)
                    .key("productId", s(line.product_id.as_str()))
                    .update_expression("SET stock = stock - :qty")
                    .condition_expression(
                        "attribute_exists(productId) AND stock >= :qty \
                         AND priceAmount = :price AND currency = :currency \
                         AND (attribute_not_exists(maxPerOrder) OR maxPerOrder >= :qty)",
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
                    .map_err(StoreError::from)?,
            );
        }
        tx.put(Action::Outbox, outbox_put(&self.tables.outbox, new.event)?);
        tx.update(
            Action::Quota,
            Update::builder()
                .table_name(&self.tables.orders)
                .key("orderId", s(quota_key(&order.user_id, order.created_at)))
                .update_expression(
                    "SET orderCount = if_not_exists(orderCount, :zero) + :one, \
                     expiresAt = :expires",
                )
                .condition_expression("attribute_not_exists(orderCount) OR orderCount < :limit")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":limit", n(new.orders_per_minute))
                .expression_attribute_values(
                    ":expires",
                    n((order.created_at + QUOTA_RETENTION).timestamp()),
                )
                .build()
                .map_err(StoreError::from)?,
        );
        match tx.commit(&self.client).await {
            Ok(()) => Ok(()),
            Err(TransactError::Cancelled(cancellation)) => {
                Err(explain(order, new.orders_per_minute, &cancellation))
            }
            Err(TransactError::Store(e)) => Err(e.into()),
        }
    }
}

/// The business outcome of a cancelled order transaction. Conditions that failed win over
/// transient reasons.
fn explain(order: &Order, limit: u32, cancellation: &Cancellation<Action>) -> CreateOrderError {
    if cancellation.failed_at(Action::Order) {
        return CreateOrderError::OrderExists;
    }
    for (i, line) in order.items.iter().enumerate() {
        if !cancellation.failed_at(Action::Line(i)) {
            continue;
        }
        let current: StockAndPrice = match cancellation.old_item(PRODUCTS, Action::Line(i)) {
            None => return CreateOrderError::UnknownProduct(line.product_id.clone()),
            Some(Err(e)) => return e.into(),
            Some(Ok(current)) => current,
        };
        if let Some(limit) = current.max_per_order
            && limit < line.quantity.get()
        {
            return CreateOrderError::AboveMaxPerOrder {
                product: line.product_id.clone(),
                requested: line.quantity,
                limit,
            };
        }
        if current.stock < i64::from(line.quantity.get()) {
            return CreateOrderError::InsufficientStock {
                product: line.product_id.clone(),
                requested: line.quantity,
                available: current.stock,
            };
        }
        if !current.priced_at(line.unit_price) {
            return CreateOrderError::PriceChanged(line.product_id.clone());
        }
    }
    if cancellation.failed_at(Action::Quota) {
        return CreateOrderError::QuotaExceeded {
            limit,
            retry_after_secs: crate::service::seconds_to_next_minute(order.created_at),
        };
    }
    cancellation.unexplained().into()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};

    use super::*;

    fn order_of(lines: &[(&str, u32)]) -> Order {
        crate::fixtures::order(lines, 100)
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

    /// The transaction's tags for an order of `lines` lines, in the order they are added.
    fn explain_with(order: &Order, reasons: Vec<CancellationReason>) -> CreateOrderError {
        let mut tags = vec![Action::Order];
        tags.extend((0..order.items.len()).map(Action::Line));
        tags.extend([Action::Outbox, Action::Quota]);
        explain(order, 10, &Cancellation::new(&tags, reasons))
    }

    #[test]
    fn short_line_is_reported_with_what_is_left() {
        let order = order_of(&[("a", 1), ("b", 5)]);
        let stock_b = [
            ("stock", n(3)),
            ("priceAmount", n(100)),
            ("currency", s("EUR")),
        ];
        let reasons = vec![
            reason("None", None),
            reason("None", None),
            reason("ConditionalCheckFailed", Some(&stock_b)),
            reason("None", None),
            reason("None", None),
        ];
        match explain_with(&order, reasons) {
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
        let reasons = vec![
            reason("None", None),
            reason("ConditionalCheckFailed", None),
            reason("None", None),
            reason("None", None),
        ];
        assert!(matches!(
            explain_with(&order, reasons),
            CreateOrderError::UnknownProduct(p) if p.as_str() == "a"
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
        let reasons = vec![
            reason("None", None),
            reason("ConditionalCheckFailed", Some(&current)),
            reason("None", None),
            reason("None", None),
        ];
        assert!(matches!(
            explain_with(&order, reasons),
            CreateOrderError::PriceChanged(_)
        ));
    }

    #[test]
    fn existing_order_quota_and_conflicts_are_told_apart() {
        let order = order_of(&[("a", 1)]);
        let none = || reason("None", None);
        let failed = || reason("ConditionalCheckFailed", None);
        assert!(matches!(
            explain_with(&order, vec![failed(), none(), none(), none()]),
            CreateOrderError::OrderExists
        ));
        assert!(matches!(
            explain_with(&order, vec![none(), none(), none(), failed()]),
            CreateOrderError::QuotaExceeded { limit: 10, .. }
        ));
        let conflict = vec![none(), reason("TransactionConflict", None), none(), none()];
        assert!(matches!(
            explain_with(&order, conflict),
            CreateOrderError::Store(StoreError::Transient)
        ));
        let throttled = vec![none(), none(), reason("ThrottlingError", None), none()];
        assert!(matches!(
            explain_with(&order, throttled),
            CreateOrderError::Store(StoreError::Transient)
        ));
        let validation = vec![none(), reason("ValidationError", None), none(), none()];
        assert!(matches!(
            explain_with(&order, validation),
            CreateOrderError::Store(StoreError::Cancelled(_))
        ));
    }
}
