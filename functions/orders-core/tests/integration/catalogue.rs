//! The catalogue: a replace never touches stock; stock changes only by a delta, never below zero,
//! once per idempotency key, and exactly under concurrent orders.

use std::sync::Arc;

use serde_json::json;

use crate::support::*;

fn put(body: serde_json::Value) -> ApiEvent {
    ApiEvent::load("put-product.json").body(body)
}

#[tokio::test]
async fn a_stale_product_body_never_brings_sold_stock_back() {
    // GIVEN a product of 5 units, all sold
    let app = TestApp::new().await;
    let old =
        json!({"name": "Espresso cup", "price": {"amount": 1999, "currency": "EUR"}, "stock": 5});
    assert_eq!(put_product(&app, put(old.clone())).await.status, 201);
    let sold = create(&app.create_deps(), order_by("alice", lines(&[("p-1", 5)]))).await;
    assert_eq!(sold.status, 201, "{}", sold.body);
    // WHEN an admin re-sends the body read before, with a new price
    let mut stale = old.clone();
    stale["price"]["amount"] = json!(2499);
    let answer = put_product(&app, put(stale)).await;
    // THEN it is refused with the stock there is, and nothing changed
    let problem = answer.problem(409, "stock-differs");
    assert_eq!(problem["stock"], 0);
    let got = get_product(&app, ApiEvent::load("get-product.json")).await;
    assert_eq!(got.body["price"]["amount"], 1999);
    // AND the same change without `stock` replaces the details and keeps the stock
    let details = json!({"name": "Espresso cup", "price": {"amount": 2499, "currency": "EUR"}});
    let replaced = put_product(&app, put(details)).await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["stock"], 0);
    assert_eq!(replaced.body["price"]["amount"], 2499);
    // AND nothing more can be sold
    let more = create(&app.create_deps(), order_by("bob", lines(&[("p-1", 1)]))).await;
    more.problem(409, "insufficient-stock");
    assert_eq!(app.stock("p-1").await, 0);
}

#[tokio::test]
async fn a_new_product_without_stock_starts_at_zero() {
    let app = TestApp::new().await;
    let body = json!({"name": "Mug", "price": {"amount": 900, "currency": "EUR"}});
    let created = put_product(&app, put(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["stock"], 0);
    assert_eq!(app.stock("p-1").await, 0);
}

#[tokio::test]
async fn stock_is_adjusted_by_a_delta_and_never_below_zero() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 3).await;
    let deps = adjust_deps(&app);

    let added = adjust_stock(&deps, adjustment("p-1", 10, None)).await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["stock"], 13);
    assert_eq!(added.body["delta"], 10);
    assert_eq!(added.body["reason"], "stock count");
    assert_eq!(added.body["adjustedBy"], "alice", "the token's sub");

    let too_many = adjust_stock(&deps, adjustment("p-1", -20, None)).await;
    let problem = too_many.problem(409, "insufficient-stock");
    assert_eq!(problem["available"], 13);
    assert_eq!(problem["requested"], 20);
    let to_zero = adjust_stock(&deps, adjustment("p-1", -13, None)).await;
    assert_eq!(to_zero.body["stock"], 0);

    adjust_stock(&deps, adjustment("ghost", 1, None))
        .await
        .problem(404, "product-not-found");
    for (body, pointer) in [
        (json!({"delta": 0, "reason": "x"}), "/delta"),
        (json!({"delta": 1, "reason": " "}), "/reason"),
        (json!({"delta": 2_000_000_000_i64, "reason": "x"}), "/delta"),
    ] {
        let answer = adjust_stock(&deps, adjustment("p-1", 1, None).body(body)).await;
        assert_eq!(
            answer.problem(400, "validation-failed")["errors"][0]["pointer"],
            pointer
        );
    }
    adjust_stock(&deps, adjustment("p-1", 1, None).body(json!({"delta": 1})))
        .await
        .problem(400, "validation-failed");
    adjust_stock(
        &deps,
        adjustment("p-1", 1, None).user("alice", &["orders:write"]),
    )
    .await
    .problem(403, "insufficient-scope");
    assert_eq!(app.stock("p-1").await, 0);
}

#[tokio::test]
async fn a_retried_adjustment_is_applied_once() {
    // GIVEN an adjustment made with an idempotency key (its answer lost on the way)
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 5).await;
    let deps = adjust_deps(&app);
    let first = adjust_stock(&deps, adjustment("p-1", 7, Some("delivery-42"))).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);
    // WHEN it is sent again
    let again = adjust_stock(&deps, adjustment("p-1", 7, Some("delivery-42"))).await;
    // THEN it answers the first adjustment and the stock moved once
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["adjustmentId"], "delivery-42");
    assert_eq!(again.body["adjustedAt"], first.body["adjustedAt"]);
    assert_eq!(app.stock("p-1").await, 12);
    // AND the key with another change is refused
    adjust_stock(&deps, adjustment("p-1", 8, Some("delivery-42")))
        .await
        .problem(422, "idempotency-key-reused");
    // AND the same key on another product is another adjustment
    app.add_product("p-2", 100, "EUR", 0).await;
    let other = adjust_stock(&deps, adjustment("p-2", 7, Some("delivery-42"))).await;
    assert_eq!(other.header("idempotent-replayed"), None);
    assert_eq!(app.stock("p-2").await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_and_adjustments_add_up_exactly() {
    // GIVEN a product with a little stock
    let app = Arc::new(TestApp::new().await);
    let initial = 40;
    app.add_product("p-1", 100, "EUR", initial).await;
    // WHEN 100 requests race: 60 orders of 1–3 units (each from its own user), and 40 adjustments
    // of −5..+5 (some refused for want of stock), interleaved
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                if i % 5 < 3 {
                    let units = 1 + (i % 3) as i64;
                    let body = lines(&[("p-1", units as u32)]);
                    let event = order_by(&format!("u{i}"), body)
                        .header("idempotency-key", &format!("o-{i}"));
                    let deps = app.create_deps();
                    let answer = until_answered(|| create(&deps, event.clone())).await;
                    match answer.status.as_u16() {
                        201 => (0, units),
                        409 => (0, 0),
                        other => panic!("order {i}: {other} {}", answer.body),
                    }
                } else {
                    let delta = [-5, 3, -4, 5, -2, 4][i % 6];
                    let key = format!("adj-{i}");
                    let deps = adjust_deps(&app);
                    let answer = until_answered(|| {
                        adjust_stock(&deps, adjustment("p-1", delta, Some(&key)))
                    })
                    .await;
                    match answer.status.as_u16() {
                        201 => (delta, 0),
                        409 => (0, 0),
                        other => panic!("adjustment {i}: {other} {}", answer.body),
                    }
                }
            })
        })
        .collect();
    let mut deltas = 0;
    let mut ordered = 0;
    for task in tasks {
        let (delta, units) = task.await.unwrap();
        deltas += delta;
        ordered += units;
    }
    // THEN the stock is exactly initial + Σ deltas − units ordered (so never below zero: every
    // write's condition held)
    assert!(
        ordered > 0 && deltas != 0,
        "both kinds of request took effect"
    );
    assert_eq!(app.stock("p-1").await, initial + deltas - ordered);
    assert!(initial + deltas - ordered >= 0);
}

