//! Warm load: a closed loop of concurrent workers placing one-line orders, through the local HTTP
//! API (the project, the Python peer) or straight through the store's SDK client (the floor), and the
//! correctness check after each run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orders_core::domain::{
    Currency, Money, OrderLines, PaymentMethod, Product, ProductId, ProductName, Quantity, Stock,
    UserId,
};

/// Every bench order is paid with the payment provider's test card.
const PAYMENT_METHOD: &str = "tok_visa";
use orders_core::service::ports::ReadProducts;
use orders_core::service::{CreateOrder, CreateOrderDeps, create_order};
use orders_core::store::DynamoStore;
use platform::http::Problem;

use crate::BenchError;

/// What the orders go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// Each order takes one unit of a product picked at random from many, all well stocked.
    Many,
    /// Every order takes one unit of a single product stocked for half of them (a flash sale).
    Hot,
}

impl Scenario {
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Many => "many products",
            Scenario::Hot => "one hot product",
        }
    }
}

/// The many-products catalogue size.
pub const MANY: usize = 500;
const MANY_STOCK: i64 = 1_000_000;

/// The products of one run, under ids no other run uses.
#[derive(Debug, Clone)]
pub struct RunCatalogue {
    pub ids: Vec<String>,
    pub initial: i64,
}

/// Creates a run's products (price 1999 EUR).
pub async fn seed(
    store: &DynamoStore,
    scenario: Scenario,
    tag: &str,
    requests: usize,
) -> Result<RunCatalogue, BenchError> {
    let (ids, initial): (Vec<String>, i64) = match scenario {
        Scenario::Many => (
            (0..MANY).map(|i| format!("m{tag}-{i}")).collect(),
            MANY_STOCK,
        ),
        Scenario::Hot => (vec![format!("h{tag}")], (requests / 2) as i64),
    };
    let product = |id: &str| -> Result<Product, BenchError> {
        Ok(Product {
            id: ProductId::parse(id).map_err(|e| BenchError::Failed(e.to_string()))?,
            name: ProductName::parse("Benchmark product")
                .map_err(|e| BenchError::Failed(e.to_string()))?,
            price: Money::new(
                1999,
                Currency::parse("EUR").map_err(|e| BenchError::Failed(e.to_string()))?,
            )
            .map_err(|e| BenchError::Failed(e.to_string()))?,
            stock: Stock::new(initial).map_err(|e| BenchError::Failed(e.to_string()))?,
            max_per_order: None,
        })
    };
    let products = ids
        .iter()
        .map(|id| product(id))
        .collect::<Result<Vec<_>, _>>()?;
    let results: Vec<_> = futures::stream::iter(products.iter().map(|p| store.seed_product(p)))
        .buffer_unordered(16)
        .collect()
        .await;
    for result in results {
        result.map_err(|e| BenchError::Failed(format!("seeding: {e}")))?;
    }
    Ok(RunCatalogue { ids, initial })
}

/// Where orders are placed.
pub enum Target {
    /// POST /orders on a local API (project or peer), with a token per user.
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        url: String,
        tokens: Vec<String>,
    },
    /// The use case's SDK calls (BatchGetItem for products not priced yet, TransactWriteItems) with
    /// no Lambda path.
    Floor { deps: CreateOrderDeps<DynamoStore> },
}

impl Target {
    pub fn http(port: u16, tokens: Vec<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Target::Http {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(64)
                .build(connector),
            url: format!("http://127.0.0.1:{port}/orders"),
            tokens,
        }
    }

    /// Places one order of one unit; answers the HTTP status (the floor's outcomes as the API maps them).
    async fn place(&self, user: usize, product: &str) -> Result<u16, String> {
        match self {
            Target::Http {
                client,
                url,
                tokens,
            } => {
                let body = format!(
                    r#"{{"productId":"{product}","quantity":1,"paymentMethod":"{PAYMENT_METHOD}"}}"#
                );
                let request = hyper::Request::post(url)
                    .header(
                        "authorization",
                        format!("Bearer {}", tokens[user % tokens.len()]),
                    )
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(status)
            }
            Target::Floor { deps } => {
                let request = CreateOrder {
                    user: UserId::parse(&format!("bench-u{}", user % USERS))
                        .map_err(|e| e.to_string())?,
                    lines: OrderLines::new(vec![(
                        ProductId::parse(product).map_err(|e| e.to_string())?,
                        Quantity::new(1).map_err(|e| e.to_string())?,
                    )])
                    .map_err(|e| e.to_string())?,
                    payment_method: PaymentMethod::parse(PAYMENT_METHOD)
                        .map_err(|e| e.to_string())?,
                    shipping_address: None,
                    idempotency_key: None,
                    trace: None,
                };
                // The status the API would answer, by the API's own mapping.
                Ok(match create_order(deps, &request, Utc::now()).await {
                    Ok(_) => 201,
                    Err(refused) => Problem::from(refused).status.as_u16(),
                })
            }
        }
    }
}

