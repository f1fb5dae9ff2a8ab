//! Products of the catalogue: name, price and the stock on hand.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::ids::{ProductId, UserId};
use crate::money::Money;
use crate::order::Quantity;
use crate::text::{display_text, text_value};

/// A product of the catalogue with its current price and stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub name: ProductName,
    pub price: Money,
    pub stock: Stock,
    /// At most this many units on one order line (none: any quantity an order line may have).
    pub max_per_order: Option<MaxPerOrder>,
}

/// The most units of a product one order may take (a flash sale's "at most 2 per customer"):
/// 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MaxPerOrder(u32);

impl MaxPerOrder {
    pub fn new(value: u32) -> Result<Self, DomainError> {
        if (1..=Quantity::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DomainError::MaxPerOrderOutOfRange)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether one order may take `quantity` units.
    pub fn allows(self, quantity: Quantity) -> bool {
        quantity.get() <= self.0
    }
}

impl TryFrom<u32> for MaxPerOrder {
    type Error = DomainError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<MaxPerOrder> for u32 {
    fn from(m: MaxPerOrder) -> Self {
        m.0
    }
}

/// One change of a product's stock, as it is recorded (an audit trail, and what makes a retried
/// adjustment recognisable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockAdjustment {
    pub product_id: ProductId,
    /// The client's idempotency key, or a fresh id.
    pub adjustment_id: String,
    pub delta: StockDelta,
    pub reason: AdjustmentReason,
    /// Who made it (the token's `sub`).
    pub adjusted_by: UserId,
    #[serde(with = "crate::rfc3339_millis")]
    pub adjusted_at: DateTime<Utc>,
}

impl StockAdjustment {
    /// Whether `other` asks for the same change (a retry), whoever and whenever.
    pub fn same_change(&self, other: &StockAdjustment) -> bool {
        self.product_id == other.product_id
            && self.delta == other.delta
            && self.reason == other.reason
    }
}

text_value!(
    /// A product's display name: 1–200 characters, no control characters, trimmed.
    ProductName
);

impl ProductName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        display_text(raw, 200)
            .map(Self)
            .ok_or(DomainError::InvalidProductName)
    }
}

/// Units of a product on hand; never negative.
///
/// Stock is *set* (PUT /products) to at most [`Stock::MAX`], but what cancellations give back may
/// take it above that: a stored stock is valid whenever it is not negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Stock(i64);

impl Stock {
    /// The most a product's stock may be set to.
    pub const MAX: i64 = 1_000_000_000;

    /// A stock level as set by a user: 0..=[`Stock::MAX`].
    pub fn new(value: i64) -> Result<Self, DomainError> {
        if (0..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DomainError::StockOutOfRange)
        }
    }

    /// A stock level as stored: any non-negative count.
    pub fn on_hand(value: i64) -> Result<Self, DomainError> {
        if value >= 0 {
            Ok(Self(value))
        } else {
            Err(DomainError::StockOutOfRange)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A change of a product's stock by a count of units: not zero, at most [`Stock::MAX`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct StockDelta(i64);

impl StockDelta {
    pub fn new(value: i64) -> Result<Self, DomainError> {
        if value != 0 && value.abs() <= Stock::MAX {
            Ok(Self(value))
        } else {
            Err(DomainError::StockDeltaOutOfRange)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The least stock there must be for this change to leave none negative.
    pub fn needs(self) -> i64 {
        (-self.0).max(0)
    }
}

impl TryFrom<i64> for StockDelta {
    type Error = DomainError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<StockDelta> for i64 {
    fn from(d: StockDelta) -> Self {
        d.0
    }
}

text_value!(
    /// Why a stock adjustment was made (a delivery, a count, breakage): 1–200 characters, no
    /// control characters, trimmed.
    AdjustmentReason
);

impl AdjustmentReason {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        display_text(raw, 200)
            .map(Self)
            .ok_or(DomainError::InvalidAdjustmentReason)
    }
}

impl TryFrom<i64> for Stock {
    type Error = DomainError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::on_hand(value)
    }
}

impl From<Stock> for i64 {
    fn from(s: Stock) -> Self {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_set_within_bounds_but_held_above_them() {
        assert!(Stock::new(Stock::MAX).is_ok());
        assert!(Stock::new(Stock::MAX + 1).is_err());
        assert!(Stock::new(-1).is_err());
        assert_eq!(
            Stock::on_hand(Stock::MAX + 5).unwrap().get(),
            Stock::MAX + 5
        );
        assert!(Stock::on_hand(-1).is_err());
    }

    #[test]
    fn a_delta_is_never_zero_and_says_what_stock_it_needs() {
        assert!(StockDelta::new(0).is_err());
        assert!(StockDelta::new(Stock::MAX + 1).is_err());
        assert!(StockDelta::new(-Stock::MAX - 1).is_err());
        assert_eq!(StockDelta::new(-5).unwrap().needs(), 5);
        assert_eq!(StockDelta::new(7).unwrap().needs(), 0);
        assert!(AdjustmentReason::parse(" ").is_err());
        assert_eq!(
            AdjustmentReason::parse(" delivery ").unwrap().as_str(),
            "delivery"
        );
    }

    #[test]
    fn a_per_order_limit_is_one_to_a_thousand_and_allows_up_to_itself() {
        assert!(MaxPerOrder::new(0).is_err());
        assert!(MaxPerOrder::new(1001).is_err());
        let two = MaxPerOrder::new(2).unwrap();
        assert!(two.allows(Quantity::new(2).unwrap()));
        assert!(!two.allows(Quantity::new(3).unwrap()));
    }

    #[test]
    fn product_names_are_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("  Mug ").unwrap().as_str(), "Mug");
        assert!(ProductName::parse("   ").is_err());
        assert!(ProductName::parse(&"n".repeat(201)).is_err());
        assert!(ProductName::parse("bell\u{7}").is_err());
    }
}
