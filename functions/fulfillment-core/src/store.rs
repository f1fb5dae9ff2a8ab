//! The DynamoDB adapter of the shipments table: each shipment written with its event (the shared
//! outbox) and the consumed event (the inbox) in one transaction.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::Put;
use platform::config::{ConfigError, Vars};
use platform::dynamo::{
    Consumed, Recorded, StoreError, TransactError, Transaction, consumed_put, decode, outbox_put,
    record, s,
};

use crate::domain::{Shipment, ShipmentStatus};
use crate::events::ShipmentEvent;
use crate::service::{Shipments, ShipmentsError};

const SHIPMENTS: &str = "shipments";

/// The tables fulfillment writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentTables {
    pub shipments: String,
    pub outbox: String,
    pub inbox: String,
}

impl ShipmentTables {
    /// `SHIPMENTS_TABLE`, `OUTBOX_TABLE`, `INBOX_TABLE`, as template.yaml passes them.
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            shipments: vars.required("SHIPMENTS_TABLE")?,
            outbox: vars.required("OUTBOX_TABLE")?,
            inbox: vars.required("INBOX_TABLE")?,
        })
    }
}

/// The DynamoDB-backed shipments table.
#[derive(Debug, Clone)]
pub struct DynamoShipments {
    client: Client,
    tables: ShipmentTables,
}

impl DynamoShipments {
    pub fn new(client: Client, tables: ShipmentTables) -> Self {
        Self { client, tables }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Shipment,
    Outbox,
    Inbox,
}

impl Shipments for DynamoShipments {
    async fn shipment(&self, order_id: &str) -> Result<Option<Shipment>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.shipments)
            .key("orderId", s(order_id))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(|item| decode(SHIPMENTS, item)).transpose()
    }

    async fn save(
        &self,
        shipment: &Shipment,
        read: Option<ShipmentStatus>,
        event: &ShipmentEvent,
        consumed: &Consumed,
    ) -> Result<(), ShipmentsError> {
        let item = serde_dynamo::to_item(shipment).map_err(StoreError::from)?;
        let put = Put::builder()
            .table_name(&self.tables.shipments)
            .set_item(Some(item));
        let put = match read {
            None => put.condition_expression("attribute_not_exists(orderId)"),
            Some(status) => put
                .condition_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str())),
        };
        let mut tx = Transaction::with_capacity(3);
        tx.put(Action::Shipment, put.build().map_err(StoreError::from)?);
        tx.put(Action::Outbox, outbox_put(&self.tables.outbox, event)?);
        tx.put(
            Action::Inbox,
            consumed_put(&self.tables.inbox, consumed, event.time)?,
        );
        match tx.commit(&self.client).await {
            Ok(()) => Ok(()),
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Inbox) => {
                Err(ShipmentsError::AlreadyApplied)
            }
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Shipment) => {
                Err(ShipmentsError::Changed)
            }
            Err(TransactError::Cancelled(c)) => Err(c.unexplained().into()),
            Err(TransactError::Store(e)) => Err(e.into()),
        }
    }

    async fn record(&self, consumed: &Consumed) -> Result<Recorded, StoreError> {
        let put = consumed_put(&self.tables.inbox, consumed, chrono::Utc::now())?;
        record(&self.client, put).await
    }
}
