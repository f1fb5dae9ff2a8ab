//! Money: integer minor units of one ISO 4217 currency.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::order::Quantity;

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

impl fmt::Display for Money {
    /// Minor units and currency (`49 EUR`): the domain does not know each currency's decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").unwrap()).unwrap()
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
}
