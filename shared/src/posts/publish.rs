//! One publishing attempt for one target: claim it, get a usable token, publish, record what
//! happened, and hand retryable failures to the queue with the delay they call for.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::domain::post::{Look, LookResult, Report};
use crate::domain::{AccountId, PostId, TenantId, random_bytes};
use crate::events::Events;
use crate::platforms::publish::{LOOK_PAGES, Lookup, Outgoing, Search};
use crate::platforms::{PlatformClient, PlatformError, recording};
use crate::posts::outcome::{self, Attempted};
use crate::posts::{DeadLetterState, Outcome, Post, Target, TargetError, TargetStatus};
use crate::queue::dead::{DeadLetter, DeadLetterQueue};
use crate::queue::{Job, QueueError, WorkQueue, wait_until};
use crate::ratelimit::{LimitError, RateLimiter, Reservation};
use crate::store::posts::Written;
use crate::store::{Account, AccountStore, CreateError, Created, PostStore, StoreError};
use crate::tokens::{TokenError, TokenManager, TokenReader, TokenSet};
use tracing::Instrument;

/// How an attempt gets its account's tokens. The posts function's [`TokenReader`] only reads
/// them; the retries function's [`TokenManager`] also refreshes them, sealing the new grant. So a
/// [`Publisher`]'s type says whether its attempts may refresh (and [`submit`] takes one that
/// cannot): what the functions' IAM roles enforce, the compiler checks too.
pub trait Grants: Send + Sync + 'static {
    /// Tokens good now without refreshing, or `None` when they are due for a refresh.
    fn fresh(&self, account: &Account) -> impl Future<Output = Result<Option<TokenSet>, TokenError>> + Send;
    /// Tokens for an attempt: refreshed first where this holder may, else as [`fresh`](Self::fresh).
    fn for_attempt(&self, account: &Account) -> impl Future<Output = Result<Option<TokenSet>, TokenError>> + Send;
    /// After the platform refused a token that looked valid: the grant refreshed once, or `None`
    /// where this holder may not refresh (the refusal then stands).
    fn after_refusal(&self, account: &Account) -> impl Future<Output = Option<Result<TokenSet, TokenError>>> + Send;
}

impl Grants for TokenReader {
    async fn fresh(&self, account: &Account) -> Result<Option<TokenSet>, TokenError> {
        TokenReader::fresh(self, account).await
    }

    async fn for_attempt(&self, account: &Account) -> Result<Option<TokenSet>, TokenError> {
        TokenReader::fresh(self, account).await
    }

    async fn after_refusal(&self, _account: &Account) -> Option<Result<TokenSet, TokenError>> {
        None
    }
}

impl Grants for TokenManager {
    async fn fresh(&self, account: &Account) -> Result<Option<TokenSet>, TokenError> {
        TokenManager::fresh(self, account).await
    }

    async fn for_attempt(&self, account: &Account) -> Result<Option<TokenSet>, TokenError> {
        self.usable(account).await.map(Some)
    }

    async fn after_refusal(&self, account: &Account) -> Option<Result<TokenSet, TokenError>> {
        Some(self.refresh_after_refusal(account).await)
    }
}

/// What publishing uses, and nothing else: built once by [`crate::app::App`], with the posts
/// function's [`TokenReader`] or the retries function's [`TokenManager`].
pub struct Publisher<G: Grants = TokenManager> {
    pub posts: PostStore,
    pub accounts: AccountStore,
    pub tokens: Arc<G>,
    pub limits: Arc<RateLimiter>,
    pub platforms: Arc<PlatformClient>,
    pub events: Events,
    pub queue: WorkQueue,
    pub dead_letters: DeadLetterQueue,
    pub clock: SharedClock,
    /// How long the posts function's first attempts may take (`HERALD_FIRST_ATTEMPT_SECONDS`).
    pub first_attempt_budget: Duration,
}

impl<G: Grants> Clone for Publisher<G> {
    fn clone(&self) -> Self {
        self.with_tokens(self.tokens.clone())
    }
}

impl<G: Grants> Publisher<G> {
    /// The same services with other `tokens` (the posts function's first attempts read them only).
    pub fn with_tokens<H: Grants>(&self, tokens: Arc<H>) -> Publisher<H> {
        Publisher {
            posts: self.posts.clone(),
            accounts: self.accounts.clone(),
            tokens,
            limits: self.limits.clone(),
            platforms: self.platforms.clone(),
            events: self.events.clone(),
            queue: self.queue.clone(),
            dead_letters: self.dead_letters.clone(),
            clock: self.clock.clone(),
            first_attempt_budget: self.first_attempt_budget,
        }
    }
}

