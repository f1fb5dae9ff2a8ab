//! The payment provider port: narrow (authorize, capture, void, find), so a PaymentIntents
//! adapter or another provider can replace Stripe's Charges API without touching the saga.
//!
//! Every call carries an idempotency key the caller derives from the order and the step, so a
//! retried or redelivered step never charges twice.

use std::future::Future;

use chrono::{DateTime, Utc};

/// An authorization of an order's amount: funds held, not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorize<'a> {
    pub order_id: &'a str,
    /// In the currency's minor units.
    pub amount: i64,
    /// ISO 4217, as the order has it (`EUR`).
    pub currency: &'a str,
    /// The provider's token or payment-method id (`tok_visa`).
    pub payment_method: &'a str,
    pub idempotency_key: &'a str,
}

/// What the provider made of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The amount is held under this charge.
    Authorized { charge_id: String },
    /// A business outcome, not a fault: the card was declined (`card_declined`, …).
    Declined { code: String, message: String },
}

/// Where an order's charge stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeState {
    /// Authorized, neither captured nor released.
    Authorized,
    Captured,
    /// Released (refunded before capture).
    Voided,
    Failed,
}

/// An order's charge as the provider has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: String,
    pub amount: i64,
    pub state: ChargeState,
}

/// Why a call to the provider did not come to an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Rate limited, timed out or unreachable: the same call may succeed later (the message is
    /// retried through its queue).
    #[error("the payment provider is busy or unreachable: {0}")]
    Retryable(String),
    /// The provider failed (a 5xx) and keeps that answer under the idempotency key: repeating
    /// the key repeats the failure. Find out whether the charge exists before trying again under
    /// a new key — a 500 must never become two charges.
    #[error("the payment provider failed under idempotency key {idempotency_key}: {message}")]
    FailedUnderKey {
        idempotency_key: String,
        message: String,
    },
    /// The provider refused the request itself (say, a charge already captured).
    #[error("the payment provider refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// The client cannot be built as configured.
    #[error("the payment client is misconfigured: {0}")]
    Misconfigured(String),
    /// The provider's answer was not what its API promises.
    #[error("the payment provider's answer could not be read: {0}")]
    Unreadable(String),
}

/// The payment provider, as the payments service uses it.
pub trait PaymentProvider: Send + Sync {
    fn authorize(
        &self,
        request: &Authorize<'_>,
    ) -> impl Future<Output = Result<Authorization, ProviderError>> + Send;

    /// Takes the authorized amount.
    fn capture(
        &self,
        charge_id: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Releases an authorization that will not be captured.
    fn void(
        &self,
        charge_id: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// The order's charge, if the provider has one (by the order id kept with the charge),
    /// among the charges made at or after `since` (all of them when `None`): the order's own
    /// creation bounds the look-up, so it costs what the account charged since, not its history.
    fn find(
        &self,
        order_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Option<Charge>, ProviderError>> + Send;
}
