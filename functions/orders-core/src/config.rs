//! The orders service's settings, read once at init from the environment template.yaml gives it.

use platform::config::{ConfigError, Vars, process_env};
use platform::relay::TopicPublisher;

/// The names of the tables, as template.yaml passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub products: String,
    pub orders: String,
    pub outbox: String,
    pub inbox: String,
    pub stock_adjustments: String,
}

impl Tables {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(process_env())
    }

    pub fn from_vars(vars: impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            products: vars.required("PRODUCTS_TABLE")?,
            orders: vars.required("ORDERS_TABLE")?,
            outbox: vars.required("OUTBOX_TABLE")?,
            inbox: vars.required("INBOX_TABLE")?,
            stock_adjustments: vars.required("STOCK_ADJUSTMENTS_TABLE")?,
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
    /// How long an unpaid order holds its stock (`RESERVATION_MINUTES`).
    pub reservation: chrono::Duration,
}

impl OrderSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(process_env())
    }

    pub fn from_vars(vars: impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            orders_per_minute: vars.positive("ORDERS_PER_MINUTE")?,
            event_source: event_source(&vars)?,
            reservation: chrono::Duration::minutes(i64::from(
                vars.positive("RESERVATION_MINUTES")?,
            )),
        })
    }
}

/// The CloudEvents `source` of the events a function writes.
pub fn event_source(vars: &impl Vars) -> Result<String, ConfigError> {
    vars.required("EVENT_SOURCE")
}

/// How the relay and the reconciler publish the outbox's events: to the events FIFO topic
/// (`EVENTS_TOPIC_ARN`), setting aside what can never be sent in `RELAY_DEAD_LETTER_QUEUE_URL`.
pub fn events_publisher(
    config: &aws_config::SdkConfig,
    vars: &impl Vars,
) -> Result<TopicPublisher, ConfigError> {
    Ok(TopicPublisher::new(
        platform::aws::sns_client(config),
        vars.required("EVENTS_TOPIC_ARN")?,
        platform::aws::sqs_client(config),
        vars.required("RELAY_DEAD_LETTER_QUEUE_URL")?,
    ))
}

/// Which consumers each event type is delivered to (the events topic's subscriptions).
pub fn event_consumers(vars: &impl Vars) -> Result<platform::reconcile::Consumers, ConfigError> {
    let raw = vars.required("EVENT_CONSUMERS")?;
    platform::reconcile::Consumers::parse(&raw).map_err(|reason| ConfigError::Invalid {
        name: "EVENT_CONSUMERS",
        reason,
    })
}

/// How old an outbox event no consumer recorded must be before the reconciler sends it again.
pub fn reconcile_after(vars: impl Vars) -> Result<chrono::Duration, ConfigError> {
    let minutes: u32 = vars.positive("RECONCILE_AFTER_MINUTES")?;
    Ok(chrono::Duration::minutes(i64::from(minutes)))
}

/// What cancel-order, expire-orders and order-events build at init to cancel orders: the store
/// over the template's tables and this service's event source.
pub fn cancel_deps(
    config: &aws_config::SdkConfig,
    metrics: std::sync::Arc<platform::metrics::Metrics>,
) -> Result<crate::service::CancelOrderDeps<crate::store::DynamoStore>, ConfigError> {
    Ok(crate::service::CancelOrderDeps {
        store: crate::store::DynamoStore::from_config(config, Tables::from_env()?),
        event_source: event_source(&process_env())?,
        retry: crate::service::RetryPolicy::default(),
        metrics,
    })
}
