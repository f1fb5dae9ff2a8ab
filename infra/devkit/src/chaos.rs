//! Faults that AWS and a payment provider produce and the emulators never do, injected on the wire:
//! an HTTP proxy in front of each emulator, which the functions reach through the usual
//! `AWS_ENDPOINT_URL_*` variables (and the payment API's base URL), so the code under test is the
//! production code, SDK retries included. Rules are switched at run time — per service, operation
//! and probability — through [`Chaos::set`] or the JSON control endpoint ([`serve_control`]).
//!
//! A request no rule picks is forwarded as it is. The faults are answered in each service's own
//! wire format (DynamoDB's and SQS's JSON errors, SNS's XML, Stripe's JSON), so each SDK and the
//! payment adapter classify them as they would on AWS.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::journal::{Exchange, Journal};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a proxy stands in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// DynamoDB and DynamoDB Streams (one emulator answers both).
    Dynamodb,
    Sqs,
    Sns,
    SecretsManager,
    /// The payment provider (Stripe's API).
    Payments,
    /// The local Lambda layer: an operation is a function (its binary's name, `create-order`).
    Lambda,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Self::Dynamodb,
        Self::Sqs,
        Self::Sns,
        Self::SecretsManager,
        Self::Payments,
        Self::Lambda,
    ];

    /// As the switches name it (`dynamodb`, `secrets-manager`), in JSON as on the page.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dynamodb => "dynamodb",
            Self::Sqs => "sqs",
            Self::Sns => "sns",
            Self::SecretsManager => "secrets-manager",
            Self::Payments => "payments",
            Self::Lambda => "lambda",
        }
    }
}

/// One fault, as the service would produce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// DynamoDB: a transaction cancelled for a conflict with another (`TransactionCanceledException`
    /// with one `TransactionConflict` reason); any other operation gets
    /// `TransactionConflictException`. The SDK does not retry either.
    TransactionConflict,
    /// DynamoDB: `ProvisionedThroughputExceededException` (the SDK retries it).
    ProvisionedThroughputExceeded,
    /// Throttled: `ThrottlingException` (DynamoDB, SQS, Secrets Manager), `Throttling` (SNS), a 429
    /// `rate_limit` error (the payment provider).
    Throttling,
    /// A 500 (`InternalServerError`; the payment provider's `api_error`).
    ServerError,
    /// The request waits this long before it is forwarded.
    Latency { ms: u64 },
    /// The request is forwarded and applied, then the connection is closed without an answer: the
    /// write happened, the client never heard.
    DropAfterApply,
    /// The request is never forwarded nor answered: the client's own timeout ends it.
    Hang,
    /// Lambda: the function's runtime is killed (SIGKILL) within `within_ms` of the invocation's
    /// start; the emulator answers `Runtime.ExitError` and starts a new runtime at the next one.
    KillRuntime {
        #[serde(rename = "withinMs")]
        within_ms: u64,
    },
    /// Lambda: a stream or queue batch that succeeded is handed to the function once more, as
    /// at-least-once delivery may.
    DuplicateDelivery,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::TransactionConflict => "transaction-conflict",
            Fault::ProvisionedThroughputExceeded => "provisioned-throughput-exceeded",
            Fault::Throttling => "throttling",
            Fault::ServerError => "server-error",
            Fault::Latency { .. } => "latency",
            Fault::DropAfterApply => "drop-after-apply",
            Fault::Hang => "hang",
            Fault::KillRuntime { .. } => "kill-runtime",
            Fault::DuplicateDelivery => "duplicate-delivery",
        }
    }

    /// Whether the service can produce this fault at all.
    fn fits(&self, service: Service) -> bool {
        match self {
            Fault::TransactionConflict | Fault::ProvisionedThroughputExceeded => {
                service == Service::Dynamodb
            }
            Fault::KillRuntime { .. } | Fault::DuplicateDelivery => service == Service::Lambda,
            _ => service != Service::Lambda,
        }
    }
}

/// A switch: requests of `service` (and `operation`, or any) meet `fault` with `probability`,
/// at most `limit` times if given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub service: Service,
    /// `TransactWriteItems`, `SendMessageBatch`, `Publish`, `POST /v1/charges/{id}/capture`…;
    /// `*` or absent for every operation.
    #[serde(default = "any_operation")]
    pub operation: String,
    pub fault: Fault,
    /// From 0 to 1.
    pub probability: f64,
    /// Fires at most this many times (then the rule stays, spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

