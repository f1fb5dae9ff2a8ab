//! The orders service's part of the saga: applying the payment and shipment events it consumes
//! to the order they are about, each once (its inbox record is written in the transition's
//! transaction), every race settled by the transition's condition.

use chrono::{DateTime, Utc};
use platform::consumer::{Applied, Producers, UnexpectedSource};
use platform::dynamo::{Consumed, Recorded, StoreError};

use super::cancel::{CancelBy, CancelOrderDeps, CancelOrderError, Cancelled, cancel_order};
use super::ports::{ChangeOrderError, Deadline, OrderChange, OrderSaga};
use crate::domain::{Order, OrderId, OrderStatus, PaymentStatus};
use crate::events::{OrderEventType, SagaEvent, SagaEventType, order_event, subject_order};

/// How many times a step reads the order again when it changed between read and write.
const ATTEMPTS: u32 = 3;

/// Why an event could not be applied (the message is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the subject {0:?} is not an order id")]
    Subject(String),
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    #[error(transparent)]
    UnexpectedSource(#[from] UnexpectedSource),
    #[error("the event is about order {subject} but carries order {data}")]
    SubjectMismatch { subject: OrderId, data: OrderId },
    #[error("order {0} kept changing while the event was applied")]
    Busy(OrderId),
    #[error(transparent)]
    Cancel(#[from] CancelOrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who consumes the saga's events for the orders service: the name its inbox records carry,
/// and which service produces each domain's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    pub producers: Producers,
}

/// What an event does to an order in its current state.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// The order becomes this (from its current status), writing this event if any.
    Change {
        order: Box<Order>,
        event: Option<OrderEventType>,
        deadline: Deadline,
        unshipped: bool,
    },
    /// A decline of a PENDING order: cancel it, stock back.
    Cancel { decline_code: Option<String> },
    /// Nothing but the record that the event was seen.
    Record,
}

/// The saga's rules, pure: what `event` does to `order` at `now`.
fn step(event: &SagaEvent, order: &Order, now: DateTime<Utc>) -> Step {
    let facts = &event.data;
    // A payment event that would move the payment backwards or out of a final state (a decline
    // after a capture, an authorization after a void) is stale or contradictory: only recorded.
    let payment = order
        .payment
        .as_ref()
        .map_or(PaymentStatus::Pending, |p| p.status);
    let reported = event.event_type.payment_status();
    if reported.is_some_and(|next| !payment.may_become(next)) {
        return Step::Record;
    }
    // The order with its payment as this payment event reports it.
    let noted = || {
        order.clone().with_payment(
            reported.unwrap_or(payment),
            facts.charge_id.clone(),
            facts.decline_code.clone(),
        )
    };
    let change = |order: Order, event, deadline, unshipped| Step::Change {
        order: Box::new(order),
        event,
        deadline,
        unshipped,
    };
    use OrderStatus::{Confirmed, Pending};
    match event.event_type {
        // Confirmed only while PENDING and before the deadline (both in the write's condition);
        // a late authorization is only noted: the expiry cancels, and payments voids.
        SagaEventType::PaymentAuthorized if order.status == Pending && !order.is_expired(now) => {
            let confirmed = noted().with_status(Confirmed);
            change(
                confirmed,
                Some(OrderEventType::OrderConfirmed),
                Deadline::NotPassed(now),
                false,
            )
        }
        SagaEventType::PaymentAuthorized => change(noted(), None, Deadline::Any, false),
        SagaEventType::PaymentDeclined if order.status == Pending => Step::Cancel {
            decline_code: facts.decline_code.clone(),
        },
        SagaEventType::PaymentDeclined => change(noted(), None, Deadline::Any, false),
        SagaEventType::ShipmentCreated
            if order.status == Confirmed && order.shipment_id.is_none() =>
        {
            match &facts.shipment_id {
                Some(shipment) => change(
                    order.clone().shipped(shipment.clone()),
                    Some(OrderEventType::OrderShipped),
                    Deadline::Any,
                    true,
                ),
                None => Step::Record,
            }
        }
        // A shipment of a cancelled order: fulfillment cancels it on order.cancelled.
        SagaEventType::ShipmentCreated => Step::Record,
        SagaEventType::PaymentCaptured
            if order.status == Confirmed && order.shipment_id.is_some() =>
        {
            change(
                noted().with_status(OrderStatus::Fulfilled),
                Some(OrderEventType::OrderFulfilled),
                Deadline::Any,
                false,
            )
        }
        SagaEventType::PaymentCaptured => change(noted(), None, Deadline::Any, false),
        SagaEventType::PaymentVoided => change(noted(), None, Deadline::Any, false),
    }
}

