//! `make chaos`: thousands of orders from hundreds of customers through the whole local app —
//! every function's real binary under aws-lambda-rie, behind devkit's fault proxies — while a
//! fault schedule runs; then the system drains and [`ledger`] checks that nothing was lost,
//! duplicated, oversold or left half-done.

pub mod emulators;
pub mod ledger;
pub mod report;
pub mod schedule;
pub mod shop;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use devkit::dev::{DevOptions, LocalApp};
use serde_json::{Value, json};

use crate::emulators::Emulators;
use crate::ledger::{Expected, Ledger, Observed};
use crate::schedule::{Event, Schedule};
use crate::shop::{Intent, Placed, RetryCause, Shop};

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error(transparent)]
    Dev(#[from] devkit::dev::DevError),
    #[error(transparent)]
    Emulator(#[from] emulators::EmulatorError),
    #[error("{0}")]
    Setup(String),
    #[error("reading {what}: {message}")]
    Read { what: String, message: String },
}

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub orders: usize,
    pub users: usize,
    /// Customers placing orders at the same time.
    pub concurrency: usize,
    /// Products with little stock that many orders want.
    pub hot_products: usize,
    pub hot_stock: i64,
    /// Products with plenty of stock.
    pub stocked_products: usize,
    /// How long the drain may take before what is left counts as a violation.
    pub drain_limit: Duration,
    /// New orders wait while more messages than this wait in the queues (moto reads a queue's
    /// every message at each receive, so a backlog slows the whole pipeline down).
    pub max_backlog: u64,
    pub schedule: Schedule,
}

/// A finished run: the ledger and what it took.
pub struct Run {
    pub config: Config,
    pub ledger: Ledger,
    pub placed: Vec<Placed>,
    pub fired: Vec<devkit::chaos::Fired>,
    /// What the schedule's events did, in order (what, when, how long).
    pub happenings: Vec<String>,
    pub load_time: Duration,
    pub drain_time: Duration,
    pub observed: Observed,
}

const HOT_SHARE: f64 = 0.35;
const PRICE: i64 = 1_250;

fn read_err(what: &str) -> impl Fn(String) -> ChaosError + '_ {
    move |message| ChaosError::Read {
        what: what.to_owned(),
        message,
    }
}

fn sdk<E: std::error::Error + 'static>(e: E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()
}

/// The whole run, on emulators the caller started for it (`emulators`, whose variables are this
/// process's environment).
pub async fn run(config: Config, emulators: &Emulators) -> Result<Run, ChaosError> {
    let log = std::fs::File::create(emulators.dir.join("app.log"))
        .map_err(|e| ChaosError::Setup(format!("cannot write the app's log: {e}")))?;
    let console = Arc::new(devkit::console::Console::writing_to(Box::new(log)));
    let options = DevOptions {
        root: config.root.clone(),
        bin_dir: config.bin_dir.clone(),
        emulator: devkit::rie::default_emulator(&config.root),
        port: 0,
        prefix: "chaos".into(),
        http_environments: 4,
        catalog: config.root.join("infra/sample-catalog.json"),
        // A short reservation, so orders left unpaid expire within the run; no per-user quota
        // in the way of the load.
        parameters: BTreeMap::from([
            ("ReservationMinutes".to_owned(), "1".to_owned()),
            ("OrdersPerMinute".to_owned(), "100000".to_owned()),
        ]),
        cpu_share: devkit::cpu::CpuShare::Off,
        chaos_port: Some(0),
        console_port: None,
        queue_retry_secs: 3,
        function_env: skewed_clocks(&config)?,
    };
    let app = Arc::new(devkit::dev::start(&options, console).await?);
    let result = drive(&config, emulators, &app).await;
    app.stop();
    let driven = result?;
    let consumers = consumers(&app);
    let mut ledger = Ledger::check(
        &driven.happenings.expected(&driven.placed, &consumers),
        &driven.observed,
    );
    let fired: std::collections::BTreeSet<&str> =
        driven.fired.iter().map(|f| f.fault.as_str()).collect();
    for kind in config.schedule.kinds() {
        if !fired.contains(kind) {
            ledger.violations.push(ledger::Violation {
                check: "every fault kind of the schedule fired",
                subject: kind.to_owned(),
                detail: "never fired: the run proves nothing about it".into(),
            });
        }
    }
    Ok(Run {
        config,
        ledger,
        placed: driven.placed,
        fired: driven.fired,
        happenings: driven.happenings.log,
        load_time: driven.load_time,
        drain_time: driven.drain_time,
        observed: driven.observed,
    })
}

