//! The dead-letter queue: what it holds, and the operator's `herald dlq list|redrive`.
//!
//! Two kinds of message end up there:
//! - **Exhausted jobs**: a publish attempt that kept failing retryably until its attempts ran out.
//!   Herald marks the target `failed` (`attempts_exhausted`) and sends a [`DeadLetter`] carrying
//!   the job, the reason and the target's attempt history.
//! - **Undeliverable messages**: SQS moves a message here by itself after
//!   [`crate::schema::WORK_QUEUE_MAX_RECEIVES`] failed deliveries (Herald's own failure, such as
//!   DynamoDB being unreachable). The body is the original [`Envelope`].
//!
//! SQS cannot be read without receiving, so a listing receives every message with a short
//! visibility timeout and then makes the ones it keeps visible again at once.

use std::time::Duration;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName};
use serde::{Deserialize, Serialize};

use super::{Envelope, Job, QueueError, SQS_MAX_DELAY, WorkQueue};
use crate::domain::post::{Attempt, TargetError};
use crate::domain::{AccountId, PostId};
use crate::store::{PostStore, StoreError};

/// What Herald sends to the dead-letter queue for a job whose attempts ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub job: Job,
    pub reason: TargetError,
    pub history: Vec<Attempt>,
    /// Epoch seconds.
    pub dead_at: i64,
}

/// One message in the dead-letter queue, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Letter {
    Exhausted(DeadLetter),
    /// Moved here by SQS after too many failed deliveries.
    Undeliverable(Envelope),
    /// Not a Herald message at all (its length only: it is not shown).
    Malformed {
        bytes: usize,
    },
}

impl Letter {
    fn parse(body: &str) -> Self {
        if let Ok(letter) = serde_json::from_str::<DeadLetter>(body) {
            return Letter::Exhausted(letter);
        }
        match serde_json::from_str::<Envelope>(body) {
            Ok(envelope) => Letter::Undeliverable(envelope),
            Err(_) => Letter::Malformed { bytes: body.len() },
        }
    }

    pub fn job(&self) -> Option<&Job> {
        match self {
            Letter::Exhausted(letter) => Some(&letter.job),
            Letter::Undeliverable(envelope) => Some(&envelope.job),
            Letter::Malformed { .. } => None,
        }
    }
}

/// A dead letter with its SQS identity.
#[derive(Debug, Clone)]
pub struct Entry {
    pub message_id: String,
    /// How many times SQS delivered it (from the work queue and during listings).
    pub receive_count: u32,
    pub letter: Letter,
    receipt_handle: String,
}

/// Which dead letters an operator means: every one, or those of one post and/or account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub post: Option<PostId>,
    pub account: Option<AccountId>,
}

impl Filter {
    pub fn all() -> Self {
        Self::default()
    }

    fn matches(&self, letter: &Letter) -> bool {
        if self.post.is_none() && self.account.is_none() {
            return true;
        }
        match letter.job() {
            Some(Job::Publish { post, account, .. }) => {
                self.post.as_ref().is_none_or(|p| p == post) && self.account.as_ref().is_none_or(|a| a == account)
            }
            _ => false,
        }
    }
}

/// What a redrive did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Redriven {
    /// Moved back to the work queue (exhausted targets reopened with fresh attempts).
    pub requeued: usize,
    /// Not Herald messages; left in the dead-letter queue.
    pub malformed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct DeadLetterQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

/// How long a scan keeps the messages it read hidden, so that it sees each one once.
const SCAN_VISIBILITY_S: i32 = 120;

