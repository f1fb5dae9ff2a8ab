//! What the local app did, kept for the console (`devkit::web`): every invocation as it was called
//! (the event, the answer, the trace), its REPORT with the real figures, the functions' log lines,
//! and the requests they made to the emulators (as the fault proxies passed them) — each bounded,
//! the oldest dropped first. An order's timeline is read from here: the calls whose event or answer
//! names the order, and the calls whose log lines do, each with the requests it made.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::invocations::Invocation;

/// The most calls, reports and log lines kept.
const CALLS: usize = 5_000;
const REPORTS: usize = 5_000;
const LOG_LINES: usize = 20_000;
const EXCHANGES: usize = 5_000;
/// The most of a request's or an answer's body kept.
const BODY_KEPT: usize = 8 * 1024;

/// One invocation as the local Lambda layer made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Order of arrival in the journal (also of log lines and reports).
    pub seq: u64,
    /// The function (its binary's name, `create-order`).
    pub function: String,
    /// The environment that served it (`create-order#2` when there are several).
    pub environment: String,
    /// The emulator's request id, once its START line was read.
    pub request_id: Option<String>,
    /// The X-Ray trace header the invocation carried, if any.
    pub trace: Option<String>,
    pub started: DateTime<Utc>,
    /// From the call to the answer, as the caller waited.
    pub wall_ms: f64,
    /// The event, as sent.
    pub event: String,
    /// The function's answer, or why there was none (the runtime was killed, say).
    pub answer: Result<String, String>,
}

/// What kind of event an invocation was given, read from the event itself as a function would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An API Gateway (payload 2.0) request.
    Http {
        method: String,
        path: String,
    },
    /// A batch of DynamoDB stream records.
    Stream {
        records: usize,
    },
    /// A batch of SQS messages.
    Queue {
        messages: usize,
    },
    Schedule,
    Other,
}

impl Call {
    pub fn trigger(&self) -> Trigger {
        let Ok(event) = serde_json::from_str::<Value>(&self.event) else {
            return Trigger::Other;
        };
        if let Some(http) = event.pointer("/requestContext/http") {
            let text = |key: &str| http[key].as_str().unwrap_or_default().to_owned();
            return Trigger::Http {
                method: text("method"),
                path: text("path"),
            };
        }
        let records = event["Records"].as_array();
        match records
            .and_then(|r| r.first())
            .map(|r| r["eventSource"].as_str().unwrap_or_default().to_owned())
        {
            Some(source) if source == "aws:dynamodb" => Trigger::Stream {
                records: records.map_or(0, Vec::len),
            },
            Some(source) if source == "aws:sqs" => Trigger::Queue {
                messages: records.map_or(0, Vec::len),
            },
            _ if event["source"] == "aws.scheduler" => Trigger::Schedule,
            _ => Trigger::Other,
        }
    }

    /// `ok`, `error` (the function answered an error, or an HTTP 5xx) or `failed` (no answer).
    pub fn status(&self) -> &'static str {
        let Ok(answer) = &self.answer else {
            return "failed";
        };
        let Ok(value) = serde_json::from_str::<Value>(answer) else {
            return "ok";
        };
        let http_error = value["statusCode"].as_u64().is_some_and(|s| s >= 500);
        if value.get("errorType").is_some() || http_error {
            "error"
        } else {
            "ok"
        }
    }

    /// The HTTP status the function answered, for an API request.
    pub fn http_status(&self) -> Option<u16> {
        let answer = self.answer.as_ref().ok()?;
        let value: Value = serde_json::from_str(answer).ok()?;
        value["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
    }

    /// The X-Ray trace's root (`1-5f84…`), which ties the hops of one request together: the
    /// invocation's own, or the one its queue message carried (`AWSTraceHeader`).
    pub fn trace_root(&self) -> Option<String> {
        if let Some(root) = self.trace.as_deref().and_then(trace_root) {
            return Some(root.to_owned());
        }
        let event: Value = serde_json::from_str(&self.event).ok()?;
        let header = event
            .pointer("/Records/0/attributes/AWSTraceHeader")?
            .as_str()?;
        trace_root(header).map(str::to_owned)
    }

    fn mentions(&self, text: &str) -> bool {
        self.event.contains(text) || self.answer.as_ref().is_ok_and(|a| a.contains(text))
    }
}

