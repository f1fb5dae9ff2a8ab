//! `make bench` in miniature: every phase once, on the debug build, against the emulators that
//! `make test` started, so that the harness keeps working and the Python peer keeps passing the same
//! correctness checks as the project (a failed check fails the run). The numbers are not looked at.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_quick_bench_measures_every_phase_and_writes_the_report() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "run under `make test` (or infra/with-emulators.sh), which starts the emulators"
    );
    assert!(
        root().join(".tools/peer/bin/python").is_file(),
        "the Python peer is not installed: infra/bootstrap.sh --bench (make test does it)"
    );
    // GIVEN the debug build of every function and of the floors
    let build = Command::new("cargo")
        .args(["build", "--workspace", "--locked", "--bins"])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(build.success(), "cargo build failed");

    // WHEN the bench runs once through every phase, compared with a "baseline" build (the same
    // binaries: the comparison's path is what is checked here, not its numbers)
    let out = tempfile_dir();
    let report = out.join("BENCHMARKS.md");
    let chart = out.join("latency.svg");
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--root")
        .arg(root())
        .args(["--bin-dir", "target/debug", "--starts", "2", "--runs", "1"])
        .args(["--requests", "20", "--concurrency", "2"])
        .arg("--baseline")
        .arg(root().join("target/debug"))
        .arg("--out")
        .arg(&report)
        .arg("--chart")
        .arg(&chart)
        .output()
        .expect("the bench runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the bench failed:\n{stderr}");

    // THEN every system passed its checks and the report holds every section
    let text = std::fs::read_to_string(&report).expect("the report was written");
    for section in [
        "## Targets",
        "## Cold start",
        "| create-order-python |",
        "| hello-floor |",
        "| create-order @128 MB share |",
        "| hello-floor @128 MB share |",
        "create-order runtime CPU per order ≤ 0.5 ms, and ≤ half the baseline build's",
        "### one hot product",
        "| 2 | Python peer |",
        "| 2 | floor (SDK only) |",
        "| create-order@baseline |",
        "| 2 | orders (baseline build) |",
        "no worse than the baseline build",
        "own warm duration (REPORT, median) no worse than the baseline",
        "### Where the CPU goes",
        "## Event and saga latency",
        "| FULFILLED (orders recorded `payment.captured`) | 20 |",
        "## Cost per million fulfilled orders",
        "## Power tuning",
    ] {
        assert!(
            text.contains(section),
            "the report lacks {section}:\n{text}"
        );
    }
    // AND power tuning measured every function on the order path at five sizes, and chose one
    let power = &text[text.find("## Power tuning").unwrap_or(0)..];
    for function in [
        "create-order",
        "outbox-relay",
        "payment-events",
        "order-events",
        "shipment-events",
    ] {
        let rows: Vec<&str> = power
            .lines()
            .filter(|l| l.starts_with(&format!("| {function} |")))
            .collect();
        assert_eq!(rows.len(), 5, "{function}: {rows:?}");
        assert_eq!(
            rows.iter().filter(|r| r.contains("**")).count(),
            1,
            "{rows:?}"
        );
    }
    let svg = std::fs::read_to_string(&chart).expect("the chart was written");
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orders-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}
