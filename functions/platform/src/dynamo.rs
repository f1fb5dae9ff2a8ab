//! DynamoDB plumbing every service's store uses: one error type, transactions whose actions carry
//! tags (so a cancellation is explained by what each action was, not by its position), and the
//! items of the outbox (events to publish) and the inbox (events already applied).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::events::{CloudEvent, EventType, rfc3339_millis};

/// How long an outbox item lives before DynamoDB's TTL may delete it.
pub const OUTBOX_RETENTION: Duration = Duration::days(7);
/// How long a processed event id is remembered: longer than a queue keeps a message (14 days).
pub const INBOX_RETENTION: Duration = Duration::days(15);

/// A failure of the database itself (not a business outcome).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed: {}", DisplayErrorContext(.0.as_ref()))]
    Dynamo(Box<aws_sdk_dynamodb::Error>),
    #[error("a DynamoDB request could not be built: {0}")]
    Build(#[from] BuildError),
    #[error("an item in {table} does not have the expected shape: {source}")]
    Corrupt {
        table: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("could not encode an item: {0}")]
    Encode(#[from] serde_dynamo::Error),
    #[error("the transaction was cancelled for reasons [{}]", .0.join(","))]
    Cancelled(Vec<String>),
    #[error("DynamoDB is throttling, busy or not answering")]
    Transient,
}

impl<E, R> From<SdkError<E, R>> for StoreError
where
    E: ProvideErrorMetadata,
    aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
{
    fn from(err: SdkError<E, R>) -> Self {
        // No answer in time, or no connection: the same request may succeed a moment later.
        let kind = match &err {
            SdkError::TimeoutError(_) => Some("timeout"),
            SdkError::DispatchFailure(_) => Some("no connection"),
            _ => None,
        };
        if let Some(kind) = kind {
            tracing::warn!(kind, "DynamoDB did not answer");
            return StoreError::Transient;
        }
        let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
        if is_transient_code(code) {
            return StoreError::Transient;
        }
        StoreError::Dynamo(Box::new(err.into()))
    }
}

/// Error and cancellation codes that mean "the same request may succeed a moment later".
pub fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "ThrottlingError"
            | "ThrottlingException"
            | "ProvisionedThroughputExceeded"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
    )
}

/// A number attribute.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Decodes an item of `table` with serde_dynamo.
pub fn decode<T: DeserializeOwned>(
    table: &'static str,
    item: HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|source| StoreError::Corrupt { table, source })
}

/// The actions of one `TransactWriteItems`, each with a tag saying what it is.
#[derive(Debug)]
pub struct Transaction<T> {
    actions: Vec<TransactWriteItem>,
    tags: Vec<T>,
}

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TransactError<T> {
    /// A condition failed or a conflict cancelled it.
    #[error("the transaction was cancelled")]
    Cancelled(Cancellation<T>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The reason of each action of a cancelled transaction, next to the action's tag.
#[derive(Debug)]
pub struct Cancellation<T> {
    reasons: Vec<(T, CancellationReason)>,
}

impl<T: Copy + PartialEq> Transaction<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            actions: Vec::with_capacity(capacity),
            tags: Vec::with_capacity(capacity),
        }
    }

    pub fn put(&mut self, tag: T, put: Put) -> &mut Self {
        self.push(tag, TransactWriteItem::builder().put(put).build())
    }

    pub fn update(&mut self, tag: T, update: Update) -> &mut Self {
        self.push(tag, TransactWriteItem::builder().update(update).build())
    }

    fn push(&mut self, tag: T, action: TransactWriteItem) -> &mut Self {
        self.actions.push(action);
        self.tags.push(tag);
        self
    }

    /// Commits every action or none.
    pub async fn commit(self, client: &Client) -> Result<(), TransactError<T>> {
        let result = client
            .transact_write_items()
            .set_transact_items(Some(self.actions))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx)) => match ctx.err() {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    Err(TransactError::Cancelled(Cancellation {
                        reasons: self
                            .tags
                            .into_iter()
                            .zip(cancel.cancellation_reasons().iter().cloned())
                            .collect(),
                    }))
                }
                _ => Err(StoreError::from(SdkError::ServiceError(ctx)).into()),
            },
            Err(other) => Err(StoreError::from(other).into()),
        }
    }
}

impl<T: Copy + PartialEq> Cancellation<T> {
    /// A cancellation as DynamoDB reports it: one reason per action, in the order of `tags`.
    pub fn new(tags: &[T], reasons: Vec<CancellationReason>) -> Self {
        Self {
            reasons: tags.iter().copied().zip(reasons).collect(),
        }
    }

    /// The actions whose condition failed, with the item as it was (when the action asked for
    /// it with `ReturnValuesOnConditionCheckFailure::AllOld`; empty when there was no item).
    pub fn failed(&self) -> impl Iterator<Item = (T, Option<&HashMap<String, AttributeValue>>)> {
        self.reasons
            .iter()
            .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
            .map(|(tag, reason)| (*tag, reason.item().filter(|item| !item.is_empty())))
    }

    /// Whether the action tagged `tag` failed its condition.
    pub fn failed_at(&self, tag: T) -> bool {
        self.failed().any(|(t, _)| t == tag)
    }

    /// The item as it was when the condition of the action tagged `tag` failed, decoded.
    pub fn old_item<I: DeserializeOwned>(
        &self,
        table: &'static str,
        tag: T,
    ) -> Option<Result<I, StoreError>> {
        let (_, item) = self.failed().find(|(t, _)| *t == tag)?;
        item.map(|item| decode(table, item.clone()))
    }

