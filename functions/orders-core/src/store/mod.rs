//! The DynamoDB adapter of the orders service's ports (`crate::service::ports`): one file per
//! transaction, plus the reads.
//!
//! Items are (de)serialised with serde_dynamo; every user-supplied value travels in
//! `ExpressionAttributeValues`, never in an expression's text.

use aws_sdk_dynamodb::Client;

use crate::config::Tables;

mod catalogue;
mod change_order;
mod items;
mod place_order;
mod reads;

pub use items::EXPIRING_INDEX;
pub use platform::dynamo::StoreError;
pub use reads::ORDERS_BY_USER_INDEX;

/// The DynamoDB-backed store of products, orders, the outbox and the inbox.
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
        Self::new(platform::aws::dynamodb_client(config), tables)
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}
