//! The outbox reconciler: events that no consumer has recorded after a while are sent again.
//!
//! The stream keeps records 24 hours and the outbox keeps events 7 days. The outbox is keyed by
//! (`bucket`, `id`), where the bucket is the hour of the event and one of [`SHARDS`] shards
//! (`2026-12-02T05#3`), so the events of an hour are a few queries away and finding them costs
//! no write: no index, nothing to settle per event. On a schedule the reconciler examines each
//! hour that ended more than `after` ago, from a checkpoint (an item of its own in the inbox
//! table), and looks each event up in the inbox of every consumer its type is delivered to
//! (`EVENT_CONSUMERS`, which a template test keeps equal to the topic's subscriptions):
//! - recorded by all of them (or delivered to none): nothing to do;
//! - not recorded: it is published again (same group, same deduplication id; the consumer's inbox
//!   makes a second delivery a no-op), at most [`MAX_REPUBLISH`] times — an event that still fails
//!   after that is in the consumer's dead-letter queue, under its alarm.
//!
//! The checkpoint moves past an hour once none of its events waits for a re-send to be recorded;
//! an hour that has one is read again by the next runs (at most [`MAX_REPUBLISH`] more). So even an
//! outage longer than the stream's retention loses no event, and each event is read about once.
//! The price is the delay: an unrecorded event is sent again between `after` and an hour plus
//! `after` after it was written — this is the net under the relay, not its speed.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, DurationRound, NaiveDateTime, Utc};

use crate::dynamo::{OUTBOX_RETENTION, StoreError, batch_get, n, s};
use crate::metrics::{Metrics, Unit, names};
use crate::relay::{OutboxEvents, PublishError, Publisher};

/// The outbox's hash key: the hour of the event and its shard.
pub const BUCKET: &str = "bucket";
/// How many partitions one hour of events is spread over (each takes ~1,000 write units a second).
pub const SHARDS: u32 = 8;
/// How often one event is sent again at most.
pub const MAX_REPUBLISH: u32 = 3;
/// The checkpoint's key in the inbox table (`eventId`, `consumer`).
pub const CHECKPOINT: (&str, &str) = ("checkpoint#outbox", "outbox-reconciler");
/// The checkpoint's attribute: the first hour not yet examined to the end.
const NEXT_HOUR: &str = "nextHour";
const HOUR_FORMAT: &str = "%Y-%m-%dT%H";

/// The hour of an event's time: `2026-12-02T05`.
pub fn hour_of(time: DateTime<Utc>) -> String {
    time.format(HOUR_FORMAT).to_string()
}

fn parse_hour(hour: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// The outbox bucket of an event: its hour and a shard stable for its id (`2026-12-02T05#3`).
pub fn bucket_of(time: DateTime<Utc>, id: &str) -> String {
    let shard = id
        .bytes()
        .fold(0u32, |sum, b| sum.wrapping_add(u32::from(b)))
        % SHARDS;
    format!("{}#{shard}", hour_of(time))
}

/// Why a reconciliation run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Hours examined.
    pub hours: usize,
    /// Events found recorded by every consumer of their type (or delivered to none).
    pub recorded: usize,
    pub republished: usize,
    /// Events sent [`MAX_REPUBLISH`] times and still not recorded.
    pub given_up: usize,
}

/// Which consumers each event type is delivered to: `order.created=orders,payments;order.cancelled=orders`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumers(HashMap<String, Vec<String>>);

impl Consumers {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for entry in raw.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (event_type, names) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not type=consumer[,consumer]"))?;
            let names: Vec<String> = names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            if names.is_empty() {
                return Err(format!("{event_type} names no consumer"));
            }
            map.insert(event_type.trim().to_owned(), names);
        }
        Ok(Self(map))
    }

    /// The consumers of events of this type (none: nobody waits for it).
    pub fn of(&self, event_type: &str) -> &[String] {
        self.0.get(event_type).map_or(&[], Vec::as_slice)
    }
}

/// The tables a reconciler reads and writes.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pub client: Client,
    pub outbox_table: String,
    /// The consumers' records, and the reconciler's checkpoint.
    pub inbox_table: String,
    /// Who must record each type of event.
    pub consumers: Consumers,
    /// How long after an hour ends its events are examined.
    pub after: Duration,
}

