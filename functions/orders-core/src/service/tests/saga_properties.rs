//! The orders service's saga rules under any order of events: every sequence of payment and
//! shipment events (each delivered any number of times), customer cancels and expiry runs, at
//! clocks on either side of the reservation's deadline, leaves the order in a legal state.

use proptest::prelude::*;

use super::*;

/// One thing that happens to an order, at `skew` seconds from its reservation's deadline.
#[derive(Debug, Clone)]
enum Happening {
    /// The producer's event of this type arrives (again, if it came before: ids are per order
    /// and type, so a second one is a redelivery).
    Event(SagaEventType),
    CustomerCancel,
    Expiry,
}

fn happening() -> impl Strategy<Value = (Happening, i64)> {
    let event = prop::sample::select(vec![
        SagaEventType::PaymentAuthorized,
        SagaEventType::PaymentDeclined,
        SagaEventType::PaymentCaptured,
        SagaEventType::PaymentVoided,
        SagaEventType::ShipmentCreated,
    ])
    .prop_map(Happening::Event);
    let happening = prop_oneof![
        6 => event,
        1 => Just(Happening::CustomerCancel),
        1 => Just(Happening::Expiry),
    ];
    (happening, -600i64..=600)
}

fn source_of(event_type: SagaEventType) -> &'static str {
    match event_type {
        SagaEventType::ShipmentCreated => "fulfillment",
        _ => "payments",
    }
}

/// The moves an order's status may make; anything else is a broken rule.
fn legal(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::{Cancelled, Confirmed, Fulfilled, Pending};
    matches!(
        (from, to),
        (Pending, Confirmed)
            | (Pending, Cancelled)
            | (Confirmed, Fulfilled)
            | (Confirmed, Cancelled)
    )
}

async fn run(script: Vec<(Happening, i64)>) -> Result<(), TestCaseError> {
    // Alice's order and Bob's take one unit each of 5: 3 left.
    let (deps, orders) = two_pending_orders().await;
    let order = &orders[0];
    let deadline = order.expires_at.expect("a reservation deadline");
    let consumer = orders_consumer();
    let alice = CancelBy::Customer(UserId::parse("alice").unwrap());
    let mut delivered = Vec::new();
    let mut statuses = vec![OrderStatus::Pending];
    let mut authorized_in_time = false;
    for (happening, skew) in script {
        let now = deadline + chrono::Duration::seconds(skew);
        let before = order_now(&deps, order).await;
        match happening {
            Happening::Event(event_type) => {
                let event = saga_event(event_type, source_of(event_type), order);
                let applied = apply(&deps, &consumer, &event, now).await;
                let applied = applied.map_err(|e| TestCaseError::fail(e.to_string()))?;
                if delivered.contains(&event_type) {
                    prop_assert_eq!(applied, Applied::Duplicate);
                    prop_assert_eq!(&order_now(&deps, order).await, &before);
                }
                delivered.push(event_type);
                if event_type == SagaEventType::PaymentAuthorized && now < deadline {
                    authorized_in_time = true;
                }
            }
            Happening::CustomerCancel => {
                match cancel_order(&deps, &alice, order.order_id, None, now).await {
                    Ok(_) => {}
                    Err(CancelOrderError::NotCancellable(_)) => prop_assert!(
                        before.shipment_id.is_some(),
                        "only a shipped order refuses its owner's cancel"
                    ),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
            Happening::Expiry => {
                let expired = cancel_order(&deps, &CancelBy::Expiry, order.order_id, None, now)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if matches!(expired, Cancelled::Now(_)) {
                    prop_assert_eq!(before.status, OrderStatus::Pending);
                    prop_assert!(now >= deadline, "expired before its deadline");
                }
            }
        }
        let after = order_now(&deps, order).await;
        let last = *statuses.last().expect("the first status");
        if after.status != last {
            prop_assert!(legal(last, after.status), "{last} → {}", after.status);
            statuses.push(after.status);
        }
    }

    let order = order_now(&deps, order).await;
    let events = deps.store.events.lock().unwrap().clone();
    let count = |t: OrderEventType| events.iter().filter(|e| **e == t).count();
    let was = |s: OrderStatus| usize::from(statuses.contains(&s));
    // Each transition wrote its event exactly once, and no event without its transition.
    prop_assert_eq!(
        count(OrderEventType::OrderConfirmed),
        was(OrderStatus::Confirmed)
    );
    prop_assert_eq!(
        count(OrderEventType::OrderFulfilled),
        was(OrderStatus::Fulfilled)
    );
    prop_assert_eq!(
        count(OrderEventType::OrderCancelled),
        was(OrderStatus::Cancelled)
    );
    prop_assert_eq!(
        count(OrderEventType::OrderShipped),
        usize::from(order.shipment_id.is_some())
    );
    // Confirmed only by an authorization that came before the deadline.
    prop_assert!(authorized_in_time || was(OrderStatus::Confirmed) == 0);
    match order.status {
        OrderStatus::Fulfilled => {
            prop_assert!(order.shipment_id.is_some());
            prop_assert_eq!(
                order.payment.map(|p| p.status),
                Some(PaymentStatus::Captured)
            );
        }
        OrderStatus::Cancelled => {
            prop_assert!(order.shipment_id.is_none(), "a shipped order was cancelled");
            prop_assert!(order.cancellation_reason.is_some());
        }
        _ => {}
    }
    // Alice's unit is back once, and only if her order was cancelled.
    let stock = if order.status == OrderStatus::Cancelled {
        4
    } else {
        3
    };
    prop_assert_eq!(deps.store.stock(&pid("p-1")), stock);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_sequence_of_events_leaves_the_order_in_a_legal_state(
        script in prop::collection::vec(happening(), 1..16)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(run(script))?;
    }
}
