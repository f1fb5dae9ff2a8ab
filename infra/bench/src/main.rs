//! `make bench`: how fast the orders functions are, and how close to the floor, in one run on the
//! local emulators (DynamoDB Local, moto's SQS, aws-lambda-rie). Writes BENCHMARKS.md.

mod cold;
mod cost;
mod cpu;
mod events;
mod load;
mod power;
mod report;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use devkit::api::{ApiRoute, Gateway};
use devkit::console::Console;
use devkit::dev::{self, DevOptions};
use devkit::rie::{FunctionLaunch, FunctionPool};
use orders_core::config::Tables;
use orders_core::service::{CreateOrderDeps, RetryPolicy};
use orders_core::store::DynamoStore;
use platform::metrics::Metrics;

use crate::load::{RunResult, Scenario, Target};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Dev(#[from] dev::DevError),
    #[error(transparent)]
    Rie(#[from] devkit::rie::RieError),
    #[error("{0}")]
    Failed(String),
    #[error("correctness check failed: {0}")]
    Incorrect(String),
}

#[derive(Debug, Parser)]
#[command(about = "Benchmarks the orders functions against the floor and a Python peer")]
struct Cli {
    /// The repository root.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Fresh starts per function for the cold-start table.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Repetitions of every warm run (the report gives their median and spread).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Orders per warm run at one environment (more at higher concurrency).
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Concurrent environments (and clients) of the warm runs.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Where the function binaries and the floors were built.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Where the chart goes (the report links it by this path).
    #[arg(long, default_value = "infra/bench/latency.svg")]
    chart: PathBuf,
    /// Release binaries of another build to compare with in the same run (`make bench BASE=<rev>`
    /// builds a revision in a worktree and passes its binaries here): their cold starts, and a
    /// warm create-order behind the same local API.
    #[arg(long)]
    baseline: Option<PathBuf>,
}

impl Cli {
    fn bin_dir(&self) -> PathBuf {
        self.root.join(&self.bin_dir)
    }
}

/// The three ways of placing an order that the warm runs compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Project,
    Peer,
    Floor,
    /// The hello-world runtime behind the same local API: what the Lambda path alone costs.
    Path,
    /// create-order as another build (`--baseline`) compiled it, behind the same local API.
    Baseline,
}

impl System {
    pub const ALL: [System; 5] = [
        System::Project,
        System::Peer,
        System::Floor,
        System::Path,
        System::Baseline,
    ];

    pub fn label(self) -> &'static str {
        match self {
            System::Project => "orders (Rust)",
            System::Peer => "Python peer",
            System::Floor => "floor (SDK only)",
            System::Path => "Lambda path only",
            System::Baseline => "orders (baseline build)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            System::Project => "r",
            System::Peer => "py",
            System::Floor => "f",
            System::Path => "p",
            System::Baseline => "b",
        }
    }

    /// The Lambda path alone places no order: it only runs on many products, unchecked.
    fn runs(self, scenario: Scenario) -> bool {
        self != System::Path || scenario == Scenario::Many
    }
}

/// One warm run's outcome.
#[derive(Debug, Clone)]
pub struct WarmRun {
    pub system: System,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub result: RunResult,
    /// CPU milliseconds per order, by process.
    pub cpu: BTreeMap<cpu::Part, f64>,
}

/// Everything measured, for the report.
#[derive(Debug, Default)]
pub struct Results {
    pub cold: Vec<(String, Vec<cold::Sample>)>,
    pub warm: Vec<WarmRun>,
    pub events: Option<events::EventLatency>,
    /// The saga at each memory size's CPU share.
    pub power: Option<power::PowerTuning>,
    /// create-order's in-function durations (the emulator's REPORT lines) at the lowest concurrency.
    pub function_ms: Vec<f64>,
    /// The same of the `--baseline` build's create-order.
    pub baseline_function_ms: Vec<f64>,
    pub packages: Vec<(String, u64, u64)>,
    pub item_sizes: Option<cost::ItemSizes>,
    /// create-order's memory size in template.yaml.
    pub memory_mb: f64,
}

/// The order quota is not what is measured: the functions get a limit no run reaches.
const NO_QUOTA: &str = "1000000";

