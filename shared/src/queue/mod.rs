//! Typed jobs on the SQS work queue, and the batch handler the `retries` function runs.
//!
//! The handler reports partial batch failures: only the ids of messages that failed go back to
//! SQS (the event source needs `ReportBatchItemFailures`, or one failure would redeliver the whole
//! batch). A message that keeps failing moves to the dead-letter queue after
//! [`crate::schema::WORK_QUEUE_MAX_RECEIVES`] deliveries.

pub mod dead;
pub mod sweep;

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::posts::DeadLetterState;

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
    Deliver { tenant: crate::domain::TenantId, event: String, attempt: u32 },
}

impl Job {
    fn kind(&self) -> &'static str {
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

/// Grants expiring within this are refreshed by the sweep (it runs every 15 minutes).
pub const SWEEP_REFRESH_HORIZON: time::Duration = time::Duration::hours(1);
/// Grants that cannot be refreshed are announced this long before they expire.
pub const SWEEP_WARN_HORIZON: time::Duration = time::Duration::days(7);

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

    pub(crate) async fn send(&self, envelope: &Envelope, delay: Duration) -> Result<(), QueueError> {
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

/// Why one message was not processed; it is returned to the queue and retried.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The consumer side: runs a batch of messages with bounded concurrency.
#[derive(Clone)]
pub struct Worker {
    app: crate::app::App,
    concurrency: usize,
}

impl Worker {
    pub fn new(app: crate::app::App, concurrency: usize) -> Self {
        Self { app, concurrency: concurrency.max(1) }
    }

    /// Handles an SQS event and returns the ids of the messages that failed.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_batch_until(event, None).await
    }

    /// As [`handle_batch`](Self::handle_batch), within an invocation that ends at `deadline`
    /// (Lambda's `context.deadline`): long jobs leave their rest to the queue before it.
    pub async fn handle_batch_until(&self, event: SqsEvent, deadline: Option<std::time::Instant>) -> SqsBatchResponse {
        let outcomes: Vec<(Option<String>, Result<(), JobError>)> = futures_util::stream::iter(event.records)
            .map(|record| async move {
                let outcome = self.handle_record(&record, deadline).await;
                (record.message_id, outcome)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for (message_id, outcome) in outcomes {
            if let Err(err) = outcome {
                let message_id = message_id.unwrap_or_default();
                tracing::warn!(message_id, error = %err, error_source = ?std::error::Error::source(&err), "job failed; returned to the queue");
                response.add_failure(message_id);
            }
        }
        response
    }

    async fn handle_record(&self, record: &SqsMessage, deadline: Option<std::time::Instant>) -> Result<(), JobError> {
        let body = record.body.as_deref().unwrap_or_default();
        // The body is never logged: later jobs carry post content.
        let envelope: Envelope = serde_json::from_str(body).map_err(|e| QueueError::Malformed(e.to_string()))?;
        let now = self.app.clock.now().unix_timestamp();
        if let Some(not_before) = envelope.not_before.filter(|t| *t > now) {
            let remaining = Duration::from_secs((not_before - now) as u64);
            self.app.queue.send(&envelope, remaining).await?;
            tracing::info!(job = envelope.job.kind(), remaining_s = remaining.as_secs(), "job not due; re-enqueued");
            return Ok(());
        }
        self.run(envelope.job, now - envelope.enqueued_at, deadline).await
    }

    async fn run(&self, job: Job, queued_for_s: i64, deadline: Option<std::time::Instant>) -> Result<(), JobError> {
        match job {
            Job::Ping { .. } => {
                tracing::info!(job = "ping", queued_for_s, "queue ping received");
                Ok(())
            }
            Job::Publish { tenant, post, account } => {
                let Some(found) = self.app.posts.get(&tenant, &post).await? else {
                    tracing::warn!(post = %post, "publish job for a post that does not exist; dropped");
                    return Ok(());
                };
                let Some(target) = found.targets.iter().find(|t| t.account_id == account) else { return Ok(()) };
                if target.dead_letter == Some(DeadLetterState::Pending) {
                    // Exhausted, but its dead letter was not sent (an earlier delivery failed).
                    return self.dead_letter(&found, target).await;
                }
                let now = self.app.clock.now();
                if target.status == crate::posts::TargetStatus::Publishing
                    && target.lease_until.is_some_and(|until| until < now)
                {
                    // The claimer died mid-attempt: it may have been sent, so it is not sent again.
                    match self.app.posts.abandon(&tenant, &post, target).await {
                        Ok(settled) => {
                            if let Err(e) = self.app.journal.post_event(&found, &settled).await {
                                tracing::error!(error = %e, "could not record the post's outcome event");
                            }
                            return Ok(());
                        }
                        Err(crate::store::StoreError::VersionConflict) => return Ok(()),
                        Err(e) => return Err(e.into()),
                    }
                }
                if !crate::posts::publish::open(target) {
                    // Already handled (a duplicate delivery, or another worker): nothing to do.
                    return Ok(());
                }
                if let Some(due) = target.next_attempt_at.filter(|at| *at > now) {
                    let wait = crate::posts::publish::wait_until(due, now);
                    crate::posts::publish::schedule(&self.app, &tenant, &post, target, wait).await;
                    return Ok(());
                }
                let finished = crate::posts::publish::attempt(
                    &self.app,
                    &found,
                    target,
                    crate::posts::publish::Refresh::Allowed,
                    None,
                )
                .await?;
                if finished.dead_letter == Some(DeadLetterState::Pending) {
                    self.dead_letter(&found, &finished).await?;
                }
                Ok(())
            }
            Job::Deliver { tenant, event, attempt } => {
                crate::webhooks::outbound::deliver(&self.app, &tenant, &event, attempt).await
            }
            Job::Sweep => {
                let jobs = sweep::fan_out(&self.app).await?;
                tracing::info!(job = "sweep", queued_for_s, jobs, "sweep fanned out");
                Ok(())
            }
            Job::SweepDue { shard, after } => {
                let report = sweep::due(&self.app, shard, after, deadline).await?;
                tracing::info!(
                    job = "sweep_due",
                    shard,
                    queued_for_s,
                    pages = report.pages,
                    posts_queued = report.items,
                    continued = report.continued,
                    "due targets queued"
                );
                Ok(())
            }
            Job::SweepGrants { shard, after } => {
                let (report, outcomes) = sweep::grants(&self.app, shard, after, deadline).await?;
                tracing::info!(
                    job = "sweep_grants",
                    shard,
                    queued_for_s,
                    pages = report.pages,
                    grants = report.items,
                    continued = report.continued,
                    refreshed = outcomes.refreshed,
                    needs_reauth = outcomes.needs_reauth,
                    warned = outcomes.warned,
                    failed = outcomes.failed,
                    "grants swept"
                );
                Ok(())
            }
        }
    }
}

impl Worker {
    /// Sends an exhausted target's job to the dead-letter queue with its reason and history,
    /// then records that it was sent. If the send fails the message is retried, and its next
    /// delivery sends it.
    async fn dead_letter(&self, post: &crate::posts::Post, target: &crate::posts::Target) -> Result<(), JobError> {
        let letter = dead::DeadLetter {
            job: Job::Publish {
                tenant: post.tenant.clone(),
                post: post.id.clone(),
                account: target.account_id.clone(),
            },
            reason: target.error.clone().unwrap_or_else(|| crate::posts::TargetError {
                code: "attempts_exhausted".into(),
                message: "the attempts ran out".into(),
                platform_code: None,
                platform_message: None,
            }),
            history: target.history.clone(),
            dead_at: self.app.clock.now().unix_timestamp(),
        };
        self.app.dead_letters.send(&letter).await?;
        match self.app.posts.dead_letter_sent(&post.tenant, &post.id, target).await {
            // Another delivery of the same job recorded it first.
            Ok(_) | Err(crate::store::StoreError::VersionConflict) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::warn!(post = %post.id, account = %target.account_id, platform = %target.platform, attempts = target.attempts, "attempts ran out; the job was sent to the dead-letter queue");
        Ok(())
    }
}

/// What one local poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub received: usize,
    pub failed: usize,
}

/// The local stand-in for Lambda's SQS event source: receives up to 10 messages, hands them to the
/// worker as one [`SqsEvent`], and deletes those that did not fail. Failed ones reappear after
/// their visibility timeout, as on AWS.
pub async fn poll_once(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    worker: &Worker,
    wait: Duration,
) -> Result<PollStats, QueueError> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait.as_secs().min(20) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(PollStats::default());
    }
    let mut handles = HashMap::new();
    let mut event = SqsEvent::default();
    for message in messages {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body;
        record.attributes =
            message.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect();
        record.event_source = Some("aws:sqs".to_owned());
        if let (Some(id), Some(handle)) = (message.message_id, message.receipt_handle) {
            handles.insert(id, handle);
        }
        event.records.push(record);
    }
    let received = event.records.len();
    let response = worker.handle_batch(event).await;
    for failure in &response.batch_item_failures {
        handles.remove(&failure.item_identifier);
    }
    if !handles.is_empty() {
        let entries = handles
            .into_iter()
            .enumerate()
            .map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        sqs.delete_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await?;
    }
    Ok(PollStats { received, failed: response.batch_item_failures.len() })
}

/// Polls until `stop` turns true: the local runner's event source. SQS errors are logged and
/// retried after a pause, as Lambda's poller does.
pub async fn poll_until(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    worker: Worker,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    const LONG_POLL: Duration = Duration::from_secs(2);
    while !*stop.borrow() {
        tokio::select! {
            _ = stop.changed() => {}
            result = poll_once(&sqs, &queue_url, &worker, LONG_POLL) => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, error_source = ?std::error::Error::source(&err), "polling the work queue failed");
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
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
