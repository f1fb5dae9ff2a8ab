//! Power tuning without an AWS account: the saga run once per memory size, every environment at
//! that size's share of a core (devkit's CPU cgroups), and for each function on the order path
//! its durations, how many invocations were throttled, and what a million orders cost at that
//! size. The size chosen per function is the cheapest whose p99 stays within [`P99_BUDGET`] times
//! its *reference* p99: the share may cost some tail, not a multiple of it.
//!
//! The reference is the median of the p99s of the runs above Lambda's smallest size (256, 512,
//! 1024 MB and the full core, which runs twice, first and last — [`RUNS`]): the tail the function
//! has when CPU is not what it waits for. Not the full core's alone: a p99 from ~100 invocations is
//! nearly their largest, so one run's lucky or unlucky tail would set the budget (seen: the relay's
//! 26 ms at 1,769 MB against 42–47 ms everywhere else), and on a small machine the full core is not
//! even the fastest size — functions given a whole core each take it from the emulators they wait
//! on (create-order's p50 was higher at 1,769 MB than at 256–1024 MB in two runs).
use std::collections::BTreeMap;

use devkit::cpu::CpuShare;

use crate::cost::Prices;
use crate::{BenchError, Cli, events, say, stats};

/// The sizes tried (MB), in the order they run: Lambda's smallest, the doublings, and one full
/// vCPU — first and last, its two runs pooled into one row.
pub const RUNS: [u64; 6] = [1769, 128, 256, 512, 1024, 1769];
/// Orders per run.
pub const ORDERS: usize = 100;
/// A size is within budget when its p99 is at most this many times the reference p99.
pub const P99_BUDGET: f64 = 1.5;
/// The functions an order passes through.
pub const ORDER_PATH: [&str; 5] = [
    "create-order",
    "outbox-relay",
    "payment-events",
    "order-events",
    "shipment-events",
];

/// One function at one size.
#[derive(Debug, Clone, Default)]
pub struct AtSize {
    pub size_mb: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub invocations: usize,
    /// Invocations served under the share, and how many of them were throttled.
    pub shared: usize,
    pub throttled: usize,
    /// Invocations per order.
    pub per_order: f64,
    /// Billed milliseconds per invocation (each rounded up to 1 ms), on average.
    pub billed_ms: f64,
}

impl AtSize {
    /// Dollars per million orders: GB-s at this size plus requests.
    pub fn cost(&self, prices: &Prices) -> f64 {
        let gb_seconds = self.size_mb as f64 / 1024.0 * self.billed_ms / 1000.0;
        self.per_order
            * (gb_seconds * prices.lambda_arm64_gb_second * 1e6
                + prices.lambda_requests_per_million)
    }
}

/// Every size tried, per function (in [`ORDER_PATH`] order).
#[derive(Debug, Clone, Default)]
pub struct PowerTuning {
    pub orders: usize,
    pub functions: BTreeMap<String, Vec<AtSize>>,
    /// Per function, each run's p99 by size, in run order.
    pub run_p99s: BTreeMap<String, Vec<(u64, f64)>>,
}

/// The reference p99: the median of the p99s of the runs above the smallest size tried.
pub fn reference_p99(run_p99s: &[(u64, f64)]) -> Option<f64> {
    let smallest = run_p99s.iter().map(|(size, _)| *size).min()?;
    let tails: Vec<f64> = run_p99s
        .iter()
        .filter(|(size, p99)| *size > smallest && p99.is_finite())
        .map(|(_, p99)| *p99)
        .collect();
    (!tails.is_empty()).then(|| stats::median(&tails))
}

/// The cheapest size within budget of the reference (`None` if no size is).
pub fn chosen<'a>(sizes: &'a [AtSize], reference_p99: f64, prices: &Prices) -> Option<&'a AtSize> {
    sizes
        .iter()
        .filter(|s| s.p99_ms <= reference_p99 * P99_BUDGET)
        .min_by(|a, b| a.cost(prices).total_cmp(&b.cost(prices)))
}

/// One function's invocations at one size, pooled over that size's runs.
#[derive(Debug, Default)]
struct Pooled {
    ms: Vec<f64>,
    shared: usize,
    throttled: usize,
    orders: usize,
}

impl Pooled {
    fn at(self, size_mb: u64) -> AtSize {
        let ms = stats::sorted(&self.ms);
        let billed: f64 = ms.iter().map(|d| d.ceil().max(1.0)).sum();
        AtSize {
            size_mb,
            p50_ms: stats::percentile(&ms, 50.0),
            p90_ms: stats::percentile(&ms, 90.0),
            p99_ms: stats::percentile(&ms, 99.0),
            invocations: ms.len(),
            shared: self.shared,
            throttled: self.throttled,
            per_order: ms.len() as f64 / self.orders.max(1) as f64,
            billed_ms: billed / ms.len().max(1) as f64,
        }
    }
}

