//! The use cases' own logic, on the in-memory store: no emulator needed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform::consumer::Applied;
use platform::metrics::Metrics;

use super::fake::FakeStore;
use super::*;
use crate::domain::{
    CancellationReason, Currency, IdempotencyKey, MaxPerOrder, Money, Order, OrderStatus,
    PaymentMethod, PaymentStatus, Product, ProductId, ProductName, Stock, UserId,
};
use crate::events::{OrderEventType, SagaEvent, SagaEventType, SagaFacts};

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
        producers: platform::consumer::Producers::parse("payment=payments;shipment=fulfillment")
            .unwrap(),
    }
}

fn cancel_deps(store: FakeStore) -> CancelOrderDeps<FakeStore> {
    CancelOrderDeps {
        store,
        event_source: "orders".into(),
        retry: fast(),
        metrics: Arc::new(Metrics::discard()),
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
        reservation: chrono::Duration::minutes(15),
        retry: fast(),
        metrics: Arc::new(Metrics::discard()),
        terms: Default::default(),
    }
}

fn request(user: &str, lines: &[(&str, u32)], key: Option<&str>) -> CreateOrder {
    CreateOrder {
        user: UserId::parse(user).unwrap(),
        lines: crate::fixtures::lines(lines),
        payment_method: PaymentMethod::parse("tok_visa").unwrap(),
        shipping_address: None,
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
async fn a_keyed_order_is_read_only_when_refused_and_a_retry_after_a_sell_out_is_answered() {
    // GIVEN a keyed order that took the last two units
    let deps = deps(FakeStore::default().with_product(product("p-1", 2)));
    let first = request("alice", &[("p-1", 2)], Some("k-1"));
    let Created::New(order) = create_order(&deps, &first, Utc::now()).await.unwrap() else {
        panic!("the first request creates the order");
    };
    assert_eq!(
        deps.store.reads().0,
        0,
        "a new keyed order is not looked up"
    );
    // WHEN the client retries it, the product sold out and repriced since
    deps.store.edit_product(&pid("p-1"), |p| {
        p.price = Money::new(5000, p.price.currency()).unwrap()
    });
    let again = create_order(&deps, &first, Utc::now()).await.unwrap();
    // THEN it is answered with its order, and nothing more is sold
    assert_eq!(again, Created::Replayed(order));
    assert_eq!(deps.store.stock(&pid("p-1")), 0);
    // AND an unkeyed order for the sold-out product is refused without reading any order
    let reads = deps.store.reads().0;
    let short = create_order(&deps, &request("bob", &[("p-1", 1)], None), Utc::now()).await;
    assert!(matches!(
        short,
        Err(CreateOrderError::InsufficientStock { .. })
    ));
    assert_eq!(deps.store.reads().0, reads);
}

#[tokio::test]
async fn warm_orders_read_terms_once_and_never_sell_at_a_stale_price() {
    // GIVEN a product already sold once in this environment
    let deps = deps(FakeStore::default().with_product(product("p-1", 10)));
    let order = async |user: &str| {
        create_order(&deps, &request(user, &[("p-1", 1)], None), Utc::now()).await
    };
    order("alice").await.unwrap();
    order("bob").await.unwrap();
    assert_eq!(
        deps.store.reads(),
        (0, 1, 0),
        "the second order reads nothing"
    );
    // WHEN its price changes behind the function's back
    deps.store.edit_product(&pid("p-1"), |p| {
        p.price = Money::new(1500, p.price.currency()).unwrap()
    });
    let Created::New(repriced) = order("carol").await.unwrap() else {
        panic!("a new order");
    };
    // THEN the order is priced at the new price, after one consistent re-read
    assert_eq!(repriced.total.amount(), 1500);
    assert_eq!(deps.store.reads(), (0, 2, 1));
    assert_eq!(deps.store.stock(&pid("p-1")), 7);
}

#[tokio::test]
async fn remembered_limits_and_products_never_decide_alone() {
    let limited = Product {
        max_per_order: Some(MaxPerOrder::new(2).unwrap()),
        ..product("p-1", 10)
    };
    let deps = deps(
        FakeStore::default()
            .with_product(limited)
            .with_product(product("p-2", 10)),
    );
    let order = async |lines: &[(&str, u32)]| {
        create_order(&deps, &request("alice", lines, None), Utc::now()).await
    };
    order(&[("p-1", 1), ("p-2", 1)]).await.unwrap();
    // A raised limit: the refusal the remembered limit suggests is checked with a fresh read.
    deps.store
        .edit_product(&pid("p-1"), |p| p.max_per_order = MaxPerOrder::new(5).ok());
    assert!(matches!(order(&[("p-1", 4)]).await, Ok(Created::New(_))));
    // A lowered limit: the transaction refuses what the remembered limit allowed.
    deps.store
        .edit_product(&pid("p-1"), |p| p.max_per_order = MaxPerOrder::new(1).ok());
    assert!(matches!(
        order(&[("p-1", 2)]).await,
        Err(CreateOrderError::AboveMaxPerOrder { limit: 1, .. })
    ));
    // A deleted product is unknown, however recently it was sold.
    deps.store.products.lock().unwrap().remove(&pid("p-2"));
    assert!(matches!(
        order(&[("p-2", 1)]).await,
        Err(CreateOrderError::UnknownProduct(p)) if p.as_str() == "p-2"
    ));
    assert_eq!(deps.store.stock(&pid("p-1")), 5);
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
    let bob = CancelBy::Customer(UserId::parse("bob").unwrap());
    let alice = CancelBy::Customer(UserId::parse("alice").unwrap());
    let stranger = cancel_order(&cancel, &bob, order.order_id, None, Utc::now()).await;
    assert!(matches!(stranger, Err(CancelOrderError::NotFound)));
    // A concurrent change makes the first attempt fail its condition: it is read again and retried.
    *cancel.store.conflicts.lock().unwrap() = 1;
    let now = cancel_order(&cancel, &alice, order.order_id, None, Utc::now()).await;
    assert!(matches!(now, Ok(Cancelled::Now(o))
        if o.status == OrderStatus::Cancelled
            && o.cancellation_reason == Some(CancellationReason::Customer)));
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
    let alice = CancelBy::Customer(UserId::parse("alice").unwrap());
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

/// Alice's and Bob's PENDING orders of one p-1 each (stock 5), and the deps to apply events.
async fn two_pending_orders() -> (CancelOrderDeps<FakeStore>, Vec<Order>) {
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
    (cancel_deps(deps.store), orders)
}

fn saga_event(event_type: SagaEventType, source: &str, order: &Order) -> SagaEvent {
    SagaEvent::new(
        event_type,
        source,
        &order.order_id.to_string(),
        SagaFacts {
            order_id: order.order_id,
            charge_id: Some("ch_1".into()),
            decline_code: Some("card_declined".into()),
            shipment_id: Some("shp_1".into()),
        },
        Utc::now(),
    )
}

async fn order_now(deps: &CancelOrderDeps<FakeStore>, order: &Order) -> Order {
    deps.store.orders.lock().unwrap()[&order.order_id]
        .order
        .clone()
}

#[tokio::test]
async fn the_happy_path_confirms_ships_and_fulfils_once_each() {
    let (deps, orders) = two_pending_orders().await;
    let order = &orders[0];
    let consumer = orders_consumer();
    for (event_type, source, status) in [
        (
            SagaEventType::PaymentAuthorized,
            "payments",
            OrderStatus::Confirmed,
        ),
        (
            SagaEventType::ShipmentCreated,
            "fulfillment",
            OrderStatus::Confirmed,
        ),
        (
            SagaEventType::PaymentCaptured,
            "payments",
            OrderStatus::Fulfilled,
        ),
    ] {
        let event = saga_event(event_type, source, order);
        assert_eq!(
            apply(&deps, &consumer, &event, Utc::now()).await.unwrap(),
            Applied::Done
        );
        assert_eq!(
            apply(&deps, &consumer, &event, Utc::now()).await.unwrap(),
            Applied::Duplicate,
            "a redelivered {event_type:?} changes nothing"
        );
        assert_eq!(order_now(&deps, order).await.status, status);
    }
    let done = order_now(&deps, order).await;
    assert_eq!(done.shipment_id.as_deref(), Some("shp_1"));
    assert_eq!(done.payment.unwrap().status, PaymentStatus::Captured);
    assert_eq!(
        *deps.store.events.lock().unwrap(),
        [
            OrderEventType::OrderConfirmed,
            OrderEventType::OrderShipped,
            OrderEventType::OrderFulfilled
        ]
    );
}

#[tokio::test]
async fn a_decline_cancels_with_the_stock_back_and_a_late_authorization_only_notes() {
    let (deps, orders) = two_pending_orders().await;
    let consumer = orders_consumer();
    let declined = saga_event(SagaEventType::PaymentDeclined, "payments", &orders[0]);
    assert_eq!(
        apply(&deps, &consumer, &declined, Utc::now())
            .await
            .unwrap(),
        Applied::Done
    );
    let cancelled = order_now(&deps, &orders[0]).await;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        cancelled.cancellation_reason,
        Some(CancellationReason::PaymentDeclined)
    );
    assert_eq!(
        cancelled.payment.unwrap().decline_code.as_deref(),
        Some("card_declined")
    );
    assert_eq!(deps.store.stock(&pid("p-1")), 4, "alice's unit is back");
    assert_eq!(
        apply(&deps, &consumer, &declined, Utc::now())
            .await
            .unwrap(),
        Applied::Duplicate
    );
    // Bob's order expires; its authorization arrives after: noted, never confirmed.
    let late = orders[1].expires_at.unwrap() + chrono::Duration::seconds(1);
    let expired = cancel_order(&deps, &CancelBy::Expiry, orders[1].order_id, None, late).await;
    assert!(matches!(expired, Ok(Cancelled::Now(o))
        if o.cancellation_reason == Some(CancellationReason::Expired)));
    let authorized = saga_event(SagaEventType::PaymentAuthorized, "payments", &orders[1]);
    assert_eq!(
        apply(&deps, &consumer, &authorized, late).await.unwrap(),
        Applied::Skipped(OrderStatus::Cancelled)
    );
    let bob = order_now(&deps, &orders[1]).await;
    assert_eq!(bob.status, OrderStatus::Cancelled);
    assert_eq!(bob.payment.unwrap().status, PaymentStatus::Authorized);
    assert_eq!(deps.store.stock(&pid("p-1")), 5);
}

#[tokio::test]
async fn expiry_cancels_only_pending_orders_past_their_deadline() {
    let (deps, orders) = two_pending_orders().await;
    let now = Utc::now();
    let early = cancel_order(&deps, &CancelBy::Expiry, orders[0].order_id, None, now).await;
    assert!(matches!(early, Ok(Cancelled::NotDue(_))));
    let confirmed = saga_event(SagaEventType::PaymentAuthorized, "payments", &orders[0]);
    apply(&deps, &orders_consumer(), &confirmed, now)
        .await
        .unwrap();
    let late = orders[0].expires_at.unwrap() + chrono::Duration::minutes(1);
    let never = cancel_order(&deps, &CancelBy::Expiry, orders[0].order_id, None, late).await;
    assert!(matches!(never, Ok(Cancelled::NotDue(o)) if o.status == OrderStatus::Confirmed));
    // A shipped order can no longer be cancelled by its owner.
    let shipped = saga_event(SagaEventType::ShipmentCreated, "fulfillment", &orders[0]);
    apply(&deps, &orders_consumer(), &shipped, now)
        .await
        .unwrap();
    let alice = CancelBy::Customer(UserId::parse("alice").unwrap());
    let refused = cancel_order(&deps, &alice, orders[0].order_id, None, now).await;
    assert!(matches!(refused, Err(CancelOrderError::NotCancellable(_))));
    assert_eq!(deps.store.stock(&pid("p-1")), 3);
}

#[tokio::test]
async fn only_the_producer_of_a_type_about_the_order_it_carries_is_applied() {
    let (deps, orders) = two_pending_orders().await;
    let consumer = orders_consumer();
    let from_elsewhere = saga_event(SagaEventType::PaymentAuthorized, "fulfillment", &orders[0]);
    assert!(matches!(
        apply(&deps, &consumer, &from_elsewhere, Utc::now()).await,
        Err(ApplyError::UnexpectedSource(_))
    ));
    let mut swapped = saga_event(SagaEventType::PaymentAuthorized, "payments", &orders[0]);
    swapped.subject = orders[1].order_id.to_string();
    assert!(matches!(
        apply(&deps, &consumer, &swapped, Utc::now()).await,
        Err(ApplyError::SubjectMismatch { .. })
    ));
    let mut stray = saga_event(SagaEventType::PaymentAuthorized, "payments", &orders[0]);
    stray.subject = "not-an-order".into();
    assert!(matches!(
        apply(&deps, &consumer, &stray, Utc::now()).await,
        Err(ApplyError::Subject(_))
    ));
    let unknown = crate::fixtures::order(&[("p-1", 1)], 100);
    assert!(matches!(
        apply(
            &deps,
            &consumer,
            &saga_event(SagaEventType::PaymentAuthorized, "payments", &unknown),
            Utc::now()
        )
        .await,
        Err(ApplyError::UnknownOrder(_))
    ));
    assert_eq!(
        order_now(&deps, &orders[0]).await.status,
        OrderStatus::Pending
    );
}

mod saga_properties;
