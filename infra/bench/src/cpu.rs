//! CPU time spent per order, by process: where the two cores go during a warm run (from
//! /proc/<pid>/stat, user + system time, in clock ticks of 10 ms; runs are long enough for that).

use std::collections::BTreeMap;

/// The processes a warm run's CPU time is split over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    DynamoDbLocal,
    Emulator,
    Function,
    Bench,
}

impl Part {
    pub const ALL: [Part; 4] = [
        Part::DynamoDbLocal,
        Part::Emulator,
        Part::Function,
        Part::Bench,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Part::DynamoDbLocal => "DynamoDB Local (Java)",
            Part::Emulator => "aws-lambda-rie",
            Part::Function => "function runtime",
            Part::Bench => "bench process (load, local API; the floor's SDK calls)",
        }
    }
}

const TICK_MS: f64 = 10.0;

fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state(0) ppid(1) … utime(11) stime(12).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The DynamoDB Local process (by its jar on the command line).
fn dynamodb_local() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("DynamoDBLocal.jar")
            .then_some(pid)
    })
}

/// CPU ticks so far of each part; `emulators` are the pids of the run's aws-lambda-rie processes.
pub fn snapshot(emulators: &[u32]) -> BTreeMap<Part, u64> {
    let mut parts = BTreeMap::new();
    parts.insert(
        Part::DynamoDbLocal,
        dynamodb_local().and_then(ticks).unwrap_or(0),
    );
    parts.insert(
        Part::Emulator,
        emulators.iter().filter_map(|p| ticks(*p)).sum(),
    );
    parts.insert(
        Part::Function,
        emulators
            .iter()
            .flat_map(|p| devkit::invocations::children(*p))
            .filter_map(ticks)
            .sum(),
    );
    parts.insert(Part::Bench, ticks(std::process::id()).unwrap_or(0));
    parts
}

/// Milliseconds of CPU per order between two snapshots.
pub fn per_order(
    before: &BTreeMap<Part, u64>,
    after: &BTreeMap<Part, u64>,
    orders: usize,
) -> BTreeMap<Part, f64> {
    Part::ALL
        .iter()
        .map(|part| {
            let spent = after
                .get(part)
                .unwrap_or(&0)
                .saturating_sub(*before.get(part).unwrap_or(&0));
            (*part, spent as f64 * TICK_MS / orders.max(1) as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_ticks() {
        let burn: u64 = (0..5_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(burn > 0);
        assert!(ticks(std::process::id()).is_some());
    }

    #[test]
    fn per_order_divides_the_difference() {
        let before = BTreeMap::from([(Part::Bench, 10), (Part::Function, 0)]);
        let after = BTreeMap::from([(Part::Bench, 30), (Part::Function, 5)]);
        let per = per_order(&before, &after, 100);
        assert_eq!(per[&Part::Bench], 2.0);
        assert_eq!(per[&Part::Function], 0.5);
        assert_eq!(per[&Part::DynamoDbLocal], 0.0);
    }
}
