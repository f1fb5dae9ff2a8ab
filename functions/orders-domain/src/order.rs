//! Orders: what a customer asks for, how it is priced, and the states an order goes through.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::ids::{OrderId, ProductId, UserId};
use crate::money::{Currency, Money};
use crate::rfc3339_millis;

/// How many units of a product one order line takes: 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 1000;

    pub fn new(value: u32) -> Result<Self, DomainError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(DomainError::QuantityOutOfRange)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<u32> for Quantity {
    type Error = DomainError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> Self {
        q.0
    }
}

/// What a customer asks for on one line: a product and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRequest<'a> {
    pub product_id: &'a ProductId,
    pub quantity: Quantity,
}

/// The lines of an order request: 1..=25 lines, each product at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<(ProductId, Quantity)>);

impl OrderLines {
    pub const MIN: usize = 1;
    pub const MAX: usize = 25;

    pub fn new(lines: Vec<(ProductId, Quantity)>) -> Result<Self, DomainError> {
        if !(Self::MIN..=Self::MAX).contains(&lines.len()) {
            return Err(DomainError::LineCount);
        }
        let mut seen = std::collections::HashSet::with_capacity(lines.len());
        for (id, _) in &lines {
            if !seen.insert(id) {
                return Err(DomainError::DuplicateProduct(id.clone()));
            }
        }
        Ok(Self(lines))
    }