/// Why a publish job was not done; its message is returned to the queue and retried.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a claimed target is ours; a publish takes well under this.
const CLAIM: time::Duration = time::Duration::minutes(2);

/// An error on Herald's side during an attempt: logged with its cause chain, retried soon. It
/// counts as an attempt unless it is DynamoDB's passing trouble (throttling, a transaction
/// conflict, an internal error: [`StoreError::is_transient`]), which says nothing about the post.
fn internal(e: &StoreError) -> Attempted {
    tracing::error!(error = %crate::telemetry::cause_chain(e), "attempt failed on Herald's side; retrying");
    Attempted::Internal { message: e.to_string(), transient: e.is_transient() }
}

/// One attempt at `target` of `post`. Returns the target as it now stands (someone else's
/// claim included: then it is left alone). `account` is the target's account when the caller
/// has just read it (the submission validated it), else it is read here. Every log line inside
/// carries the tenant, post, account and platform.
///
/// When the account's tokens are good now, the claim and the call's budgets are one
/// transaction (the short way: with the outcome's write, two writes an attempt); otherwise, or
/// when a budget is spent, the steps run one by one and say why and until when.
#[tracing::instrument(name = "publish", skip_all, fields(tenant = %post.tenant, post = %post.id, account = %target.account_id, platform = %target.platform, attempt = target.attempts + 1))]
pub async fn attempt<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    target: &Target,
    account: Option<&Account>,
) -> Result<Target, StoreError> {
    let account = match account {
        Some(account) => Some(account.clone()),
        None => publisher.accounts.get(&post.tenant, &post.user_id, &target.account_id).await.ok().flatten(),
    };
    // A target whose answer was lost looks on the platform first, before a publishing unit is
    // spent (a found post needs none): the steps one by one.
    if let Some(account) = &account
        && target.check_since.is_none()
        && let Ok(Some(tokens)) = publisher.tokens.fresh(account).await
    {
        let mut reservation = Reservation::default();
        if reserve(publisher, &mut reservation, account).await {
            let claimed = target.claimed(publisher.clock.now(), CLAIM);
            let written = match publisher.limits.transaction_items(&mut reservation) {
                Ok(items) => publisher.posts.claim_with(&post.tenant, &post.id, target, &claimed, items).await,
                Err(e) => Err(e),
            };
            publisher.limits.settle(reservation, matches!(written, Ok(Written::Yes)));
            match written? {
                Written::Yes => {
                    let attempted = traced(call(publisher, post, account, tokens, &claimed)).await;
                    return conclude(publisher, post, claimed, attempted).await;
                }
                Written::TargetMoved => return current(publisher, post, target).await,
                // A budget is spent (or its counter was busy): the steps below say until when.
                Written::Contended => {}
            }
        }
    }
    let claimed = match publisher.posts.claim(&post.tenant, &post.id, target, CLAIM).await {
        Ok(claimed) => claimed,
        Err(StoreError::VersionConflict) => return current(publisher, post, target).await,
        Err(e) => return Err(e),
    };
    let attempted = traced(run(publisher, post, &claimed, account.as_ref())).await;
    conclude(publisher, post, claimed, attempted).await
}

/// Runs one attempt's work under a new request id (on every log line inside), keeping the
/// platform calls it makes: what it came to, and the report its history entry keeps.
fn traced(work: impl Future<Output = (Attempted, Option<Look>)>) -> impl Future<Output = (Attempted, Report)> {
    let recorded = recorded("publish", work);
    async move {
        let ((attempted, looked), mut report) = recorded.await;
        report.looked = looked;
        (attempted, report)
    }
}

/// Runs `work` (one try at a target: `kind` publish or delete) in an `attempt` span with a new
/// request id, keeping the platform calls it makes in the report its history entry keeps.
/// `work` is boxed at once, before any caller's future holds it: an attempt's future is large,
/// and nested unboxed in the request's own it overflows a debug build's stack.
pub(super) fn recorded<T>(kind: &'static str, work: impl Future<Output = T>) -> impl Future<Output = (T, Report)> {
    let work = Box::pin(work);
    let mut report = Report::new();
    let span = tracing::info_span!("attempt", kind, request_id = %report.request_id);
    async move {
        let (output, calls) = recording(work).instrument(span).await;
        report.calls = calls;
        (output, report)
    }
}

