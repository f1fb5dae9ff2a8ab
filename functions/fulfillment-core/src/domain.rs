//! A shipment: one per confirmed order, its id derived from the order (no AWS, no I/O).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace of shipment ids: one order has one shipment id, whatever redeliveries happen.
const SHIPMENT_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_2f7e_91a4_4c3b_8e12_6a7b_0f3c_d2e1);

/// Where a shipment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Created,
    /// Its order was cancelled before the shipment was recorded on it.
    Cancelled,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Created => "created",
            ShipmentStatus::Cancelled => "cancelled",
        }
    }
}

/// A shipment: the shipments table's item, and the data of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub order_id: String,
    pub shipment_id: String,
    pub status: ShipmentStatus,
    /// As the order carried it (fulfillment keeps its own copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<serde_json::Value>,
    #[serde(with = "platform::events::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

impl Shipment {
    /// The shipment of a confirmed order.
    pub fn for_order(
        order_id: &str,
        shipping_address: Option<serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id: order_id.to_owned(),
            shipment_id: format!(
                "shp_{}",
                Uuid::new_v5(&SHIPMENT_NAMESPACE, order_id.as_bytes()).simple()
            ),
            status: ShipmentStatus::Created,
            shipping_address,
            created_at: at,
        }
    }

    pub fn cancelled(self) -> Self {
        Self {
            status: ShipmentStatus::Cancelled,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_order_has_one_shipment_id() {
        let a = Shipment::for_order("o-1", None, Utc::now());
        let b = Shipment::for_order("o-1", None, Utc::now());
        assert_eq!(a.shipment_id, b.shipment_id);
        assert_ne!(
            a.shipment_id,
            Shipment::for_order("o-2", None, Utc::now()).shipment_id
        );
        assert!(a.shipment_id.starts_with("shp_"));
    }
}
