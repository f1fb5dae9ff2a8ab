//! Writing the catalogue: create or replace a product.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use platform::dynamo::StoreError;

use super::DynamoStore;
use super::items::ProductItem;
use crate::domain::Product;
use crate::service::ports::WriteProduct;

impl WriteProduct for DynamoStore {
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