/// Stores a new post, then makes the first attempt at each of its targets (or, for a scheduled
/// post, queues them). `accounts` are the targets' accounts, as validated. Targets whose tokens
/// are good now are stored already claimed, with their budgets, in the post's own transaction.
pub async fn submit(
    publisher: &Publisher<TokenReader>,
    mut post: Post,
    accounts: &[Account],
    idempotency: Option<(&str, &str)>,
) -> Result<Created, CreateError> {
    let now = publisher.clock.now();
    if let Some(at) = post.scheduled_at {
        let created = publisher.posts.create(post, idempotency, Vec::new()).await?;
        if let Created::New(post) = &created {
            // Held until its time: one queued attempt per target (long delays are re-queued in steps).
            for target in &post.targets {
                schedule(publisher, &post.tenant, &post.id, target, wait_until(at, now)).await;
            }
        }
        return Ok(created);
    }
    let mut reservation = Reservation::default();
    let mut ready = Vec::with_capacity(accounts.len());
    for account in accounts {
        let tokens = match publisher.tokens.fresh(account).await {
            Ok(Some(tokens)) if reserve(publisher, &mut reservation, account).await => Some(tokens),
            _ => None,
        };
        ready.push(tokens);
    }
    let unclaimed = post.targets.clone();
    for (target, tokens) in post.targets.iter_mut().zip(&ready) {
        if tokens.is_some() {
            *target = target.claimed(now, CLAIM);
        }
    }
    let created = match publisher.limits.transaction_items(&mut reservation) {
        Ok(items) if !items.is_empty() => publisher.posts.create(post.clone(), idempotency, items).await,
        Ok(_) => Err(CreateError::Contended),
        Err(e) => Err(e.into()),
    };
    publisher.limits.settle(reservation, matches!(created, Ok(Created::New(_))));
    let created = match created {
        Err(CreateError::Contended) => {
            // Stored unclaimed instead; each first attempt takes the steps one by one.
            ready.iter_mut().for_each(|tokens| *tokens = None);
            post.targets = unclaimed;
            publisher.posts.create(post, idempotency, Vec::new()).await?
        }
        other => other?,
    };
    let Created::New(mut post) = created else { return Ok(created) };
    // The first attempt, for every target at once. This publisher cannot refresh tokens; a
    // target whose token is due is handed to the retries function.
    let attempts = post.targets.iter().zip(accounts).zip(ready).map(|((target, account), tokens)| {
        let post = &post;
        async move {
            match tokens {
                Some(tokens) => {
                    let attempted = traced(call(publisher, post, account, tokens, target)).await;
                    conclude(publisher, post, target.clone(), attempted).await
                }
                None => attempt(publisher, post, target, Some(account)).await,
            }
        }
    });
    let deadline = std::time::Instant::now() + publisher.first_attempt_budget;
    let results = crate::platforms::with_deadline(deadline, futures_util::future::join_all(attempts)).await;
    for (slot, result) in post.targets.iter_mut().zip(results) {
        match result {
            Ok(target) => *slot = target,
            Err(e) => {
                tracing::error!(post = %post.id, account = %slot.account_id, error = %e, "first attempt could not be recorded")
            }
        }
    }
    Ok(Created::New(post))
}

/// Adds one publishing call of `account` to `reservation`; false when it must take the steps
/// one by one (a known denial or block, or the limiter could not tell).
async fn reserve<G: Grants>(publisher: &Publisher<G>, reservation: &mut Reservation, account: &Account) -> bool {
    match publisher.limits.reserve(reservation, account.platform, "publish", account.limit_key(), "app").await {
        Ok(fits) => fits,
        Err(e) => {
            tracing::warn!(error = %e, "could not check the app-wide block; taking the steps one by one");
            false
        }
    }
}

/// The target as stored, after someone else's claim won.
async fn current<G: Grants>(publisher: &Publisher<G>, post: &Post, target: &Target) -> Result<Target, StoreError> {
    publisher.posts.target(&post.tenant, &post.id, &target.account_id).await?.ok_or(StoreError::NotFound)
}

