//! The cost of a million orders: what one order takes (requests, item sizes, Lambda time, all
//! measured in the run) times AWS on-demand prices, which are parameters (infra/bench/prices.json).

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use orders_core::config::Tables;
use serde::Deserialize;

use crate::BenchError;

/// On-demand prices, in US dollars.
#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    pub region: String,
    pub as_of: String,
    pub lambda_requests_per_million: f64,
    pub lambda_arm64_gb_second: f64,
    pub http_api_requests_per_million: f64,
    pub dynamodb_write_units_per_million: f64,
    pub dynamodb_read_units_per_million: f64,
    pub sqs_fifo_requests_per_million: f64,
    pub sns_fifo_publish_requests_per_million: f64,
}

impl Prices {
    /// us-east-1's prices of 2026-11, for the tests.
    #[cfg(test)]
    pub fn us_east_1() -> Self {
        Self {
            region: "us-east-1".into(),
            as_of: "test".into(),
            lambda_requests_per_million: 0.2,
            lambda_arm64_gb_second: 0.0000133334,
            http_api_requests_per_million: 1.0,
            dynamodb_write_units_per_million: 0.625,
            dynamodb_read_units_per_million: 0.125,
            sqs_fifo_requests_per_million: 0.5,
            sns_fifo_publish_requests_per_million: 0.3,
        }
    }

    pub fn load(root: &Path) -> Result<Self, BenchError> {
        let path = root.join("infra/bench/prices.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::Failed(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| BenchError::Failed(format!("{}: {e}", path.display())))
    }
}

/// Sizes (bytes, by DynamoDB's rules) of the items one order writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemSizes {
    pub order: usize,
    pub product: usize,
    pub outbox: usize,
    pub quota: usize,
    pub inbox: usize,
    pub payment: usize,
    pub shipment: usize,
}

/// What the saga writes per order, counted in a run (events by their producer, inbox records).
#[derive(Debug, Clone, Copy, Default)]
pub struct SagaWrites {
    pub events: f64,
    pub order_events: f64,
    pub payment_events: f64,
    pub shipment_events: f64,
    pub inbox_records: f64,
}

/// An item's size as DynamoDB bills it: attribute names plus values (numbers by significant digits,
/// 3 bytes of overhead per map or list and 1 per element).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.chars().filter(char::is_ascii_digit).count().max(1);
            digits.div_ceil(2) + 1
        }
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(list) => list.iter().map(String::len).sum(),
        AttributeValue::Ns(list) => list.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(list) => list.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// Reads one item of each kind from tables an event-latency run filled, and sizes it.
pub async fn item_sizes(
    dynamo: &aws_sdk_dynamodb::Client,
    tables: &Tables,
    saga_tables: &[Option<String>; 2],
) -> Result<ItemSizes, BenchError> {
    let first = |table: String, quota: Option<bool>| {
        let dynamo = dynamo.clone();
        async move {
            let page = dynamo
                .scan()
                .table_name(&table)
                .send()
                .await
                .map_err(|e| BenchError::Failed(format!("scanning {table}: {e}")))?;
            page.items
                .unwrap_or_default()
                .into_iter()
                .find(|item| match quota {
                    None => true,
                    Some(q) => item
                        .get("orderId")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|id| id.starts_with("quota#") == q),
                })
                .map(|item| item_size(&item))
                .ok_or_else(|| BenchError::Failed(format!("{table} holds no item to size")))
        }
    };
    Ok(ItemSizes {
        order: first(tables.orders.clone(), Some(false)).await?,
        quota: first(tables.orders.clone(), Some(true)).await?,
        product: first(tables.products.clone(), None).await?,
        outbox: first(tables.outbox.clone(), None).await?,
        inbox: first(tables.inbox.clone(), None).await.unwrap_or(0),
        payment: match &saga_tables[0] {
            Some(t) => first(t.clone(), None).await.unwrap_or(0),
            None => 0,
        },
        shipment: match &saga_tables[1] {
            Some(t) => first(t.clone(), None).await.unwrap_or(0),
            None => 0,
        },
    })
}

