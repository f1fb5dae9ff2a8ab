//! The outbox reconciler: events that no consumer has recorded after a while are sent again.
//!
//! The stream keeps records 24 hours and the outbox keeps events 7 days. Every outbox item is
//! written with `pendingHour` (the hour of its event), which puts it in the table's sparse
//! `pending` index (hash `pendingHour`, range `time`). On a schedule the reconciler reads that
//! index for events older than `after`, hour by hour back to the outbox's retention, and looks
//! each up in the inbox of every consumer its type is delivered to (`EVENT_CONSUMERS`, which a
//! template test keeps equal to the topic's subscriptions):
//! - recorded by all of them: `pendingHour` is removed, and the event leaves the index for good;
//! - not recorded: it is published again (same group, same deduplication id; the consumer's inbox
//!   makes a second delivery a no-op), at most [`MAX_REPUBLISH`] times — an event that still fails
//!   after that is in the consumer's dead-letter queue, under its alarm.
//!
//! So even an outage longer than the stream's retention loses no event, and each run reads only
//! the events not yet known to be consumed. (One hour is one partition of the index: about 1,000
//! events a second before it throttles; a shard suffix would spread more.)

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::dynamo::{OUTBOX_RETENTION, StoreError, n, s};
use crate::events::rfc3339_millis;
use crate::metrics::{Metrics, Unit, names};
use crate::relay::{OutboxEvents, PublishError, Publisher};

/// The attribute (and hash key of the `pending` index) of an event not yet known to be consumed.
pub const PENDING_HOUR: &str = "pendingHour";
/// The sparse index of the outbox's pending events.
pub const PENDING_INDEX: &str = "pending";
/// How often one event is sent again at most.
pub const MAX_REPUBLISH: u32 = 3;

/// The `pendingHour` of an event's time: `2026-12-02T05`.
pub fn hour_of(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H").to_string()
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
    /// Pending events found recorded by the consumer, and taken out of the index.
    pub settled: usize,
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
    pub inbox_table: String,
    /// Who must record each type of event.
    pub consumers: Consumers,
    /// How old an unrecorded event must be before it is sent again.
    pub after: Duration,
}

struct Pending {
    id: String,
    event_type: String,
    republished: u32,
    item: HashMap<String, AttributeValue>,
}

impl Reconciler {
    /// One run at `now`: every pending event older than `after`, oldest first.
    pub async fn run<E: OutboxEvents, P: Publisher>(
        &self,
        publisher: &P,
        metrics: &Metrics,
        now: DateTime<Utc>,
    ) -> Result<Reconciled, ReconcileError> {
        let cutoff = now - self.after;
        let mut hour = (now - OUTBOX_RETENTION)
            .duration_trunc(Duration::hours(1))
            .unwrap_or(now - OUTBOX_RETENTION);
        let mut report = Reconciled::default();
        while hour <= cutoff {
            let pending = self.pending_in(&hour_of(hour), cutoff).await?;
            for chunk in pending.chunks(100) {
                let recorded = self.recorded(chunk).await?;
                for event in chunk {
                    let expected = self.consumers.of(&event.event_type);
                    if expected
                        .iter()
                        .all(|c| recorded.contains(&(event.id.clone(), c.clone())))
                    {
                        self.settle(&event.id).await?;
                        report.settled += 1;
                    } else if event.republished >= MAX_REPUBLISH {
                        tracing::error!(event_id = %event.id, "still not recorded after {MAX_REPUBLISH} re-sends; see the consumer's dead-letter queue");
                        report.given_up += 1;
                    } else {
                        self.republish::<E, P>(publisher, event).await?;
                        report.republished += 1;
                    }
                }
            }
            hour += Duration::hours(1);
        }
        metrics.add(
            names::EVENTS_REPUBLISHED,
            Unit::Count,
            report.republished as f64,
        );
        tracing::info!(
            settled = report.settled,
            republished = report.republished,
            given_up = report.given_up,
            "outbox reconciled"
        );
        Ok(report)
    }

    /// The pending events of one hour older than `cutoff`, oldest first.
    async fn pending_in(
        &self,
        hour: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<Pending>, StoreError> {
        let mut pending = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.outbox_table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("#hour = :hour AND #time < :cutoff")
                .expression_attribute_names("#hour", PENDING_HOUR)
                .expression_attribute_names("#time", "time")
                .expression_attribute_values(":hour", s(hour))
                .expression_attribute_values(":cutoff", s(rfc3339_millis::format(&cutoff)))
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
                pending.push(Pending {
                    id,
                    event_type,
                    republished,
                    item,
                });
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(pending);
            }
        }
    }

    /// Which (event id, consumer) of these events the inbox holds.
    async fn recorded(&self, events: &[Pending]) -> Result<HashSet<(String, String)>, StoreError> {
        let mut keys: Vec<HashMap<String, AttributeValue>> = events
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
        let mut found = HashSet::new();
        // BatchGetItem takes at most 100 keys; what it leaves unprocessed is asked again.
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(100));
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#event, #consumer")
                .expression_attribute_names("#event", "eventId")
                .expression_attribute_names("#consumer", "consumer")
                .consistent_read(true)
                .build()?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.inbox_table, request)
                .send()
                .await?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.inbox_table)
                .unwrap_or_default()
            {
                if let (Some(AttributeValue::S(id)), Some(AttributeValue::S(consumer))) =
                    (item.get("eventId"), item.get("consumer"))
                {
                    found.insert((id.clone(), consumer.clone()));
                }
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.inbox_table))
                .map(|k| k.keys)
                .unwrap_or_default();
            keys.extend(rest);
        }
        Ok(found)
    }

    /// Takes a recorded event out of the pending index.
    async fn settle(&self, id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.outbox_table)
            .key("id", s(id))
            .update_expression("REMOVE #hour")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#hour", PENDING_HOUR)
            .send()
            .await;
        match result {
            // Expired by TTL meanwhile: nothing to settle.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            other => other.map(|_| ()).map_err(StoreError::from),
        }
    }

    /// Sends an event again and counts it.
    async fn republish<E: OutboxEvents, P: Publisher>(
        &self,
        publisher: &P,
        event: &Pending,
    ) -> Result<(), ReconcileError> {
        let outgoing = match E::outgoing_item(event.item.clone().into()) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                // Not an event (the relay set it aside): it has nothing to wait for.
                tracing::error!(event_id = %event.id, %error, "a pending outbox item is not an event");
                self.settle(&event.id).await?;
                return Ok(());
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
            .key("id", s(&event.id))
            .update_expression("ADD republished :one")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(())
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
    fn an_events_hour_is_its_pending_partition() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T05:59:59.999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(hour_of(t), "2026-12-02T05");
    }
}
