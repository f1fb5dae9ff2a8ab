//! Business metrics as CloudWatch Embedded Metric Format (EMF) lines on standard output.
//!
//! Each flush writes one JSON document per dimension set:
//! `{"_aws":{"Timestamp":…,"CloudWatchMetrics":[{"Namespace":…,"Dimensions":[["service",…]],
//! "Metrics":[{"Name":…,"Unit":…}]}]},"service":…,"<metric>":<value or values>}`, with at most
//! [`MAX_VALUES`] values per metric in one document (the EMF limit) and at most [`MAX_METRICS`]
//! metrics per document. Functions record during an invocation and flush at its end; the sink is
//! injectable so that tests read what would have been written.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// At most this many values of one metric in one EMF document.
pub const MAX_VALUES: usize = 100;
/// At most this many metrics in one EMF document.
pub const MAX_METRICS: usize = 100;

/// The units this service uses (CloudWatch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The names of the metrics the shared plumbing writes (the dashboard and alarms in template.yaml
/// use them too); each service adds its own business metrics.
pub mod names {
    pub const TRANSACTION_RETRIES: &str = "TransactionRetries";
    pub const EVENTS_RELAYED: &str = "EventsRelayed";
    pub const EVENTS_CONSUMED: &str = "EventsConsumed";
    pub const CONSUMER_FAILURES: &str = "ConsumerFailures";
    pub const EVENT_AGE: &str = "EventAge";
    pub const COLD_START: &str = "ColdStart";
    /// Stream records the relay could never send, set aside whole in its dead-letter queue.
    pub const RECORDS_SET_ASIDE: &str = "RecordsSetAside";
    /// Outbox events the reconciler sent again because no consumer had recorded them.
    pub const EVENTS_REPUBLISHED: &str = "EventsRepublished";

    /// Every metric the plumbing writes.
    pub const ALL: [&str; 8] = [
        TRANSACTION_RETRIES,
        EVENTS_RELAYED,
        EVENTS_CONSUMED,
        CONSUMER_FAILURES,
        EVENT_AGE,
        COLD_START,
        RECORDS_SET_ASIDE,
        EVENTS_REPUBLISHED,
    ];
}

/// Where EMF lines go.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

type Dimensions = Vec<(String, String)>;

#[derive(Default)]
struct Buffer {
    /// Per dimension set (beyond `service`), per metric: its unit and values.
    groups: BTreeMap<Dimensions, BTreeMap<String, (Unit, Vec<f64>)>>,
}

