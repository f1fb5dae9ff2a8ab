//! The ledger: what the customers were told, read against what the tables, the queues and the
//! payment provider hold once the system has drained — and every rule the saga promises, checked.

use std::collections::{BTreeMap, BTreeSet};

use platform::reconcile::Consumers;
use serde::Serialize;
use serde_json::Value;

use crate::shop::{Intent, Placed};

/// What the run did on purpose, and what it was told.
pub struct Expected<'a> {
    pub placed: &'a [Placed],
    /// Each product's stock when it was created.
    pub initial_stock: &'a BTreeMap<String, i64>,
    /// Bodies' markers of the messages poisoned on purpose, by the queue they were sent to.
    pub poisoned_messages: &'a [String],
    /// Ids of the outbox items that are not events.
    pub poisoned_outbox: &'a [String],
    pub consumers: &'a Consumers,
    /// When DynamoDB Local was killed with SIGKILL.
    pub dynamodb_kills: &'a [chrono::DateTime<chrono::Utc>],
}

/// How far from a SIGKILL of DynamoDB Local an order's 201 may come (before it, or after it while
/// the answer was on its way) when the emulator loses its write: it answers before the write is on
/// disk (measured: a PutItem acknowledged 1 ms before the kill was gone after the restart).
/// DynamoDB itself makes a write durable before it answers.
pub const UNFLUSHED: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// What the emulators hold after the drain.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    pub orders: Vec<Value>,
    pub stock: BTreeMap<String, i64>,
    /// The sum of each product's adjustments.
    pub adjustments: BTreeMap<String, i64>,
    pub payments: BTreeMap<String, Value>,
    pub outbox: Vec<Value>,
    /// (event id, consumer, order id) of every inbox record.
    pub inbox: Vec<(String, String, String)>,
    pub charges: Vec<Value>,
    /// Message bodies left in each dead-letter queue (and the relay's failure queue), by logical id.
    pub dead_letters: BTreeMap<String, Vec<String>>,
    /// Messages still waiting or in flight in each source queue.
    pub queue_depths: BTreeMap<String, u64>,
}

/// A broken promise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    pub check: &'static str,
    pub subject: String,
    pub detail: String,
}

/// The figures of the ledger and every violation found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub acknowledged: usize,
    pub in_table: usize,
    pub refused: BTreeMap<u16, usize>,
    pub unanswered: usize,
    /// Orders acknowledged within [`UNFLUSHED`] of DynamoDB Local's SIGKILL and missing
    /// after its restart, with everything of theirs: the emulator's lost writes, not the app's.
    pub lost_to_emulator: Vec<String>,
    /// Final status (with the cancellation reason) by what the customer meant.
    pub outcomes: BTreeMap<String, BTreeMap<String, usize>>,
    pub products_checked: usize,
    pub units_sold: i64,
    pub charges: usize,
    pub captured: usize,
    pub events: usize,
    pub deliveries_expected: usize,
    pub inbox_records: usize,
    pub dead_letters: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
}

/// Whether an order may still change: not yet terminal, or a queue still holds work.
pub fn settled(observed: &Observed, expected: &Expected) -> bool {
    let ours: BTreeSet<&str> = expected
        .placed
        .iter()
        .filter_map(Placed::order_id)
        .collect();
    observed.queue_depths.values().all(|d| *d == 0)
        && observed
            .orders
            .iter()
            .filter(|o| ours.contains(o["orderId"].as_str().unwrap_or_default()))
            .all(|o| matches!(o["status"].as_str(), Some("FULFILLED" | "CANCELLED")))
        && missing_deliveries(observed, expected.consumers).is_empty()
}

/// (event id, consumer) pairs an outbox event is owed and the inbox does not have.
fn missing_deliveries(observed: &Observed, consumers: &Consumers) -> Vec<(String, String)> {
    let recorded: BTreeSet<(&str, &str)> = observed
        .inbox
        .iter()
        .map(|(e, c, _)| (e.as_str(), c.as_str()))
        .collect();
    observed
        .outbox
        .iter()
        .filter_map(|e| Some((e["id"].as_str()?, e["type"].as_str()?)))
        .flat_map(|(id, kind)| {
            consumers
                .of(kind)
                .iter()
                .map(move |c| (id.to_owned(), c.clone()))
        })
        .filter(|(id, c)| !recorded.contains(&(id.as_str(), c.as_str())))
        .collect()
}

fn amount(value: &Value) -> i64 {
    value.as_i64().unwrap_or_default()
}