fn options(cli: &Cli, prefix: String, environments: usize) -> DevOptions {
    DevOptions {
        root: cli.root.clone(),
        bin_dir: cli.bin_dir(),
        emulator: devkit::rie::default_emulator(&cli.root),
        port: 0,
        prefix,
        http_environments: environments,
        catalog: cli.root.join("infra/sample-catalog.json"),
        parameters: BTreeMap::from([("OrdersPerMinute".to_owned(), NO_QUOTA.to_owned())]),
        cpu_share: devkit::cpu::CpuShare::Off,
        chaos_port: None,
        console_port: None,
        queue_retry_secs: 0,
        function_env: BTreeMap::new(),
    }
}

fn say(message: &str) {
    eprintln!("bench │ {message}");
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        say(&format!("failed: {e}"));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), BenchError> {
    let stamp = chrono::Utc::now().format("%H%M%S").to_string();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let mut results = Results::default();

    say("cold starts");
    let console = Console::recording();
    let prepared = dev::prepare(&options(&cli, format!("bench{stamp}-cold"), 1), &console).await?;
    let tables = tables_of(&prepared.names)?;
    let store = DynamoStore::new(dynamo.clone(), tables.clone());
    seed_sample_catalog(&cli, &store).await?;
    let idempotency =
        cost::create_idempotency_table(&dynamo, &format!("bench{stamp}-cold")).await?;
    let create = prepared
        .launches
        .iter()
        .find(|(f, _, _)| f.logical_id == "CreateOrderFunction")
        .map(|(_, launch, _)| launch)
        .ok_or_else(|| BenchError::Failed("template.yaml has no CreateOrderFunction".into()))?;
    results.memory_mb = create.memory_mb as f64;
    // Round-robin, one start of every subject a round: a drift of the machine then touches every
    // subject alike, instead of whichever was being started at the time (a build and its baseline
    // are compared within a few percent).
    let subjects = cold_subjects(&cli, &prepared, create, &idempotency)?;
    let emulator = devkit::rie::default_emulator(&cli.root);
    let mut samples: Vec<Vec<cold::Sample>> = vec![Vec::with_capacity(cli.starts); subjects.len()];
    for _ in 0..cli.starts {
        for (subject, samples) in subjects.iter().zip(samples.iter_mut()) {
            samples.extend(cold::measure(subject, &emulator, 1).await?);
        }
    }
    for (subject, samples) in subjects.into_iter().zip(samples) {
        let init = stats::median(&samples.iter().map(|s| s.init_ms).collect::<Vec<_>>());
        say(&format!(
            "  {:24} INIT median {init:.2} ms over {} starts",
            subject.label,
            samples.len()
        ));
        results.cold.push((subject.label, samples));
    }

    for &concurrency in &cli.concurrency {
        warm(&cli, &stamp, concurrency, &config, &mut results).await?;
    }

    say("event latency under load");
    results.events = Some(events::measure(&cli, &stamp, &dynamo).await?);

    say("power tuning: the saga at each memory size's CPU share");
    results.power = Some(power::measure(&cli, &stamp, &dynamo).await?);

    results.packages = report::package_sizes(&cli.root);
    results.item_sizes = results.events.as_ref().and_then(|e| e.sizes);
    report::write(
        &cli.root,
        &cli.out,
        &cli.chart,
        &results,
        &cli_summary(&cli),
    )
    .map_err(|e| BenchError::Failed(format!("writing {}: {e}", cli.out.display())))?;
    say(&format!("wrote {}", cli.out.display()));
    Ok(())
}

fn cli_summary(cli: &Cli) -> String {
    format!(
        "{} fresh starts per function; warm runs repeated {} times with {} orders per run at one environment (×2 at 4, ×4 at 16)",
        cli.starts, cli.runs, cli.requests
    )
}

pub fn tables_of(names: &BTreeMap<String, String>) -> Result<Tables, BenchError> {
    let name = |id: &str| {
        names
            .get(id)
            .cloned()
            .ok_or_else(|| BenchError::Failed(format!("template.yaml has no {id}")))
    };
    Ok(Tables {
        products: name("ProductsTable")?,
        orders: name("OrdersTable")?,
        outbox: name("OutboxTable")?,
        inbox: name("InboxTable")?,
        stock_adjustments: name("StockAdjustmentsTable")?,
    })
}

