//! `make chaos`: see the crate's documentation. Exits non-zero on any violation, keeping the run's
//! folder (the ledger, the app's log, the emulators' data and logs) for debugging.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::schedule::Schedule;
use chaos::{Config, emulators::Emulators};
use clap::Parser;

#[derive(Parser)]
#[command(about = "The whole saga under faults, and a ledger that proves nothing was lost")]
struct Cli {
    /// The repository root.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))]
    root: PathBuf,
    /// Where the function binaries are.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Orders to place (default 5,000; 300 with --short).
    #[arg(long)]
    orders: Option<usize>,
    /// Customers placing them (default 200; 60 with --short).
    #[arg(long)]
    users: Option<usize>,
    /// Customers placing orders at the same time.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// New orders wait while more messages than this wait in the queues.
    #[arg(long, default_value_t = 200)]
    max_backlog: u64,
    /// The short variant of `make test`: few orders, every probability ×5, each rule once early.
    #[arg(long)]
    short: bool,
    /// Write the report here (RELIABILITY.md).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where the run's folder goes (kept when a check fails).
    #[arg(long, default_value = "target/chaos")]
    runs: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.canonicalize().unwrap_or(cli.root.clone());
    let dir = root.join(&cli.runs).join(format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    ));
    let emulators = match Emulators::start(&root, &dir) {
        Ok(emulators) => emulators,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, value) in &emulators.env {
        // SAFETY: no other thread runs yet (the async runtime is built below), so nothing reads
        // the environment while it is written.
        unsafe { std::env::set_var(name, value) };
    }
    let hot_products = if cli.short { 3 } else { 8 };
    let orders = cli.orders.unwrap_or(if cli.short { 300 } else { 5_000 });
    let users = cli.users.unwrap_or(if cli.short { 60 } else { 200 });
    let config = Config {
        bin_dir: cli
            .bin_dir
            .clone()
            .unwrap_or_else(|| root.join("target/release")),
        root: root.clone(),
        orders,
        users,
        concurrency: cli.concurrency,
        hot_products,
        // Enough for about 40 % of what the orders want: the hot products sell out.
        hot_stock: ((orders as f64 * 0.35 * 1.5 * 0.4) / hot_products as f64).ceil() as i64,
        stocked_products: if cli.short { 10 } else { 40 },
        drain_limit: Duration::from_secs(600),
        max_backlog: cli.max_backlog,
        schedule: if cli.short {
            Schedule::short()
        } else {
            Schedule::full()
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "chaos: {} orders from {} customers under the {}; the run's folder: {}",
        config.orders,
        config.users,
        config.schedule.name,
        dir.display()
    );
    let run = match runtime.block_on(chaos::run(config, &emulators)) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("chaos: {e} (the run's folder is kept: {})", dir.display());
            return ExitCode::FAILURE;
        }
    };
    drop(runtime);
    drop(emulators);
    let command = if cli.short {
        "the short variant in make test"
    } else {
        "make chaos"
    };
    let report = chaos::report::markdown(&run, command);
    println!("{report}");
    let ledger = serde_json::json!({
        "ledger": run.ledger,
        "placed": run.placed,
        "fired": run.fired,
        "happenings": run.happenings,
        "observed": run.observed,
    });
    let _ = std::fs::write(dir.join("ledger.json"), ledger.to_string());
    let _ = std::fs::write(dir.join("RELIABILITY.md"), &report);
    if let Some(path) = &cli.report
        && let Err(e) = std::fs::write(path, &report)
    {
        eprintln!("chaos: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if run.ledger.violations.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "chaos: {} violations; the full ledger, the app's log and the emulators' data are kept in {}",
            run.ledger.violations.len(),
            dir.display()
        );
        ExitCode::FAILURE
    }
}
