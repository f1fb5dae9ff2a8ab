//! payment-events: applies the order events of the payments queue, each once in effect, in the
//! shared consumer loop; a provider that is busy or failing is tried again later by making the
//! message visible again after a growing pause — for an authorization, with the last try after the
//! order's deadline, so an order the provider never answers expires and nothing is dead-lettered.

use chrono::{DateTime, Duration, Utc};
use platform::config::{ConfigError, Vars};
use platform::consumer::{Delivery, Producers, SqsBatchResponse, SqsEvent, consume_delivered};
use platform::metrics::Metrics;

use crate::events::{OrderEventType, OrderFacts};
use crate::provider::PaymentProvider;
use crate::service::{PaymentError, PaymentLedger, PaymentsDeps, apply};

/// The payments queue's `maxReceiveCount` (template.yaml): the 10th failure dead-letters.
pub const MAX_RECEIVES: u32 = 10;
/// Receives kept behind the one that comes after an authorization's deadline: that one gives up
/// without calling the provider, and a crash or a store error there is tried again rather than
/// dead-lettered.
const SPARE_RECEIVES: u32 = 3;
/// The pause after the 1st, 2nd, 3rd and every later failure.
const BACKOFF_SECS: [i64; 4] = [2, 10, 60, 300];
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::hours(12);

/// How long a message that failed on its `receive_count`-th delivery stays invisible: a growing
/// pause, never much past `deadline` (the step gives up there without failing); once only
/// [`SPARE_RECEIVES`] more would be left, the pause lasts until just after the deadline, so an
/// authorization the provider never answers is never dead-lettered.
pub fn retry_delay(
    receive_count: u32,
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    let index = (receive_count.saturating_sub(1) as usize).min(BACKOFF_SECS.len() - 1);
    let pause = Duration::seconds(BACKOFF_SECS[index]);
    let pause = match deadline {
        Some(deadline) if receive_count + 1 + SPARE_RECEIVES >= MAX_RECEIVES => {
            pause.max(deadline - now + Duration::seconds(1))
        }
        Some(deadline) => {
            pause.min((deadline - now + Duration::seconds(1)).max(Duration::seconds(1)))
        }
        None => pause,
    };
    pause.min(MAX_VISIBILITY)
}

/// Makes a failed message visible again after a pause (its own queue's `QUEUE_URL`).
#[derive(Debug, Clone)]
pub struct Redelivery {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl Redelivery {
    pub fn from_vars(
        config: &aws_config::SdkConfig,
        vars: &impl Vars,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            client: platform::aws::sqs_client(config),
            queue_url: vars.required("QUEUE_URL")?,
        })
    }

    async fn after(&self, delivery: &Delivery, pause: Duration) {
        let Some(handle) = &delivery.receipt_handle else {
            return;
        };
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(handle)
            .visibility_timeout(i32::try_from(pause.num_seconds()).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(error) = result {
            // The queue's own visibility timeout applies instead.
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "could not space the retry");
        }
    }
}

/// Processes a batch of the payments queue; answers the messages to retry.
pub async fn consume<L: PaymentLedger, P: PaymentProvider>(
    deps: &PaymentsDeps<L, P>,
    redelivery: &Redelivery,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    consume_delivered::<OrderEventType, OrderFacts, _, _, _, _>(
        metrics,
        event,
        |event, delivery, now| async move {
            let result = apply(deps, &event, now).await;
            if let Err(error @ PaymentError::Retry { .. }) = &result {
                let pause = retry_delay(delivery.receive_count, error.retry_until(), now);
                tracing::info!(
                    pause_secs = pause.num_seconds(),
                    receive_count = delivery.receive_count,
                    "the payment step will be tried again"
                );
                redelivery.after(&delivery, pause).await;
            }
            result
        },
    )
    .await
}

/// `EVENT_SOURCE`, `CONSUMER_NAME` and `EVENT_PRODUCERS` of the payments consumer.
pub fn settings(vars: &impl Vars) -> Result<(String, String, Producers), ConfigError> {
    let producers = Producers::parse(&vars.required("EVENT_PRODUCERS")?).map_err(|reason| {
        ConfigError::Invalid {
            name: "EVENT_PRODUCERS",
            reason,
        }
    })?;
    Ok((
        vars.required("EVENT_SOURCE")?,
        vars.required("CONSUMER_NAME")?,
        producers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_and_the_last_ones_come_after_the_deadline_with_receives_to_spare() {
        let now = Utc::now();
        let deadline = now + Duration::minutes(15);
        let pauses: Vec<i64> = (1..=5)
            .map(|n| retry_delay(n, Some(deadline), now).num_seconds())
            .collect();
        assert_eq!(pauses, [2, 10, 60, 300, 300]);
        // The failure that leaves only the spare receives waits for the deadline.
        let waits = MAX_RECEIVES - SPARE_RECEIVES - 1;
        assert!(now + retry_delay(waits, Some(deadline), now) > deadline);
        assert!(now + retry_delay(waits - 1, Some(deadline), now) < deadline);
        // Without a deadline (a capture, a void) the pause stays at 5 minutes.
        assert_eq!(
            retry_delay(MAX_RECEIVES - 1, None, now),
            Duration::seconds(300)
        );
        // Never past the deadline by much before that; never longer than SQS allows.
        let soon = now + Duration::seconds(30);
        assert_eq!(retry_delay(3, Some(soon), now), Duration::seconds(31));
        let far = now + Duration::days(3);
        assert_eq!(retry_delay(waits, Some(far), now), MAX_VISIBILITY);
    }
}