impl Rule {
    /// A rule with no limit.
    pub fn new(service: Service, operation: &str, fault: Fault, probability: f64) -> Self {
        Self {
            service,
            operation: operation.to_owned(),
            fault,
            probability,
            limit: None,
        }
    }
}

fn any_operation() -> String {
    "*".to_owned()
}

/// A rule that cannot be switched on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    #[error("rule {index}: the probability must be from 0 to 1, not {probability}")]
    Probability { index: usize, probability: f64 },
    #[error("rule {index}: {service:?} cannot produce the fault {fault}")]
    Unfit {
        index: usize,
        service: Service,
        fault: &'static str,
    },
}

/// How many times a fault fired, by service, operation and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fired {
    pub service: Service,
    pub operation: String,
    pub fault: String,
    pub count: u64,
}

#[derive(Debug)]
struct Switch {
    rule: Rule,
    fired: u64,
}

/// The switches every proxy of one app reads, and what fired.
#[derive(Debug, Default)]
pub struct Chaos {
    switches: RwLock<Vec<Mutex<Switch>>>,
    fired: Mutex<BTreeMap<(Service, String, &'static str), u64>>,
}

impl Chaos {
    /// Replaces every rule (none: every request passes).
    pub fn set(&self, rules: Vec<Rule>) -> Result<(), RuleError> {
        for (index, rule) in rules.iter().enumerate() {
            if !(0.0..=1.0).contains(&rule.probability) {
                return Err(RuleError::Probability {
                    index,
                    probability: rule.probability,
                });
            }
            if !rule.fault.fits(rule.service) {
                return Err(RuleError::Unfit {
                    index,
                    service: rule.service,
                    fault: rule.fault.name(),
                });
            }
        }
        let switches = rules
            .into_iter()
            .map(|rule| Mutex::new(Switch { rule, fired: 0 }))
            .collect();
        *self.switches.write().unwrap_or_else(|e| e.into_inner()) = switches;
        Ok(())
    }

    pub fn rules(&self) -> Vec<Rule> {
        let switches = self.switches.read().unwrap_or_else(|e| e.into_inner());
        switches
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).rule.clone())
            .collect()
    }

    /// Every fault that fired since the app started.
    pub fn fired(&self) -> Vec<Fired> {
        let fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        fired
            .iter()
            .map(|((service, operation, fault), count)| Fired {
                service: *service,
                operation: operation.clone(),
                fault: (*fault).to_owned(),
                count: *count,
            })
            .collect()
    }

    /// The fault this request (or invocation) meets, if any: the first rule that matches and fires.
    pub fn pick(&self, service: Service, operation: &str) -> Option<Fault> {
        let switches = self.switches.read().unwrap_or_else(|e| e.into_inner());
        for switch in switches.iter() {
            let mut switch = switch.lock().unwrap_or_else(|e| e.into_inner());
            let rule = &switch.rule;
            let matches = rule.service == service
                && (rule.operation == "*" || rule.operation == operation)
                && rule.limit.is_none_or(|limit| switch.fired < limit);
            if matches && fastrand::f64() < rule.probability {
                switch.fired += 1;
                let fault = switch.rule.fault.clone();
                *self
                    .fired
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((service, operation.to_owned(), fault.name()))
                    .or_default() += 1;
                return Some(fault);
            }
        }
        None
    }
}

