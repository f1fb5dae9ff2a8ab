//! The `make dev` console: each invocation's START/REPORT lines, each function's log lines made
//! compact (with the order and event ids, so one order's hops can be followed), errors in red only
//! on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use std::sync::Arc;

use serde_json::Value;

use crate::journal::{Journal, LogLine};

pub struct Console {
    colour: bool,
    /// What the functions did, for the web console.
    journal: Arc<Journal>,
    out: Mutex<Box<dyn Write + Send>>,
    /// Set while stopping: the environments' dying words are not news.
    quiet: std::sync::atomic::AtomicBool,
    /// `make bench`: every line the functions print, kept as printed (function, line).
    recorded: Option<Mutex<Vec<(String, String)>>>,
}

/// Fields of a function's JSON log line worth showing, in this order.
const SHOWN: &[&str] = &[
    "operation",
    "status",
    "outcome",
    "order_id",
    "event_id",
    "event_type",
    "sequence_number",
    "message_id",
    "error",
    "cause",
    "xray_trace_id",
];

impl Console {
    /// The console on standard output (`make dev`).
    pub fn new() -> Self {
        Self {
            colour: std::io::stdout().is_terminal(),
            journal: Arc::default(),
            out: Mutex::new(Box::new(std::io::stdout())),
            quiet: std::sync::atomic::AtomicBool::new(false),
            recorded: None,
        }
    }

    /// The console on standard error, leaving standard output to a result (`make invoke`).
    pub fn on_stderr() -> Self {
        Self {
            colour: std::io::stderr().is_terminal(),
            journal: Arc::default(),
            out: Mutex::new(Box::new(std::io::stderr())),
            quiet: std::sync::atomic::AtomicBool::new(false),
            recorded: None,
        }
    }

    /// A console that writes everything, uncoloured, to `out` (`make chaos` keeps it as the run's log).
    pub fn writing_to(out: Box<dyn Write + Send>) -> Self {
        Self {
            colour: false,
            journal: Arc::default(),
            out: Mutex::new(out),
            quiet: std::sync::atomic::AtomicBool::new(false),
            recorded: None,
        }
    }

    /// A console that shows nothing of the functions and keeps their lines instead (`make bench`
    /// reads the emulator's INIT REPORT and REPORT lines from them); its own messages go to stderr.
    pub fn recording() -> Self {
        Self {
            recorded: Some(Mutex::new(Vec::new())),
            ..Self::on_stderr()
        }
    }

    /// The lines kept since the last call, as (function, line).
    pub fn take_recorded(&self) -> Vec<(String, String)> {
        self.recorded
            .as_ref()
            .and_then(|r| r.lock().ok().map(|mut lines| std::mem::take(&mut *lines)))
            .unwrap_or_default()
    }

    fn print(&self, line: &str, error: bool) {
        let Ok(mut out) = self.out.lock() else { return };
        let _ = if error && self.colour {
            writeln!(out, "\x1b[31m{line}\x1b[0m")
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
    }

    /// What the functions did so far (their calls, reports and log lines).
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn info(&self, message: &str) {
        self.print(&format!("dev │ {message}"), false);
    }

    pub fn error(&self, message: &str) {
        self.print(&format!("dev │ {message}"), true);
    }

    /// From now on, the functions' lines are not shown.
    pub fn silence_functions(&self) {
        self.quiet.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// One line a function's environment printed.
    pub fn function_line(&self, function: &str, line: &str) {
        if self.quiet.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Some(recorded) = &self.recorded {
            if let Ok(mut lines) = recorded.lock() {
                lines.push((function.to_owned(), line.trim_end().to_owned()));
            }
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(line)
            && doc.contains_key("_aws")
        {
            self.metrics_line(function, line, &doc);
            return;
        }
        if let Ok(Value::Object(log)) = serde_json::from_str::<Value>(line) {
            let level = log.get("level").and_then(Value::as_str).unwrap_or("INFO");
            let message = log
                .get("message")
                .or_else(|| log.get("fields").and_then(|f| f.get("message")))
                .and_then(Value::as_str)
                .unwrap_or("");
            let span = log.get("span").and_then(Value::as_object);
            let field = |name: &str| log.get(name).or_else(|| span.and_then(|s| s.get(name)));
            let details: Vec<String> = SHOWN
                .iter()
                .filter_map(|name| match field(name)? {
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) => Some(format!("{name}={s}")),
                    other => Some(format!("{name}={other}")),
                })
                .collect();
            let error = matches!(level, "ERROR" | "error");
            let text = format!("{level:5} {message} {}", details.join(" "));
            self.print(&format!("{function} │ {text}"), error);
            if let Some(logged) = LogLine::parse(function, line, text) {
                self.journal.log(logged);
            }
            return;
        }
        // The emulator's own lines: invocation boundaries and reports are shown, chatter is not.
        let report = ["START", "END", "REPORT", "INIT"]
            .iter()
            .any(|p| line.starts_with(p));
        let problem =
            line.contains("[ERROR]") || line.contains("[WARNING]") || line.contains("panicked");
        if report || problem {
            self.print(&format!("{function} │ {line}"), problem);
        } else if !line.contains("(rapid)") {
            self.print(&format!("{function} │ {line}"), false);
        }
    }
}

impl Console {
    /// An EMF document, compactly: `metrics OrdersCreated=1 ColdStart=1`; one that breaks the EMF
    /// rules is shown as an error.
    fn metrics_line(&self, function: &str, line: &str, doc: &serde_json::Map<String, Value>) {
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|d| d["Metrics"].as_array().into_iter().flatten())
            .filter_map(|m| m["Name"].as_str())
            .collect();
        let problems = crate::emf::validate(line).err();
        let shown: Vec<String> = names
            .iter()
            .map(|name| match &doc.get(*name) {
                Some(Value::Array(values)) => {
                    let sum: f64 = values.iter().filter_map(Value::as_f64).sum();
                    format!("{name}={sum}(×{})", values.len())
                }
                Some(value) => format!("{name}={value}"),
                None => format!("{name}=?"),
            })
            .collect();
        let reason = doc
            .get("reason")
            .and_then(Value::as_str)
            .map(|r| format!(" reason={r}"))
            .unwrap_or_default();
        match problems {
            None => self.print(
                &format!("{function} │ metrics {}{reason}", shown.join(" ")),
                false,
            ),
            Some(problem) => self.print(
                &format!("{function} │ invalid EMF ({problem}): {line}"),
                true,
            ),
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}
