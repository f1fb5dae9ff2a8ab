//! Bounded retries with full jitter, for what the SDK does not retry itself (a transaction
//! cancelled by a conflict or throttling).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_millis(400),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`: a random time up to base · 2^attempt, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_is_bounded_by_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        for attempt in 0..40 {
            assert!(policy.delay(attempt) <= Duration::from_millis(50));
        }
        assert!(policy.delay(0) <= Duration::from_millis(10));
    }
}
