//! Every status code of the API, through the real handlers, with the events of `events/`.

use serde_json::json;

use crate::support::*;

const RW: &[&str] = &["orders:write", "orders:read"];

#[tokio::test]
async fn created_order_is_priced_from_the_catalogue_and_located() {
    // GIVEN two products in one currency
    let app = TestApp::new().await;
    app.add_product("p-1", 1999, "EUR", 10).await;
    app.add_product("p-2", 500, "EUR", 10).await;
    // WHEN the fixture's order (2 × p-1, 1 × p-2) is placed
    let answer = create(&app.create_deps(), ApiEvent::load("create-order.json")).await;
    // THEN 201, priced from the products, with its Location
    assert_eq!(answer.status, 201, "{}", answer.body);
    let order = &answer.body;
    assert_eq!(order["userId"], "alice");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["paymentMethod"], "tok_visa");
    assert_eq!(order["payment"], json!({"status": "pending"}));
    let created =
        chrono::DateTime::parse_from_rfc3339(order["createdAt"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(order["expiresAt"].as_str().unwrap()).unwrap();
    let minutes: i64 = app
        .env("CreateOrderFunction", "RESERVATION_MINUTES")
        .parse()
        .unwrap();
    assert_eq!(expires - created, chrono::Duration::minutes(minutes));
    assert_eq!(
        order["items"][0]["unitPrice"],
        json!({"amount": 1999, "currency": "EUR"})
    );
    assert_eq!(
        order["items"][0]["lineTotal"],
        json!({"amount": 3998, "currency": "EUR"})
    );
    assert_eq!(order["total"], json!({"amount": 4498, "currency": "EUR"}));
    let id = order["orderId"].as_str().unwrap();
    assert_eq!(
        answer.header("location"),
        Some(format!("/orders/{id}").as_str())
    );
    assert!(chrono::DateTime::parse_from_rfc3339(order["createdAt"].as_str().unwrap()).is_ok());
    assert_eq!(app.stock("p-1").await, 8);
    assert_eq!(app.stock("p-2").await, 9);
    // AND one order.created event, a CloudEvent carrying the order
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "order.created");
    assert_eq!(events[0]["specversion"], "1.0");
    assert_eq!(events[0]["subject"], id);
    assert_eq!(events[0]["data"], *order);
    assert!(events[0]["expiresAt"].as_i64().unwrap() > chrono::Utc::now().timestamp() + 6 * 86_400);
}

#[tokio::test]
async fn single_line_form_is_accepted() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 5).await;
    let answer = create(
        &app.create_deps(),
        order_by(
            "alice",
            json!({"productId": "p-1", "quantity": 2, "paymentMethod": "tok_visa"}),
        ),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(app.stock("p-1").await, 3);
}

#[tokio::test]
async fn identity_and_scope_are_enforced() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 5).await;
    let deps = app.create_deps();
    let body = lines(&[("p-1", 1)]);
    create(&deps, order_by("alice", body.clone()).anonymous())
        .await
        .problem(401, "unauthorized");
    let answer = create(
        &deps,
        order_by("alice", body.clone()).user("alice", &["orders:read"]),
    )
    .await;
    answer.problem(403, "insufficient-scope");
    assert_eq!(app.orders().await, 0);
    // Without an authorizer `scopes` list, the `scope` claim of the token counts.
    let event = order_by("alice", body).scope_claim_only("alice", "orders:read orders:write");
    assert_eq!(create(&deps, event).await.status, 201);
}