pub async fn measure(
    cli: &Cli,
    stamp: &str,
    dynamo: &aws_sdk_dynamodb::Client,
) -> Result<PowerTuning, BenchError> {
    let orders = ORDERS.min(cli.requests);
    let mut pooled: BTreeMap<(&str, u64), Pooled> = BTreeMap::new();
    let mut run_p99s: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for (i, size) in RUNS.into_iter().enumerate() {
        let run = events::measure_at(
            cli,
            &format!("bench{stamp}-power{i}-{size}"),
            dynamo,
            CpuShare::Fixed(size),
            orders,
        )
        .await?;
        for function in ORDER_PATH {
            let ms = stats::sorted(run.durations(function));
            let (shared, throttled) = run.throttled.get(function).copied().unwrap_or_default();
            let p99 = stats::percentile(&ms, 99.0);
            say(&format!(
                "  {size:5} MB {function:16} p50 {:.1} ms p99 {p99:.1} ms, {throttled}/{shared} throttled",
                stats::percentile(&ms, 50.0),
            ));
            run_p99s
                .entry(function.to_owned())
                .or_default()
                .push((size, p99));
            let at = pooled.entry((function, size)).or_default();
            at.ms.extend(ms);
            at.shared += shared;
            at.throttled += throttled;
            at.orders += run.orders;
        }
    }
    let mut tuning = PowerTuning {
        orders,
        run_p99s,
        ..PowerTuning::default()
    };
    for ((function, size), at) in pooled {
        tuning
            .functions
            .entry(function.to_owned())
            .or_default()
            .push(at.at(size));
    }
    Ok(tuning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        Prices::us_east_1()
    }

    fn at(size_mb: u64, billed_ms: f64, p99_ms: f64) -> AtSize {
        AtSize {
            size_mb,
            p99_ms,
            billed_ms,
            per_order: 1.0,
            ..AtSize::default()
        }
    }

    #[test]
    fn the_cheapest_size_within_the_tail_budget_is_chosen() {
        // 128 MB is cheapest but its tail is twice the reference; 256 MB is within 1.5×.
        let sizes = [
            at(128, 20.0, 100.0),
            at(256, 12.0, 70.0),
            at(512, 10.0, 52.0),
            at(1769, 9.0, 50.0),
        ];
        let chosen = chosen(&sizes, 50.0, &prices()).unwrap();
        assert_eq!(chosen.size_mb, 256);
        // 1 invocation of 12 ms at 0.25 GB: 0.003 GB-s × $0.0000133334 × 1e6 + $0.20
        assert!((chosen.cost(&prices()) - (0.003 * 13.3334 + 0.2)).abs() < 1e-9);
    }

    #[test]
    fn one_runs_tail_does_not_set_the_reference() {
        // The relay as seen: 42–47 ms at every size but one full-core run's lucky 26 ms.
        let relay = [
            (1769, 26.0),
            (128, 43.5),
            (256, 45.8),
            (512, 47.1),
            (1024, 41.9),
            (1769, 44.0),
        ];
        assert_eq!(reference_p99(&relay), Some(44.0));
        // create-order as seen: the full core slowed by the emulators it shares two cores with.
        let create = [
            (1769, 541.0),
            (128, 379.2),
            (256, 181.2),
            (512, 175.6),
            (1024, 154.9),
            (1769, 263.0),
        ];
        assert_eq!(reference_p99(&create), Some(181.2));
        // The smallest size never judges itself.
        assert_eq!(reference_p99(&[(128, 10.0)]), None);
    }

    #[test]
    fn the_full_cores_two_runs_are_one_row() {
        // One run's tail is a single slow invocation, the other's three: the row's p99 is that of
        // all 200 invocations, not of the luckier run.
        let first = (1..=100).map(|i| if i > 99 { 26.0 } else { 10.0 });
        let second = (1..=100).map(|i| if i > 97 { 45.0 } else { 10.0 });
        let full = Pooled {
            ms: first.chain(second).collect(),
            shared: 200,
            throttled: 0,
            orders: 200,
        }
        .at(1769);
        assert_eq!(full.p99_ms, 45.0);
        assert_eq!(full.invocations, 200);
        assert_eq!(full.per_order, 1.0);
    }
}
