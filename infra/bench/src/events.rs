//! Event and saga latency under load: orders placed through the local API (paid with the payment
//! emulator's test card) while the whole saga runs — outbox stream → relay → SNS FIFO → each
//! service's queue → its consumer; for each order, from its commit (`createdAt`) to payments'
//! inbox record of its `order.created` (the first hop) and to the orders service's inbox record of
//! its `payment.captured` (FULFILLED: the whole saga). Both stamps come from this machine's clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use devkit::console::Console;
use devkit::cpu::CpuShare;
use devkit::dev;
use orders_core::store::DynamoStore;

use crate::load::{self, Scenario, Target};
use crate::{BenchError, Cli, say, serve_gateway, tables_of, tokens};

#[derive(Debug, Clone, Default)]
pub struct EventLatency {
    /// Commit → payments recorded the order's `order.created`.
    pub latencies_ms: Vec<f64>,
    /// Commit → the order is CONFIRMED (orders recorded its `payment.authorized`).
    pub confirmed_ms: Vec<f64>,
    /// Commit → the order is FULFILLED (orders recorded its `payment.captured`).
    pub saga_ms: Vec<f64>,
    pub orders: usize,
    pub concurrency: usize,
    pub offered_per_second: f64,
    pub orders_per_second: f64,
    /// Every function's invocation durations in this run (create-order's included), by name.
    pub durations_ms: BTreeMap<String, Vec<f64>>,
    /// Per function: invocations served under a CPU share, and how many were throttled.
    pub throttled: BTreeMap<String, (usize, usize)>,
    /// What the saga wrote, counted in this run.
    pub writes: crate::cost::SagaWrites,
    /// The items this run wrote, sized.
    pub sizes: Option<crate::cost::ItemSizes>,
}

/// The saga's consumer functions.
pub const CONSUMERS: [&str; 3] = ["order-events", "payment-events", "shipment-events"];

pub const CONCURRENCY: usize = 4;
/// The offered load while the chain is measured: steady, well below what DynamoDB Local sustains
/// here, so the latency is the chain's and not the emulator's queue.
pub const RATE: f64 = 10.0;

pub async fn measure(
    cli: &Cli,
    stamp: &str,
    dynamo: &aws_sdk_dynamodb::Client,
) -> Result<EventLatency, BenchError> {
    measure_at(
        cli,
        &format!("bench{stamp}-events"),
        dynamo,
        CpuShare::Off,
        cli.requests,
    )
    .await
}

/// The saga for `orders` orders at [`RATE`], every environment at `share` of a core.
pub async fn measure_at(
    cli: &Cli,
    prefix: &str,
    dynamo: &aws_sdk_dynamodb::Client,
    share: CpuShare,
    orders: usize,
) -> Result<EventLatency, BenchError> {
    let console = Arc::new(Console::recording());
    let mut options = crate::options(cli, prefix.to_owned(), CONCURRENCY);
    options.cpu_share = share;
    let app = Arc::new(dev::start(&options, console.clone()).await?);
    let (port, _stop) = serve_gateway(app.gateway.clone()).await?;
    let mappings = dev::start_triggers(&app)?;
    let outcome = run(&app, port, dynamo, orders).await;
    for mapping in mappings {
        mapping.abort();
    }
    let throttled = app
        .pools
        .values()
        .map(|pool| (pool.name().to_owned(), pool.throttled_invocations()))
        .collect();
    app.stop();
    let recorded = console.take_recorded();
    let mut latency = outcome.map_err(|e| with_error_lines(e, &recorded))?;
    latency.throttled = throttled;
    for (function, line) in recorded {
        let Some(ms) = devkit::invocations::report(&line).map(|r| r.duration_ms) else {
            continue;
        };
        // An environment's lines are labelled `create-order#2` when its function has several.
        let name = function.split('#').next().unwrap_or_default().to_owned();
        latency.durations_ms.entry(name).or_default().push(ms);
    }
    Ok(latency)
}