/// The Python peer's idempotency table (Powertools' default schema: key `id`).
pub async fn create_idempotency_table(
    dynamo: &aws_sdk_dynamodb::Client,
    prefix: &str,
) -> Result<String, BenchError> {
    let name = format!("{prefix}-idempotency");
    let key = |kind| {
        KeySchemaElement::builder()
            .attribute_name("id")
            .key_type(kind)
            .build()
    };
    dynamo
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| BenchError::Failed(e.to_string()))?,
        )
        .key_schema(key(KeyType::Hash).map_err(|e| BenchError::Failed(e.to_string()))?)
        .send()
        .await
        .map_err(|e| BenchError::Failed(format!("creating {name}: {e}")))?;
    Ok(name)
}

/// What one fulfilled order takes, as measured.
#[derive(Debug, Clone, Copy)]
pub struct PerOrder {
    pub sizes: ItemSizes,
    pub writes: SagaWrites,
    pub memory_mb: f64,
    /// create-order's in-function duration (median).
    pub create_ms: f64,
    /// Relay invocations per order, and their median duration.
    pub relay_invocations: f64,
    pub relay_ms: f64,
    /// Consumer invocations per order (all three consumers), and their GB-s-weighted mean
    /// duration (each function's median × its share of the invocations).
    pub consumer_invocations: f64,
    pub consumer_ms: f64,
}

