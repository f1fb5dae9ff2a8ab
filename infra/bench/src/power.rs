//! Power tuning without an AWS account: the saga run once per memory size, every environment at
//! that size's share of a core (devkit's CPU cgroups), and for each function on the order path
//! its durations, how many invocations were throttled, and what a million orders cost at that
//! size. The size chosen per function is the cheapest whose p99 stays within [`P99_BUDGET`] times
//! its p99 at a full core: the share may cost some tail, not a multiple of it.

use std::collections::BTreeMap;

use devkit::cpu::CpuShare;

use crate::cost::Prices;
use crate::{BenchError, Cli, events, say, stats};

/// The sizes tried (MB): Lambda's smallest, the doublings, and one full vCPU.
pub const SIZES: [u64; 5] = [128, 256, 512, 1024, 1769];
/// Orders per size.
pub const ORDERS: usize = 100;
/// A size is within budget when its p99 is at most this many times the p99 at 1,769 MB.
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
}

/// The cheapest size within budget (the full core's always is).
pub fn chosen<'a>(sizes: &'a [AtSize], prices: &Prices) -> Option<&'a AtSize> {
    let full = sizes.iter().max_by_key(|s| s.size_mb)?;
    sizes
        .iter()
        .filter(|s| s.p99_ms <= full.p99_ms * P99_BUDGET)
        .min_by(|a, b| a.cost(prices).total_cmp(&b.cost(prices)))
}

pub async fn measure(
    cli: &Cli,
    stamp: &str,
    dynamo: &aws_sdk_dynamodb::Client,
) -> Result<PowerTuning, BenchError> {
    let orders = ORDERS.min(cli.requests);
    let mut tuning = PowerTuning {
        orders,
        ..PowerTuning::default()
    };
    for size in SIZES {
        let run = events::measure_at(
            cli,
            &format!("bench{stamp}-power{size}"),
            dynamo,
            CpuShare::Fixed(size),
            orders,
        )
        .await?;
        let created = run.orders.max(1) as f64;
        for function in ORDER_PATH {
            let ms = stats::sorted(run.durations(function));
            let (shared, throttled) = run.throttled.get(function).copied().unwrap_or_default();
            let billed: f64 = ms.iter().map(|d| d.ceil().max(1.0)).sum();
            let at = AtSize {
                size_mb: size,
                p50_ms: stats::percentile(&ms, 50.0),
                p90_ms: stats::percentile(&ms, 90.0),
                p99_ms: stats::percentile(&ms, 99.0),
                invocations: ms.len(),
                shared,
                throttled,
                per_order: ms.len() as f64 / created,
                billed_ms: billed / ms.len().max(1) as f64,
            };
            say(&format!(
                "  {size:5} MB {function:16} p50 {:.1} ms p99 {:.1} ms, {throttled}/{shared} throttled",
                at.p50_ms, at.p99_ms
            ));
            tuning
                .functions
                .entry(function.to_owned())
                .or_default()
                .push(at);
        }
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
        // 128 MB is cheapest but its tail is twice the full core's; 256 MB is within 1.5×.
        let sizes = [
            at(128, 20.0, 100.0),
            at(256, 12.0, 70.0),
            at(512, 10.0, 52.0),
            at(1769, 9.0, 50.0),
        ];
        let chosen = chosen(&sizes, &prices()).unwrap();
        assert_eq!(chosen.size_mb, 256);
        // 1 invocation of 12 ms at 0.25 GB: 0.003 GB-s × $0.0000133334 × 1e6 + $0.20
        assert!((chosen.cost(&prices()) - (0.003 * 13.3334 + 0.2)).abs() < 1e-9);
    }
}
