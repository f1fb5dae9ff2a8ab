//! order-events: applies the events of the order-events queue, each exactly once in effect.
//!
//! Each message body is parsed here (not by the runtime), so one bad message fails alone. On the
//! FIFO queue, the first failure stops the batch: it and every later message are reported, so
//! nothing overtakes a failed event of the same order.

pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::domain::OrderId;
use crate::events::{CloudEvent, EventType, SPEC_VERSION};
use crate::metrics::{Metrics, Unit, names};
use crate::store::{Applied, EventInbox, StoreError};

/// Why one message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("the message has no body")]
    NoBody,
    #[error("the body is not a CloudEvent this service reads: {0}")]
    NotAnEvent(#[from] serde_json::Error),
    #[error("unsupported CloudEvents specversion {0}")]
    SpecVersion(String),
    #[error("the subject {0:?} is not an order id")]
    Subject(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses a message body as a CloudEvent of a known type.
pub fn parse(message: &SqsMessage) -> Result<CloudEvent, MessageError> {
    let body = message.body.as_deref().ok_or(MessageError::NoBody)?;
    let event: CloudEvent = serde_json::from_str(body)?;
    if event.specversion != SPEC_VERSION {
        return Err(MessageError::SpecVersion(event.specversion));
    }
    Ok(event)
}

/// Applies one event.
pub async fn apply<S: EventInbox>(
    store: &S,
    event: &CloudEvent,
    now: DateTime<Utc>,
) -> Result<Applied, MessageError> {
    let order_id = OrderId::parse(&event.subject)
        .ok_or_else(|| MessageError::Subject(event.subject.clone()))?;
    let applied = match event.event_type {
        EventType::OrderCreated => store.confirm(&event.id, order_id, now).await?,
        EventType::OrderCancelled => {
            store
                .record(&event.id, event.event_type, order_id, now)
                .await?
        }
    };
    Ok(applied)
}

fn is_fifo(message: &SqsMessage) -> bool {
    message.attributes.contains_key("MessageGroupId")
        || message
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
}

/// Processes a batch; answers the messages to retry.
pub async fn consume<S: EventInbox>(
    store: &S,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let mut stopped = false;
    for message in &event.records {
        let id = message.message_id.clone().unwrap_or_default();
        if stopped {
            failures.push(id);
            continue;
        }
        let span = tracing::info_span!(
            "message",
            message_id = %id,
            event_id = tracing::field::Empty,
            order_id = tracing::field::Empty,
            xray_trace_id = message.attributes.get("AWSTraceHeader").map(String::as_str).unwrap_or(""),
            receive_count = message.attributes.get("ApproximateReceiveCount").map(String::as_str).unwrap_or(""),
        );
        // Boxed: the SDK futures nest deeply, and one allocation per message keeps the handler's
        // future type within the compiler's layout depth.
        let result = Box::pin(async {
            let event = parse(message)?;
            let span = tracing::Span::current();
            span.record("event_id", event.id.as_str());
            span.record("order_id", event.subject.as_str());
            if !message.attributes.contains_key("AWSTraceHeader")
                && let Some(header) = event.xray_trace_header()
            {
                span.record("xray_trace_id", header.as_str());
            }
            let now = Utc::now();
            let applied = apply(store, &event, now).await?;
            metrics.add(names::EVENTS_CONSUMED, Unit::Count, 1.0);
            let age = (now - event.time).num_milliseconds().max(0);
            metrics.add(names::EVENT_AGE, Unit::Milliseconds, age as f64);
            tracing::info!(event_type = event.event_type.as_str(), outcome = ?applied, "event consumed");
            Ok::<_, MessageError>(())
        }
        .instrument(span.clone()))
        .await;
        if let Err(error) = result {
            span.in_scope(|| tracing::error!(%error, "message failed"));
            metrics.add(names::CONSUMER_FAILURES, Unit::Count, 1.0);
            failures.push(id);
            stopped = is_fifo(message);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
