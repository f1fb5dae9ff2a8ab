//! The DynamoDB adapter of the payments ledger: one item per order's payment (the payments table),
//! written with its event (the shared outbox) and the consumed event (the inbox) in one
//! transaction, only if the item is still as it was read.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::Put;
use platform::config::{ConfigError, Vars};
use platform::dynamo::{
    Consumed, Recorded, StoreError, TransactError, Transaction, consumed_put, decode, n,
    outbox_put, record, s,
};

use crate::domain::{Payment, PaymentStatus};
use crate::service::{HeldAuthorizations, PaymentLedger, Save, SaveError};

const PAYMENTS: &str = "payments";
/// The sparse GSI of authorized payments (funds held), by the hour of their authorization.
pub const HOLDING_INDEX: &str = "holding";
const HELD_HOUR: &str = "heldHour";
const AUTHORIZED_AT: &str = "authorizedAt";
/// How far back the stranded-authorization check looks (Stripe releases an uncaptured charge
/// after 7 days).
const HOLDING_LOOKBACK: chrono::Duration = chrono::Duration::days(8);

fn hour_of(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// The tables the payments service writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerTables {
    pub payments: String,
    pub outbox: String,
    pub inbox: String,
}

impl LedgerTables {
    /// `PAYMENTS_TABLE`, `OUTBOX_TABLE`, `INBOX_TABLE`, as template.yaml passes them.
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            payments: vars.required("PAYMENTS_TABLE")?,
            outbox: vars.required("OUTBOX_TABLE")?,
            inbox: vars.required("INBOX_TABLE")?,
        })
    }
}

/// The DynamoDB-backed ledger.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    tables: LedgerTables,
}

/// What each action of a save is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Payment,
    Outbox,
    Inbox,
}

impl DynamoLedger {
    pub fn new(client: Client, tables: LedgerTables) -> Self {
        Self { client, tables }
    }
}

impl PaymentLedger for DynamoLedger {
    async fn payment(&self, order_id: &str) -> Result<Option<Payment>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.payments)
            .key("orderId", s(order_id))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(|item| decode(PAYMENTS, item)).transpose()
    }

    async fn save(&self, save: &Save<'_>) -> Result<(), SaveError> {
        let mut item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            serde_dynamo::to_item(save.payment).map_err(StoreError::from)?;
        if save.payment.status == PaymentStatus::Authorized {
            // In the sparse `holding` index while the funds are held (see `HeldAuthorizations`).
            let now = chrono::Utc::now();
            item.insert(HELD_HOUR.into(), s(hour_of(now)));
            item.insert(
                AUTHORIZED_AT.into(),
                s(platform::events::rfc3339_millis::format(&now)),
            );
        }
        let put = Put::builder()
            .table_name(&self.tables.payments)
            .set_item(Some(item));
        let put = match save.read {
            None => put.condition_expression("attribute_not_exists(orderId)"),
            Some(read) => put
                .condition_expression("#status = :status AND attempt = :attempt")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(read.status.as_str()))
                .expression_attribute_values(":attempt", n(read.attempt)),
        };
        let mut tx = Transaction::with_capacity(3);
        tx.put(Action::Payment, put.build().map_err(StoreError::from)?);
        if let Some(event) = save.event {
            tx.put(Action::Outbox, outbox_put(&self.tables.outbox, event)?);
        }
        if let Some(consumed) = save.consumed {
            tx.put(
                Action::Inbox,
                consumed_put(&self.tables.inbox, consumed, chrono::Utc::now())?,
            );
        }
        match tx.commit(&self.client).await {
            Ok(()) => Ok(()),
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Inbox) => {
                Err(SaveError::AlreadyApplied)
            }
            Err(TransactError::Cancelled(c)) if c.failed_at(Action::Payment) => {
                Err(SaveError::Changed)
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

impl HeldAuthorizations for DynamoLedger {
    async fn held_since_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut orders = Vec::new();
        let mut hour = cutoff - HOLDING_LOOKBACK;
        let at = platform::events::rfc3339_millis::format(&cutoff);
        while hour <= cutoff {
            let mut pages = self
                .client
                .query()
                .table_name(&self.tables.payments)
                .index_name(HOLDING_INDEX)
                .key_condition_expression("#hour = :hour AND #at <= :at")
                .expression_attribute_names("#hour", HELD_HOUR)
                .expression_attribute_names("#at", AUTHORIZED_AT)
                .expression_attribute_values(":hour", s(hour_of(hour)))
                .expression_attribute_values(":at", s(at.clone()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for item in page?.items.unwrap_or_default() {
                    if let Some(id) = item.get("orderId").and_then(|v| v.as_s().ok()) {
                        orders.push(id.clone());
                    }
                }
            }
            hour += chrono::Duration::hours(1);
        }
        Ok(orders)
    }
}
