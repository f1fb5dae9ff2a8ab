//! The payments service's part of the saga: authorize an order's total when it is created,
//! capture it when the order ships, void it when the order is cancelled — each provider call under
//! an idempotency key from the order, the step and the attempt; each outcome written with its
//! event and the consumed event's inbox record in one transaction.

use std::future::Future;

use chrono::{DateTime, Utc};
use platform::consumer::{Applied, Producers, UnexpectedSource};
use platform::dynamo::{Consumed, Recorded, StoreError};

use crate::domain::{Payment, PaymentStatus, Step, TransitionError};
use crate::events::{OrderEvent, OrderEventType, PaymentEvent, PaymentEventType, payment_event};
use crate::provider::{Authorization, Authorize, ChargeState, PaymentProvider, ProviderError};

/// How far a charge look-up reaches before the order's creation time: the order's clock (the
/// orders service's) and the provider's may disagree by this much.
pub const CLOCK_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// One write of the ledger: the payment as it becomes (only if the item is still as `read`, or
/// absent when `read` is `None`), its event, and the consumed event in the inbox.
#[derive(Debug, Clone)]
pub struct Save<'a> {
    pub payment: &'a Payment,
    pub read: Option<&'a Payment>,
    pub event: Option<&'a PaymentEvent>,
    pub consumed: Option<&'a Consumed>,
}

/// Why a save was not written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("the payment changed since it was read")]
    Changed,
    #[error("the event was applied before")]
    AlreadyApplied,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The payments table, as the saga uses it.
