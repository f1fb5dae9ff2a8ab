//! The outbox's way to the consumer: stream → relay → SQS FIFO → consumer, on the emulators.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use orders_core::domain::OrderId;
use orders_core::events::{OrderEvent, OrderEventType, SagaEvent, SagaEventType, SagaFacts};
use orders_core::service::ports::{
    ChangeOrder, ChangeOrderError, OrderChange, ReadOrder, RecordConsumed, StoredOrder,
};
use orders_core::store::{DynamoStore, StoreError};
use platform::consumer::SqsEvent;
use platform::dynamo::{Consumed, Recorded};
use platform::metrics::Metrics;
use platform::relay::{
    DeadLetter, Outgoing, PublishError, Publisher, SharedOutbox, StreamEvent, relay,
};
use serde_json::Value;

use crate::support::*;

fn fixture(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Places `n` orders of one unit of `p-1`, each from its own user; answers their ids in order.
async fn place_orders(app: &TestApp, n: usize) -> Vec<String> {
    app.add_product("p-1", 250, "EUR", 10_000).await;
    let deps = app.create_deps();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let answer = create(&deps, order_by(&format!("user-{i}"), lines(&[("p-1", 1)]))).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        ids.push(answer.body["orderId"].as_str().unwrap().to_owned());
    }
    ids
}

/// Keeps what the relay published, without sending anything.
#[derive(Default)]
struct Recorder(Mutex<Vec<Outgoing>>);

impl Publisher for Recorder {
    async fn publish(&self, batch: &[Outgoing]) -> Result<Vec<usize>, PublishError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(Vec::new())
    }

    async fn set_aside(&self, dead_letter: &DeadLetter) -> Result<(), PublishError> {
        panic!("nothing is set aside here: {dead_letter:?}");
    }
}

#[tokio::test]
async fn the_relay_fixture_relays_only_its_insert() {
    let event: StreamEvent = serde_json::from_value(fixture("outbox-relay.json")).unwrap();
    let recorder = Recorder::default();
    let response = relay::<SharedOutbox, _>(&recorder, &Metrics::discard(), event).await;
    assert!(response.batch_item_failures.is_empty());
    let sent = recorder.0.lock().unwrap();
    assert_eq!(
        sent.len(),
        1,
        "MODIFY, REMOVE and the TTL delete are skipped"
    );
    assert_eq!(sent[0].event_id, "3af036e4-8af1-5e4a-a888-cb34b2636fe8");
    assert_eq!(sent[0].group_id, "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    let body: OrderEvent = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(body.event_type, OrderEventType::OrderCreated);
}

#[tokio::test]
async fn inserts_reach_the_queue_with_order_group_and_event_dedup_ids() {
    // GIVEN three committed orders
    let app = TestApp::new().await;
    let ids = place_orders(&app, 3).await;
    // WHEN the outbox stream is relayed
    let mut mapping = app.outbox_mapping().await;
    app.relay_all(&mut mapping, &app.publisher()).await;
    // THEN one message per order: group = order id, dedup id = event id, body = the outbox event
    let outbox: BTreeMap<String, Value> = app
        .events()
        .await
        .into_iter()
        .map(|e| (e["subject"].as_str().unwrap().to_owned(), e))
        .collect();
    let messages = app.drain("PaymentEventsQueue").await;
    assert_eq!(messages.len(), 3);
    for m in &messages {
        let attrs = m.attributes.as_ref().unwrap();
        let group = &attrs[&MessageSystemAttributeName::MessageGroupId];
        let dedup = &attrs[&MessageSystemAttributeName::MessageDeduplicationId];
        let body: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
        assert!(ids.contains(group));
        assert_eq!(&outbox[group]["id"], dedup.as_str());
        assert_eq!(body["subject"], group.as_str());
        assert_eq!(body["data"], outbox[group]["data"]);
    }

    // AND changes that are not INSERTs (an update, a delete) are read from the stream but not sent
    let first = outbox.values().next().unwrap();
    let key = |name: &str| AttributeValue::S(first[name].as_str().unwrap().to_owned());
    app.client
        .update_item()
        .table_name(&app.tables().outbox)
        .key("bucket", key("bucket"))
        .key("id", key("id"))
        .update_expression("SET note = :n")
        .expression_attribute_values(":n", AttributeValue::S("touched".into()))
        .send()
        .await
        .unwrap();
    app.client
        .delete_item()
        .table_name(&app.tables().outbox)
        .key("bucket", key("bucket"))
        .key("id", key("id"))
        .send()
        .await
        .unwrap();
    let deliveries = app.relay_all(&mut mapping, &app.publisher()).await;
    assert_eq!(deliveries.iter().map(|d| d.records).sum::<usize>(), 2);
    assert_eq!(app.queue_depth("PaymentEventsQueue").await, 0);
}

#[tokio::test]
async fn an_orders_trace_travels_to_the_consumer_in_its_event() {
    // GIVEN an order placed in an invocation traced by X-Ray
    let app = TestApp::new().await;
    app.add_product("p-1", 250, "EUR", 10).await;
    let trace = "Root=1-6742e1a0-0a1b2c3d4e5f6a7b8c9d0e1f;Parent=53995c3f42cd8ad8;Sampled=1";
    let deps = app.create_deps();
    let request = order_by("alice", lines(&[("p-1", 1)])).traced_request(trace);
    let response = orders_core::http::serve("create-order", request, |req| {
        orders_core::http::orders::create(&deps, req)
    })
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    // WHEN the outbox is relayed through the events topic
    let mut mapping = app.outbox_mapping().await;
    app.relay_all(&mut mapping, &app.publisher()).await;
    // THEN the message the consumer's queue receives carries the trace as the event's traceparent
    // (SNS PublishBatch carries no per-message X-Ray header)
    let messages = app.drain("PaymentEventsQueue").await;
    assert_eq!(messages.len(), 1);
    let event: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        event["traceparent"],
        "00-6742e1a00a1b2c3d4e5f6a7b8c9d0e1f-53995c3f42cd8ad8-01"
    );
    assert_eq!(event["id"], app.events().await[0]["id"]);
}

