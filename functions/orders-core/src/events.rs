//! The orders service's events: a CloudEvent whose data is the order as it was committed; and
//! the other services' events it consumes (payments, fulfillment), read for what it needs.

use chrono::{DateTime, Utc};
use platform::events::{CloudEvent, EventType};
use serde::{Deserialize, Serialize};

use crate::domain::{Order, OrderId, PaymentStatus};

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEventType {
    /// Stock reserved; payments authorizes the total.
    #[serde(rename = "order.created")]
    OrderCreated,
    /// Payment authorized before the deadline; fulfillment ships.
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    /// Fulfillment's shipment recorded on a confirmed order; payments captures.
    #[serde(rename = "order.shipped")]
    OrderShipped,
    /// Shipped and captured: the saga's end.
    #[serde(rename = "order.fulfilled")]
    OrderFulfilled,
    /// By its owner, a decline or the expiry, stock restored; payments voids, fulfillment cancels.
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType for OrderEventType {
    fn as_str(self) -> &'static str {
        match self {
            OrderEventType::OrderCreated => "order.created",
            OrderEventType::OrderConfirmed => "order.confirmed",
            OrderEventType::OrderShipped => "order.shipped",
            OrderEventType::OrderFulfilled => "order.fulfilled",
            OrderEventType::OrderCancelled => "order.cancelled",
        }
    }
}

/// An order event; its subject is the order id, its data the order.
pub type OrderEvent = CloudEvent<OrderEventType, Order>;

/// The other services' events the orders service consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaEventType {
    #[serde(rename = "payment.authorized")]
    PaymentAuthorized,
    #[serde(rename = "payment.declined")]
    PaymentDeclined,
    #[serde(rename = "payment.captured")]
    PaymentCaptured,
    #[serde(rename = "payment.voided")]
    PaymentVoided,
    #[serde(rename = "shipment.created")]
    ShipmentCreated,
}

impl SagaEventType {
    /// The payment status a payment event reports (none for a shipment event).
    pub fn payment_status(self) -> Option<PaymentStatus> {
        match self {
            SagaEventType::PaymentAuthorized => Some(PaymentStatus::Authorized),
            SagaEventType::PaymentDeclined => Some(PaymentStatus::Declined),
            SagaEventType::PaymentCaptured => Some(PaymentStatus::Captured),
            SagaEventType::PaymentVoided => Some(PaymentStatus::Voided),
            SagaEventType::ShipmentCreated => None,
        }
    }
}

impl EventType for SagaEventType {
    fn as_str(self) -> &'static str {
        match self {
            SagaEventType::PaymentAuthorized => "payment.authorized",
            SagaEventType::PaymentDeclined => "payment.declined",
            SagaEventType::PaymentCaptured => "payment.captured",
            SagaEventType::PaymentVoided => "payment.voided",
            SagaEventType::ShipmentCreated => "shipment.created",
        }
    }
}

/// What the orders service reads of a payment or shipment event's data (a tolerant reader: the
/// producers' other members are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaFacts {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_id: Option<String>,
}

/// A payment or shipment event, as the orders service reads it.
pub type SagaEvent = CloudEvent<SagaEventType, SagaFacts>;

/// The event of `event_type` about `order`; its id is derived from the order and the type, so one
/// order never produces two different events of one type.
pub fn order_event(
    event_type: OrderEventType,
    source: &str,
    order: &Order,
    time: DateTime<Utc>,
) -> OrderEvent {
    CloudEvent::new(
        event_type,
        source,
        &order.order_id.to_string(),
        order.clone(),
        time,
    )
}

/// The order an event is about, from its subject.
pub fn subject_order<T: EventType, D>(event: &CloudEvent<T, D>) -> Option<OrderId> {
    OrderId::parse(&event.subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        crate::fixtures::order(&[("p-1", 2)], 1999)
    }

    #[test]
    fn an_order_event_carries_the_order_under_its_id() {
        let order = order();
        let event = order_event(OrderEventType::OrderCreated, "orders", &order, Utc::now());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "order.created");
        assert_eq!(json["subject"], order.order_id.to_string());
        assert_eq!(json["data"]["items"][0]["unitPrice"]["amount"], 1999);
        assert_eq!(subject_order(&event), Some(order.order_id));
        let back: OrderEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn one_order_has_one_event_of_each_type() {
        let order = order();
        let created = |t| order_event(t, "orders", &order, Utc::now()).id;
        assert_eq!(
            created(OrderEventType::OrderCreated),
            created(OrderEventType::OrderCreated)
        );
        assert_ne!(
            created(OrderEventType::OrderCreated),
            created(OrderEventType::OrderCancelled)
        );
    }
}