/// The sample products the checked-in events refer to (p-1, …).
async fn seed_sample_catalog(cli: &Cli, store: &DynamoStore) -> Result<(), BenchError> {
    use orders_core::domain::{Currency, Money, Product, ProductId, ProductName, Stock};
    let path = cli.root.join("infra/sample-catalog.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::Failed(format!("{}: {e}", path.display())))?;
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| BenchError::Failed(e.to_string()))?;
    for p in list {
        let bad = |e: orders_core::domain::DomainError| BenchError::Failed(e.to_string());
        let product = Product {
            id: ProductId::parse(p["productId"].as_str().unwrap_or_default()).map_err(bad)?,
            name: ProductName::parse(p["name"].as_str().unwrap_or_default()).map_err(bad)?,
            price: Money::new(
                p["price"]["amount"].as_i64().unwrap_or_default(),
                Currency::parse(p["price"]["currency"].as_str().unwrap_or_default())
                    .map_err(bad)?,
            )
            .map_err(bad)?,
            // Every cold create-order takes some: enough for all of them.
            stock: Stock::new(1_000_000).map_err(bad)?,
            max_per_order: None,
        };
        store
            .seed_product(&product)
            .await
            .map_err(|e| BenchError::Failed(e.to_string()))?;
    }
    Ok(())
}

/// How the baseline build's functions are labelled: `create-order@baseline`.
const BASELINE_SUFFIX: &str = "@baseline";

/// The same function as another build compiled it: its binary from `--baseline`, labelled apart.
fn baseline_launch(baseline: &Path, launch: &FunctionLaunch) -> FunctionLaunch {
    let mut other = launch.clone();
    other.name = format!("{}{BASELINE_SUFFIX}", launch.name);
    if let Some(file) = launch.binary.file_name() {
        other.binary = baseline.join(file);
    }
    other
}

/// The Python peer's launch: create-order's environment, the peer's bootstrap, its idempotency table.
fn peer_launch(cli: &Cli, create: &FunctionLaunch, idempotency_table: &str) -> FunctionLaunch {
    let mut launch = create.clone();
    launch.name = "create-order-python".into();
    launch.binary = cli.root.join("infra/bench/python-peer/bootstrap");
    launch
        .env
        .insert("IDEMPOTENCY_TABLE".into(), idempotency_table.to_owned());
    launch
        .env
        .insert("POWERTOOLS_SERVICE_NAME".into(), "orders-peer".into());
    launch
}

fn cold_subjects(
    cli: &Cli,
    prepared: &dev::Prepared,
    create_launch: &FunctionLaunch,
    idempotency_table: &str,
) -> Result<Vec<cold::Subject>, BenchError> {
    let mut subjects = Vec::new();
    for (_, launch, _) in &prepared.launches {
        let event_file = cli.root.join(format!("events/{}.json", launch.name));
        let event = std::fs::read(&event_file)
            .map_err(|e| BenchError::Failed(format!("{}: {e}", event_file.display())))?;
        let builds = std::iter::once(launch.clone()).chain(
            cli.baseline
                .as_deref()
                .map(|dir| baseline_launch(dir, launch)),
        );
        for launch in builds {
            subjects.push(cold::Subject {
                label: launch.name.clone(),
                binary: launch.binary.clone(),
                env: launch.env.clone(),
                event: event.clone(),
                memory_mb: launch.memory_mb,
                cpu_share_mb: None,
            });
        }
    }
    let create = subjects
        .iter()
        .find(|s| s.label == "create-order")
        .cloned()
        .ok_or_else(|| BenchError::Failed("no create-order function".into()))?;
    let peer = peer_launch(cli, create_launch, idempotency_table);
    subjects.push(cold::Subject {
        label: peer.name,
        binary: peer.binary,
        env: peer.env,
        ..create.clone()
    });
    for floor in ["hello-floor", "sdk-floor"] {
        subjects.push(cold::Subject {
            label: floor.into(),
            binary: cli.bin_dir().join(floor),
            event: b"{}".to_vec(),
            ..create.clone()
        });
    }
    // This build's subjects again at the smallest size's share of a core, where a start's CPU
    // shows (the baseline's are left out: the comparison with it is unthrottled).
    let throttled: Vec<cold::Subject> = subjects
        .iter()
        .filter(|s| !s.label.ends_with(BASELINE_SUFFIX))
        .map(|s| cold::Subject {
            label: format!("{}{}", s.label, cold::SHARE_SUFFIX),
            cpu_share_mb: Some(cold::SHARE_MB),
            ..s.clone()
        })
        .collect();
    subjects.extend(throttled);
    Ok(subjects)
}