struct Pending {
    id: String,
    bucket: String,
    event_type: String,
    republished: u32,
    item: HashMap<String, AttributeValue>,
}

impl Reconciler {
    /// One run at `now`: every hour from the checkpoint that ended more than `after` ago.
    pub async fn run<E: OutboxEvents, P: Publisher>(
        &self,
        publisher: &P,
        metrics: &Metrics,
        now: DateTime<Utc>,
    ) -> Result<Reconciled, ReconcileError> {
        let cutoff = now - self.after;
        let oldest = (now - OUTBOX_RETENTION)
            .duration_trunc(Duration::hours(1))
            .unwrap_or(now - OUTBOX_RETENTION);
        let checkpoint = self.checkpoint().await?;
        let mut hour = checkpoint.map_or(oldest, |h| h.max(oldest));
        // Where the checkpoint may move: past every hour examined with nothing left waiting.
        let mut next = hour;
        let mut waiting = false;
        let mut report = Reconciled::default();
        while hour + Duration::hours(1) <= cutoff {
            waiting |= self
                .examine::<E, P>(publisher, &hour_of(hour), &mut report)
                .await?;
            report.hours += 1;
            hour += Duration::hours(1);
            if !waiting {
                next = hour;
            }
        }
        if checkpoint != Some(next) {
            self.save_checkpoint(checkpoint, next).await?;
        }
        metrics.add(
            names::EVENTS_REPUBLISHED,
            Unit::Count,
            report.republished as f64,
        );
        tracing::info!(
            hours = report.hours,
            recorded = report.recorded,
            republished = report.republished,
            given_up = report.given_up,
            next_hour = %hour_of(next),
            "outbox reconciled"
        );
        Ok(report)
    }

    /// Examines one hour's events; true if some were sent again and wait to be recorded.
    async fn examine<E: OutboxEvents, P: Publisher>(
        &self,
        publisher: &P,
        hour: &str,
        report: &mut Reconciled,
    ) -> Result<bool, ReconcileError> {
        let mut waiting = false;
        for shard in 0..SHARDS {
            let events = self.events_in(&format!("{hour}#{shard}")).await?;
            for chunk in events.chunks(100) {
                let recorded = self.recorded(chunk).await?;
                for event in chunk {
                    let expected = self.consumers.of(&event.event_type);
                    if expected
                        .iter()
                        .all(|c| recorded.contains(&(event.id.clone(), c.clone())))
                    {
                        report.recorded += 1;
                    } else if event.republished >= MAX_REPUBLISH {
                        tracing::error!(event_id = %event.id, "still not recorded after {MAX_REPUBLISH} re-sends; see the consumer's dead-letter queue");
                        report.given_up += 1;
                    } else if self.republish::<E, P>(publisher, event).await? {
                        report.republished += 1;
                        waiting = true;
                    }
                }
            }
        }
        Ok(waiting)
    }

