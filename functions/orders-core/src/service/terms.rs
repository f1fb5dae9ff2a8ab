//! What create-order remembers of the products it sells: each product's price and per-order limit,
//! for a short while, per environment — so a warm order costs one transaction instead of a read and
//! a transaction.
//!
//! Remembered terms may be stale, and that is safe: the order transaction decrements a line's stock
//! only if its product still exists at the price the order was priced at and still allows the
//! quantity, so a stale price or limit never reaches an order; a transaction refused for a changed
//! price or limit, and any refusal reached on remembered terms, reads the terms again (consistently)
//! before it answers. Stock is never remembered: the transaction's condition is its only check.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::{MaxPerOrder, Money, Product, ProductId};

/// What an order line is priced and limited by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub price: Money,
    pub max_per_order: Option<MaxPerOrder>,
}

impl From<&Product> for Terms {
    fn from(product: &Product) -> Self {
        Self {
            price: product.price,
            max_per_order: product.max_per_order,
        }
    }
}

/// Products' terms as last read, each kept for [`TermsCache::ttl`]. Bounded: at `capacity`
/// entries the expired ones are dropped, and if none had expired, all of them.
#[derive(Debug)]
pub struct TermsCache {
    entries: Mutex<HashMap<ProductId, (Terms, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl Default for TermsCache {
    fn default() -> Self {
        Self::new(Self::TTL, Self::CAPACITY)
    }
}

impl TermsCache {
    /// How long terms are used without reading them again. A changed price costs one refused
    /// transaction per environment within it; a raised limit, one consistent read.
    pub const TTL: Duration = Duration::from_secs(60);
    /// The most products remembered (a few MB at most).
    pub const CAPACITY: usize = 10_000;

    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// Remembers nothing: every order reads its products' terms.
    pub fn disabled() -> Self {
        Self::new(Duration::ZERO, 0)
    }

    /// The terms of those of `ids` remembered and not expired at `now`.
    pub fn lookup(&self, ids: &[&ProductId], now: Instant) -> HashMap<ProductId, Terms> {
        let entries = self.lock();
        ids.iter()
            .filter_map(|id| {
                let (terms, read_at) = entries.get(*id)?;
                (now.saturating_duration_since(*read_at) < self.ttl)
                    .then(|| ((*id).clone(), *terms))
            })
            .collect()
    }

    /// Remembers terms read at `now`.
    pub fn remember<'a>(
        &self,
        read: impl IntoIterator<Item = (&'a ProductId, Terms)>,
        now: Instant,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        for (id, terms) in read {
            if entries.len() >= self.capacity && !entries.contains_key(id) {
                let ttl = self.ttl;
                entries.retain(|_, (_, read_at)| now.saturating_duration_since(*read_at) < ttl);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(id.clone(), (terms, now));
        }
    }

    /// Forgets the terms of `ids` (the store said they changed).
    pub fn forget(&self, ids: &[&ProductId]) {
        let mut entries = self.lock();
        for id in ids {
            entries.remove(*id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProductId, (Terms, Instant)>> {
        // A panic while holding the lock leaves at worst a missing entry: keep using the map.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn terms(amount: i64) -> Terms {
        Terms {
            price: Money::new(amount, Currency::parse("EUR").unwrap()).unwrap(),
            max_per_order: None,
        }
    }

    fn id(s: &str) -> ProductId {
        ProductId::parse(s).unwrap()
    }

    #[test]
    fn terms_are_used_until_they_expire() {
        let cache = TermsCache::new(Duration::from_secs(60), 10);
        let (a, b) = (id("a"), id("b"));
        let t0 = Instant::now();
        cache.remember([(&a, terms(100))], t0);
        let found = cache.lookup(&[&a, &b], t0 + Duration::from_secs(59));
        assert_eq!(found.get(&a), Some(&terms(100)));
        assert!(!found.contains_key(&b));
        assert!(cache.lookup(&[&a], t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn forgotten_and_disabled_terms_are_read_again() {
        let cache = TermsCache::default();
        let a = id("a");
        let now = Instant::now();
        cache.remember([(&a, terms(100))], now);
        cache.forget(&[&a]);
        assert!(cache.lookup(&[&a], now).is_empty());
        let off = TermsCache::disabled();
        off.remember([(&a, terms(100))], now);
        assert!(off.lookup(&[&a], now).is_empty());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = TermsCache::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let ids: Vec<ProductId> = ["a", "b", "c"].into_iter().map(id).collect();
        cache.remember([(&ids[0], terms(1))], t0);
        cache.remember([(&ids[1], terms(2))], t0 + Duration::from_secs(30));
        // "a" has expired by then: it makes room; "b" stays.
        let later = t0 + Duration::from_secs(61);
        cache.remember([(&ids[2], terms(3))], later);
        let found = cache.lookup(&[&ids[0], &ids[1], &ids[2]], later);
        assert_eq!(found.len(), 2);
        assert!(found.contains_key(&ids[1]) && found.contains_key(&ids[2]));
        // None expired: all go, and the new one is kept.
        cache.remember([(&ids[0], terms(1))], later);
        assert_eq!(cache.lookup(&[&ids[0], &ids[1], &ids[2]], later).len(), 1);
    }
}
