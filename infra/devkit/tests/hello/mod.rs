//! The smallest function there is (bench-floor's `hello-floor`, answering `{}`), built and described
//! for the tests of the local Lambda layer's environments.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use devkit::rie::FunctionLaunch;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// hello-floor, built now, as a function of its own name (unique to this test process).
pub fn launch(name: &str, cpu_share_mb: Option<u64>) -> FunctionLaunch {
    let status = Command::new("cargo")
        .args(["build", "--quiet", "-p", "bench-floor"])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success());
    FunctionLaunch {
        name: format!("{name}-{}", std::process::id()),
        binary: root().join("target/debug/hello-floor"),
        env: BTreeMap::new(),
        timeout_secs: 10,
        memory_mb: 128,
        cpu_share_mb,
    }
}