/// Judges the attempt ([`outcome::decide`]), records its outcome (with its event, in one
/// write) and its report in the history, queues the next attempt of a retryable one, and logs it.
async fn conclude<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    claimed: Target,
    (attempted, mut report): (Attempted, Report),
) -> Result<Target, StoreError> {
    let now = publisher.clock.now();
    // A post that may exist already (an earlier answer was lost) cannot be failed for want of
    // the account or its grant, however far the attempt got: it is unknown.
    let attempted = match (attempted, claimed.check_since) {
        (Attempted::AccountGone | Attempted::GrantDead { .. }, Some(_)) => Attempted::Unreadable(GRANT_GONE.into()),
        (attempted, _) => attempted,
    };
    report.answer = Some(attempted.answer());
    let request_id = report.request_id.clone();
    let outcome = outcome::decide(attempted, claimed.attempts, now, u64::from_le_bytes(random_bytes()));
    let mut finished = claimed.settled(&outcome, report, now);
    // The outcome is written with its event, so neither is recorded without the other: the
    // first outcome's event in the target's own record (one single-item write), a later one in
    // a transaction with it.
    let mut event = publisher.events.post_outcome_item(post, &finished);
    let kept = event.as_mut().is_some_and(|event| publisher.events.keep(event, post, &mut finished));
    let own_item = event.as_ref().filter(|_| !kept).map(|event| event.item.clone());
    publisher.posts.finish(&post.tenant, &post.id, &claimed, &finished, own_item).await?;
    if let Some(event) = &event {
        publisher.events.announce(event).await;
    }
    if let Outcome::Retry { at, .. } | Outcome::Reconcile { at, .. } = &outcome {
        schedule(publisher, &post.tenant, &post.id, &claimed, wait_until(*at, now)).await;
    }
    tracing::info!(
        post = %post.id,
        account = %claimed.account_id,
        platform = %claimed.platform,
        attempt = claimed.attempts,
        request_id,
        status = finished.status.as_str(),
        "publish attempt"
    );
    Ok(finished)
}

/// Queues the next attempt if it is due within SQS's 15-minute delay; later ones wait in the due
/// index for the sweep. A failed enqueue is logged: the target keeps its due time in the index,
/// so the sweep queues it again and nothing is lost.
pub async fn schedule<G: Grants>(
    publisher: &Publisher<G>,
    tenant: &TenantId,
    post: &PostId,
    target: &Target,
    delay: Duration,
) {
    if delay > crate::queue::SQS_MAX_DELAY {
        return;
    }
    let job = Job::Publish { tenant: tenant.clone(), post: post.clone(), account: target.account_id.clone() };
    if let Err(e) = publisher.queue.enqueue(job, delay).await {
        tracing::error!(post = %post, account = %target.account_id, error = %e, "could not queue the next attempt");
    }
}

/// The steps one by one: the account, its tokens, the platform's budget, then the call.
async fn run<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    claimed: &Target,
    known: Option<&Account>,
) -> (Attempted, Option<Look>) {
    match ready(publisher, post, claimed, known).await {
        Ok((account, tokens)) => call(publisher, post, &account, tokens, claimed).await,
        Err(stopped) => (stopped, None),
    }
}

/// The account and its tokens for an attempt within the platform's budget, or why there is none.
async fn ready<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    claimed: &Target,
    known: Option<&Account>,
) -> Result<(Account, TokenSet), Attempted> {
    let account = match known {
        Some(account) => account.clone(),
        None => match publisher.accounts.get(&post.tenant, &post.user_id, &claimed.account_id).await {
            Ok(Some(account)) => account,
            Ok(None) => return Err(Attempted::AccountGone),
            Err(e) => return Err(internal(&e)),
        },
    };
    let tokens = match publisher.tokens.for_attempt(&account).await {
        Ok(Some(tokens)) => tokens,
        // Due for a refresh, which this publisher may not make: the retries function will.
        Ok(None) => return Err(Attempted::RefreshFirst),
        Err(e) => return Err(token_failure(e, false)),
    };
    // A lost answer's look comes first, and the publishing budget only if it finds nothing
    // ([`call`]).
    if claimed.check_since.is_none() {
        admit_publish(publisher, &account).await?;
    }
    Ok((account, tokens))
}

