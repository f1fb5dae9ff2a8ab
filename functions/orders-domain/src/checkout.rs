//! What an order needs to be paid for and shipped: the payment method, the shipping address, what
//! the payment provider can charge, and the payment as the orders service last heard of it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::money::{Currency, Money};
use crate::text::{display_text, text_value};

text_value!(
    /// A payment provider's token or payment-method id (`tok_visa`, `pm_…`): 1 to 255 printable
    /// characters, passed to the provider as it is.
    PaymentMethod
);

impl PaymentMethod {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let count = raw.chars().count();
        if (1..=Self::MAX_CHARS).contains(&count) && !raw.chars().any(char::is_control) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::InvalidPaymentMethod)
        }
    }
}

/// Where an order is shipped: stored with the order and passed on to fulfillment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawAddress", into = "RawAddress")]
pub struct ShippingAddress(RawAddress);

/// The wire and storage shape of [`ShippingAddress`]; validated on the way in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 (`DE`).
    pub country: String,
}

impl ShippingAddress {
    /// The longest member (name, lines, city); a postal code is at most 16 characters.
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: RawAddress) -> Result<Self, DomainError> {
        let text = |value: &str, field: &'static str, max: usize| {
            display_text(value, max).ok_or(DomainError::InvalidAddress(field))
        };
        let line2 = match raw.line2.as_deref() {
            None => None,
            Some(line) => Some(text(line, "line2", Self::MAX_CHARS)?),
        };
        let country = raw.country.trim();
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(DomainError::InvalidAddress("country"));
        }
        Ok(Self(RawAddress {
            name: text(&raw.name, "name", Self::MAX_CHARS)?,
            line1: text(&raw.line1, "line1", Self::MAX_CHARS)?,
            line2,
            city: text(&raw.city, "city", Self::MAX_CHARS)?,
            postal_code: text(&raw.postal_code, "postalCode", 16)?,
            country: country.to_owned(),
        }))
    }

    pub fn get(&self) -> &RawAddress {
        &self.0
    }
}

impl TryFrom<RawAddress> for ShippingAddress {
    type Error = DomainError;
    fn try_from(raw: RawAddress) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<ShippingAddress> for RawAddress {
    fn from(address: ShippingAddress) -> Self {
        address.0
    }
}

/// What the payment provider can charge (Stripe's limits): refused at creation, never
/// discovered by the saga.
pub struct Chargeable;

impl Chargeable {
    pub const MIN_AMOUNT: i64 = 50;
    pub const MAX_AMOUNT: i64 = 99_999_999;
    pub const CURRENCIES: [&'static str; 12] = [
        "AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "JPY", "NOK", "PLN", "SEK", "USD",
    ];

    pub fn allows(total: &Money) -> bool {
        (Self::MIN_AMOUNT..=Self::MAX_AMOUNT).contains(&total.amount())
            && Self::currency(total.currency())
    }

    pub fn currency(currency: Currency) -> bool {
        Self::CURRENCIES.contains(&currency.as_str())
    }
}

/// An order's payment, as the payment events told the orders service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Authorized,
    Captured,
    Voided,
    Declined,
}

impl PaymentStatus {
    /// Whether a payment in this status can move to `next`: pending → authorized, declined or
    /// voided (nothing held at the deadline); authorized → captured or voided; declined, captured
    /// and voided are final. An event that would move it any other way is stale or contradictory.
    pub fn may_become(self, next: PaymentStatus) -> bool {
        use PaymentStatus::{Authorized, Captured, Declined, Pending, Voided};
        matches!(
            (self, next),
            (Pending, Authorized | Declined | Voided) | (Authorized, Captured | Voided)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Declined => "declined",
        }
    }
}

/// The `payment` object of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub status: PaymentStatus,
    /// The provider's charge id, once there is a charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    /// The provider's decline code, when declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
}

impl PaymentView {
    pub fn pending() -> Self {
        Self {
            status: PaymentStatus::Pending,
            charge_id: None,
            decline_code: None,
        }
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// Its owner cancelled it.
    Customer,
    /// The payment provider declined the payment.
    PaymentDeclined,
    /// The payment was not authorized before the reservation expired.
    Expired,
}

impl CancellationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancellationReason::Customer => "customer",
            CancellationReason::PaymentDeclined => "payment_declined",
            CancellationReason::Expired => "expired",
        }
    }
}

impl fmt::Display for CancellationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_only_moves_forward() {
        use PaymentStatus::{Authorized, Captured, Declined, Pending, Voided};
        let all = [Pending, Authorized, Captured, Voided, Declined];
        let moves: Vec<_> = all
            .iter()
            .flat_map(|from| all.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| from.may_become(*to))
            .collect();
        assert_eq!(
            moves,
            [
                (Pending, Authorized),
                (Pending, Voided),
                (Pending, Declined),
                (Authorized, Captured),
                (Authorized, Voided),
            ]
        );
    }

    fn address() -> RawAddress {
        RawAddress {
            name: " Ada Lovelace ".into(),
            line1: "1 Analytical Way".into(),
            line2: None,
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "GB".into(),
        }
    }

    #[test]
    fn a_payment_method_is_1_to_255_printable_characters() {
        assert!(PaymentMethod::parse("tok_visa").is_ok());
        assert!(PaymentMethod::parse(&"x".repeat(255)).is_ok());
        assert!(PaymentMethod::parse(&"x".repeat(256)).is_err());
        assert!(PaymentMethod::parse("").is_err());
        assert!(PaymentMethod::parse("tok\n").is_err());
    }

    #[test]
    fn an_address_is_trimmed_and_names_the_member_it_breaks() {
        let ok = ShippingAddress::parse(address()).unwrap();
        assert_eq!(ok.get().name, "Ada Lovelace");
        let bad_country = RawAddress {
            country: "gbr".into(),
            ..address()
        };
        assert_eq!(
            ShippingAddress::parse(bad_country),
            Err(DomainError::InvalidAddress("country"))
        );
        let blank_city = RawAddress {
            city: "  ".into(),
            ..address()
        };
        assert_eq!(
            ShippingAddress::parse(blank_city),
            Err(DomainError::InvalidAddress("city"))
        );
    }

    #[test]
    fn the_provider_charges_50_to_99_999_999_minor_units_in_its_currencies() {
        let eur = Currency::parse("EUR").unwrap();
        let money = |amount| Money::new(amount, eur).unwrap();
        assert!(!Chargeable::allows(&money(49)));
        assert!(Chargeable::allows(&money(50)));
        assert!(Chargeable::allows(&money(99_999_999)));
        assert!(!Chargeable::allows(&money(100_000_000)));
        let xts = Money::new(500, Currency::parse("XTS").unwrap()).unwrap();
        assert!(!Chargeable::allows(&xts));
    }

    #[test]
    fn statuses_and_reasons_are_stored_as_the_api_shows_them() {
        assert_eq!(
            serde_json::to_string(&CancellationReason::PaymentDeclined).unwrap(),
            "\"payment_declined\""
        );
        assert_eq!(
            serde_json::to_string(&PaymentStatus::Authorized).unwrap(),
            "\"authorized\""
        );
    }
}