/// A function's metrics: namespace and `service` dimension from its configuration.
pub struct Metrics {
    namespace: String,
    service: String,
    function_name: String,
    buffer: Mutex<Buffer>,
    sink: Sink,
    cold: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("namespace", &self.namespace)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics written to standard output, where Lambda sends them to CloudWatch Logs; namespace
    /// and service from `POWERTOOLS_METRICS_NAMESPACE` and `POWERTOOLS_SERVICE_NAME` (the names
    /// Powertools for AWS Lambda reads), the function from `AWS_LAMBDA_FUNCTION_NAME`.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let metrics = Self::with_sink(
            &var("POWERTOOLS_METRICS_NAMESPACE", "Orders"),
            &var("POWERTOOLS_SERVICE_NAME", "orders"),
            Arc::new(|line: &str| println!("{line}")),
        );
        Self {
            function_name: var("AWS_LAMBDA_FUNCTION_NAME", "unknown"),
            ..metrics
        }
    }

    pub fn with_sink(namespace: &str, service: &str, sink: Sink) -> Self {
        Self {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            function_name: service.to_owned(),
            buffer: Mutex::new(Buffer::default()),
            sink,
            cold: AtomicBool::new(true),
        }
    }

    /// Metrics that go nowhere (for callers that do not measure).
    pub fn discard() -> Self {
        Self::with_sink("none", "none", Arc::new(|_: &str| {}))
    }

    /// Records a value with the `service` dimension only.
    pub fn add(&self, name: &str, unit: Unit, value: f64) {
        self.add_with(name, unit, value, &[]);
    }

    /// Records a value with extra dimensions (low cardinality only, e.g. a refusal reason).
    pub fn add_with(&self, name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
        let dims: Dimensions = dimensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Ok(mut buffer) = self.buffer.lock() {
            buffer
                .groups
                .entry(dims)
                .or_default()
                .entry(name.to_owned())
                .or_insert_with(|| (unit, Vec::new()))
                .1
                .push(value);
        }
    }

    /// Records `ColdStart` once per environment (the first call in this process), with the
    /// function name as a dimension.
    pub fn cold_start(&self, function_name: &str) {
        if self.cold.swap(false, Ordering::SeqCst) {
            self.add_with(
                names::COLD_START,
                Unit::Count,
                1.0,
                &[("function_name", function_name)],
            );
        }
    }

    /// Runs one invocation: `ColdStart` on the first, and a flush of what it recorded at its end.
    pub async fn measure<F: std::future::Future>(&self, invocation: F) -> F::Output {
        self.cold_start(&self.function_name.clone());
        let output = invocation.await;
        self.flush();
        output
    }

    /// Writes what was recorded since the last flush, as EMF lines, and forgets it.
    pub fn flush(&self) {
        let groups = match self.buffer.lock() {
            Ok(mut buffer) => std::mem::take(&mut buffer.groups),
            Err(_) => return,
        };
        let timestamp = chrono::Utc::now().timestamp_millis();
        for (dims, metrics) in groups {
            for line in self.documents(timestamp, &dims, metrics) {
                (self.sink)(&line);
            }
        }
    }

    fn documents(
        &self,
        timestamp: i64,
        dims: &Dimensions,
        metrics: BTreeMap<String, (Unit, Vec<f64>)>,
    ) -> Vec<String> {
        // Split each metric's values into chunks of MAX_VALUES; document i takes chunk i of every
        // metric, and a document holds at most MAX_METRICS metrics.
        let mut pending: Vec<(String, Unit, std::vec::IntoIter<Vec<f64>>)> = metrics
            .into_iter()
            .map(|(name, (unit, values))| {
                let chunks: Vec<Vec<f64>> =
                    values.chunks(MAX_VALUES).map(<[f64]>::to_vec).collect();
                (name, unit, chunks.into_iter())
            })
            .collect();
        let mut lines = Vec::new();
        loop {
            let round: Vec<(String, Unit, Vec<f64>)> = pending
                .iter_mut()
                .filter_map(|(name, unit, chunks)| chunks.next().map(|c| (name.clone(), *unit, c)))
                .collect();
            if round.is_empty() {
                return lines;
            }
            for part in round.chunks(MAX_METRICS) {
                lines.push(self.document(timestamp, dims, part));
            }
        }
    }

    fn document(
        &self,
        timestamp: i64,
        dims: &Dimensions,
        metrics: &[(String, Unit, Vec<f64>)],
    ) -> String {
        let mut dimension_names = vec!["service".to_owned()];
        dimension_names.extend(dims.iter().map(|(k, _)| k.clone()));
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("service".into(), Value::String(self.service.clone()));
        for (k, v) in dims {
            root.insert(k.clone(), Value::String(v.clone()));
        }
        for (name, _, values) in metrics {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert(name.clone(), value);
        }
        Value::Object(root).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting() -> (Metrics, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let sink: Sink =
            Arc::new(move |line: &str| sink_lines.lock().unwrap().push(line.to_owned()));
        (Metrics::with_sink("Orders", "orders", sink), lines)
    }

    #[test]
    fn a_flush_writes_valid_emf_with_the_service_dimension() {
        let (metrics, lines) = collecting();
        metrics.add("OrdersCreated", Unit::Count, 1.0);
        metrics.add("OrdersCreated", Unit::Count, 1.0);
        metrics.add_with(
            "OrdersRefused",
            Unit::Count,
            1.0,
            &[("reason", "insufficient-stock")],
        );
        metrics.flush();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2, "one document per dimension set");
        for line in lines.iter() {
            devkit::emf::validate(line).unwrap();
        }
        let created: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(created["service"], "orders");
        assert_eq!(created["OrdersCreated"], json!([1.0, 1.0]));
        assert_eq!(
            created["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Orders"
        );
        let refused: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            refused["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service", "reason"]])
        );
        assert_eq!(refused["reason"], "insufficient-stock");
    }

    #[test]
    fn more_than_a_hundred_values_split_into_several_documents() {
        let (metrics, lines) = collecting();
        for i in 0..250 {
            metrics.add(names::EVENT_AGE, Unit::Milliseconds, f64::from(i));
        }
        metrics.flush();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 3);
        let total: usize = lines
            .iter()
            .map(|l| {
                devkit::emf::validate(l).unwrap();
                serde_json::from_str::<Value>(l).unwrap()["EventAge"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(total, 250);
    }

    #[test]
    fn cold_start_is_recorded_once_per_environment() {
        let (metrics, lines) = collecting();
        metrics.cold_start("create-order");
        metrics.flush();
        metrics.cold_start("create-order");
        metrics.flush();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let doc: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(doc["ColdStart"], json!(1.0));
        assert_eq!(doc["function_name"], "create-order");
    }

    #[test]
    fn nothing_recorded_writes_nothing() {
        let (metrics, lines) = collecting();
        metrics.flush();
        assert!(lines.lock().unwrap().is_empty());
    }
}