impl Ledger {
    pub fn check(expected: &Expected, observed: &Observed) -> Self {
        let mut ledger = Ledger::default();
        let mut violate = |check: &'static str, subject: &str, detail: String| {
            ledger.violations.push(Violation {
                check,
                subject: subject.to_owned(),
                detail,
            });
        };

        // 1. Orders: every 201 is in the table once, and the table holds nothing else of ours.
        let users: BTreeSet<&str> = expected.placed.iter().map(|p| p.user.as_str()).collect();
        let table: BTreeMap<&str, &Value> = observed
            .orders
            .iter()
            .filter(|o| users.contains(o["userId"].as_str().unwrap_or_default()))
            .filter_map(|o| Some((o["orderId"].as_str()?, o)))
            .collect();
        let mut acknowledged: BTreeMap<&str, &Placed> = BTreeMap::new();
        let (mut refused, mut unanswered) = (BTreeMap::new(), 0);
        for placed in expected.placed {
            match (placed.create.status, placed.order_id()) {
                (Some(201), Some(id)) => {
                    if acknowledged.insert(id, placed).is_some() {
                        violate(
                            "one order per key",
                            id,
                            "two keys were answered with the same order".into(),
                        );
                    }
                }
                (Some(status), _) => *refused.entry(status).or_insert(0) += 1,
                (None, _) => unanswered += 1,
            }
        }
        let unflushed = |at: chrono::DateTime<chrono::Utc>| {
            expected
                .dynamodb_kills
                .iter()
                .any(|kill| (at - *kill).abs() <= UNFLUSHED)
        };
        let lost: BTreeSet<String> = acknowledged
            .iter()
            .filter(|(id, placed)| !table.contains_key(*id) && unflushed(placed.create.at))
            .map(|(id, _)| (*id).to_owned())
            .collect();
        for id in acknowledged.keys() {
            if !table.contains_key(id) && !lost.contains(*id) {
                violate(
                    "no acknowledged order lost",
                    id,
                    "answered 201, not in the orders table".into(),
                );
            }
        }
        for (id, order) in &table {
            if !acknowledged.contains_key(id) {
                violate(
                    "no order the customer was not told of",
                    id,
                    format!(
                        "in the table ({}), never answered 201 ({unanswered} requests had no definite answer)",
                        order["status"]
                    ),
                );
            }
        }
        ledger.acknowledged = acknowledged.len();
        ledger.in_table = table.len();
        ledger.refused = refused;
        ledger.unanswered = unanswered;

        // 2. Stock: initial + adjustments = stock + units in orders not cancelled.
        let mut held: BTreeMap<&str, i64> = BTreeMap::new();
        for order in table.values() {
            if order["status"] == "CANCELLED" {
                continue;
            }
            for line in order["items"].as_array().into_iter().flatten() {
                *held
                    .entry(line["productId"].as_str().unwrap_or_default())
                    .or_default() += amount(&line["quantity"]);
            }
        }
        for (product, initial) in expected.initial_stock {
            let adjusted = observed.adjustments.get(product).copied().unwrap_or(0);
            let stock = observed.stock.get(product).copied().unwrap_or(0);
            let sold = held.get(product.as_str()).copied().unwrap_or(0);
            ledger.units_sold += sold;
            if initial + adjusted != stock + sold {
                violate(
                    "stock conservation",
                    product,
                    format!(
                        "initial {initial} + adjustments {adjusted} != stock {stock} + units in live orders {sold}"
                    ),
                );
            }
            if stock < 0 {
                violate("no overselling", product, format!("stock {stock}"));
            }
        }
        ledger.products_checked = expected.initial_stock.len();

