//! Cancelling an order: the compensating transaction.

use std::sync::Arc;

use orders_core::service::{CancelOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;

use crate::support::*;

const RW: &[&str] = &["orders:write", "orders:read"];

fn cancel_deps(app: &TestApp) -> CancelOrderDeps<DynamoStore> {
    CancelOrderDeps {
        store: app.store.clone(),
        event_source: app.env("CancelOrderFunction", "EVENT_SOURCE"),
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(5),
        },
        metrics: app.metrics.clone(),
    }
}

fn cancel_event(sub: &str, order_id: &str) -> ApiEvent {
    ApiEvent::load("cancel-order.json")
        .user(sub, RW)
        .path_param("orderId", order_id)
}

async fn placed(app: &TestApp) -> String {
    app.add_product("a", 100, "EUR", 10).await;
    app.add_product("b", 300, "EUR", 10).await;
    let answer = create(
        &app.create_deps(),
        order_by("alice", lines(&[("a", 2), ("b", 3)])),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["orderId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cancelling_restores_the_stock_exactly_once() {
    // GIVEN an order of 2 × a and 3 × b
    let app = TestApp::new().await;
    let id = placed(&app).await;
    assert_eq!((app.stock("a").await, app.stock("b").await), (8, 7));
    // WHEN its owner cancels it
    let deps = cancel_deps(&app);
    let answer = cancel(&deps, cancel_event("alice", &id)).await;
    // THEN 200 with the cancelled order, the stock back, and an order.cancelled event
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["status"], "CANCELLED");
    assert_eq!(answer.body["orderId"], id.as_str());
    assert_eq!((app.stock("a").await, app.stock("b").await), (10, 10));
    let events = app.events().await;
    let cancelled: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "order.cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["data"]["status"], "CANCELLED");

    // AND cancelling again answers the order and changes nothing
    let again = cancel(&deps, cancel_event("alice", &id)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, answer.body);
    assert_eq!((app.stock("a").await, app.stock("b").await), (10, 10));
    assert_eq!(app.events().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancels_restore_the_stock_once() {
    let app = Arc::new(TestApp::new().await);
    let id = placed(&app).await;
    let tasks = (0..10).map(|_| {
        let (app, id) = (app.clone(), id.clone());
        tokio::spawn(async move { cancel(&cancel_deps(&app), cancel_event("alice", &id)).await })
    });
    for answer in futures::future::join_all(tasks).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["status"], "CANCELLED");
    }
    assert_eq!((app.stock("a").await, app.stock("b").await), (10, 10));
    assert_eq!(
        app.events().await.len(),
        2,
        "one order.created, one order.cancelled"
    );
}

#[tokio::test]
async fn stock_given_back_may_exceed_what_can_be_set() {
    // GIVEN an order of one unit, then the product's stock set to the maximum
    let app = TestApp::new().await;
    app.add_product("a", 100, "EUR", 5).await;
    let answer = create(&app.create_deps(), order_by("alice", lines(&[("a", 1)]))).await;
    let id = answer.body["orderId"].as_str().unwrap().to_owned();
    app.add_product("a", 100, "EUR", orders_core::domain::Stock::MAX)
        .await;
    // WHEN the order is cancelled
    assert_eq!(
        cancel(&cancel_deps(&app), cancel_event("alice", &id))
            .await
            .status,
        200
    );
    // THEN the unit comes back, and the product can still be read and ordered
    assert_eq!(app.stock("a").await, orders_core::domain::Stock::MAX + 1);
    let got = get_product(
        &app,
        ApiEvent::load("get-product.json").path_param("productId", "a"),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let again = create(&app.create_deps(), order_by("bob", lines(&[("a", 1)]))).await;
    assert_eq!(again.status, 201, "{}", again.body);
}

#[tokio::test]
async fn an_order_whose_product_was_deleted_is_cancelled_and_the_rest_restocked() {
    // GIVEN an order of 2 × a and 3 × b, and b deleted from the catalogue since
    let app = TestApp::new().await;
    let id = placed(&app).await;
    app.client
        .delete_item()
        .table_name(&app.tables().products)
        .key(
            "productId",
            aws_sdk_dynamodb::types::AttributeValue::S("b".into()),
        )
        .send()
        .await
        .unwrap();
    // WHEN its owner cancels it
    let answer = cancel(&cancel_deps(&app), cancel_event("alice", &id)).await;
    // THEN it is cancelled (never a 500), a is restocked, b is not recreated, and the 3 units of b
    // are counted
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["status"], "CANCELLED");
    assert_eq!(app.stock("a").await, 10);
    assert_eq!(app.count(&app.tables().products).await, 1);
    app.metrics.flush();
    assert_eq!(app.metric_total("StockNotRestored", &[]), 3.0);
    assert_eq!(app.status(&id).await, "CANCELLED");
}

#[tokio::test]
async fn a_replayed_create_describes_the_order_as_it_is_now() {
    // GIVEN an order created with an idempotency key, then cancelled
    let app = TestApp::new().await;
    app.add_product("a", 100, "EUR", 10).await;
    let request = || order_by("alice", lines(&[("a", 2)])).header("idempotency-key", "k-1");
    let first = create(&app.create_deps(), request()).await;
    assert_eq!(first.status, 201);
    let id = first.body["orderId"].as_str().unwrap().to_owned();
    let cancelled = cancel(&cancel_deps(&app), cancel_event("alice", &id)).await;
    assert_eq!(cancelled.status, 200);
    // WHEN the create request is repeated
    let again = create(&app.create_deps(), request()).await;
    // THEN it is a replay that shows the order cancelled, and nothing is sold again
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["status"], "CANCELLED");
    assert_eq!(again.body["cancelledAt"], cancelled.body["cancelledAt"]);
    assert!(again.body["cancelledAt"].is_string());
    assert_eq!(app.stock("a").await, 10);
}