impl DeadLetterQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { sqs, url: url.into() }
    }

    pub async fn send(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let body = serde_json::to_string(letter).map_err(|e| QueueError::Malformed(e.to_string()))?;
        self.sqs.send_message().queue_url(&self.url).message_body(body).send().await?;
        Ok(())
    }

    /// The dead letters `filter` selects, oldest first by SQS's order. Nothing is removed.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Entry>, QueueError> {
        let entries = self.scan().await?;
        self.release(&entries).await?;
        Ok(entries.into_iter().filter(|e| filter.matches(&e.letter)).collect())
    }

    /// Moves the dead letters `filter` selects back to the work queue. An exhausted publish job's
    /// target is reopened first (`retrying`, due now, attempts counted afresh), so the worker
    /// attempts it again; a message is deleted only once it is back on the work queue, so an
    /// interrupted redrive can simply be run again (a job queued twice publishes once).
    pub async fn redrive(
        &self,
        filter: &Filter,
        posts: &PostStore,
        work: &WorkQueue,
    ) -> Result<Redriven, RedriveError> {
        let entries = self.scan().await?;
        let mut report = Redriven::default();
        let mut keep = Vec::new();
        for entry in entries {
            if !filter.matches(&entry.letter) {
                keep.push(entry);
                continue;
            }
            match &entry.letter {
                Letter::Malformed { .. } => {
                    report.malformed += 1;
                    keep.push(entry);
                    continue;
                }
                Letter::Exhausted(letter) => {
                    if let Job::Publish { tenant, post, account } = &letter.job {
                        match posts.redrive(tenant, post, account).await {
                            // Already reopened by an earlier, interrupted redrive: queue it anyway.
                            Ok(_) | Err(StoreError::VersionConflict) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    work.enqueue(letter.job.clone(), Duration::ZERO).await?;
                }
                Letter::Undeliverable(envelope) => {
                    let now = posts.now().unix_timestamp();
                    let remaining = envelope.not_before.map_or(0, |t| (t - now).max(0)) as u64;
                    work.send(envelope, Duration::from_secs(remaining).min(SQS_MAX_DELAY)).await?;
                }
            }
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(&entry.receipt_handle)
                .send()
                .await
                .map_err(QueueError::from)?;
            report.requeued += 1;
        }
        self.release(&keep).await?;
        Ok(report)
    }

    /// Receives every message, hiding each for the scan.
    async fn scan(&self) -> Result<Vec<Entry>, QueueError> {
        let mut entries = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(SCAN_VISIBILITY_S)
                // Long polling asks every SQS server, so an empty answer means an empty queue.
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(entries);
            }
            entries.extend(messages.into_iter().filter_map(Entry::from_message));
        }
    }

    /// Makes scanned messages visible again right away.
    async fn release(&self, entries: &[Entry]) -> Result<(), QueueError> {
        for chunk in entries.chunks(10) {
            let batch = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&e.receipt_handle)
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            self.sqs.change_message_visibility_batch().queue_url(&self.url).set_entries(Some(batch)).send().await?;
        }
        Ok(())
    }
}

impl Entry {
    fn from_message(message: Message) -> Option<Self> {
        let receive_count = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Some(Self {
            message_id: message.message_id?,
            receipt_handle: message.receipt_handle?,
            receive_count,
            letter: Letter::parse(message.body.as_deref().unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_told_apart() {
        let job = Job::Publish {
            tenant: "ten_a".parse().unwrap(),
            post: "pst_01a2285224f79ffc25d8b1".parse().unwrap(),
            account: "acc_b".parse().unwrap(),
        };
        let letter = DeadLetter {
            job: job.clone(),
            reason: TargetError {
                code: "attempts_exhausted".into(),
                message: "m".into(),
                platform_code: None,
                platform_message: None,
            },
            history: Vec::new(),
            dead_at: 9,
        };
        let body = serde_json::to_string(&letter).unwrap();
        assert_eq!(Letter::parse(&body), Letter::Exhausted(letter));
        let envelope = Envelope { job: job.clone(), not_before: None, enqueued_at: 3 };
        assert_eq!(Letter::parse(&serde_json::to_string(&envelope).unwrap()), Letter::Undeliverable(envelope.clone()));
        assert_eq!(Letter::parse("garbage"), Letter::Malformed { bytes: 7 });

        let other_post: PostId = "pst_01a2285224f79ffc25d8b2".parse().unwrap();
        assert!(Filter::all().matches(&Letter::Malformed { bytes: 1 }));
        assert!(
            Filter { account: Some("acc_b".parse().unwrap()), post: None }
                .matches(&Letter::Undeliverable(envelope.clone()))
        );
        assert!(!Filter { post: Some(other_post), account: None }.matches(&Letter::Undeliverable(envelope)));
        let ping =
            Letter::Undeliverable(Envelope { job: Job::Ping { note: "n".into() }, not_before: None, enqueued_at: 1 });
        assert!(!Filter { account: Some("acc_b".parse().unwrap()), post: None }.matches(&ping));
    }
}
