//! Orders: what a customer asks for, how it is priced, and the states an order goes through.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::checkout::{
    CancellationReason, Chargeable, PaymentMethod, PaymentStatus, PaymentView, ShippingAddress,
};
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

/// Where an order is in its life: PENDING (stock reserved, waiting for its payment) → CONFIRMED
/// (payment authorized) → FULFILLED (shipped and captured); CANCELLED by its owner, a declined
/// payment or the reservation's expiry. CREATED is an order taken before payments existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Taken before the payment saga existed (no payment): confirmed by its event, as then.
    Created,
    Pending,
    Confirmed,
    Fulfilled,
    Cancelled,
}

impl OrderStatus {
    /// The statuses an order may be cancelled from (unless shipped). Every status is named in
    /// [`OrderStatus::is_cancellable`]: a new one must decide there.
    pub const CANCELLABLE: [OrderStatus; 3] = [
        OrderStatus::Created,
        OrderStatus::Pending,
        OrderStatus::Confirmed,
    ];

    /// The name as stored and shown (`PENDING`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Fulfilled => "FULFILLED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn is_cancellable(self) -> bool {
        match self {
            OrderStatus::Created | OrderStatus::Pending | OrderStatus::Confirmed => true,
            OrderStatus::Fulfilled | OrderStatus::Cancelled => false,
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
    /// Why (only on a cancelled order; none on one cancelled before reasons were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<CancellationReason>,
    /// The rest is absent on an order taken before the payment saga existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<PaymentMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    /// The reservation's deadline: not authorized by then, the order is cancelled as expired.
    #[serde(
        with = "rfc3339_millis::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    /// Fulfillment's shipment, once recorded: the order can no longer be cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_id: Option<String>,
}

/// What an order is paid with and shipped to, and how long its stock stays reserved unpaid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub payment_method: PaymentMethod,
    pub shipping_address: Option<ShippingAddress>,
    pub expires_at: DateTime<Utc>,
}

/// Why an order cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("the lines of one order must share one currency ({0} and {1} given)")]
    MixedCurrencies(Currency, Currency),
    /// The payment provider cannot charge this total (see [`Chargeable`]).
    #[error("the payment provider cannot charge {0}")]
    NotChargeable(Money),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl Order {
    /// Prices the requested lines from the catalogue (never from the client) and totals them: a
    /// PENDING order whose payment is still to come. `price_of` answers the current price of a
    /// product, or `None` if it does not exist; a total the provider cannot charge is refused.
    pub fn price(
        order_id: OrderId,
        user_id: UserId,
        lines: &OrderLines,
        checkout: Checkout,
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
        if !Chargeable::allows(&total) {
            return Err(PricingError::NotChargeable(total));
        }
        Ok(Order {
            order_id,
            user_id,
            status: OrderStatus::Pending,
            items,
            total,
            created_at: rfc3339_millis::truncate(created_at),
            cancelled_at: None,
            cancellation_reason: None,
            payment_method: Some(checkout.payment_method),
            shipping_address: checkout.shipping_address,
            expires_at: Some(rfc3339_millis::truncate(checkout.expires_at)),
            payment: Some(PaymentView::pending()),
            shipment_id: None,
        })
    }

    /// Whether the order may still be cancelled: an open status and nothing shipped.
    pub fn is_cancellable(&self) -> bool {
        self.status.is_cancellable() && self.shipment_id.is_none()
    }

    /// Whether the reservation's deadline has passed at `now` (never, for an order without one).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|deadline| deadline <= now)
    }

    /// The order cancelled at `at`, for `reason`.
    pub fn cancelled(self, at: DateTime<Utc>, reason: CancellationReason) -> Order {
        Order {
            status: OrderStatus::Cancelled,
            cancelled_at: Some(rfc3339_millis::truncate(at)),
            cancellation_reason: Some(reason),
            ..self
        }
    }

    /// The order in another status.
    pub fn with_status(self, status: OrderStatus) -> Order {
        Order { status, ..self }
    }

    /// The order with the payment as its provider's events last told it.
    pub fn with_payment(
        self,
        status: PaymentStatus,
        charge_id: Option<String>,
        decline_code: Option<String>,
    ) -> Order {
        let old = self.payment.clone();
        Order {
            payment: Some(PaymentView {
                status,
                charge_id: charge_id.or(old.as_ref().and_then(|p| p.charge_id.clone())),
                decline_code: decline_code.or(old.and_then(|p| p.decline_code)),
            }),
            ..self
        }
    }

    /// The order with its shipment recorded.
    pub fn shipped(self, shipment_id: String) -> Order {
        Order {
            shipment_id: Some(shipment_id),
            ..self
        }
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

    fn checkout() -> Checkout {
        Checkout {
            payment_method: PaymentMethod::parse("tok_visa").unwrap(),
            shipping_address: None,
            expires_at: Utc::now() + chrono::Duration::minutes(15),
        }
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
        let order = Order::price(
            OrderId::new_random(),
            user,
            &lines,
            checkout(),
            Utc::now(),
            |id| {
                Some(if id.as_str() == "a" {
                    eur(1999)
                } else {
                    eur(500)
                })
            },
        )
        .unwrap();
        assert_eq!(order.items[0].line_total, eur(3998));
        assert_eq!(order.items[1].line_total, eur(1500));
        assert_eq!(order.total, eur(5498));
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.payment, Some(PaymentView::pending()));
    }

    #[test]
    fn a_total_the_provider_cannot_charge_is_refused() {
        let lines = OrderLines::new(vec![(pid("a"), Quantity::new(1).unwrap())]).unwrap();
        let priced = |amount| {
            Order::price(
                OrderId::new_random(),
                UserId::parse("alice").unwrap(),
                &lines,
                checkout(),
                Utc::now(),
                |_| Some(eur(amount)),
            )
        };
        assert_eq!(priced(49), Err(PricingError::NotChargeable(eur(49))));
        assert!(priced(50).is_ok());
    }

    #[test]
    fn a_shipped_order_can_no_longer_be_cancelled() {
        let lines = OrderLines::new(vec![(pid("a"), Quantity::new(1).unwrap())]).unwrap();
        let order = Order::price(
            OrderId::new_random(),
            UserId::parse("alice").unwrap(),
            &lines,
            checkout(),
            Utc::now(),
            |_| Some(eur(500)),
        )
        .unwrap()
        .with_status(OrderStatus::Confirmed);
        assert!(order.is_cancellable());
        assert!(!order.shipped("shp_1".into()).is_cancellable());
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
            checkout(),
            Utc::now(),
            |id| Some(if id.as_str() == "a" { eur(100) } else { usd }),
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
            checkout(),
            Utc::now(),
            |_| None,
        );
        assert_eq!(result, Err(PricingError::UnknownProduct(pid("ghost"))));
    }

    #[test]
    fn only_open_orders_can_be_cancelled() {
        assert!(OrderStatus::Created.is_cancellable());
        assert!(OrderStatus::Pending.is_cancellable());
        assert!(OrderStatus::Confirmed.is_cancellable());
        assert!(!OrderStatus::Fulfilled.is_cancellable());
        assert!(!OrderStatus::Cancelled.is_cancellable());
        for status in OrderStatus::CANCELLABLE {
            assert!(status.is_cancellable());
        }
    }

    #[test]
    fn statuses_are_stored_as_their_names() {
        for status in [
            OrderStatus::Created,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Fulfilled,
            OrderStatus::Cancelled,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }
}