#[tokio::test]
async fn only_the_owner_may_cancel() {
    let app = TestApp::new().await;
    let id = placed(&app).await;
    let deps = cancel_deps(&app);
    cancel(&deps, cancel_event("bob", &id))
        .await
        .problem(404, "order-not-found");
    cancel(
        &deps,
        cancel_event("alice", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    )
    .await
    .problem(404, "order-not-found");
    let reader = cancel_event("alice", &id).user("alice", &["orders:read"]);
    cancel(&deps, reader)
        .await
        .problem(403, "insufficient-scope");
    cancel(&deps, cancel_event("alice", &id).anonymous())
        .await
        .problem(401, "unauthorized");
    assert_eq!(app.status(&id).await, "PENDING");
    assert_eq!((app.stock("a").await, app.stock("b").await), (8, 7));
}

#[tokio::test]
async fn a_confirmed_order_can_be_cancelled_its_authorization_voided_and_its_shipment_called_off() {
    // GIVEN an order confirmed by its payment's authorization
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = placed(&app).await;
    let mut mapping = app.outbox_mapping().await;
    app.relay_all(&mut mapping, &app.publisher()).await;
    app.deliver_payments_once(&services).await;
    app.relay_all(&mut mapping, &app.publisher()).await;
    app.consume_all(&app.cancel_deps()).await;
    assert_eq!(app.status(&id).await, "CONFIRMED");

    // WHEN its owner cancels it before fulfillment has recorded a shipment
    let answer = cancel(&cancel_deps(&app), cancel_event("alice", &id)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["cancellationReason"], "customer");
    assert_eq!((app.stock("a").await, app.stock("b").await), (10, 10));

    // THEN the saga settles: the authorization is voided, the shipment (recorded from
    // order.confirmed in the meantime) is called off, and the order stays CANCELLED
    app.settle(&services).await;
    assert_eq!(app.status(&id).await, "CANCELLED");
    let order = app
        .item(&app.tables().orders.clone(), "orderId", &id)
        .await
        .unwrap();
    assert_eq!(order["payment"]["status"], "voided", "{order}");
    assert!(order.get("shipmentId").is_none());
    let payment = app
        .item(
            &app.env("PaymentEventsFunction", "PAYMENTS_TABLE"),
            "orderId",
            &id,
        )
        .await
        .unwrap();
    assert_eq!(payment["status"], "voided");
    let shipment = app
        .item(
            &app.env("ShipmentEventsFunction", "SHIPMENTS_TABLE"),
            "orderId",
            &id,
        )
        .await
        .unwrap();
    assert_eq!(shipment["status"], "cancelled");
}

#[tokio::test]
async fn a_cancelled_order_is_never_confirmed_and_its_late_authorization_is_voided() {
    // GIVEN an order cancelled before payments has seen its order.created
    let app = TestApp::new().await;
    let services = app.services().await;
    let id = placed(&app).await;
    assert_eq!(
        cancel(&cancel_deps(&app), cancel_event("alice", &id))
            .await
            .status,
        200
    );
    // WHEN the saga runs (payments authorizes, then reads the cancel)
    let settled = app.settle(&services).await;
    // THEN nothing failed, the order stays CANCELLED, and the authorization was voided
    assert_eq!(settled.failed, 0);
    assert_eq!(app.status(&id).await, "CANCELLED");
    let order = app
        .item(&app.tables().orders.clone(), "orderId", &id)
        .await
        .unwrap();
    assert_eq!(order["payment"]["status"], "voided", "{order}");
    assert_eq!((app.stock("a").await, app.stock("b").await), (10, 10));
    assert!(
        app.item(
            &app.env("ShipmentEventsFunction", "SHIPMENTS_TABLE"),
            "orderId",
            &id
        )
        .await
        .is_none(),
        "nothing is shipped for a cancelled order"
    );
}
