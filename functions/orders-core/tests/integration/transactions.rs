//! The order transaction under failure and concurrency: all or nothing, never oversold.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use orders_core::domain::{OrderId, Product, ProductId};
use orders_core::service::CreateOrderError;
use orders_core::service::ports::{NewOrder, PlaceOrder, ReadOrder, ReadProducts, StoredOrder};
use orders_core::store::StoreError;

use crate::support::*;

#[tokio::test]
async fn a_short_line_writes_nothing_at_all() {
    // GIVEN three products, the last with too little stock
    let app = TestApp::new().await;
    app.add_product("a", 100, "EUR", 10).await;
    app.add_product("b", 200, "EUR", 10).await;
    app.add_product("c", 300, "EUR", 1).await;
    // WHEN one order asks for all three
    let answer = create(
        &app.create_deps(),
        order_by("alice", lines(&[("a", 2), ("b", 3), ("c", 2)])),
    )
    .await;
    // THEN 409 for the short line, and no line decremented, no order, no event
    let problem = answer.problem(409, "insufficient-stock");
    assert_eq!(problem["productId"], "c");
    assert_eq!(problem["available"], 1);
    assert_eq!(
        (
            app.stock("a").await,
            app.stock("b").await,
            app.stock("c").await
        ),
        (10, 10, 1)
    );
    assert_eq!(app.orders().await, 0);
    assert!(app.events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_never_oversells() {
    // GIVEN one product with 30 in stock
    let app = Arc::new(TestApp::new().await);
    app.add_product("hot", 4900, "EUR", 30).await;
    // WHEN 200 users order one each, all at once (each sending again after a 503, as a good
    // client does: on a loaded machine DynamoDB Local can be slower than an attempt's timeout)
    let tasks = (0..200).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let deps = app.create_deps();
            let event = order_by(&format!("buyer-{i}"), lines(&[("hot", 1)]))
                .header("idempotency-key", &format!("flash-{i}"));
            until_answered(|| create(&deps, event.clone())).await
        })
    });
    let answers = futures::future::join_all(tasks).await;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for answer in answers {
        let answer = answer.unwrap();
        if answer.status != 201 {
            answer.problem(409, "insufficient-stock");
        }
        *statuses.entry(answer.status.as_u16()).or_default() += 1;
    }
    // THEN exactly 30 succeed and 170 are refused, the stock is 0, and 30 orders and 30 events exist
    assert_eq!(statuses.get(&201), Some(&30), "{statuses:?}");
    assert_eq!(statuses.get(&409), Some(&170), "{statuses:?}");
    assert_eq!(app.stock("hot").await, 0);
    assert_eq!(app.orders().await, 30);
    assert_eq!(app.events().await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_is_counted_in_valid_emf() {
    // GIVEN stock 10 and 50 buyers at once
    let app = Arc::new(TestApp::new().await);
    app.add_product("hot", 4900, "EUR", 10).await;
    let tasks = (0..50).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            create(
                &app.create_deps(),
                order_by(&format!("buyer-{i}"), lines(&[("hot", 1)])),
            )
            .await
        })
    });
    futures::future::join_all(tasks).await;
    // THEN every EMF line is valid, with 10 orders created and 40 refused for insufficient stock
    assert_eq!(app.metric_total("OrdersCreated", &[]), 10.0);
    assert_eq!(
        app.metric_total("OrdersRefused", &[("reason", "insufficient-stock")]),
        40.0
    );
    assert_eq!(app.metric_total("OrdersRefused", &[]), 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_makes_one_order() {
    let app = Arc::new(TestApp::new().await);
    app.add_product("p-1", 1000, "EUR", 100).await;
    let tasks = (0..20).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            let deps = app.create_deps();
            let event =
                order_by("alice", lines(&[("p-1", 3)])).header("idempotency-key", "checkout-42");
            create(&deps, event).await
        })
    });
    let answers: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: HashSet<_> = answers
        .iter()
        .map(|a| a.body["orderId"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        answers.iter().all(|a| a.status == 201),
        "every retry is answered 201"
    );
    assert_eq!(ids.len(), 1, "one order id for all 20 answers");
    let replays = answers
        .iter()
        .filter(|a| a.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replays, 19);
    let first = answers
        .iter()
        .find(|a| a.header("idempotent-replayed").is_none())
        .unwrap();
    assert!(
        answers.iter().all(|a| a.body == first.body),
        "replays carry the original body"
    );
    assert_eq!(app.orders().await, 1);
    assert_eq!(app.stock("p-1").await, 97);
    assert_eq!(app.events().await.len(), 1);
}

#[tokio::test]
async fn a_reused_key_with_another_body_is_422() {
    let app = TestApp::new().await;
    app.add_product("p-1", 1000, "EUR", 100).await;
    let deps = app.create_deps();
    let keyed = |body| order_by("alice", body).header("idempotency-key", "k-1");
    assert_eq!(create(&deps, keyed(lines(&[("p-1", 1)]))).await.status, 201);
    create(&deps, keyed(lines(&[("p-1", 2)])))
        .await
        .problem(422, "idempotency-key-reused");
    // The same key from another user is another order.
    let bob = order_by("bob", lines(&[("p-1", 2)])).header("idempotency-key", "k-1");
    assert_eq!(create(&deps, bob).await.status, 201);
    // Without a key, the same body twice is two orders.
    assert_eq!(
        create(&deps, order_by("alice", lines(&[("p-1", 1)])))
            .await
            .status,
        201
    );
    assert_eq!(
        create(&deps, order_by("alice", lines(&[("p-1", 1)])))
            .await
            .status,
        201
    );
    assert_eq!(app.orders().await, 4);
    assert_eq!(app.stock("p-1").await, 100 - 1 - 2 - 1 - 1);
}