#[tokio::test]
async fn a_products_per_order_limit_refuses_a_line_above_it_with_422() {
    // GIVEN a flash-sale product: at most 2 per order
    let app = TestApp::new().await;
    let body = json!({"name": "Drop", "price": {"amount": 900, "currency": "EUR"}, "stock": 50, "maxPerOrder": 2});
    let created = put_product(&app, put(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["maxPerOrder"], 2);
    let got = get_product(&app, ApiEvent::load("get-product.json")).await;
    assert_eq!(got.body["maxPerOrder"], 2);
    // WHEN a line asks for 3
    let answer = create(&app.create_deps(), order_by("alice", lines(&[("p-1", 3)]))).await;
    // THEN 422 naming the product and the limit, and nothing is sold
    let problem = answer.problem(422, "max-per-order-exceeded");
    assert_eq!(problem["productId"], "p-1");
    assert_eq!(problem["maxPerOrder"], 2);
    assert_eq!(problem["requested"], 3);
    assert_eq!(app.stock("p-1").await, 50);
    // AND 2 are sold
    let ok = create(&app.create_deps(), order_by("bob", lines(&[("p-1", 2)]))).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    // AND a replace that leaves the limit out removes it; an invalid one is 400
    let no_limit = json!({"name": "Drop", "price": {"amount": 900, "currency": "EUR"}});
    let replaced = put_product(&app, put(no_limit)).await;
    assert_eq!(replaced.status, 200);
    assert!(replaced.body.get("maxPerOrder").is_none());
    let three = create(&app.create_deps(), order_by("carol", lines(&[("p-1", 3)]))).await;
    assert_eq!(three.status, 201, "{}", three.body);
    for bad in [0, 1001] {
        let body = json!({"name": "Drop", "price": {"amount": 900, "currency": "EUR"}, "maxPerOrder": bad});
        let answer = put_product(&app, put(body)).await;
        assert_eq!(
            answer.problem(400, "validation-failed")["errors"][0]["pointer"],
            "/maxPerOrder"
        );
    }
}

#[tokio::test]
async fn a_limit_set_while_an_order_is_placed_is_held_by_the_transaction() {
    // GIVEN an order priced while the product had no limit
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 10).await;
    let deps = app.create_deps();
    let products = {
        use orders_core::service::ports::ReadProducts;
        let id = orders_core::domain::ProductId::parse("p-1").unwrap();
        app.store.products(&[&id], true).await.unwrap()
    };
    let order = orders_core::domain::Order::price(
        orders_core::domain::OrderId::new_random(),
        orders_core::domain::UserId::parse("alice").unwrap(),
        &orders_core::domain::OrderLines::new(vec![(
            orders_core::domain::ProductId::parse("p-1").unwrap(),
            orders_core::domain::Quantity::new(3).unwrap(),
        )])
        .unwrap(),
        orders_core::domain::Checkout {
            payment_method: orders_core::domain::PaymentMethod::parse("tok_visa").unwrap(),
            shipping_address: None,
            expires_at: chrono::Utc::now() + deps.reservation,
        },
        chrono::Utc::now(),
        |id| products.get(id).map(|p| p.price),
    )
    .unwrap();
    // WHEN a limit of 2 is set before its transaction commits
    let limited =
        json!({"name": "P", "price": {"amount": 100, "currency": "EUR"}, "maxPerOrder": 2});
    assert_eq!(put_product(&app, put(limited)).await.status, 200);
    let event = orders_core::events::order_event(
        orders_core::events::OrderEventType::OrderCreated,
        &deps.event_source,
        &order,
        chrono::Utc::now(),
    );
    use orders_core::service::ports::{NewOrder, PlaceOrder};
    let placed = app
        .store
        .place_order(&NewOrder {
            order: &order,
            request_hash: None,
            event: &event,
            orders_per_minute: deps.orders_per_minute,
        })
        .await;
    // THEN the transaction's condition refuses it, naming the limit
    assert!(
        matches!(
            placed,
            Err(orders_core::service::CreateOrderError::AboveMaxPerOrder { limit: 2, .. })
        ),
        "{placed:?}"
    );
    assert_eq!(app.stock("p-1").await, 10);
}
