//! The outbox relay: an outbox table's stream → the SNS FIFO events topic, which fans each event out
//! to the FIFO queue of every service that subscribed to its type.
//!
//! Records are relayed in stream order, up to ten to a `PublishBatch`, with the event's subject (the
//! order id) as `MessageGroupId` (order per order), the event id as `MessageDeduplicationId` (a re-sent
//! event is dropped within the 5-minute window) and the type as the `type` message attribute. At the first record that cannot be sent the relay
//! stops and reports that record's sequence number, so Lambda retries from exactly there.
//!
//! SNS accepts or refuses each entry of a batch on its own, so entries after a refused one in the
//! same call may still be accepted. A call therefore never carries two events of the same order:
//! what slips through is only ever another order's event (re-sent on retry and deduplicated), never
//! a later event of the order whose event failed.
//!
//! The stream mapping retries without end (`MaximumRetryAttempts: -1`), so a send that fails only
//! delays events. A record the relay can never send (an INSERT that is not an outbox event it
//! understands) would then hold its shard for good: it is set aside instead — its whole content
//! goes to the relay's dead-letter queue, it is reported handled, and the records after it flow.

use std::future::Future;

pub use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
pub use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::Serialize;

use crate::metrics::{Metrics, Unit, names};

/// At most this many messages per SNS `PublishBatch` (its limit).
pub const PUBLISH_BATCH: usize = 10;

/// One event, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub event_id: String,
    /// The event's type, the message attribute subscriptions filter on.
    pub event_type: String,
    pub group_id: String,
    pub body: String,
    /// The order's X-Ray trace, for the relay's log line (it travels in the event's
    /// `traceparent`: SNS `PublishBatch` carries no per-message X-Ray header).
    pub trace_header: Option<String>,
}

/// Why a batch could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("SNS request failed: {}", aws_sdk_sns::error::DisplayErrorContext(.0.as_ref()))]
    Sns(Box<aws_sdk_sns::Error>),
    #[error("SQS request failed: {}", DisplayErrorContext(.0.as_ref()))]
    Sqs(Box<aws_sdk_sqs::Error>),
    #[error("a request could not be built: {0}")]
    Build(String),
    #[error("the events topic refused event {0}")]
    Refused(String),
}

impl From<aws_sdk_sns::error::BuildError> for PublishError {
    fn from(err: aws_sdk_sns::error::BuildError) -> Self {
        PublishError::Build(err.to_string())
    }
}

impl PublishError {
    fn sns<E, R>(err: aws_sdk_sns::error::SdkError<E, R>) -> Self
    where
        aws_sdk_sns::Error: From<aws_sdk_sns::error::SdkError<E, R>>,
    {
        PublishError::Sns(Box::new(err.into()))
    }

    fn sqs<E, R>(err: aws_sdk_sqs::error::SdkError<E, R>) -> Self
    where
        aws_sdk_sqs::Error: From<aws_sdk_sqs::error::SdkError<E, R>>,
    {
        PublishError::Sqs(Box::new(err.into()))
    }
}

/// Where the relay sends events, and the records it cannot send.
pub trait Publisher: Send + Sync {
    /// Sends up to ten events; answers the positions (in `batch`) of those the topic did not accept.
    fn publish(
        &self,
        batch: &[Outgoing],
    ) -> impl Future<Output = Result<Vec<usize>, PublishError>> + Send;

    /// Sends a record that can never be relayed, whole, to the dead-letter queue.
    fn set_aside(
        &self,
        dead_letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A stream record the relay can never send, and why: the body of its dead-letter message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub reason: String,
    /// The stream record as Lambda delivered it (keys, new image, sequence number), or only its
    /// keys and sequence number when the whole would not fit in a message.
    pub record: serde_json::Value,
    pub truncated: bool,
}

impl DeadLetter {
    /// The largest body sent whole: SQS takes 256 KiB; the rest is kept for the envelope.
    pub const MAX_RECORD_BYTES: usize = 250 * 1024;

