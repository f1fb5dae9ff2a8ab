//! The fulfillment service's room: a shipment for each confirmed order (`domain`), the events it
//! reads and writes (`events`), the saga step (`service`), the shipments table (`store`) and its
//! queue's consumer (`consumer`). Shipping itself (a carrier, labels) is beyond this project: a
//! shipment is recorded, which is what the saga waits for.

pub mod consumer;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;
