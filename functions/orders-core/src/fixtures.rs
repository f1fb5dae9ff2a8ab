//! Values the unit tests build again and again.

use chrono::Utc;

use crate::domain::{
    Checkout, Currency, Money, Order, OrderId, OrderLines, PaymentMethod, ProductId, Quantity,
    UserId,
};

/// A checkout with `tok_visa` and a 15-minute reservation.
pub fn checkout() -> Checkout {
    Checkout {
        payment_method: PaymentMethod::parse("tok_visa").unwrap(),
        shipping_address: None,
        expires_at: Utc::now() + chrono::Duration::minutes(15),
    }
}

/// Order lines from `(product id, quantity)` pairs.
pub fn lines(lines: &[(&str, u32)]) -> OrderLines {
    OrderLines::new(
        lines
            .iter()
            .map(|(id, q)| (ProductId::parse(id).unwrap(), Quantity::new(*q).unwrap()))
            .collect(),
    )
    .unwrap()
}

/// Alice's order of these lines, every unit at `cents` EUR.
pub fn order(items: &[(&str, u32)], cents: i64) -> Order {
    let eur = Currency::parse("EUR").unwrap();
    Order::price(
        OrderId::new_random(),
        UserId::parse("alice").unwrap(),
        &lines(items),
        checkout(),
        Utc::now(),
        |_| Some(Money::new(cents, eur).unwrap()),
    )
    .unwrap()
}
