//! Values the unit tests build again and again.

use chrono::Utc;

use crate::domain::{Currency, Money, Order, OrderId, OrderLines, ProductId, Quantity, UserId};

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
        Utc::now(),
        |_| Some(Money::new(cents, eur).unwrap()),
    )
    .unwrap()
}