    pub fn iter(&self) -> impl Iterator<Item = LineRequest<'_>> {
        self.0.iter().map(|(product_id, quantity)| LineRequest {
            product_id,
            quantity: *quantity,
        })
    }

    pub fn product_ids(&self) -> impl Iterator<Item = &ProductId> {
        self.0.iter().map(|(id, _)| id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A stable text of what was asked, independent of line order and JSON formatting; the
    /// idempotency check compares its hash.
    pub fn canonical(&self) -> String {
        let mut lines: Vec<_> = self.0.iter().collect();
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        lines
            .iter()
            .map(|(id, q)| format!("{}={}", id.as_str(), q.get()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Where an order is in its life: CREATED → CONFIRMED (its event was processed), and CANCELLED
/// from either by its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    /// The statuses its owner may cancel an order from. Every status is named in
    /// [`OrderStatus::is_cancellable`]: a new one must decide there.
    pub const CANCELLABLE: [OrderStatus; 2] = [OrderStatus::Created, OrderStatus::Confirmed];

    /// The name as stored and shown (`CREATED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn is_cancellable(self) -> bool {
        match self {
            OrderStatus::Created | OrderStatus::Confirmed => true,
            OrderStatus::Cancelled => false,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One priced line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
}

/// An order as the shop keeps it and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total: Money,
    #[serde(with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    /// When the order was cancelled (only on a cancelled order).
    #[serde(
        with = "rfc3339_millis::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Why an order cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("the lines of one order must share one currency ({0} and {1} given)")]
    MixedCurrencies(Currency, Currency),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl Order {
    /// Prices the requested lines from the catalogue (never from the client) and totals them.
    /// `price_of` answers the current price of a product, or `None` if it does not exist.
    pub fn price(
        order_id: OrderId,
        user_id: UserId,
        lines: &OrderLines,
        created_at: DateTime<Utc>,
        price_of: impl Fn(&ProductId) -> Option<Money>,
    ) -> Result<Order, PricingError> {
        let mut items = Vec::with_capacity(lines.len());
        let mut total: Option<Money> = None;
        for line in lines.iter() {
            let unit_price = price_of(line.product_id)
                .ok_or_else(|| PricingError::UnknownProduct(line.product_id.clone()))?;
            let line_total = unit_price.times(line.quantity)?;
            total = Some(match total {
                None => line_total,
                Some(sum) if sum.currency() != line_total.currency() => {
                    return Err(PricingError::MixedCurrencies(
                        sum.currency(),
                        line_total.currency(),
                    ));
                }
                Some(sum) => sum.checked_add(line_total)?,
            });
            items.push(OrderLine {
                product_id: line.product_id.clone(),
                quantity: line.quantity,
                unit_price,
                line_total,
            });
        }
        let total = total.ok_or(DomainError::LineCount)?;
        Ok(Order {
            order_id,
            user_id,
            status: OrderStatus::Created,
            items,
            total,
            created_at: rfc3339_millis::truncate(created_at),
            cancelled_at: None,
        })
    }

    /// The order cancelled at `at`.
    pub fn cancelled(self, at: DateTime<Utc>) -> Order {
        Order {
            status: OrderStatus::Cancelled,
            cancelled_at: Some(rfc3339_millis::truncate(at)),
            ..self
        }
    }

    /// The order in another status.
    pub fn with_status(self, status: OrderStatus) -> Order {
        Order { status, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn pid(raw: &str) -> ProductId {
        ProductId::parse(raw).unwrap()
    }

    #[test]
    fn quantity_bounds_are_inclusive() {
        assert!(Quantity::new(0).is_err());
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(1000).unwrap().get(), 1000);
        assert!(Quantity::new(1001).is_err());
    }

    #[test]
    fn order_lines_reject_duplicates_and_bad_counts() {
        let q = Quantity::new(1).unwrap();
        assert_eq!(OrderLines::new(vec![]), Err(DomainError::LineCount));
        let many = (0..26).map(|i| (pid(&format!("p{i}")), q)).collect();
        assert_eq!(OrderLines::new(many), Err(DomainError::LineCount));
        assert_eq!(
            OrderLines::new(vec![(pid("a"), q), (pid("a"), q)]),
            Err(DomainError::DuplicateProduct(pid("a")))
        );
    }

    #[test]
    fn canonical_form_ignores_line_order() {
        let (q1, q2) = (Quantity::new(1).unwrap(), Quantity::new(2).unwrap());
        let a = OrderLines::new(vec![(pid("a"), q1), (pid("b"), q2)]).unwrap();
        let b = OrderLines::new(vec![(pid("b"), q2), (pid("a"), q1)]).unwrap();
        let c = OrderLines::new(vec![(pid("b"), q1), (pid("a"), q2)]).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), c.canonical());
    }

    #[test]
    fn order_total_is_the_sum_of_line_totals() {
        let lines = OrderLines::new(vec![
            (pid("a"), Quantity::new(2).unwrap()),
            (pid("b"), Quantity::new(3).unwrap()),
        ])
        .unwrap();
        let user = UserId::parse("alice").unwrap();
        let order = Order::price(OrderId::new_random(), user, &lines, Utc::now(), |id| {
            Some(if id.as_str() == "a" {
                eur(1999)
            } else {
                eur(500)
            })
        })
        .unwrap();
        assert_eq!(order.items[0].line_total, eur(3998));
        assert_eq!(order.items[1].line_total, eur(1500));
        assert_eq!(order.total, eur(5498));
        assert_eq!(order.status, OrderStatus::Created);
    }

    #[test]
    fn an_order_has_one_currency() {
        let lines = OrderLines::new(vec![
            (pid("a"), Quantity::new(1).unwrap()),
            (pid("b"), Quantity::new(1).unwrap()),
        ])
        .unwrap();
        let usd = Money::new(5, Currency::parse("USD").unwrap()).unwrap();
        let result = Order::price(
            OrderId::new_random(),
            UserId::parse("alice").unwrap(),
            &lines,
            Utc::now(),
            |id| Some(if id.as_str() == "a" { eur(1) } else { usd }),
        );
        assert!(matches!(result, Err(PricingError::MixedCurrencies(_, _))));
    }

    #[test]
    fn unknown_product_cannot_be_priced() {
        let lines = OrderLines::new(vec![(pid("ghost"), Quantity::new(1).unwrap())]).unwrap();
        let result = Order::price(
            OrderId::new_random(),
            UserId::parse("alice").unwrap(),
            &lines,
            Utc::now(),
            |_| None,
        );
        assert_eq!(result, Err(PricingError::UnknownProduct(pid("ghost"))));
    }

    #[test]
    fn only_open_orders_can_be_cancelled() {
        assert!(OrderStatus::Created.is_cancellable());
        assert!(OrderStatus::Confirmed.is_cancellable());
        assert!(!OrderStatus::Cancelled.is_cancellable());
        for status in OrderStatus::CANCELLABLE {
            assert!(status.is_cancellable());
        }
    }

    #[test]
    fn statuses_are_stored_as_their_names() {
        for status in [
            OrderStatus::Created,
            OrderStatus::Confirmed,
            OrderStatus::Cancelled,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }
}
