//! The payments service's events (a CloudEvent whose data is the payment as committed), and the
//! order events it consumes, read for what it needs.

use chrono::{DateTime, Utc};
use platform::events::{CloudEvent, EventType};
use serde::{Deserialize, Serialize};

use crate::domain::Payment;

/// What happened to an order's payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentEventType {
    /// The total is held; orders confirms the order.
    #[serde(rename = "payment.authorized")]
    PaymentAuthorized,
    /// The provider declined the payment method; orders cancels the order, stock back.
    #[serde(rename = "payment.declined")]
    PaymentDeclined,
    /// The held total was taken (the order shipped); orders fulfils the order.
    #[serde(rename = "payment.captured")]
    PaymentCaptured,
    /// The order was cancelled: its authorization released (or nothing was held).
    #[serde(rename = "payment.voided")]
    PaymentVoided,
}

impl EventType for PaymentEventType {
    fn as_str(self) -> &'static str {
        match self {
            PaymentEventType::PaymentAuthorized => "payment.authorized",
            PaymentEventType::PaymentDeclined => "payment.declined",
            PaymentEventType::PaymentCaptured => "payment.captured",
            PaymentEventType::PaymentVoided => "payment.voided",
        }
    }
}

/// A payment event; its subject is the order id, its data the payment.
pub type PaymentEvent = CloudEvent<PaymentEventType, Payment>;

/// The event of `event_type` about `payment`, id derived from the order and the type.
pub fn payment_event(
    event_type: PaymentEventType,
    source: &str,
    payment: &Payment,
    time: DateTime<Utc>,
) -> PaymentEvent {
    CloudEvent::new(event_type, source, &payment.order_id, payment.clone(), time)
}

/// The order events the payments service consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEventType {
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.shipped")]
    OrderShipped,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType for OrderEventType {
    fn as_str(self) -> &'static str {
        match self {
            OrderEventType::OrderCreated => "order.created",
            OrderEventType::OrderShipped => "order.shipped",
            OrderEventType::OrderCancelled => "order.cancelled",
        }
    }
}

/// An order's total, as the order event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    pub amount: i64,
    pub currency: String,
}

/// What the payments service reads of an order event's data (a tolerant reader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFacts {
    pub order_id: String,
    pub total: Total,
    /// Absent on an order taken before payments existed: nothing to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// The reservation's deadline: authorizing stops there.
    #[serde(
        with = "platform::events::rfc3339_millis::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the order was taken: no charge of it can be older (bounds a charge look-up).
    #[serde(
        with = "platform::events::rfc3339_millis::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<Utc>>,
}

/// An order event, as the payments service reads it.
pub type OrderEvent = CloudEvent<OrderEventType, OrderFacts>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_event_is_read_for_what_payments_needs() {
        let json = serde_json::json!({
            "specversion": "1.0",
            "id": platform::events::event_id("o-1", "order.created").to_string(),
            "type": "order.created",
            "source": "orders",
            "subject": "o-1",
            "time": "2026-12-02T10:00:00.000Z",
            "datacontenttype": "application/json",
            "data": {
                "orderId": "o-1",
                "userId": "alice",
                "status": "PENDING",
                "total": {"amount": 2599, "currency": "EUR"},
                "paymentMethod": "tok_visa",
                "expiresAt": "2026-12-02T10:15:00.000Z",
                "createdAt": "2026-12-02T10:00:00.000Z",
                "items": []
            }
        });
        let event: OrderEvent = serde_json::from_value(json).unwrap();
        assert_eq!(event.data.total.amount, 2599);
        assert_eq!(event.data.payment_method.as_deref(), Some("tok_visa"));
        assert_eq!(
            event.data.created_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-12-02T10:00:00+00:00")
        );
        assert!(event.has_derived_id());
    }

    #[test]
    fn a_payment_event_carries_the_payment() {
        let payment = Payment::pending("o-1", 2599, "EUR")
            .authorized("ch_1".into())
            .unwrap();
        let event = payment_event(
            PaymentEventType::PaymentAuthorized,
            "payments",
            &payment,
            Utc::now(),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["data"]["status"], "authorized");
        assert_eq!(json["data"]["chargeId"], "ch_1");
        assert_eq!(json["data"]["orderId"], "o-1");
    }
}