/// The operation a request asks for, in the service's own terms.
pub fn operation(service: Service, request: &Request<()>, body: &[u8]) -> String {
    if service == Service::Payments {
        return payments_operation(request.method().as_str(), request.uri().path());
    }
    // JSON protocols (DynamoDB, DynamoDB Streams, SQS, Secrets Manager): `X-Amz-Target: Prefix.Operation`.
    if let Some(target) = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    // Query protocol (SNS): `Action=Publish&…` in the form body.
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `POST /v1/charges/{id}/capture`: the method and path, ids replaced by `{id}`, no query.
fn payments_operation(method: &str, path: &str) -> String {
    let path = path
        .split('/')
        .map(|segment| {
            let is_id = segment
                .split_once('_')
                .is_some_and(|(prefix, rest)| !prefix.is_empty() && !rest.is_empty());
            if is_id { "{id}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/");
    format!("{method} {path}")
}

/// The answer `fault` gets from `service`, or `None` for the faults that are not an answer.
fn answer(
    service: Service,
    operation: &str,
    fault: &Fault,
    body: &[u8],
) -> Option<Response<Full<Bytes>>> {
    let amz_json = |status: StatusCode, kind: &str, message: &str, extra: serde_json::Value| {
        let mut error = json!({"__type": kind, "message": message});
        if let (Some(error), Some(extra)) = (error.as_object_mut(), extra.as_object()) {
            error.extend(extra.clone());
        }
        let content_type = match service {
            Service::Dynamodb => "application/x-amz-json-1.0",
            _ => "application/x-amz-json-1.1",
        };
        respond(status, content_type, error.to_string())
    };
    let sns_xml = |status: StatusCode, kind: &str, code: &str, message: &str| {
        respond(
            status,
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{kind}</Type>\
                 <Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>{}</RequestId></ErrorResponse>",
                uuid::Uuid::new_v4()
            ),
        )
    };
    let stripe = |status: StatusCode, kind: &str, message: &str| {
        respond(
            status,
            "application/json",
            json!({"error": {"type": kind, "message": message}}).to_string(),
        )
    };
    Some(match (fault, service) {
        (Fault::TransactionConflict, _) if operation == "TransactWriteItems" => {
            // One reason per action, in request order; one of them the conflict.
            let actions = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|b| b["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1)
                .max(1);
            let conflicted = fastrand::usize(..actions);
            let reasons: Vec<_> = (0..actions)
                .map(|i| {
                    if i == conflicted {
                        json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
                    } else {
                        json!({"Code": "None"})
                    }
                })
                .collect();
            amz_json(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                json!({"CancellationReasons": reasons}),
            )
        }
        (Fault::TransactionConflict, _) => amz_json(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
            "Transaction is ongoing for the item",
            json!({}),
        ),
        (Fault::ProvisionedThroughputExceeded, _) => amz_json(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
            json!({}),
        ),
        (Fault::Throttling, Service::Sns) => sns_xml(
            StatusCode::BAD_REQUEST,
            "Sender",
            "Throttling",
            "Rate exceeded",
        ),
        (Fault::Throttling, Service::Payments) => stripe(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Too many requests hit the API too quickly.",
        ),
        (Fault::Throttling, Service::Dynamodb) => amz_json(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
            json!({}),
        ),
        (Fault::Throttling, _) => amz_json(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
            json!({}),
        ),
        (Fault::ServerError, Service::Sns) => sns_xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            "InternalError",
            "An internal error occurred.",
        ),
        (Fault::ServerError, Service::Payments) => stripe(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred.",
        ),
        (Fault::ServerError, _) => amz_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal server error",
            json!({}),
        ),
        (
            Fault::Latency { .. }
            | Fault::DropAfterApply
            | Fault::Hang
            | Fault::KillRuntime { .. }
            | Fault::DuplicateDelivery,
            _,
        ) => return None,
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("x-amzn-requestid", HeaderValue::from_static("chaos"));
    response
}

/// Why a request got no answer (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum Dropped {
    #[error("dropped after the request was applied")]
    AfterApply,
    #[error("never forwarded nor answered")]
    Hung,
    #[error("the upstream emulator did not answer: {0}")]
    Upstream(String),
    #[error("the request could not be read: {0}")]
    Request(String),
}

/// A proxy in front of one emulator.
pub struct FaultProxy {
    service: Service,
    upstream: String,
    chaos: Arc<Chaos>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Where each request and its answer are kept for the console, when there is one.
    journal: Option<Arc<Journal>>,
}

impl FaultProxy {
    /// A proxy for `service` forwarding to `upstream` (`http://127.0.0.1:8000`).
    pub fn new(service: Service, upstream: &str, chaos: Arc<Chaos>) -> Arc<Self> {
        Self::recorded(service, upstream, chaos, None)
    }

    /// The same, keeping every request it passes (and its answer) in `journal`.
    pub fn recorded(
        service: Service,
        upstream: &str,
        chaos: Arc<Chaos>,
        journal: Option<Arc<Journal>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            service,
            upstream: upstream.trim_end_matches('/').to_owned(),
            chaos,
            client: Client::builder(TokioExecutor::new()).build_http(),
            journal,
        })
    }

    async fn handle(
        &self,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Dropped::Request(e.to_string()))?
            .to_bytes();
        let head = Request::from_parts(parts, ());
        let operation = operation(self.service, &head, &body);
        let fault = self.chaos.pick(self.service, &operation);
        let Some(journal) = &self.journal else {
            return self.pass(head, body, &operation, fault).await;
        };
        let trace = head
            .headers()
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (started, clock) = (chrono::Utc::now(), std::time::Instant::now());
        let request = Exchange::body(&body);
        let fired = fault.as_ref().map(|f| f.name().to_owned());
        let result = self.pass(head, body, &operation, fault).await;
        let (result, answer, response) = match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let (status, kept) = (parts.status.as_u16(), Exchange::body(&bytes));
                (
                    Ok(Response::from_parts(parts, Full::new(bytes))),
                    Ok(status),
                    kept,
                )
            }
            Err(dropped) => {
                let why = dropped.to_string();
                (Err(dropped), Err(why), String::new())
            }
        };
        journal.exchange(Exchange {
            seq: 0,
            service: self.service.name().to_owned(),
            operation,
            trace,
            started,
            ms: clock.elapsed().as_secs_f64() * 1000.0,
            answer,
            fault: fired,
            request,
            response,
        });
        result
    }

    /// The request to the emulator, or the fault instead.
    async fn pass(
        &self,
        head: Request<()>,
        body: Bytes,
        operation: &str,
        fault: Option<Fault>,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        match &fault {
            Some(Fault::Latency { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Some(Fault::Hang) => {
                // Long past any client's timeout; the client closes the connection first.
                tokio::time::sleep(Duration::from_secs(900)).await;
                return Err(Dropped::Hung);
            }
            Some(fault) => {
                if let Some(response) = answer(self.service, operation, fault, &body) {
                    return Ok(response);
                }
            }
            None => {}
        }
        let response = self.forward(head, body).await?;
        if fault == Some(Fault::DropAfterApply) {
            return Err(Dropped::AfterApply);
        }
        Ok(response)
    }

    async fn forward(
        &self,
        head: Request<()>,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        let (mut parts, ()) = head.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = format!("{}{path}", self.upstream)
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| Dropped::Upstream(e.to_string()))?;
        // Headers stay the client's, Host included (SigV4 signed it; the emulators do not check).
        let response = self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| Dropped::Upstream(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Dropped::Upstream(e.to_string()))?
            .to_bytes();
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

/// The variables that point the functions at an emulator, and the service behind each.
pub const PROXIED: [(&str, Service); 5] = [
    ("AWS_ENDPOINT_URL_DYNAMODB", Service::Dynamodb),
    ("AWS_ENDPOINT_URL_SQS", Service::Sqs),
    ("AWS_ENDPOINT_URL_SNS", Service::Sns),
    ("AWS_ENDPOINT_URL_SECRETS_MANAGER", Service::SecretsManager),
    ("PAYMENT_API_BASE", Service::Payments),
];

/// A fault proxy in front of every emulator the functions reach, sharing one set of switches.
/// Dropped, the proxies stop.
pub struct Proxies {
    pub chaos: Arc<Chaos>,
    /// The functions' variables, pointing at the proxies instead of the emulators.
    pub endpoints: BTreeMap<String, String>,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Proxies {
    /// Starts a proxy for each of [`PROXIED`] that `env` points at a plain-HTTP emulator, each
    /// keeping what it passes in `journal` when one is given.
    pub async fn start(
        env: &BTreeMap<String, String>,
        journal: Option<Arc<Journal>>,
    ) -> std::io::Result<Self> {
        let chaos = Arc::new(Chaos::default());
        let mut endpoints = BTreeMap::new();
        let mut stops = Vec::new();
        for (var, service) in PROXIED {
            let Some(upstream) = env.get(var).filter(|u| u.starts_with("http://")) else {
                continue;
            };
            let proxy = FaultProxy::recorded(service, upstream, chaos.clone(), journal.clone());
            let (url, stop) = serve_proxy(proxy).await?;
            endpoints.insert(var.to_owned(), url);
            stops.push(stop);
        }
        Ok(Self {
            chaos,
            endpoints,
            _stops: stops,
        })
    }
}

/// Serves a proxy on a free loopback port until the returned sender is sent to or dropped;
/// answers its base URL.
pub async fn serve_proxy(
    proxy: Arc<FaultProxy>,
) -> std::io::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    serve_listener(listener, move |request| {
        let proxy = proxy.clone();
        async move { proxy.handle(request).await }
    })
}

/// The control endpoint: `GET /chaos` answers the rules and what fired, `PUT /chaos` with
/// `{"rules": [...]}` replaces the rules (a 400 problem names a rule that cannot be), `DELETE
/// /chaos` switches every fault off.
pub async fn serve_control(
    chaos: Arc<Chaos>,
    port: u16,
) -> std::io::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    serve_listener(listener, move |request| {
        let chaos = chaos.clone();
        async move { Ok::<_, Infallible>(control(&chaos, request).await) }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    rules: Vec<Rule>,
}

async fn control(chaos: &Chaos, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let state = |chaos: &Chaos| {
        respond(
            StatusCode::OK,
            "application/json",
            json!({"rules": chaos.rules(), "fired": chaos.fired()}).to_string(),
        )
    };
    let problem = |status: StatusCode, detail: String| {
        respond(
            status,
            "application/problem+json",
            json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail})
                .to_string(),
        )
    };
    if request.uri().path() != "/chaos" {
        return problem(
            StatusCode::NOT_FOUND,
            "the control endpoint is /chaos".into(),
        );
    }
    match request.method().as_str() {
        "GET" => state(chaos),
        "DELETE" => {
            let _ = chaos.set(Vec::new());
            state(chaos)
        }
        "PUT" => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
            };
            let rules = match serde_json::from_slice::<RulesBody>(&body) {
                Ok(body) => body.rules,
                Err(e) => return problem(StatusCode::BAD_REQUEST, format!("not a rule list: {e}")),
            };
            match chaos.set(rules) {
                Ok(()) => state(chaos),
                Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        _ => problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET, PUT or DELETE /chaos".into(),
        ),
    }
}

