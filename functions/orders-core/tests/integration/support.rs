//! Test support: tables made from template.yaml on DynamoDB Local (a fresh prefix per test), and
//! API Gateway events built from the files in `events/`.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use devkit::Template;
use lambda_http::http::{HeaderMap, StatusCode};
use lambda_http::{Body, Request, Response};
use orders_core::config::{OrderSettings, Tables};
use orders_core::domain::{Currency, Money, Product, ProductId, ProductName, Stock};
use orders_core::http;
use orders_core::service::ports::{OrderSaga, OrderWriter};
use orders_core::service::{CancelOrderDeps, CreateOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use platform::metrics::Metrics;

use devkit::mapping::{SqsDelivery, SqsMapping, StreamDelivery, StreamMapping};
use fulfillment_core::service::FulfillmentDeps;
use fulfillment_core::store::{DynamoShipments, ShipmentTables};
use orders_core::consumer::consume;
use payments_core::consumer::Redelivery;
use payments_core::service::PaymentsDeps;
use payments_core::store::{DynamoLedger, LedgerTables};
use payments_core::stripe::Stripe;
use platform::consumer::SqsBatchResponse;
use platform::relay::{Publisher, SharedOutbox, TopicPublisher, relay};

/// The other services of the saga, as their mains build them from template.yaml.
pub struct Services {
    pub payments: PaymentsDeps<DynamoLedger, Stripe>,
    pub redelivery: Redelivery,
    pub fulfillment: FulfillmentDeps<DynamoShipments>,
}

/// A private set of the template's tables (DynamoDB Local) and queues (moto).
pub struct TestApp {
    pub client: Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The SDK configuration the functions would load (the emulators' endpoints).
    pub sdk: aws_config::SdkConfig,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub store: DynamoStore,
    pub settings: OrderSettings,
    pub queues: devkit::Queues,
    /// template.yaml, read once.
    pub template: Template,
    /// The environment template.yaml gives each function, resolved to the local names.
    pub envs: BTreeMap<String, BTreeMap<String, String>>,
    /// The order-events consumer as the template configures it (its name, and the producer order
    /// events must come from).
    pub consumer: orders_core::service::Consumer,
    /// This test's metrics, and the EMF lines they were flushed as.
    pub metrics: Arc<Metrics>,
    pub emf: Arc<Mutex<Vec<String>>>,
    /// The outbox stream's mapping of [`TestApp::settle`], kept between calls (its position).
    saga_mapping: tokio::sync::Mutex<Option<StreamMapping>>,
}

impl TestApp {
    /// New tables for this test only, so tests run in parallel without seeing each other.
    pub async fn new() -> Self {
        assert!(
            std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
            "the integration tests run against DynamoDB Local: run them with `make test` \
             (or infra/with-emulators.sh cargo test)"
        );
        let config = platform::aws::config().await;
        let client = Client::new(&config);
        let template = Template::load_default().expect("template.yaml parses");
        let prefix = format!("t{}", &uuid_like()[..12]);
        let mut names = devkit::create_tables(&client, &template, &prefix)
            .await
            .expect("tables from template.yaml are created");
        let sqs = platform::aws::sqs_client(&config);
        let queues = devkit::create_queues(&sqs, &template, &prefix)
            .await
            .expect("queues from template.yaml are created");
        let sns = aws_sdk_sns::Client::new(&config);
        let topics = devkit::create_topics(&sns, &template, &prefix, &queues)
            .await
            .expect("topics and subscriptions from template.yaml are created");
        names.extend(queues.urls.clone());
        names.extend(topics);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        names.extend(
            devkit::create_secrets(&secrets, &template, &prefix)
                .await
                .expect("secrets from template.yaml are created"),
        );
        let envs = template
            .resources_of_type("AWS::Serverless::Function")
            .map(|id| {
                let env = template
                    .function_env(id, &names, &BTreeMap::new())
                    .unwrap_or_else(|e| panic!("{id}'s environment resolves: {e}"));
                (id.clone(), env)
            })
            .collect::<BTreeMap<_, _>>();
        let env = &envs["CreateOrderFunction"];
        let vars = |name: &str| env.get(name).cloned();
        let tables =
            Tables::from_vars(vars).expect("the template names every table the code reads");
        let settings =
            OrderSettings::from_vars(vars).expect("the template sets the order settings");
        let store = DynamoStore::new(client.clone(), tables);
        let consumer_env = &envs["OrderEventsFunction"];
        let consumer =
            orders_core::service::Consumer::from_vars(|name: &str| consumer_env.get(name).cloned())
                .expect("template.yaml configures the consumer");
        let emf = Arc::new(Mutex::new(Vec::new()));
        let lines = emf.clone();
        let sink: platform::metrics::Sink =
            Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()));
        let metrics = Arc::new(Metrics::with_sink("Orders", "orders", sink));
        Self {
            client,
            sqs,
            streams: aws_sdk_dynamodbstreams::Client::new(&config),
            sdk: config.clone(),
            store,
            settings,
            queues,
            template,
            envs,
            consumer,
            metrics,
            emf,
            saga_mapping: tokio::sync::Mutex::new(None),
        }
    }

    /// A function's environment, as a `Vars` for the code's own config readers.
    pub fn vars(&self, function: &str) -> impl platform::config::Vars + '_ {
        let env = &self.envs[function];
        move |name: &str| env.get(name).cloned()
    }

    /// The payments and fulfillment consumers, built from their functions' environments (the
    /// payment provider's key read from the secret, the emulator's base URL).
    pub async fn services(&self) -> Services {
        use platform::config::Vars;
        let pay = self.vars("PaymentEventsFunction");
        let key = payments_core::secret::secret_string(
            &self.sdk,
            &pay.required("PAYMENT_SECRET_ARN").unwrap(),
        )
        .await
        .expect("the payment secret is readable");
        let base = std::env::var("PAYMENT_API_BASE").expect("the payment emulator runs");
        let (event_source, consumer, producers) = payments_core::consumer::settings(&pay).unwrap();
        let ship = self.vars("ShipmentEventsFunction");
        Services {
            payments: PaymentsDeps {
                ledger: DynamoLedger::new(
                    self.client.clone(),
                    LedgerTables::from_vars(&pay).unwrap(),
                ),
                provider: Stripe::new(&base, key).unwrap(),
                event_source,
                consumer,
                producers,
            },
            redelivery: Redelivery::from_vars(&self.sdk, &pay).unwrap(),
            fulfillment: FulfillmentDeps::from_vars(
                DynamoShipments::new(
                    self.client.clone(),
                    ShipmentTables::from_vars(&ship).unwrap(),
                ),
                &ship,
            )
            .unwrap(),
        }
    }

    /// The orders consumer's and the expiry's dependencies, as their mains build them.
    pub fn cancel_deps(&self) -> CancelOrderDeps<DynamoStore> {
        self.cancel_deps_with(self.store.clone())
    }

    pub fn cancel_deps_with<S>(&self, store: S) -> CancelOrderDeps<S> {
        CancelOrderDeps {
            store,
            event_source: self.settings.event_source.clone(),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(5),
            },
            metrics: self.metrics.clone(),
        }
    }

    /// Runs the saga until nothing moves: the outbox relayed to the topic, and each service's
    /// queue delivered to its consumer (as its mapping would), round after round. Messages a
    /// consumer made invisible for a later retry stay where they are.
    pub async fn settle(&self, services: &Services) -> Settled {
        let mut guard = self.saga_mapping.lock().await;
        if guard.is_none() {
            *guard = Some(self.outbox_mapping().await);
        }
        let mapping = guard.as_mut().unwrap();
        let publisher = self.publisher();
        let orders = self.cancel_deps();
        let mut settled = Settled::default();
        for _ in 0..100 {
            let relayed = self.relay_all(mapping, &publisher).await;
            let mut moved = relayed.len();
            for queue in [
                "OrderEventsQueue",
                "PaymentEventsQueue",
                "ShipmentEventsQueue",
            ] {
                let mut sqs = self.mapping_of(queue);
                sqs.retry_after_secs = (queue != "PaymentEventsQueue").then_some(0);
                loop {
                    let delivery = sqs
                        .deliver_once(0, |event| async {
                            Ok::<_, Infallible>(match queue {
                                "OrderEventsQueue" => {
                                    consume(&orders, &self.consumer, &self.metrics, event).await
                                }
                                "PaymentEventsQueue" => {
                                    payments_core::consumer::consume(
                                        &services.payments,
                                        &services.redelivery,
                                        &self.metrics,
                                        event,
                                    )
                                    .await
                                }
                                _ => {
                                    fulfillment_core::consumer::consume(
                                        &services.fulfillment,
                                        &self.metrics,
                                        event,
                                    )
                                    .await
                                }
                            })
                        })
                        .await
                        .expect("the queue can be read");
                    let Some(d) = delivery else { break };
                    moved += d.received;
                    settled.failed += d.failed;
                    settled.delivered += d.received;
                }
            }
            if moved == 0 {
                return settled;
            }
        }
        panic!("the saga never settled");
    }

    /// Delivers one batch of payments' queue to its consumer (one step of the saga, by hand).
    pub async fn deliver_payments_once(&self, services: &Services) {
        self.mapping_of("PaymentEventsQueue")
            .deliver_once(0, |event| async {
                Ok::<_, Infallible>(
                    payments_core::consumer::consume(
                        &services.payments,
                        &services.redelivery,
                        &self.metrics,
                        event,
                    )
                    .await,
                )
            })
            .await
            .expect("the queue can be read");
    }

    /// A queue → consumer mapping (batch 10), as template.yaml's SQS triggers declare.
    pub fn mapping_of(&self, id: &str) -> SqsMapping {
        SqsMapping::new(
            self.sqs.clone(),
            self.queues.urls[id].clone(),
            self.queues.arns[id].clone(),
            10,
        )
    }

    /// An item of a table, as JSON.
    pub async fn item(&self, table: &str, key: &str, value: &str) -> Option<Value> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(key, AttributeValue::S(value.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item.map(|i| serde_dynamo::from_item(i).unwrap())
    }

    pub fn tables(&self) -> &Tables {
        self.store.tables()
    }

    /// A function's environment variable, as template.yaml sets it.
    pub fn env(&self, function: &str, name: &str) -> String {
        self.envs[function]
            .get(name)
            .unwrap_or_else(|| panic!("template.yaml gives {function} no {name}"))
            .clone()
    }

    pub fn queue_url(&self, logical_id: &str) -> &str {
        &self.queues.urls[logical_id]
    }

    /// The relay's publisher, on the topic and dead-letter queue template.yaml names for it.
    pub fn publisher(&self) -> TopicPublisher {
        let env = &self.envs["OutboxRelayFunction"];
        orders_core::config::events_publisher(&self.sdk, &|name: &str| env.get(name).cloned())
            .expect("template.yaml gives the relay its topic and dead-letter queue")
    }

    /// The outbox stream → relay mapping, as template.yaml declares it (TRIM_HORIZON, its batch
    /// size, `eventName` filter and retry limit).
    pub async fn outbox_mapping(&self) -> StreamMapping {
        let relay = self
            .template
            .function_spec("OutboxRelayFunction")
            .expect("template.yaml has the relay");
        let Some(devkit::Trigger::Stream {
            batch_size,
            event_names,
            maximum_retry_attempts,
            ..
        }) = relay.triggers.into_iter().next()
        else {
            panic!("the relay is triggered by a stream");
        };
        let mut mapping = StreamMapping::for_table(
            &self.client,
            self.streams.clone(),
            &self.tables().outbox,
            batch_size,
        )
        .await
        .expect("the outbox table has a stream");
        mapping.event_names = event_names;
        mapping.maximum_retry_attempts = maximum_retry_attempts;
        mapping
    }

    /// The order-events queue → consumer mapping (batch 10).
    pub fn events_mapping(&self) -> SqsMapping {
        self.mapping_of("OrderEventsQueue")
    }

    /// Relays everything in the outbox stream, retrying from reported failures, until it is drained.
    pub async fn relay_all<P: Publisher>(
        &self,
        mapping: &mut StreamMapping,
        publisher: &P,
    ) -> Vec<StreamDelivery> {
        let mut deliveries = Vec::new();
        for _ in 0..1000 {
            let delivery = mapping
                .deliver_once(|event| async {
                    Ok::<_, Infallible>(
                        relay::<SharedOutbox, _>(publisher, &self.metrics, event).await,
                    )
                })
                .await
                .expect("the stream can be read");
            match delivery {
                Some(d) => deliveries.push(d),
                None => return deliveries,
            }
        }
        panic!("the outbox stream never drained");
    }

    /// Delivers the order-events queue to the consumer until it is empty.
    pub async fn consume_all<S: OrderSaga>(&self, deps: &CancelOrderDeps<S>) -> Vec<SqsDelivery> {
        let mapping = self.events_mapping();
        let mut deliveries = Vec::new();
        for _ in 0..1000 {
            let delivery = mapping
                .deliver_once(0, |event| async {
                    Ok::<_, Infallible>(consume(deps, &self.consumer, &self.metrics, event).await)
                })
                .await
                .expect("the queue can be read");
            match delivery {
                Some(d) => deliveries.push(d),
                None => return deliveries,
            }
        }
        panic!("the order-events queue never drained");
    }

    /// Takes every message off a queue (with its system attributes) and deletes it.
    pub async fn drain(&self, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(self.queue_url(queue))
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for m in &messages {
                self.sqs
                    .delete_message()
                    .queue_url(self.queue_url(queue))
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            all.extend(messages);
        }
    }

    /// Hands a batch to order-events as its main does (the template's consumer, this test's metrics).
    pub async fn deliver(&self, event: platform::consumer::SqsEvent) -> SqsBatchResponse {
        consume(&self.cancel_deps(), &self.consumer, &self.metrics, event).await
    }

    /// Messages in a queue (visible or in flight), as SQS counts them.
    pub async fn queue_depth(&self, logical_id: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.queue_url(logical_id))
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// The status of an order, read directly from the table.
    pub async fn status(&self, order_id: &str) -> String {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables().orders)
            .key("orderId", AttributeValue::S(order_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        match out.item.unwrap().get("status") {
            Some(AttributeValue::S(s)) => s.clone(),
            other => panic!("status is {other:?}"),
        }
    }

    /// The dependencies create-order's main builds, with fast retries for tests.
    pub fn create_deps(&self) -> CreateOrderDeps<DynamoStore> {
        self.create_deps_with(self.store.clone())
    }

    /// Flushes the metrics and answers every EMF line so far, each checked against the EMF rules.
    pub fn emf_lines(&self) -> Vec<Value> {
        self.metrics.flush();
        self.emf
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                devkit::emf::validate(line).unwrap_or_else(|e| panic!("invalid EMF ({e}): {line}"));
                serde_json::from_str(line).unwrap()
            })
            .collect()
    }

    /// The sum of a metric's values over every EMF line with these dimension values.
    pub fn metric_total(&self, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.emf_lines()
            .iter()
            .filter(|doc| dimensions.iter().all(|(k, v)| doc[*k] == *v))
            .map(|doc| match &doc[name] {
                Value::Number(n) => n.as_f64().unwrap(),
                Value::Array(values) => values.iter().filter_map(Value::as_f64).sum(),
                _ => 0.0,
            })
            .sum()
    }

    /// create-order's dependencies holding stock unpaid for `reservation` (not the template's).
    pub fn create_deps_reserving(
        &self,
        reservation: chrono::Duration,
    ) -> CreateOrderDeps<DynamoStore> {
        CreateOrderDeps {
            reservation,
            ..self.create_deps()
        }
    }

    pub fn create_deps_with<S>(&self, store: S) -> CreateOrderDeps<S> {
        CreateOrderDeps {
            metrics: self.metrics.clone(),
            store,
            orders_per_minute: self.settings.orders_per_minute,
            event_source: self.settings.event_source.clone(),
            reservation: self.settings.reservation,
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(5),
            },
            terms: Default::default(),
        }
    }

    pub async fn add_product(&self, id: &str, amount: i64, currency: &str, stock: i64) {
        let product = Product {
            id: ProductId::parse(id).unwrap(),
            name: ProductName::parse(&format!("Product {id}")).unwrap(),
            price: Money::new(amount, Currency::parse(currency).unwrap()).unwrap(),
            stock: Stock::new(stock).unwrap(),
            max_per_order: None,
        };
        self.store.seed_product(&product).await.unwrap();
    }

    pub async fn stock(&self, id: &str) -> i64 {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables().products)
            .key("productId", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        match out.item.unwrap().get("stock") {
            Some(AttributeValue::N(n)) => n.parse().unwrap(),
            other => panic!("stock is {other:?}"),
        }
    }

    /// How many items a table holds; for the orders table, only orders (not quota counters).
    pub async fn count(&self, table: &str) -> usize {
        let mut request = self
            .client
            .scan()
            .table_name(table)
            .select(Select::Count)
            .consistent_read(true);
        if table == self.tables().orders {
            request = request.filter_expression("attribute_exists(userId)");
        }
        request.send().await.unwrap().count as usize
    }

    pub async fn orders(&self) -> usize {
        self.count(&self.tables().orders.clone()).await
    }

    /// The ids of a user's orders in the table.
    pub async fn orders_of(&self, user: &str) -> Vec<String> {
        let filter = (
            "userId = :user",
            ":user",
            AttributeValue::S(user.to_owned()),
        );
        self.scan(&self.tables().orders, Some(filter))
            .await
            .iter()
            .filter_map(|order| order["orderId"].as_str().map(str::to_owned))
            .collect()
    }

    pub async fn events(&self) -> Vec<Value> {
        self.scan(&self.tables().outbox, None).await
    }

    /// A table's items (a consistent scan, one page), as JSON: those matching `filter` (an
    /// expression, its one placeholder and that placeholder's value) if given.
    async fn scan(&self, table: &str, filter: Option<(&str, &str, AttributeValue)>) -> Vec<Value> {
        let mut request = self.client.scan().table_name(table).consistent_read(true);
        if let Some((expression, placeholder, value)) = filter {
            request = request
                .filter_expression(expression)
                .expression_attribute_values(placeholder, value);
        }
        request
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).unwrap())
            .collect()
    }
}

