//! Percentiles, medians and spreads of measurements (milliseconds, kilobytes, orders per second).

/// The value at percentile `p` (0–100) of sorted values, by nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

pub fn median(values: &[f64]) -> f64 {
    percentile(&sorted(values), 50.0)
}

/// The median of repeated runs and how far the runs strayed from it.
#[derive(Debug, Clone, Copy)]
pub struct Repeated {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Repeated {
    pub fn of(values: &[f64]) -> Self {
        let s = sorted(values);
        Self {
            median: percentile(&s, 50.0),
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// The spread as ± percent of the median (half the range).
    pub fn noise_percent(&self) -> f64 {
        if self.median == 0.0 {
            return 0.0;
        }
        (self.max - self.min) / 2.0 / self.median * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn repeated_runs_report_their_spread() {
        let r = Repeated::of(&[10.0, 12.0, 11.0]);
        assert_eq!(r.median, 11.0);
        assert_eq!((r.min, r.max), (10.0, 12.0));
        assert!((r.noise_percent() - 100.0 / 11.0).abs() < 1e-9);
    }
}
