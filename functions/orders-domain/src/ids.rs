//! Identifiers: of products, orders, users, and the client's idempotency keys.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;
use crate::text::text_value;

text_value!(
    /// A product's identifier: 1–64 of `[A-Za-z0-9_-]`.
    ProductId
);

impl ProductId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid
            .then(|| Self(raw.to_owned()))
            .ok_or(DomainError::InvalidProductId)
    }
}

text_value!(
    /// The authenticated user, as named by the token's `sub` claim.
    UserId
);

impl UserId {
    /// Any non-empty subject of at most 256 characters (what identity providers issue).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty() && raw.len() <= 256 && !raw.chars().any(char::is_control);
        ok.then(|| Self(raw.to_owned()))
            .ok_or(DomainError::InvalidUserId)
    }
}

text_value!(
    /// A client-chosen key that makes a create request safe to retry: 1–64 printable ASCII characters.
    IdempotencyKey
);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| (0x20..=0x7e).contains(&b));
        ok.then(|| Self(raw.to_owned()))
            .ok_or(DomainError::InvalidIdempotencyKey)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_id_charset_and_length() {
        assert!(ProductId::parse("p-1_A").is_ok());
        assert!(ProductId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "p 1", "p#1", "é", &"a".repeat(65)] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
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
        assert!(IdempotencyKey::parse("abc DEF-123_~").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(65)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("ünï").is_err());
    }

    #[test]
    fn user_ids_are_what_identity_providers_issue() {
        assert!(UserId::parse("auth0|5f7c8ec7c33c6c004bbafe82").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"u".repeat(257)).is_err());
        assert!(UserId::parse("new\nline").is_err());
    }

    #[test]
    fn text_values_are_validated_when_read_back() {
        let parsed: Result<ProductId, _> = serde_json::from_str("\"no spaces allowed\"");
        assert!(parsed.is_err());
        let id: ProductId = serde_json::from_str("\"p-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"p-1\"");
    }

    #[test]
    fn order_id_round_trips_through_text() {
        let id = OrderId::new_random();
        assert_eq!(OrderId::parse(&id.to_string()), Some(id));
        assert_eq!(OrderId::parse("not-an-id"), None);
    }
}
