//! Use cases: what happens between a validated request (or event) and the store, independent of
//! HTTP and of DynamoDB. Each returns one typed outcome, which `crate::http` maps to a problem
//! once and the metrics read as it is.

mod apply;
mod cancel;
mod catalogue;
mod create;
mod expire;
pub mod ports;
mod terms;

pub use apply::{ApplyError, Consumer, apply};
pub use cancel::{CancelBy, CancelOrderDeps, CancelOrderError, Cancelled, cancel_order};
pub use catalogue::{
    AdjustStock, AdjustStockDeps, AdjustStockError, Adjusted, Put, PutProductError, adjust_stock,
};
pub(crate) use create::seconds_to_next_minute;
pub use create::{
    CreateOrder, CreateOrderDeps, CreateOrderError, Created, create_order, request_hash,
};
pub use expire::{EXPIRY_BATCH, Expired, expire_orders};
pub use platform::retry::RetryPolicy;
pub use terms::{Terms, TermsCache};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
