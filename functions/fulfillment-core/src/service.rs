//! Fulfillment's part of the saga: a confirmed order gets its shipment; a cancelled order's
//! shipment (one recorded in a race with the cancel) is called off. Each written with its event
//! and the consumed event's inbox record in one transaction.

use std::future::Future;

use chrono::{DateTime, Utc};
use platform::consumer::{Applied, Producers, UnexpectedSource};
use platform::dynamo::{Consumed, Recorded, StoreError};

use crate::domain::{Shipment, ShipmentStatus};
use crate::events::{OrderEvent, OrderEventType, ShipmentEvent, ShipmentEventType};

/// Why a shipment write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ShipmentsError {
    #[error("the shipment changed since it was read")]
    Changed,
    #[error("the event was applied before")]
    AlreadyApplied,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shipments table, as the saga uses it.
pub trait Shipments: Send + Sync {
    fn shipment(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Shipment>, StoreError>> + Send;

    /// Writes the shipment (only if it is new when `read` is `None`, else only if still
    /// `read`'s status), its event and the consumed event.
    fn save(
        &self,
        shipment: &Shipment,
        read: Option<ShipmentStatus>,
        event: &ShipmentEvent,
        consumed: &Consumed,
    ) -> impl Future<Output = Result<(), ShipmentsError>> + Send;

    fn record(
        &self,
        consumed: &Consumed,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}

/// Everything the fulfillment consumer needs, built once at init.
#[derive(Debug, Clone)]
pub struct FulfillmentDeps<S> {
    pub shipments: S,
    pub event_source: String,
    pub consumer: String,
    pub producers: Producers,
}

/// Why an event was not applied (the message is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum FulfillmentError {
    #[error(transparent)]
    UnexpectedSource(#[from] UnexpectedSource),
    #[error("the shipment of order {0} changed while the event was applied")]
    Changed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies one order event to the order's shipment.
pub async fn apply<S: Shipments>(
    deps: &FulfillmentDeps<S>,
    event: &OrderEvent,
    now: DateTime<Utc>,
) -> Result<Applied<Option<ShipmentStatus>>, FulfillmentError> {
    deps.producers.check(event)?;
    let consumed = Consumed::of(&deps.consumer, event);
    let order_id = &event.data.order_id;
    let read = deps.shipments.shipment(order_id).await?;
    let status = read.as_ref().map(|s| s.status);
    let (shipment, event_type) = match (event.event_type, read) {
        (OrderEventType::OrderConfirmed, None) => (
            Shipment::for_order(order_id, event.data.shipping_address.clone(), now),
            ShipmentEventType::ShipmentCreated,
        ),
        (OrderEventType::OrderCancelled, Some(s)) if s.status == ShipmentStatus::Created => {
            (s.cancelled(), ShipmentEventType::ShipmentCancelled)
        }
        // Already shipped for this order, or nothing to call off.
        _ => {
            return Ok(match deps.shipments.record(&consumed).await? {
                Recorded::Now => Applied::Skipped(status),
                Recorded::Before => Applied::Duplicate,
            });
        }
    };
    let outgoing = ShipmentEvent::new(
        event_type,
        &deps.event_source,
        order_id,
        shipment.clone(),
        now,
    )
    .with_traceparent(event.traceparent.clone());
    match deps
        .shipments
        .save(&shipment, status, &outgoing, &consumed)
        .await
    {
        Ok(()) => Ok(Applied::Done),
        Err(ShipmentsError::AlreadyApplied) => Ok(Applied::Duplicate),
        Err(ShipmentsError::Changed) => Err(FulfillmentError::Changed(order_id.clone())),
        Err(ShipmentsError::Store(e)) => Err(e.into()),
    }
}
