//! Runs a function's real binary under the official Runtime Interface Emulator (`aws-lambda-rie`),
//! in one or more environments; like Lambda, each environment serves one invocation at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

use crate::chaos::{Chaos, Fault, Service};
use crate::console::Console;
use crate::cpu::CpuGroup;
use crate::invocations::{Invocation, Reporter, children};
use crate::journal::{Call, Journal};

#[derive(Debug, thiserror::Error)]
pub enum RieError {
    #[error("{0} was not found: build the functions first (cargo build)")]
    NoBinary(PathBuf),
    #[error("aws-lambda-rie was not found at {0}: run make bootstrap")]
    NoEmulator(PathBuf),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invoking {function}: {message}")]
    Invoke { function: String, message: String },
}

/// How to start a function's environments.
#[derive(Debug, Clone)]
pub struct FunctionLaunch {
    pub name: String,
    pub binary: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    /// Run each environment at this memory size's share of a core, as Lambda would (None: as fast
    /// as the machine lets it). See [`crate::cpu`].
    pub cpu_share_mb: Option<u64>,
}

struct Environment {
    child: Child,
    /// Dropped after the child: the group is removed once its processes are gone.
    cpu: Option<CpuGroup>,
    /// Where its emulator takes invocations.
    port: u16,
    /// Its reader of the emulator's lines.
    reporter: Arc<Reporter>,
}

/// Whether "no CPU cgroup" was said already (it is said once per process).
static CPU_UNAVAILABLE_SAID: AtomicBool = AtomicBool::new(false);

/// A function's environments, each behind its own aws-lambda-rie.
pub struct FunctionPool {
    name: String,
    free: Mutex<Vec<usize>>,
    slots: Semaphore,
    envs: Vec<Mutex<Option<Environment>>>,
    client: Client<HttpConnector, Full<Bytes>>,
    invocations_shared: AtomicUsize,
    invocations_throttled: AtomicUsize,
    /// The switches of `make dev`'s faults, whose `lambda` rules reach the invocations.
    chaos: OnceLock<Arc<Chaos>>,
    /// Where its calls and reports are kept (the console's).
    journal: Arc<Journal>,
    /// Each environment's label (`create-order#2`).
    labels: Vec<String>,
    /// How its environments are started (again, on a reload).
    launch: FunctionLaunch,
    emulator: PathBuf,
    console: Arc<Console>,
}

/// A loopback port nothing listens on, never the same twice in this process (the emulator binds it
/// a moment later, and the OS may offer a just-released port again).
fn free_port() -> std::io::Result<u16> {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut given = GIVEN
            .lock()
            .map_err(|_| std::io::Error::other("port registry poisoned"))?;
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
}

/// The emulator shipped in the aws-sam-cli wheel, as infra/bootstrap.sh extracts it into .tools/rie.
pub fn default_emulator(root: &Path) -> PathBuf {
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    root.join(format!(".tools/rie/aws-lambda-rie-{arch}"))
}

/// Why an invocation got no answer from its environment.
#[derive(Debug, Clone)]
enum PostError {
    /// The emulator answered, without a payload (its runtime was killed during its INIT).
    Answered(String),
    /// The emulator could not be reached, or dropped the connection: it may have died.
    Unreachable(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Answered(why) | Self::Unreachable(why) => f.write_str(why),
        }
    }
}

/// The emulator is killed when the process that started it dies, even by SIGKILL (which runs no
/// drop, so `kill_on_drop` cannot): Linux's parent-death signal. The emulator runs in its own
/// process group (Ctrl-C at the terminal is for devkit, which stops it in order), so nothing else
/// would reach it; its runtime, a child of the emulator, exits when the Runtime API goes away.
///
/// The signal follows the *thread* that spawned the child: pools are started from the runtime's
/// worker threads, which live as long as devkit does (never from `spawn_blocking`, whose threads
/// end when idle).
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec; it only makes async-signal-safe
    // calls (prctl, getppid) and does not allocate (errors are OS error codes, not messages).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was asked for.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

