//! The short variant of `make chaos` in `make test`: a few hundred orders through the whole local
//! app (the debug build) under every fault kind, on emulators the run starts for itself; the
//! ledger must find nothing lost, duplicated, oversold or left half-done.

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn a_few_hundred_orders_under_every_fault_kind_leave_a_clean_ledger() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_chaos"))
        .parent()
        .expect("the binary is in a folder")
        .to_owned();
    // The functions' debug binaries, as `make dev PROFILE=debug` builds them (cargo test builds
    // only this package's).
    let built = Command::new(env!("CARGO"))
        .args(["build", "--workspace", "--locked"])
        .current_dir(&root)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .status()
        .expect("cargo runs");
    assert!(built.success(), "cargo build --workspace failed");
    let output = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["--short", "--bin-dir"])
        .arg(&bin_dir)
        .arg("--root")
        .arg(&root)
        .stdin(Stdio::null())
        .output()
        .expect("the chaos run starts");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the ledger found violations (or the run failed):\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("**No violation.**"), "{report}");
}
