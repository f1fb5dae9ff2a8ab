//! RELIABILITY.md: the schedule, the ledger's figures, the violations and the machine.

use std::fmt::Write;

use crate::Run;

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| {
            format!(", {:.0} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores{memory}, Linux {}", kernel.trim())
}

/// The report in Markdown.
pub fn markdown(run: &Run, command: &str) -> String {
    let l = &run.ledger;
    let c = &run.config;
    let mut md = String::new();
    let verdict = if l.violations.is_empty() {
        "**No violation.**".to_owned()
    } else {
        format!("**{} violations.**", l.violations.len())
    };
    let _ = writeln!(
        md,
        "# Reliability\n\nWritten by `{command}` ({}) on {} — {verdict}\n",
        run.config.schedule.name,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    );
    let _ = writeln!(
        md,
        "{} orders from {} customers ({} at a time) through the whole local app — every function's \
         release binary under aws-lambda-rie, reaching DynamoDB Local (on disk), moto and the payment \
         emulator through devkit's fault proxies — while the schedule below ran; then faults off and \
         the system left to drain, and the ledger read from the tables, the queues and the payment \
         emulator's own charges. Machine: {}. Load {:.0} s, drain {:.0} s.\n",
        c.orders,
        c.users,
        c.concurrency,
        machine(),
        run.load_time.as_secs_f64(),
        run.drain_time.as_secs_f64(),
    );
    let _ = writeln!(
        md,
        "Mix: 55 % paid (`tok_visa`), 15 % declined (`tok_chargeDeclined`), 15 % cancelled by the customer within 1.5 s, 15 % left to expire (`tok_429`: the provider never authorizes); {} hot products with {} units each, {} well-stocked ones; 35 % of the orders want a hot product. Reservation: 1 minute. New orders wait while more than {} messages wait in the queues (moto reads a queue's every message at each receive, so a backlog would slow the whole pipeline down): {:.1} orders/s on average. A failed queue message is received again after 3 s (Lambda: after the visibility timeout; the receive count and the redrive are Lambda's).\n",
        c.hot_products,
        c.hot_stock,
        c.stocked_products,
        c.max_backlog,
        c.orders as f64 / run.load_time.as_secs_f64().max(0.001)
    );

    let _ = writeln!(md, "## The ledger\n");
    let _ = writeln!(md, "| check | figure |\n|---|---|");
    let refused: Vec<String> = l
        .refused
        .iter()
        .map(|(s, n)| format!("{n} × {s}"))
        .collect();
    let rows = [
        (
            "orders acknowledged (201) / in the table",
            format!("{} / {}", l.acknowledged, l.in_table),
        ),
        (
            "orders refused (definite 4xx)",
            if refused.is_empty() {
                "none".into()
            } else {
                refused.join(", ")
            },
        ),
        (
            "acknowledged within 2 s of DynamoDB Local's SIGKILL and gone after its restart, with all of their writes (the emulator answers before its write is on disk; DynamoDB does not)",
            l.lost_to_emulator.len().to_string(),
        ),
        (
            "requests with no definite answer after every retry",
            l.unanswered.to_string(),
        ),
        (
            "products whose stock adds up (initial + adjustments = stock + units in live orders)",
            format!(
                "{} of {}",
                l.products_checked - count(l, "stock conservation"),
                l.products_checked
            ),
        ),
        ("units in live orders", l.units_sold.to_string()),
        (
            "charges at the provider (succeeded) / captured",
            format!("{} / {}", l.charges, l.captured),
        ),
        (
            "events in the outbox / deliveries owed / inbox records",
            format!(
                "{} / {} / {}",
                l.events, l.deliveries_expected, l.inbox_records
            ),
        ),
        (
            "dead letters (all poisoned on purpose)",
            l.dead_letters
                .iter()
                .map(|(q, n)| format!("{q}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(md, "| {name} | {value} |");
    }
    let _ = writeln!(
        md,
        "\n### How the orders ended, by what the customer meant\n"
    );
    let _ = writeln!(md, "| intent | ended |\n|---|---|");
    for (intent, ends) in &l.outcomes {
        let ends: Vec<String> = ends.iter().map(|(e, n)| format!("{n} {e}")).collect();
        let _ = writeln!(md, "| {intent} | {} |", ends.join(", "));
    }
    let _ = writeln!(md, "\n### Violations\n");
    if l.violations.is_empty() {
        let _ = writeln!(
            md,
            "None: no order lost or duplicated, no unit oversold or lost, every order in one terminal \
             state as its customer's requests allow, captured = total exactly for the FULFILLED, no \
             live or captured authorization on a cancelled order, at most one charge per order, every \
             event recorded once by each of its consumers and nothing else, the DLQs hold only what \
             was poisoned."
        );
    } else {
        let _ = writeln!(md, "| check | subject | detail |\n|---|---|---|");
        for v in l.violations.iter().take(50) {
            let _ = writeln!(md, "| {} | `{}` | {} |", v.check, v.subject, v.detail);
        }
        if l.violations.len() > 50 {
            let _ = writeln!(
                md,
                "\n…and {} more (the full ledger is kept).",
                l.violations.len() - 50
            );
        }
    }

    let _ = writeln!(md, "\n## The schedule\n");
    let _ = writeln!(
        md,
        "While the orders came in (each request or invocation meets the first rule that fires):\n"
    );
    let _ = writeln!(
        md,
        "| service | operation | fault | probability | fired |\n|---|---|---|---:|---:|"
    );
    for rule in &c.schedule.rules {
        let fired: u64 = run
            .fired
            .iter()
            .filter(|f| {
                f.service == rule.service
                    && f.fault == rule.fault.name()
                    && (rule.operation == "*" || rule.operation == f.operation)
            })
            .map(|f| f.count)
            .sum();
        let service = rule.service.name();
        let fault = match &rule.fault {
            devkit::chaos::Fault::Latency { ms } => format!("latency {ms} ms"),
            devkit::chaos::Fault::KillRuntime { within_ms } => {
                format!("kill-runtime (within {within_ms} ms)")
            }
            other => other.name().to_owned(),
        };
        let _ = writeln!(
            md,
            "| {service} | `{}` | {fault} | {} | {fired} |",
            rule.operation, rule.probability
        );
    }
    let skews: Vec<String> = c
        .schedule
        .skews
        .iter()
        .map(|s| format!("{} {:+} s", s.function, s.seconds))
        .collect();
    let _ = writeln!(
        md,
        "\nClocks skewed across the reservation's deadline for the whole run (libfaketime; monotonic \
         clocks true): {}.",
        skews.join(", ")
    );
    let _ = writeln!(md, "\nAt set points of the load:\n");
    for line in &run.happenings {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "\n### Faults that fired, by kind, and the client retries\n"
    );
    let mut by_kind: std::collections::BTreeMap<&str, u64> = Default::default();
    for f in &run.fired {
        *by_kind.entry(f.fault.as_str()).or_default() += f.count;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(md, "- Faults: {}.", kinds.join(", "));
    let retries = crate::retries(&run.placed);
    let total: usize = retries.values().sum();
    let causes: Vec<String> = retries.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        md,
        "- Client retries (same `Idempotency-Key`, same body): {total} ({}); orders answered \
         `Idempotent-Replayed: true`: {}.",
        if causes.is_empty() {
            "none".into()
        } else {
            causes.join(", ")
        },
        run.placed.iter().filter(|p| p.create.replayed).count()
    );
    md
}

fn count(ledger: &crate::ledger::Ledger, check: &str) -> usize {
    ledger
        .violations
        .iter()
        .filter(|v| v.check == check)
        .count()
}
