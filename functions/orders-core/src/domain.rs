//! The shop's vocabulary and its invariants: identifiers, quantities, money, products and orders.
//!
//! Nothing here knows about AWS, HTTP or I/O; every value that exists has already been validated.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A rule of the domain that a value broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("a product id is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    InvalidProductId,
    #[error("a quantity is a whole number from {min} to {max}", min = Quantity::MIN, max = Quantity::MAX)]
    QuantityOutOfRange,
    #[error("a currency is an ISO 4217 code of three upper-case letters")]
    InvalidCurrency,
    #[error("an amount of money is a whole, non-negative number of minor units, at most {max}", max = Money::MAX_AMOUNT)]
    AmountOutOfRange,
    #[error("amounts in {0} and {1} cannot be added")]
    CurrencyMismatch(Currency, Currency),
    #[error("the amount is too large to represent")]
    Overflow,
    #[error("an order has {min} to {max} lines", min = OrderLines::MIN, max = OrderLines::MAX)]
    LineCount,
    #[error("product {0} appears on more than one line")]
    DuplicateProduct(ProductId),
    #[error("a product name is 1 to 200 characters")]
    InvalidProductName,
    #[error("stock is a whole number from 0 to {max}", max = Stock::MAX)]
    StockOutOfRange,
}

/// A product's identifier: 1–64 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductId(String);

impl ProductId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::InvalidProductId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductId {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ProductId> for String {
    fn from(id: ProductId) -> Self {
        id.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order's identifier, a UUID. Without an idempotency key it is a fresh time-ordered UUIDv7;
/// with one it is the UUIDv5 of (user, key), so a retried request names the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(Uuid);

/// The namespace of idempotency-derived order ids (a fixed, random UUID of this project).
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f0d_4c4e_9b1a_4e57_a0d2_5a1e_93c7_2b10);

impl OrderId {
    pub fn new_random() -> Self {
        Self(Uuid::now_v7())
    }

    /// The same (user, key) always gives the same id; different users never share one.
    pub fn from_idempotency_key(user: &UserId, key: &IdempotencyKey) -> Self {
        let name = format!("{}\u{0}{}", user.as_str(), key.as_str());
        Self(Uuid::new_v5(&ORDER_ID_NAMESPACE, name.as_bytes()))
    }

    /// Parses the canonical hyphenated form; anything else is not an order id.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 36 {
            return None;
        }
        Uuid::try_parse(raw).ok().map(Self)
    }
}

impl TryFrom<String> for OrderId {
    type Error = uuid::Error;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Uuid::try_parse(&raw).map(Self)
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The authenticated user, as named by the token's `sub` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Any non-empty subject of at most 256 characters (what identity providers issue).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty() && raw.len() <= 256 && !raw.chars().any(char::is_control);
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client-chosen key that makes a create request safe to retry: 1–64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| (0x20..=0x7e).contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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

/// An ISO 4217 currency code (three upper-case ASCII letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(DomainError::InvalidCurrency),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in integer minor units (cents) of one currency. Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMoney", into = "RawMoney")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

/// The wire and storage shape of [`Money`]; validated on the way in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMoney {
    pub amount: i64,
    pub currency: String,
}

impl Money {
    /// The largest amount a price or total may hold (10^15 minor units).
    pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

    pub fn new(amount: i64, currency: Currency) -> Result<Self, DomainError> {
        if (0..=Self::MAX_AMOUNT).contains(&amount) {
            Ok(Self { amount, currency })
        } else {
            Err(DomainError::AmountOutOfRange)
        }
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: 0,
            currency,
        }
    }

    pub fn amount(self) -> i64 {
        self.amount
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        if self.currency != other.currency {
            return Err(DomainError::CurrencyMismatch(self.currency, other.currency));
        }
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or(DomainError::Overflow)?;
        Money::new(sum, self.currency).map_err(|_| DomainError::Overflow)
    }

    pub fn times(self, quantity: Quantity) -> Result<Money, DomainError> {
        let product = self
            .amount
            .checked_mul(i64::from(quantity.get()))
            .ok_or(DomainError::Overflow)?;
        Money::new(product, self.currency).map_err(|_| DomainError::Overflow)
    }
}

