//! Each invocation as Lambda reports it, with true figures. aws-lambda-rie's own REPORT line
//! carries placeholders (`Init Duration: 0.05 ms` and `Max Memory Used: 128 MB` on every call), so
//! the figures are taken where they are measured: INIT from the emulator's `INIT REPORT` line (the
//! runtime's start until it first asks for work), the duration from its REPORT, the peak memory
//! from the runtime process's high-water mark (`VmHWM` in /proc, which like Lambda's figure is the
//! environment's peak so far). The REPORT line is then printed again, in Lambda's format.
//!
//! The emulator prints its REPORT on standard output and its `INIT REPORT` on standard error, so a
//! cold start's two lines may be read in either order: the REPORT of a cold start (the one where
//! the emulator writes an `Init Duration` at all) waits for its INIT.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// One invocation's REPORT, with the real figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The function, or its environment (`create-order#2`) when it has several.
    pub function: String,
    pub request_id: String,
    /// When the emulator reported it.
    pub at: DateTime<Utc>,
    /// The invocation itself, without the INIT before it (as Lambda counts; the emulator's own
    /// figure for a cold start includes it).
    pub duration_ms: f64,
    /// Only on the invocation that started the runtime (a cold start), as on Lambda.
    pub init_ms: Option<f64>,
    pub memory_size_mb: u64,
    /// The runtime's peak resident memory so far, if /proc could tell.
    pub peak_rss_kb: Option<u64>,
}

impl Invocation {
    /// The REPORT line as Lambda prints it (`Max Memory Used` rounded up to whole MB).
    pub fn report_line(&self) -> String {
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
            self.request_id,
            self.duration_ms,
            self.duration_ms.ceil().max(1.0) as u64,
            self.memory_size_mb,
        );
        if let Some(kb) = self.peak_rss_kb {
            line.push_str(&format!("\tMax Memory Used: {} MB", kb.div_ceil(1024)));
        }
        if let Some(init) = self.init_ms {
            line.push_str(&format!("\tInit Duration: {init:.2} ms"));
        }
        line
    }
}

/// `… (rapid) INIT REPORT(durationMs: 2.426000)` → 2.426.
pub fn init_duration(line: &str) -> Option<f64> {
    let at = line.find("INIT REPORT")?;
    field_ms(&line[at..], "durationMs:")
}

/// What the emulator's REPORT line says.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorReport {
    pub request_id: String,
    /// Including the INIT, for a cold start.
    pub duration_ms: f64,
    /// Whether the invocation started the runtime (the emulator writes a placeholder
    /// `Init Duration` then, and only then).
    pub cold: bool,
}

/// The emulator's `REPORT RequestId: 5a1f\tInit Duration: …\tDuration: 5.43 ms\t…`.
pub fn report(line: &str) -> Option<EmulatorReport> {
    let rest = line.strip_prefix("REPORT")?;
    let parts: Vec<&str> = rest.split('\t').map(str::trim).collect();
    let request_id = parts
        .iter()
        .find_map(|part| part.strip_prefix("RequestId:"))?
        .trim()
        .to_owned();
    let duration_ms = parts
        .iter()
        .find(|part| part.starts_with("Duration:"))
        .and_then(|part| field_ms(part, "Duration:"))?;
    let cold = parts.iter().any(|part| part.starts_with("Init Duration:"));
    Some(EmulatorReport {
        request_id,
        duration_ms,
        cold,
    })
}

fn field_ms(text: &str, name: &str) -> Option<f64> {
    let at = text.find(name)? + name.len();
    let value: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    value.parse().ok()
}

/// The children of a process, from every one of its threads' `/proc/<pid>/task/<tid>/children`
/// (the emulator is multi-threaded: any thread may have started the runtime).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The peak resident set (kB) of the runtime: the emulator's child process.
pub fn runtime_peak_rss_kb(emulator_pid: u32) -> Option<u64> {
    children(emulator_pid)
        .into_iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .max()
}

/// What one environment's emulator has said so far, turned into invocations.
#[derive(Debug)]
pub struct Reporter {
    function: String,
    memory_size_mb: u64,
    emulator_pid: Option<u32>,
    pending: Mutex<Pending>,
}

/// A cold start's halves, whichever came first; the invocations started so far.
#[derive(Debug, Default)]
struct Pending {
    init_ms: Option<f64>,
    cold: Option<Invocation>,
    starts: u64,
    /// The latest START lines' request ids, by their number (1 = the environment's first).
    started: std::collections::VecDeque<(u64, String)>,
}

/// How many START lines a reporter remembers (an invocation's record is written just after it).
const STARTS_KEPT: usize = 16;