    /// What to make of a cancellation that no failed condition explains: a conflict or
    /// throttling (transient), or else something unexpected, named by its reason codes.
    pub fn unexplained(&self) -> StoreError {
        let codes = || self.reasons.iter().map(|(_, r)| r.code().unwrap_or("?"));
        if codes().any(is_transient_code) {
            return StoreError::Transient;
        }
        StoreError::Cancelled(codes().map(str::to_owned).collect())
    }
}

/// The outbox put of an event, kept for [`OUTBOX_RETENTION`]; never overwrites an event.
/// (An event id is derived from its subject and type, and its producer's state condition lets
/// each be written once; this condition guards its hour's bucket.)
pub fn outbox_put<T: EventType, D: Serialize>(
    table: &str,
    event: &CloudEvent<T, D>,
) -> Result<Put, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(event)?;
    item.insert(
        "expiresAt".to_owned(),
        n((event.time + OUTBOX_RETENTION).timestamp()),
    );
    // The hash key: the event's hour and shard, where the reconciler looks for it.
    item.insert(
        crate::reconcile::BUCKET.to_owned(),
        s(crate::reconcile::bucket_of(event.time, &event.id)),
    );
    Ok(Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(id)")
        .build()?)
}

/// An event a consumer applied: what its inbox record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub consumer: String,
    pub event_id: String,
    pub event_type: &'static str,
    pub subject: String,
}

impl Consumed {
    pub fn of<T: EventType, D>(consumer: &str, event: &CloudEvent<T, D>) -> Self {
        Self {
            consumer: consumer.to_owned(),
            event_id: event.id.clone(),
            event_type: event.event_type.as_str(),
            subject: event.subject.clone(),
        }
    }
}

/// The inbox record of an event `consumer` applied, kept for [`INBOX_RETENTION`]; its condition
/// fails when that consumer applied the event before. The inbox is keyed by (event id, consumer),
/// so two services consuming the same event never see each other's records as duplicates.
pub fn inbox_put<T: EventType, D>(
    table: &str,
    consumer: &str,
    event: &CloudEvent<T, D>,
    at: DateTime<Utc>,
) -> Result<Put, StoreError> {
    consumed_put(table, &Consumed::of(consumer, event), at)
}

/// The inbox record of a consumed event (see [`inbox_put`]).
pub fn consumed_put(
    table: &str,
    consumed: &Consumed,
    at: DateTime<Utc>,
) -> Result<Put, StoreError> {
    Ok(Put::builder()
        .table_name(table)
        .item("eventId", s(&consumed.event_id))
        .item("consumer", s(&consumed.consumer))
        .item("type", s(consumed.event_type))
        .item("orderId", s(&consumed.subject))
        .item("processedAt", s(rfc3339_millis::format(&at)))
        .item("expiresAt", n((at + INBOX_RETENTION).timestamp()))
        .condition_expression("attribute_not_exists(eventId)")
        .build()?)
}

/// Whether an inbox record was written now or found from before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Now,
    Before,
}

/// Writes an inbox record alone (for an event whose only effect is being recorded).
pub async fn record(client: &Client, put: Put) -> Result<Recorded, StoreError> {
    let result = client
        .put_item()
        .table_name(put.table_name())
        .set_item(Some(put.item().clone()))
        .set_condition_expression(put.condition_expression().map(str::to_owned))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Recorded::Now),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(Recorded::Before)
        }
        Err(e) => Err(e.into()),
    }
}

/// A DynamoDB item, as the SDK gives it.
pub type Item = HashMap<String, AttributeValue>;

/// How many times [`batch_get`] asks again for keys DynamoDB left unprocessed before it calls
/// the table busy.
const BATCH_GET_ROUNDS: usize = 5;

/// The items of these keys in one table (absent ones are left out, in no order): BatchGetItem
/// 100 keys at a time, asking again for what it leaves unprocessed.
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys.by_ref().take(100).collect()))
            .consistent_read(consistent)
            .build()?;
        let mut rounds = 0;
        loop {
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await?;
            found.extend(
                out.responses
                    .unwrap_or_default()
                    .remove(table)
                    .unwrap_or_default(),
            );
            match out.unprocessed_keys.and_then(|mut rest| rest.remove(table)) {
                Some(rest) if !rest.keys.is_empty() => request = rest,
                _ => break,
            }
            rounds += 1;
            if rounds == BATCH_GET_ROUNDS {
                return Err(StoreError::Transient);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Tag {
        Order,
        Line(usize),
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn failed_conditions_are_named_by_their_tags() {
        let tags = [Tag::Order, Tag::Line(0), Tag::Line(1)];
        let cancellation = Cancellation::new(
            &tags,
            vec![
                reason("None"),
                reason("None"),
                reason("ConditionalCheckFailed"),
            ],
        );
        assert!(cancellation.failed_at(Tag::Line(1)));
        assert!(!cancellation.failed_at(Tag::Order));
        assert_eq!(cancellation.failed().count(), 1);
    }

    #[test]
    fn a_cancellation_without_failed_conditions_is_transient_or_unexpected() {
        let tags = [Tag::Order, Tag::Line(0)];
        let conflict =
            Cancellation::new(&tags, vec![reason("None"), reason("TransactionConflict")]);
        assert!(matches!(conflict.unexplained(), StoreError::Transient));
        let odd = Cancellation::new(&tags, vec![reason("None"), reason("ValidationError")]);
        match odd.unexplained() {
            StoreError::Cancelled(codes) => assert_eq!(codes, ["None", "ValidationError"]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
