//! The work queue as transport: typed jobs, their envelope, sending them to SQS (delays of any
//! length), the retry delay policy, and the dead-letter queue ([`dead`]). What a job means is the
//! retries function's ([`crate::worker`]).

pub mod dead;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

/// SQS delays a message by at most 15 minutes; longer waits are carried in the envelope and the
/// message is re-enqueued in steps until it is due.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);

/// Work for the `retries` function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Proves the queue path end to end (enqueue → event source → handler → delete);
    /// `herald queue ping` sends one and the handler logs its queue latency.
    Ping { note: String },
    /// Housekeeping, every 15 minutes from the EventBridge rule in `template.yaml` (`herald queue
    /// sweep`): fans out into one [`Job::SweepDue`] and one [`Job::SweepGrants`] per shard
    /// ([`sweep`]).
    Sweep,
    /// Queues the post targets of one shard due in the next 15 minutes, from `after` on.
    SweepDue {
        shard: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<crate::store::SweepCursor>,
    },
    /// Refreshes the grants of one shard nearing expiry and warns about those that cannot be
    /// refreshed, from `after` on.
    SweepGrants {
        shard: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<crate::store::SweepCursor>,
    },
    /// The next attempt at one target of a post.
    Publish { tenant: crate::domain::TenantId, post: crate::domain::PostId, account: crate::domain::AccountId },
    /// Delivering one recorded event to the tenant's webhook endpoint (`attempt` counts from 0).
    Deliver {
        tenant: crate::domain::TenantId,
        event: String,
        attempt: u32,
        /// The target that keeps the event, when it is not an item of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home: Option<EventHome>,
    },
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Ping { .. } => "ping",
            Job::Sweep => "sweep",
            Job::SweepDue { .. } => "sweep_due",
            Job::SweepGrants { .. } => "sweep_grants",
            Job::Publish { .. } => "publish",
            Job::Deliver { .. } => "deliver",
        }
    }
}

/// The target whose record keeps an event (`store::journal`'s kept events): its post and account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHome {
    pub post: crate::domain::PostId,
    pub account: crate::domain::AccountId,
}

/// A job as it travels in a message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub job: Job,
    /// Epoch seconds before which the job must not run; set when its delay exceeds SQS's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Epoch seconds when the job was first enqueued.
    pub enqueued_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("an SQS call failed")]
    Sqs(#[source] Box<aws_sdk_sqs::Error>),
    #[error("a message body is not a job: {0}")]
    Malformed(String),
}

impl<E, R> From<aws_sdk_sqs::error::SdkError<E, R>> for QueueError
where
    aws_sdk_sqs::Error: From<aws_sdk_sqs::error::SdkError<E, R>>,
{
    fn from(err: aws_sdk_sqs::error::SdkError<E, R>) -> Self {
        QueueError::Sqs(Box::new(aws_sdk_sqs::Error::from(err)))
    }
}

/// The producer side of the work queue.
#[derive(Clone)]
pub struct WorkQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    clock: SharedClock,
}

impl WorkQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>, clock: SharedClock) -> Self {
        Self { sqs, url: url.into(), clock }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Enqueues `job` to run after `delay`, however long: beyond SQS's 900 s the rest is carried
    /// in the envelope, never truncated.
    pub async fn enqueue(&self, job: Job, delay: Duration) -> Result<(), QueueError> {
        let now = self.clock.now().unix_timestamp();
        let not_before = (delay > SQS_MAX_DELAY).then(|| now + delay.as_secs() as i64);
        self.send(&Envelope { job, not_before, enqueued_at: now }, delay).await
    }

    /// Enqueues many jobs, ten to a `SendMessageBatch` call. Fails if any entry failed (the
    /// caller's job is then retried; the jobs it queues are all safe to run twice).
    pub async fn enqueue_batch(&self, jobs: Vec<(Job, Duration)>) -> Result<(), QueueError> {
        let now = self.clock.now().unix_timestamp();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let mut entries = Vec::with_capacity(10);
            for (i, (job, delay)) in jobs.by_ref().take(10).enumerate() {
                let not_before = (delay > SQS_MAX_DELAY).then(|| now + delay.as_secs() as i64);
                let body = serde_json::to_string(&Envelope { job, not_before, enqueued_at: now })
                    .map_err(|e| QueueError::Malformed(e.to_string()))?;
                entries.push(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .delay_seconds(delay.min(SQS_MAX_DELAY).as_secs() as i32)
                        .build()
                        .map_err(|e| QueueError::Malformed(e.to_string()))?,
                );
            }
            let out = self.sqs.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await?;
            if let Some(failed) = out.failed().first() {
                return Err(QueueError::Malformed(format!(
                    "{} of a batch of messages were not sent (first: {} {})",
                    out.failed().len(),
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Sends an envelope as it is (a job not yet due goes back with its remaining delay).
    pub async fn send(&self, envelope: &Envelope, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(envelope).map_err(|e| QueueError::Malformed(e.to_string()))?;
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay.min(SQS_MAX_DELAY).as_secs() as i32)
            .send()
            .await?;
        Ok(())
    }
}

/// Full-jitter exponential backoff: base and cap.
const BACKOFF_BASE_S: u64 = 2;
const BACKOFF_CAP_S: u64 = 900;

/// A random delay in `[0, min(cap, base · 2^attempt)]` (AWS's "full jitter"): the retry policy
/// of publish attempts and webhook deliveries alike.
pub fn backoff(attempt: u32) -> Duration {
    backoff_drawn(attempt, u64::from_le_bytes(crate::domain::random_bytes()))
}

/// [`backoff`] with its random draw given: the same draw gives the same delay.
pub fn backoff_drawn(attempt: u32, draw: u64) -> Duration {
    Duration::from_millis(draw % (backoff_ceiling(attempt).as_millis() as u64 + 1))
}

/// The longest [`backoff`] after `attempt`: `min(cap, base · 2^attempt)`.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    Duration::from_secs(BACKOFF_CAP_S.min(BACKOFF_BASE_S.saturating_mul(1u64 << attempt.min(20))))
}

/// How long until `at`, rounded up to whole seconds (SQS delays are whole seconds; rounding down
/// would deliver a job before it is due, and it would only be queued again).
pub fn wait_until(at: time::OffsetDateTime, now: time::OffsetDateTime) -> Duration {
    let millis = (at - now).whole_milliseconds().max(0) as u64;
    Duration::from_secs(millis.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_wire_format_is_stable() {
        let envelope = Envelope { job: Job::Ping { note: "hi".into() }, not_before: None, enqueued_at: 7 };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(json, r#"{"job":{"type":"ping","note":"hi"},"enqueued_at":7}"#);
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
        assert!(serde_json::from_str::<Envelope>(r#"{"job":{"type":"nope"},"enqueued_at":7}"#).is_err());
    }
}
