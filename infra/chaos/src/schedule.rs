//! The fault schedule of a run: the switches that stay on while the orders come in (every kind
//! the fault proxies and the local Lambda layer can produce), and the events at set points of
//! the load — DynamoDB Local killed and restarted, messages and records poisoned on purpose,
//! restocks. Faults are off while the system drains.

use devkit::chaos::{Fault, Rule, Service};
use serde::Serialize;

/// Something done once, when this share of the orders has been placed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// DynamoDB Local killed with SIGKILL and started again on its data.
    RestartDynamodb { at: f64 },
    /// Messages no producer would send, put on the order-events queue: they fail every time and
    /// must end in its DLQ, and nowhere else.
    PoisonMessages { at: f64, count: usize },
    /// Outbox items that are not events: the relay must set them aside (RelayFailureQueue).
    PoisonOutbox { at: f64, count: usize },
    /// Each hot product gets this many units more (an adjustment, under an idempotency key).
    Restock { at: f64, units: i64 },
}

impl Event {
    pub fn at(&self) -> f64 {
        match self {
            Event::RestartDynamodb { at }
            | Event::PoisonMessages { at, .. }
            | Event::PoisonOutbox { at, .. }
            | Event::Restock { at, .. } => *at,
        }
    }
}

/// A function whose clock is off by this much for the whole run (libfaketime in its
/// environment; its monotonic clock, which timeouts use, stays true).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockSkew {
    /// The template's logical id.
    pub function: &'static str,
    pub seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub name: &'static str,
    pub rules: Vec<Rule>,
    pub events: Vec<Event>,
    /// Clocks that disagree across the reservation's deadline: orders created by a clock
    /// behind, confirmed by one further behind, expired by one ahead.
    pub skews: Vec<ClockSkew>,
}

/// The functions that a stream or a queue feeds.
const TRIGGERED: [&str; 4] = [
    "outbox-relay",
    "payment-events",
    "order-events",
    "shipment-events",
];

impl Schedule {
    /// The schedule of `make chaos`.
    pub fn full() -> Self {
        Self::new("full schedule", 1.0)
    }

    /// The short variant of `make test`: a few hundred orders, so every probability ×5, and each
    /// rule also fires once early on (at even odds, once matched), so every kind fires.
    pub fn short() -> Self {
        let mut schedule = Self::new(
            "short variant: every probability ×5, each rule once early",
            5.0,
        );
        let once: Vec<Rule> = schedule
            .rules
            .iter()
            .map(|r| Rule {
                probability: 0.5,
                limit: Some(1),
                ..r.clone()
            })
            .collect();
        schedule.rules.splice(0..0, once);
        schedule
    }

    /// `scale` multiplies every probability.
    fn new(name: &'static str, scale: f64) -> Self {
        let p = |base: f64| (base * scale).min(1.0);
        let mut rules = vec![
            Rule::new(
                Service::Dynamodb,
                "TransactWriteItems",
                Fault::TransactionConflict,
                p(0.02),
            ),
            Rule::new(
                Service::Dynamodb,
                "TransactWriteItems",
                Fault::DropAfterApply,
                p(0.005),
            ),
            Rule::new(
                Service::Dynamodb,
                "*",
                Fault::ProvisionedThroughputExceeded,
                p(0.005),
            ),
            Rule::new(Service::Dynamodb, "*", Fault::Throttling, p(0.003)),
            Rule::new(Service::Dynamodb, "*", Fault::ServerError, p(0.003)),
            Rule::new(Service::Dynamodb, "*", Fault::Latency { ms: 300 }, p(0.005)),
            Rule::new(Service::Dynamodb, "*", Fault::Hang, p(0.0005)),
            Rule::new(Service::Sns, "PublishBatch", Fault::Throttling, p(0.02)),
            Rule::new(Service::Sns, "PublishBatch", Fault::ServerError, p(0.01)),
            Rule::new(Service::Sns, "PublishBatch", Fault::DropAfterApply, p(0.01)),
            Rule::new(Service::Sqs, "*", Fault::Throttling, p(0.02)),
            Rule::new(Service::Sqs, "*", Fault::ServerError, p(0.01)),
            Rule::new(Service::SecretsManager, "*", Fault::Throttling, p(0.1)),
            Rule::new(Service::Payments, "*", Fault::Throttling, p(0.02)),
            Rule::new(Service::Payments, "*", Fault::ServerError, p(0.01)),
            Rule::new(Service::Payments, "*", Fault::DropAfterApply, p(0.01)),
            Rule::new(Service::Payments, "*", Fault::Hang, p(0.002)),
            Rule::new(
                Service::Lambda,
                "create-order",
                Fault::KillRuntime { within_ms: 40 },
                p(0.005),
            ),
        ];
        for function in TRIGGERED {
            rules.push(Rule::new(
                Service::Lambda,
                function,
                Fault::KillRuntime { within_ms: 100 },
                p(0.01),
            ));
            rules.push(Rule::new(
                Service::Lambda,
                function,
                Fault::DuplicateDelivery,
                p(0.05),
            ));
        }
        Self {
            name,
            rules,
            events: vec![
                Event::RestartDynamodb { at: 0.3 },
                Event::PoisonMessages { at: 0.4, count: 3 },
                Event::PoisonOutbox { at: 0.45, count: 2 },
                Event::Restock { at: 0.5, units: 20 },
                Event::RestartDynamodb { at: 0.7 },
            ],
            skews: vec![
                ClockSkew {
                    function: "CreateOrderFunction",
                    seconds: -10,
                },
                ClockSkew {
                    function: "OrderEventsFunction",
                    seconds: -20,
                },
                ClockSkew {
                    function: "ExpireOrdersFunction",
                    seconds: 20,
                },
            ],
        }
    }

    /// Every kind of fault the schedule switches on.
    pub fn kinds(&self) -> std::collections::BTreeSet<&'static str> {
        self.rules.iter().map(|r| r.fault.name()).collect()
    }
}
