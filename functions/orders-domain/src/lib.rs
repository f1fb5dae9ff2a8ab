//! The shop's vocabulary and its invariants: identifiers, quantities, money, products and orders.
//!
//! Nothing here knows about AWS, HTTP or I/O; every value that exists has already been validated.
//! `cargo test -p orders-domain` needs no emulator and builds in seconds.

mod checkout;
mod error;
mod ids;
mod money;
mod order;
mod product;

mod text;

pub use checkout::{
    CancellationReason, Chargeable, PaymentMethod, PaymentStatus, PaymentView, RawAddress,
    ShippingAddress,
};
pub use error::DomainError;
pub use ids::{IdempotencyKey, OrderId, ProductId, UserId};
pub use kernel::rfc3339_millis;
pub use money::{Currency, Money, RawMoney};
pub use order::{
    Checkout, LineRequest, Order, OrderLine, OrderLines, OrderStatus, PricingError, Quantity,
};
pub use product::{
    AdjustmentReason, MaxPerOrder, Product, ProductName, Stock, StockAdjustment, StockDelta,
};
