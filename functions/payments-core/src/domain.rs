//! A payment as the payments service keeps it: one per order, moved only along the saga's
//! transitions (no AWS, no I/O). Every provider call's idempotency key comes from here: derived
//! from the order, the step and the attempt, so a redelivered step repeats its call and only a
//! provider failure (a 5xx kept under its key, after looking the charge up) moves to a new key.

use std::fmt;

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not yet authorized (or the provider failed and the charge was not found).
    Pending,
    /// Funds held under a charge.
    Authorized,
    /// Funds taken.
    Captured,
    /// The authorization released (or nothing was ever held).
    Voided,
    /// The provider declined the payment method.
    Declined,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Declined => "declined",
        }
    }

    /// Whether nothing can happen to the payment any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PaymentStatus::Captured | PaymentStatus::Voided | PaymentStatus::Declined
        )
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call to the payment provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Authorize,
    Capture,
    Void,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Authorize => "authorize",
            Step::Capture => "capture",
            Step::Void => "void",
        }
    }
}

/// A transition the saga does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} payment cannot become {to}")]
pub struct TransitionError {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

/// One order's payment: the payments table's item, and the data of its events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub order_id: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    /// Raised after a provider failure under the current key, once the charge was looked up and
    /// not found: the next call goes under a new key.
    pub attempt: u32,
}

impl Payment {
    /// The payment of a newly created order: nothing asked of the provider yet.
    pub fn pending(order_id: &str, amount: i64, currency: &str) -> Self {
        Self {
            order_id: order_id.to_owned(),
            amount,
            currency: currency.to_owned(),
            status: PaymentStatus::Pending,
            charge_id: None,
            decline_code: None,
            attempt: 0,
        }
    }

    /// The idempotency key of `step` for this payment: `<order>:<step>:<attempt>`.
    pub fn idempotency_key(&self, step: Step) -> String {
        format!("{}:{}:{}", self.order_id, step.as_str(), self.attempt)
    }

    fn moved(self, to: PaymentStatus, allowed: &[PaymentStatus]) -> Result<Self, TransitionError> {
        if allowed.contains(&self.status) {
            Ok(Self { status: to, ..self })
        } else {
            Err(TransitionError {
                from: self.status,
                to,
            })
        }
    }

    pub fn authorized(self, charge_id: String) -> Result<Self, TransitionError> {
        let mut payment = self.moved(PaymentStatus::Authorized, &[PaymentStatus::Pending])?;
        payment.charge_id = Some(charge_id);
        Ok(payment)
    }

    pub fn declined(self, code: String) -> Result<Self, TransitionError> {
        let mut payment = self.moved(PaymentStatus::Declined, &[PaymentStatus::Pending])?;
        payment.decline_code = Some(code);
        Ok(payment)
    }

    /// Only an authorized payment is captured: never a voided one, whatever the provider would do.
    pub fn captured(self) -> Result<Self, TransitionError> {
        self.moved(PaymentStatus::Captured, &[PaymentStatus::Authorized])
    }

    /// A cancelled order's payment: an authorization is released; a payment never authorized
    /// has nothing to release and is voided as it is.
    pub fn voided(self) -> Result<Self, TransitionError> {
        self.moved(
            PaymentStatus::Voided,
            &[PaymentStatus::Pending, PaymentStatus::Authorized],
        )
    }

    /// Whether voiding this payment needs a call to the provider.
    pub fn holds_funds(&self) -> bool {
        self.status == PaymentStatus::Authorized
    }

    /// After a provider failure kept under the current key, with no charge found for the order:
    /// the next call goes under a new key.
    pub fn next_attempt(self) -> Self {
        Self {
            attempt: self.attempt + 1,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Payment {
        Payment::pending("o-1", 2599, "EUR")
    }

    #[test]
    fn the_happy_path_authorizes_then_captures() {
        let payment = pending().authorized("ch_1".into()).unwrap();
        assert_eq!(payment.charge_id.as_deref(), Some("ch_1"));
        assert!(payment.holds_funds());
        let captured = payment.captured().unwrap();
        assert_eq!(captured.status, PaymentStatus::Captured);
        assert!(captured.status.is_final());
    }

    #[test]
    fn a_voided_or_declined_payment_is_never_captured() {
        let voided = pending()
            .authorized("ch_1".into())
            .unwrap()
            .voided()
            .unwrap();
        assert_eq!(
            voided.clone().captured(),
            Err(TransitionError {
                from: PaymentStatus::Voided,
                to: PaymentStatus::Captured
            })
        );
        let declined = pending().declined("generic_decline".into()).unwrap();
        assert!(declined.clone().captured().is_err());
        assert!(declined.voided().is_err());
        assert!(
            pending().captured().is_err(),
            "nothing authorized, nothing to take"
        );
    }

    #[test]
    fn a_late_authorization_of_a_voided_payment_is_refused() {
        let voided = pending().voided().unwrap();
        assert!(!voided.holds_funds());
        assert!(voided.authorized("ch_late".into()).is_err());
    }

    #[test]
    fn keys_name_the_order_the_step_and_the_attempt() {
        let payment = pending();
        assert_eq!(payment.idempotency_key(Step::Authorize), "o-1:authorize:0");
        let retried = payment.next_attempt();
        assert_eq!(retried.idempotency_key(Step::Authorize), "o-1:authorize:1");
        assert_eq!(retried.idempotency_key(Step::Void), "o-1:void:1");
        assert_eq!(retried.status, PaymentStatus::Pending);
    }
}