/// libfaketime's library, from the wheel infra/bootstrap.sh installs into .tools/venv.
fn libfaketime(root: &std::path::Path) -> Result<PathBuf, ChaosError> {
    let lib = root.join(".tools/venv/lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(|python| {
            let path = python
                .ok()?
                .path()
                .join("site-packages/libfaketime/vendor/libfaketime/src/libfaketime.so.1");
            path.is_file().then_some(path)
        })
        .next()
        .ok_or_else(|| {
            ChaosError::Setup(
                "libfaketime is not installed in .tools/venv: run infra/bootstrap.sh (make bootstrap)"
                    .into(),
            )
        })
}

/// The environment of each function whose clock the schedule skews.
fn skewed_clocks(
    config: &Config,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ChaosError> {
    if config.schedule.skews.is_empty() {
        return Ok(BTreeMap::new());
    }
    let library = libfaketime(&config.root)?.display().to_string();
    Ok(config
        .schedule
        .skews
        .iter()
        .map(|skew| {
            let env = BTreeMap::from([
                ("LD_PRELOAD".to_owned(), library.clone()),
                ("FAKETIME".to_owned(), format!("{:+}s", skew.seconds)),
                // Timeouts and timers keep real time.
                ("DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
            ]);
            (skew.function.to_owned(), env)
        })
        .collect())
}

/// What the schedule's events did.
#[derive(Default)]
struct Happenings {
    log: Vec<String>,
    poisoned_messages: Vec<String>,
    poisoned_outbox: Vec<String>,
    initial_stock: BTreeMap<String, i64>,
    dynamodb_kills: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Happenings {
    /// What the ledger expects, given what the customers were told.
    fn expected<'a>(
        &'a self,
        placed: &'a [Placed],
        consumers: &'a platform::reconcile::Consumers,
    ) -> Expected<'a> {
        Expected {
            placed,
            initial_stock: &self.initial_stock,
            poisoned_messages: &self.poisoned_messages,
            poisoned_outbox: &self.poisoned_outbox,
            consumers,
            dynamodb_kills: &self.dynamodb_kills,
        }
    }
}

fn consumers(app: &LocalApp) -> platform::reconcile::Consumers {
    app.launches
        .values()
        .find_map(|l| l.env.get("EVENT_CONSUMERS"))
        .and_then(|raw| platform::reconcile::Consumers::parse(raw).ok())
        .unwrap_or_default()
}

/// What the load and the drain came to, before the ledger.
struct Driven {
    placed: Vec<Placed>,
    happenings: Happenings,
    load_time: Duration,
    drain_time: Duration,
    observed: Observed,
    fired: Vec<devkit::chaos::Fired>,
}

async fn drive(
    config: &Config,
    emulators: &Emulators,
    app: &Arc<LocalApp>,
) -> Result<Driven, ChaosError> {
    let chaos = app
        .proxies
        .as_ref()
        .map(|p| p.chaos.clone())
        .ok_or_else(|| ChaosError::Setup("the fault proxies did not start".into()))?;
    let (port, stop_server, server) = devkit::api::serve_on_free_port(app.gateway.clone())
        .await
        .map_err(|e| ChaosError::Setup(format!("cannot serve the API: {e}")))?;
    let triggers = devkit::dev::start_triggers(app)?;
    let shop = Arc::new(Shop::new(
        format!("http://127.0.0.1:{port}"),
        app.gateway.secret.clone(),
    ));
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);

    // The catalogue, before any fault.
    let mut happenings = Happenings::default();
    let hot: Vec<String> = (1..=config.hot_products)
        .map(|i| format!("hot-{i}"))
        .collect();
    let stocked: Vec<String> = (1..=config.stocked_products)
        .map(|i| format!("stocked-{i}"))
        .collect();
    for (id, stock) in hot
        .iter()
        .map(|id| (id, config.hot_stock))
        .chain(stocked.iter().map(|id| (id, 1_000_000)))
    {
        let answer = shop.put_product(id, PRICE, stock).await;
        if answer.status != Some(201) {
            return Err(ChaosError::Setup(format!(
                "creating product {id}: {:?} {}",
                answer.status, answer.body
            )));
        }
        happenings.initial_stock.insert(id.clone(), stock);
    }

    // The load, under the schedule.
    chaos
        .set(config.schedule.rules.clone())
        .map_err(|e| ChaosError::Setup(e.to_string()))?;
    let placed_count = Arc::new(AtomicUsize::new(0));
    // Set while more than `max_backlog` messages wait in the queues: new customers wait.
    let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut customers = Vec::new();
    for _ in 0..config.concurrency {
        let (shop, next, count, hold) = (
            shop.clone(),
            next.clone(),
            placed_count.clone(),
            hold.clone(),
        );
        let (hot, stocked) = (hot.clone(), stocked.clone());
        let (orders, users) = (config.orders, config.users);
        customers.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            loop {
                while hold.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= orders {
                    return placed;
                }
                let user = format!("chaos-user-{}", n % users);
                let intent = match fastrand::u8(0..100) {
                    0..55 => Intent::Paid,
                    55..70 => Intent::Declined,
                    70..85 => Intent::Cancelled,
                    _ => Intent::Expired,
                };
                let mut lines = BTreeMap::new();
                if fastrand::f64() < HOT_SHARE {
                    lines.insert(
                        hot[fastrand::usize(..hot.len())].clone(),
                        fastrand::i64(1..=2),
                    );
                }
                for _ in 0..fastrand::usize(1..=3) {
                    lines.insert(
                        stocked[fastrand::usize(..stocked.len())].clone(),
                        fastrand::i64(1..=3),
                    );
                }
                placed.push(shop.place(&user, intent, lines).await);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut events = config.schedule.events.clone();
    events.sort_by(|a, b| a.at().total_cmp(&b.at()));
    let mut events = events.into_iter().peekable();
    let mut poison_seq = 0;
    let mut told = 0;
    let mut paced = Instant::now();
    while customers.iter().any(|c| !c.is_finished()) || events.peek().is_some() {
        if paced.elapsed() >= Duration::from_secs(1) {
            paced = Instant::now();
            // A failed read (DynamoDB Local away, say) changes nothing.
            if let Ok(depths) = queue_depths(app, &sqs, |d| d.visible).await {
                let backlog: u64 = depths.values().sum();
                hold.store(backlog > config.max_backlog, Ordering::Relaxed);
            }
        }
        let placed_now = placed_count.load(Ordering::Relaxed);
        let share = placed_now as f64 / config.orders.max(1) as f64;
        if placed_now * 10 / config.orders.max(1) > told {
            told = placed_now * 10 / config.orders.max(1);
            eprintln!(
                "chaos: {placed_now} of {} orders placed ({:.0} s)",
                config.orders,
                started.elapsed().as_secs_f64()
            );
        }
        let done = customers.iter().all(|c| c.is_finished());
        if let Some(event) = events.next_if(|e| done || e.at() <= share) {
            let when = format!("{:.0} % of the orders placed", share * 100.0);
            match event {
                Event::RestartDynamodb { .. } => {
                    let killed = chrono::Utc::now();
                    happenings.dynamodb_kills.push(killed);
                    let away = emulators.restart_dynamodb().await?;
                    happenings.log.push(format!(
                        "{when}: DynamoDB Local killed (SIGKILL, {}) and restarted on its data; away {:.1} s",
                        killed.format("%H:%M:%S%.3f"),
                        away.as_secs_f64()
                    ));
                }
                Event::PoisonMessages { count, .. } => {
                    for _ in 0..count {
                        poison_seq += 1;
                        let marker = format!("chaos-poison-{poison_seq}");
                        sqs.send_message()
                            .queue_url(&app.names["OrderEventsQueue"])
                            .message_body(
                                json!({"poison": marker, "note": "not an event: fails every time"})
                                    .to_string(),
                            )
                            .message_group_id(&marker)
                            .message_deduplication_id(&marker)
                            .send()
                            .await
                            .map_err(|e| read_err("the order-events queue")(sdk(e)))?;
                        happenings.poisoned_messages.push(marker);
                    }
                    happenings.log.push(format!(
                        "{when}: {count} messages that are not events put on OrderEventsQueue"
                    ));
                }
                Event::PoisonOutbox { count, .. } => {
                    for _ in 0..count {
                        poison_seq += 1;
                        let marker = format!("chaos-poison-{poison_seq}");
                        dynamo
                            .put_item()
                            .table_name(&app.names["OutboxTable"])
                            .item("bucket", AttributeValue::S("chaos-poison".into()))
                            .item("id", AttributeValue::S(marker.clone()))
                            .item("note", AttributeValue::S("not an event".into()))
                            .send()
                            .await
                            .map_err(|e| read_err("the outbox")(sdk(e)))?;
                        happenings.poisoned_outbox.push(marker);
                    }
                    happenings.log.push(format!(
                        "{when}: {count} outbox items that are not events written"
                    ));
                }
                Event::Restock { units, .. } => {
                    for id in &hot {
                        let answer = shop.restock(id, units).await;
                        if answer.status != Some(201) {
                            happenings
                                .log
                                .push(format!("restocking {id} answered {:?}", answer.status));
                        }
                    }
                    happenings.log.push(format!(
                        "{when}: each of the {} hot products restocked by {units}",
                        hot.len()
                    ));
                }
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut placed = Vec::new();
    for customer in customers {
        placed.extend(
            customer
                .await
                .map_err(|e| ChaosError::Setup(format!("a customer failed: {e}")))?,
        );
    }
    let load_time = started.elapsed();

    // The drain, without faults.
    chaos
        .set(Vec::new())
        .map_err(|e| ChaosError::Setup(e.to_string()))?;
    let fired = chaos.fired();
    let consumers = consumers(app);
    eprintln!(
        "chaos: faults off; draining (at most {} s)",
        config.drain_limit.as_secs()
    );
    let drain_started = Instant::now();
    loop {
        // The queues first: while they hold work, reading every table would only slow it down.
        let busy = queue_depths(app, &sqs, devkit::queues::Depth::total)
            .await?
            .values()
            .any(|d| *d > 0);
        if !busy {
            let observed = observe(app, &dynamo, &sqs, false).await?;
            if ledger::settled(&observed, &happenings.expected(&placed, &consumers)) {
                break;
            }
        }
        if drain_started.elapsed() > config.drain_limit {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let drain_time = drain_started.elapsed();
    let observed = observe(app, &dynamo, &sqs, true).await?;
    let _ = stop_server.send(());
    let _ = server.await;
    for trigger in triggers {
        trigger.abort();
    }
    Ok(Driven {
        placed,
        happenings,
        load_time,
        drain_time,
        observed,
        fired,
    })
}

async fn scan(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Value>, ChaosError> {
    let pages: Vec<_> = dynamo
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    pages
        .into_iter()
        .map(|item| {
            let item = item.map_err(|e| read_err(table)(sdk(e)))?;
            serde_dynamo::from_item(item).map_err(|e| read_err(table)(e.to_string()))
        })
        .collect()
}

/// Reads what the emulators hold (the dead-letter queues only when `dead_letters`: reading
/// them hides their messages for a while).
async fn observe(
    app: &LocalApp,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    dead_letters: bool,
) -> Result<Observed, ChaosError> {
    let table = |id: &str| app.names[id].clone();
    let mut observed = Observed {
        orders: scan(dynamo, &table("OrdersTable"))
            .await?
            .into_iter()
            .filter(|o| o.get("status").is_some() && o.get("userId").is_some())
            .collect(),
        ..Observed::default()
    };
    for product in scan(dynamo, &table("ProductsTable")).await? {
        if let Some(id) = product["productId"].as_str() {
            observed
                .stock
                .insert(id.to_owned(), product["stock"].as_i64().unwrap_or_default());
        }
    }
    for adjustment in scan(dynamo, &table("StockAdjustmentsTable")).await? {
        if let Some(id) = adjustment["productId"].as_str() {
            *observed.adjustments.entry(id.to_owned()).or_default() +=
                adjustment["delta"].as_i64().unwrap_or_default();
        }
    }
    for payment in scan(dynamo, &table("PaymentsTable")).await? {
        if let Some(id) = payment["orderId"].as_str() {
            observed.payments.insert(id.to_owned(), payment.clone());
        }
    }
    observed.outbox = scan(dynamo, &table("OutboxTable"))
        .await?
        .into_iter()
        .filter(|e| e.get("type").is_some())
        .collect();
    observed.inbox = scan(dynamo, &table("InboxTable"))
        .await?
        .into_iter()
        .filter_map(|r| {
            Some((
                r["eventId"].as_str()?.to_owned(),
                r["consumer"].as_str()?.to_owned(),
                r["orderId"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    if dead_letters {
        for (queue, url) in queues(app).filter(|(q, _)| is_dead_letter(q)) {
            observed
                .dead_letters
                .insert(queue.to_owned(), drain_queue(sqs, url).await?);
        }
    }
    observed.queue_depths = queue_depths(app, sqs, devkit::queues::Depth::total).await?;
    if dead_letters {
        observed.charges = charges().await?;
    }
    Ok(observed)
}

/// The app's queues by logical id, with their URLs.
fn queues(app: &LocalApp) -> impl Iterator<Item = (&str, &str)> {
    app.queue_arns
        .keys()
        .filter_map(|q| Some((q.as_str(), app.names.get(q)?.as_str())))
}

fn is_dead_letter(queue: &str) -> bool {
    queue.contains("DeadLetter") || queue == "RelayFailureQueue"
}

/// How many messages wait in each queue that feeds a function: `count` picks what is counted of
/// each queue's depth.
async fn queue_depths(
    app: &LocalApp,
    sqs: &aws_sdk_sqs::Client,
    count: fn(&devkit::queues::Depth) -> u64,
) -> Result<BTreeMap<String, u64>, ChaosError> {
    let mut depths = BTreeMap::new();
    for (queue, url) in queues(app).filter(|(q, _)| !is_dead_letter(q)) {
        let depth = devkit::queues::depth(sqs, url)
            .await
            .map_err(|e| read_err(queue)(e.to_string()))?;
        depths.insert(queue.to_owned(), count(&depth));
    }
    Ok(depths)
}

/// Every message of a queue, each received once (hidden for ten minutes after).
async fn drain_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<String>, ChaosError> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .map_err(|e| read_err(url)(sdk(e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        bodies.extend(messages.into_iter().filter_map(|m| m.body));
    }
}

/// The payment emulator's own list of charges, every page.
async fn charges() -> Result<Vec<Value>, ChaosError> {
    let base = std::env::var("PAYMENT_API_BASE")
        .map_err(|_| ChaosError::Setup("PAYMENT_API_BASE is not set".into()))?;
    let http = reqwest::Client::new();
    let mut all: Vec<Value> = Vec::new();
    loop {
        let mut query = vec![("limit".to_owned(), "100".to_owned())];
        if let Some(last) = all.last().and_then(|c| c["id"].as_str()) {
            query.push(("starting_after".to_owned(), last.to_owned()));
        }
        let page: Value = http
            .get(format!("{base}/v1/charges"))
            .bearer_auth(devkit::secrets::LOCAL_SECRET)
            .query(&query)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| read_err("the charges")(e.to_string()))?
            .json()
            .await
            .map_err(|e| read_err("the charges")(e.to_string()))?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        let more = page["has_more"] == true && !data.is_empty();
        all.extend(data);
        if !more {
            return Ok(all);
        }
    }
}

/// Client retries by cause, over every request of the run.
pub fn retries(placed: &[Placed]) -> BTreeMap<String, usize> {
    let mut by_cause = BTreeMap::new();
    for p in placed {
        let causes = p
            .create
            .retries
            .iter()
            .chain(p.cancel.iter().flat_map(|c| c.retries.iter()));
        for cause in causes {
            let name = match cause {
                RetryCause::Status(s) => format!("HTTP {s}"),
                other => other.to_string(),
            };
            *by_cause.entry(name).or_insert(0) += 1;
        }
    }
    by_cause
}
