//! The inbox-guarded consumer loop: applies the events of a queue, one message at a time.
//!
//! Each message body is parsed here (not by the runtime), so one bad message fails alone. On a
//! FIFO queue, the first failure stops the batch: it and every later message are reported, so
//! nothing overtakes a failed event of the same group. The service's `apply` makes each event's
//! effect happen once (its inbox record is written in the same transaction as the effect).

use std::fmt::{Debug, Display};
use std::future::Future;

pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::events::{CloudEvent, EventType, SPEC_VERSION};
use crate::metrics::{Metrics, Unit, names};

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied<S> {
    /// The effect was applied now.
    Done,
    /// This event id was processed before: nothing changed.
    Duplicate,
    /// What the event is about was not in a state the event applies to (`S` says which state);
    /// the event is recorded as processed and nothing else changes.
    Skipped(S),
}

/// Why one message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError<E> {
    #[error("the message has no body")]
    NoBody,
    #[error("the body is not a CloudEvent this service reads: {0}")]
    NotAnEvent(#[from] serde_json::Error),
    #[error("unsupported CloudEvents specversion {0}")]
    SpecVersion(String),
    /// Event ids are derived from (subject, type): an id that is not was never written by a
    /// producer of this shop.
    #[error("event {id} is not the id of a {event_type} event about {subject}")]
    ForeignId {
        id: String,
        event_type: &'static str,
        subject: String,
    },
    #[error(transparent)]
    Apply(E),
}

/// Which service (CloudEvents `source`) produces the events of each domain (`payment` of
/// `payment.authorized`): a consumer applies an event only from its producer. Configured as
/// `payment=payments;shipment=fulfillment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producers(Vec<(String, String)>);

/// An event from a service that does not produce its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {event_type} event from {producer:?}, which does not produce it")]
pub struct UnexpectedSource {
    pub event_type: &'static str,
    pub producer: String,
}

impl Producers {
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(';')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((domain, source))
                    if !domain.trim().is_empty() && !source.trim().is_empty() =>
                {
                    Ok((domain.trim().to_owned(), source.trim().to_owned()))
                }
                _ => Err(format!("{pair:?} is not domain=source")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `source` produces events of `event_type`.
    pub fn check<T: EventType, D>(&self, event: &CloudEvent<T, D>) -> Result<(), UnexpectedSource> {
        let event_type = event.event_type.as_str();
        let domain = event_type.split('.').next().unwrap_or_default();
        if self
            .0
            .iter()
            .any(|(d, s)| d == domain && *s == event.source)
        {
            Ok(())
        } else {
            Err(UnexpectedSource {
                event_type,
                producer: event.source.clone(),
            })
        }
    }
}

/// Parses a message body as a CloudEvent of a known type.
pub fn parse<T: EventType, D: DeserializeOwned, E>(
    message: &SqsMessage,
) -> Result<CloudEvent<T, D>, MessageError<E>> {
    let body = message.body.as_deref().ok_or(MessageError::NoBody)?;
    let event: CloudEvent<T, D> = serde_json::from_str(body)?;
    if event.specversion != SPEC_VERSION {
        return Err(MessageError::SpecVersion(event.specversion));
    }
    if !event.has_derived_id() {
        return Err(MessageError::ForeignId {
            id: event.id,
            event_type: event.event_type.as_str(),
            subject: event.subject,
        });
    }
    Ok(event)
}

/// The message group of a FIFO queue's message (`None` on a standard queue).
fn fifo_group(message: &SqsMessage) -> Option<String> {
    let fifo = message.attributes.contains_key("MessageGroupId")
        || message
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"));
    fifo.then(|| {
        message
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default()
    })
}

/// How a message was delivered: what a consumer that spaces its own retries needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receipt_handle: Option<String>,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

impl Delivery {
    fn of(message: &SqsMessage) -> Self {
        Self {
            receipt_handle: message.receipt_handle.clone(),
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        }
    }
}

/// Processes a batch with `apply` (one event, at a time); answers the messages to retry.
pub async fn consume<T, D, S, E, F, Fut>(
    metrics: &Metrics,
    event: SqsEvent,
    apply: F,
) -> SqsBatchResponse
where
    T: EventType,
    D: DeserializeOwned,
    S: Debug,
    E: Display,
    F: Fn(CloudEvent<T, D>, DateTime<Utc>) -> Fut,
    Fut: Future<Output = Result<Applied<S>, E>>,
{
    consume_delivered(metrics, event, |event, _, now| apply(event, now)).await
}

/// [`consume`], handing `apply` each message's [`Delivery`] too. On a FIFO queue a failed
/// message stops the rest of its group in the batch (they are reported failed, so nothing
/// overtakes it); other groups' messages go on.
pub async fn consume_delivered<T, D, S, E, F, Fut>(
    metrics: &Metrics,
    event: SqsEvent,
    apply: F,
) -> SqsBatchResponse
where
    T: EventType,
    D: DeserializeOwned,
    S: Debug,
    E: Display,
    F: Fn(CloudEvent<T, D>, Delivery, DateTime<Utc>) -> Fut,
    Fut: Future<Output = Result<Applied<S>, E>>,
{
    let mut failures = Vec::new();
    let mut stopped_groups = std::collections::HashSet::new();
    for message in &event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let group = fifo_group(message);
        if group.as_ref().is_some_and(|g| stopped_groups.contains(g)) {
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
            let event: CloudEvent<T, D> = parse(message)?;
            let span = tracing::Span::current();
            span.record("event_id", event.id.as_str());
            span.record("order_id", event.subject.as_str());
            if !message.attributes.contains_key("AWSTraceHeader")
                && let Some(header) = event.xray_trace_header()
            {
                span.record("xray_trace_id", header.as_str());
            }
            let (event_type, time) = (event.event_type, event.time);
            let now = Utc::now();
            let applied = apply(event, Delivery::of(message), now)
                .await
                .map_err(MessageError::Apply)?;
            metrics.add(names::EVENTS_CONSUMED, Unit::Count, 1.0);
            let age = (now - time).num_milliseconds().max(0);
            metrics.add(names::EVENT_AGE, Unit::Milliseconds, age as f64);
            tracing::info!(event_type = event_type.as_str(), outcome = ?applied, "event consumed");
            Ok::<_, MessageError<E>>(())
        }
        .instrument(span.clone()))
        .await;
        if let Err(error) = result {
            span.in_scope(|| tracing::error!(%error, "message failed"));
            metrics.add(names::CONSUMER_FAILURES, Unit::Count, 1.0);
            failures.push(id);
            if let Some(group) = group {
                stopped_groups.insert(group);
            }
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