impl Reporter {
    pub fn new(function: &str, memory_size_mb: u64, emulator_pid: Option<u32>) -> Self {
        Self {
            function: function.to_owned(),
            memory_size_mb,
            emulator_pid,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Reads one line of the emulator's output. `None`: not a report, show it as it is. Otherwise
    /// the invocations it completes (none while a cold start waits for its other half). The
    /// runtime's memory is read at the REPORT, while the runtime is still alive.
    pub fn read(&self, line: &str) -> Option<Vec<Invocation>> {
        let mut pending = self.pending.lock().ok()?;
        if let Some(id) = start(line) {
            pending.starts += 1;
            let n = pending.starts;
            if pending.started.len() == STARTS_KEPT {
                pending.started.pop_front();
            }
            pending.started.push_back((n, id.to_owned()));
            return None;
        }
        if let Some(init) = init_duration(line) {
            return Some(match pending.cold.take() {
                Some(cold) => vec![with_init(cold, init)],
                None => {
                    pending.init_ms = Some(init);
                    Vec::new()
                }
            });
        }
        let report = report(line)?;
        // A cold start still waiting for its INIT when the next REPORT comes is shown without it.
        let mut done: Vec<Invocation> = pending.cold.take().into_iter().collect();
        let invocation = Invocation {
            function: self.function.clone(),
            request_id: report.request_id,
            at: Utc::now(),
            duration_ms: report.duration_ms,
            init_ms: None,
            memory_size_mb: self.memory_size_mb,
            peak_rss_kb: self.emulator_pid.and_then(runtime_peak_rss_kb),
        };
        match (report.cold, pending.init_ms.take()) {
            (true, Some(init)) => done.push(with_init(invocation, init)),
            (true, None) => pending.cold = Some(invocation),
            (false, _) => done.push(invocation),
        }
        Some(done)
    }

    /// How many invocations the emulator has started (START lines read).
    pub fn starts(&self) -> u64 {
        self.pending.lock().map_or(0, |p| p.starts)
    }

    /// The request id of the invocation that started after the first `after` ones (the next
    /// one, not the latest: others may have started since), waiting up to `wait` for its START
    /// line (the emulator prints it before the runtime gets the event, but another task reads it).
    pub async fn request_id_after(&self, after: u64, wait: std::time::Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(p) = self.pending.lock()
                && p.starts > after
            {
                return p
                    .started
                    .iter()
                    .find(|(n, _)| *n == after + 1)
                    .map(|(_, id)| id.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
}

/// `START RequestId: 5a1f Version: $LATEST` → `5a1f`.
fn start(line: &str) -> Option<&str> {
    line.strip_prefix("START RequestId:")?
        .split_whitespace()
        .next()
}

/// A cold start's invocation with the INIT that went before it, taken out of its duration.
fn with_init(invocation: Invocation, init_ms: f64) -> Invocation {
    Invocation {
        duration_ms: (invocation.duration_ms - init_ms).max(0.0),
        init_ms: Some(init_ms),
        ..invocation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAPID_INIT: &str =
        "24 Nov 2026 05:31:54,250 [INFO] (rapid) INIT REPORT(durationMs: 2.426000)";
    const EMULATOR_REPORT: &str = "REPORT RequestId: 5a1f\tInit Duration: 0.41 ms\tDuration: 5.43 ms\tBilled Duration: 6 ms\tMemory Size: 128 MB\tMax Memory Used: 128 MB";

    const WARM_REPORT: &str = "REPORT RequestId: 6b2e\tDuration: 1.44 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 128 MB\t";

    #[test]
    fn the_emulator_lines_are_read_for_their_figures() {
        assert_eq!(init_duration(RAPID_INIT), Some(2.426));
        let cold = report(EMULATOR_REPORT).unwrap();
        assert_eq!(
            (cold.request_id.as_str(), cold.duration_ms, cold.cold),
            ("5a1f", 5.43, true)
        );
        assert!(!report(WARM_REPORT).unwrap().cold);
        assert_eq!(report("START RequestId: 5a1f Version: $LATEST"), None);
    }

    #[test]
    fn a_cold_start_gets_its_init_in_either_order_and_the_placeholders_are_replaced() {
        let reporter = Reporter::new("create-order", 256, None);
        assert_eq!(reporter.read(RAPID_INIT), Some(vec![]));
        let cold = reporter.read(EMULATOR_REPORT).unwrap().remove(0);
        assert_eq!(cold.init_ms, Some(2.426));
        assert!((cold.duration_ms - (5.43 - 2.426)).abs() < 1e-9);
        let warm = reporter.read(WARM_REPORT).unwrap().remove(0);
        assert_eq!((warm.init_ms, warm.duration_ms), (None, 1.44));

        // The REPORT read before the INIT (they come on different streams) waits for it.
        let reporter = Reporter::new("create-order", 256, None);
        assert_eq!(reporter.read(EMULATOR_REPORT), Some(vec![]));
        assert_eq!(reporter.read(RAPID_INIT).unwrap()[0].init_ms, Some(2.426));
        assert_eq!(
            reporter.read("START RequestId: 6b2e Version: $LATEST"),
            None
        );

        let line = Invocation {
            peak_rss_kb: Some(18_500),
            duration_ms: 5.43,
            ..cold
        }
        .report_line();
        assert_eq!(
            line,
            "REPORT RequestId: 5a1f\tDuration: 5.43 ms\tBilled Duration: 6 ms\tMemory Size: 256 MB\tMax Memory Used: 19 MB\tInit Duration: 2.43 ms"
        );
        assert!(!warm.report_line().contains("Init Duration"));
    }

    #[tokio::test]
    async fn a_start_line_names_the_invocation_under_way() {
        let reporter = Reporter::new("f", 128, None);
        let before = reporter.starts();
        assert_eq!(
            reporter.read("START RequestId: 6b2e Version: $LATEST"),
            None
        );
        let wait = std::time::Duration::from_millis(10);
        assert_eq!(
            reporter.request_id_after(before, wait).await.as_deref(),
            Some("6b2e")
        );
        assert_eq!(reporter.request_id_after(before + 1, wait).await, None);
        // Another invocation started since: the first one's id is still the one answered.
        reporter.read("START RequestId: 7c3f Version: $LATEST");
        assert_eq!(
            reporter.request_id_after(before, wait).await.as_deref(),
            Some("6b2e")
        );
    }

    #[test]
    fn a_process_peak_memory_is_read_from_proc() {
        // This test process's own parent has it as a child: its VmHWM is found there.
        let parent = std::os::unix::process::parent_id();
        assert!(children(parent).contains(&std::process::id()));
        assert!(runtime_peak_rss_kb(parent).is_some_and(|kb| kb > 0));
    }
}
