//! The use cases' own logic, on the in-memory store: no emulator needed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform::consumer::Applied;
use platform::metrics::Metrics;

use super::fake::FakeStore;
use super::*;
use crate::domain::{
    Currency, IdempotencyKey, Money, OrderStatus, Product, ProductId, ProductName, Stock, UserId,
};
use crate::events::{OrderEventType, order_event};

fn pid(raw: &str) -> ProductId {
    ProductId::parse(raw).unwrap()
}

fn product(id: &str, stock: i64) -> Product {
    Product {
        id: pid(id),
        name: ProductName::parse("Mug").unwrap(),
        price: Money::new(1999, Currency::parse("EUR").unwrap()).unwrap(),
        stock: Stock::new(stock).unwrap(),
        max_per_order: None,
    }
}

fn orders_consumer() -> Consumer {
    Consumer {
        name: "orders".into(),
        producer: "orders".into(),
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    }
}

fn deps(store: FakeStore) -> CreateOrderDeps<FakeStore> {
    CreateOrderDeps {
        store,
        orders_per_minute: 10,
        event_source: "orders".into(),
        retry: fast(),
        metrics: Arc::new(Metrics::discard()),
    }
}

fn request(user: &str, lines: &[(&str, u32)], key: Option<&str>) -> CreateOrder {
    CreateOrder {
        user: UserId::parse(user).unwrap(),
        lines: crate::fixtures::lines(lines),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        trace: None,
    }
}

#[tokio::test]
async fn a_retried_request_answers_the_order_as_it_is_now() {
    // GIVEN an order placed with an idempotency key, confirmed since
    let deps = deps(FakeStore::default().with_product(product("p-1", 5)));
    let first = request("alice", &[("p-1", 2)], Some("k-1"));
    let Created::New(order) = create_order(&deps, &first, Utc::now()).await.unwrap() else {
        panic!("the first request creates the order");
    };
    deps.store
        .set_status(order.order_id, OrderStatus::Confirmed);
    // WHEN the same request comes again
    let again = create_order(&deps, &first, Utc::now()).await.unwrap();
    // THEN it is answered with the order as it is now, and nothing more is sold
    assert_eq!(
        again,
        Created::Replayed(order.with_status(OrderStatus::Confirmed))
    );
    assert_eq!(deps.store.stock(&pid("p-1")), 3);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    let deps = deps(FakeStore::default().with_product(product("p-1", 5)));
    create_order(
        &deps,
        &request("alice", &[("p-1", 1)], Some("k")),
        Utc::now(),
    )
    .await
    .unwrap();
    let other = request("alice", &[("p-1", 2)], Some("k"));
    let refused = create_order(&deps, &other, Utc::now()).await.unwrap_err();
    assert!(matches!(refused, CreateOrderError::IdempotencyKeyReused));
    assert_eq!(deps.store.stock(&pid("p-1")), 4);
}

#[tokio::test]
async fn conflicts_are_retried_a_bounded_number_of_times() {
    let store = FakeStore::default().with_product(product("p-1", 5));
    *store.conflicts.lock().unwrap() = 2;
    let deps = deps(store);
    let created = create_order(&deps, &request("alice", &[("p-1", 1)], None), Utc::now()).await;
    assert!(matches!(created, Ok(Created::New(_))));
    assert_eq!(*deps.store.transactions.lock().unwrap(), 3);

    *deps.store.conflicts.lock().unwrap() = u32::MAX;
    let busy = create_order(&deps, &request("bob", &[("p-1", 1)], None), Utc::now()).await;
    assert!(matches!(busy, Err(CreateOrderError::Busy { attempts: 3 })));
    assert_eq!(
        deps.store.stock(&pid("p-1")),
        4,
        "only the first order sold"
    );
}

#[tokio::test]
async fn refusals_come_back_as_the_store_explained_them() {
    let deps = deps(FakeStore::default().with_product(product("p-1", 1)));
    let short = create_order(&deps, &request("alice", &[("p-1", 2)], None), Utc::now()).await;
    assert!(matches!(
        short,
        Err(CreateOrderError::InsufficientStock { available: 1, .. })
    ));
    let unknown = create_order(&deps, &request("alice", &[("ghost", 1)], None), Utc::now()).await;
    assert!(matches!(unknown, Err(CreateOrderError::UnknownProduct(p)) if p.as_str() == "ghost"));
}