#[tokio::test]
async fn a_price_change_between_read_and_write_is_re_read_once() {
    let app = TestApp::new().await;
    app.add_product("p-1", 1000, "EUR", 10).await;
    // The store changes the price right after the first read, as a concurrent PUT would.
    let store = RepricingStore {
        inner: app.store.clone(),
        app: &app,
        reads: AtomicU32::new(0),
    };
    let answer = create(
        &app.create_deps_with(store),
        order_by("alice", lines(&[("p-1", 1)])),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(
        answer.body["total"]["amount"], 1250,
        "the order carries the new price"
    );
    assert_eq!(app.stock("p-1").await, 9);
}

#[tokio::test]
async fn an_environment_sells_at_the_price_of_the_moment_though_it_remembers_terms() {
    // GIVEN one environment's dependencies (their terms cache lives as long as they do)
    let app = TestApp::new().await;
    app.add_product("p-1", 1000, "EUR", 10).await;
    let deps = app.create_deps();
    let order = async || create(&deps, order_by("alice", lines(&[("p-1", 1)]))).await;
    assert_eq!(order().await.body["total"]["amount"], 1000);
    // WHEN an admin changes the price, then the currency, between two orders
    app.add_product("p-1", 1250, "EUR", 10).await;
    let repriced = order().await;
    app.add_product("p-1", 1250, "USD", 10).await;
    let recurrencied = order().await;
    // THEN each order carries the product's terms at the time of its transaction
    assert_eq!(repriced.status, 201, "{}", repriced.body);
    assert_eq!(repriced.body["total"]["amount"], 1250);
    assert_eq!(recurrencied.status, 201, "{}", recurrencied.body);
    assert_eq!(recurrencied.body["total"]["currency"], "USD");
    assert_eq!(app.stock("p-1").await, 9);
}

struct RepricingStore<'a> {
    inner: orders_core::store::DynamoStore,
    app: &'a TestApp,
    reads: AtomicU32,
}

impl ReadProducts for RepricingStore<'_> {
    async fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        let products = self.inner.products(ids, consistent).await?;
        if self.reads.fetch_add(1, Ordering::SeqCst) == 0 {
            self.app.add_product("p-1", 1250, "EUR", 10).await;
        }
        Ok(products)
    }
}

impl PlaceOrder for RepricingStore<'_> {
    async fn place_order(&self, new: &NewOrder<'_>) -> Result<(), CreateOrderError> {
        self.inner.place_order(new).await
    }
}

impl ReadOrder for RepricingStore<'_> {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        self.inner.order(id).await
    }
}

/// DynamoDB Local never returns TransactionConflict: this store answers it for the first
/// `conflicts` transactions, then lets them through to DynamoDB Local.
struct ConflictingStore {
    inner: orders_core::store::DynamoStore,
    conflicts: u32,
    attempts: AtomicU32,
}

impl ReadProducts for ConflictingStore {
    async fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        self.inner.products(ids, consistent).await
    }
}

impl PlaceOrder for ConflictingStore {
    async fn place_order(&self, new: &NewOrder<'_>) -> Result<(), CreateOrderError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.conflicts {
            return Err(StoreError::Transient.into());
        }
        self.inner.place_order(new).await
    }
}

impl ReadOrder for ConflictingStore {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        self.inner.order(id).await
    }
}

#[tokio::test]
async fn transaction_conflicts_are_retried() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 10).await;
    let store = ConflictingStore {
        inner: app.store.clone(),
        conflicts: 2,
        attempts: AtomicU32::new(0),
    };
    let deps = app.create_deps_with(store);
    let answer = create(&deps, order_by("alice", lines(&[("p-1", 1)]))).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(deps.store.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(app.metric_total("TransactionRetries", &[]), 2.0);
    assert_eq!(app.stock("p-1").await, 9, "decremented once");
    assert_eq!(app.orders().await, 1);
}

#[tokio::test]
async fn persistent_conflicts_end_in_503_with_retry_after() {
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 10).await;
    let store = ConflictingStore {
        inner: app.store.clone(),
        conflicts: u32::MAX,
        attempts: AtomicU32::new(0),
    };
    let deps = app.create_deps_with(store);
    let answer = create(&deps, order_by("alice", lines(&[("p-1", 1)]))).await;
    answer.problem(503, "service-unavailable");
    assert!(answer.header("retry-after").is_some());
    assert_eq!(
        deps.store.attempts.load(Ordering::SeqCst),
        deps.retry.max_attempts,
        "bounded"
    );
    assert_eq!(app.stock("p-1").await, 10);
    assert_eq!(app.orders().await, 0);
}
