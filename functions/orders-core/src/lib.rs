//! The orders service: orders with their inventory reservation, cancellation, and the catalogue.
//!
//! Layers, from the inside out:
//! - [`domain`] (the `orders-domain` crate): ids, quantities, money, products and orders with
//!   their invariants; no I/O;
//! - [`service`]: the use cases, and the ports they need of the database ([`service::ports`]);
//! - [`store`]: the DynamoDB adapter of those ports, one file per transaction;
//! - [`http`]: the API's routes, and the one mapping of each use case's outcome to a problem;
//! - [`events`]: the order events of the outbox, and [`consumer`] that applies them.
//!
//! The plumbing every service shares (settings, logs, metrics, the HTTP mapping, the event
//! envelope, the outbox relay, the consumer loop) is the `platform` crate.

pub use orders_domain as domain;

pub mod config;
pub mod consumer;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod http;
pub mod metrics;
pub mod service;
pub mod store;
