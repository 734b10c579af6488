//! The `retries` function: what each job on the work queue means (a publish attempt, a webhook
//! delivery, a sweep), run a batch at a time, and the local stand-in for Lambda's SQS event
//! source.
//!
//! The handler reports partial batch failures: only the ids of messages that failed go back to
//! SQS (the event source needs `ReportBatchItemFailures`, or one failure would redeliver the whole
//! batch). A message that keeps failing moves to the dead-letter queue after
//! [`crate::schema::WORK_QUEUE_MAX_RECEIVES`] deliveries.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures_util::StreamExt as _;

use crate::queue::{Envelope, Job, QueueError};
use crate::sweep;

/// Why one message was not processed; it is returned to the queue and retried.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Publish(#[from] crate::posts::publish::JobError),
    #[error(transparent)]
    Delivery(#[from] crate::webhooks::outbound::DeliveryError),
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
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
                Ok(crate::posts::publish::run_job(&self.app.publisher, &tenant, &post, &account).await?)
            }
            Job::Deliver { tenant, event, attempt, home } => {
                Ok(crate::webhooks::outbound::deliver(&self.app.deliverer, &tenant, &event, attempt, home).await?)
            }
            Job::Sweep => {
                let jobs = sweep::fan_out(&self.app.sweeper).await?;
                tracing::info!(job = "sweep", queued_for_s, jobs, "sweep fanned out");
                Ok(())
            }
            Job::SweepDue { shard, after } => {
                let report = sweep::due(&self.app.sweeper, shard, after, deadline).await?;
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
                let (report, outcomes) = sweep::grants(&self.app.sweeper, shard, after, deadline).await?;
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

/// The local stand-in for the EventBridge schedule (`template.yaml`'s `SweepSchedule`): puts the
/// same sweep job on the work queue at every tick, so `herald dev` sends scheduled posts and
/// refreshes grants without anyone running `herald queue sweep`. `herald dev` ticks at once and
/// then every [`sweep::SWEEP_PERIOD`]; a failed send is logged and the next tick tries again.
/// Returns how many jobs were queued when the ticks end.
pub async fn schedule_sweeps(queue: crate::queue::WorkQueue, ticks: impl futures_util::Stream<Item = ()>) -> usize {
    let mut queued = 0;
    let mut ticks = std::pin::pin!(ticks);
    while ticks.next().await.is_some() {
        match queue.enqueue(Job::Sweep, Duration::ZERO).await {
            Ok(()) => queued += 1,
            Err(e) => tracing::warn!(error = %e, "could not queue the scheduled sweep; the next tick tries again"),
        }
    }
    queued
}
