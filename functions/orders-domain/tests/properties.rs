//! The domain's invariants for any input, not only the examples the unit tests pick: pricing and
//! totals, the lines an order may hold, the values that bound them.

use chrono::{TimeZone, Utc};
use orders_domain::{
    Chargeable, Checkout, Currency, DomainError, MaxPerOrder, Money, Order, OrderId, OrderLines,
    OrderStatus, PaymentMethod, PricingError, ProductId, Quantity, UserId,
};
use proptest::prelude::*;

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn checkout() -> Checkout {
    Checkout {
        payment_method: PaymentMethod::parse("tok_visa").unwrap(),
        shipping_address: None,
        expires_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 15, 0).unwrap(),
    }
}

/// Lines of distinct products (`p0`, `p1`, …), each with a quantity and a unit price in cents:
/// mostly a shop's (chargeable totals), sometimes any the catalogue may hold (overflowing ones).
fn priced_lines() -> impl Strategy<Value = Vec<(u32, i64)>> {
    let quantity = prop_oneof![8 => 1u32..=10, 1 => Quantity::MIN..=Quantity::MAX];
    let price = prop_oneof![8 => 0i64..=5_000, 1 => 0i64..=Money::MAX_AMOUNT];
    prop::collection::vec((quantity, price), OrderLines::MIN..=OrderLines::MAX)
}

/// Amounts mostly within what money may hold, sometimes any.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 0i64..=Money::MAX_AMOUNT, 1 => Money::MAX_AMOUNT - 10..=Money::MAX_AMOUNT, 1 => any::<i64>()]
}

fn lines_of(priced: &[(u32, i64)]) -> OrderLines {
    OrderLines::new(
        priced
            .iter()
            .enumerate()
            .map(|(i, (q, _))| {
                (
                    ProductId::parse(&format!("p{i}")).unwrap(),
                    Quantity::new(*q).unwrap(),
                )
            })
            .collect(),
    )
    .unwrap()
}

fn price(priced: &[(u32, i64)]) -> Result<Order, PricingError> {
    let lines = lines_of(priced);
    Order::price(
        OrderId::new_random(),
        UserId::parse("alice").unwrap(),
        &lines,
        checkout(),
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        |id| {
            let i: usize = id.as_str()[1..].parse().ok()?;
            Money::new(priced.get(i)?.1, eur()).ok()
        },
    )
}

proptest! {
    #[test]
    fn a_total_is_the_exact_sum_of_its_lines_or_the_order_is_refused(priced in priced_lines()) {
        let exact: i128 = priced.iter().map(|(q, p)| i128::from(*q) * i128::from(*p)).sum();
        match price(&priced) {
            Ok(order) => {
                prop_assert_eq!(i128::from(order.total.amount()), exact);
                prop_assert!(Chargeable::allows(&order.total));
                prop_assert_eq!(order.status, OrderStatus::Pending);
                prop_assert_eq!(order.items.len(), priced.len());
                for (line, (q, p)) in order.items.iter().zip(&priced) {
                    prop_assert_eq!(line.quantity.get(), *q);
                    prop_assert_eq!(line.unit_price.amount(), *p);
                    prop_assert_eq!(i128::from(line.line_total.amount()), i128::from(*q) * i128::from(*p));
                }
            }
            // Refused exactly when the provider could not charge the exact total, or a line or
            // the sum leaves what money may hold: never a wrong total.
            Err(PricingError::NotChargeable(total)) => {
                prop_assert_eq!(i128::from(total.amount()), exact);
                prop_assert!(!Chargeable::allows(&total));
            }
            Err(PricingError::Domain(DomainError::Overflow)) => {
                prop_assert!(exact > i128::from(Money::MAX_AMOUNT)
                    || priced.iter().any(|(q, p)| i128::from(*q) * i128::from(*p) > i128::from(Money::MAX_AMOUNT)));
            }
            Err(other) => prop_assert!(false, "unexpected refusal: {other}"),
        }
    }

    #[test]
    fn lines_are_accepted_exactly_when_counted_and_distinct(
        ids in prop::collection::vec("[a-z]{1,2}", 0..30)
    ) {
        let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
        let counted = (OrderLines::MIN..=OrderLines::MAX).contains(&ids.len());
        let lines = ids
            .iter()
            .map(|id| (ProductId::parse(id).unwrap(), Quantity::new(1).unwrap()))
            .collect();
        match OrderLines::new(lines) {
            Ok(lines) => prop_assert!(counted && distinct && lines.len() == ids.len()),
            Err(DomainError::LineCount) => prop_assert!(!counted),
            Err(DomainError::DuplicateProduct(id)) => {
                prop_assert!(counted && !distinct);
                prop_assert!(ids.iter().filter(|i| **i == id.as_str()).count() > 1);
            }
            Err(other) => prop_assert!(false, "unexpected refusal: {other}"),
        }
    }

    #[test]
    fn the_canonical_form_names_the_lines_whatever_their_order(
        priced in priced_lines(),
        seed in any::<u64>(),
    ) {
        let lines = lines_of(&priced);
        let mut shuffled: Vec<_> = lines.iter().map(|l| (l.product_id.clone(), l.quantity)).collect();
        // A deterministic shuffle from the seed (proptest shrinks the seed, not the order).
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let shuffled = OrderLines::new(shuffled).unwrap();
        prop_assert_eq!(lines.canonical(), shuffled.canonical());
        // One more unit on any line is another request.
        if let Some((q, _)) = priced.first().filter(|(q, _)| *q < Quantity::MAX) {
            let mut more = priced.clone();
            more[0].0 = q + 1;
            prop_assert_ne!(lines.canonical(), lines_of(&more).canonical());
        }
    }

    #[test]
    fn quantities_and_limits_hold_their_bounds(
        value in prop_oneof![0u32..=1001, any::<u32>()],
        limit in prop_oneof![0u32..=1001, any::<u32>()],
    ) {
        let quantity = Quantity::new(value);
        prop_assert_eq!(quantity.is_ok(), (1..=1000).contains(&value));
        let max = MaxPerOrder::new(limit);
        prop_assert_eq!(max.is_ok(), (1..=1000).contains(&limit));
        if let (Ok(q), Ok(m)) = (quantity, max) {
            prop_assert_eq!(m.allows(q), value <= limit);
        }
    }

    #[test]
    fn money_never_holds_what_it_cannot(amount in amount(), other in amount()) {
        let money = Money::new(amount, eur());
        prop_assert_eq!(money.is_ok(), (0..=Money::MAX_AMOUNT).contains(&amount));
        if let (Ok(a), Ok(b)) = (money, Money::new(other, eur())) {
            let sum = i128::from(amount) + i128::from(other);
            match a.checked_add(b) {
                Ok(total) => prop_assert_eq!(i128::from(total.amount()), sum),
                Err(_) => prop_assert!(sum > i128::from(Money::MAX_AMOUNT)),
            }
        }
    }
}