    /// The first hour not yet examined to the end, if a run saved one.
    async fn checkpoint(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.inbox_table)
            .key("eventId", s(CHECKPOINT.0))
            .key("consumer", s(CHECKPOINT.1))
            .consistent_read(true)
            .send()
            .await?;
        Ok(match out.item.as_ref().and_then(|i| i.get(NEXT_HOUR)) {
            Some(AttributeValue::S(hour)) => parse_hour(hour),
            _ => None,
        })
    }

    /// Moves the checkpoint from what this run read (a run that raced it changes nothing).
    async fn save_checkpoint(
        &self,
        read: Option<DateTime<Utc>>,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.inbox_table)
            .item("eventId", s(CHECKPOINT.0))
            .item("consumer", s(CHECKPOINT.1))
            .item(NEXT_HOUR, s(hour_of(next)))
            .expression_attribute_names("#next", NEXT_HOUR);
        let request = match read {
            Some(read) => request
                .condition_expression("#next = :read")
                .expression_attribute_values(":read", s(hour_of(read))),
            None => request.condition_expression("attribute_not_exists(#next)"),
        };
        match request.send().await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!("another run moved the checkpoint first");
                Ok(())
            }
            other => other.map(|_| ()).map_err(StoreError::from),
        }
    }

    /// The events of one bucket.
    async fn events_in(&self, bucket: &str) -> Result<Vec<Pending>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.outbox_table)
                .key_condition_expression("#bucket = :bucket")
                .expression_attribute_names("#bucket", BUCKET)
                .expression_attribute_values(":bucket", s(bucket))
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                let Some(AttributeValue::S(id)) = item.get("id").cloned() else {
                    continue;
                };
                let event_type = match item.get("type") {
                    Some(AttributeValue::S(t)) => t.clone(),
                    _ => String::new(),
                };
                let republished = match item.get("republished") {
                    Some(AttributeValue::N(count)) => count.parse().unwrap_or(0),
                    _ => 0,
                };
                events.push(Pending {
                    id,
                    bucket: bucket.to_owned(),
                    event_type,
                    republished,
                    item,
                });
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(events);
            }
        }
    }

    /// Which (event id, consumer) of these events the inbox holds. Eventually consistent: the hour
    /// ended a while ago, and a record missed would only be sent again, which changes nothing.
    async fn recorded(&self, events: &[Pending]) -> Result<HashSet<(String, String)>, StoreError> {
        let keys = events
            .iter()
            .flat_map(|e| {
                self.consumers.of(&e.event_type).iter().map(|c| {
                    HashMap::from([
                        ("eventId".to_owned(), s(&e.id)),
                        ("consumer".to_owned(), s(c)),
                    ])
                })
            })
            .collect();
        Ok(batch_get(&self.client, &self.inbox_table, keys, false)
            .await?
            .into_iter()
            .filter_map(|item| match (item.get("eventId"), item.get("consumer")) {
                (Some(AttributeValue::S(id)), Some(AttributeValue::S(consumer))) => {
                    Some((id.clone(), consumer.clone()))
                }
                _ => None,
            })
            .collect())
    }

    /// Sends an event again and counts it; false if it is not an event (nothing waits for it).
    async fn republish<E: OutboxEvents, P: Publisher>(
        &self,
        publisher: &P,
        event: &Pending,
    ) -> Result<bool, ReconcileError> {
        let outgoing = match E::outgoing_item(event.item.clone().into()) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                // The relay set it aside, in its dead-letter queue.
                tracing::error!(event_id = %event.id, %error, "an outbox item is not an event");
                return Ok(false);
            }
        };
        let refused = publisher.publish(std::slice::from_ref(&outgoing)).await?;
        if !refused.is_empty() {
            return Err(ReconcileError::Publish(PublishError::Refused(
                outgoing.event_id,
            )));
        }
        tracing::warn!(
            event_id = %outgoing.event_id,
            order_id = %outgoing.group_id,
            attempt = event.republished + 1,
            "an event no consumer recorded was sent again"
        );
        self.client
            .update_item()
            .table_name(&self.outbox_table)
            .key(BUCKET, s(&event.bucket))
            .key("id", s(&event.id))
            .update_expression("ADD republished :one")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_listed_per_event_type() {
        let c = Consumers::parse("order.created=orders, payments; order.cancelled=orders").unwrap();
        assert_eq!(c.of("order.created"), ["orders", "payments"]);
        assert_eq!(c.of("order.cancelled"), ["orders"]);
        assert!(c.of("shipment.created").is_empty());
        assert!(Consumers::parse("order.created").is_err());
        assert!(Consumers::parse("order.created=").is_err());
    }

    #[test]
    fn an_events_bucket_is_its_hour_and_a_shard_stable_for_its_id() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T05:59:59.999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(hour_of(t), "2026-12-02T05");
        assert_eq!(
            parse_hour("2026-12-02T05"),
            t.duration_trunc(Duration::hours(1)).ok()
        );
        let id = "3f0e9c2a-5b1d-5e7f-9a2b-7c4d1e8f6a90";
        assert_eq!(bucket_of(t, id), bucket_of(t - Duration::minutes(59), id));
        // Ids spread over every shard.
        let shards: HashSet<String> = (0..200)
            .map(|i| bucket_of(t, &format!("{i:08x}-5b1d-5e7f-9a2b-7c4d1e8f6a90")))
            .collect();
        assert_eq!(shards.len(), SHARDS as usize);
        assert!(shards.iter().all(|b| b.starts_with("2026-12-02T05#")));
    }
}
