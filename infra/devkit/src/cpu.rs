//! CPU as Lambda gives it: in proportion to memory, 1,769 MB being one full vCPU. Each environment
//! (the emulator and the runtime it starts) runs in a CPU cgroup of its own whose quota is that
//! share of a core per scheduling period — cgroup v1 `cpu.cfs_quota_us`, or v2 `cpu.max`. The
//! groups live under one group per devkit process (`orders-devkit-<pid>`), removed with it; groups
//! a killed devkit left behind are swept at the next start.
//!
//! Where no cgroup can be written (no root, no cpu controller) the caller says so once and runs
//! the environments unthrottled: a missing limit never stops the local app.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The memory size at which Lambda gives a function one full vCPU.
pub const FULL_CORE_MB: u64 = 1769;
const PARENT_PREFIX: &str = "orders-devkit-";

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error(
        "no writable CPU cgroup (cgroup v1 cpu controller or v2 with cpu): environments run unthrottled"
    )]
    Unavailable,
    #[error("cannot write the CPU cgroup {path}: {source}: environments run unthrottled")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which cgroup interface the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The CPU share of a memory size, as a fraction of one core (at most 1; Lambda's larger sizes
/// get more cores, which one environment's single-threaded runtime would not use).
pub fn share_of(memory_mb: u64) -> f64 {
    (memory_mb as f64 / FULL_CORE_MB as f64).min(1.0)
}

/// Which CPU share the local environments run at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuShare {
    /// As fast as the machine lets them.
    #[default]
    Off,
    /// Each function at its template `MemorySize`'s share.
    MemorySize,
    /// Every function at this memory size's share (to try a size before setting it).
    Fixed(u64),
}

impl CpuShare {
    /// `off`, `memory` or a memory size in MB (128..=10240, as Lambda takes them).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "off" => Ok(Self::Off),
            "memory" => Ok(Self::MemorySize),
            mb => match mb.parse::<u64>() {
                Ok(mb) if (128..=10_240).contains(&mb) => Ok(Self::Fixed(mb)),
                _ => Err(format!(
                    "{raw:?} is not off, memory or a memory size from 128 to 10240 MB"
                )),
            },
        }
    }

    /// The memory size whose share a function with `memory_mb` runs at, if any.
    pub fn for_function(self, memory_mb: u64) -> Option<u64> {
        match self {
            Self::Off => None,
            Self::MemorySize => Some(memory_mb),
            Self::Fixed(mb) => Some(mb),
        }
    }
}

/// How often an environment was held back for exceeding its share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    /// Scheduling periods in which the group ran.
    pub periods: u64,
    /// Periods in which it used up its quota and waited.
    pub throttled_periods: u64,
    /// Time it spent waiting.
    pub throttled: Duration,
}

/// The group all of one devkit process's environments live under.
#[derive(Debug)]
struct Parent {
    dir: PathBuf,
    version: Version,
}

impl Drop for Parent {
    fn drop(&mut self) {
        // An environment whose processes were slow to leave (a Python runtime, say) left its group
        // behind: it is empty by now.
        remove_children(&self.dir);
        if !remove_dir(&self.dir) {
            eprintln!(
                "devkit: the CPU cgroup {} could not be removed",
                self.dir.display()
            );
        }
    }
}

static PARENT: Mutex<Weak<Parent>> = Mutex::new(Weak::new());

/// The cpu controller's directory and version, and the group this process is in (its groups go
/// beside, under the hierarchy's root: a v2 group with processes cannot have children).
fn hierarchy() -> Option<(PathBuf, Version)> {
    let v1 = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .into_iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("cpu.cfs_quota_us").is_file());
    if let Some(dir) = v1 {
        return Some((dir, Version::V1));
    }
    let root = PathBuf::from("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok()?;
    controllers
        .split_whitespace()
        .any(|c| c == "cpu")
        .then_some((root, Version::V2))
}

fn parent() -> Result<Arc<Parent>, CpuError> {
    let mut shared = PARENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(parent) = shared.upgrade() {
        return Ok(parent);
    }
    let (root, version) = hierarchy().ok_or(CpuError::Unavailable)?;
    sweep(&root);
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|source| CpuError::Write {
            path: path.to_owned(),
            source,
        })
    };
    if version == Version::V2 {
        write(&root.join("cgroup.subtree_control"), "+cpu")?;
    }
    let dir = root.join(format!("{PARENT_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| CpuError::Write {
        path: dir.clone(),
        source,
    })?;
    let parent = Arc::new(Parent { dir, version });
    if version == Version::V2 {
        write(&parent.dir.join("cgroup.subtree_control"), "+cpu")?;
    }
    *shared = Arc::downgrade(&parent);
    Ok(parent)
}

/// Removes the groups of devkit processes that no longer run (killed before they could).
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PARENT_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_children(&entry.path());
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Removes the groups under `dir` that no process is in any more.
fn remove_children(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            let _ = std::fs::remove_dir(child.path());
        }
    }
}

/// A group's directory is removable once its processes have exited; a killed process takes a
/// moment to leave. Says whether the directory is gone.
fn remove_dir(dir: &Path) -> bool {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return true,
        }
    }
    false
}

/// One environment's CPU group, removed when dropped (after its processes are gone).
#[derive(Debug)]
pub struct CpuGroup {
    dir: PathBuf,
    parent: Arc<Parent>,
}