impl TryFrom<RawMoney> for Money {
    type Error = DomainError;
    fn try_from(raw: RawMoney) -> Result<Self, Self::Error> {
        Money::new(raw.amount, Currency::parse(&raw.currency)?)
    }
}

impl From<Money> for RawMoney {
    fn from(m: Money) -> Self {
        RawMoney {
            amount: m.amount,
            currency: m.currency.as_str().to_owned(),
        }
    }
}

/// A product of the catalogue with its current price and stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub name: ProductName,
    pub price: Money,
    pub stock: Stock,
}

/// A product's display name: 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        let count = trimmed.chars().count();
        if (1..=200).contains(&count) && !trimmed.chars().any(char::is_control) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(DomainError::InvalidProductName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductName {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ProductName> for String {
    fn from(n: ProductName) -> Self {
        n.0
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

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Confirmed,
    Cancelled,
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
        })
    }
}

/// Timestamps are RFC 3339 in UTC with milliseconds, so they also sort as text.
pub mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Drops what the text form cannot hold, so a value equals itself after a round trip.
    pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::SubsecRound;
        t.trunc_subsecs(3)
    }

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
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
    fn money_adds_within_one_currency() {
        assert_eq!(eur(1999).checked_add(eur(1)).unwrap(), eur(2000));
    }

    #[test]
    fn money_refuses_to_add_across_currencies() {
        let usd = Money::new(5, Currency::parse("USD").unwrap()).unwrap();
        assert!(matches!(
            eur(1).checked_add(usd),
            Err(DomainError::CurrencyMismatch(_, _))
        ));
    }

    #[test]
    fn money_overflow_is_an_error_not_a_wrap() {
        let max = eur(Money::MAX_AMOUNT);
        assert_eq!(max.checked_add(eur(1)), Err(DomainError::Overflow));
        assert_eq!(
            max.times(Quantity::new(2).unwrap()),
            Err(DomainError::Overflow)
        );
        assert_eq!(
            Money::new(-1, max.currency()),
            Err(DomainError::AmountOutOfRange)
        );
    }

    #[test]
    fn money_multiplies_by_quantity() {
        assert_eq!(
            eur(1999).times(Quantity::new(3).unwrap()).unwrap(),
            eur(5997)
        );
    }

    #[test]
    fn currency_is_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert_eq!(
                Currency::parse(bad),
                Err(DomainError::InvalidCurrency),
                "{bad}"
            );
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
    fn product_id_charset_and_length() {
        assert!(ProductId::parse("p-1_A").is_ok());
        assert!(ProductId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "p 1", "p#1", "é", &"a".repeat(65)] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
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
    fn idempotency_derived_ids_are_stable_and_per_user() {
        let key = IdempotencyKey::parse("k-1").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(
            OrderId::from_idempotency_key(&alice, &key),
            OrderId::from_idempotency_key(&alice, &key)
        );
        assert_ne!(
            OrderId::from_idempotency_key(&alice, &key),
            OrderId::from_idempotency_key(&bob, &key)
        );
    }

    #[test]
    fn idempotency_key_is_printable_ascii() {
        assert!(IdempotencyKey::parse("abc DEF-123_~").is_some());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(65)).is_none());
        assert!(IdempotencyKey::parse("tab\there").is_none());
        assert!(IdempotencyKey::parse("ünï").is_none());
    }

    #[test]
    fn order_id_round_trips_through_text() {
        let id = OrderId::new_random();
        assert_eq!(OrderId::parse(&id.to_string()), Some(id));
        assert_eq!(OrderId::parse("not-an-id"), None);
    }
}
