//! Cold starts: a fresh aws-lambda-rie and runtime process per start, one invocation, then the
//! emulator's INIT REPORT (runtime start → first `/next`), the invocation's REPORT duration, and the
//! runtime process's peak resident memory (VmHWM), read from /proc before it is stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devkit::console::Console;
use devkit::rie::{FunctionLaunch, FunctionPool};

use crate::BenchError;

/// One thing to start cold: a function's binary (or the peer's bootstrap) with its environment.
#[derive(Debug, Clone)]
pub struct Subject {
    pub label: String,
    pub binary: PathBuf,
    pub env: BTreeMap<String, String>,
    pub event: Vec<u8>,
    pub memory_mb: u64,
    /// Started at this memory size's share of a core (devkit's CPU cgroup), or unthrottled.
    pub cpu_share_mb: Option<u64>,
}

/// The cold starts are measured again at this memory size's CPU share (Lambda's smallest: 7.2 %
/// of a core), labelled with [`SHARE_SUFFIX`].
pub const SHARE_MB: u64 = 128;
pub const SHARE_SUFFIX: &str = " @128 MB share";

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The emulator's INIT REPORT duration.
    pub init_ms: f64,
    /// The first invocation, after INIT: the emulator's REPORT duration (which starts the runtime,
    /// so it includes INIT) less the INIT duration.
    pub first_ms: f64,
    /// From starting the emulator to the first response, as the caller saw it.
    pub wall_ms: f64,
    pub peak_rss_kb: u64,
}

/// `… (rapid) INIT REPORT(durationMs: 2.426000)` → 2.426.
pub fn init_duration(line: &str) -> Option<f64> {
    let at = line.find("INIT REPORT")?;
    field_ms(&line[at..], "durationMs:")
}

/// `REPORT RequestId: … Duration: 5.43 ms Billed Duration: …` → 5.43.
pub fn invoke_duration(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("REPORT")?;
    rest.split('\t')
        .map(str::trim)
        .find(|part| part.starts_with("Duration:"))
        .and_then(|part| field_ms(part, "Duration:"))
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

/// The peak resident set (kB) of the emulator's child process: the runtime.
fn runtime_peak_rss(emulator_pid: u32) -> Option<u64> {
    let children = crate::cpu::children(emulator_pid).into_iter();
    children
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .max()
}

/// Starts the subject `starts` times, each in a new emulator and process.
pub async fn measure(
    subject: &Subject,
    emulator: &Path,
    starts: usize,
) -> Result<Vec<Sample>, BenchError> {
    let console = Arc::new(Console::recording());
    let launch = FunctionLaunch {
        name: subject.label.clone(),
        binary: subject.binary.clone(),
        env: subject.env.clone(),
        timeout_secs: 30,
        memory_mb: subject.memory_mb,
        cpu_share_mb: subject.cpu_share_mb,
    };
    let mut samples = Vec::with_capacity(starts);
    for _ in 0..starts {
        let began = Instant::now();
        let pool = FunctionPool::start(&launch, emulator, 1, &console)?;
        let answer = pool.invoke(&subject.event).await?;
        let wall_ms = began.elapsed().as_secs_f64() * 1000.0;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&answer)
            && value.get("errorType").is_some()
        {
            pool.stop();
            return Err(BenchError::Failed(format!(
                "{} failed its first invocation: {value}",
                subject.label
            )));
        }
        let peak_rss_kb = pool
            .emulator_pids()
            .first()
            .and_then(|pid| runtime_peak_rss(*pid))
            .unwrap_or(0);
        // The emulator prints REPORT just after it answers: wait for it.
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut init, mut first) = (None, None);
        while (init.is_none() || first.is_none()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            lines.extend(console.take_recorded());
            init = lines.iter().find_map(|(_, l)| init_duration(l));
            first = lines.iter().find_map(|(_, l)| invoke_duration(l));
        }
        pool.stop();
        drop(pool);
        let (Some(init_ms), Some(first_ms)) = (init, first) else {
            return Err(BenchError::Failed(format!(
                "{}: the emulator printed no INIT REPORT/REPORT line; it printed: {:?}",
                subject.label,
                lines.iter().map(|(_, l)| l).collect::<Vec<_>>()
            )));
        };
        samples.push(Sample {
            init_ms,
            first_ms: (first_ms - init_ms).max(0.0),
            wall_ms,
            peak_rss_kb,
        });
        console.take_recorded();
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_emulator_reports() {
        assert_eq!(
            init_duration(
                "24 Nov 2026 05:31:54,250 [INFO] (rapid) INIT REPORT(durationMs: 2.426000)"
            ),
            Some(2.426)
        );
        assert_eq!(
            invoke_duration(
                "REPORT RequestId: 5a1f\tInit Duration: 0.41 ms\tDuration: 5.43 ms\tBilled Duration: 6 ms\tMemory Size: 128 MB\tMax Memory Used: 128 MB"
            ),
            Some(5.43)
        );
        assert_eq!(invoke_duration("START RequestId: 5a1f"), None);
        assert_eq!(init_duration("REPORT RequestId: x Duration: 1 ms"), None);
    }
}
