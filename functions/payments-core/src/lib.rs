//! The payments service's room. So far: a payment's states and transitions (`domain`), the
//! payment provider port (`provider`: authorize, capture, void, find an order's charge) and its
//! adapter for Stripe's Charges API (`stripe`), whose secret key is read from Secrets Manager
//! once at init (`secret`). The saga's payment steps (the consumer, the payments table) build
//! on it.

pub mod domain;
pub mod provider;
pub mod secret;
pub mod stripe;

pub use provider::{Authorization, Authorize, Charge, ChargeState, PaymentProvider, ProviderError};
