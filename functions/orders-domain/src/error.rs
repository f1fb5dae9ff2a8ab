//! The one error type of the domain: a rule that a value broke.

use crate::ids::ProductId;
use crate::money::{Currency, Money};
use crate::order::{OrderLines, Quantity};
use crate::product::Stock;

/// A rule of the domain that a value broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("a product id is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    InvalidProductId,
    #[error("a user id is 1 to 256 characters without control characters")]
    InvalidUserId,
    #[error("an idempotency key is 1 to 64 printable ASCII characters")]
    InvalidIdempotencyKey,
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
    #[error("a stock delta is a whole number from -{max} to {max}, not 0", max = Stock::MAX)]
    StockDeltaOutOfRange,
    #[error("a reason is 1 to 200 characters without control characters")]
    InvalidAdjustmentReason,
    #[error("a payment method is 1 to 255 characters without control characters")]
    InvalidPaymentMethod,
    #[error("the shipping address's {0} is missing or not valid")]
    InvalidAddress(&'static str),
    #[error("maxPerOrder is a whole number from 1 to {max}", max = Quantity::MAX)]
    MaxPerOrderOutOfRange,
}
