//! The event envelope the outbox holds and the queue carries: CloudEvents 1.0 in JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Order, OrderId, rfc3339_millis};

/// The CloudEvents specification version this project writes.
pub const SPEC_VERSION: &str = "1.0";

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderCancelled => "order.cancelled",
        }
    }
}

/// A CloudEvents 1.0 envelope (JSON format) whose data is the order as it was committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub source: String,
    pub subject: String,
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub data: Order,
}

/// Namespace of event ids: an event id is derived from its order and type, so one order can never
/// produce two different `order.created` events, whatever retries happen on the way.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x1c3e_8a52_77d4_4f0b_9e61_0b8f_4d2a_c955);

impl CloudEvent {
    pub fn new(event_type: EventType, source: &str, order: &Order, time: DateTime<Utc>) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: event_id(order.order_id, event_type).to_string(),
            event_type,
            source: source.to_owned(),
            subject: order.order_id.to_string(),
            time: rfc3339_millis::truncate(time),
            datacontenttype: "application/json".to_owned(),
            data: order.clone(),
        }
    }
}

pub fn event_id(order_id: OrderId, event_type: EventType) -> Uuid {
    let name = format!("{order_id}/{}", event_type.as_str());
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;

    fn order() -> Order {
        let eur = Currency::parse("EUR").unwrap();
        let lines = OrderLines::new(vec![(
            ProductId::parse("p-1").unwrap(),
            Quantity::new(2).unwrap(),
        )])
        .unwrap();
        Order::price(
            OrderId::new_random(),
            UserId::parse("alice").unwrap(),
            &lines,
            Utc::now(),
            |_| Some(Money::new(1999, eur).unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn envelope_has_every_required_cloudevents_attribute() {
        let order = order();
        let event = CloudEvent::new(EventType::OrderCreated, "orders", &order, Utc::now());
        let json = serde_json::to_value(&event).unwrap();
        for attr in [
            "specversion",
            "id",
            "type",
            "source",
            "subject",
            "time",
            "datacontenttype",
            "data",
        ] {
            assert!(json.get(attr).is_some(), "missing {attr}");
        }
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "order.created");
        assert_eq!(json["subject"], order.order_id.to_string());
        assert_eq!(json["data"]["items"][0]["unitPrice"]["amount"], 1999);
        let back: CloudEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn event_ids_differ_by_type_and_order_but_are_stable() {
        let a = OrderId::new_random();
        let b = OrderId::new_random();
        assert_eq!(
            event_id(a, EventType::OrderCreated),
            event_id(a, EventType::OrderCreated)
        );
        assert_ne!(
            event_id(a, EventType::OrderCreated),
            event_id(a, EventType::OrderCancelled)
        );
        assert_ne!(
            event_id(a, EventType::OrderCreated),
            event_id(b, EventType::OrderCreated)
        );
    }
}