#[tokio::test]
async fn the_user_id_is_never_taken_from_the_body() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 5).await;
    let body = json!({"items": [{"productId": "p-1", "quantity": 1}], "paymentMethod": "tok_visa", "userId": "mallory"});
    let answer = create(&app.create_deps(), order_by("alice", body)).await;
    let problem = answer.problem(400, "validation-failed");
    assert_eq!(problem["errors"][0]["pointer"], "/userId");
    assert_eq!(app.orders().await, 0);
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 5).await;
    let deps = app.create_deps();
    let ok = lines(&[("p-1", 1)]);

    let no_type = order_by("alice", ok.clone()).without_header("content-type");
    create(&deps, no_type)
        .await
        .problem(415, "unsupported-media-type");
    let text = order_by("alice", ok.clone()).header("content-type", "text/plain");
    create(&deps, text)
        .await
        .problem(415, "unsupported-media-type");
    let charset =
        order_by("alice", ok.clone()).header("content-type", "application/json; charset=utf-8");
    assert_eq!(create(&deps, charset).await.status, 201);
    let spelled =
        order_by("bob", ok.clone()).header("content-type", "APPLICATION/JSON ;  Charset = UTF-8");
    assert_eq!(create(&deps, spelled).await.status, 201);
    for refused in ["application/json; charset=latin1", "application/json; v=2"] {
        let answer = create(
            &deps,
            order_by("alice", ok.clone()).header("content-type", refused),
        )
        .await;
        let problem = answer.problem(415, "unsupported-media-type");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
    }
    // A member given twice is refused, not resolved to its last value.
    let twice = r#"{"productId":"p-1","productId":"p-4","quantity":1}"#;
    let answer = create(&deps, order_by("alice", ok.clone()).raw_body(twice)).await;
    let problem = answer.problem(400, "validation-failed");
    assert!(problem["detail"].as_str().unwrap().contains("productId"));

    let huge = format!(
        "{{\"items\":[{{\"productId\":\"p-1\",\"quantity\":1}}],\"pad\":\"{}\"}}",
        "x".repeat(16 * 1024)
    );
    create(&deps, order_by("alice", ok.clone()).raw_body(&huge))
        .await
        .problem(413, "payload-too-large");
    create(
        &deps,
        order_by("alice", ok.clone()).raw_body("{\"items\": ["),
    )
    .await
    .problem(400, "malformed-json");

    let answer = create(&deps, order_by("alice", lines(&[("p-1", 0)]))).await;
    assert_eq!(
        answer.problem(400, "validation-failed")["errors"][0]["pointer"],
        "/items/0/quantity"
    );
    let answer = create(&deps, order_by("alice", lines(&[("p 1", 1)]))).await;
    assert_eq!(
        answer.problem(400, "validation-failed")["errors"][0]["pointer"],
        "/items/0/productId"
    );
    let price = json!({"items": [{"productId": "p-1", "quantity": 1, "price": 1}]});
    create(&deps, order_by("alice", price))
        .await
        .problem(400, "validation-failed");

    for key in ["", &"k".repeat(65), "tab\there"] {
        let answer = create(
            &deps,
            order_by("alice", ok.clone()).header("idempotency-key", key),
        )
        .await;
        assert_eq!(
            answer.problem(400, "validation-failed")["errors"][0]["header"],
            "Idempotency-Key"
        );
    }
    // Only the two well-formed requests above wrote anything.
    assert_eq!(app.orders().await, 2);
    assert_eq!(app.stock("p-1").await, 3);
}

#[tokio::test]
async fn unknown_product_is_404_and_mixed_currencies_422() {
    let app = TestApp::new().await;
    app.add_product("p-eur", 100, "EUR", 5).await;
    app.add_product("p-usd", 100, "USD", 5).await;
    let deps = app.create_deps();
    let answer = create(
        &deps,
        order_by("alice", lines(&[("p-eur", 1), ("ghost", 1)])),
    )
    .await;
    assert_eq!(
        answer.problem(404, "product-not-found")["productId"],
        "ghost"
    );
    let answer = create(
        &deps,
        order_by("alice", lines(&[("p-eur", 1), ("p-usd", 1)])),
    )
    .await;
    answer.problem(422, "currency-mismatch");
    assert_eq!(app.orders().await, 0);
    assert_eq!(app.stock("p-eur").await, 5);
}

#[tokio::test]
async fn insufficient_stock_is_409_with_what_is_left() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 3).await;
    let answer = create(&app.create_deps(), order_by("alice", lines(&[("p-1", 5)]))).await;
    let problem = answer.problem(409, "insufficient-stock");
    assert_eq!(problem["productId"], "p-1");
    assert_eq!(problem["requested"], 5);
    assert_eq!(problem["available"], 3);
}

