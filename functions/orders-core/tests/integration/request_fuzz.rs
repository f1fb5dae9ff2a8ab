//! `POST /orders` under any request: any body (JSON shaped like an order, any JSON, any bytes,
//! base64 or not), any content type and any `Idempotency-Key` get a 201 or a 4xx problem — never a
//! panic, never a 5xx — and nothing is half-written: every unit sold is in an order that was
//! answered 201.

use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::support::*;

/// Member names the parser knows, and a few it does not.
fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "items", "productId", "quantity", "paymentMethod", "shippingAddress", "name", "line1",
            "line2", "city", "postalCode", "country",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-2i64..=1002).prop_map(Value::from),
        prop::sample::select(vec!["p-1", "p-2", "ghost", "tok_visa", "", "DE", "10115"])
            .prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(member(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body shaped like an order: its lines and payment method mostly right, any member possibly
/// replaced or added.
fn order_like() -> impl Strategy<Value = Value> {
    let line = (
        prop::sample::select(vec!["p-1", "p-1", "p-2", "p-2", "ghost"]),
        prop_oneof![6 => 1u32..=3, 1 => any::<u32>()],
    )
        .prop_map(|(p, q)| json!({"productId": p, "quantity": q}));
    (
        prop::collection::vec(line, 0..4),
        prop_oneof![4 => Just(None), 1 => json_value().prop_map(Some)],
        prop_oneof![4 => Just(None), 1 => (member(), json_value()).prop_map(Some)],
    )
        .prop_map(|(items, odd_payment, extra)| {
            let mut body = json!({"items": items, "paymentMethod": "tok_visa"});
            if let Some(payment) = odd_payment {
                body["paymentMethod"] = payment;
            }
            if let Some((name, value)) = extra {
                body[name] = value;
            }
            body
        })
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Text(String),
    Base64(Vec<u8>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => order_like().prop_map(Body::Json),
        2 => json_value().prop_map(Body::Json),
        1 => "\\PC{0,64}".prop_map(Body::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Base64),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => "[ -~]{0,24}".prop_map(Some),
        1 => Just(None),
    ]
}

fn idempotency_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => "[a-z0-9-]{1,12}".prop_map(Some),
        1 => "[ -~]{0,300}".prop_map(Some),
    ]
}

#[test]
fn any_request_is_answered_with_a_201_or_a_problem_and_nothing_half_written() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stock = 1_000_000;
    let app = runtime.block_on(async {
        let app = TestApp::new().await;
        app.add_product("p-1", 1999, "EUR", stock).await;
        app.add_product("p-2", 500, "EUR", stock).await;
        app
    });
    let deps = app.create_deps();
    // The runner's closure is `Fn`: what it answered 201 is kept behind a lock.
    let created = std::sync::Mutex::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(
        &(
            // Several customers, so the per-user quota (429) leaves orders for the store.
            prop::sample::select(vec!["alice", "bob", "carol", "dave", "erin"]),
            body(),
            content_type(),
            idempotency_key(),
        ),
        |(user, body, content_type, key)| {
            let mut event = order_by(user, json!({})).without_header("content-type");
            event = match &body {
                Body::Json(value) => event.body(value.clone()),
                Body::Text(text) => event.raw_body(text),
                Body::Base64(bytes) => event
                    .raw_body(&base64::engine::general_purpose::STANDARD.encode(bytes))
                    .base64_encoded(),
            };
            if let Some(content_type) = &content_type {
                event = event.header("content-type", content_type);
            }
            if let Some(key) = &key {
                event = event.header("idempotency-key", key);
            }
            let answer = runtime.block_on(create(&deps, event));
            let status = answer.status.as_u16();
            if status == 201 {
                let units: i64 = answer.body["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|line| line["quantity"].as_i64().unwrap_or_default())
                    .sum();
                let order_id = answer.body["orderId"].as_str().unwrap_or_default();
                created.lock().unwrap().push((order_id.to_owned(), units));
                return Ok(());
            }
            if !(400..500).contains(&status) {
                return Err(TestCaseError::fail(format!("{status}: {}", answer.body)));
            }
            prop_assert_eq!(
                answer.header("content-type"),
                Some("application/problem+json")
            );
            prop_assert!(
                answer.body["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("urn:orders:problem:")),
                "{}",
                answer.body
            );
            prop_assert_eq!(answer.body["status"].as_u64(), Some(u64::from(status)));
            Ok(())
        },
    );
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Every unit that left the stock is in an order answered 201 (a replay answers 201 too).
    let mut created = created.into_inner().unwrap();
    runtime.block_on(async {
        created.sort();
        created.dedup();
        assert_eq!(app.orders().await, created.len());
        let sold: i64 = created.iter().map(|(_, units)| units).sum();
        assert_eq!(
            2 * stock - app.stock("p-1").await - app.stock("p-2").await,
            sold
        );
    });
}
