//! The sweep, fanned out (AWS audit F4). The schedule's `Sweep` job only enqueues one job per
//! shard of the due-targets index and one per shard of the grant-expiry index (two
//! `SendMessageBatch` calls). Each shard job reads its shard a page at a time from where the last
//! one stopped, and does a bounded amount of work: at most [`PAGES_PER_JOB`] pages, and none begun
//! once the invocation's deadline is less than [`DEADLINE_MARGIN`] away. What is left goes back
//! to the queue as the same job with the page's `LastEvaluatedKey`. Due targets are queued with
//! `SendMessageBatch`; grants are refreshed [`REFRESH_CONCURRENCY`] at a time. Grants and posts
//! have jobs of their own, so a backlog of posts cannot starve token refresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::clock::SharedClock;
use crate::queue::{Job, QueueError, SQS_MAX_DELAY, WorkQueue, wait_until};
use crate::store::accounts::EXPIRY_PARTITIONS;
use crate::store::posts::DUE_PARTITIONS;
use crate::store::{AccountStore, PostStore, StoreError, SweepCursor};
use crate::tokens::{SweepReport, TokenError, TokenManager};

/// Grants expiring within this are refreshed by the sweep (it runs every 15 minutes).
pub const SWEEP_REFRESH_HORIZON: time::Duration = time::Duration::hours(1);
/// How often the sweep runs: `template.yaml`'s `SweepSchedule` (`rate(15 minutes)`, checked by
/// a test) when deployed, [`crate::worker::schedule_sweeps`] in `herald dev`.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(15 * 60);
/// Grants that cannot be refreshed are announced this long before they expire.
pub const SWEEP_WARN_HORIZON: time::Duration = time::Duration::days(7);

/// Due targets read per page (one `Query`, then up to ten `SendMessageBatch` calls).
pub const DUE_PAGE: i32 = 100;
/// Grants refreshed at once: each refresh is a platform call of up to its timeout.
pub const REFRESH_CONCURRENCY: usize = 8;
/// Grants read per page: one round of refreshes.
pub const GRANT_PAGE: i32 = REFRESH_CONCURRENCY as i32;
/// The most pages one job reads before handing the rest to the next job.
pub const PAGES_PER_JOB: usize = 10;
/// No page is begun with less than this left before the invocation's deadline: a page of
/// refreshes takes up to one platform timeout (10 s), its writes and the continuation's send.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(25);

/// How much one shard job reads: the constants above, smaller in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSettings {
    pub due_page: i32,
    pub grant_page: i32,
    pub pages_per_job: usize,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self { due_page: DUE_PAGE, grant_page: GRANT_PAGE, pages_per_job: PAGES_PER_JOB }
    }
}

/// What the sweep uses, and nothing else: built once by [`crate::app::App`].
#[derive(Clone)]
pub struct Sweeper {
    pub posts: PostStore,
    pub accounts: AccountStore,
    pub tokens: Arc<TokenManager>,
    pub queue: WorkQueue,
    pub clock: SharedClock,
    pub settings: SweepSettings,
}

/// Why a sweep job stopped; its message is returned to the queue and retried (each page it
/// queued or refreshed is safe to do again).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one shard job did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShardReport {
    pub pages: usize,
    pub items: usize,
    /// Whether it left the rest of its shard to a continuation job.
    pub continued: bool,
}

/// What a sweep fans out into: one job per shard of each index, from its start.
pub fn shard_jobs() -> Vec<Job> {
    let due = (0..DUE_PARTITIONS).map(|shard| Job::SweepDue { shard, after: None });
    let grants = (0..EXPIRY_PARTITIONS).map(|shard| Job::SweepGrants { shard, after: None });
    due.chain(grants).collect()
}

/// The schedule's job: [`shard_jobs`], queued.
pub async fn fan_out(sweeper: &Sweeper) -> Result<usize, SweepError> {
    let jobs: Vec<(Job, Duration)> = shard_jobs().into_iter().map(|job| (job, Duration::ZERO)).collect();
    let count = jobs.len();
    sweeper.queue.enqueue_batch(jobs).await?;
    Ok(count)
}

/// After a page: where to read on from, or `None` when the shard is done or when the job has read
/// its pages or is near its deadline, and has queued `continuation` from `next` for the rest.
async fn read_on(
    sweeper: &Sweeper,
    report: &mut ShardReport,
    next: Option<SweepCursor>,
    deadline: Option<Instant>,
    continuation: impl FnOnce(SweepCursor) -> Job,
) -> Result<Option<SweepCursor>, SweepError> {
    let Some(cursor) = next else { return Ok(None) };
    let time_left = deadline.is_none_or(|d| d.saturating_duration_since(Instant::now()) > DEADLINE_MARGIN);
    if report.pages < sweeper.settings.pages_per_job && time_left {
        return Ok(Some(cursor));
    }
    sweeper.queue.enqueue(continuation(cursor), Duration::ZERO).await?;
    report.continued = true;
    Ok(None)
}

/// Queues the targets of shard `shard` due within the next 15 minutes (overdue ones too, in case
/// their message was lost; a duplicate job is harmless, since a target is claimed before it is
/// sent).
pub async fn due(
    sweeper: &Sweeper,
    shard: u8,
    mut after: Option<SweepCursor>,
    deadline: Option<Instant>,
) -> Result<ShardReport, SweepError> {
    let now = sweeper.clock.now();
    let before = now + time::Duration::seconds(SQS_MAX_DELAY.as_secs() as i64);
    let mut report = ShardReport::default();
    loop {
        let (due, next) = sweeper.posts.due_page(shard, before, after.as_ref(), sweeper.settings.due_page).await?;
        report.pages += 1;
        report.items += due.len();
        let jobs = due
            .into_iter()
            .map(|target| {
                let delay = wait_until(target.at, now);
                (Job::Publish { tenant: target.tenant, post: target.post, account: target.account }, delay)
            })
            .collect();
        sweeper.queue.enqueue_batch(jobs).await?;
        after = read_on(sweeper, &mut report, next, deadline, |cursor| Job::SweepDue { shard, after: Some(cursor) })
            .await?;
        if after.is_none() {
            return Ok(report);
        }
    }
}

/// Refreshes the grants of shard `shard` nearing expiry and warns about those that cannot be
/// refreshed ([`crate::tokens::TokenManager::sweep_one`]), [`REFRESH_CONCURRENCY`] at a time.
pub async fn grants(
    sweeper: &Sweeper,
    shard: u8,
    mut after: Option<SweepCursor>,
    deadline: Option<Instant>,
) -> Result<(ShardReport, SweepReport), SweepError> {
    let before = sweeper.clock.now() + SWEEP_WARN_HORIZON.max(SWEEP_REFRESH_HORIZON);
    let mut report = ShardReport::default();
    let mut outcomes = SweepReport::default();
    loop {
        let (candidates, next) =
            sweeper.accounts.expiring_page(shard, before, after.as_ref(), sweeper.settings.grant_page).await?;
        report.pages += 1;
        report.items += candidates.len();
        let results: Vec<_> = futures_util::stream::iter(candidates)
            .map(|candidate| async move { sweeper.tokens.sweep_one(&candidate, SWEEP_REFRESH_HORIZON).await })
            .buffer_unordered(REFRESH_CONCURRENCY)
            .collect()
            .await;
        for result in results {
            outcomes.add(result?);
        }
        after = read_on(sweeper, &mut report, next, deadline, |cursor| Job::SweepGrants { shard, after: Some(cursor) })
            .await?;
        if after.is_none() {
            return Ok((report, outcomes));
        }
    }
}