/// Serves a gateway on a free loopback port until the returned sender is dropped.
async fn serve_gateway(
    gateway: Arc<Gateway>,
) -> Result<(u16, tokio::sync::oneshot::Sender<()>), BenchError> {
    let (port, stop, _server) = devkit::api::serve_on_free_port(gateway)
        .await
        .map_err(|e| BenchError::Failed(format!("cannot serve the local API: {e}")))?;
    Ok((port, stop))
}

/// A local API with only `POST /orders` (JWT with `orders:write`) in front of `pool`.
async fn serve_orders_route(
    pool: &Arc<FunctionPool>,
    secret: &[u8],
    console: &Arc<Console>,
) -> Result<(u16, tokio::sync::oneshot::Sender<()>), BenchError> {
    serve_gateway(Arc::new(Gateway {
        routes: vec![ApiRoute {
            method: "POST".into(),
            path: "/orders".into(),
            scopes: Some(vec!["orders:write".into()]),
            function: pool.clone(),
        }],
        secret: secret.to_vec(),
        console: console.clone(),
    }))
    .await
}

pub fn tokens(secret: &[u8]) -> Result<Vec<String>, BenchError> {
    (0..load::USERS)
        .map(|i| {
            devkit::jwt::issue(secret, &format!("bench-u{i}"), &["orders:write"], 3600)
                .map_err(|e| BenchError::Failed(e.to_string()))
        })
        .collect()
}

/// Requests per run at this many environments.
fn requests_at(cli: &Cli, concurrency: usize) -> usize {
    match concurrency {
        1 => cli.requests,
        2..=4 => cli.requests * 2,
        _ => cli.requests * 4,
    }
}

