//! The payments service's room: a payment's states and transitions (`domain`), the payment
//! provider port (`provider`: authorize, capture, void, find an order's charge) and its adapter
//! for Stripe's Charges API (`stripe`, its secret key read from Secrets Manager once at init:
//! `secret`), the saga's payment steps (`service`), the payments table (`store`), the events it
//! reads and writes (`events`), its queue's consumer (`consumer`) and the watch for stranded
//! authorizations (`service::stranded_authorizations`, run by payments-reconciler).

pub mod consumer;
pub mod domain;
pub mod events;
pub mod metrics;
pub mod provider;
pub mod secret;
pub mod service;
pub mod store;
pub mod stripe;

pub use provider::{Authorization, Authorize, Charge, ChargeState, PaymentProvider, ProviderError};