        // 3. Each order's end, its payment and its charges.
        let mut charges: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for charge in &observed.charges {
            let order = charge["metadata"]["order_id"].as_str().unwrap_or_default();
            if charge["status"] == "succeeded" {
                charges.entry(order).or_default().push(charge);
            }
        }
        ledger.charges = charges.values().map(Vec::len).sum();
        for order in charges.keys() {
            if !table.contains_key(order) && !lost.contains(*order) {
                violate(
                    "no charge without an order",
                    order,
                    "the provider holds a charge for an order not in the table".into(),
                );
            }
        }
        for (id, order) in &table {
            let status = order["status"].as_str().unwrap_or_default();
            let reason = order["cancellationReason"].as_str();
            let total = amount(&order["total"]["amount"]);
            let outcome = match reason {
                Some(reason) => format!("{status} ({reason})"),
                None => status.to_owned(),
            };
            if let Some(placed) = acknowledged.get(id) {
                *ledger
                    .outcomes
                    .entry(placed.intent.name().to_owned())
                    .or_default()
                    .entry(outcome)
                    .or_default() += 1;
                check_intent(placed, status, reason, &mut violate, id);
            }
            if !matches!(status, "FULFILLED" | "CANCELLED") {
                violate(
                    "one terminal state",
                    id,
                    format!("still {status} after the drain"),
                );
            }
            let payment = observed.payments.get(*id);
            let payment_status = payment.and_then(|p| p["status"].as_str());
            let captured_here = payment_status == Some("captured")
                && payment.is_some_and(|p| amount(&p["amount"]) == total);
            if (status == "FULFILLED") != captured_here {
                violate(
                    "captured = total iff FULFILLED",
                    id,
                    format!("order {status}, payment {payment_status:?} of {total}"),
                );
            }
            let held = charges.get(id).cloned().unwrap_or_default();
            if held.len() > 1 {
                violate(
                    "at most one charge per order",
                    id,
                    format!("{} charges at the provider", held.len()),
                );
            }
            for charge in held {
                let captured = charge["captured"] == true;
                let refunded = charge["refunded"] == true;
                ledger.captured += usize::from(captured && !refunded);
                match status {
                    "FULFILLED" if !captured || amount(&charge["amount_captured"]) != total => {
                        violate(
                            "captured = total iff FULFILLED",
                            id,
                            format!(
                                "the provider's charge {} captured {} of {total}",
                                charge["id"], charge["amount_captured"]
                            ),
                        )
                    }
                    "CANCELLED" if captured => violate(
                        "a cancelled order is never captured",
                        id,
                        format!("charge {} captured", charge["id"]),
                    ),
                    "CANCELLED" if !refunded => violate(
                        "no live authorization on a cancelled order",
                        id,
                        format!("charge {} still authorized", charge["id"]),
                    ),
                    _ => {}
                }
            }
        }

        // 4. Events: every consumer recorded every event owed to it, once; nothing else.
        let events: BTreeSet<&str> = observed
            .outbox
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        ledger.events = events.len();
        ledger.deliveries_expected = observed
            .outbox
            .iter()
            .filter_map(|e| e["type"].as_str())
            .map(|kind| expected.consumers.of(kind).len())
            .sum();
        let mut seen = BTreeSet::new();
        for (event, consumer, order) in &observed.inbox {
            if lost.contains(order) {
                continue;
            }
            if (event.as_str(), consumer.as_str()) == platform::reconcile::CHECKPOINT {
                continue;
            }
            ledger.inbox_records += 1;
            if !events.contains(event.as_str()) {
                violate(
                    "no effect without an event",
                    event,
                    format!("{consumer} recorded an event the outbox never held"),
                );
            }
            if !seen.insert((event, consumer)) {
                violate(
                    "each event applied once",
                    event,
                    format!("{consumer} recorded it twice"),
                );
            }
        }
        for (event, consumer) in missing_deliveries(observed, expected.consumers) {
            violate(
                "every event consumed",
                &event,
                format!("{consumer} never recorded it"),
            );
        }

        // 5. Dead letters: only what was poisoned on purpose.
        for (queue, bodies) in &observed.dead_letters {
            ledger.dead_letters.insert(queue.clone(), bodies.len());
            let planted: &[String] = match queue.as_str() {
                "OrderEventsDeadLetterQueue" => expected.poisoned_messages,
                "RelayFailureQueue" => expected.poisoned_outbox,
                _ => &[],
            };
            for body in bodies {
                if !planted.iter().any(|marker| body.contains(marker.as_str())) {
                    let shown: String = body.chars().take(300).collect();
                    violate(
                        "DLQs hold only what was poisoned",
                        queue,
                        format!("unexpected message: {shown}"),
                    );
                }
            }
            for marker in planted {
                let found = bodies
                    .iter()
                    .filter(|b| b.contains(marker.as_str()))
                    .count();
                // A redrive moves a message once; the relay sets a record aside each time its batch
                // is delivered, and a stream delivers at least once.
                let once = queue != "RelayFailureQueue";
                if found == 0 || (once && found > 1) {
                    violate(
                        "what was poisoned ends in its DLQ (a redriven message once)",
                        queue,
                        format!("{marker} found {found} times"),
                    );
                }
            }
        }
        ledger.lost_to_emulator = lost.into_iter().collect();
        ledger.violations.sort();
        ledger
    }
}

