//! Reload on save: `make dev` watches `functions/` (every function and the shared crates). A save
//! rebuilds what `make dev` built (`cargo build`: the workspace's default members, the functions
//! and devkit — the same packages, so the same features of every dependency, and cargo rebuilds
//! only what the change reaches) and the
//! functions whose binary changed get new environments (`FunctionPool::recycle`); the emulators,
//! their tables and queued messages stay as they were. A request that arrives meanwhile is served
//! by the old build or waits for the new one; a build that fails leaves the old one serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::console::Console;
use crate::rie::FunctionPool;

/// Saves closer together than this are one change (an editor writes a file in steps).
const SETTLE: Duration = Duration::from_millis(300);

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    /// These functions run the new build.
    Functions {
        names: Vec<String>,
        build: Duration,
        total: Duration,
    },
    /// The change built into the same binaries (a comment, say): nothing to swap.
    Unchanged { build: Duration },
    /// The build failed; the old binaries keep serving.
    Failed { output: String },
}

/// How to rebuild the functions, as `make dev` built them.
#[derive(Debug, Clone)]
pub struct Build {
    /// The workspace (where `cargo build` runs).
    pub root: PathBuf,
    /// `target/debug` or `target/release` (or another `CARGO_TARGET_DIR`'s): the profile follows it.
    pub bin_dir: PathBuf,
}

impl Build {
    /// `make build`'s command. Naming only the functions (`-p`) would select other features of
    /// the shared dependencies than devkit's build did, and build the AWS SDK again (minutes).
    fn command(&self) -> tokio::process::Command {
        let mut cargo = tokio::process::Command::new("cargo");
        cargo.arg("build").arg("--locked");
        if self.bin_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        if let Some(target) = self.bin_dir.parent() {
            cargo.env("CARGO_TARGET_DIR", target);
        }
        cargo
            .current_dir(&self.root)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cargo
    }
}

/// When a binary was last written, and its size: a rebuilt binary differs in one or the other.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Rebuilds every pool's binary and gives the pools whose binary changed new environments.
pub async fn reload(build: &Build, pools: &[Arc<FunctionPool>]) -> Reloaded {
    let started = Instant::now();
    let binary = |pool: &FunctionPool| build.bin_dir.join(pool.name());
    let before: BTreeMap<String, _> = pools
        .iter()
        .map(|p| (p.name().to_owned(), stamp(&binary(p))))
        .collect();
    let output = match build.command().output().await {
        Ok(output) => output,
        Err(e) => {
            return Reloaded::Failed {
                output: format!("cargo did not run: {e}"),
            };
        }
    };
    let built = started.elapsed();
    if !output.status.success() {
        return Reloaded::Failed {
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
    }
    let changed: Vec<&Arc<FunctionPool>> = pools
        .iter()
        .filter(|p| stamp(&binary(p)) != before[p.name()])
        .collect();
    if changed.is_empty() {
        return Reloaded::Unchanged { build: built };
    }
    let swaps = changed.iter().map(|pool| pool.recycle());
    for (pool, swapped) in changed.iter().zip(futures::future::join_all(swaps).await) {
        if let Err(e) = swapped {
            return Reloaded::Failed {
                output: format!("{}: {e}", pool.name()),
            };
        }
    }
    Reloaded::Functions {
        names: changed.iter().map(|p| p.name().to_owned()).collect(),
        build: built,
        total: started.elapsed(),
    }
}

/// Whether a file event is a change to the sources (not an editor's swap file, not build output).
fn is_source(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let source = name.ends_with(".rs") || name == "Cargo.toml";
    source && !path.components().any(|c| c.as_os_str() == "target")
}

/// Watches `root/functions` until the process ends: each settled change is one reload, said on
/// the console.
pub fn watch(
    build: Build,
    pools: Vec<Arc<FunctionPool>>,
    console: Arc<Console>,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) {
            for path in event.paths.into_iter().filter(|p| is_source(p)) {
                let _ = changes.send(path);
            }
        }
    })?;
    watcher.watch(&build.root.join("functions"), RecursiveMode::Recursive)?;
    Ok(tokio::spawn(async move {
        // The watcher lives as long as the task.
        let _watcher = watcher;
        while let Some(first) = changed.recv().await {
            // Let the save settle, then take every change that came with it.
            tokio::time::sleep(SETTLE).await;
            while changed.try_recv().is_ok() {}
            let shown = first.strip_prefix(&build.root).unwrap_or(&first).display();
            console.info(&format!("reload: {shown} changed; building"));
            match reload(&build, &pools).await {
                Reloaded::Functions { names, build, total } => console.info(&format!(
                    "reload: {} running the new build, {:.1} s after the save (build {:.1} s)",
                    names.join(", "),
                    total.as_secs_f64() + SETTLE.as_secs_f64(),
                    build.as_secs_f64()
                )),
                Reloaded::Unchanged { build } => console.info(&format!(
                    "reload: built in {:.1} s; no function's binary changed",
                    build.as_secs_f64()
                )),
                Reloaded::Failed { output } => console.error(&format!(
                    "reload: the build failed; the functions keep running the last good build\n{output}"
                )),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_start_a_reload() {
        assert!(is_source(Path::new(
            "/w/functions/platform/src/http/mod.rs"
        )));
        assert!(is_source(Path::new("/w/functions/orders-core/Cargo.toml")));
        assert!(!is_source(Path::new(
            "/w/functions/orders-core/src/.mod.rs.swp"
        )));
        assert!(!is_source(Path::new("/w/functions/orders-core/src/4913")));
        assert!(!is_source(Path::new(
            "/w/functions/target/debug/build/x.rs"
        )));
    }

    #[test]
    fn the_build_follows_the_profile_make_dev_ran() {
        let build = |bin_dir: &str| Build {
            root: PathBuf::from("/w"),
            bin_dir: PathBuf::from(bin_dir),
        };
        let args = |b: Build| {
            let command = b.command();
            let std = command.as_std();
            let args: Vec<String> = std
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let target = std
                .get_envs()
                .find(|(k, _)| *k == "CARGO_TARGET_DIR")
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()));
            (args, target)
        };
        let (release, target) = args(build("/w/target/release"));
        assert!(release.contains(&"--release".to_owned()), "{release:?}");
        assert_eq!(target.as_deref(), Some("/w/target"));
        let (debug, _) = args(build("/tmp/t/debug"));
        assert!(!debug.contains(&"--release".to_owned()), "{debug:?}");
        assert_eq!(debug, ["build", "--locked"], "make build's selection");
    }
}
