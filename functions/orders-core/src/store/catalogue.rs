//! Writing the catalogue: create a product or replace its details (never its stock), and change
//! stock by a delta together with its adjustment record.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put as PutAction, ReturnValue, ReturnValuesOnConditionCheckFailure, Update,
};
use platform::dynamo::{StoreError, TransactError, Transaction, decode, n, s};

use super::DynamoStore;
use super::items::{PRODUCTS, ProductItem, StockAndPrice};
use crate::domain::{Product, ProductId, Stock, StockAdjustment};
use crate::service::ports::{AdjustStockLevel, ProductDraft, WriteProduct};
use crate::service::{AdjustStockError, Put, PutProductError};

const ADJUSTMENTS: &str = "stock adjustments";

impl WriteProduct for DynamoStore {
    async fn put_product(&self, draft: &ProductDraft) -> Result<Put, PutProductError> {
        let initial = draft.stock.map_or(0, Stock::get);
        // The details are replaced whole: a limit left out of the body is removed.
        let details = "SET #name = :name, priceAmount = :amount, currency = :currency, \
                       stock = if_not_exists(stock, :initial)";
        let expression = match draft.max_per_order {
            Some(_) => format!("{details}, maxPerOrder = :max"),
            None => format!("{details} REMOVE maxPerOrder"),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.products)
            .key("productId", s(draft.id.as_str()))
            .update_expression(expression)
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(draft.name.as_str()))
            .expression_attribute_values(":amount", n(draft.price.amount()))
            .expression_attribute_values(":currency", s(draft.price.currency().as_str()))
            .expression_attribute_values(":initial", n(initial))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(max) = draft.max_per_order {
            update = update.expression_attribute_values(":max", n(max.get()));
        }
        if draft.stock.is_some() {
            // A stock given on a replace must be the stock there is: a stale body is refused.
            update =
                update.condition_expression("attribute_not_exists(productId) OR stock = :initial");
        }
        let out = match update.send().await {
            Ok(out) => out,
            Err(e) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                    e.as_service_error()
                {
                    let current = match failed.item() {
                        Some(item) => decode::<StockAndPrice>(PRODUCTS, item.clone())?.stock,
                        None => 0,
                    };
                    return Err(PutProductError::StockDiffers {
                        product: draft.id.clone(),
                        current,
                    });
                }
                return Err(StoreError::from(e).into());
            }
        };
        // The item as it was: none → created with the initial stock; else its stock is kept.
        let old = out.attributes.filter(|item| !item.is_empty());
        let created = old.is_none();
        let stock = match old {
            None => initial,
            Some(item) => decode::<StockAndPrice>(PRODUCTS, item)?.stock,
        };
        let product = Product {
            id: draft.id.clone(),
            name: draft.name.clone(),
            price: draft.price,
            max_per_order: draft.max_per_order,
            stock: Stock::on_hand(stock).map_err(|e| StoreError::Corrupt {
                table: PRODUCTS,
                source: serde::de::Error::custom(e),
            })?,
        };
        Ok(if created {
            Put::Created(product)
        } else {
            Put::Replaced(product)
        })
    }
}

impl DynamoStore {
    /// Writes a product item whole, stock included: for seeding a catalogue (the sample
    /// catalogue, the tests, the bench) before it takes orders — never what the API does.
    pub async fn seed_product(&self, product: &Product) -> Result<(), StoreError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(ProductItem::from_product(product))?;
        self.client
            .put_item()
            .table_name(&self.tables.products)
            .set_item(Some(item))
            .send()
            .await?;
        Ok(())
    }
}

/// What each action of the adjustment transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Record,
    Stock,
}

impl AdjustStockLevel for DynamoStore {
    async fn adjust_stock(&self, adjustment: &StockAdjustment) -> Result<(), AdjustStockError> {
        let record: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(adjustment).map_err(StoreError::from)?;
        let mut tx = Transaction::with_capacity(2);
        tx.put(
            Action::Record,
            PutAction::builder()
                .table_name(&self.tables.stock_adjustments)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(adjustmentId)")
                .build()
                .map_err(StoreError::from)?,
        );
        tx.update(
            Action::Stock,
            Update::builder()
                .table_name(&self.tables.products)
                .key("productId", s(adjustment.product_id.as_str()))
                .update_expression("SET stock = stock + :delta")
                .condition_expression("attribute_exists(productId) AND stock >= :needs")
                .expression_attribute_values(":delta", n(adjustment.delta.get()))
                .expression_attribute_values(":needs", n(adjustment.delta.needs()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(StoreError::from)?,
        );
        match tx.commit(&self.client).await {
            Ok(()) => Ok(()),
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Record) => {
                Err(AdjustStockError::AdjustmentExists)
            }
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Stock) => {
                match c.old_item::<StockAndPrice>(PRODUCTS, Action::Stock) {
                    None => Err(AdjustStockError::UnknownProduct(
                        adjustment.product_id.clone(),
                    )),
                    Some(Err(e)) => Err(e.into()),
                    Some(Ok(current)) => Err(AdjustStockError::InsufficientStock {
                        product: adjustment.product_id.clone(),
                        needs: adjustment.delta.needs(),
                        available: current.stock,
                    }),
                }
            }
            Err(TransactError::Cancelled(c)) => Err(c.unexplained().into()),
            Err(TransactError::Store(e)) => Err(e.into()),
        }
    }

    async fn adjustment(
        &self,
        product: &ProductId,
        adjustment_id: &str,
    ) -> Result<Option<StockAdjustment>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.stock_adjustments)
            .key("productId", s(product.as_str()))
            .key("adjustmentId", s(adjustment_id))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(|item| decode(ADJUSTMENTS, item)).transpose()
    }
}