/// Publishes through SNS, except the events it is told to refuse (as SNS refuses single entries).
struct Refusing<'a> {
    inner: platform::relay::TopicPublisher,
    refuse: HashSet<String>,
    calls: &'a Mutex<Vec<Vec<String>>>,
}

impl Publisher for Refusing<'_> {
    async fn publish(&self, batch: &[Outgoing]) -> Result<Vec<usize>, PublishError> {
        self.calls
            .lock()
            .unwrap()
            .push(batch.iter().map(|o| o.event_id.clone()).collect());
        let refused: Vec<usize> = (0..batch.len())
            .filter(|&i| self.refuse.contains(&batch[i].event_id))
            .collect();
        let accepted: Vec<Outgoing> = batch
            .iter()
            .filter(|o| !self.refuse.contains(&o.event_id))
            .cloned()
            .collect();
        if !accepted.is_empty() {
            assert!(self.inner.publish(&accepted).await?.is_empty());
        }
        Ok(refused)
    }

    async fn set_aside(&self, dead_letter: &DeadLetter) -> Result<(), PublishError> {
        self.inner.set_aside(dead_letter).await
    }
}

#[tokio::test]
async fn a_refused_send_is_reported_by_its_sequence_number_and_nothing_later_is_sent() {
    // GIVEN 25 orders in the stream
    let app = TestApp::new().await;
    place_orders(&app, 25).await;
    let mut mapping = app.outbox_mapping().await;
    let (shard, batch) = mapping.next_batch().await.unwrap().expect("a batch");
    assert_eq!(batch.records.len(), 25);
    let event_id = |i: usize| match &batch.records[i].change.new_image["id"] {
        serde_dynamo::AttributeValue::S(id) => id.clone(),
        other => panic!("id is {other:?}"),
    };
    // WHEN SQS refuses the 13th event (the 3rd entry of the second SendMessageBatch)
    let calls = Mutex::new(Vec::new());
    let refusing = Refusing {
        inner: app.publisher(),
        refuse: HashSet::from([event_id(12)]),
        calls: &calls,
    };
    let response = relay::<SharedOutbox, _>(&refusing, &app.metrics, batch.clone()).await;
    // THEN the relay reports that record's sequence number and makes no later call
    let reported: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(reported, [batch.records[12].change.sequence_number.clone()]);
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.len(), 2, "no call after the one that failed");
    let sent: HashSet<String> = calls
        .concat()
        .into_iter()
        .filter(|id| *id != event_id(12))
        .collect();
    assert_eq!(
        sent.len(),
        19,
        "the first call, and the second but for the refused entry"
    );
    for later in 20..25 {
        assert!(
            !sent.contains(&event_id(later)),
            "event {later} was sent after the failure"
        );
    }
    assert_eq!(app.queue_depth("PaymentEventsQueue").await, 19);

    // AND Lambda's retry from that sequence number delivers the rest; the events of the failed call
    // that SQS had accepted are sent again and deduplicated by their event id. (The queue is not
    // read before the retry: moto only deduplicates against messages still in the queue, where SQS
    // keeps a 5-minute window.)
    mapping.commit(&shard, &batch, &response);
    app.relay_all(&mut mapping, &app.publisher()).await;
    let messages = app.drain("PaymentEventsQueue").await;
    let ids: HashSet<String> = messages
        .iter()
        .map(|m| {
            m.attributes.as_ref().unwrap()[&MessageSystemAttributeName::MessageDeduplicationId]
                .clone()
        })
        .collect();
    assert_eq!(
        (messages.len(), ids.len()),
        (25, 25),
        "every event exactly once"
    );
}