/// One publishing call of `account` within the platform's budgets, checked before the call;
/// over them, deferred to the reset.
async fn admit_publish<G: Grants>(publisher: &Publisher<G>, account: &Account) -> Result<(), Attempted> {
    match publisher.limits.admit(account.platform, "publish", account.limit_key(), "app").await {
        Ok(()) => Ok(()),
        Err(LimitError::Denied(denied)) => {
            let until = time::OffsetDateTime::from_unix_timestamp(denied.retry_at).unwrap_or(publisher.clock.now());
            Err(Attempted::OverBudget { until })
        }
        Err(LimitError::Store(e)) => Err(internal(&e)),
    }
}

/// What a failure to get a usable token comes to; `after_refusal`: the platform had refused the
/// token on the publishing call.
fn token_failure(e: TokenError, after_refusal: bool) -> Attempted {
    match e {
        TokenError::NeedsReauth | TokenError::Revoked => Attempted::GrantDead { after_refusal },
        TokenError::Transient(e) => Attempted::Platform(e),
        TokenError::Store(e) => internal(&e),
    }
}

const GRANT_GONE: &str =
    "an earlier attempt's answer was lost, and the account's grant is gone, so the platform cannot be read";

/// What looking for a post whose answer was lost found.
enum Looked {
    /// Not there once the platform's reads show what it made: sending is safe.
    Absent,
    /// The platform takes the same key again without posting twice: the resend is the look.
    Resend,
    /// Settled by the look (found, or the platform could not say), or before it (its budget).
    Settled(Attempted),
}

impl Looked {
    /// What the history says the look found; `None` when no look was made.
    fn result(&self) -> Option<LookResult> {
        match self {
            Looked::Absent => Some(LookResult::Absent),
            Looked::Resend => Some(LookResult::Resent),
            Looked::Settled(Attempted::Published { .. }) => Some(LookResult::Found),
            Looked::Settled(Attempted::Unreadable(_) | Attempted::LookupFailed(_)) => Some(LookResult::Unreadable),
            Looked::Settled(_) => None,
        }
    }
}

fn unreadable(account: &Account) -> Attempted {
    Attempted::Unreadable(format!(
        "an earlier attempt's answer was lost, and {} cannot be read back; it was not sent again",
        account.platform
    ))
}

/// Looks for the post on the platform, among what `account` posted since `since`, before an
/// attempt that follows a lost answer sends anything: page by page, each read counted against the
/// platform's read budget and checked first like any call, until the post is found, the listing
/// is whole, or [`LOOK_PAGES`] are read (then its absence is not concluded: the look fails).
async fn reconcile<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    account: &Account,
    tokens: &TokenSet,
    since: time::OffsetDateTime,
) -> Looked {
    match publisher.platforms.lookup(account).at(since, publisher.clock.now()) {
        Lookup::None => return Looked::Settled(unreadable(account)),
        Lookup::Resend { .. } => return Looked::Resend,
        Lookup::Listing { .. } => {}
    }
    let mut after: Option<String> = None;
    for _ in 0..LOOK_PAGES {
        match publisher.limits.admit(account.platform, "read", account.limit_key(), "app").await {
            Ok(()) => {}
            Err(LimitError::Denied(denied)) => {
                let until = time::OffsetDateTime::from_unix_timestamp(denied.retry_at).unwrap_or(publisher.clock.now());
                return Looked::Settled(Attempted::OverBudget { until });
            }
            Err(LimitError::Store(e)) => return Looked::Settled(internal(&e)),
        }
        let page = after.as_deref();
        let found = match refreshed_once(publisher, account, tokens, |t| async move {
            publisher.platforms.find(account, &t, since, &post.text, page).await
        })
        .await
        {
            Ok(found) => found,
            Err(TokenError::Transient(e)) => Err(e),
            Err(e) => {
                return Looked::Settled(match token_failure(e, true) {
                    Attempted::GrantDead { .. } => Attempted::Unreadable(GRANT_GONE.into()),
                    other => other,
                });
            }
        };
        match found {
            Ok(Search::More(next)) => after = Some(next),
            Ok(Search::Found(found)) => {
                tracing::info!(platform = %account.platform, "a post whose answer was lost was found on the platform");
                return Looked::Settled(Attempted::Published {
                    platform_post_id: found.id,
                    url: found.url,
                    found: true,
                });
            }
            Ok(Search::Absent) => {
                tracing::info!(platform = %account.platform, "a post whose answer was lost is not on the platform; sending it");
                return Looked::Absent;
            }
            Ok(Search::Unlisted) => return Looked::Settled(unreadable(account)),
            Err(e) => return Looked::Settled(Attempted::LookupFailed(e)),
        }
    }
    Looked::Settled(Attempted::LookupFailed(PlatformError::Unexpected {
        platform: account.platform,
        detail: format!("more than {LOOK_PAGES} pages of posts since the lost answer: its absence cannot be concluded"),
    }))
}