#[tokio::test]
async fn quota_refuses_the_extra_order_of_the_minute_with_429() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 1000).await;
    let deps = app.create_deps();
    let limit = deps.orders_per_minute;
    assert_eq!(limit, 10, "template.yaml's default quota");
    for _ in 0..limit {
        let answer = create(&deps, order_by("alice", lines(&[("p-1", 1)]))).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let answer = create(&deps, order_by("alice", lines(&[("p-1", 1)]))).await;
    // The minute may have turned over during the loop; then this order is simply the first of the next.
    if answer.status == 201 {
        return;
    }
    answer.problem(429, "quota-exceeded");
    let retry_after: u32 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(app.stock("p-1").await, 1000 - i64::from(limit));
    // Another user is not affected.
    assert_eq!(
        create(&deps, order_by("bob", lines(&[("p-1", 1)])))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn orders_are_read_only_by_their_owner() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 5).await;
    let created = create(&app.create_deps(), order_by("alice", lines(&[("p-1", 1)]))).await;
    let id = created.body["orderId"].as_str().unwrap().to_owned();

    let mine = get_order(
        &app,
        ApiEvent::load("get-order.json")
            .user("alice", RW)
            .path_param("orderId", &id),
    )
    .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body, created.body);

    let theirs = get_order(
        &app,
        ApiEvent::load("get-order.json")
            .user("bob", RW)
            .path_param("orderId", &id),
    )
    .await;
    theirs.problem(404, "order-not-found");
    let unknown = get_order(&app, ApiEvent::load("get-order.json").user("alice", RW)).await;
    unknown.problem(404, "order-not-found");
    let garbage = get_order(
        &app,
        ApiEvent::load("get-order.json")
            .user("alice", RW)
            .path_param("orderId", "x"),
    )
    .await;
    garbage.problem(404, "order-not-found");
    get_order(&app, ApiEvent::load("get-order.json").anonymous())
        .await
        .problem(401, "unauthorized");
    let write_only = ApiEvent::load("get-order.json").user("alice", &["orders:write"]);
    get_order(&app, write_only)
        .await
        .problem(403, "insufficient-scope");
}

#[tokio::test]
async fn list_pages_through_the_callers_orders_newest_first() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 100).await;
    let deps = app.create_deps();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let answer = create(&deps, order_by("alice", lines(&[("p-1", 1)]))).await;
        ids.push(answer.body["orderId"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    create(&deps, order_by("bob", lines(&[("p-1", 1)]))).await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut event = ApiEvent::load("list-orders.json")
            .user("alice", RW)
            .query("limit", "2");
        if let Some(c) = &cursor {
            event = event.query("cursor", c);
        }
        let page = list_orders(&app, event).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for order in page.body["orders"].as_array().unwrap() {
            assert_eq!(order["userId"], "alice");
            seen.push(order["orderId"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "alice's five orders, newest first, each once");

    let bad = |name: &str, value: &str| {
        ApiEvent::load("list-orders.json")
            .user("alice", RW)
            .query(name, value)
    };
    for (name, value) in [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
        ("cursor", "garbage"),
    ] {
        let answer = list_orders(&app, bad(name, value)).await;
        assert_eq!(
            answer.problem(400, "validation-failed")["errors"][0]["parameter"],
            name
        );
    }
}

#[tokio::test]
async fn products_are_public_to_read_and_need_a_scope_to_write() {
    let app = TestApp::new().await;
    let put = put_product(&app, ApiEvent::load("put-product.json")).await;
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(put.header("location"), Some("/products/p-1"));
    let again = put_product(&app, ApiEvent::load("put-product.json")).await;
    assert_eq!(again.status, 200);

    let got = get_product(&app, ApiEvent::load("get-product.json")).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body,
        json!({"productId": "p-1", "name": "Espresso cup", "price": {"amount": 1999, "currency": "EUR"}, "stock": 30})
    );
    get_product(
        &app,
        ApiEvent::load("get-product.json").path_param("productId", "nope"),
    )
    .await
    .problem(404, "product-not-found");

    let reader = ApiEvent::load("put-product.json").user("alice", RW);
    put_product(&app, reader)
        .await
        .problem(403, "insufficient-scope");
    put_product(&app, ApiEvent::load("put-product.json").anonymous())
        .await
        .problem(401, "unauthorized");
    let invalid = ApiEvent::load("put-product.json")
        .body(json!({"name": "", "price": {"amount": -1, "currency": "eur"}, "stock": -5}));
    let errors = put_product(&app, invalid)
        .await
        .problem(400, "validation-failed")["errors"]
        .clone();
    let pointers: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].clone())
        .collect();
    assert_eq!(pointers, [json!("/name"), json!("/price"), json!("/stock")]);
    let extra = ApiEvent::load("put-product.json").body(
        json!({"name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": 1, "discount": 5}),
    );
    put_product(&app, extra)
        .await
        .problem(400, "validation-failed");
    assert_eq!(app.stock("p-1").await, 30);
}