fn sqs_fixture_with(bodies: &[(&str, String)], fifo: bool) -> SqsEvent {
    let mut event = fixture("order-events.json");
    let template = event["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, (group, body))| {
            let mut r = template.clone();
            r["messageId"] = Value::String(format!("message-{i}"));
            r["body"] = Value::String(body.clone());
            r["attributes"]["MessageGroupId"] = Value::String((*group).to_owned());
            if !fifo {
                r["attributes"]
                    .as_object_mut()
                    .unwrap()
                    .remove("MessageGroupId");
                r["eventSourceARN"] =
                    Value::String("arn:aws:sqs:eu-west-1:123456789012:standard".into());
            }
            r
        })
        .collect();
    event["Records"] = Value::Array(records);
    serde_json::from_value(event).unwrap()
}

/// The committed outbox event of an order, as the relay would send it.
async fn event_of(app: &TestApp, order_id: &str, event_type: &str) -> String {
    let event = app
        .events()
        .await
        .into_iter()
        .find(|e| e["subject"] == order_id && e["type"] == event_type)
        .expect("the event is in the outbox");
    let event: OrderEvent = serde_json::from_value(event).unwrap();
    serde_json::to_string(&event).unwrap()
}

/// The `payment.authorized` event payments would publish for an order, as the queue delivers it.
fn authorized(order_id: &str) -> String {
    let id = OrderId::parse(order_id).unwrap();
    let event = SagaEvent::new(
        SagaEventType::PaymentAuthorized,
        "payments",
        order_id,
        SagaFacts {
            order_id: id,
            charge_id: Some(format!("ch_{}", &order_id[..8])),
            decline_code: None,
            shipment_id: None,
        },
        Utc::now(),
    );
    serde_json::to_string(&event).unwrap()
}

async fn inbox_size(app: &TestApp) -> usize {
    app.count(&app.tables().inbox.clone()).await
}

#[tokio::test]
async fn a_message_delivered_three_times_has_one_effect() {
    let app = TestApp::new().await;
    let ids = place_orders(&app, 1).await;
    let body = authorized(&ids[0]);
    for _ in 0..3 {
        let response = app
            .deliver(sqs_fixture_with(&[(&ids[0], body.clone())], true))
            .await;
        assert!(
            response.batch_item_failures.is_empty(),
            "a redelivery still succeeds"
        );
    }
    assert_eq!(app.status(&ids[0]).await, "CONFIRMED");
    assert_eq!(inbox_size(&app).await, 1);
}

#[tokio::test]
async fn the_consumer_fixture_confirms_its_order() {
    let app = TestApp::new().await;
    let ids = place_orders(&app, 1).await;
    let mut event = fixture("order-events.json");
    // The fixture's event, pointed at an order of this test (and so with that order's event id).
    let mut body: Value =
        serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
    body["subject"] = Value::String(ids[0].clone());
    body["data"]["orderId"] = Value::String(ids[0].clone());
    body["id"] =
        Value::String(platform::events::event_id(&ids[0], "payment.authorized").to_string());
    event["Records"][0]["body"] = Value::String(body.to_string());
    let response = app.deliver(serde_json::from_value(event).unwrap()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(app.status(&ids[0]).await, "CONFIRMED");
}

#[tokio::test]
async fn on_fifo_a_failure_stops_the_rest_of_its_group_only() {
    let app = TestApp::new().await;
    let ids = place_orders(&app, 2).await;
    let bodies = [
        (ids[0].as_str(), "{\"not\": \"an event\"}".to_owned()),
        (ids[0].as_str(), authorized(&ids[0])),
        (ids[1].as_str(), authorized(&ids[1])),
    ];

    // FIFO: the poison message and the later one of its order are reported; the other order's
    // event is applied.
    let response = app.deliver(sqs_fixture_with(&bodies, true)).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["message-0", "message-1"]);
    assert_eq!(app.status(&ids[0]).await, "PENDING");
    assert_eq!(app.status(&ids[1]).await, "CONFIRMED");

    // A standard queue's batch: only the poison message fails.
    let response = app.deliver(sqs_fixture_with(&bodies, false)).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["message-0"]);
    assert_eq!(app.status(&ids[0]).await, "CONFIRMED");
}