/// `Root=1-5f84c7a4-…;Parent=…;Sampled=1` → `1-5f84c7a4-…`.
pub fn trace_root(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .or_else(|| header.starts_with("1-").then_some(header))
}

/// One line a function printed.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub environment: String,
    pub request_id: Option<String>,
    pub order_id: Option<String>,
    pub trace_root: Option<String>,
    pub level: String,
    /// As the terminal shows it (`INFO  order created order_id=…`).
    pub text: String,
}

impl LogLine {
    /// A function's JSON log line (the Powertools keys of `platform::telemetry`); `None` for any
    /// other line.
    pub fn parse(environment: &str, line: &str, text: String) -> Option<Self> {
        let Ok(Value::Object(log)) = serde_json::from_str::<Value>(line) else {
            return None;
        };
        let field = |name: &str| {
            log.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            seq: 0,
            at: field("timestamp")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            environment: environment.to_owned(),
            request_id: field("function_request_id"),
            order_id: field("order_id"),
            trace_root: field("xray_trace_id").and_then(|t| trace_root(&t).map(str::to_owned)),
            level: field("level").unwrap_or_else(|| "INFO".to_owned()),
            text,
        })
    }
}

/// One request a function made to an emulator (DynamoDB, SQS, SNS, Secrets Manager, the payment
/// provider), as its fault proxy passed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub seq: u64,
    /// `dynamodb`, `payments`, … (the fault switches' names).
    pub service: String,
    /// In the service's own terms: `TransactWriteItems`, `POST /v1/charges/{id}/capture`.
    pub operation: String,
    /// The `X-Amzn-Trace-Id` the request carried: the AWS SDK sends its invocation's trace header.
    pub trace: Option<String>,
    pub started: DateTime<Utc>,
    pub ms: f64,
    /// The status the function got, or why it got none (a fault that hung or dropped it).
    pub answer: Result<u16, String>,
    /// The fault switch that fired on it, if one did.
    pub fault: Option<String>,
    /// The bodies, cut to 8 KiB.
    pub request: String,
    pub response: String,
}

impl Exchange {
    /// A body as the journal keeps it: text, cut to 8 KiB on a character boundary.
    pub fn body(bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_KEPT)]);
        text.trim_end_matches('\u{fffd}').to_owned()
    }

    /// `ok` for a 2xx, else `error`.
    pub fn status(&self) -> &'static str {
        match self.answer {
            Ok(status) if (200..300).contains(&status) => "ok",
            _ => "error",
        }
    }

    fn mentions(&self, text: &str) -> bool {
        self.request.contains(text) || self.response.contains(text)
    }

    /// Made while `call` ran.
    fn during(&self, call: &Call) -> bool {
        let to = call.started + chrono::Duration::microseconds((call.wall_ms * 1000.0) as i64);
        self.started >= call.started && self.started <= to
    }

    /// Made by `call`: while it ran, with its trace header (the window tells apart the retries of
    /// one queue message, which carry the same header).
    fn traced_to(&self, call: &Call) -> bool {
        self.trace.is_some() && self.trace == call.trace && self.during(call)
    }
}

#[derive(Debug, Default)]
struct Kept {
    seq: u64,
    calls: VecDeque<Call>,
    reports: VecDeque<Invocation>,
    logs: VecDeque<LogLine>,
    exchanges: VecDeque<Exchange>,
}

fn keep<T>(list: &mut VecDeque<T>, item: T, most: usize) {
    if list.len() == most {
        list.pop_front();
    }
    list.push_back(item);
}

