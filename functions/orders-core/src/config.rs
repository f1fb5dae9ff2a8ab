//! Settings every function reads once at init from the environment that template.yaml gives it.

use std::env;

/// A setting that is missing or malformed; the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The names of the tables, as template.yaml passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub products: String,
    pub orders: String,
    pub outbox: String,
    pub inbox: String,
}

impl Tables {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| env::var(name).ok())
    }

    /// Reads the settings from any source of variables (the process environment, or in tests the
    /// environment template.yaml gives a function).
    pub fn from_vars(vars: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            products: required(&vars, "PRODUCTS_TABLE")?,
            orders: required(&vars, "ORDERS_TABLE")?,
            outbox: required(&vars, "OUTBOX_TABLE")?,
            inbox: required(&vars, "INBOX_TABLE")?,
        })
    }
}

/// What create-order needs beyond the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSettings {
    /// At most this many orders per user per minute.
    pub orders_per_minute: u32,
    /// The CloudEvents `source` of the events this service writes.
    pub event_source: String,
}

impl OrderSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| env::var(name).ok())
    }

    pub fn from_vars(vars: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = required(&vars, "ORDERS_PER_MINUTE")?;
        let orders_per_minute =
            raw.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "ORDERS_PER_MINUTE",
                    reason: format!("{raw:?} is not a positive whole number"),
                })?;
        Ok(Self {
            orders_per_minute,
            event_source: required(&vars, "EVENT_SOURCE")?,
        })
    }
}

/// The CloudEvents `source` of the events a function writes.
pub fn event_source_from_env() -> Result<String, ConfigError> {
    required(&|name: &str| env::var(name).ok(), "EVENT_SOURCE")
}

/// Where the relay sends the outbox's events.
pub fn order_events_queue_from_env() -> Result<String, ConfigError> {
    required(&|name: &str| env::var(name).ok(), "ORDER_EVENTS_QUEUE_URL")
}

fn required(
    vars: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    match vars(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}