#[tokio::test]
async fn an_unknown_event_type_fails_that_message() {
    let app = TestApp::new().await;
    let ids = place_orders(&app, 1).await;
    let mut body: Value = serde_json::from_str(&authorized(&ids[0])).unwrap();
    body["type"] = Value::String("payment.refunded".into());
    let response = app
        .deliver(sqs_fixture_with(&[(&ids[0], body.to_string())], true))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(app.status(&ids[0]).await, "PENDING");
}

#[tokio::test]
async fn an_event_not_from_its_producer_or_not_about_its_order_is_never_applied() {
    // GIVEN an order and the payment.authorized event payments would send for it
    let app = TestApp::new().await;
    let ids = place_orders(&app, 2).await;
    let real: Value = serde_json::from_str(&authorized(&ids[0])).unwrap();
    let other: Value = serde_json::from_str(&authorized(&ids[1])).unwrap();
    let mut forged_id = real.clone();
    forged_id["id"] = Value::String("6f1d2c3b-0000-4000-8000-000000000001".into());
    let mut foreign_source = real.clone();
    foreign_source["source"] = Value::String("somebody-else".into());
    // The other order's event, re-addressed (with the id derived for it) to this order.
    let mut readdressed = other.clone();
    readdressed["subject"] = real["subject"].clone();
    readdressed["id"] = real["id"].clone();
    // WHEN each arrives on the queue
    for (what, body) in [
        ("an id not derived from subject and type", forged_id),
        ("another producer", foreign_source),
        ("another order's data", readdressed),
    ] {
        let response = app
            .deliver(sqs_fixture_with(&[(&ids[0], body.to_string())], true))
            .await;
        // THEN it fails (and so ends in the dead-letter queue), and nothing is applied or recorded
        assert_eq!(response.batch_item_failures.len(), 1, "{what}");
    }
    assert_eq!(app.status(&ids[0]).await, "PENDING");
    assert_eq!(inbox_size(&app).await, 0);
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue_after_five_receives() {
    // GIVEN two good events and then a poison message on the FIFO queue
    let app = TestApp::new().await;
    let ids = place_orders(&app, 2).await;
    let queue = app.queue_url("OrderEventsQueue").to_owned();
    let poison = "{\"specversion\": \"1.0\", \"garbage\": true}";
    let mut bodies = Vec::new();
    for id in &ids {
        bodies.push((id.clone(), authorized(id)));
    }
    bodies.push(("poison-group".to_owned(), poison.to_owned()));
    for (i, (group, body)) in bodies.iter().enumerate() {
        app.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(format!("m-{i}"))
            .send()
            .await
            .unwrap();
    }
    // WHEN the mapping delivers until the queue is empty
    let deliveries = app.consume_all(&app.cancel_deps()).await;
    // THEN only the poison failed, five times, and it sits in the DLQ; the good ones are applied
    assert_eq!(
        deliveries.iter().map(|d| d.failed).sum::<usize>(),
        5,
        "{deliveries:?}"
    );
    assert_eq!(app.status(&ids[0]).await, "CONFIRMED");
    assert_eq!(app.status(&ids[1]).await, "CONFIRMED");
    assert_eq!(app.queue_depth("OrderEventsQueue").await, 0);
    let dead = app.drain("OrderEventsDeadLetterQueue").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.as_deref(), Some(poison));
}

/// Fails chosen orders' transitions once each: before writing them (a crash) or after (a lost
/// answer).
struct Flaky<'a> {
    inner: &'a DynamoStore,
    fail_before: HashSet<String>,
    fail_after: HashSet<String>,
    /// Writes tried, and reads of each order (one per attempt to apply an event to it).
    seen: Mutex<HashMap<String, u32>>,
    reads: Mutex<HashMap<String, u32>>,
    applied: Mutex<HashMap<String, u32>>,
}

impl Flaky<'_> {
    fn first_time(&self, order_id: OrderId) -> bool {
        let mut seen = self.seen.lock().unwrap();
        let n = seen.entry(order_id.to_string()).or_default();
        *n += 1;
        *n == 1
    }
}

impl ReadOrder for Flaky<'_> {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default() += 1;
        self.inner.order(id).await
    }
}

