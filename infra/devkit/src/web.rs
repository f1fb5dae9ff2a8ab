//! The local console `make dev` serves on its own port (127.0.0.1 only): an order's timeline across
//! every function, the invocations with their real figures and log lines, the queues and their
//! dead letters (with a redrive), replay of any recorded event, the fault switches, and the tables.
//! Plain server-rendered HTML (maud escapes every value it is given); a page that changes while
//! you watch reloads its main part when the journal says something happened (server-sent events).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::Stream;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;

use crate::chaos::{Fault, Rule, Service};
use crate::dev::LocalApp;
use crate::journal::{Call, Exchange, Hop, Trigger};

/// What the pages read and act on.
pub struct Web {
    pub app: Arc<LocalApp>,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
}

type Shared = State<Arc<Web>>;

/// The console's routes.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/orders", get(find_order))
        .route("/orders/{id}", get(timeline))
        .route("/orders/{id}/hops", get(timeline_hops))
        .route("/invocations", get(invocations))
        .route("/invocations/rows", get(invocation_rows))
        .route("/invocations/{request_id}", get(invocation))
        .route("/replay", post(replay))
        .route("/queues", get(queues))
        .route("/queues/table", get(queues_table))
        .route("/queues/{queue}/redrive", post(redrive))
        .route("/chaos", get(chaos))
        .route("/chaos/state", get(chaos_state))
        .route("/chaos/rules", post(add_rule))
        .route("/chaos/off", post(chaos_off))
        .route("/tables", get(tables))
        .route("/tables/{table}", get(table))
        .route("/live", get(changes))
        .with_state(web)
}

