//! Events that cannot be lost: a send outage only delays them (in order per order), a record the
//! relay can never send is set aside whole and does not hold the stream, and the reconciler sends
//! again what no consumer recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use orders_core::config::reconcile_after;
use platform::reconcile::Reconciler;
use platform::relay::{
    DeadLetter, Outgoing, PublishError, Publisher, SharedOutbox, TopicPublisher,
};
use serde_json::Value;

use crate::support::*;

/// The relay's publisher, but while `down` every send fails as an unreachable SNS does (a real
/// connection error from the SDK, to a port nothing listens on).
struct Outage {
    live: TopicPublisher,
    dead: TopicPublisher,
    down: AtomicBool,
}

impl Outage {
    async fn new(app: &TestApp) -> Self {
        let unreachable = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            drop(listener);
            format!("http://127.0.0.1:{port}")
        };
        let sdk = platform::aws::config().await;
        let sns = aws_sdk_sns::config::Builder::from(&sdk)
            .endpoint_url(&unreachable)
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(&sdk)
            .endpoint_url(&unreachable)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        let topic = app.env("OutboxRelayFunction", "EVENTS_TOPIC_ARN");
        let dlq = app.env("OutboxRelayFunction", "RELAY_DEAD_LETTER_QUEUE_URL");
        Self {
            live: app.publisher(),
            dead: TopicPublisher::new(
                aws_sdk_sns::Client::from_conf(sns),
                topic,
                aws_sdk_sqs::Client::from_conf(sqs),
                dlq,
            ),
            down: AtomicBool::new(true),
        }
    }

    fn current(&self) -> &TopicPublisher {
        if self.down.load(Ordering::SeqCst) {
            &self.dead
        } else {
            &self.live
        }
    }
}

impl Publisher for Outage {
    async fn publish(&self, batch: &[Outgoing]) -> Result<Vec<usize>, PublishError> {
        self.current().publish(batch).await
    }

    async fn set_aside(&self, dead_letter: &DeadLetter) -> Result<(), PublishError> {
        self.current().set_aside(dead_letter).await
    }
}

/// Every message of a queue, in the order received, as (group id, body); deleted.
async fn receive_all(app: &TestApp, queue: &str) -> Vec<(String, Value)> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    app.drain(queue)
        .await
        .into_iter()
        .map(|m| {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&A::MessageGroupId).cloned())
                .unwrap_or_default();
            (
                group,
                serde_json::from_str(m.body().unwrap_or_default()).unwrap(),
            )
        })
        .collect()
}

async fn place(app: &TestApp, user: &str) -> String {
    let answer = create(&app.create_deps(), order_by(user, lines(&[("p-1", 1)]))).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["orderId"].as_str().unwrap().to_owned()
}

async fn cancel_order(app: &TestApp, user: &str, id: &str) {
    let deps = orders_core::service::CancelOrderDeps {
        store: app.store.clone(),
        event_source: app.env("CancelOrderFunction", "EVENT_SOURCE"),
        retry: Default::default(),
        metrics: app.metrics.clone(),
    };
    let event = ApiEvent::load("cancel-order.json")
        .user(user, &["orders:write", "orders:read"])
        .path_param("orderId", id);
    assert_eq!(cancel(&deps, event).await.status, 200);
}