/// What [`TestApp::settle`] delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    pub delivered: usize,
    pub failed: usize,
}

/// A random hex string (test-private names and tokens).
pub fn uuid_like() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// An API Gateway HTTP API event from `events/`, changed the way a test needs.
#[derive(Clone)]
pub struct ApiEvent(Value);

impl ApiEvent {
    pub fn load(file: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(serde_json::from_str(&text).unwrap())
    }

    pub fn body(mut self, body: Value) -> Self {
        self.0["body"] = Value::String(body.to_string());
        self
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.0["body"] = Value::String(body.to_owned());
        self
    }

    /// The body is base64 of the request's bytes, as API Gateway sends a binary body.
    pub fn base64_encoded(mut self) -> Self {
        self.0["isBase64Encoded"] = Value::Bool(true);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0["headers"][name] = Value::String(value.to_owned());
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        if let Some(headers) = self.0["headers"].as_object_mut() {
            headers.remove(name);
        }
        self
    }

    /// The authorizer vouches for `sub` with these scopes (in `scopes` and the `scope` claim).
    pub fn user(mut self, sub: &str, scopes: &[&str]) -> Self {
        self.0["requestContext"]["authorizer"] = json!({"jwt": {
            "claims": {"sub": sub, "scope": scopes.join(" "), "iss": "https://auth.orders.local", "aud": "orders-api"},
            "scopes": scopes,
        }});
        self
    }

