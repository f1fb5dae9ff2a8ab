//! The fulfillment service's events, and the order events it consumes.

use platform::events::{CloudEvent, EventType};
use serde::{Deserialize, Serialize};

use crate::domain::Shipment;

/// What happened to an order's shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShipmentEventType {
    /// Recorded for a confirmed order; orders marks it shipped (then payments captures).
    #[serde(rename = "shipment.created")]
    ShipmentCreated,
    /// Its order was cancelled: the shipment is called off.
    #[serde(rename = "shipment.cancelled")]
    ShipmentCancelled,
}

impl EventType for ShipmentEventType {
    fn as_str(self) -> &'static str {
        match self {
            ShipmentEventType::ShipmentCreated => "shipment.created",
            ShipmentEventType::ShipmentCancelled => "shipment.cancelled",
        }
    }
}

/// A shipment event; its subject is the order id, its data the shipment.
pub type ShipmentEvent = CloudEvent<ShipmentEventType, Shipment>;

/// The order events fulfillment consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEventType {
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType for OrderEventType {
    fn as_str(self) -> &'static str {
        match self {
            OrderEventType::OrderConfirmed => "order.confirmed",
            OrderEventType::OrderCancelled => "order.cancelled",
        }
    }
}

/// What fulfillment reads of an order event's data (a tolerant reader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFacts {
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<serde_json::Value>,
}

/// An order event, as fulfillment reads it.
pub type OrderEvent = CloudEvent<OrderEventType, OrderFacts>;