#[tokio::test]
async fn a_send_outage_delays_events_and_loses_none_in_order_per_order() {
    // GIVEN orders in the outbox, and SQS unreachable from the relay
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 1000).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(place(&app, &format!("early-{i}")).await);
    }
    let outage = Outage::new(&app).await;
    let mut mapping = app.outbox_mapping().await;
    // WHEN the relay fails, more times than any retry limit, while orders keep being taken and cancelled
    for round in 0..15 {
        let delivery = mapping
            .deliver_once(|event| async {
                Ok::<_, std::convert::Infallible>(
                    platform::relay::relay::<SharedOutbox, _>(&outage, &app.metrics, event).await,
                )
            })
            .await
            .unwrap()
            .expect("the stream has records");
        assert!(
            delivery.retry_from.is_some(),
            "round {round}: the send failed"
        );
        assert!(
            delivery.gave_up.is_none(),
            "round {round}: the mapping gave records up"
        );
        if round % 5 == 0 {
            ids.push(place(&app, &format!("late-{round}")).await);
        }
        if round == 7 {
            cancel_order(&app, "early-1", &ids[1]).await;
            cancel_order(&app, "early-2", &ids[2]).await;
        }
    }
    // AND SQS comes back
    outage.down.store(false, Ordering::SeqCst);
    app.relay_all(&mut mapping, &outage).await;
    // THEN every event of the outbox arrived once at payments (which takes order.created and
    // order.cancelled), and each order's events in the order written
    let received = receive_all(&app, "PaymentEventsQueue").await;
    let outbox = app.events().await;
    assert_eq!(received.len(), outbox.len());
    assert_eq!(outbox.len(), ids.len() + 2);
    let mut per_order: HashMap<String, Vec<String>> = HashMap::new();
    for (group, body) in &received {
        assert_eq!(&body["subject"], group);
        per_order
            .entry(group.clone())
            .or_default()
            .push(body["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_order.len(), ids.len());
    for id in &ids[1..3] {
        assert_eq!(per_order[id], ["order.created", "order.cancelled"]);
    }
}

#[tokio::test]
async fn a_record_the_relay_cannot_send_is_set_aside_whole_and_the_rest_flow() {
    // GIVEN a foreign item written into the outbox between orders
    let app = TestApp::new().await;
    app.add_product("p-1", 100, "EUR", 1000).await;
    place(&app, "a").await;
    app.client
        .put_item()
        .table_name(&app.tables().outbox)
        .item("bucket", AttributeValue::S("foreign".into()))
        .item("id", AttributeValue::S("not-an-event".into()))
        .item("note", AttributeValue::S("written by hand".into()))
        .send()
        .await
        .unwrap();
    place(&app, "b").await;
    // WHEN the stream is relayed
    let mut mapping = app.outbox_mapping().await;
    let deliveries = app.relay_all(&mut mapping, &app.publisher()).await;
    // THEN the foreign record was reported handled (the stream never stopped at it)
    assert!(deliveries.iter().all(|d| d.retry_from.is_none()));
    // AND both orders' events reached payments' queue
    assert_eq!(receive_all(&app, "PaymentEventsQueue").await.len(), 2);
    // AND the foreign record is in the relay's dead-letter queue, whole, with the reason
    let dead = receive_all(&app, "RelayFailureQueue").await;
    assert_eq!(dead.len(), 1);
    let letter = &dead[0].1;
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("not an outbox event")
    );
    assert_eq!(letter["truncated"], false);
    let image = &letter["record"]["dynamodb"]["NewImage"];
    assert_eq!(image["id"]["S"], "not-an-event");
    assert_eq!(image["note"]["S"], "written by hand");
    assert!(letter["record"]["dynamodb"]["SequenceNumber"].is_string());
    assert_eq!(app.metric_total("RecordsSetAside", &[]), 1.0);
}

#[tokio::test]
async fn events_no_consumer_recorded_are_sent_again_once_their_hour_is_done() {
    // GIVEN three orders whose sagas ran to the end (7 events each, all consumed), and two whose
    // order.created was never relayed (an outage longer than the stream keeps records)
    let app = TestApp::new().await;
    let services = app.services().await;
    app.add_product("p-1", 100, "EUR", 1000).await;
    let mut ids = Vec::new();
    for user in ["a", "b", "c"] {
        ids.push(place(&app, user).await);
    }
    app.settle(&services).await;
    for user in ["d", "e"] {
        ids.push(place(&app, user).await);
    }
    let env = |name: &str| app.envs["OutboxReconcilerFunction"].get(name).cloned();
    let reconciler = Reconciler {
        client: app.client.clone(),
        outbox_table: app.tables().outbox.clone(),
        inbox_table: app.tables().inbox.clone(),
        consumers: orders_core::config::event_consumers(&env)
            .expect("template.yaml sets EVENT_CONSUMERS"),
        after: reconcile_after(env).expect("template.yaml sets RECONCILE_AFTER_MINUTES"),
    };
    // The reconciler examines an hour once it ended `after` ago: a run at `t` + an hour + `after`
    // examines every hour up to the one `t` is in.
    let run = |at: chrono::DateTime<Utc>| {
        let reconciler = &reconciler;
        let app = &app;
        async move {
            reconciler
                .run::<SharedOutbox, _>(&app.publisher(), &app.metrics, at)
                .await
                .unwrap()
        }
    };
    let done = |at: chrono::DateTime<Utc>| at + Duration::hours(1) + reconciler.after;
    // WHEN the reconciler runs while the events' hour has not ended: it reads back to the outbox's
    // retention (nothing there), sends nothing, and keeps its place
    let first = run(Utc::now()).await;
    assert_eq!((first.recorded, first.republished), (0, 0));
    assert!(first.hours >= 7 * 24 - 1, "{first:?}");
    assert_eq!(app.queue_depth("PaymentEventsQueue").await, 0);
    // WHEN it runs once their hour is done: the two order.created nobody recorded are sent again
    // (to payments), the 21 consumed events are left alone
    let second = run(done(Utc::now())).await;
    assert_eq!((second.recorded, second.republished), (21, 2));
    assert!(second.hours <= 2, "from its checkpoint: {second:?}");
    assert_eq!(app.queue_depth("PaymentEventsQueue").await, 2);
    // AND their sagas run to the end (the stale stream records relayed too are duplicates)
    app.settle(&services).await;
    for id in &ids {
        assert_eq!(app.status(id).await, "FULFILLED", "{id}");
    }
    // THEN the next run reads that hour again and finds all 35 events recorded, and the one after
    // has nothing left to read
    let third = run(done(Utc::now())).await;
    assert_eq!((third.recorded, third.republished), (35, 0));
    let fourth = run(done(Utc::now())).await;
    assert_eq!((fourth.recorded, fourth.republished), (0, 0), "{fourth:?}");
    assert!(fourth.hours <= 1, "an hour begun since at most: {fourth:?}");
    assert_eq!(app.metric_total("EventsRepublished", &[]), 2.0);
}
