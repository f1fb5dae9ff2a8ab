//! Cold starts: a fresh aws-lambda-rie and runtime process per start, one invocation, then the
//! emulator's INIT REPORT (runtime start → first `/next`), the invocation's REPORT duration, and the
//! runtime process's peak resident memory (VmHWM), read from /proc before it is stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devkit::console::Console;
use devkit::invocations::Invocation;
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
        // The emulator reports just after it answers: wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut reported = pool.invocations();
        while reported.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            reported = pool.invocations();
        }
        pool.stop();
        drop(pool);
        let Some(Invocation {
            init_ms: Some(init_ms),
            duration_ms: first_ms,
            peak_rss_kb,
            ..
        }) = reported.into_iter().next()
        else {
            return Err(BenchError::Failed(format!(
                "{}: the emulator printed no INIT REPORT/REPORT line; it printed: {:?}",
                subject.label,
                console.take_recorded()
            )));
        };
        samples.push(Sample {
            init_ms,
            first_ms,
            wall_ms,
            peak_rss_kb: peak_rss_kb.unwrap_or(0),
        });
        console.take_recorded();
    }
    Ok(samples)
}
