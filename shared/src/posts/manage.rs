//! A tenant acting on a post it made: retrying a target that failed or is unknown, deleting
//! the post (its open targets canceled, its published ones deleted from the platforms, each
//! deletion a tracked step of its own), and changing a scheduled post before its first attempt.
//!
//! Each action reads the post, decides every target's next state ([`Target::reopened`],
//! [`Target::canceled`], [`Target::deleting`]) and writes them with their events in one
//! transaction on the versions it read ([`PostStore::amend`]); if anything moved meanwhile it
//! reads again and decides again. So each is idempotent: asked twice, the second finds the work
//! done (or under way) and answers with the post as it stands.

use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::whole_seconds;

use super::publish::{Grants, Publisher, recorded, refreshed_once, schedule};
use super::{Post, Target, TargetError, TargetStatus, validate};
use crate::domain::post::{Answer, Deletion, Report};
use crate::domain::{AccountId, PostId, TenantId, random_bytes};
use crate::platforms::PlatformError;
use crate::posts::outcome::MAX_ATTEMPTS;
use crate::ratelimit::LimitError;
use crate::store::StoreError;
use crate::store::journal::{PreparedEvent, kinds};
use crate::store::posts::{PostChange, Written};
use crate::tokens::{TokenError, TokenManager};

/// A read, decide and write that found something moved is done again this many times.
const TRIES: usize = 4;