/// Serves `handler` on `listener` (HTTP/1.1, keep-alive) until the sender is sent to or dropped.
/// A handler's error closes the connection without an answer.
fn serve_listener<F, Fut, E>(
    listener: tokio::net::TcpListener,
    handler: F,
) -> std::io::Result<(String, tokio::sync::oneshot::Sender<()>)>
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(handler);
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok((url, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: Option<&str>) -> Request<()> {
        let mut request = Request::post("/").body(()).unwrap();
        if let Some(target) = target {
            request
                .headers_mut()
                .insert("x-amz-target", HeaderValue::from_str(target).unwrap());
        }
        request
    }

    #[test]
    fn a_service_is_named_as_its_rules_name_it() {
        for service in Service::ALL {
            assert_eq!(serde_json::to_value(service).unwrap(), service.name());
        }
    }

    #[test]
    fn operations_are_named_as_each_service_names_them() {
        assert_eq!(
            operation(
                Service::Dynamodb,
                &head(Some("DynamoDB_20120810.TransactWriteItems")),
                b""
            ),
            "TransactWriteItems"
        );
        assert_eq!(
            operation(Service::Sqs, &head(Some("AmazonSQS.SendMessageBatch")), b""),
            "SendMessageBatch"
        );
        assert_eq!(
            operation(
                Service::Sns,
                &head(None),
                b"Action=PublishBatch&TopicArn=arn%3Aaws"
            ),
            "PublishBatch"
        );
        let capture = Request::post("/v1/charges/ch_1AbC/capture?expand=x")
            .body(())
            .unwrap();
        assert_eq!(
            operation(Service::Payments, &capture, b""),
            "POST /v1/charges/{id}/capture"
        );
    }

    #[test]
    fn rules_fire_by_service_operation_and_limit() {
        let chaos = Chaos::default();
        chaos
            .set(vec![
                Rule {
                    limit: Some(2),
                    ..Rule::new(
                        Service::Dynamodb,
                        "TransactWriteItems",
                        Fault::TransactionConflict,
                        1.0,
                    )
                },
                Rule::new(Service::Payments, "*", Fault::Throttling, 0.0),
            ])
            .unwrap();
        assert_eq!(chaos.pick(Service::Dynamodb, "GetItem"), None);
        assert_eq!(chaos.pick(Service::Sqs, "TransactWriteItems"), None);
        assert_eq!(
            chaos.pick(Service::Payments, "POST /v1/charges"),
            None,
            "probability 0"
        );
        for _ in 0..2 {
            assert_eq!(
                chaos.pick(Service::Dynamodb, "TransactWriteItems"),
                Some(Fault::TransactionConflict)
            );
        }
        assert_eq!(
            chaos.pick(Service::Dynamodb, "TransactWriteItems"),
            None,
            "spent"
        );
        assert_eq!(
            chaos.fired(),
            [Fired {
                service: Service::Dynamodb,
                operation: "TransactWriteItems".into(),
                fault: "transaction-conflict".into(),
                count: 2
            }]
        );
    }

    #[test]
    fn a_rule_a_service_cannot_produce_is_refused() {
        let chaos = Chaos::default();
        assert!(matches!(
            chaos.set(vec![Rule::new(
                Service::Sqs,
                "*",
                Fault::TransactionConflict,
                1.0
            )]),
            Err(RuleError::Unfit { index: 0, .. })
        ));
        assert!(matches!(
            chaos.set(vec![Rule::new(Service::Sqs, "*", Fault::ServerError, 1.5)]),
            Err(RuleError::Probability { index: 0, .. })
        ));
        // Process and delivery faults are the Lambda layer's, and only its.
        for (service, fault) in [
            (Service::Dynamodb, Fault::KillRuntime { within_ms: 10 }),
            (Service::Sqs, Fault::DuplicateDelivery),
            (Service::Lambda, Fault::ServerError),
        ] {
            assert!(matches!(
                chaos.set(vec![Rule::new(service, "*", fault, 0.5)]),
                Err(RuleError::Unfit { index: 0, .. })
            ));
        }
        assert_eq!(
            chaos.set(vec![
                Rule::new(
                    Service::Lambda,
                    "outbox-relay",
                    Fault::DuplicateDelivery,
                    0.5
                ),
                Rule::new(
                    Service::Lambda,
                    "create-order",
                    Fault::KillRuntime { within_ms: 40 },
                    0.1
                ),
            ]),
            Ok(())
        );
        let json = r#"{"service": "lambda", "operation": "order-events", "fault": {"kind": "kill-runtime", "withinMs": 100}, "probability": 0.1}"#;
        assert_eq!(
            serde_json::from_str::<Rule>(json).unwrap().fault,
            Fault::KillRuntime { within_ms: 100 }
        );
        let json = r#"{"service": "dynamodb", "fault": {"kind": "latency", "ms": 50}, "probability": 0.1}"#;
        let parsed: Rule = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.operation, "*");
        assert_eq!(parsed.fault, Fault::Latency { ms: 50 });
    }

    #[test]
    fn a_cancelled_transaction_names_one_conflict_among_its_actions() {
        let body = br#"{"TransactItems": [{"Put": {}}, {"Update": {}}, {"Update": {}}]}"#;
        let response = answer(
            Service::Dynamodb,
            "TransactWriteItems",
            &Fault::TransactionConflict,
            body,
        )
        .unwrap();
        assert_eq!(response.status(), 400);
        let bytes = futures_body(response);
        let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            error["__type"]
                .as_str()
                .unwrap()
                .ends_with("#TransactionCanceledException")
        );
        let codes: Vec<_> = error["CancellationReasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Code"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 3);
        assert_eq!(
            codes.iter().filter(|c| *c == "TransactionConflict").count(),
            1
        );
        assert_eq!(codes.iter().filter(|c| *c == "None").count(), 2);
    }

    fn futures_body(response: Response<Full<Bytes>>) -> Bytes {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async { response.into_body().collect().await.unwrap().to_bytes() })
    }
}
