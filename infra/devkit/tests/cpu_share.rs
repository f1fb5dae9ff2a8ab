//! An environment run at a memory size's CPU share: the emulator and the runtime it starts are in
//! one CPU cgroup with that share of a core, and the group is gone once the environment stops.
//! (The share itself is measured in `devkit::cpu`'s own test.)

mod hello;

use std::path::Path;
use std::sync::Arc;

use devkit::console::Console;
use devkit::rie::{FunctionPool, default_emulator};

use hello::root;

/// The CPU cgroup a process is in (v1 `cpu` or v2 unified), as /proc says.
fn cpu_group(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let line = text
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
        })
        .or_else(|| text.lines().find(|l| l.starts_with("0::")))?;
    line.rsplit(':').next().map(str::to_owned)
}

/// A process's children, whichever of its threads started them.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[tokio::test]
async fn an_environment_at_128_mb_runs_emulator_and_runtime_in_its_cpu_group() {
    let launch = hello::launch("cpu-share", Some(128));
    let console = Arc::new(Console::recording());
    let pool = FunctionPool::start(&launch, &default_emulator(&root()), 1, &console).unwrap();
    // WHEN it serves an invocation (the runtime starts then, the emulator's child)
    pool.invoke(b"{}").await.expect("hello-floor answers");
    let emulator = pool.emulator_pids()[0];
    let Some(group) = cpu_group(emulator).filter(|g| g.contains("orders-devkit-")) else {
        // No writable cgroup here: the pool said so once, and ran anyway.
        let said = console.take_recorded();
        assert!(
            said.iter().any(|(_, line)| line.contains("unthrottled")),
            "{said:?}"
        );
        assert!(pool.throttling().is_empty());
        return;
    };
    // THEN the emulator and the runtime are both in its group, whose quota is 7.2 % of a core
    let runtime = children(emulator);
    assert!(!runtime.is_empty(), "the runtime runs under the emulator");
    for pid in &runtime {
        assert_eq!(cpu_group(*pid).as_deref(), Some(group.as_str()));
    }
    let dir = [
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(|m| Path::new(m).join(group.trim_start_matches('/')))
    .find(|d| d.is_dir())
    .expect("the group's directory");
    let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
        .or_else(|_| std::fs::read_to_string(dir.join("cpu.max")))
        .unwrap();
    let quota: u64 = quota.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(quota, 100_000 * 128 / 1769);
    assert_eq!(pool.throttling().len(), 1);
    assert_eq!(
        pool.throttled_invocations().0,
        1,
        "one invocation under the share"
    );
    // AND once the environment stops, the group is gone
    pool.stop();
    assert!(!dir.exists(), "{} outlived its environment", dir.display());
}
