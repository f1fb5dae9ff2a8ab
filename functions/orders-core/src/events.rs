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
    /// The Distributed Tracing extension: the W3C trace context of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
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
            traceparent: None,
            data: order.clone(),
        }
    }

    /// The event, carrying the X-Ray trace of the invocation that writes it (as `traceparent`).
    pub fn traced(mut self, xray_trace_header: Option<&str>) -> Self {
        self.traceparent = xray_trace_header.and_then(traceparent_from_xray);
        self
    }

    /// The X-Ray trace header (`Root=…;Parent=…;Sampled=…`) of the event's `traceparent`.
    pub fn xray_trace_header(&self) -> Option<String> {
        self.traceparent.as_deref().and_then(xray_from_traceparent)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1` →
/// `00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01`. Without a parent (the invocation's
/// own segment is not known here) the root's first 16 hex digits stand in.
pub fn traceparent_from_xray(header: &str) -> Option<String> {
    let field = |name: &str| {
        header
            .split(';')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_owned())
    };
    let root = field("Root")?;
    let mut parts = root.split('-');
    let (version, time, id) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "1" || !is_hex(time, 8) || !is_hex(id, 24) {
        return None;
    }
    let trace_id = format!("{time}{id}").to_ascii_lowercase();
    let parent = field("Parent")
        .filter(|p| is_hex(p, 16))
        .unwrap_or_else(|| trace_id[..16].to_owned())
        .to_ascii_lowercase();
    let sampled = if field("Sampled").as_deref() == Some("1") {
        "01"
    } else {
        "00"
    };
    Some(format!("00-{trace_id}-{parent}-{sampled}"))
}

/// The inverse of [`traceparent_from_xray`].
pub fn xray_from_traceparent(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || !is_hex(trace_id, 32) || !is_hex(parent, 16) || !is_hex(flags, 2) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1;
    Some(format!(
        "Root=1-{}-{};Parent={parent};Sampled={sampled}",
        &trace_id[..8],
        &trace_id[8..]
    ))
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
    fn xray_headers_and_traceparents_convert_both_ways() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let w3c = traceparent_from_xray(xray).unwrap();
        assert_eq!(
            w3c,
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        assert_eq!(xray_from_traceparent(&w3c).as_deref(), Some(xray));
        let rootless = traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert!(rootless.ends_with("-00"));
        assert_eq!(traceparent_from_xray("Self=1-abc"), None);
        assert_eq!(xray_from_traceparent("garbage"), None);
    }

    #[test]
    fn a_traced_event_carries_its_traceparent_through_json() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let event = CloudEvent::new(EventType::OrderCreated, "orders", &order(), Utc::now())
            .traced(Some(xray));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json["traceparent"],
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        let back: CloudEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back.xray_trace_header().as_deref(), Some(xray));
        let untraced = CloudEvent::new(EventType::OrderCreated, "orders", &order(), Utc::now());
        assert!(
            serde_json::to_value(&untraced)
                .unwrap()
                .get("traceparent")
                .is_none()
        );
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
