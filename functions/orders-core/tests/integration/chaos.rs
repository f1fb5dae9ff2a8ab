//! Faults DynamoDB produces and DynamoDB Local never does, injected on the wire by devkit's fault
//! proxy in front of the shared emulator: the production client (its timeouts and retries) and
//! create-order meet them as they would meet them on AWS.

use std::sync::Arc;

use devkit::chaos::{Chaos, Fault, FaultProxy, Rule, Service, serve_proxy};
use orders_core::service::CreateOrderDeps;
use orders_core::store::DynamoStore;

use crate::support::*;

/// create-order as its main builds it, reaching DynamoDB Local through a fault proxy; the proxy
/// stops when the sender is dropped.
async fn through_proxy(
    app: &TestApp,
) -> (
    Arc<Chaos>,
    tokio::sync::oneshot::Sender<()>,
    CreateOrderDeps<DynamoStore>,
) {
    let chaos = Arc::new(Chaos::default());
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("DynamoDB Local");
    let proxy = FaultProxy::new(Service::Dynamodb, &upstream, chaos.clone());
    let (url, stop) = serve_proxy(proxy).await.unwrap();
    // The production configuration (timeouts, retries), its DynamoDB endpoint the proxy's.
    let sdk = platform::aws::config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(url)
            .build(),
    );
    let store = DynamoStore::new(client, app.tables().clone());
    (chaos, stop, app.create_deps_with(store))
}

fn on_transactions(fault: Fault, limit: Option<u64>) -> Vec<Rule> {
    vec![Rule {
        service: Service::Dynamodb,
        operation: "TransactWriteItems".into(),
        fault,
        probability: 1.0,
        limit,
    }]
}

fn fired(chaos: &Chaos, fault: &str) -> u64 {
    chaos
        .fired()
        .iter()
        .filter(|f| f.fault == fault)
        .map(|f| f.count)
        .sum()
}

#[tokio::test]
async fn conflicts_are_retried_and_a_conflict_that_lasts_is_a_503_with_nothing_written() {
    let app = TestApp::new().await;
    app.add_product("p-1", 900, "EUR", 10).await;
    let (chaos, _stop, deps) = through_proxy(&app).await;
    // GIVEN DynamoDB cancels the next two transactions for a conflict with another
    chaos
        .set(on_transactions(Fault::TransactionConflict, Some(2)))
        .unwrap();
    // WHEN alice orders, THEN a later attempt places it, once
    let answer = create(&deps, order_by("alice", lines(&[("p-1", 2)]))).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(fired(&chaos, "transaction-conflict"), 2);
    assert_eq!((app.orders().await, app.stock("p-1").await), (1, 8));

    // GIVEN the conflict lasts, WHEN bob orders, THEN a 503 to retry later, and nothing written
    chaos
        .set(on_transactions(Fault::TransactionConflict, None))
        .unwrap();
    let answer = create(&deps, order_by("bob", lines(&[("p-1", 1)]))).await;
    answer.problem(503, "service-unavailable");
    assert!(answer.header("retry-after").is_some());
    assert_eq!((app.orders().await, app.stock("p-1").await), (1, 8));
}

#[tokio::test]
async fn throttled_transactions_are_retried_by_the_sdk() {
    let app = TestApp::new().await;
    app.add_product("p-1", 900, "EUR", 10).await;
    let (chaos, _stop, deps) = through_proxy(&app).await;
    chaos
        .set(on_transactions(
            Fault::ProvisionedThroughputExceeded,
            Some(1),
        ))
        .unwrap();
    let answer = create(&deps, order_by("alice", lines(&[("p-1", 2)]))).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(fired(&chaos, "provisioned-throughput-exceeded"), 1);
    assert_eq!((app.orders().await, app.stock("p-1").await), (1, 8));
}

#[tokio::test]
async fn an_order_whose_answer_was_lost_is_placed_once_whatever_the_client_sees() {
    let app = TestApp::new().await;
    app.add_product("p-1", 900, "EUR", 10).await;
    let (chaos, _stop, deps) = through_proxy(&app).await;
    for (dropped, (user, key)) in [("alice", Some("lost-1")), ("bob", None)]
        .into_iter()
        .enumerate()
    {
        // GIVEN DynamoDB applies the next transaction, and the connection drops before its answer
        chaos
            .set(on_transactions(Fault::DropAfterApply, Some(1)))
            .unwrap();
        // WHEN the customer orders and, as a good client does, sends a request that got a 5xx
        // again with the same Idempotency-Key (if it had one)
        let request = || {
            let event = order_by(user, lines(&[("p-1", 2)]));
            match key {
                Some(key) => event.header("idempotency-key", key),
                None => event,
            }
        };
        let first = create(&deps, request()).await;
        let answer = if first.status.is_server_error() && key.is_some() {
            create(&deps, request()).await
        } else {
            first
        };
        // THEN the order the customer was told of is the one order placed, its stock taken once
        assert_eq!(answer.status, 201, "{user}: {}", answer.body);
        assert_eq!(fired(&chaos, "drop-after-apply"), dropped as u64 + 1);
        chaos.set(Vec::new()).unwrap();
        let placed = app.orders_of(user).await;
        assert_eq!(placed, [answer.body["orderId"].as_str().unwrap()], "{user}");
    }
    assert_eq!(app.stock("p-1").await, 6);
}