    /// The scopes only in the token's `scope` claim, as when the route declares no scopes.
    pub fn scope_claim_only(mut self, sub: &str, scope: &str) -> Self {
        self.0["requestContext"]["authorizer"] =
            json!({"jwt": {"claims": {"sub": sub, "scope": scope}}});
        self
    }

    /// No authorizer context at all (a misconfigured route, or a direct invoke).
    pub fn anonymous(mut self) -> Self {
        if let Some(ctx) = self.0["requestContext"].as_object_mut() {
            ctx.remove("authorizer");
        }
        self
    }

    pub fn path_param(mut self, name: &str, value: &str) -> Self {
        self.0["pathParameters"][name] = Value::String(value.to_owned());
        self
    }

    /// Sets a query parameter in both forms API Gateway sends (lambda_http reads `rawQueryString`).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.0["queryStringParameters"][name] = Value::String(value.to_owned());
        let mut raw = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0["queryStringParameters"]
            .as_object()
            .into_iter()
            .flatten()
        {
            raw.append_pair(k, v.as_str().unwrap_or_default());
        }
        let raw = raw.finish();
        self.0["rawQueryString"] = Value::String(raw);
        self
    }

    /// The request as Lambda hands it over with `time_left` until the invocation's deadline.
    pub fn request_within(self, time_left: std::time::Duration) -> Request {
        use lambda_http::RequestExt;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let mut context = lambda_http::Context::default();
        context.request_id = "lambda-request-1".to_owned();
        context.deadline = u64::try_from((now + time_left).as_millis()).unwrap();
        self.request().with_lambda_context(context)
    }

    pub fn request(self) -> Request {
        lambda_http::request::from_str(&self.0.to_string()).expect("a valid API Gateway v2 event")
    }

    /// The request as the runtime hands it over inside an invocation traced by X-Ray.
    pub fn traced_request(self, xray_trace_header: &str) -> Request {
        use lambda_http::RequestExt;
        let mut context = lambda_http::lambda_runtime::Context::default();
        context.xray_trace_id = Some(xray_trace_header.to_owned());
        self.request().with_lambda_context(context)
    }
}