impl FunctionPool {
    /// Starts `count` environments. The runtime's own process starts at the first invocation
    /// (that is when the emulator reports INIT).
    pub fn start(
        launch: &FunctionLaunch,
        emulator: &Path,
        count: usize,
        console: &Arc<Console>,
    ) -> Result<Arc<Self>, RieError> {
        if !launch.binary.is_file() {
            return Err(RieError::NoBinary(launch.binary.clone()));
        }
        if !emulator.is_file() {
            return Err(RieError::NoEmulator(emulator.to_owned()));
        }
        let labels: Vec<String> = (0..count)
            .map(|index| match count {
                1 => launch.name.clone(),
                _ => format!("{}#{}", launch.name, index + 1),
            })
            .collect();
        let pool = Self {
            name: launch.name.clone(),
            free: Mutex::new((0..count).rev().collect()),
            slots: Semaphore::new(count),
            envs: (0..count).map(|_| Mutex::new(None)).collect(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            invocations_shared: AtomicUsize::new(0),
            invocations_throttled: AtomicUsize::new(0),
            chaos: OnceLock::new(),
            journal: console.journal().clone(),
            labels,
            launch: launch.clone(),
            emulator: emulator.to_owned(),
            console: console.clone(),
        };
        for index in 0..count {
            let env = pool.spawn(index)?;
            if let Ok(mut slot) = pool.envs[index].lock() {
                *slot = Some(env);
            }
        }
        Ok(Arc::new(pool))
    }

    /// Starts environment `index`'s emulator (its runtime starts at the first invocation, a child
    /// of the emulator, in its process group and CPU group).
    fn spawn(&self, index: usize) -> Result<Environment, RieError> {
        let launch = &self.launch;
        let spawn_err = |source| RieError::Spawn {
            what: launch.name.clone(),
            source,
        };
        let (port, api_port) = (
            free_port().map_err(spawn_err)?,
            free_port().map_err(spawn_err)?,
        );
        let mut command = Command::new(&self.emulator);
        command
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{api_port}"))
            .arg(&launch.binary)
            .env_clear()
            .envs(&launch.env)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_FUNCTION_NAME", &launch.name)
            .env(
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                launch.timeout_secs.to_string(),
            )
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                launch.memory_mb.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(command.as_std_mut());
        let mut child = command.spawn().map_err(spawn_err)?;
        let label = &self.labels[index];
        let console = &self.console;
        let cpu = launch.cpu_share_mb.and_then(|mb| {
            let group = CpuGroup::create(&format!("{}-{}-{port}", launch.name, index + 1), mb)
                .and_then(|group| {
                    group.add(child.id().unwrap_or_default())?;
                    Ok(group)
                });
            match group {
                Ok(group) => Some(group),
                Err(e) => {
                    if !CPU_UNAVAILABLE_SAID.swap(true, Ordering::Relaxed) {
                        console.info(&e.to_string());
                    }
                    None
                }
            }
        });
        // Both streams carry the emulator's lines; its REPORT is printed again with the real
        // figures (see [`crate::invocations`]) and kept for the console.
        let reporter = Arc::new(Reporter::new(label, launch.memory_mb, child.id()));
        let streams: [Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as _),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        for stream in streams.into_iter().flatten() {
            let (console, label) = (console.clone(), label.clone());
            let (reporter, journal) = (reporter.clone(), self.journal.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Some(reported) = reporter.read(&line) else {
                        console.function_line(&label, &line);
                        continue;
                    };
                    for invocation in reported {
                        console.function_line(&label, &invocation.report_line());
                        journal.report(invocation);
                    }
                }
            });
        }
        Ok(Environment {
            child,
            cpu,
            port,
            reporter,
        })
    }

    /// Starts a new environment in place of one whose emulator has exited. aws-lambda-rie itself
    /// can die — it panics when a runtime is killed at some moments of its start — and then every
    /// later invocation of that environment would fail; Lambda would give the next invocation a
    /// new environment, and so does this.
    async fn replace_if_gone(&self, index: usize) {
        // The connection drops as the emulator dies; its exit can be seen a moment later.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            let gone = self.envs[index]
                .lock()
                .ok()
                .and_then(|mut env| Some(env.as_mut()?.child.try_wait().ok()?.is_some()))
                .unwrap_or(false);
            if gone {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.console.error(&format!(
            "{}: aws-lambda-rie exited; starting a new environment",
            self.labels[index]
        ));
        match self.spawn(index) {
            Ok(new) => {
                let old = self.envs[index]
                    .lock()
                    .ok()
                    .and_then(|mut env| env.replace(new));
                if let Some(old) = old {
                    stop_environment(old);
                }
            }
            Err(e) => self.console.error(&e.to_string()),
        }
    }

    /// Replaces every environment with a new one, which runs the binary as it is now (after a
    /// rebuild): waits until no invocation is under way and holds new ones back meanwhile, so
    /// none fails — they wait for the new environments, whose first invocation is a cold start.
    pub async fn recycle(&self) -> Result<(), RieError> {
        let all = u32::try_from(self.envs.len()).unwrap_or(u32::MAX);
        let _every_slot = self
            .slots
            .acquire_many(all)
            .await
            .map_err(|e| RieError::Invoke {
                function: self.name.clone(),
                message: e.to_string(),
            })?;
        for index in 0..self.envs.len() {
            let old = self.envs[index].lock().ok().and_then(|mut env| env.take());
            if let Some(old) = old {
                stop_environment(old);
            }
            let new = self.spawn(index)?;
            if let Ok(mut env) = self.envs[index].lock() {
                *env = Some(new);
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The invocations this function's environments reported lately, oldest first.
    pub fn invocations(&self) -> Vec<Invocation> {
        let mine = |label: &str| label.split('#').next() == Some(self.name.as_str());
        self.journal
            .reports()
            .into_iter()
            .filter(|r| mine(&r.function))
            .collect()
    }

    /// Lets the `lambda` rules of these switches reach this function's invocations.
    pub fn inject(&self, chaos: Arc<Chaos>) {
        let _ = self.chaos.set(chaos);
    }

    /// The fault the switches pick for this function's next invocation or delivery, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.chaos.get()?.pick(Service::Lambda, &self.name)
    }

    /// Invokes the function with an event in the next free environment (waiting for one), and
    /// answers the function's response payload.
    pub async fn invoke(&self, event: &[u8]) -> Result<Bytes, RieError> {
        self.invoke_traced(event, None).await
    }

    /// Invokes with an X-Ray trace header, which the runtime receives as the invocation's trace.
    pub async fn invoke_traced(
        &self,
        event: &[u8],
        trace: Option<&str>,
    ) -> Result<Bytes, RieError> {
        let fail = |message: String| RieError::Invoke {
            function: self.name.clone(),
            message,
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let index = self
            .free
            .lock()
            .map_err(|e| fail(e.to_string()))?
            .pop()
            .ok_or_else(|| fail("no free environment".into()))?;
        let before = self.env_throttling(index);
        let (started, clock) = (chrono::Utc::now(), std::time::Instant::now());
        let (port, reporter) = self.envs[index]
            .lock()
            .ok()
            .and_then(|env| env.as_ref().map(|e| (e.port, e.reporter.clone())))
            .ok_or_else(|| fail("the environment was stopped".into()))?;
        let starts = reporter.starts();
        let post = self.post(port, event, trace);
        let result = match self.fault() {
            Some(Fault::KillRuntime { within_ms }) => {
                // A random moment of the invocation; one that ended sooner loses its environment's
                // runtime right after (the next invocation starts a new one, as on Lambda). A
                // runtime still starting then (a cold start) is killed as soon as it is there.
                let moment = Duration::from_millis(fastrand::u64(0..=within_ms));
                tokio::pin!(post);
                let mut wait = moment;
                loop {
                    tokio::select! {
                        result = &mut post => {
                            self.kill_runtime(index);
                            break result;
                        }
                        () = tokio::time::sleep(wait) => {
                            if self.kill_runtime(index) > 0 {
                                break post.await;
                            }
                            wait = Duration::from_millis(1);
                        }
                    }
                }
            }
            _ => post.await,
        };
        if let (Some(before), Some(after)) = (before, self.env_throttling(index)) {
            self.invocations_shared.fetch_add(1, Ordering::Relaxed);
            if after.throttled_periods > before.throttled_periods {
                self.invocations_throttled.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wall_ms = clock.elapsed().as_secs_f64() * 1000.0;
        if let Err(PostError::Unreachable(_)) = &result {
            self.replace_if_gone(index).await;
        }
        if let Ok(mut free) = self.free.lock() {
            free.push(index);
        }
        // Kept for the console off the caller's path: the START line naming the invocation may
        // not have been read yet.
        let call = Call {
            seq: 0,
            function: self.name.clone(),
            environment: self.labels[index].clone(),
            request_id: None,
            trace: trace.map(str::to_owned),
            started,
            wall_ms,
            event: String::from_utf8_lossy(event).into_owned(),
            answer: match &result {
                Ok(payload) => Ok(String::from_utf8_lossy(payload).into_owned()),
                Err(e) => Err(e.to_string()),
            },
        };
        let journal = self.journal.clone();
        tokio::spawn(async move {
            let request_id = reporter
                .request_id_after(starts, Duration::from_millis(200))
                .await;
            journal.call(Call { request_id, ..call });
        });
        result.map_err(|e| fail(e.to_string()))
    }

    async fn post(&self, port: u16, event: &[u8], trace: Option<&str>) -> Result<Bytes, PostError> {
        let uri = format!("http://127.0.0.1:{port}/2015-03-31/functions/function/invocations");
        // The emulator may still be starting: retry the connection for a few seconds.
        let mut last = String::new();
        for _ in 0..100 {
            let mut request = hyper::Request::post(&uri).header("content-type", "application/json");
            if let Some(trace) = trace {
                request = request.header("x-amzn-trace-id", trace);
            }
            let request = request
                .body(Full::new(Bytes::copy_from_slice(event)))
                .map_err(|e| PostError::Unreachable(e.to_string()))?;
            match self.client.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| PostError::Unreachable(e.to_string()))?
                        .to_bytes();
                    // A runtime killed before it took the event (during its INIT) leaves the
                    // emulator nothing to answer with.
                    if body.is_empty() && !status.is_success() {
                        return Err(PostError::Answered(format!(
                            "the emulator answered {status} with no payload"
                        )));
                    }
                    return Ok(body);
                }
                Err(e) if e.is_connect() => {
                    last = e.to_string();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(PostError::Unreachable(e.to_string())),
            }
        }
        Err(PostError::Unreachable(format!(
            "the emulator did not answer: {last}"
        )))
    }

    /// Kills (SIGKILL) the runtime process of environment `index`, the emulator's child, as a
    /// crash or an out-of-memory kill would; the emulator stays. Answers how many were killed.
    pub fn kill_runtime(&self, index: usize) -> usize {
        let Some(pid) = self
            .envs
            .get(index)
            .and_then(|env| env.lock().ok()?.as_ref()?.child.id())
        else {
            return 0;
        };
        let mut killed = 0;
        for child in children(pid) {
            // SAFETY: kill(2) on a process this pool's emulator started; no memory is touched.
            if unsafe { libc::kill(child as i32, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        killed
    }

    /// The process ids of the emulators, one per environment still running (the runtime is the
    /// emulator's child).
    pub fn emulator_pids(&self) -> Vec<u32> {
        self.envs
            .iter()
            .filter_map(|env| env.lock().ok()?.as_ref()?.child.id())
            .collect()
    }

    /// How often each environment running under a CPU share was throttled so far.
    pub fn throttling(&self) -> Vec<crate::cpu::Throttling> {
        (0..self.envs.len())
            .filter_map(|index| self.env_throttling(index))
            .collect()
    }

    fn env_throttling(&self, index: usize) -> Option<crate::cpu::Throttling> {
        Some(
            self.envs[index]
                .lock()
                .ok()?
                .as_ref()?
                .cpu
                .as_ref()?
                .throttling(),
        )
    }

    /// Invocations served under a CPU share, and how many of them were throttled at least once.
    pub fn throttled_invocations(&self) -> (usize, usize) {
        (
            self.invocations_shared.load(Ordering::Relaxed),
            self.invocations_throttled.load(Ordering::Relaxed),
        )
    }

    /// Stops every environment and the runtime processes under it.
    pub fn stop(&self) {
        for env in &self.envs {
            if let Some(env) = env.lock().ok().and_then(|mut env| env.take()) {
                stop_environment(env);
            }
        }
    }
}

/// Kills an environment's emulator and the runtime it started (they share a process group).
fn stop_environment(mut env: Environment) {
    if let Some(pid) = env.child.id() {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    let _ = env.child.start_kill();
}

impl Drop for FunctionPool {
    fn drop(&mut self) {
        self.stop();
    }
}