/// The order ended as its customer's intent allows.
fn check_intent(
    placed: &Placed,
    status: &str,
    reason: Option<&str>,
    violate: &mut impl FnMut(&'static str, &str, String),
    id: &str,
) {
    let cancel = placed.cancel.as_ref().and_then(|c| c.status);
    let allowed = match placed.intent {
        // An authorization slower than the (short) reservation lets the order expire.
        Intent::Paid => {
            status == "FULFILLED" || (status == "CANCELLED" && reason == Some("expired"))
        }
        // A decline that comes after the deadline finds the order expired.
        Intent::Declined => {
            status == "CANCELLED" && matches!(reason, Some("payment_declined" | "expired"))
        }
        Intent::Expired => status == "CANCELLED" && reason == Some("expired"),
        Intent::Cancelled => match cancel {
            Some(200) => status == "CANCELLED",
            // Shipped before the cancel arrived: it goes on to the end.
            Some(409) => status == "FULFILLED",
            _ => matches!(status, "FULFILLED" | "CANCELLED"),
        },
    };
    if !allowed {
        violate(
            "the order ends as its customer's requests allow",
            id,
            format!(
                "{} (cancel answered {cancel:?}) ended {status} {reason:?}",
                placed.intent.name()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::Answer;
    use serde_json::json;

    const ORDER: &str = "o-1";

    fn placed(intent: Intent, at: chrono::DateTime<chrono::Utc>) -> Placed {
        Placed {
            user: "u-1".into(),
            key: "k-1".into(),
            intent,
            lines: BTreeMap::from([("p-1".to_owned(), 2)]),
            create: Answer {
                status: Some(201),
                body: json!({"orderId": ORDER}),
                replayed: false,
                retries: Vec::new(),
                at,
            },
            cancel: None,
        }
    }

    /// A paid order that ended FULFILLED, as every store holds it when all went well.
    fn fulfilled() -> Observed {
        Observed {
            orders: vec![json!({
                "orderId": ORDER, "userId": "u-1", "status": "FULFILLED",
                "items": [{"productId": "p-1", "quantity": 2}], "total": {"amount": 500},
            })],
            stock: BTreeMap::from([("p-1".to_owned(), 8)]),
            adjustments: BTreeMap::new(),
            payments: BTreeMap::from([(
                ORDER.to_owned(),
                json!({"status": "captured", "amount": 500}),
            )]),
            outbox: vec![json!({"id": "e-1", "type": "order.created"})],
            inbox: vec![("e-1".into(), "payments".into(), ORDER.into())],
            charges: vec![json!({
                "id": "ch_1", "status": "succeeded", "captured": true, "refunded": false,
                "amount_captured": 500, "metadata": {"order_id": ORDER},
            })],
            dead_letters: BTreeMap::from([("OrderEventsDeadLetterQueue".to_owned(), Vec::new())]),
            queue_depths: BTreeMap::new(),
        }
    }

    fn check(
        placed: &[Placed],
        observed: &Observed,
        kills: &[chrono::DateTime<chrono::Utc>],
    ) -> Ledger {
        let consumers = Consumers::parse("order.created=payments").unwrap();
        let stock = BTreeMap::from([("p-1".to_owned(), 10)]);
        Ledger::check(
            &Expected {
                placed,
                initial_stock: &stock,
                poisoned_messages: &[],
                poisoned_outbox: &[],
                consumers: &consumers,
                dynamodb_kills: kills,
            },
            observed,
        )
    }

    fn checks(ledger: &Ledger) -> Vec<&'static str> {
        ledger.violations.iter().map(|v| v.check).collect()
    }

    #[test]
    fn a_run_where_everything_adds_up_has_no_violation() {
        let ledger = check(
            &[placed(Intent::Paid, chrono::Utc::now())],
            &fulfilled(),
            &[],
        );
        assert_eq!(ledger.violations, Vec::new());
        assert_eq!(
            (ledger.acknowledged, ledger.in_table, ledger.units_sold),
            (1, 1, 2)
        );
        assert!(settled(
            &fulfilled(),
            &Expected {
                placed: &[placed(Intent::Paid, chrono::Utc::now())],
                initial_stock: &BTreeMap::new(),
                poisoned_messages: &[],
                poisoned_outbox: &[],
                consumers: &Consumers::parse("order.created=payments").unwrap(),
                dynamodb_kills: &[],
            }
        ));
    }

    #[test]
    fn an_acknowledged_order_missing_is_lost_unless_the_emulator_was_killed_just_after() {
        let now = chrono::Utc::now();
        let mut observed = fulfilled();
        observed.orders.clear();
        observed.stock.insert("p-1".into(), 10);
        observed.charges.clear();
        observed.inbox.clear();
        observed.outbox.clear();
        let ledger = check(&[placed(Intent::Paid, now)], &observed, &[]);
        assert_eq!(checks(&ledger), ["no acknowledged order lost"]);

        let killed_after = check(
            &[placed(Intent::Paid, now)],
            &observed,
            &[now + chrono::TimeDelta::milliseconds(300)],
        );
        assert_eq!(killed_after.violations, Vec::new());
        assert_eq!(killed_after.lost_to_emulator, [ORDER]);
        let killed_long_after = check(
            &[placed(Intent::Paid, now)],
            &observed,
            &[now + chrono::TimeDelta::seconds(5)],
        );
        let answered_on_its_way = check(
            &[placed(Intent::Paid, now)],
            &observed,
            &[now - chrono::TimeDelta::milliseconds(200)],
        );
        assert_eq!(answered_on_its_way.lost_to_emulator, [ORDER]);
        assert_eq!(checks(&killed_long_after), ["no acknowledged order lost"]);
    }

    #[test]
    fn a_unit_sold_twice_or_never_breaks_stock_conservation() {
        let mut observed = fulfilled();
        observed.stock.insert("p-1".into(), 7);
        let ledger = check(&[placed(Intent::Paid, chrono::Utc::now())], &observed, &[]);
        assert_eq!(checks(&ledger), ["stock conservation"]);
    }

    #[test]
    fn a_cancelled_order_with_a_live_authorization_is_caught() {
        let mut observed = fulfilled();
        observed.orders[0]["status"] = json!("CANCELLED");
        observed.orders[0]["cancellationReason"] = json!("customer");
        observed.stock.insert("p-1".into(), 10);
        observed
            .payments
            .insert(ORDER.into(), json!({"status": "voided", "amount": 500}));
        observed.charges[0]["captured"] = json!(false);
        let mut cancelled = placed(Intent::Cancelled, chrono::Utc::now());
        cancelled.cancel = Some(Answer {
            status: Some(200),
            ..cancelled.create.clone()
        });
        let ledger = check(std::slice::from_ref(&cancelled), &observed, &[]);
        assert_eq!(
            checks(&ledger),
            ["no live authorization on a cancelled order"]
        );

        observed.charges[0]["refunded"] = json!(true);
        assert_eq!(check(&[cancelled], &observed, &[]).violations, Vec::new());
    }

    #[test]
    fn a_second_charge_or_a_capture_short_of_the_total_is_caught() {
        let mut observed = fulfilled();
        observed.charges.push(observed.charges[0].clone());
        observed.charges[1]["amount_captured"] = json!(499);
        let ledger = check(&[placed(Intent::Paid, chrono::Utc::now())], &observed, &[]);
        assert_eq!(
            checks(&ledger),
            [
                "at most one charge per order",
                "captured = total iff FULFILLED"
            ]
        );
    }

    #[test]
    fn a_record_set_aside_twice_is_at_least_once_but_a_redriven_message_is_once() {
        let poisoned = ["chaos-poison-1".to_owned()];
        let consumers = Consumers::parse("order.created=payments").unwrap();
        let stock = BTreeMap::from([("p-1".to_owned(), 10)]);
        let check = |queue: &str, copies: usize| {
            let relay = queue == "RelayFailureQueue";
            let mut observed = fulfilled();
            observed.dead_letters.insert(
                queue.to_owned(),
                vec!["{\"id\": \"chaos-poison-1\"}".to_owned(); copies],
            );
            let placed = [placed(Intent::Paid, chrono::Utc::now())];
            let expected = Expected {
                placed: &placed,
                initial_stock: &stock,
                poisoned_messages: if relay { &[] } else { &poisoned },
                poisoned_outbox: if relay { &poisoned } else { &[] },
                consumers: &consumers,
                dynamodb_kills: &[],
            };
            checks(&Ledger::check(&expected, &observed))
        };
        assert_eq!(check("RelayFailureQueue", 2), Vec::<&str>::new());
        assert_eq!(
            check("OrderEventsDeadLetterQueue", 2),
            ["what was poisoned ends in its DLQ (a redriven message once)"]
        );
        assert_eq!(
            check("RelayFailureQueue", 0),
            ["what was poisoned ends in its DLQ (a redriven message once)"]
        );
    }

    #[test]
    fn an_event_a_consumer_never_recorded_and_an_unplanted_dead_letter_are_caught() {
        let mut observed = fulfilled();
        observed.inbox.clear();
        observed.dead_letters.insert(
            "OrderEventsDeadLetterQueue".into(),
            vec!["{\"type\":\"order.created\"}".into()],
        );
        let ledger = check(&[placed(Intent::Paid, chrono::Utc::now())], &observed, &[]);
        assert_eq!(
            checks(&ledger),
            ["DLQs hold only what was poisoned", "every event consumed"]
        );
    }
}