    pub fn new(record: &EventRecord, reason: &RecordError) -> Self {
        let whole = serde_json::to_value(record).unwrap_or_default();
        let fits = whole.to_string().len() <= Self::MAX_RECORD_BYTES;
        let record = if fits {
            whole
        } else {
            serde_json::json!({
                "eventID": record.event_id,
                "eventName": record.event_name,
                "eventSourceARN": record.event_source_arn,
                "dynamodb": {
                    "Keys": serde_json::to_value(&record.change.keys).unwrap_or_default(),
                    "SequenceNumber": record.change.sequence_number,
                },
            })
        };
        Self {
            reason: reason.to_string(),
            record,
            truncated: !fits,
        }
    }
}

/// The SNS FIFO topic the events go to (each consuming service's queue is subscribed to it,
/// filtered on the `type` message attribute), and the SQS queue records that cannot be sent go to.
#[derive(Debug, Clone)]
pub struct TopicPublisher {
    sns: aws_sdk_sns::Client,
    topic_arn: String,
    sqs: aws_sdk_sqs::Client,
    dead_letter_queue_url: String,
}

/// The message attribute the subscriptions' filter policies read.
pub const TYPE_ATTRIBUTE: &str = "type";

impl TopicPublisher {
    pub fn new(
        sns: aws_sdk_sns::Client,
        topic_arn: String,
        sqs: aws_sdk_sqs::Client,
        dead_letter_queue_url: String,
    ) -> Self {
        Self {
            sns,
            topic_arn,
            sqs,
            dead_letter_queue_url,
        }
    }
}

impl Publisher for TopicPublisher {
    async fn set_aside(&self, dead_letter: &DeadLetter) -> Result<(), PublishError> {
        let body = serde_json::to_string(dead_letter).unwrap_or_default();
        self.sqs
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(PublishError::sqs)?;
        Ok(())
    }

    async fn publish(&self, batch: &[Outgoing]) -> Result<Vec<usize>, PublishError> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let event_type = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&e.event_type)
                    .build()?;
                Ok(PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(&e.body)
                    .message_group_id(&e.group_id)
                    .message_deduplication_id(&e.event_id)
                    .message_attributes(TYPE_ATTRIBUTE, event_type)
                    .build()?)
            })
            .collect::<Result<Vec<_>, PublishError>>()?;
        let out = self
            .sns
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(PublishError::sns)?;
        let mut failed: Vec<usize> = out
            .failed
            .unwrap_or_default()
            .iter()
            .inspect(|f| {
                tracing::warn!(entry = %f.id, code = %f.code, sender_fault = f.sender_fault, "SNS refused an event");
            })
            .filter_map(|f| f.id.parse().ok())
            .collect();
        failed.sort_unstable();
        Ok(failed)
    }
}

/// Why a stream record could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the record has no sequence number")]
    NoSequenceNumber,
    #[error("the new image is not an outbox event: {0}")]
    NotAnEvent(#[from] serde_dynamo::Error),
    #[error("the event cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// Not a CloudEvents 1.0 event whose id derives from its subject and type.
    #[error("the new image is not an outbox event: {0}")]
    Foreign(String),
}

/// What the relay needs to know of an outbox's events: how to read one from an outbox item.
pub trait OutboxEvents {
    fn outgoing_item(item: serde_dynamo::Item) -> Result<Outgoing, RecordError>;

    /// The event of a stream record's new image.
    fn outgoing(record: &EventRecord) -> Result<Outgoing, RecordError> {
        Self::outgoing_item(record.change.new_image.clone())
    }
}

/// The shared outbox every service writes its events to: any CloudEvents 1.0 event whose id is
/// derived from its subject and type, relayed as it was written (whatever its type and data).
pub struct SharedOutbox;

/// The envelope attributes the relay reads of an event of any service.
#[derive(Debug, serde::Deserialize)]
struct Envelope {
    specversion: String,
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    subject: String,
    #[serde(default)]
    traceparent: Option<String>,
}

/// Attributes of an outbox item that are the outbox's own, not the event's.
const OUTBOX_ATTRIBUTES: [&str; 3] = ["expiresAt", crate::reconcile::BUCKET, "republished"];