impl CpuGroup {
    /// A group named `name` with `memory_mb`'s share of one core.
    pub fn create(name: &str, memory_mb: u64) -> Result<Self, CpuError> {
        let parent = parent()?;
        let dir = parent.dir.join(name);
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| CpuError::Write { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        let share = share_of(memory_mb);
        let group = Self { dir, parent };
        match group.parent.version {
            Version::V1 => {
                let period: u64 = std::fs::read_to_string(group.dir.join("cpu.cfs_period_us"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(100_000);
                let quota = ((period as f64 * share) as u64).max(1_000);
                let path = group.dir.join("cpu.cfs_quota_us");
                std::fs::write(&path, quota.to_string()).map_err(err(&path))?;
            }
            Version::V2 => {
                let period = 100_000u64;
                let quota = ((period as f64 * share) as u64).max(1_000);
                let path = group.dir.join("cpu.max");
                std::fs::write(&path, format!("{quota} {period}")).map_err(err(&path))?;
            }
        }
        Ok(group)
    }

    /// Puts a process (and the children it starts from now on) into the group.
    pub fn add(&self, pid: u32) -> Result<(), CpuError> {
        let path = self.dir.join("cgroup.procs");
        std::fs::write(&path, pid.to_string()).map_err(|source| CpuError::Write { path, source })
    }

    /// The group's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How often the group was throttled so far (zero if the kernel does not say).
    pub fn throttling(&self) -> Throttling {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0u64)
        };
        Throttling {
            periods: field("nr_periods"),
            throttled_periods: field("nr_throttled"),
            throttled: match self.parent.version {
                Version::V1 => Duration::from_nanos(field("throttled_time")),
                Version::V2 => Duration::from_micros(field("throttled_usec")),
            },
        }
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // The environment has stopped: whatever of it is still in the group (a runtime that left
        // the emulator's process group) goes with it, so the group can be removed.
        kill_members(&self.dir);
        remove_dir(&self.dir);
    }
}

/// Sends SIGKILL to every process in the group at `dir`.
fn kill_members(dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) on a process id; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_off_the_functions_memory_size_or_a_size_given() {
        assert_eq!(CpuShare::parse("off"), Ok(CpuShare::Off));
        assert_eq!(
            CpuShare::parse("memory").map(|s| s.for_function(256)),
            Ok(Some(256))
        );
        assert_eq!(
            CpuShare::parse("512").map(|s| s.for_function(128)),
            Ok(Some(512))
        );
        assert!(CpuShare::parse("64").is_err());
        assert!(CpuShare::parse("fast").is_err());
        assert_eq!(CpuShare::Off.for_function(128), None);
    }

    #[test]
    fn a_memory_size_buys_its_share_of_a_core() {
        assert!((share_of(128) - 0.0724).abs() < 1e-3);
        assert!((share_of(1769) - 1.0).abs() < 1e-9);
        assert!((share_of(10_240) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_busy_process_in_a_128_mb_group_is_held_to_its_share_and_the_group_goes_with_it() {
        let group = match CpuGroup::create(&format!("test-{}", fastrand::u32(..)), 128) {
            Ok(group) => group,
            Err(CpuError::Unavailable) => {
                // Nothing to measure here; the caller's message is the whole behaviour.
                assert!(hierarchy().is_none());
                return;
            }
            Err(e) => panic!("a cgroup hierarchy is there but not writable: {e}"),
        };
        let mut busy = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs");
        group.add(busy.id()).expect("the process joins the group");
        let procs = std::fs::read_to_string(group.dir().join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|p| p == busy.id().to_string()));
        let started = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(600));
        let usage = cpu_seconds(busy.id());
        let throttling = group.throttling();
        busy.kill().unwrap();
        busy.wait().unwrap();
        // 7.2 % of a core: well under a quarter of the wall time, and throttled nearly every period.
        let wall = started.elapsed().as_secs_f64();
        assert!(
            usage < wall * 0.25,
            "used {usage:.3} s of CPU in {wall:.3} s"
        );
        assert!(throttling.throttled_periods > 0, "{throttling:?}");
        assert!(
            throttling.throttled > Duration::from_millis(100),
            "{throttling:?}"
        );
        let dir = group.dir().to_owned();
        drop(group);
        assert!(!dir.exists(), "the group is removed with its environment");
    }

    #[test]
    fn a_process_left_in_a_group_goes_with_it() {
        let Ok(group) = CpuGroup::create(&format!("test-{}", fastrand::u32(..)), 256) else {
            return; // no writable hierarchy: covered by the test above
        };
        // GIVEN a process that outlived its environment's process group, still in the group
        let mut stray = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep runs");
        group.add(stray.id()).expect("the process joins the group");
        let dir = group.dir().to_owned();
        // WHEN the environment's group is dropped
        drop(group);
        // THEN the process was killed and the group removed
        let removed = !dir.exists();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut exited = stray.try_wait().expect("try_wait");
        while exited.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            exited = stray.try_wait().expect("try_wait");
        }
        if exited.is_none() {
            let _ = stray.kill();
            let _ = stray.wait();
        }
        assert!(exited.is_some(), "the stray process still runs");
        assert!(removed, "the group is removed");
    }

    /// A process's CPU time (user + system) from /proc.
    fn cpu_seconds(pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        // SAFETY: sysconf reads a constant of the running system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks / hz
    }
}