/// Distinct users the orders are spread over (each has its own per-minute quota counter).
pub const USERS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub latencies_ms: Vec<f64>,
    pub statuses: BTreeMap<u16, usize>,
    pub wall: Duration,
}

impl RunResult {
    pub fn sent(&self) -> usize {
        self.statuses.values().sum()
    }

    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn orders_per_second(&self) -> f64 {
        self.sent() as f64 / self.wall.as_secs_f64()
    }
}

/// Sends `requests` orders with `concurrency` workers, each waiting for its answer before the next
/// (a closed loop: as fast as the system answers).
pub async fn drive(
    target: Arc<Target>,
    catalogue: &RunCatalogue,
    requests: usize,
    concurrency: usize,
) -> Result<RunResult, BenchError> {
    drive_at(target, catalogue, requests, concurrency, None).await
}

/// As [`drive`], but the i-th order is not sent before `i / rate` seconds from the start (an offered
/// load of `rate` orders per second, when the workers keep up).
pub async fn drive_at(
    target: Arc<Target>,
    catalogue: &RunCatalogue,
    requests: usize,
    concurrency: usize,
    rate: Option<f64>,
) -> Result<RunResult, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(catalogue.ids.clone());
    let began = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, next, ids) = (target.clone(), next.clone(), ids.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return Ok::<_, String>((latencies, statuses));
                    }
                    if let Some(rate) = rate {
                        let due = began + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let product = &ids[fastrand::usize(..ids.len())];
                    let sent = Instant::now();
                    let status = target.place(fastrand::usize(..USERS), product).await?;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    *statuses.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let mut result = RunResult::default();
    for worker in workers {
        let (latencies, statuses) = worker
            .await
            .map_err(|e| BenchError::Failed(e.to_string()))?
            .map_err(BenchError::Failed)?;
        result.latencies_ms.extend(latencies);
        for (status, n) in statuses {
            *result.statuses.entry(status).or_default() += n;
        }
    }
    result.wall = began.elapsed();
    Ok(result)
}

/// Created + rejected = sent, every unit sold is an order, no stock below zero, and on the hot
/// product exactly its stock sold.
pub async fn check(
    store: &DynamoStore,
    scenario: Scenario,
    catalogue: &RunCatalogue,
    result: &RunResult,
    who: &str,
) -> Result<(), BenchError> {
    let ids: Vec<ProductId> = catalogue
        .ids
        .iter()
        .map(|id| ProductId::parse(id).map_err(|e| BenchError::Failed(e.to_string())))
        .collect::<Result<_, _>>()?;
    let mut stock: HashMap<ProductId, i64> = HashMap::new();
    for chunk in ids.chunks(25) {
        let refs: Vec<&ProductId> = chunk.iter().collect();
        let found = store
            .products(&refs, true)
            .await
            .map_err(|e| BenchError::Failed(e.to_string()))?;
        stock.extend(found.into_iter().map(|(id, p)| (id, p.stock.get())));
    }
    let sold: i64 = stock.values().map(|s| catalogue.initial - s).sum();
    let lowest_stock = stock.values().copied().min().unwrap_or(0);
    let (created, rejected) = (result.count(201), result.count(409));
    let fail = |what: String| Err(BenchError::Incorrect(format!("{who}: {what}")));
    if created + rejected != result.sent() {
        return fail(format!(
            "{created} created + {rejected} rejected ≠ {} sent ({:?})",
            result.sent(),
            result.statuses
        ));
    }
    if sold != created as i64 {
        return fail(format!("{sold} units left the stock for {created} orders"));
    }
    if lowest_stock < 0 {
        return fail(format!("a stock went to {lowest_stock}"));
    }
    if scenario == Scenario::Hot && sold != catalogue.initial.min(result.sent() as i64) {
        return fail(format!(
            "{sold} of {} hot units sold for {} orders",
            catalogue.initial,
            result.sent()
        ));
    }
    Ok(())
}