/// One hop of an order's timeline: an invocation, with its figures, its log lines and the
/// requests it made to the emulators.
#[derive(Debug, Clone)]
pub struct Hop {
    pub call: Call,
    pub report: Option<Invocation>,
    pub logs: Vec<LogLine>,
    pub exchanges: Vec<Exchange>,
}

/// The local app's journal. Cheap to share (`Arc`); every change bumps [`Journal::changes`].
#[derive(Debug)]
pub struct Journal {
    kept: Mutex<Kept>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            kept: Mutex::new(Kept::default()),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Journal {
    fn with<T>(&self, f: impl FnOnce(&mut Kept) -> T) -> T {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.seq += 1;
        let out = f(&mut kept);
        self.changed.send_replace(kept.seq);
        out
    }

    fn read<T>(&self, f: impl FnOnce(&Kept) -> T) -> T {
        f(&self.kept.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Each change's sequence number, for live pages.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn call(&self, mut call: Call) {
        self.with(|kept| {
            call.seq = kept.seq;
            keep(&mut kept.calls, call, CALLS);
        });
    }

    pub fn report(&self, invocation: Invocation) {
        self.with(|kept| keep(&mut kept.reports, invocation, REPORTS));
    }

    pub fn log(&self, mut line: LogLine) {
        self.with(|kept| {
            line.seq = kept.seq;
            keep(&mut kept.logs, line, LOG_LINES);
        });
    }

    pub fn exchange(&self, mut exchange: Exchange) {
        self.with(|kept| {
            exchange.seq = kept.seq;
            keep(&mut kept.exchanges, exchange, EXCHANGES);
        });
    }

    /// Up to `most` of the calls kept that `wanted` picks, newest first (only those are copied).
    pub fn calls(&self, most: usize, wanted: impl Fn(&Call) -> bool) -> Vec<Call> {
        self.read(|kept| {
            kept.calls
                .iter()
                .rev()
                .filter(|c| wanted(c))
                .take(most)
                .cloned()
                .collect()
        })
    }

    /// The reports kept, oldest first.
    pub fn reports(&self) -> Vec<Invocation> {
        self.read(|kept| kept.reports.iter().cloned().collect())
    }

    /// One invocation by its request id: the call, its report and its log lines.
    pub fn hop(&self, request_id: &str) -> Option<Hop> {
        self.read(|kept| {
            let call = kept
                .calls
                .iter()
                .rev()
                .find(|c| c.request_id.as_deref() == Some(request_id))?;
            Some(hop_of(kept, call))
        })
    }

    /// Every invocation that touched the order, in time order: those whose event or answer names
    /// it (the API request, the stream record, the queue message), those that logged it, and
    /// those of the same traces.
    pub fn timeline(&self, order_id: &str) -> Vec<Hop> {
        self.read(|kept| {
            let logged: Vec<&str> = kept
                .logs
                .iter()
                .filter(|l| l.order_id.as_deref() == Some(order_id))
                .filter_map(|l| l.request_id.as_deref())
                .collect();
            let named = |c: &Call| {
                c.mentions(order_id)
                    || c.request_id
                        .as_deref()
                        .is_some_and(|id| logged.contains(&id))
            };
            let traces: Vec<String> = kept
                .calls
                .iter()
                .filter(|c| named(c))
                .filter_map(Call::trace_root)
                .collect();
            let mut hops: Vec<Hop> = kept
                .calls
                .iter()
                .filter(|c| named(c) || c.trace_root().is_some_and(|t| traces.contains(&t)))
                .map(|call| hop_of(kept, call))
                .collect();
            // A request no invocation's header claims (the payment provider's client sends none)
            // that names the order: the latest of these invocations running then made it. (The
            // time first: most requests of the journal were made while none of these ran.)
            for exchange in &kept.exchanges {
                let running = hops
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| exchange.during(&h.call))
                    .max_by_key(|(_, h)| h.call.started)
                    .map(|(i, _)| i);
                if let Some(i) = running
                    && !hops.iter().any(|h| exchange.traced_to(&h.call))
                    && exchange.mentions(order_id)
                {
                    hops[i].exchanges.push(exchange.clone());
                }
            }
            for hop in &mut hops {
                hop.exchanges.sort_by_key(|e| e.seq);
            }
            hops
        })
    }
}

/// An invocation with what belongs to it: its report, its log lines, the requests that carried its
/// trace header.
fn hop_of(kept: &Kept, call: &Call) -> Hop {
    let id = call.request_id.as_deref();
    Hop {
        call: call.clone(),
        report: id.and_then(|id| {
            kept.reports
                .iter()
                .rev()
                .find(|r| r.request_id == id)
                .cloned()
        }),
        logs: id
            .map(|id| {
                kept.logs
                    .iter()
                    .filter(|l| l.request_id.as_deref() == Some(id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        exchanges: kept
            .exchanges
            .iter()
            .filter(|e| e.traced_to(call))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(request_id: &str, trace: Option<&str>, event: Value, answer: &str) -> Call {
        Call {
            seq: 0,
            function: "f".into(),
            environment: "f".into(),
            request_id: Some(request_id.into()),
            trace: trace.map(str::to_owned),
            started: Utc::now(),
            wall_ms: 1.0,
            event: event.to_string(),
            answer: Ok(answer.into()),
        }
    }

    fn log(request_id: &str, order_id: &str) -> LogLine {
        let line = serde_json::json!({
            "level": "INFO", "message": "m", "function_request_id": request_id,
            "order_id": order_id, "timestamp": "2026-12-03T10:00:00.000Z"
        });
        LogLine::parse("f", &line.to_string(), "INFO m".into()).unwrap()
    }

    #[test]
    fn an_order_timeline_joins_by_name_by_log_line_and_by_trace() {
        let journal = Journal::default();
        let http =
            serde_json::json!({"requestContext": {"http": {"method": "POST", "path": "/orders"}}});
        // The API request names the order only in its answer.
        journal.call(call(
            "r1",
            Some("Root=1-a-b;Sampled=1"),
            http,
            r#"{"statusCode":201,"body":"{\"orderId\":\"o-1\"}"}"#,
        ));
        // The relay's batch does not name it, but logs it.
        journal.call(call(
            "r2",
            Some("Root=1-a-b"),
            serde_json::json!({"Records": [{"eventSource": "aws:dynamodb"}]}),
            "{}",
        ));
        journal.log(log("r2", "o-1"));
        // The same trace, no mention at all (a consumer that logs no order id).
        journal.call(call(
            "r3",
            Some("Root=1-a-b;Parent=c"),
            serde_json::json!({}),
            "{}",
        ));
        // A queue message of the same trace: the trace header travels in its attributes.
        let message = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "attributes": {"AWSTraceHeader": "Root=1-a-b;Parent=d;Sampled=1"}}]});
        journal.call(call("r5", None, message, "{}"));
        // Another order.
        journal.call(call(
            "r4",
            Some("Root=1-x-y"),
            serde_json::json!({"orderId": "o-2"}),
            "{}",
        ));

        let hops = journal.timeline("o-1");
        let ids: Vec<_> = hops
            .iter()
            .filter_map(|h| h.call.request_id.as_deref())
            .collect();
        assert_eq!(ids, ["r1", "r2", "r3", "r5"]);
        assert_eq!(
            hops[0].call.trigger(),
            Trigger::Http {
                method: "POST".into(),
                path: "/orders".into()
            }
        );
        assert_eq!(hops[0].call.http_status(), Some(201));
        assert_eq!(hops[1].call.trigger(), Trigger::Stream { records: 1 });
        assert_eq!(hops[1].logs.len(), 1);
        assert!(journal.timeline("o-3").is_empty());
    }

    fn exchange(operation: &str, trace: Option<&str>, at: DateTime<Utc>, body: &str) -> Exchange {
        Exchange {
            seq: 0,
            service: "dynamodb".into(),
            operation: operation.into(),
            trace: trace.map(str::to_owned),
            started: at,
            ms: 1.0,
            answer: Ok(200),
            fault: None,
            request: body.into(),
            response: "{}".into(),
        }
    }

    #[test]
    fn a_hop_holds_the_requests_its_invocation_made() {
        let journal = Journal::default();
        let mut relay = call("r1", None, serde_json::json!({"orderId": "o-1"}), "{}");
        relay.started -= chrono::Duration::seconds(1);
        relay.wall_ms = 1_050.0;
        let mut consumer = call(
            "r2",
            Some("Root=1-a-b;Parent=c"),
            serde_json::json!({"orderId": "o-1"}),
            "{}",
        );
        consumer.wall_ms = 50.0;
        let during = |c: &Call| c.started + chrono::Duration::milliseconds(10);
        // The consumer's SDK calls carry its trace header; whatever they name, they are its.
        let traced = exchange(
            "GetItem",
            Some("Root=1-a-b;Parent=c"),
            during(&consumer),
            "{}",
        );
        // A client that sends no header: its call is the relay's only if it names the order, and
        // only the latest invocation running then gets it (the relay's runs on into the consumer's).
        let named = exchange("Publish", None, during(&relay), "order o-1");
        let unnamed = exchange("Publish", None, during(&relay), "order o-2");
        let overlapping = exchange("Capture", None, during(&consumer), "order o-1");
        // The same header after the invocation ended: a later retry's.
        let later = exchange(
            "UpdateItem",
            Some("Root=1-a-b;Parent=c"),
            consumer.started + chrono::Duration::seconds(5),
            "{}",
        );
        journal.call(relay);
        journal.call(consumer);
        for e in [named, unnamed, traced, overlapping, later] {
            journal.exchange(e);
        }

        let hops = journal.timeline("o-1");
        let operations = |hop: &Hop| -> Vec<String> {
            hop.exchanges
                .iter()
                .map(|e| e.request.clone() + "/" + &e.operation)
                .collect()
        };
        assert_eq!(operations(&hops[0]), ["order o-1/Publish"]);
        assert_eq!(operations(&hops[1]), ["{}/GetItem", "order o-1/Capture"]);
        // An invocation's own page: only what carried its header.
        assert_eq!(journal.hop("r1").unwrap().exchanges, []);
        assert_eq!(journal.hop("r2").unwrap().exchanges.len(), 1);
    }

    #[test]
    fn a_kept_body_is_cut_on_a_character_boundary() {
        let body = "é".repeat(BODY_KEPT);
        let kept = Exchange::body(body.as_bytes());
        assert!(
            kept.len() <= BODY_KEPT && kept.chars().all(|c| c == 'é'),
            "{kept}"
        );
    }

    #[test]
    fn a_call_says_how_it_ended() {
        let mut c = call("r", None, serde_json::json!({}), r#"{"statusCode":500}"#);
        assert_eq!(c.status(), "error");
        c.answer = Ok(r#"{"errorType":"Runtime.ExitError"}"#.into());
        assert_eq!(c.status(), "error");
        c.answer = Err("killed".into());
        assert_eq!(c.status(), "failed");
        c.answer = Ok(r#"{"batchItemFailures":[]}"#.into());
        assert_eq!(c.status(), "ok");
    }

    #[test]
    fn the_journal_is_bounded_and_tells_of_changes() {
        let journal = Journal::default();
        let changes = journal.changes();
        for i in 0..CALLS + 3 {
            journal.call(call(&format!("r{i}"), None, serde_json::json!({}), "{}"));
        }
        let kept = journal.calls(usize::MAX, |_| true);
        assert_eq!(kept.len(), CALLS);
        assert_eq!(
            kept[0].request_id.as_deref(),
            Some(&*format!("r{}", CALLS + 2))
        );
        assert!(changes.has_changed().unwrap());
    }
}