/// `call` with the account's tokens, and once more after refreshing them where the platform
/// refused them although they looked valid (where this publisher may refresh): its answer, or why
/// the grant could not be refreshed.
pub(super) async fn refreshed_once<G: Grants, T, F, Fut>(
    publisher: &Publisher<G>,
    account: &Account,
    tokens: &TokenSet,
    call: F,
) -> Result<Result<T, PlatformError>, TokenError>
where
    F: Fn(TokenSet) -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
{
    let result = call(tokens.clone()).await;
    if matches!(result, Err(PlatformError::Unauthorized { .. }))
        && let Some(fresh) = publisher.tokens.after_refusal(account).await
    {
        return Ok(call(fresh?).await);
    }
    Ok(result)
}

/// The platform call of a claimed target, and what it came to. A target whose earlier answer
/// was lost is looked for first ([`reconcile`]): then also where it looked and what it found.
async fn call<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    account: &Account,
    tokens: TokenSet,
    claimed: &Target,
) -> (Attempted, Option<Look>) {
    let Some(since) = claimed.check_since else { return (send(publisher, post, account, tokens, claimed).await, None) };
    let looked = reconcile(publisher, post, account, &tokens, since).await;
    let look = looked.result().map(|result| Look { since, result });
    if let Looked::Settled(attempted) = looked {
        return (attempted, look);
    }
    // Past the last attempt a listing is only read: not there, the post is not sent again.
    if claimed.attempts > outcome::MAX_ATTEMPTS
        && let Lookup::Listing { .. } = publisher.platforms.lookup(account).at(since, publisher.clock.now())
    {
        let reason = format!(
            "{} attempts' answers were lost and the post is not on the platform; it was not sent again",
            outcome::MAX_ATTEMPTS
        );
        return (Attempted::GaveUp(reason), look);
    }
    // Not there (or to be resent under its key): only now is a publishing unit spent.
    if let Err(stopped) = admit_publish(publisher, account).await {
        return (stopped, look);
    }
    (send(publisher, post, account, tokens, claimed).await, look)
}

/// The publishing call itself (once more after refreshing a refused token, where this caller
/// may), and what it came to.
async fn send<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    account: &Account,
    tokens: TokenSet,
    claimed: &Target,
) -> Attempted {
    let started = publisher.clock.now();
    // The same key on every attempt of this target: a platform that takes one makes a resend a
    // no-op.
    let key = format!("{}/{}", post.id.as_str(), account.id.as_str());
    let resume = claimed.resume.as_deref();
    let outgoing = Outgoing { text: &post.text, media: &post.media, resume, key: &key, made_at: post.created_at };
    let result = match refreshed_once(publisher, account, &tokens, |t| async move {
        publisher.platforms.publish(account, &t, &outgoing).await
    })
    .await
    {
        Ok(result) => result,
        Err(e) => return token_failure(e, true),
    };
    match result {
        Ok(published) => {
            // The answer said the budget is spent: everyone holds off until the reset.
            if let Some(throttle) = published.throttle {
                let key = if throttle.app_wide { "app" } else { account.limit_key() };
                if let Err(e) = publisher.limits.block(account.platform, key, throttle.until).await {
                    tracing::warn!(error = %e, "could not record the platform's usage");
                }
            }
            Attempted::Published { platform_post_id: published.id, url: published.url, found: published.found }
        }
        // Applied or not, the answer does not say: looked for before anything is sent again (a
        // minute of clock skew allowed).
        Err(PlatformError::Ambiguous { detail, .. }) => Attempted::Lost {
            detail,
            lookup: publisher.platforms.lookup(account),
            since: started - time::Duration::minutes(1),
        },
        Err(e) => {
            // The platform said which limit: the app's holds every account back, else this one.
            if let PlatformError::RateLimited { retry_at: Some(until), app_wide, .. } = &e
                && let key = if *app_wide { "app" } else { account.limit_key() }
                && let Err(store) = publisher.limits.block(account.platform, key, *until).await
            {
                tracing::warn!(error = %store, "could not record the platform's block");
            }
            Attempted::Platform(e)
        }
    }
}