/// A failed run's error with the functions' error lines of the run (an answer the check refused,
/// a 500 say, is explained there), at most 20 of them.
fn with_error_lines(error: BenchError, recorded: &[(String, String)]) -> BenchError {
    let lines: Vec<String> = recorded
        .iter()
        .filter(|(_, line)| {
            line.contains(r#""level":"ERROR""#)
                || line.contains("errorType")
                || line.contains("panicked")
        })
        .take(20)
        .map(|(function, line)| format!("  {function}: {line}"))
        .collect();
    if lines.is_empty() {
        return error;
    }
    BenchError::Failed(format!(
        "{error}\nthe functions' error lines in this run:\n{}",
        lines.join("\n")
    ))
}

impl EventLatency {
    /// One function's invocation durations in this run (none if it was not invoked).
    pub fn durations(&self, function: &str) -> &[f64] {
        self.durations_ms.get(function).map_or(&[], Vec::as_slice)
    }

    /// The relay's invocation durations.
    pub fn relay_ms(&self) -> &[f64] {
        self.durations("outbox-relay")
    }

    /// Each invoked consumer function's durations, in [`CONSUMERS`] order.
    pub fn consumer_ms(&self) -> impl Iterator<Item = (&'static str, &[f64])> {
        CONSUMERS
            .into_iter()
            .map(|f| (f, self.durations(f)))
            .filter(|(_, ms)| !ms.is_empty())
    }
}

async fn run(
    app: &dev::LocalApp,
    port: u16,
    dynamo: &aws_sdk_dynamodb::Client,
    requests: usize,
) -> Result<EventLatency, BenchError> {
    let tables = tables_of(&app.names)?;
    let store = DynamoStore::new(dynamo.clone(), tables.clone());
    let catalogue = load::seed(&store, Scenario::Many, "ev", 0).await?;
    let target = Arc::new(Target::http(port, tokens(&app.gateway.secret)?));
    let result = load::drive_at(target, &catalogue, requests, CONCURRENCY, Some(RATE)).await?;
    load::check(&store, Scenario::Many, &catalogue, &result, "orders (Rust)").await?;
    let created = result.count(201);

    // Wait for every saga to end: one inbox record of payment.captured per order (FULFILLED).
    let deadline = Instant::now() + Duration::from_secs(300);
    let processed = loop {
        let processed = scan(dynamo, &tables.inbox, "orderId, processedAt, #t").await?;
        let done = processed
            .iter()
            .filter(|item| text(item, "type") == Some("payment.captured"))
            .count();
        if done >= created {
            break processed;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!(
                "only {done} of {created} orders were fulfilled in 300 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let orders = scan(dynamo, &tables.orders, "orderId, createdAt, #t").await?;
    let created_at: HashMap<&str, DateTime<Utc>> = orders
        .iter()
        .filter_map(|item| Some((text(item, "orderId")?, time(item, "createdAt")?)))
        .collect();
    let latency_to = |event_type: &str| {
        processed
            .iter()
            .filter(|item| text(item, "type") == Some(event_type))
            .filter_map(|item| {
                let done = time(item, "processedAt")?;
                let begun = created_at.get(text(item, "orderId")?)?;
                Some((done - *begun).num_microseconds()? as f64 / 1000.0)
            })
            .collect::<Vec<_>>()
    };
    let latencies_ms = latency_to("order.created");
    let confirmed_ms = latency_to("payment.authorized");
    let saga_ms = latency_to("payment.captured");
    let outbox = scan(dynamo, &tables.outbox, "id, #t").await?;
    let per_order = |n: usize| n as f64 / created.max(1) as f64;
    let of_kind = |prefix: &str| {
        per_order(
            outbox
                .iter()
                .filter(|item| text(item, "type").is_some_and(|t| t.starts_with(prefix)))
                .count(),
        )
    };
    let writes = crate::cost::SagaWrites {
        events: per_order(outbox.len()),
        order_events: of_kind("order."),
        payment_events: of_kind("payment."),
        shipment_events: of_kind("shipment."),
        inbox_records: per_order(processed.len()),
    };
    say(&format!(
        "  {} orders at {CONCURRENCY} environments, {} fulfilled, {:.1} events per order",
        created,
        saga_ms.len(),
        writes.events
    ));
    let saga_tables = [
        app.names.get("PaymentsTable").cloned(),
        app.names.get("ShipmentsTable").cloned(),
    ];
    let sizes = Some(crate::cost::item_sizes(dynamo, &tables, &saga_tables).await?);
    Ok(EventLatency {
        sizes,
        latencies_ms,
        confirmed_ms,
        saga_ms,
        writes,
        orders: created,
        concurrency: CONCURRENCY,
        offered_per_second: RATE,
        orders_per_second: result.orders_per_second(),
        ..EventLatency::default()
    })
}

type Item = HashMap<String, AttributeValue>;

async fn scan(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    projection: &str,
) -> Result<Vec<Item>, BenchError> {
    let mut items = Vec::new();
    let mut pages = dynamo
        .scan()
        .table_name(table)
        .projection_expression(projection)
        .expression_attribute_names("#t", "type")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BenchError::Failed(format!("scanning {table}: {e}")))?;
        items.extend(page.items.unwrap_or_default());
    }
    Ok(items)
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(item, name)?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