impl RecordConsumed for Flaky<'_> {
    async fn record(&self, consumed: &Consumed) -> Result<Recorded, StoreError> {
        self.inner.record(consumed).await
    }
}

impl ChangeOrder for Flaky<'_> {
    async fn change_order(&self, change: &OrderChange<'_>) -> Result<(), ChangeOrderError> {
        let order_id = change.order.order_id;
        let id = order_id.to_string();
        let first = self.first_time(order_id);
        if first && self.fail_before.contains(&id) {
            return Err(StoreError::Transient.into());
        }
        self.inner.change_order(change).await?;
        *self.applied.lock().unwrap().entry(id.clone()).or_default() += 1;
        if first && self.fail_after.contains(&id) {
            return Err(StoreError::Transient.into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn fifty_orders_become_fifty_confirmed_orders_each_confirmed_once() {
    // GIVEN 50 committed orders, and their authorizations on the orders queue
    let app = TestApp::new().await;
    let ids = place_orders(&app, 50).await;
    let queue = app.queue_url("OrderEventsQueue").to_owned();
    for id in &ids {
        let body = authorized(id);
        let event: Value = serde_json::from_str(&body).unwrap();
        app.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .message_group_id(id)
            .message_deduplication_id(event["id"].as_str().unwrap())
            .send()
            .await
            .unwrap();
    }
    // WHEN they are consumed, the store failing some transitions once, before the write (a
    // throttled request) or after it (an answer lost on the way back)
    let deps = app.cancel_deps_with(Flaky {
        inner: &app.store,
        fail_before: ids.iter().step_by(10).cloned().collect(),
        fail_after: ids.iter().skip(5).step_by(10).cloned().collect(),
        seen: Mutex::default(),
        reads: Mutex::default(),
        applied: Mutex::default(),
    });
    let deliveries = app.consume_all(&deps).await;
    // THEN the consumer read the order again and retried in place (no message failed): every
    // order is CONFIRMED, each by exactly one applied effect (a retry after a lost answer finds
    // the payment already authorized and only records the event)
    let reads = deps.store.reads.lock().unwrap().clone();
    assert_eq!(
        reads.values().filter(|&&n| n > 1).count(),
        10,
        "failures were injected and retried: {reads:?}"
    );
    assert_eq!(deliveries.iter().map(|d| d.failed).sum::<usize>(), 0);
    for id in &ids {
        assert_eq!(app.status(id).await, "CONFIRMED", "order {id}");
    }
    let applied = deps.store.applied.into_inner().unwrap();
    assert_eq!(applied.len(), 50);
    assert!(applied.values().all(|&n| n == 1), "{applied:?}");
    assert_eq!(inbox_size(&app).await, 50);
    // AND the metrics say so: no failed delivery, each event consumed once with its age measured
    assert_eq!(app.metric_total("ConsumerFailures", &[]), 0.0);
    assert_eq!(app.metric_total("EventsConsumed", &[]), 50.0);
    let ages = app
        .emf_lines()
        .iter()
        .filter_map(|d| {
            d["EventAge"]
                .as_array()
                .map(Vec::len)
                .or(d["EventAge"].as_f64().map(|_| 1))
        })
        .sum::<usize>();
    assert_eq!(ages, 50);
    // AND nothing is left behind
    assert_eq!(app.queue_depth("OrderEventsQueue").await, 0);
    assert_eq!(app.queue_depth("OrderEventsDeadLetterQueue").await, 0);
}

#[tokio::test]
async fn two_consumers_of_one_event_do_not_see_each_others_records() {
    // GIVEN an order's order.created, which payments consumed
    let app = TestApp::new().await;
    let ids = place_orders(&app, 1).await;
    let body = event_of(&app, &ids[0], "order.created").await;
    let event: OrderEvent = serde_json::from_str(&body).unwrap();
    let consumed = |consumer: &str| Consumed::of(consumer, &event);
    assert_eq!(
        app.store.record(&consumed("payments")).await.unwrap(),
        Recorded::Now
    );
    // WHEN another service records the same event in its inbox
    let other = app.store.record(&consumed("fulfillment")).await;
    // THEN it is new to that consumer, and a duplicate only to each one itself
    assert_eq!(other.unwrap(), Recorded::Now);
    let again = app.store.record(&consumed("fulfillment")).await;
    assert_eq!(again.unwrap(), Recorded::Before);
    let mine = app.store.record(&consumed("payments")).await;
    assert_eq!(mine.unwrap(), Recorded::Before);
    assert_eq!(inbox_size(&app).await, 2);
}