/// Whether a target still needs work.
pub fn open(target: &Target) -> bool {
    matches!(target.status, TargetStatus::Pending | TargetStatus::Retrying)
}

/// The retries function's job for one target: finish a dead letter left half-sent, reconcile a
/// claim whose worker died, delete a target whose post the tenant deleted, wait for a target not
/// yet due, or make the next attempt (and send the target to the dead-letter queue when its
/// attempts ran out).
pub async fn run_job(
    publisher: &Publisher<TokenManager>,
    tenant: &TenantId,
    post: &PostId,
    account: &AccountId,
) -> Result<(), JobError> {
    let Some(found) = publisher.posts.get(tenant, post).await? else {
        tracing::warn!(post = %post, "publish job for a post that does not exist; dropped");
        return Ok(());
    };
    let Some(target) = found.targets.iter().find(|t| t.account_id == *account) else { return Ok(()) };
    if target.dead_letter == Some(DeadLetterState::Pending) {
        // Exhausted, but its dead letter was not sent (an earlier delivery failed).
        return dead_letter(publisher, &found, target).await;
    }
    let now = publisher.clock.now();
    if target.status == TargetStatus::Publishing
        && let Some(lease) = target.lease_until.filter(|until| *until < now)
    {
        // The claimer died mid-attempt: it may have been sent, so it is looked for like a lost
        // answer (or, where the platform cannot be read, settled `unknown`), never resent blindly.
        let since = lease - CLAIM - time::Duration::minutes(1);
        let lookup = match publisher.accounts.get(tenant, &found.user_id, account).await? {
            Some(account) => publisher.platforms.lookup(&account).at(since, now),
            None => Lookup::None,
        };
        let lost = Attempted::Lost {
            detail: "the attempt's worker stopped after it may have reached the platform".into(),
            lookup,
            since,
        };
        return match conclude(publisher, &found, target.clone(), (lost, Report::new())).await {
            Ok(_) | Err(StoreError::VersionConflict) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    if target.status == TargetStatus::Deleting {
        // The tenant deleted the post: this job deletes it from the platform.
        return match target.next_attempt_at.filter(|at| *at > now) {
            Some(due) => {
                schedule(publisher, tenant, post, target, wait_until(due, now)).await;
                Ok(())
            }
            None => Ok(super::manage::delete_step(publisher, &found, target).await?),
        };
    }
    if !open(target) {
        // Already handled (a duplicate delivery, or another worker): nothing to do.
        return Ok(());
    }
    if let Some(due) = target.next_attempt_at.filter(|at| *at > now) {
        schedule(publisher, tenant, post, target, wait_until(due, now)).await;
        return Ok(());
    }
    let finished = attempt(publisher, &found, target, None).await?;
    if finished.dead_letter == Some(DeadLetterState::Pending) {
        dead_letter(publisher, &found, &finished).await?;
    }
    Ok(())
}

/// Sends an exhausted target's job to the dead-letter queue with its reason and history, then
/// records that it was sent. If the send fails the message is retried, and its next delivery
/// sends it.
async fn dead_letter<G: Grants>(publisher: &Publisher<G>, post: &Post, target: &Target) -> Result<(), JobError> {
    let letter = DeadLetter {
        job: Job::Publish { tenant: post.tenant.clone(), post: post.id.clone(), account: target.account_id.clone() },
        reason: target.error.clone().unwrap_or_else(|| TargetError {
            code: "attempts_exhausted".into(),
            message: "the attempts ran out".into(),
            platform_code: None,
            platform_message: None,
        }),
        history: target.history.clone(),
        dead_at: publisher.clock.now().unix_timestamp(),
    };
    publisher.dead_letters.send(&letter).await?;
    match publisher.posts.dead_letter_sent(&post.tenant, &post.id, target).await {
        // Another delivery of the same job recorded it first.
        Ok(_) | Err(StoreError::VersionConflict) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::warn!(post = %post.id, account = %target.account_id, platform = %target.platform, attempts = target.attempts, "attempts ran out; the job was sent to the dead-letter queue");
    Ok(())
}