/// Applies one payment or shipment event to its order. Only events from the service that
/// produces their type, about the order they carry, are applied; the envelope's id was checked
/// against its subject and type when parsed.
pub async fn apply<S: OrderSaga>(
    deps: &CancelOrderDeps<S>,
    consumer: &Consumer,
    event: &SagaEvent,
    now: DateTime<Utc>,
) -> Result<Applied<OrderStatus>, ApplyError> {
    let order_id =
        subject_order(event).ok_or_else(|| ApplyError::Subject(event.subject.clone()))?;
    consumer.producers.check(event)?;
    if event.data.order_id != order_id {
        return Err(ApplyError::SubjectMismatch {
            subject: order_id,
            data: event.data.order_id,
        });
    }
    let consumed = Consumed::of(&consumer.name, event);
    let trace = event.xray_trace_header();
    for _ in 0..ATTEMPTS {
        let Some(stored) = deps.store.order(order_id).await? else {
            return Err(ApplyError::UnknownOrder(order_id));
        };
        let status = stored.order.status;
        match step(event, &stored.order, now) {
            Step::Record => {
                return Ok(match deps.store.record(&consumed).await? {
                    Recorded::Now => Applied::Skipped(status),
                    Recorded::Before => Applied::Duplicate,
                });
            }
            Step::Cancel { decline_code } => {
                let by = CancelBy::Decline {
                    consumed: consumed.clone(),
                    decline_code,
                };
                match cancel_order(deps, &by, order_id, trace.as_deref(), now).await {
                    Ok(Cancelled::Now(_)) => return Ok(Applied::Done),
                    // No longer PENDING: read again and note the decline.
                    Ok(Cancelled::Already(_) | Cancelled::NotDue(_)) => continue,
                    Err(CancelOrderError::AlreadyApplied) => return Ok(Applied::Duplicate),
                    Err(e) => return Err(e.into()),
                }
            }
            Step::Change {
                order,
                event: outgoing,
                deadline,
                unshipped,
            } => {
                let outgoing = outgoing.map(|event_type| {
                    order_event(event_type, &deps.event_source, &order, now)
                        .with_traceparent(event.traceparent.clone())
                });
                let change = OrderChange {
                    order: &order,
                    request_hash: stored.request_hash.as_deref(),
                    from: status,
                    unshipped,
                    deadline,
                    restock: Vec::new(),
                    event: outgoing.as_ref(),
                    consumed: Some(&consumed),
                };
                match deps.store.change_order(&change).await {
                    Ok(()) if outgoing.is_some() => return Ok(Applied::Done),
                    Ok(()) => return Ok(Applied::Skipped(status)),
                    Err(ChangeOrderError::AlreadyApplied) => return Ok(Applied::Duplicate),
                    Err(
                        ChangeOrderError::Changed | ChangeOrderError::Store(StoreError::Transient),
                    ) => continue,
                    Err(ChangeOrderError::ProductGone(_)) => continue,
                    Err(ChangeOrderError::Store(e)) => return Err(e.into()),
                }
            }
        }
    }
    Err(ApplyError::Busy(order_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::SagaFacts;

    fn event(event_type: SagaEventType, order: &Order) -> SagaEvent {
        SagaEvent::new(
            event_type,
            "payments",
            &order.order_id.to_string(),
            SagaFacts {
                order_id: order.order_id,
                charge_id: Some("ch_1".into()),
                decline_code: None,
                shipment_id: Some("shp_1".into()),
            },
            Utc::now(),
        )
    }

    fn pending() -> Order {
        crate::fixtures::order(&[("p-1", 1)], 1999)
    }

    #[test]
    fn an_authorization_confirms_only_a_pending_order_before_its_deadline() {
        let order = pending();
        let now = Utc::now();
        let Step::Change {
            order: confirmed,
            event: Some(OrderEventType::OrderConfirmed),
            deadline: Deadline::NotPassed(_),
            ..
        } = step(
            &event(SagaEventType::PaymentAuthorized, &order),
            &order,
            now,
        )
        else {
            panic!("not confirmed");
        };
        assert_eq!(confirmed.status, OrderStatus::Confirmed);
        assert_eq!(
            confirmed.payment.unwrap().charge_id.as_deref(),
            Some("ch_1")
        );
        let late = order.expires_at.unwrap() + chrono::Duration::seconds(1);
        let Step::Change {
            order: noted,
            event: None,
            ..
        } = step(
            &event(SagaEventType::PaymentAuthorized, &order),
            &order,
            late,
        )
        else {
            panic!("a late authorization confirmed the order");
        };
        assert_eq!(noted.status, OrderStatus::Pending);
    }

    #[test]
    fn a_capture_fulfils_only_a_shipped_confirmed_order() {
        let confirmed = pending()
            .with_payment(PaymentStatus::Authorized, Some("ch_1".into()), None)
            .with_status(OrderStatus::Confirmed);
        let captured = event(SagaEventType::PaymentCaptured, &confirmed);
        assert!(matches!(
            step(&captured, &confirmed, Utc::now()),
            Step::Change { event: None, .. }
        ));
        let shipped = confirmed.shipped("shp_1".into());
        let Step::Change {
            order,
            event: Some(OrderEventType::OrderFulfilled),
            ..
        } = step(&captured, &shipped, Utc::now())
        else {
            panic!("not fulfilled");
        };
        assert_eq!(order.status, OrderStatus::Fulfilled);
    }

    #[test]
    fn a_shipment_of_a_cancelled_order_is_only_recorded() {
        let cancelled =
            pending().cancelled(Utc::now(), crate::domain::CancellationReason::Customer);
        let shipment = event(SagaEventType::ShipmentCreated, &cancelled);
        assert_eq!(step(&shipment, &cancelled, Utc::now()), Step::Record);
        let declined = event(SagaEventType::PaymentDeclined, &cancelled);
        assert!(matches!(
            step(&declined, &cancelled, Utc::now()),
            Step::Change { event: None, .. }
        ));
    }

    #[test]
    fn a_payment_event_that_would_move_the_payment_backwards_is_only_recorded() {
        let fulfilled = pending()
            .with_status(OrderStatus::Confirmed)
            .shipped("shp_1".into())
            .with_payment(PaymentStatus::Captured, Some("ch_1".into()), None)
            .with_status(OrderStatus::Fulfilled);
        for stale in [
            SagaEventType::PaymentDeclined,
            SagaEventType::PaymentAuthorized,
            SagaEventType::PaymentVoided,
        ] {
            let event = event(stale, &fulfilled);
            assert_eq!(
                step(&event, &fulfilled, Utc::now()),
                Step::Record,
                "{stale:?}"
            );
        }
        // A late authorization after an expiry's void is as stale.
        let voided = pending().with_payment(PaymentStatus::Voided, None, None);
        let authorized = event(SagaEventType::PaymentAuthorized, &voided);
        assert_eq!(step(&authorized, &voided, Utc::now()), Step::Record);
    }
}
