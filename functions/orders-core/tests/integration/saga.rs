//! The whole lifecycle as choreography, on the emulators: orders → payments (the Stripe emulator)
//! → fulfillment → payments → orders, each service on its own queue, every effect once.

use chrono::{Duration, Utc};
use payments_core::{ChargeState, PaymentProvider};
use serde_json::Value;

use crate::support::*;

/// Places one order of 2 × `p-1` (price 1250 EUR, stock 10) paid with `payment_method`.
async fn order_paid_with(app: &TestApp, user: &str, payment_method: &str) -> String {
    order_with(app, &app.create_deps(), user, payment_method).await
}

async fn order_with(
    app: &TestApp,
    deps: &orders_core::service::CreateOrderDeps<orders_core::store::DynamoStore>,
    user: &str,
    payment_method: &str,
) -> String {
    if app
        .item(&app.tables().products.clone(), "productId", "p-1")
        .await
        .is_none()
    {
        app.add_product("p-1", 1250, "EUR", 10).await;
    }
    let answer = create(
        deps,
        order_by(user, paid_with(&[("p-1", 2)], payment_method)),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["orderId"].as_str().unwrap().to_owned()
}

async fn order(app: &TestApp, id: &str) -> Value {
    let answer = get_order(
        app,
        ApiEvent::load("get-order.json")
            .user(&owner(app, id).await, &["orders:read"])
            .path_param("orderId", id),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

async fn owner(app: &TestApp, id: &str) -> String {
    let item = app
        .item(&app.tables().orders.clone(), "orderId", id)
        .await
        .unwrap();
    item["userId"].as_str().unwrap().to_owned()
}

/// The order's charge at the payment emulator, if any (every charge of the account searched).
async fn charge(services: &Services, id: &str) -> Option<payments_core::Charge> {
    services.payments.provider.find(id, None).await.unwrap()
}

async fn payment(app: &TestApp, id: &str) -> Value {
    app.item(
        &app.env("PaymentEventsFunction", "PAYMENTS_TABLE"),
        "orderId",
        id,
    )
    .await
    .expect("payments keeps the order's payment")
}

async fn dead_letters(app: &TestApp) -> usize {
    let mut n = 0;
    for dlq in [
        "OrderEventsDeadLetterQueue",
        "PaymentEventsDeadLetterQueue",
        "ShipmentEventsDeadLetterQueue",
    ] {
        n += app.queue_depth(dlq).await;
    }
    n
}

#[tokio::test]
async fn a_paid_order_is_confirmed_shipped_captured_and_fulfilled_with_no_further_call() {
    // GIVEN an order paid with the emulator's card that authorizes
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = order_paid_with(&app, "alice", "tok_visa").await;
    assert_eq!(order(&app, &id).await["status"], "PENDING");
    // WHEN the services react to each other's events
    let settled = app.settle(&services).await;
    // THEN the order is FULFILLED: authorized, shipped, captured — each step once
    assert_eq!(settled.failed, 0);
    let done = order(&app, &id).await;
    assert_eq!(done["status"], "FULFILLED", "{done}");
    assert_eq!(done["payment"]["status"], "captured");
    let charge_id = done["payment"]["chargeId"].as_str().unwrap().to_owned();
    assert!(done["shipmentId"].as_str().unwrap().starts_with("shp_"));
    assert_eq!(payment(&app, &id).await["status"], "captured");
    let charge = charge(&services, &id).await.unwrap();
    assert_eq!(
        (charge.charge_id, charge.state, charge.amount),
        (charge_id, ChargeState::Captured, 2500)
    );
    let mut types: Vec<String> = app
        .events()
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "order.confirmed",
            "order.created",
            "order.fulfilled",
            "order.shipped",
            "payment.authorized",
            "payment.captured",
            "shipment.created"
        ]
    );
    assert_eq!(app.stock("p-1").await, 8);
    assert_eq!(dead_letters(&app).await, 0);
}

#[tokio::test]
async fn an_authorization_held_past_the_limit_is_reported_until_it_is_captured() {
    use payments_core::service::stranded_authorizations;
    // GIVEN an order authorized at the provider whose saga then stalls (nothing else delivered)
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = order_paid_with(&app, "alice", "tok_visa").await;
    let mut mapping = app.outbox_mapping().await;
    app.relay_all(&mut mapping, &app.publisher()).await;
    app.deliver_payments_once(&services).await;
    let after: i64 = app
        .env("PaymentsReconcilerFunction", "STRANDED_AFTER_HOURS")
        .parse()
        .unwrap();
    let after = Duration::hours(after);
    let ledger = &services.payments.ledger;
    // WHEN the reconciler looks before the limit, and after it
    let early = stranded_authorizations(ledger, Utc::now(), after)
        .await
        .unwrap();
    let late = Utc::now() + after + Duration::minutes(1);
    let stranded = stranded_authorizations(ledger, late, after).await.unwrap();
    // THEN only after the limit is the authorization reported; once the saga captures it, never
    assert!(early.is_empty(), "{early:?}");
    assert_eq!(stranded, std::slice::from_ref(&id));
    app.settle(&services).await;
    assert_eq!(order(&app, &id).await["status"], "FULFILLED");
    assert!(
        stranded_authorizations(ledger, late, after)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn every_event_delivered_twice_has_one_effect() {
    // GIVEN a fulfilled order
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = order_paid_with(&app, "alice", "tok_visa").await;
    app.settle(&services).await;
    let before = order(&app, &id).await;
    let events = app.events().await.len();
    // WHEN every one of its events is published again (as a redelivery or a reconciler re-send)
    use platform::relay::{OutboxEvents, Publisher, SharedOutbox};
    let publisher = app.publisher();
    for event in app.events().await {
        let item = serde_dynamo::to_item(&event).unwrap();
        let outgoing = SharedOutbox::outgoing_item(item).unwrap();
        assert!(publisher.publish(&[outgoing]).await.unwrap().is_empty());
    }
    let settled = app.settle(&services).await;
    // THEN each was delivered and recognised: nothing changed, nothing new was written
    assert!(settled.delivered >= 6, "{settled:?}");
    assert_eq!(settled.failed, 0);
    assert_eq!(order(&app, &id).await, before);
    assert_eq!(app.events().await.len(), events);
    let charge = charge(&services, &id).await.unwrap();
    assert_eq!(charge.state, ChargeState::Captured);
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_gives_the_stock_back_at_once() {
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = order_paid_with(&app, "alice", "tok_chargeDeclined").await;
    assert_eq!(app.stock("p-1").await, 8);
    let settled = app.settle(&services).await;
    assert_eq!(settled.failed, 0);
    let cancelled = order(&app, &id).await;
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    assert_eq!(cancelled["cancellationReason"], "payment_declined");
    assert_eq!(cancelled["payment"]["status"], "declined");
    assert_eq!(cancelled["payment"]["declineCode"], "generic_decline");
    assert_eq!(payment(&app, &id).await["status"], "declined");
    assert_eq!(app.stock("p-1").await, 10);
    assert_eq!(dead_letters(&app).await, 0);
}

#[tokio::test]
async fn a_rate_limited_authorization_is_retried_through_the_queue_and_charged_once() {
    // GIVEN the provider answers the first call 429 (then authorizes)
    let app = TestApp::new().await;
    let services = app.services().await;
    // (The emulator uses a chain up once per string: the last token, never reached, makes it this
    // test's own.)
    let id = order_paid_with(
        &app,
        "alice",
        &format!("tok_429|tok_visa|run{}", uuid_like()),
    )
    .await;
    // WHEN the saga runs: the authorization fails and its message comes back later
    let first = app.settle(&services).await;
    assert_eq!(first.failed, 1, "{first:?}");
    assert_eq!(order(&app, &id).await["status"], "PENDING");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    app.settle(&services).await;
    // THEN the order is fulfilled, with one charge
    assert_eq!(order(&app, &id).await["status"], "FULFILLED");
    assert_eq!(
        charge(&services, &id).await.unwrap().state,
        ChargeState::Captured
    );
    assert_eq!(dead_letters(&app).await, 0);
}

#[tokio::test]
async fn a_provider_500_is_looked_up_before_a_new_key_and_never_becomes_two_charges() {
    // GIVEN the provider fails the first authorization with a 500 (kept under its key), then works
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = order_paid_with(
        &app,
        "alice",
        &format!("tok_500|tok_visa|run{}", uuid_like()),
    )
    .await;
    app.settle(&services).await;
    assert_eq!(
        payment(&app, &id).await["attempt"],
        1,
        "the next try goes under a new key"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    app.settle(&services).await;
    // THEN one charge, captured, and the order fulfilled
    assert_eq!(order(&app, &id).await["status"], "FULFILLED");
    let charge = charge(&services, &id).await.unwrap();
    assert_eq!(charge.state, ChargeState::Captured);
    assert_eq!(dead_letters(&app).await, 0);
}

#[tokio::test]
async fn an_unpaid_order_expires_its_stock_comes_back_and_nothing_is_dead_lettered() {
    // GIVEN an order whose provider fails every call, holding its stock for 3 seconds
    let app = TestApp::new().await;
    let services = app.services().await;
    let deps = app.create_deps_reserving(Duration::seconds(3));
    let id = order_with(&app, &deps, "alice", "tok_500").await;
    assert_eq!(app.stock("p-1").await, 8);
    // WHEN payments retries until the deadline, and the expiry runs after it
    for _ in 0..4 {
        app.settle(&services).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let expired = orders_core::service::expire_orders(&app.cancel_deps(), Utc::now())
        .await
        .unwrap();
    app.settle(&services).await;
    // THEN the order is CANCELLED as expired, its stock is back, payments gave up with nothing
    // held, and no message went to a dead-letter queue
    assert_eq!(expired.cancelled, 1, "{expired:?}");
    let cancelled = order(&app, &id).await;
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    assert_eq!(cancelled["cancellationReason"], "expired");
    assert_eq!(app.stock("p-1").await, 10);
    assert_eq!(payment(&app, &id).await["status"], "voided");
    assert!(charge(&services, &id).await.is_none());
    assert_eq!(dead_letters(&app).await, 0);
    for queue in [
        "OrderEventsQueue",
        "PaymentEventsQueue",
        "ShipmentEventsQueue",
    ] {
        assert_eq!(app.queue_depth(queue).await, 0, "{queue}");
    }
}

#[tokio::test]
async fn expiry_never_cancels_a_confirmed_order_nor_one_not_yet_due() {
    let app = TestApp::new().await;
    let services = app.services().await;
    let deps = app.create_deps_reserving(Duration::seconds(2));
    let paid = order_with(&app, &deps, "alice", "tok_visa").await;
    let unpaid = order_with(&app, &app.create_deps(), "bob", "tok_visa").await;
    // alice's order is confirmed in time; bob's has 15 minutes
    app.settle(&services).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let run = orders_core::service::expire_orders(&app.cancel_deps(), Utc::now())
        .await
        .unwrap();
    assert_eq!(run, orders_core::service::Expired::default());
    assert_eq!(order(&app, &paid).await["status"], "FULFILLED");
    assert_eq!(order(&app, &unpaid).await["status"], "FULFILLED");
}

#[tokio::test]
async fn a_mixed_crowd_of_orders_each_ends_in_exactly_one_state_and_no_unit_is_lost() {
    // GIVEN 300 orders of 2 units on a product of stock 240 (so some are refused): paid, declined,
    // cancelled by their owners, and left unpaid (the provider failing) to expire
    let app = TestApp::new().await;
    let services = app.services().await;
    app.add_product("p-1", 1250, "EUR", 240).await;
    let deps = app.create_deps();
    let short = app.create_deps_reserving(Duration::seconds(3));
    let cancel_deps = app.cancel_deps();
    let mut expected = std::collections::BTreeMap::new();
    let mut refused = 0;
    for i in 0..300 {
        let user = format!("user-{i}");
        let (deps, method, outcome) = match i % 4 {
            0 => (&deps, "tok_visa", "FULFILLED"),
            1 => (&deps, "tok_chargeDeclined", "payment_declined"),
            2 => (&deps, "tok_visa", "customer"),
            _ => (&short, "tok_500", "expired"),
        };
        let answer = create(deps, order_by(&user, paid_with(&[("p-1", 2)], method))).await;
        if answer.status == 409 {
            refused += 1;
            continue;
        }
        assert_eq!(answer.status, 201, "{}", answer.body);
        let id = answer.body["orderId"].as_str().unwrap().to_owned();
        if outcome == "customer" {
            let answer = cancel(
                &cancel_deps,
                ApiEvent::load("cancel-order.json")
                    .user(&user, &["orders:write"])
                    .path_param("orderId", &id),
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
        if i % 25 == 0 {
            // The saga runs while orders are still taken (declines and cancels give stock back).
            app.settle(&services).await;
        }
        expected.insert(id, outcome);
    }
    assert!(refused > 0, "the stock ran out for some orders");
    // WHEN the saga settles, and the expiry runs once the unpaid orders' deadlines have passed
    let mut failed = 0;
    for _ in 0..4 {
        failed += app.settle(&services).await.failed;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    orders_core::service::expire_orders(&app.cancel_deps(), Utc::now())
        .await
        .unwrap();
    app.settle(&services).await;
    // THEN every order ended as its payment decided; a charge was captured for its total exactly
    // when FULFILLED, and no cancelled order holds an authorization
    let mut units_kept = 0;
    for (id, outcome) in &expected {
        let order = order(&app, id).await;
        let charge = charge(&services, id).await;
        if *outcome == "FULFILLED" {
            assert_eq!(order["status"], "FULFILLED", "{order}");
            let charge = charge.expect("a fulfilled order has a charge");
            assert_eq!(charge.state, ChargeState::Captured);
            assert_eq!(charge.amount, order["total"]["amount"].as_i64().unwrap());
            units_kept += 2;
        } else {
            assert_eq!(order["status"], "CANCELLED", "{order}");
            assert_eq!(order["cancellationReason"], *outcome, "{order}");
            assert!(
                charge.as_ref().is_none_or(
                    |c| c.state == ChargeState::Voided || c.state == ChargeState::Failed
                ),
                "{order}: {charge:?}"
            );
        }
    }
    // AND the stock adds up, nothing is left PENDING, and no message failed except the provider's
    // 500s, none dead-lettered
    assert_eq!(app.stock("p-1").await, 240 - units_kept);
    assert!(failed <= expected.values().filter(|o| **o == "expired").count() * 3);
    assert_eq!(dead_letters(&app).await, 0);
}

#[tokio::test]
async fn a_poison_message_in_each_services_queue_ends_in_its_dead_letter_queue() {
    let app = TestApp::new().await;
    let services = app.services().await;
    let poison = "{\"specversion\": \"1.0\", \"garbage\": true}";
    for queue in ["PaymentEventsQueue", "ShipmentEventsQueue"] {
        app.sqs
            .send_message()
            .queue_url(app.queue_url(queue))
            .message_body(poison)
            .message_group_id("poison")
            .message_deduplication_id(format!("poison-{queue}"))
            .send()
            .await
            .unwrap();
        // As Lambda's mapping does, `maxReceiveCount` receives (made visible again at once,
        // locally; payments' 10, the others' 5) and the redrive policy moves it.
        let mapping = app.mapping_of(queue);
        let mut failed = 0;
        while let Some(d) = mapping
            .deliver_once(0, |event| async {
                Ok::<_, std::convert::Infallible>(match queue {
                    "PaymentEventsQueue" => {
                        payments_core::consumer::consume(
                            &services.payments,
                            &services.redelivery,
                            &app.metrics,
                            event,
                        )
                        .await
                    }
                    _ => {
                        fulfillment_core::consumer::consume(
                            &services.fulfillment,
                            &app.metrics,
                            event,
                        )
                        .await
                    }
                })
            })
            .await
            .unwrap()
        {
            failed += d.failed;
        }
        let receives = match queue {
            "PaymentEventsQueue" => payments_core::consumer::MAX_RECEIVES as usize,
            _ => 5,
        };
        assert_eq!(failed, receives, "{queue}");
        let dlq = queue.replace("Queue", "DeadLetterQueue");
        let dead = app.drain(&dlq).await;
        assert_eq!(dead.len(), 1, "{dlq}");
        assert_eq!(dead[0].body.as_deref(), Some(poison));
    }
}

#[tokio::test]
async fn an_authorization_that_loses_the_race_with_the_expiry_is_voided() {
    // GIVEN an order authorized at the provider just before its deadline, whose confirmation has
    // not reached the orders service yet
    let app = TestApp::new().await;
    let services = app.services().await;
    let deps = app.create_deps_reserving(Duration::seconds(2));
    let id = order_with(&app, &deps, "alice", "tok_visa").await;
    let mut mapping = app.outbox_mapping().await;
    app.relay_all(&mut mapping, &app.publisher()).await;
    app.deliver_payments_once(&services).await;
    assert_eq!(payment(&app, &id).await["status"], "authorized");
    // WHEN the deadline passes and the expiry runs before the authorization is applied
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = orders_core::service::expire_orders(&app.cancel_deps(), Utc::now())
        .await
        .unwrap();
    assert_eq!(expired.cancelled, 1);
    app.settle(&services).await;
    // THEN the late authorization never confirms the order, and payments voids it
    let cancelled = order(&app, &id).await;
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    assert_eq!(cancelled["cancellationReason"], "expired");
    assert_eq!(cancelled["payment"]["status"], "voided");
    let charge = charge(&services, &id).await.unwrap();
    assert_eq!(charge.state, ChargeState::Voided);
    assert_eq!(app.stock("p-1").await, 10);
    assert!(
        app.item(
            &app.env("ShipmentEventsFunction", "SHIPMENTS_TABLE"),
            "orderId",
            &id
        )
        .await
        .is_none()
    );
}