impl OutboxEvents for SharedOutbox {
    fn outgoing_item(item: serde_dynamo::Item) -> Result<Outgoing, RecordError> {
        let mut event: serde_json::Map<String, serde_json::Value> = serde_dynamo::from_item(item)?;
        for name in OUTBOX_ATTRIBUTES {
            event.remove(name);
        }
        let event = serde_json::Value::Object(event);
        let envelope: Envelope = serde_json::from_value(event.clone())
            .map_err(|e| RecordError::Foreign(e.to_string()))?;
        if envelope.specversion != crate::events::SPEC_VERSION {
            return Err(RecordError::Foreign(format!(
                "specversion {}",
                envelope.specversion
            )));
        }
        if envelope.id
            != crate::events::event_id(&envelope.subject, &envelope.event_type).to_string()
        {
            return Err(RecordError::Foreign(format!(
                "id {} is not derived from its subject and type",
                envelope.id
            )));
        }
        Ok(Outgoing {
            trace_header: envelope
                .traceparent
                .as_deref()
                .and_then(crate::events::xray_from_traceparent),
            group_id: envelope.subject,
            event_id: envelope.id,
            event_type: envelope.event_type,
            body: serde_json::to_string(&event)?,
        })
    }
}

/// Lambda retries the batch from this record's sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RetryFrom(String);

/// Relays one batch of stream records. Only INSERTs are relayed; MODIFY, REMOVE and TTL deletes
/// (which DynamoDB Local shows as `UNKNOWN_TO_SDK_VERSION`) are skipped.
pub async fn relay<E: OutboxEvents, P: Publisher>(
    publisher: &P,
    metrics: &Metrics,
    event: StreamEvent,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Err(RetryFrom(sequence_number)) =
        relay_records::<E, P>(publisher, metrics, &event.records).await
    {
        let mut item = DynamoDbBatchItemFailure::default();
        item.item_identifier = Some(sequence_number);
        response.batch_item_failures = vec![item];
    }
    response
}

async fn relay_records<E: OutboxEvents, P: Publisher>(
    publisher: &P,
    metrics: &Metrics,
    records: &[EventRecord],
) -> Result<(), RetryFrom> {
    let mut pending: Vec<(String, Outgoing)> = Vec::with_capacity(PUBLISH_BATCH);
    for record in records {
        if record.event_name != "INSERT" {
            tracing::debug!(event_name = %record.event_name, "skipping a record that is not an INSERT");
            continue;
        }
        let Some(seq) = record.change.sequence_number.clone() else {
            tracing::error!(error = %RecordError::NoSequenceNumber, event_id = %record.event_id, "cannot relay");
            continue;
        };
        match E::outgoing(record) {
            Ok(out) => {
                if pending.iter().any(|(_, p)| p.group_id == out.group_id) {
                    flush(publisher, metrics, &mut pending).await?;
                }
                pending.push((seq, out));
            }
            Err(error) => {
                // Send what came before (in order), then set this record aside whole; if even
                // that fails, retry from here.
                flush(publisher, metrics, &mut pending).await?;
                tracing::error!(%error, sequence_number = %seq, "an outbox record cannot be relayed; setting it aside");
                if let Err(e) = publisher.set_aside(&DeadLetter::new(record, &error)).await {
                    tracing::warn!(error = %e, "setting the record aside failed");
                    return Err(RetryFrom(seq));
                }
                metrics.add(names::RECORDS_SET_ASIDE, Unit::Count, 1.0);
            }
        }
        if pending.len() == PUBLISH_BATCH {
            flush(publisher, metrics, &mut pending).await?;
        }
    }
    flush(publisher, metrics, &mut pending).await
}

/// Sends the pending events; on failure answers the record to retry from.
async fn flush<P: Publisher>(
    publisher: &P,
    metrics: &Metrics,
    pending: &mut Vec<(String, Outgoing)>,
) -> Result<(), RetryFrom> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch: Vec<Outgoing> = pending.iter().map(|(_, o)| o.clone()).collect();
    let first_failed = match publisher.publish(&batch).await {
        Ok(failed) => failed.first().copied(),
        Err(error) => {
            tracing::warn!(%error, "sending events failed");
            Some(0)
        }
    };
    let sent = first_failed.unwrap_or(pending.len());
    metrics.add(names::EVENTS_RELAYED, Unit::Count, sent as f64);
    for (seq, out) in &pending[..sent] {
        tracing::info!(
            event_id = %out.event_id,
            order_id = %out.group_id,
            sequence_number = %seq,
            xray_trace_id = out.trace_header.as_deref().unwrap_or(""),
            "event relayed"
        );
    }
    let result = match first_failed {
        Some(i) => Err(RetryFrom(pending[i].0.clone())),
        None => Ok(()),
    };
    pending.clear();
    result
}