pub trait PaymentLedger: Send + Sync {
    fn payment(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    fn save(&self, save: &Save<'_>) -> impl Future<Output = Result<(), SaveError>> + Send;

    /// Records a consumed event whose only effect is being recorded.
    fn record(
        &self,
        consumed: &Consumed,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}

/// Authorized payments whose funds are still held (neither captured nor voided).
pub trait HeldAuthorizations: Send + Sync {
    /// The orders whose payment was authorized before `cutoff` and is still held.
    fn held_since_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// What a saga can strand on the payments side: authorizations neither captured nor voided
/// `after` they were made (a confirmed order never shipped, a cancel whose void never came).
/// Nothing here can repair them safely — capturing or voiding needs the order's fate, which only
/// its events tell — so they are reported (logged and counted) for the alarm.
pub async fn stranded_authorizations<H: HeldAuthorizations>(
    ledger: &H,
    now: DateTime<Utc>,
    after: chrono::Duration,
) -> Result<Vec<String>, StoreError> {
    let stranded = ledger.held_since_before(now - after).await?;
    for order_id in &stranded {
        tracing::warn!(%order_id, "an authorization has been held longer than the limit, neither captured nor voided");
    }
    Ok(stranded)
}

/// Everything the payments consumer needs, built once at init.
#[derive(Debug, Clone)]
pub struct PaymentsDeps<L, P> {
    pub ledger: L,
    pub provider: P,
    /// The CloudEvents `source` of the payment events.
    pub event_source: String,
    /// This consumer's name in the inbox.
    pub consumer: String,
    /// Which service produces each domain's events it consumes (`order=orders`).
    pub producers: Producers,
}

/// Why an event was not applied: the message is redelivered (spaced by [`PaymentError::retry_until`]).
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider is busy, unreachable, or failed and the charge was not found: try again
    /// later (for an authorization, until the order's deadline).
    #[error("the payment provider did not answer: {reason}")]
    Retry {
        reason: String,
        deadline: Option<DateTime<Utc>>,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    UnexpectedSource(#[from] UnexpectedSource),
    #[error("the payment of order {0} changed while the event was applied")]
    Changed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PaymentError {
    /// The order's deadline, for a retry that must stop there.
    pub fn retry_until(&self) -> Option<DateTime<Utc>> {
        match self {
            PaymentError::Retry { deadline, .. } => *deadline,
            _ => None,
        }
    }
}

/// What a provider call came to, once a 5xx kept under its key was looked into.
enum Outcome<T> {
    Done(T),
    /// The provider failed and has no charge in the wanted state: the next try goes under a
    /// new key (the payment's next attempt).
    NextAttempt(String),
}

/// Applies one order event to the order's payment.
pub async fn apply<L: PaymentLedger, P: PaymentProvider>(
    deps: &PaymentsDeps<L, P>,
    event: &OrderEvent,
    now: DateTime<Utc>,
) -> Result<Applied<PaymentStatus>, PaymentError> {
    deps.producers.check(event)?;
    let consumed = Consumed::of(&deps.consumer, event);
    let facts = &event.data;
    let since = facts.created_at.map(|t| t - CLOCK_MARGIN);
    let read = deps.ledger.payment(&facts.order_id).await?;
    let current = read.clone().unwrap_or_else(|| {
        Payment::pending(&facts.order_id, facts.total.amount, &facts.total.currency)
    });
    let consumed_ref = &consumed;
    let record = |status| async move {
        Ok(match deps.ledger.record(consumed_ref).await? {
            Recorded::Now => Applied::Skipped(status),
            Recorded::Before => Applied::Duplicate,
        })
    };
    let (next, event_type) = match event.event_type {
        OrderEventType::OrderCreated => {
            let Some(method) = facts.payment_method.as_deref() else {
                // An order from before payments existed: nothing to authorize.
                return record(current.status).await;
            };
            if current.status != PaymentStatus::Pending {
                return record(current.status).await;
            }
            if facts.expires_at.is_some_and(|deadline| deadline <= now) {
                // Past the deadline: stop trying, and call no provider — the order's cancel (the
                // expiry sends one for every PENDING order past its deadline) voids any charge a
                // failed call left. A delivery that only records cannot be failed by the provider.
                return record(current.status).await;
            }
            match authorize(deps, &current, method, since, facts.expires_at).await? {
                Outcome::Done(moved) => moved,
                Outcome::NextAttempt(reason) => {
                    return retry_later(deps, &current, read.as_ref(), reason, facts.expires_at)
                        .await;
                }
            }
        }
        OrderEventType::OrderShipped => {
            if current.status != PaymentStatus::Authorized {
                // Never captured unless authorized by this service's own state.
                return record(current.status).await;
            }
            match capture(deps, &current, since).await? {
                Outcome::Done(captured) => (captured, PaymentEventType::PaymentCaptured),
                Outcome::NextAttempt(reason) => {
                    return retry_later(deps, &current, read.as_ref(), reason, None).await;
                }
            }
        }
        OrderEventType::OrderCancelled => {
            if read.is_none() && facts.payment_method.is_none() {
                return record(current.status).await;
            }
            if !matches!(
                current.status,
                PaymentStatus::Pending | PaymentStatus::Authorized
            ) {
                return record(current.status).await;
            }
            match void(deps, &current, since).await? {
                Outcome::Done(voided) => (voided, PaymentEventType::PaymentVoided),
                Outcome::NextAttempt(reason) => {
                    return retry_later(deps, &current, read.as_ref(), reason, None).await;
                }
            }
        }
    };
    let outgoing = payment_event(event_type, &deps.event_source, &next, now)
        .with_traceparent(event.traceparent.clone());
    let save = Save {
        payment: &next,
        read: read.as_ref(),
        event: Some(&outgoing),
        consumed: Some(&consumed),
    };
    match deps.ledger.save(&save).await {
        Ok(()) => Ok(Applied::Done),
        Err(SaveError::AlreadyApplied) => Ok(Applied::Duplicate),
        Err(SaveError::Changed) => Err(PaymentError::Changed(facts.order_id.clone())),
        Err(SaveError::Store(e)) => Err(e.into()),
    }
}

/// Keeps the payment's next attempt (so the next try goes under a new key), then asks for the
/// message to come again.
async fn retry_later<L: PaymentLedger, P>(
    deps: &PaymentsDeps<L, P>,
    current: &Payment,
    read: Option<&Payment>,
    reason: String,
    deadline: Option<DateTime<Utc>>,
) -> Result<Applied<PaymentStatus>, PaymentError> {
    let next = current.clone().next_attempt();
    let save = Save {
        payment: &next,
        read,
        event: None,
        consumed: None,
    };
    match deps.ledger.save(&save).await {
        // Changed or applied meanwhile: the redelivery reads the payment again.
        Ok(()) | Err(SaveError::Changed | SaveError::AlreadyApplied) => {}
        Err(SaveError::Store(e)) => return Err(e.into()),
    }
    Err(PaymentError::Retry { reason, deadline })
}

/// A provider error as the saga treats it: busy → retry (until `deadline`); a 5xx kept under
/// its key → look the charge up; anything else is the message's failure.
fn retryable(error: ProviderError, deadline: Option<DateTime<Utc>>) -> PaymentError {
    match error {
        ProviderError::Retryable(reason) => PaymentError::Retry { reason, deadline },
        other => other.into(),
    }
}

/// The id of the order's charge at the provider, if it is in `state` (how a call that failed
/// under its key is found to have happened, or not), among the charges made `since`.
async fn charge_in<L, P: PaymentProvider>(
    deps: &PaymentsDeps<L, P>,
    payment: &Payment,
    state: ChargeState,
    since: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
) -> Result<Option<String>, PaymentError> {
    let found = deps
        .provider
        .find(&payment.order_id, since)
        .await
        .map_err(|e| retryable(e, deadline))?;
    Ok(found.filter(|c| c.state == state).map(|c| c.charge_id))
}

async fn authorize<L, P: PaymentProvider>(
    deps: &PaymentsDeps<L, P>,
    payment: &Payment,
    method: &str,
    since: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
) -> Result<Outcome<(Payment, PaymentEventType)>, PaymentError> {
    let authorized = |charge_id: String| -> Result<_, PaymentError> {
        Ok(Outcome::Done((
            payment.clone().authorized(charge_id)?,
            PaymentEventType::PaymentAuthorized,
        )))
    };
    let key = payment.idempotency_key(Step::Authorize);
    let request = Authorize {
        order_id: &payment.order_id,
        amount: payment.amount,
        currency: &payment.currency,
        payment_method: method,
        idempotency_key: &key,
    };
    match deps.provider.authorize(&request).await {
        Ok(Authorization::Authorized { charge_id }) => authorized(charge_id),
        Ok(Authorization::Declined { code, message }) => {
            tracing::info!(order_id = %payment.order_id, %code, %message, "payment declined");
            Ok(Outcome::Done((
                payment.clone().declined(code)?,
                PaymentEventType::PaymentDeclined,
            )))
        }
        Err(ProviderError::FailedUnderKey { message, .. }) => {
            // Kept under its key: repeating it repeats the failure. Did the charge happen?
            match charge_in(deps, payment, ChargeState::Authorized, since, deadline).await? {
                Some(charge_id) => authorized(charge_id),
                None => Ok(Outcome::NextAttempt(message)),
            }
        }
        Err(e) => Err(retryable(e, deadline)),
    }
}

async fn capture<L, P: PaymentProvider>(
    deps: &PaymentsDeps<L, P>,
    payment: &Payment,
    since: Option<DateTime<Utc>>,
) -> Result<Outcome<Payment>, PaymentError> {
    let charge = payment.charge_id.as_deref().unwrap_or_default();
    let key = payment.idempotency_key(Step::Capture);
    match deps.provider.capture(charge, &key).await {
        Ok(()) => Ok(Outcome::Done(payment.clone().captured()?)),
        Err(ProviderError::FailedUnderKey { message, .. }) => {
            match charge_in(deps, payment, ChargeState::Captured, since, None).await? {
                Some(_) => Ok(Outcome::Done(payment.clone().captured()?)),
                None => Ok(Outcome::NextAttempt(message)),
            }
        }
        Err(e) => Err(retryable(e, None)),
    }
}

async fn void<L, P: PaymentProvider>(
    deps: &PaymentsDeps<L, P>,
    payment: &Payment,
    since: Option<DateTime<Utc>>,
) -> Result<Outcome<Payment>, PaymentError> {
    // A pending payment may still have a charge (a failed call that went through): find it.
    let charge_id = match (&payment.charge_id, payment.status) {
        (Some(id), _) => Some(id.clone()),
        (None, PaymentStatus::Pending) => {
            charge_in(deps, payment, ChargeState::Authorized, since, None).await?
        }
        (None, _) => None,
    };
    let Some(charge_id) = charge_id else {
        return Ok(Outcome::Done(payment.clone().voided()?));
    };
    let key = payment.idempotency_key(Step::Void);
    let payment = Payment {
        charge_id: Some(charge_id.clone()),
        ..payment.clone()
    };
    match deps.provider.void(&charge_id, &key).await {
        Ok(()) => Ok(Outcome::Done(payment.clone().voided()?)),
        Err(ProviderError::FailedUnderKey { message, .. }) => {
            match charge_in(deps, &payment, ChargeState::Voided, since, None).await? {
                Some(_) => Ok(Outcome::Done(payment.clone().voided()?)),
                None => Ok(Outcome::NextAttempt(message)),
            }
        }
        Err(e) => Err(retryable(e, None)),
    }
}