async fn warm(
    cli: &Cli,
    stamp: &str,
    concurrency: usize,
    config: &aws_config::SdkConfig,
    results: &mut Results,
) -> Result<(), BenchError> {
    say(&format!("warm create-order at {concurrency} environments"));
    let prefix = format!("bench{stamp}-c{concurrency}");
    let console = Arc::new(Console::recording());
    let app = dev::start(&options(cli, prefix.clone(), concurrency), console.clone()).await?;
    let (port, _stop_project) = serve_gateway(app.gateway.clone()).await?;

    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let idempotency = cost::create_idempotency_table(&dynamo, &prefix).await?;
    let create = app
        .launches
        .get("CreateOrderFunction")
        .ok_or_else(|| BenchError::Failed("template.yaml has no CreateOrderFunction".into()))?;
    let emulator = devkit::rie::default_emulator(&cli.root);
    let peer = FunctionPool::start(
        &peer_launch(cli, create, &idempotency),
        &emulator,
        concurrency,
        &console,
    )?;
    let hello_launch = FunctionLaunch {
        name: "hello-floor".into(),
        binary: cli.bin_dir().join("hello-floor"),
        ..create.clone()
    };
    let hello = FunctionPool::start(&hello_launch, &emulator, concurrency, &console)?;
    let baseline = cli
        .baseline
        .as_deref()
        .map(|dir| {
            FunctionPool::start(
                &baseline_launch(dir, create),
                &emulator,
                concurrency,
                &console,
            )
        })
        .transpose()?;
    let secret = &app.gateway.secret;
    let (peer_port, _stop_peer) = serve_orders_route(&peer, secret, &console).await?;
    let (hello_port, _stop_hello) = serve_orders_route(&hello, secret, &console).await?;
    let mut emulators: BTreeMap<System, Vec<u32>> = BTreeMap::from([
        (
            System::Project,
            app.pools
                .get("CreateOrderFunction")
                .map(|p| p.emulator_pids())
                .unwrap_or_default(),
        ),
        (System::Peer, peer.emulator_pids()),
        (System::Floor, Vec::new()),
        (System::Path, hello.emulator_pids()),
    ]);

    let tables = tables_of(&app.names)?;
    let store = DynamoStore::new(dynamo.clone(), tables.clone());
    let tokens = tokens(&app.gateway.secret)?;
    let mut targets: BTreeMap<System, Arc<Target>> = BTreeMap::from([
        (
            System::Project,
            Arc::new(Target::http(port, tokens.clone())),
        ),
        (
            System::Peer,
            Arc::new(Target::http(peer_port, tokens.clone())),
        ),
        (
            System::Path,
            Arc::new(Target::http(hello_port, tokens.clone())),
        ),
        (
            System::Floor,
            Arc::new(Target::Floor {
                deps: CreateOrderDeps {
                    store: DynamoStore::new(dynamo.clone(), tables.clone()),
                    orders_per_minute: NO_QUOTA.parse().unwrap_or(u32::MAX),
                    event_source: "orders".into(),
                    reservation: chrono::Duration::minutes(15),
                    retry: RetryPolicy::default(),
                    metrics: Arc::new(Metrics::discard()),
                    terms: Default::default(),
                },
            }),
        ),
    ]);

    let mut _stop_baseline = None;
    if let Some(pool) = &baseline {
        let (port, stop) = serve_orders_route(pool, secret, &console).await?;
        _stop_baseline = Some(stop);
        emulators.insert(System::Baseline, pool.emulator_pids());
        targets.insert(
            System::Baseline,
            Arc::new(Target::http(port, tokens.clone())),
        );
    }

    // DynamoDB Local is a JVM: its JIT makes the first thousands of transactions slower, which would
    // favour whoever runs last. Warm it with the floor first (the first time at length).
    let jit = if results.warm.is_empty() { 3000 } else { 300 };
    let catalogue = load::seed(&store, Scenario::Many, &format!("jit{concurrency}"), 0).await?;
    load::drive(
        targets[&System::Floor].clone(),
        &catalogue,
        jit,
        concurrency.max(2),
    )
    .await?;

    // Warm every environment (their cold starts are not part of these runs).
    for (system, target) in &targets {
        let catalogue = load::seed(
            &store,
            Scenario::Many,
            &format!("w{concurrency}{}", system.tag()),
            0,
        )
        .await?;
        let result = load::drive(target.clone(), &catalogue, concurrency * 4, concurrency).await?;
        if *system != System::Path {
            load::check(&store, Scenario::Many, &catalogue, &result, system.label()).await?;
        }
    }
    console.take_recorded();

    let requests = requests_at(cli, concurrency);
    for run in 0..cli.runs {
        for scenario in [Scenario::Many, Scenario::Hot] {
            // Rotate who goes first, so a drift of the machine does not favour one of them.
            let mut order: Vec<System> = targets.keys().copied().collect();
            let systems = order.len();
            order.rotate_left(run % systems);
            for system in order.into_iter().filter(|s| s.runs(scenario)) {
                let tag = format!(
                    "{concurrency}{}{}{run}",
                    system.tag(),
                    scenario_tag(scenario)
                );
                let catalogue = load::seed(&store, scenario, &tag, requests).await?;
                let before = cpu::snapshot(&emulators[&system]);
                let result =
                    load::drive(targets[&system].clone(), &catalogue, requests, concurrency)
                        .await?;
                let cpu =
                    cpu::per_order(&before, &cpu::snapshot(&emulators[&system]), result.sent());
                if system != System::Path {
                    load::check(&store, scenario, &catalogue, &result, system.label()).await?;
                }
                let sorted = stats::sorted(&result.latencies_ms);
                say(&format!(
                    "  {:18} {:16} run {}: p50 {:.2} ms, p99 {:.2} ms, {:.0} orders/s, {} created, {} sold out",
                    system.label(),
                    scenario.label(),
                    run + 1,
                    stats::percentile(&sorted, 50.0),
                    stats::percentile(&sorted, 99.0),
                    result.orders_per_second(),
                    result.count(201),
                    result.count(409)
                ));
                results.warm.push(WarmRun {
                    system,
                    scenario,
                    concurrency,
                    result,
                    cpu,
                });
            }
        }
    }
    // The function's own durations, at the lowest concurrency of the run (the warm targets' column).
    if Some(&concurrency) == cli.concurrency.iter().min() {
        let recorded = console.take_recorded();
        // An environment's lines are labelled `name`, or `name#i` when the pool has several.
        let durations = |function: &str| {
            recorded
                .iter()
                .filter(|(label, _)| label.split('#').next() == Some(function))
                .filter_map(|(_, line)| devkit::invocations::report(line).map(|r| r.duration_ms))
                .collect::<Vec<_>>()
        };
        results.function_ms = durations("create-order");
        results.baseline_function_ms = durations("create-order@baseline");
    }
    peer.stop();
    hello.stop();
    if let Some(pool) = baseline {
        pool.stop();
    }
    app.stop();
    Ok(())
}

fn scenario_tag(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Many => "m",
        Scenario::Hot => "h",
    }
}
