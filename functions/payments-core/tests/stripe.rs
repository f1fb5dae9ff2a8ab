//! The Stripe adapter against the payment provider's emulator (stripe-stateful-mock, started by
//! `make test` at `PAYMENT_API_BASE`): authorize, capture, void, declines, provider faults and
//! idempotency keys, as the saga will meet them.

use payments_core::stripe::Stripe;
use payments_core::{Authorization, Authorize, ChargeState, PaymentProvider, ProviderError};

fn stripe() -> Stripe {
    let base = std::env::var("PAYMENT_API_BASE").expect(
        "the payment tests run against the emulator: run them with `make test` \
         (or infra/with-emulators.sh cargo test)",
    );
    Stripe::new(&base, "sk_test_orders".to_owned()).unwrap()
}

/// A fresh order id and key prefix, so tests share nothing on the emulator.
fn order() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn authorize<'a>(order: &'a str, payment_method: &'a str, key: &'a str) -> Authorize<'a> {
    Authorize {
        order_id: order,
        amount: 2599,
        currency: "EUR",
        payment_method,
        idempotency_key: key,
    }
}

/// The order's total authorized with the test card: its charge id.
async fn authorized(stripe: &Stripe, order: &str) -> String {
    let key = format!("{order}:authorize");
    match stripe
        .authorize(&authorize(order, "tok_visa", &key))
        .await
        .unwrap()
    {
        Authorization::Authorized { charge_id } => charge_id,
        declined => panic!("tok_visa is authorized, not {declined:?}"),
    }
}

#[tokio::test]
async fn an_authorization_is_captured_once_and_found_by_its_order() {
    let stripe = stripe();
    let order = order();
    let key = format!("{order}:authorize");
    let Authorization::Authorized { charge_id } = stripe
        .authorize(&authorize(&order, "tok_visa", &key))
        .await
        .unwrap()
    else {
        panic!("tok_visa is authorized");
    };
    // The same key answers the same charge: a redelivered step never charges twice.
    let again = stripe
        .authorize(&authorize(&order, "tok_visa", &key))
        .await
        .unwrap();
    assert_eq!(
        again,
        Authorization::Authorized {
            charge_id: charge_id.clone()
        }
    );
    let found = stripe
        .find(&order, None)
        .await
        .unwrap()
        .expect("the order's charge");
    assert_eq!(
        (found.charge_id.as_str(), found.amount),
        (charge_id.as_str(), 2599)
    );
    assert_eq!(found.state, ChargeState::Authorized);

    let capture_key = format!("{order}:capture");
    stripe.capture(&charge_id, &capture_key).await.unwrap();
    stripe.capture(&charge_id, &capture_key).await.unwrap();
    assert_eq!(
        stripe.find(&order, None).await.unwrap().unwrap().state,
        ChargeState::Captured
    );
    // A second capture under another key is refused by the provider, not repeated.
    let refused = stripe
        .capture(&charge_id, &format!("{order}:capture-2"))
        .await;
    assert!(
        matches!(refused, Err(ProviderError::Refused { status: 400, .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_look_up_reads_only_the_charges_made_since_the_order() {
    let stripe = stripe();
    let order = order();
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(2);
    let charge_id = authorized(&stripe, &order).await;
    let found = stripe.find(&order, Some(before)).await.unwrap();
    assert_eq!(found.map(|c| c.charge_id), Some(charge_id));
    // A charge older than the window is not the order's (the order came after it): the look-up
    // stops there, even on the emulator, which ignores `created[gte]`.
    let later = chrono::Utc::now() + chrono::TimeDelta::minutes(1);
    assert_eq!(stripe.find(&order, Some(later)).await.unwrap(), None);
}

#[tokio::test]
async fn a_voided_authorization_is_released() {
    let stripe = stripe();
    let order = order();
    let charge_id = authorized(&stripe, &order).await;
    stripe
        .void(&charge_id, &format!("{order}:void"))
        .await
        .unwrap();
    stripe
        .void(&charge_id, &format!("{order}:void"))
        .await
        .unwrap();
    assert_eq!(
        stripe.find(&order, None).await.unwrap().unwrap().state,
        ChargeState::Voided
    );
}

#[tokio::test]
async fn a_decline_is_an_outcome_not_a_fault() {
    let stripe = stripe();
    let order = order();
    let outcome = stripe
        .authorize(&authorize(
            &order,
            "tok_chargeDeclined",
            &format!("{order}:authorize"),
        ))
        .await
        .unwrap();
    let Authorization::Declined { code, message } = outcome else {
        panic!("declined, not {outcome:?}");
    };
    assert_eq!(code, "generic_decline");
    assert!(!message.is_empty());
}

#[tokio::test]
async fn a_rate_limit_is_retried_under_the_same_key_and_makes_one_charge() {
    let stripe = stripe();
    let order = order();
    // The emulator's chains are used up per string: this test's own.
    let chain = format!("tok_429|tok_visa|run{}", order.replace('-', ""));
    let key = format!("{order}:authorize");
    let first = stripe.authorize(&authorize(&order, &chain, &key)).await;
    assert!(
        matches!(first, Err(ProviderError::Retryable(_))),
        "{first:?}"
    );
    let second = stripe
        .authorize(&authorize(&order, &chain, &key))
        .await
        .unwrap();
    assert!(matches!(second, Authorization::Authorized { .. }));
    assert!(
        stripe.find(&order, None).await.unwrap().is_some(),
        "one charge"
    );
}

#[tokio::test]
async fn a_provider_failure_is_kept_under_its_key_and_made_no_charge() {
    let stripe = stripe();
    let order = order();
    let key = format!("{order}:authorize");
    for _ in 0..2 {
        let failed = stripe.authorize(&authorize(&order, "tok_500", &key)).await;
        assert!(
            matches!(&failed, Err(ProviderError::FailedUnderKey { idempotency_key, .. }) if idempotency_key == &key),
            "{failed:?}"
        );
    }
    // Before trying again under a new key, the saga looks: there is no charge.
    assert_eq!(stripe.find(&order, None).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_provider_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stripe = Stripe::new(&format!("http://127.0.0.1:{port}"), "sk_test".into()).unwrap();
    let order = order();
    let outcome = stripe.authorize(&authorize(&order, "tok_visa", "k")).await;
    assert!(
        matches!(outcome, Err(ProviderError::Retryable(_))),
        "{outcome:?}"
    );
}

#[test]
fn the_secret_key_never_travels_in_plain_text_and_the_public_roots_are_trusted() {
    assert!(matches!(
        Stripe::new("http://api.example.com", "sk".into()),
        Err(ProviderError::Misconfigured(_))
    ));
    assert!(Stripe::new(payments_core::stripe::DEFAULT_BASE, "sk".into()).is_ok());
    // api.stripe.com's certificates chain to DigiCert's roots, which the client's store holds.
    let digicert = webpki_roots::TLS_SERVER_ROOTS
        .iter()
        .filter(|anchor| {
            String::from_utf8_lossy(anchor.subject.as_ref()).contains("DigiCert Global Root")
        })
        .count();
    assert!(digicert >= 2, "DigiCert Global Root CA and G2");
}