/// One line of the cost table.
#[derive(Debug, Clone)]
pub struct CostLine {
    pub what: String,
    pub quantity: f64,
    pub unit: &'static str,
    pub dollars_per_million_orders: f64,
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

pub fn model(per: &PerOrder, prices: &Prices) -> Vec<CostLine> {
    let s = per.sizes;
    let w = per.writes;
    // Transactional writes cost two units per KB; GSI copies one. The order transaction: order,
    // product, outbox event, quota counter; the byUser index's keys (KEYS_ONLY: only this first
    // write touches it) and the expiring index's (KEYS_ONLY, while PENDING).
    let create_wru = 2.0
        * (write_units(s.order)
            + write_units(s.product)
            + write_units(s.outbox)
            + write_units(s.quota))
        + 1.0
        + 1.0;
    // Every later event: its outbox item (2), written with its producer's item (2; the order's
    // confirmation also takes it out of the expiring index, 1) and the inbox record of the event
    // that caused it (2). Finding an event again costs the outbox reconciler no write: the outbox
    // is keyed by hour.
    let later_events = (w.events - 1.0).max(0.0);
    let saga_wru = later_events * 2.0 * write_units(s.outbox)
        + (w.order_events - 1.0).max(0.0) * 2.0 * write_units(s.order)
        + 1.0
        + w.payment_events * 2.0 * write_units(s.payment)
        + w.shipment_events * 2.0 * write_units(s.shipment)
        + w.inbox_records * 2.0 * write_units(s.inbox);
    // Prices (one eventually consistent BatchGetItem of ≤ 4 KB; at most, as a warm environment
    // remembers the terms of the products it priced); each consumed event's consistent
    // read of its service's item (1); the reconciler reads each event once in its hour's query
    // (eventually consistent, 4 KB a unit) and its consumers' inbox records (0.5 each).
    let read_units = 0.5
        + w.inbox_records * 1.0
        + w.events * 0.5 * s.outbox as f64 / 4096.0
        + w.inbox_records * 0.5;
    // The relay publishes up to 10 events per PublishBatch (at least one per invocation); SNS sends
    // each to every subscribed queue (one SQS request per inbox record), and each consumer batch
    // receives and deletes once.
    let publish_requests = per.relay_invocations.max(w.events / 10.0);
    let sqs_requests = w.inbox_records + 2.0 * per.consumer_invocations;
    let invocations = 1.0 + per.relay_invocations + per.consumer_invocations;
    let gb = per.memory_mb / 1024.0;
    let billed = |ms: f64| ms.ceil() / 1000.0;
    let gb_seconds = gb
        * (billed(per.create_ms)
            + per.relay_invocations * billed(per.relay_ms)
            + per.consumer_invocations * billed(per.consumer_ms));
    let write_units_total = create_wru + saga_wru;
    vec![
        CostLine {
            what: "API Gateway HTTP API requests".into(),
            quantity: 1.0,
            unit: "requests",
            dollars_per_million_orders: prices.http_api_requests_per_million,
        },
        CostLine {
            what: "Lambda requests (create-order, relay batches, the three consumers' batches)".into(),
            quantity: invocations,
            unit: "invocations",
            dollars_per_million_orders: invocations * prices.lambda_requests_per_million,
        },
        CostLine {
            what: format!("Lambda arm64 duration at {} MB", per.memory_mb),
            quantity: gb_seconds,
            unit: "GB-s",
            dollars_per_million_orders: gb_seconds * prices.lambda_arm64_gb_second * 1e6,
        },
        CostLine {
            what: "DynamoDB write units (the order transaction, every saga step's transaction with its event and inbox record, index keys)"
                .into(),
            quantity: write_units_total,
            unit: "WRU",
            dollars_per_million_orders: write_units_total * prices.dynamodb_write_units_per_million,
        },
        CostLine {
            what: "DynamoDB read units (prices; each step's read of its item; the reconciler's one look at each event and its inbox records)".into(),
            quantity: read_units,
            unit: "RRU",
            dollars_per_million_orders: read_units * prices.dynamodb_read_units_per_million,
        },
        CostLine {
            what: "SNS FIFO publish requests (PublishBatch of up to 10; payload data charges left out)"
                .into(),
            quantity: publish_requests,
            unit: "publishes",
            dollars_per_million_orders: publish_requests
                * prices.sns_fifo_publish_requests_per_million,
        },
        CostLine {
            what: "SQS FIFO requests (SNS delivery to each consumer, receive, delete)".into(),
            quantity: sqs_requests,
            unit: "requests",
            dollars_per_million_orders: sqs_requests * prices.sqs_fifo_requests_per_million,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        let item = HashMap::from([
            ("id".to_owned(), AttributeValue::S("abc".into())),
            ("n".to_owned(), AttributeValue::N("1999".into())),
        ]);
        // "id" 2 + "abc" 3; "n" 1 + 4 digits → 3
        assert_eq!(item_size(&item), 9);
    }

    #[test]
    fn transactions_cost_twice_and_everything_scales_with_prices() {
        let per = PerOrder {
            sizes: ItemSizes {
                order: 600,
                product: 100,
                outbox: 900,
                quota: 80,
                inbox: 150,
                payment: 120,
                shipment: 200,
            },
            writes: SagaWrites {
                events: 7.0,
                order_events: 4.0,
                payment_events: 2.0,
                shipment_events: 1.0,
                inbox_records: 6.0,
            },
            memory_mb: 128.0,
            create_ms: 9.2,
            relay_invocations: 0.1,
            relay_ms: 20.0,
            consumer_invocations: 0.5,
            consumer_ms: 12.0,
        };
        let prices = Prices::us_east_1();
        let lines = model(&per, &prices);
        let wru = lines.iter().find(|l| l.unit == "WRU").map(|l| l.quantity);
        // create: 2×4 + the byUser and expiring keys = 10; six later events: 6 × 2 = 12; three
        // order transitions: 3 × 2 = 6, and the expiring key's delete 1; two payment and one
        // shipment item: 2 × 2 + 2 = 6; six inbox records: 12
        assert_eq!(wru, Some(10.0 + 12.0 + 6.0 + 1.0 + 6.0 + 12.0));
        let invocations = lines
            .iter()
            .find(|l| l.unit == "invocations")
            .map(|l| l.quantity);
        assert_eq!(invocations, Some(1.6));
        let gb_s = lines
            .iter()
            .find(|l| l.unit == "GB-s")
            .map(|l| l.quantity)
            .unwrap_or(0.0);
        assert!((gb_s - 0.125 * (0.010 + 0.1 * 0.020 + 0.5 * 0.012)).abs() < 1e-12);
    }
}