/// Serves the console on 127.0.0.1:`port` (0: any free port) until `stop` resolves; answers its URL.
pub async fn serve(
    web: Arc<Web>,
    port: u16,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router(web))
            .with_graceful_shutdown(stop)
            .await;
    });
    Ok((url, task))
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f7f8fa}
nav{background:#232f3e;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
nav a{color:#fff;text-decoration:none;font-weight:600}nav form{margin-left:auto}
main{padding:1em 1.4em}table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e6ea;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eef1f4}code,pre{font:12px/1.4 ui-monospace,monospace}
pre{background:#fff;border:1px solid #e3e6ea;padding:.6em;overflow:auto;max-height:24em;white-space:pre-wrap}
.hop{background:#fff;border:1px solid #dde1e6;border-left:4px solid #3b82f6;margin:.5em 0;padding:.5em .8em}
.hop.error{border-left-color:#d97706}.hop.failed{border-left-color:#dc2626}
.exchange{margin:.15em 0 .15em 1em}.exchange.error code{color:#b45309}
.muted{color:#66707a}.error{color:#b45309}.failed{color:#dc2626}
textarea{width:100%;font:12px ui-monospace,monospace}
";

/// Reloads each `data-live` element from its URL whenever the journal changes (at most about 3
/// times a second); forms stay outside them, so nothing typed is lost.
const LIVE: &str = "
const live = document.querySelectorAll('[data-live]');
if (live.length) {
  let queued = false;
  const refresh = async () => {
    queued = false;
    for (const el of live) {
      const r = await fetch(el.dataset.live);
      if (r.ok) { el.innerHTML = await r.text(); }
    }
  };
  new EventSource('/live').onmessage = () => {
    if (!queued) { queued = true; setTimeout(refresh, 300); }
  };
}
";

/// A part of a page that follows the app: reloaded from `url` (which answers just this part).
fn live(url: &str, body: Markup) -> Markup {
    html! { div data-live=(url) { (body) } }
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · orders console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/" { "orders console" }
                    a href="/invocations" { "Invocations" }
                    a href="/queues" { "Queues" }
                    a href="/chaos" { "Chaos" }
                    a href="/tables" { "Tables" }
                    form action="/orders" method="get" {
                        input name="id" placeholder="order id" size="38";
                        " "
                        button { "Timeline" }
                    }
                }
                main { (body) }
                script { (PreEscaped(LIVE)) }
            }
        }
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = page(
        "Problem",
        html! { h1 { (status.canonical_reason().unwrap_or("Problem")) } p { (detail) } },
    );
    (status, body).into_response()
}

/// The order ids an HTTP call answered with (`orderId` in its JSON body).
fn answered_order(call: &Call) -> Option<String> {
    let answer: Value = serde_json::from_str(call.answer.as_ref().ok()?).ok()?;
    let body: Value = serde_json::from_str(answer["body"].as_str()?).ok()?;
    body["orderId"].as_str().map(str::to_owned)
}

fn describe(call: &Call) -> String {
    match call.trigger() {
        Trigger::Http { method, path } => match call.http_status() {
            Some(status) => format!("{method} {path} → {status}"),
            None => format!("{method} {path}"),
        },
        Trigger::Stream { records } => format!("stream batch of {records} record(s)"),
        Trigger::Queue { messages } => {
            let types = queue_event_types(call);
            format!("queue batch of {messages} message(s) {}", types.join(", "))
        }
        Trigger::Schedule => "scheduled run".to_owned(),
        Trigger::Other => "direct invocation".to_owned(),
    }
}

/// The CloudEvent types a queue batch carried (`order.created`), read from the SNS envelope or the
/// message itself.
fn queue_event_types(call: &Call) -> Vec<String> {
    let Ok(event) = serde_json::from_str::<Value>(&call.event) else {
        return Vec::new();
    };
    event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|record| {
            let body: Value = serde_json::from_str(record["body"].as_str()?).ok()?;
            let inner = match body["Message"].as_str() {
                Some(message) => serde_json::from_str(message).ok()?,
                None => body,
            };
            inner["type"].as_str().map(str::to_owned)
        })
        .collect()
}

fn pretty(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_owned())
}

async fn index(State(web): Shared) -> Markup {
    let recent: Vec<(Call, Option<String>)> = web
        .app
        .console
        .journal()
        .calls(20, |c| matches!(c.trigger(), Trigger::Http { .. }))
        .into_iter()
        .map(|c| {
            let order = answered_order(&c);
            (c, order)
        })
        .collect();
    page(
        "Console",
        html! {
            h1 { "The local app" }
            p class="muted" {
                "Type an order id above for its timeline across every function, or open one of the \
                 latest API requests."
            }
            table {
                tr { th { "time" } th { "request" } th { "order" } th { "invocation" } }
                @for (call, order) in &recent {
                    tr {
                        td { (call.started.format("%H:%M:%S%.3f")) }
                        td { (describe(call)) }
                        td { @if let Some(id) = order { a href={ "/orders/" (id) } { (id) } } }
                        td { (request_link(call)) }
                    }
                }
            }
        },
    )
}

fn request_link(call: &Call) -> Markup {
    html! {
        @if let Some(id) = &call.request_id {
            a href={ "/invocations/" (id) } { code { (id) } }
        } @else {
            span class="muted" { "(no request id)" }
        }
    }
}

#[derive(Deserialize)]
struct OrderQuery {
    id: String,
}

async fn find_order(Query(q): Query<OrderQuery>) -> Redirect {
    let id: String = q.id.trim().chars().filter(|c| !c.is_whitespace()).collect();
    Redirect::to(&format!("/orders/{id}"))
}

async fn timeline(State(web): Shared, Path(id): Path<String>) -> Markup {
    let hops = hops(&web.app.console.journal().timeline(&id));
    page(
        &format!("Order {id}"),
        html! {
            h1 { "Order " code { (id) } }
            (live(&format!("/orders/{id}/hops"), hops))
        },
    )
}

async fn timeline_hops(State(web): Shared, Path(id): Path<String>) -> Markup {
    hops(&web.app.console.journal().timeline(&id))
}

fn hops(hops: &[Hop]) -> Markup {
    let first = hops.first().map(|h| h.call.started);
    html! {
        @if hops.is_empty() {
            p class="muted" { "Nothing has touched this order yet (or it was before the console's memory): new hops appear here as they happen." }
        }
        p class="muted" { (hops.len()) " hop(s), live." }
        @for hop in hops {
            @let call = &hop.call;
            @let offset = first.map(|f| (call.started - f).num_milliseconds()).unwrap_or(0);
            div class={ "hop " (call.status()) } data-function=(call.function) {
                strong { "+" (offset) " ms  " (call.function) }
                " — " (describe(call))
                " · " span class=(call.status()) { (call.status()) }
                @if let Some(report) = &hop.report {
                    " · " (format!("{:.1}", report.duration_ms)) " ms"
                    @if let Some(init) = report.init_ms { " (cold start, INIT " (format!("{init:.1}")) " ms)" }
                }
                br;
                span class="muted" {
                    (call.started.format("%H:%M:%S%.3f")) " · " (call.environment) " · request " (request_link(call))
                    @if let Some(root) = call.trace_root() { " · trace " code { (root) } }
                }
                @if let Err(e) = &call.answer { div class="failed" { (e) } }
                @for exchange in &hop.exchanges { (exchange_line(exchange)) }
                @for line in &hop.logs {
                    div { code class=(if line.level == "ERROR" { "failed" } else { "" }) { (line.text) } }
                }
            }
        }
    }
}

/// One request a function made to an emulator: `→ payments POST /v1/charges → 200 · 12.3 ms`.
fn exchange_line(exchange: &Exchange) -> Markup {
    html! {
        div class={ "exchange " (exchange.status()) } data-service=(exchange.service) {
            code {
                "→ " (exchange.service) " " (exchange.operation) " → "
                (match &exchange.answer { Ok(status) => status.to_string(), Err(why) => why.clone() })
            }
            " · " (format!("{:.1}", exchange.ms)) " ms"
            @if let Some(fault) = &exchange.fault { " · " span class="failed" { "fault " (fault) } }
        }
    }
}

#[derive(Deserialize, Default)]
struct InvocationFilter {
    #[serde(default)]
    function: String,
    #[serde(default)]
    status: String,
}

async fn invocations(State(web): Shared, Query(filter): Query<InvocationFilter>) -> Markup {
    let mut functions: Vec<String> = web
        .app
        .pools
        .values()
        .map(|p| p.name().to_owned())
        .collect();
    functions.sort();
    let url = format!(
        "/invocations/rows?function={}&status={}",
        form_urlencoded::byte_serialize(filter.function.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(filter.status.as_bytes()).collect::<String>()
    );
    page(
        "Invocations",
        html! {
            form method="get" action="/invocations" {
                "Function "
                select name="function" {
                    option value="" { "every function" }
                    @for f in &functions { option value=(f) selected[*f == filter.function] { (f) } }
                }
                " status "
                select name="status" {
                    @for s in ["", "ok", "error", "failed"] {
                        option value=(s) selected[s == filter.status] { (if s.is_empty() { "any" } else { s }) }
                    }
                }
                " " button { "Filter" }
            }
            (live(&url, rows(&web, &filter)))
        },
    )
}

async fn invocation_rows(State(web): Shared, Query(filter): Query<InvocationFilter>) -> Markup {
    rows(&web, &filter)
}

fn rows(web: &Web, filter: &InvocationFilter) -> Markup {
    let journal = web.app.console.journal();
    let reports: BTreeMap<String, crate::invocations::Invocation> = journal
        .reports()
        .into_iter()
        .map(|r| (r.request_id.clone(), r))
        .collect();
    let calls = journal.calls(200, |c| {
        (filter.function.is_empty() || c.function == filter.function)
            && (filter.status.is_empty() || c.status() == filter.status)
    });
    html! {
        table id="invocations" {
            tr {
                th { "time" } th { "function" } th { "what" } th { "status" }
                th { "duration" } th { "init" } th { "max memory" } th { "request id" }
            }
            @for call in &calls {
                @let report = call.request_id.as_ref().and_then(|id| reports.get(id));
                tr {
                    td { (call.started.format("%H:%M:%S%.3f")) }
                    td { (call.environment) }
                    td { (describe(call)) }
                    td class=(call.status()) { (call.status()) }
                    td { @if let Some(r) = report { (format!("{:.2} ms", r.duration_ms)) } @else { (format!("({:.0} ms wall)", call.wall_ms)) } }
                    td { @if let Some(init) = report.and_then(|r| r.init_ms) { (format!("{init:.2} ms")) } }
                    td { @if let Some(kb) = report.and_then(|r| r.peak_rss_kb) { (kb.div_ceil(1024)) " MB of " (report.map_or(0, |r| r.memory_size_mb)) } }
                    td { (request_link(call)) }
                }
            }
        }
    }
}

async fn invocation(State(web): Shared, Path(request_id): Path<String>) -> Response {
    let Some(hop) = web.app.console.journal().hop(&request_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "no invocation with that request id in the console's memory",
        );
    };
    let call = &hop.call;
    page(
        &format!("Invocation {request_id}"),
        html! {
            h1 { (call.function) " " code { (request_id) } }
            p {
                (describe(call)) " · " span class=(call.status()) { (call.status()) }
                " · started " (call.started.format("%H:%M:%S%.3f")) " on " (call.environment)
                @if let Some(trace) = &call.trace { " · " code { (trace) } }
            }
            @if let Some(r) = &hop.report {
                pre { (r.report_line()) }
            }
            h2 { "Log lines" }
            @if hop.logs.is_empty() { p class="muted" { "none" } }
            @for line in &hop.logs { div { code { (line.text) } } }
            h2 { "Requests to the emulators" }
            p class="muted" { "Those that carried this invocation's trace header, as the fault proxies passed them." }
            @if hop.exchanges.is_empty() { p class="muted" { "none" } }
            @for exchange in &hop.exchanges {
                (exchange_line(exchange))
                details {
                    summary { "request and answer" }
                    pre { (pretty(&exchange.request)) }
                    pre { (pretty(&exchange.response)) }
                }
            }
            h2 { "Answer" }
            pre { (match &call.answer { Ok(a) => pretty(a), Err(e) => e.clone() }) }
            h2 { "Replay" }
            p class="muted" { "Sends this event (as is, or as you edit it) to " (call.function) " again, as its trigger would." }
            form method="post" action="/replay" {
                input type="hidden" name="function" value=(call.function);
                textarea name="event" rows="18" { (pretty(&call.event)) }
                br;
                button { "Replay" }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
struct ReplayForm {
    function: String,
    event: String,
}

async fn replay(State(web): Shared, Form(form): Form<ReplayForm>) -> Response {
    let Some(pool) = web.app.pools.values().find(|p| p.name() == form.function) else {
        return problem(StatusCode::NOT_FOUND, "no such function");
    };
    if let Err(e) = serde_json::from_str::<Value>(&form.event) {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("the event is not JSON: {e}"),
        );
    }
    let journal = web.app.console.journal();
    let mut changes = journal.changes();
    let since = *changes.borrow_and_update();
    let _ = pool.invoke(form.event.as_bytes()).await;
    // The journal records the call a moment after it returns (once its START line is read):
    // look again at each change, for up to a second.
    let replayed = |c: &Call| c.seq > since && c.function == form.function && c.event == form.event;
    let newest = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Some(call) = journal.calls(1, replayed).pop() {
                return Some(call);
            }
            changes.changed().await.ok()?;
        }
    })
    .await
    .ok()
    .flatten();
    match newest.and_then(|c| c.request_id) {
        Some(id) => Redirect::to(&format!("/invocations/{id}")).into_response(),
        None => Redirect::to(&format!("/invocations?function={}", form.function)).into_response(),
    }
}

async fn queues(State(web): Shared) -> Markup {
    let table = queue_table(&web).await;
    page(
        "Queues",
        html! {
            h1 { "Queues" }
            (live("/queues/table", table))
        },
    )
}

async fn queues_table(State(web): Shared) -> Markup {
    queue_table(&web).await
}

/// Every queue's depth; a dead-letter queue's messages and its redrive button.
async fn queue_table(web: &Web) -> Markup {
    let targets = crate::queues::dead_letter_targets(&web.app.template);
    let mut rows = Vec::new();
    for logical in web.app.queue_arns.keys() {
        let url = &web.app.names[logical];
        let depth = crate::queues::depth(&web.sqs, url)
            .await
            .unwrap_or_default();
        let is_dlq = targets.values().any(|dlq| dlq == logical);
        let messages = if is_dlq {
            crate::queues::peek(&web.sqs, url).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        rows.push((logical.clone(), depth, is_dlq, messages));
    }
    html! {
        table {
            tr { th { "queue" } th { "visible" } th { "in flight" } th { "delayed" } th { "dead letters" } }
            @for (logical, depth, is_dlq, messages) in &rows {
                tr id={ "queue-" (logical) } {
                    td { (logical) @if *is_dlq { " " span class="muted" { "(dead-letter queue)" } } }
                    td class="visible" { (depth.visible) }
                    td { (depth.in_flight) }
                    td { (depth.delayed) }
                    td {
                        @if *is_dlq && !messages.is_empty() {
                            form method="post" action={ "/queues/" (logical) "/redrive" } {
                                button { "Redrive " (messages.len()) " to the source queue" }
                            }
                            @for body in messages { pre { (pretty(body)) } }
                        }
                    }
                }
            }
        }
    }
}

async fn redrive(State(web): Shared, Path(dlq): Path<String>) -> Response {
    let targets = crate::queues::dead_letter_targets(&web.app.template);
    let Some(source) = targets
        .iter()
        .find(|(_, target)| **target == dlq)
        .map(|(s, _)| s)
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "no queue sends its dead letters there",
        );
    };
    let (from, to) = (&web.app.names[&dlq], &web.app.names[source]);
    match crate::queues::move_messages(&web.sqs, from, to).await {
        Ok(moved) => {
            web.app.console.info(&format!(
                "redrove {moved} message(s) from {dlq} to {source}"
            ));
            Redirect::to("/queues").into_response()
        }
        Err(e) => problem(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

async fn chaos(State(web): Shared) -> Response {
    let Some(state) = switch_tables(&web) else {
        return problem(
            StatusCode::NOT_FOUND,
            "the fault proxies are off in this run",
        );
    };
    page(
        "Chaos",
        html! {
            h1 { "Fault switches" }
            p class="muted" { "Each rule sends the matching requests (or invocations) a fault with its probability; the functions meet it as they would on AWS. README: Faults." }
            (live("/chaos/state", state))
            form method="post" action="/chaos/off" { button { "Switch every fault off" } }
            h2 { "Add a switch" }
            form method="post" action="/chaos/rules" id="add-rule" {
                select name="service" {
                    @for s in crate::chaos::Service::ALL { option value=(s.name()) { (s.name()) } }
                }
                " operation " input name="operation" value="*" size="28";
                " fault "
                select name="fault" {
                    @for f in ["transaction-conflict", "provisioned-throughput-exceeded", "throttling", "server-error", "latency", "drop-after-apply", "hang", "kill-runtime", "duplicate-delivery"] {
                        option value=(f) { (f) }
                    }
                }
                " ms " input name="ms" value="500" size="6";
                " probability " input name="probability" value="1" size="5";
                " limit " input name="limit" size="5";
                " " button { "Switch on" }
            }
        },
    )
    .into_response()
}

async fn chaos_state(State(web): Shared) -> Response {
    match switch_tables(&web) {
        Some(state) => state.into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "the fault proxies are off in this run",
        ),
    }
}

/// The rules switched on and what fired (`None` without fault proxies).
fn switch_tables(web: &Web) -> Option<Markup> {
    let chaos = &web.app.proxies.as_ref()?.chaos;
    let (rules, fired) = (chaos.rules(), chaos.fired());
    Some(html! {
        table id="rules" {
            tr { th { "service" } th { "operation" } th { "fault" } th { "probability" } th { "limit" } }
            @for rule in &rules {
                tr {
                    td { (rule.service.name()) }
                    td { code { (rule.operation) } }
                    td { (serde_json::to_string(&rule.fault).unwrap_or_default()) }
                    td { (rule.probability) }
                    td { @if let Some(l) = rule.limit { (l) } }
                }
            }
        }
        @if rules.is_empty() { p { "Every switch is off: every request passes as it is." } }
        h2 { "Fired" }
        table id="fired" {
            tr { th { "service" } th { "operation" } th { "fault" } th { "count" } }
            @for f in &fired {
                tr {
                    td { (f.service.name()) }
                    td { code { (f.operation) } }
                    td { (f.fault) }
                    td { (f.count) }
                }
            }
        }
    })
}

#[derive(Deserialize)]
struct RuleForm {
    service: String,
    operation: String,
    fault: String,
    #[serde(default)]
    ms: String,
    probability: f64,
    #[serde(default)]
    limit: String,
}

impl RuleForm {
    fn rule(&self) -> Result<Rule, String> {
        let service: Service = serde_json::from_value(Value::String(self.service.clone()))
            .map_err(|e| format!("service: {e}"))?;
        let ms = self.ms.trim().parse::<u64>().unwrap_or(0);
        let fault = match self.fault.as_str() {
            "latency" => serde_json::json!({"kind": "latency", "ms": ms}),
            "kill-runtime" => serde_json::json!({"kind": "kill-runtime", "withinMs": ms}),
            kind => serde_json::json!({"kind": kind}),
        };
        let fault: Fault = serde_json::from_value(fault).map_err(|e| format!("fault: {e}"))?;
        let operation = match self.operation.trim() {
            "" => "*",
            op => op,
        };
        let mut rule = Rule::new(service, operation, fault, self.probability);
        rule.limit = self.limit.trim().parse().ok();
        Ok(rule)
    }
}

async fn add_rule(State(web): Shared, Form(form): Form<RuleForm>) -> Response {
    let Some(proxies) = &web.app.proxies else {
        return problem(
            StatusCode::NOT_FOUND,
            "the fault proxies are off in this run",
        );
    };
    let rule = match form.rule() {
        Ok(rule) => rule,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e),
    };
    let mut rules = proxies.chaos.rules();
    rules.push(rule);
    match proxies.chaos.set(rules) {
        Ok(()) => Redirect::to("/chaos").into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn chaos_off(State(web): Shared) -> Response {
    if let Some(proxies) = &web.app.proxies {
        let _ = proxies.chaos.set(Vec::new());
    }
    Redirect::to("/chaos").into_response()
}

async fn tables(State(web): Shared) -> Markup {
    let tables: Vec<String> = web
        .app
        .template
        .tables()
        .map(|t| t.into_iter().map(|t| t.logical_id).collect())
        .unwrap_or_default();
    page(
        "Tables",
        html! {
            h1 { "Tables" }
            ul { @for t in &tables { li { a href={ "/tables/" (t) } { (t) } } } }
        },
    )
}

#[derive(Deserialize, Default)]
struct Page {
    /// The last key of the previous page, as JSON.
    #[serde(default)]
    after: String,
}

/// Items per page of a table.
const PAGE: i32 = 25;

async fn table(State(web): Shared, Path(logical): Path<String>, Query(q): Query<Page>) -> Response {
    let Some(name) = web
        .app
        .template
        .tables()
        .ok()
        .and_then(|t| t.into_iter().find(|t| t.logical_id == logical))
        .and_then(|_| web.app.names.get(&logical))
    else {
        return problem(StatusCode::NOT_FOUND, "no such table in template.yaml");
    };
    let mut scan = web.dynamo.scan().table_name(name).limit(PAGE);
    if !q.after.is_empty() {
        let Ok(key) = serde_json::from_str::<serde_json::Map<String, Value>>(&q.after)
            .map_err(|e| e.to_string())
            .and_then(|k| {
                serde_dynamo::to_item::<_, std::collections::HashMap<_, _>>(k)
                    .map_err(|e| e.to_string())
            })
        else {
            return problem(StatusCode::BAD_REQUEST, "after is not a key of this table");
        };
        scan = scan.set_exclusive_start_key(Some(key));
    }
    let out = match scan.send().await {
        Ok(out) => out,
        Err(e) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                &aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
            );
        }
    };
    let items: Vec<Value> = out
        .items()
        .iter()
        .filter_map(|item| serde_dynamo::from_item(item.clone()).ok())
        .collect();
    let next = out
        .last_evaluated_key()
        .and_then(|k| serde_dynamo::from_item::<_, Value>(k.clone()).ok())
        .map(|k| k.to_string());
    page(
        &logical,
        html! {
            h1 { (logical) " " span class="muted" { "(" (name) ", read-only)" } }
            @for item in &items { pre { (serde_json::to_string_pretty(item).unwrap_or_default()) } }
            @if items.is_empty() { p class="muted" { "no items" } }
            @if let Some(next) = next {
                a href={ "/tables/" (logical) "?after=" (form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()) } { "next page →" }
            }
        },
    )
    .into_response()
}

/// A message whenever the journal changed (at most every 250 ms), for the live pages.
async fn changes(State(web): Shared) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = web.app.console.journal().changes();
    let stream = futures::stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let seq = *changes.borrow_and_update();
        Some((Ok(Event::default().data(seq.to_string())), changes))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