#[tokio::test]
async fn cancelling_gives_the_stock_back_once_and_only_to_the_owner() {
    let deps = deps(FakeStore::default().with_product(product("p-1", 5)));
    let Created::New(order) =
        create_order(&deps, &request("alice", &[("p-1", 2)], None), Utc::now())
            .await
            .unwrap()
    else {
        panic!("created");
    };
    let cancel = CancelOrderDeps {
        store: deps.store,
        event_source: "orders".into(),
        retry: fast(),
        metrics: Arc::new(Metrics::discard()),
    };
    let bob = UserId::parse("bob").unwrap();
    let alice = UserId::parse("alice").unwrap();
    let stranger = cancel_order(&cancel, &bob, order.order_id, None, Utc::now()).await;
    assert!(matches!(stranger, Err(CancelOrderError::NotFound)));
    // A concurrent change makes the first attempt fail its condition: it is read again and retried.
    *cancel.store.conflicts.lock().unwrap() = 1;
    let now = cancel_order(&cancel, &alice, order.order_id, None, Utc::now()).await;
    assert!(matches!(now, Ok(Cancelled::Now(o)) if o.status == OrderStatus::Cancelled));
    let again = cancel_order(&cancel, &alice, order.order_id, None, Utc::now()).await;
    assert!(matches!(again, Ok(Cancelled::Already(_))));
    assert_eq!(cancel.store.stock(&pid("p-1")), 5);
}

#[tokio::test]
async fn an_order_whose_product_was_deleted_is_cancelled_without_restocking_that_line() {
    // GIVEN an order of p-1 and p-2, and p-2 deleted from the catalogue since
    let store = FakeStore::default()
        .with_product(product("p-1", 5))
        .with_product(product("p-2", 5));
    let deps = deps(store);
    let Created::New(order) = create_order(
        &deps,
        &request("alice", &[("p-1", 2), ("p-2", 3)], None),
        Utc::now(),
    )
    .await
    .unwrap() else {
        panic!("created");
    };
    deps.store.products.lock().unwrap().remove(&pid("p-2"));
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let metrics = Metrics::with_sink(
        "Orders",
        "orders",
        Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_owned())),
    );
    let cancel = CancelOrderDeps {
        store: deps.store,
        event_source: "orders".into(),
        retry: fast(),
        metrics: Arc::new(metrics),
    };
    // WHEN its owner cancels it
    let alice = UserId::parse("alice").unwrap();
    let done = cancel_order(&cancel, &alice, order.order_id, None, Utc::now()).await;
    // THEN it is cancelled, p-1 is restocked, and p-2's 3 units are counted as not restocked
    assert!(matches!(done, Ok(Cancelled::Now(o)) if o.status == OrderStatus::Cancelled));
    assert_eq!(cancel.store.stock(&pid("p-1")), 5);
    cancel.metrics.flush();
    let emf = lines.lock().unwrap().join("\n");
    assert!(
        emf.contains("\"StockNotRestored\":3"),
        "StockNotRestored is 3 units: {emf}"
    );
}

#[tokio::test]
async fn an_order_event_confirms_once_and_never_a_cancelled_order() {
    let deps = deps(FakeStore::default().with_product(product("p-1", 5)));
    let mut orders = Vec::new();
    for user in ["alice", "bob"] {
        let Created::New(order) =
            create_order(&deps, &request(user, &[("p-1", 1)], None), Utc::now())
                .await
                .unwrap()
        else {
            panic!("created");
        };
        orders.push(order);
    }
    deps.store
        .set_status(orders[1].order_id, OrderStatus::Cancelled);
    let event = |order: &crate::domain::Order| {
        order_event(OrderEventType::OrderCreated, "orders", order, Utc::now())
    };
    let store = &deps.store;
    assert_eq!(
        apply(store, &orders_consumer(), &event(&orders[0]), Utc::now())
            .await
            .unwrap(),
        Applied::Done
    );
    assert_eq!(
        apply(store, &orders_consumer(), &event(&orders[0]), Utc::now())
            .await
            .unwrap(),
        Applied::Duplicate
    );
    assert_eq!(
        apply(store, &orders_consumer(), &event(&orders[1]), Utc::now())
            .await
            .unwrap(),
        Applied::Skipped(OrderStatus::Cancelled)
    );
    let mut stray = event(&orders[0]);
    stray.subject = "not-an-order".into();
    assert!(matches!(
        apply(store, &orders_consumer(), &stray, Utc::now()).await,
        Err(ApplyError::Subject(_))
    ));
    let unknown = event(&crate::fixtures::order(&[("p-1", 1)], 100));
    assert!(matches!(
        apply(store, &orders_consumer(), &unknown, Utc::now()).await,
        Err(ApplyError::UnknownOrder(_))
    ));
    // Only the orders service's events, each about the order it carries.
    let from_elsewhere = order_event(
        OrderEventType::OrderCreated,
        "payments",
        &orders[0],
        Utc::now(),
    );
    assert!(matches!(
        apply(store, &orders_consumer(), &from_elsewhere, Utc::now()).await,
        Err(ApplyError::UnexpectedSource { .. })
    ));
    let mut swapped = event(&orders[0]);
    swapped.subject = orders[1].order_id.to_string();
    assert!(matches!(
        apply(store, &orders_consumer(), &swapped, Utc::now()).await,
        Err(ApplyError::SubjectMismatch { .. })
    ));
}