/// A response, read the way a client reads it.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn from(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes: &[u8] = body.as_ref();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).expect("every response body is JSON")
        };
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem of this status and kind, and answers its body.
    #[track_caller]
    pub fn problem(&self, status: u16, slug: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(
            self.body["type"],
            format!("urn:orders:problem:{slug}"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        for member in ["title", "detail", "instance"] {
            assert!(
                self.body[member].is_string(),
                "problem lacks {member}: {}",
                self.body
            );
        }
        &self.body
    }
}

/// Runs one route's handler the way its function's main does, and reads the answer.
async fn answer<F, Fut>(operation: &'static str, event: ApiEvent, handler: F) -> Answer
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, platform::http::Problem>>,
{
    answer_to(operation, event.request(), handler).await
}

async fn answer_to<F, Fut>(operation: &'static str, request: Request, handler: F) -> Answer
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, platform::http::Problem>>,
{
    Answer::from(http::serve(operation, request, handler).await.unwrap())
}

pub async fn create(deps: &CreateOrderDeps<impl OrderWriter>, event: ApiEvent) -> Answer {
    answer("create-order", event, |req| http::orders::create(deps, req)).await
}

/// Sends a request the way a good client does under load: a 503 (the store was busy or slow, the
/// request may or may not have taken effect) is sent again, the same request with the same
/// `Idempotency-Key`, after its `Retry-After`. The answer is the first that is not a 503.
pub async fn until_answered<F, Fut>(mut send: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    for _ in 0..10 {
        let answer = send().await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            return answer;
        }
        let wait: u64 = answer
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .expect("a 503 says when to retry");
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    panic!("still 503 after 10 attempts")
}

/// POST /orders handed over by Lambda with `time_left` until the invocation's deadline.
pub async fn create_within(
    deps: &CreateOrderDeps<impl OrderWriter>,
    event: ApiEvent,
    time_left: std::time::Duration,
) -> Answer {
    answer_to("create-order", event.request_within(time_left), |req| {
        http::orders::create(deps, req)
    })
    .await
}

pub async fn get_order(app: &TestApp, event: ApiEvent) -> Answer {
    answer("get-order", event, |req| http::orders::get(&app.store, req)).await
}

pub async fn list_orders(app: &TestApp, event: ApiEvent) -> Answer {
    answer("list-orders", event, |req| {
        http::orders::list(&app.store, req)
    })
    .await
}

pub async fn cancel(
    deps: &orders_core::service::CancelOrderDeps<DynamoStore>,
    event: ApiEvent,
) -> Answer {
    answer("cancel-order", event, |req| http::orders::cancel(deps, req)).await
}

pub async fn get_product(app: &TestApp, event: ApiEvent) -> Answer {
    answer("get-product", event, |req| {
        http::products::get(&app.store, req)
    })
    .await
}

/// adjust-stock's dependencies, as its main builds them (fast retries).
pub fn adjust_deps(app: &TestApp) -> orders_core::service::AdjustStockDeps<DynamoStore> {
    orders_core::service::AdjustStockDeps {
        store: app.store.clone(),
        retry: RetryPolicy {
            max_attempts: 8,
            base_delay: std::time::Duration::from_millis(2),
            max_delay: std::time::Duration::from_millis(20),
        },
    }
}

/// A stock adjustment of `delta` by an admin, with this idempotency key (if any).
pub fn adjustment(product: &str, delta: i64, key: Option<&str>) -> ApiEvent {
    let event = ApiEvent::load("adjust-stock.json")
        .path_param("productId", product)
        .body(json!({"delta": delta, "reason": "stock count"}))
        .without_header("idempotency-key");
    match key {
        Some(key) => event.header("idempotency-key", key),
        None => event,
    }
}

pub async fn adjust_stock(
    deps: &orders_core::service::AdjustStockDeps<DynamoStore>,
    event: ApiEvent,
) -> Answer {
    answer("adjust-stock", event, |req| {
        http::products::adjust(deps, req)
    })
    .await
}

pub async fn put_product(app: &TestApp, event: ApiEvent) -> Answer {
    answer("put-product", event, |req| {
        http::products::put(&app.store, req)
    })
    .await
}

/// A create-order event from `sub` with orders scopes and this body.
pub fn order_by(sub: &str, body: Value) -> ApiEvent {
    ApiEvent::load("create-order.json")
        .user(sub, &["orders:write", "orders:read"])
        .body(body)
}

/// An order body of these lines, paid with the provider's test card that authorizes.
pub fn lines(items: &[(&str, u32)]) -> Value {
    paid_with(items, "tok_visa")
}

/// An order body of these lines, paid with this payment method (a test token of the emulator:
/// `tok_chargeDeclined`, `tok_500`, `tok_429|tok_visa`, …).
pub fn paid_with(items: &[(&str, u32)], payment_method: &str) -> Value {
    json!({
        "items": items.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect::<Vec<_>>(),
        "paymentMethod": payment_method,
    })
}