/// Why a tenant's action was not taken: a stable code (docs/errors.md) and a sentence.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{code}: {detail}")]
    NotFound { code: &'static str, detail: String },
    /// The post or target is not in a state the action applies to; `retry_after`: when it may
    /// be (a target being published now).
    #[error("{code}: {detail}")]
    Conflict { code: &'static str, detail: String, retry_after: Option<u64> },
    /// The change breaks a rule (the schedule window, a platform's limit on text).
    #[error("{code}: {detail}")]
    Invalid { code: &'static str, field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn conflict(code: &'static str, detail: impl Into<String>) -> ActionError {
    ActionError::Conflict { code, detail: detail.into(), retry_after: None }
}

fn post_not_found() -> ActionError {
    ActionError::NotFound { code: "post_not_found", detail: "no such post".into() }
}

/// The post, read afresh (strongly consistent), or why there is none.
async fn read<G: Grants>(publisher: &Publisher<G>, tenant: &TenantId, id: &PostId) -> Result<Post, ActionError> {
    publisher.posts.get(tenant, id).await?.ok_or_else(post_not_found)
}

/// Writes `changes` of `post` with their events and `change`; then announces the events and
/// queues a job, now, for each changed target that has work to do. `None`: something moved.
async fn write<G: Grants>(
    publisher: &Publisher<G>,
    post: &Post,
    changes: Vec<(Target, Target)>,
    change: PostChange<'_>,
    events: Vec<PreparedEvent>,
) -> Result<Option<Post>, ActionError> {
    let items = events.iter().map(|e| e.item.clone()).collect();
    if publisher.posts.amend(post, &changes, change, items).await? != Written::Yes {
        return Ok(None);
    }
    for event in &events {
        publisher.events.announce(event).await;
    }
    let mut post = post.clone();
    for (_, next) in changes {
        if matches!(next.status, TargetStatus::Retrying | TargetStatus::Deleting | TargetStatus::Pending) {
            let delay =
                next.next_attempt_at.map_or(Duration::ZERO, |at| crate::queue::wait_until(at, publisher.clock.now()));
            schedule(publisher, &post.tenant, &post.id, &next, delay).await;
        }
        if let Some(slot) = post.targets.iter_mut().find(|t| t.account_id == next.account_id) {
            *slot = next;
        }
    }
    match change {
        PostChange::Deleted(at) => post.deleted_at = Some(at),
        PostChange::Edited { text, scheduled_at } => {
            post.text = text.to_owned();
            post.scheduled_at = Some(scheduled_at);
        }
        PostChange::None => {}
    }
    Ok(Some(post))
}

/// `POST /v1/posts/{id}/targets/{account}/retry`: a `failed` or `unknown` target tried again,
/// with a fresh count of attempts. An unknown target's post may exist, so its next attempt looks
/// for it on the platform first (found: published, nothing sent), unless the tenant says it is
/// not there (`assume_absent`, after looking): where the platform cannot be read, that is the
/// only way to retry it. A target already on its way is left alone.
pub async fn retry<G: Grants>(
    publisher: &Publisher<G>,
    tenant: &TenantId,
    id: &PostId,
    account: &AccountId,
    assume_absent: bool,
) -> Result<Post, ActionError> {
    for _ in 0..TRIES {
        let post = read(publisher, tenant, id).await?;
        if post.deleted_at.is_some() {
            return Err(conflict("post_deleted", "the post was deleted; its targets are not retried"));
        }
        let target = post.targets.iter().find(|t| t.account_id == *account).ok_or_else(|| ActionError::NotFound {
            code: "target_not_found",
            detail: "the post has no such target".into(),
        })?;
        let look_since = match target.status {
            TargetStatus::Failed => None,
            TargetStatus::Unknown if assume_absent => None,
            TargetStatus::Unknown => {
                let since = target.check_since.unwrap_or(post.created_at - time::Duration::minutes(1));
                let stored = publisher.accounts.get(tenant, &post.user_id, account).await?;
                let now = publisher.clock.now();
                if stored.as_ref().is_some_and(|a| !publisher.platforms.lookup(a).can_look(since, now)) {
                    return Err(conflict(
                        "cannot_look_up",
                        format!(
                            "{} cannot be read back for this post, so Herald cannot tell whether it is there; look at the account, and if it is not, retry with assume_absent: true",
                            target.platform
                        ),
                    ));
                }
                Some(since)
            }
            // Already waiting for its next attempt, or being made: nothing to do.
            TargetStatus::Pending | TargetStatus::Retrying | TargetStatus::Publishing => return Ok(post),
            status @ (TargetStatus::Published
            | TargetStatus::Canceled
            | TargetStatus::Deleting
            | TargetStatus::Deleted) => {
                return Err(conflict(
                    "target_not_retryable",
                    format!("the target is {}; only failed and unknown targets are retried", status.as_str()),
                ));
            }
        };
        let next = target.reopened(publisher.clock.now(), look_since);
        let event = publisher.events.post_item(kinds::POST_RETRY_REQUESTED, &post, &next);
        if let Some(post) = write(publisher, &post, vec![(target.clone(), next)], PostChange::None, vec![event]).await?
        {
            return Ok(post);
        }
    }
    Err(StoreError::Busy.into())
}

/// `DELETE /v1/posts/{id}`: the post's open targets canceled, its published ones deleted from
/// the platforms that let apps delete (each then `deleting`, a step of the retries function
/// with its own tries and events), those that do not kept with the reason. Failed and unknown
/// targets stay as they are. Refused while a target is being published: its attempt's answer
/// decides what there is to delete.
pub async fn delete<G: Grants>(publisher: &Publisher<G>, tenant: &TenantId, id: &PostId) -> Result<Post, ActionError> {
    for _ in 0..TRIES {
        let post = read(publisher, tenant, id).await?;
        if post.deleted_at.is_some() {
            return Ok(post);
        }
        let now = publisher.clock.now();
        if let Some(busy) = post.targets.iter().find(|t| t.status == TargetStatus::Publishing) {
            let wait = busy.lease_until.map_or(1, |until| (until - now).whole_seconds().max(1) as u64);
            return Err(ActionError::Conflict {
                code: "target_publishing",
                detail: format!("the target on {} is being published now; delete again once it settles", busy.platform),
                retry_after: Some(wait.min(120)),
            });
        }
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for target in &post.targets {
            let (next, kind) = match target.status {
                TargetStatus::Pending | TargetStatus::Retrying => (target.canceled(), Some(kinds::POST_CANCELED)),
                TargetStatus::Published if publisher.platforms.deletes(target.platform) => (target.deleting(now), None),
                TargetStatus::Published => {
                    let kept = Deletion::Kept(error(
                        "delete_not_supported",
                        format!("{} does not let apps delete posts; it stays published", target.platform),
                    ));
                    let report = Report { answer: Some(Answer::NotSent), ..Report::new() };
                    (target.deleting(now).after_deletion(&kept, report, now), Some(kinds::POST_DELETE_FAILED))
                }
                _ => continue,
            };
            if let Some(kind) = kind {
                events.push(publisher.events.post_item(kind, &post, &next));
            }
            changes.push((target.clone(), next));
        }
        if let Some(post) = write(publisher, &post, changes, PostChange::Deleted(whole_seconds(now)), events).await? {
            return Ok(post);
        }
    }
    Err(StoreError::Busy.into())
}

/// `PATCH /v1/posts/{id}`: a scheduled post's text or time changed before its first attempt,
/// checked as a new post's are (each target's platform's rules, the schedule window). Asked
/// again with what the post already says, it answers with the post unchanged.
pub async fn edit<G: Grants>(
    publisher: &Publisher<G>,
    tenant: &TenantId,
    id: &PostId,
    text: Option<String>,
    scheduled_at: Option<OffsetDateTime>,
) -> Result<Post, ActionError> {
    for _ in 0..TRIES {
        let post = read(publisher, tenant, id).await?;
        let text = text.clone().unwrap_or_else(|| post.text.clone());
        let at = scheduled_at.map(whole_seconds).or(post.scheduled_at);
        if post.deleted_at.is_some() {
            return Err(conflict("post_deleted", "the post was deleted"));
        }
        let Some(at) = at else {
            return Err(conflict(
                "post_not_scheduled",
                "only a scheduled post can be changed, before its first attempt",
            ));
        };
        if text == post.text && Some(at) == post.scheduled_at {
            return Ok(post);
        }
        if post.targets.iter().any(|t| t.status != TargetStatus::Pending || !t.history.is_empty()) {
            return Err(conflict(
                "post_not_editable",
                "the post's first attempt has started; only a scheduled post not yet attempted can be changed",
            ));
        }
        let now = publisher.clock.now();
        if scheduled_at.is_some() {
            validate::schedule(at, now).map_err(|b| ActionError::Invalid {
                code: b.code,
                field: "scheduled_at",
                detail: b.detail,
            })?;
        }
        for target in &post.targets {
            // A disconnected account's target fails at its time, whatever the text.
            let Some(account) = publisher.accounts.get(tenant, &post.user_id, &target.account_id).await? else {
                continue;
            };
            validate::for_platform(target.platform, account.kind, &text, &post.media).map_err(|b| {
                ActionError::Invalid {
                    code: b.code,
                    field: "text",
                    detail: format!("{}: {}", target.platform, b.detail),
                }
            })?;
        }
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let edited = Post { text: text.clone(), scheduled_at: Some(at), ..post.clone() };
        for target in &post.targets {
            let next = Target { next_attempt_at: Some(at), version: target.version + 1, ..target.clone() };
            events.push(publisher.events.post_item(kinds::POST_UPDATED, &edited, &next));
            changes.push((target.clone(), next));
        }
        let change = PostChange::Edited { text: &text, scheduled_at: at };
        if let Some(post) = write(publisher, &post, changes, change, events).await? {
            return Ok(post);
        }
    }
    Err(StoreError::Busy.into())
}

fn error(code: &str, message: impl Into<String>) -> TargetError {
    TargetError { code: code.to_owned(), message: message.into(), platform_code: None, platform_message: None }
}

/// The retries function's step for a `deleting` target: one try at deleting its post from the
/// platform (within the platform's delete budget, the token refreshed once if refused), recorded
/// with its event. Passing trouble is tried again with backoff, up to [`MAX_ATTEMPTS`] tries;
/// a refusal, a gone grant or the last try keeps the target `published`, with the reason.
pub async fn delete_step(publisher: &Publisher<TokenManager>, post: &Post, target: &Target) -> Result<(), StoreError> {
    let now = publisher.clock.now();
    let (deletion, mut report) = recorded("delete", try_delete(publisher, post, target, now)).await;
    report.answer = Some(deletion_answer(&deletion, !report.calls.is_empty()));
    let deletion = match deletion {
        Deletion::Retry { error, .. } if target.attempts + 1 >= MAX_ATTEMPTS => Deletion::Kept(TargetError {
            code: "delete_failed".into(),
            message: format!("{MAX_ATTEMPTS} tries to delete the post failed; the last: {}", error.message),
            ..error
        }),
        other => other,
    };
    let next = target.after_deletion(&deletion, report, now);
    let kind = match deletion {
        Deletion::Deleted => Some(kinds::POST_DELETED),
        Deletion::Kept(_) => Some(kinds::POST_DELETE_FAILED),
        Deletion::Retry { .. } => None,
    };
    let event = kind.map(|kind| publisher.events.post_item(kind, post, &next));
    let written = publisher
        .posts
        .deletion_tried(&post.tenant, &post.id, target, &next, event.as_ref().map(|e| e.item.clone()))
        .await?;
    if written != Written::Yes {
        // Another delivery of the same job recorded its try first.
        return Ok(());
    }
    if let Some(event) = &event {
        publisher.events.announce(event).await;
    }
    if let Deletion::Retry { at, .. } = deletion {
        schedule(publisher, &post.tenant, &post.id, &next, crate::queue::wait_until(at, now)).await;
    }
    tracing::info!(post = %post.id, account = %target.account_id, platform = %target.platform, status = next.status.as_str(), "delete attempt");
    Ok(())
}

async fn try_delete(
    publisher: &Publisher<TokenManager>,
    post: &Post,
    target: &Target,
    now: OffsetDateTime,
) -> Deletion {
    let later = |attempt: u32| now + crate::queue::backoff_drawn(attempt, u64::from_le_bytes(random_bytes()));
    let trouble = |e: &dyn std::fmt::Display| Deletion::Retry {
        at: later(target.attempts + 1),
        error: error("internal_error", e.to_string()),
    };
    let Some(platform_id) = target.platform_post_id.as_deref() else {
        return Deletion::Deleted;
    };
    let account = match publisher.accounts.get(&post.tenant, &post.user_id, &target.account_id).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return Deletion::Kept(error(
                "account_not_found",
                "the account was disconnected, so the post cannot be deleted; it stays on the platform",
            ));
        }
        Err(e) => return trouble(&e),
    };
    let tokens = match publisher.tokens.usable(&account).await {
        Ok(tokens) => tokens,
        Err(TokenError::NeedsReauth | TokenError::Revoked) => {
            return Deletion::Kept(error(
                "account_needs_reauth",
                "the account must be connected again to delete the post",
            ));
        }
        Err(TokenError::Transient(e)) => return platform_trouble(e, later(target.attempts + 1)),
        Err(TokenError::Store(e)) => return trouble(&e),
    };
    match publisher.limits.admit(account.platform, "delete", account.limit_key(), "app").await {
        Ok(()) => {}
        Err(LimitError::Denied(denied)) => {
            let until = OffsetDateTime::from_unix_timestamp(denied.retry_at).unwrap_or(now);
            // Not a try: deferred to the budget's reset.
            return Deletion::Retry {
                at: until.max(now),
                error: error("rate_limited", "over the platform's delete budget; deferred to its reset"),
            };
        }
        Err(LimitError::Store(e)) => return trouble(&e),
    }
    let result = refreshed_once(publisher, &account, &tokens, |t| {
        let account = &account;
        async move { publisher.platforms.delete_post(account, &t, platform_id).await }
    })
    .await;
    match result {
        Ok(Ok(Some(()))) => Deletion::Deleted,
        Ok(Ok(None)) => Deletion::Kept(error(
            "delete_not_supported",
            format!("{} does not let apps delete posts; it stays published", account.platform),
        )),
        // Gone already (deleted by hand, or by an earlier try whose answer was lost).
        Ok(Err(PlatformError::Refused { status: 404, .. })) => Deletion::Deleted,
        Ok(Err(PlatformError::Refused { code, message, status, .. })) => Deletion::Kept(TargetError {
            code: "platform_rejected".into(),
            message: format!("the platform refused to delete the post ({status}); it stays published"),
            platform_code: Some(code),
            platform_message: Some(message),
        }),
        Ok(Err(PlatformError::Unauthorized { .. })) | Err(TokenError::NeedsReauth | TokenError::Revoked) => {
            Deletion::Kept(error("account_needs_reauth", "the platform refused the account's token and its refresh"))
        }
        Ok(Err(e)) | Err(TokenError::Transient(e)) => platform_trouble(e, later(target.attempts + 1)),
        Err(TokenError::Store(e)) => trouble(&e),
    }
}

