//! Taking in a post: the tenant's request, checked whole before anything is stored — its user, its
//! targets (each one of the user's connected accounts, once), the rules every platform shares and
//! each target platform's own — and turned into the post to store with its targets' accounts
//! (handed on to the first attempts, which then need not read them again).

use std::collections::HashSet;

use serde::Deserialize;
use time::OffsetDateTime;

use super::{Media, Post, Target, validate};
use crate::domain::{AccountId, AccountStatus, PostId, TenantId, UserId};
use crate::store::{Account, AccountStore, StoreError};

/// At most this many targets in one post.
pub const MAX_TARGETS: usize = 20;

/// A post as the tenant asks for it (`POST /v1/posts`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub user_id: String,
    pub targets: Vec<TargetRequest>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub media: Vec<Media>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    pub account_id: String,
    /// Per-target options: accepted and not yet read (issue 20 gives them meaning).
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<serde_json::Value>,
}

/// Why a request was not taken: a stable code (docs/errors.md), the field it is about, a
/// sentence, and the target's account where one is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub field: String,
    pub detail: String,
    pub account: Option<AccountId>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{}: {}", .0.code, .0.detail)]
    Refused(Refused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(code: &'static str, field: &str, detail: impl Into<String>, account: Option<&AccountId>) -> IntakeError {
    IntakeError::Refused(Refused { code, field: field.to_owned(), detail: detail.into(), account: account.cloned() })
}

/// Checks `request` for `tenant` at `now` and returns the post to store (its targets pending)
/// and each target's account, in the targets' order. Nothing is stored here.
pub async fn admit(
    accounts: &AccountStore,
    egress: &crate::egress::Policy,
    now: OffsetDateTime,
    tenant: &TenantId,
    request: Request,
) -> Result<(Post, Vec<Account>), IntakeError> {
    let user =
        UserId::parse(request.user_id).map_err(|e| refused("invalid_user_id", "user_id", e.to_string(), None))?;
    if request.targets.is_empty() || request.targets.len() > MAX_TARGETS {
        return Err(refused("invalid_targets", "targets", format!("1 to {MAX_TARGETS} targets"), None));
    }
    validate::common(&request.media, request.scheduled_at, now, egress).map_err(|b| {
        refused(b.code, if b.code.starts_with("scheduled") { "scheduled_at" } else { "media" }, b.detail, None)
    })?;

    let mut seen = HashSet::new();
    let mut targets = Vec::with_capacity(request.targets.len());
    let mut found = Vec::with_capacity(request.targets.len());
    for (i, requested) in request.targets.iter().enumerate() {
        let field = format!("targets[{i}]");
        let id = AccountId::parse(requested.account_id.clone())
            .map_err(|_| refused("account_not_found", &field, "no such account for this user", None))?;
        if !seen.insert(id.clone()) {
            return Err(refused("duplicate_target", &field, "each account may be targeted once", Some(&id)));
        }
        // Keys start with the caller's tenant: another tenant's account is not found.
        let account = accounts
            .get(tenant, &user, &id)
            .await?
            .ok_or_else(|| refused("account_not_found", &field, "no such account for this user", Some(&id)))?;
        if account.status != AccountStatus::Active {
            return Err(refused("account_needs_reauth", &field, "the account must be connected again", Some(&id)));
        }
        validate::for_platform(account.platform, account.kind, &request.text, &request.media)
            .map_err(|b| refused(b.code, &field, format!("{}: {}", account.platform, b.detail), Some(&id)))?;
        targets.push(Target::pending(id, account.platform, request.scheduled_at));
        found.push(account);
    }

    let post = Post {
        id: PostId::generate(now),
        tenant: tenant.clone(),
        user_id: user,
        text: request.text,
        media: request.media,
        scheduled_at: request.scheduled_at,
        created_at: crate::store::whole_seconds(now),
        deleted_at: None,
        targets,
    };
    Ok((post, found))
}