/// A try at deleting in the history's classes; `called`: whether it reached the platform.
fn deletion_answer(deletion: &Deletion, called: bool) -> Answer {
    let code = match deletion {
        Deletion::Deleted => return Answer::Done,
        Deletion::Retry { error, .. } | Deletion::Kept(error) => error.code.as_str(),
    };
    match code {
        _ if !called => Answer::NotSent,
        "platform_rejected" => Answer::Refused,
        "account_needs_reauth" => Answer::Unauthorized,
        "rate_limited" => Answer::Throttled,
        _ => Answer::Failed,
    }
}

/// Passing trouble deleting: tried again at `at` (or the platform's reset, when throttled).
fn platform_trouble(e: PlatformError, at: OffsetDateTime) -> Deletion {
    let at = match &e {
        PlatformError::RateLimited { retry_at: Some(t), .. } => {
            OffsetDateTime::from_unix_timestamp(*t).unwrap_or(at).max(at)
        }
        _ => at,
    };
    let code = if matches!(e, PlatformError::RateLimited { .. }) { "rate_limited" } else { "platform_unavailable" };
    Deletion::Retry { at, error: error(code, e.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    /// A deletion the platform throttles says so, in its error and in its history's answer.
    #[test]
    fn a_throttled_deletion_is_throttled_not_failed() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let throttled = platform_trouble(
            PlatformError::RateLimited { platform: Platform::X, retry_at: Some(1_800_000_600), app_wide: false },
            now,
        );
        let Deletion::Retry { at, error } = &throttled else { panic!("{throttled:?}") };
        assert_eq!((at.unix_timestamp(), error.code.as_str()), (1_800_000_600, "rate_limited"));
        assert_eq!(deletion_answer(&throttled, true), Answer::Throttled);
        let down = platform_trouble(PlatformError::Transient { platform: Platform::X, detail: "503".into() }, now);
        assert_eq!(deletion_answer(&down, true), Answer::Failed);
        assert_eq!(deletion_answer(&down, false), Answer::NotSent, "nothing reached the platform");
    }
}
