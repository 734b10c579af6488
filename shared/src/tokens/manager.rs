//! The token manager: hands out usable tokens, refreshing them before they expire.
//!
//! - A token within the skew window of its expiry is refreshed before use, not after a 401.
//! - One refresher per account: in this process a per-account async lock, across processes a
//!   conditional lease on the account record; everyone else waits for and reuses the new tokens.
//! - New tokens (X rotates its refresh token on every use) are persisted before they are handed
//!   out, so a crash cannot lose the only valid refresh token after the platform rotated it.
//! - A refresh the platform refuses marks the account `needs_reauth` and records an event; a
//!   network failure or 5xx does not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::TokenReader;
use crate::clock::SharedClock;
use crate::domain::{AccountId, AccountStatus};
use crate::events::Events;
use crate::platforms::{PlatformClient, PlatformError};
use crate::store::journal::kinds;
use crate::store::{Account, AccountStore, StoreError};
use crate::tokens::TokenSet;

/// Refresh when less than this remains (default; `HERALD_REFRESH_SKEW_SECONDS` in config later).
pub const DEFAULT_SKEW: time::Duration = time::Duration::minutes(5);
/// How long a refresher holds the lease; a crashed refresher's lease lapses after this.
const LEASE: time::Duration = time::Duration::seconds(30);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub refreshed: usize,
    pub needs_reauth: usize,
    pub warned: usize,
    pub failed: usize,
}

/// What the sweep did with one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepOutcome {
    Skipped,
    Refreshed,
    NeedsReauth,
    Warned,
    Failed,
}

impl SweepReport {
    pub fn add(&mut self, outcome: SweepOutcome) {
        match outcome {
            SweepOutcome::Skipped => {}
            SweepOutcome::Refreshed => self.refreshed += 1,
            SweepOutcome::NeedsReauth => self.needs_reauth += 1,
            SweepOutcome::Warned => self.warned += 1,
            SweepOutcome::Failed => self.failed += 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant is dead (refused, revoked or expired without a way to refresh): the user must
    /// connect again.
    #[error("the account must be connected again")]
    NeedsReauth,
    #[error("the account was disconnected")]
    Revoked,
    /// The platform could not be reached; try again later. The account is unchanged.
    #[error(transparent)]
    Transient(PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether Herald can act for `account` at all.
pub(super) fn check_status(account: &Account) -> Result<(), TokenError> {
    match account.status {
        AccountStatus::Active => Ok(()),
        AccountStatus::NeedsReauth => Err(TokenError::NeedsReauth),
        AccountStatus::Revoked => Err(TokenError::Revoked),
    }
}

pub struct TokenManager {
    accounts: AccountStore,
    platforms: Arc<PlatformClient>,
    events: Events,
    clock: SharedClock,
    skew: time::Duration,
    local: Mutex<HashMap<AccountId, Arc<tokio::sync::Mutex<()>>>>,
    /// Reading without refreshing, with the same skew.
    reader: TokenReader,
}

impl TokenManager {
    pub fn new(accounts: AccountStore, platforms: Arc<PlatformClient>, events: Events, clock: SharedClock) -> Self {
        let reader = TokenReader::new(accounts.clone(), clock.clone());
        Self { accounts, platforms, events, clock, skew: DEFAULT_SKEW, local: Mutex::new(HashMap::new()), reader }
    }

    pub fn with_skew(mut self, skew: time::Duration) -> Self {
        self.skew = skew;
        self.reader = self.reader.with_skew(skew);
        self
    }

    fn due_within(&self, account: &Account, skew: time::Duration) -> bool {
        account.access_expires_at.is_some_and(|at| at <= self.clock.now() + skew)
    }

    fn expired(&self, account: &Account, now: OffsetDateTime) -> bool {
        account.access_expires_at.is_some_and(|at| at <= now)
    }

    fn local_lock(&self, id: &AccountId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.local.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.clone()).or_default().clone()
    }

    /// Tokens that are good for a platform call now, for `account` (or the account holding its
    /// grant), refreshed first if they are about to expire.
    pub async fn usable(&self, account: &Account) -> Result<TokenSet, TokenError> {
        self.usable_within(account, self.skew).await
    }

    /// Tokens that are good now without refreshing, or `None` if they are due for a refresh (for
    /// callers that may not seal, such as the `posts` function: they hand the work to `retries`).
    pub async fn fresh(&self, account: &Account) -> Result<Option<TokenSet>, TokenError> {
        self.reader.fresh(account).await
    }

    /// Tokens refreshed now, wherever the grant expires and can be refreshed (`herald verify`'s
    /// token check); a grant that does not expire is returned as it is.
    pub async fn refresh_now(&self, account: &Account) -> Result<TokenSet, TokenError> {
        self.usable_within(account, time::Duration::days(36_500)).await
    }

    /// As [`usable`](Self::usable), refreshing if less than `skew` remains.
    async fn usable_within(&self, account: &Account, skew: time::Duration) -> Result<TokenSet, TokenError> {
        let holder = self.accounts.grant_holder(account).await?;
        check_status(&holder)?;
        if !self.due_within(&holder, skew) {
            return Ok(self.accounts.tokens(&holder).await?);
        }
        // One refresher per account in this process; the others wait here, then see new tokens.
        let lock = self.local_lock(&holder.id);
        let _guard = lock.lock().await;
        self.refresh_or_wait(&holder, skew).await
    }

    /// After the platform refused `used` (the account as read before the call) with a 401:
    /// refreshes the grant once, unless someone already did since; a grant that cannot be
    /// refreshed is dead (`needs_reauth`).
    pub async fn refresh_after_refusal(&self, used: &Account) -> Result<TokenSet, TokenError> {
        let holder = self.accounts.grant_holder(used).await?;
        let lock = self.local_lock(&holder.id);
        let _guard = lock.lock().await;
        let current = self.current(&holder).await?;
        check_status(&current)?;
        if current.version != holder.version {
            // Refreshed (or reconnected) since the refused call: use what is there now.
            return Ok(self.accounts.tokens(&current).await?);
        }
        let tokens = self.accounts.tokens(&current).await?;
        if tokens.refresh_token.is_none() {
            self.mark_needs_reauth(&current, "token_refused").await?;
            return Err(TokenError::NeedsReauth);
        }
        match self.accounts.acquire_refresh_lease(&current, LEASE).await {
            Ok(leased) => self.refresh(leased).await,
            // Another process is refreshing: wait for its result like any due refresh.
            Err(StoreError::VersionConflict) => self.refresh_or_wait(&current, time::Duration::days(36_500)).await,
            Err(e) => Err(e.into()),
        }
    }

    /// The sweep's part for one grant read from the expiry index: a grant due within
    /// `refresh_horizon` that can be refreshed is refreshed; one that cannot is announced once,
    /// `warn_horizon` ahead (`account.expiring`). The index is eventually consistent, so the
    /// current record is read before acting, and only then.
    pub async fn sweep_one(
        &self,
        candidate: &Account,
        refresh_horizon: time::Duration,
    ) -> Result<SweepOutcome, TokenError> {
        let now = self.clock.now();
        // What the index says is enough to pass over a grant; acting needs the current record.
        if candidate.status != AccountStatus::Active || candidate.token_source.is_some() {
            return Ok(SweepOutcome::Skipped);
        }
        let Some(account) = self.accounts.get(&candidate.tenant, &candidate.user, &candidate.id).await? else {
            return Ok(SweepOutcome::Skipped);
        };
        if account.status != AccountStatus::Active || account.token_source.is_some() {
            return Ok(SweepOutcome::Skipped);
        }
        let refreshable = self.accounts.refreshable(&account).await?;
        if refreshable || self.expired(&account, now) {
            if !self.due_within(&account, refresh_horizon) {
                return Ok(SweepOutcome::Skipped);
            }
            return match self.usable_within(&account, refresh_horizon).await {
                Ok(_) => Ok(SweepOutcome::Refreshed),
                Err(TokenError::NeedsReauth) => Ok(SweepOutcome::NeedsReauth),
                Err(e) => {
                    tracing::warn!(account = %account.id, error = %e, "sweep could not refresh");
                    Ok(SweepOutcome::Failed)
                }
            };
        }
        if account.expiry_warned_at.is_some() {
            return Ok(SweepOutcome::Skipped);
        }
        let warned = self.accounts.mark_expiry_warned(&account).await?;
        self.events.record(kinds::ACCOUNT_EXPIRING, &warned, Some("cannot_refresh")).await?;
        Ok(SweepOutcome::Warned)
    }

    async fn current(&self, account: &Account) -> Result<Account, TokenError> {
        self.accounts.get(&account.tenant, &account.user, &account.id).await?.ok_or(TokenError::Revoked)
    }

    /// Refreshes under the cross-process lease, or waits for whoever holds it.
    async fn refresh_or_wait(&self, holder: &Account, skew: time::Duration) -> Result<TokenSet, TokenError> {
        let mut backoff = Duration::from_millis(25);
        let deadline = self.clock.now() + LEASE * 2;
        loop {
            let fresh = self.current(holder).await?;
            check_status(&fresh)?;
            if !self.due_within(&fresh, skew) {
                return Ok(self.accounts.tokens(&fresh).await?);
            }
            let now = self.clock.now();
            let leased_elsewhere = fresh.refresh_lease_until.is_some_and(|until| until > now);
            if !leased_elsewhere {
                match self.accounts.acquire_refresh_lease(&fresh, LEASE).await {
                    Ok(leased) => return self.refresh(leased).await,
                    // Someone else took it (or wrote) first: wait for their result.
                    Err(StoreError::VersionConflict) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if self.clock.now() > deadline {
                return Err(TokenError::Transient(PlatformError::Transient {
                    platform: holder.platform,
                    detail: "another refresh did not finish in time".into(),
                }));
            }
            // Waiting on another process's refresh: poll with backoff (a few DynamoDB reads).
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    async fn refresh(&self, leased: Account) -> Result<TokenSet, TokenError> {
        let tokens = self.accounts.tokens(&leased).await?;
        match self.platforms.refresh(leased.platform, &tokens).await {
            Ok(Some(grant)) => {
                let refresh_expires_at = grant.refresh_expires_at.or(leased.refresh_expires_at);
                // Persist before use: X's old refresh token is already dead.
                let mut attempt = 0;
                loop {
                    match self
                        .accounts
                        .replace_tokens(&leased, &grant.tokens, grant.access_expires_at, refresh_expires_at)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Dynamo(e)) if attempt < 3 => {
                            attempt += 1;
                            tracing::warn!(account = %leased.id, error = %e, attempt, "saving refreshed tokens failed; retrying");
                        }
                        Err(e) => {
                            tracing::error!(account = %leased.id, error = %e, "refreshed tokens could not be saved");
                            return Err(e.into());
                        }
                    }
                }
                tracing::info!(account = %leased.id, platform = %leased.platform, "tokens refreshed");
                Ok(grant.tokens)
            }
            Ok(None) => {
                // No way to refresh (e.g. LinkedIn without refresh tokens): usable until it expires.
                if self.expired(&leased, self.clock.now()) {
                    self.mark_needs_reauth(&leased, "expired").await?;
                    return Err(TokenError::NeedsReauth);
                }
                self.accounts.release_refresh_lease(&leased).await?;
                Ok(tokens)
            }
            Err(e) if e.is_dead_grant() => {
                tracing::warn!(account = %leased.id, platform = %leased.platform, error = %e, "refresh refused; account needs reauth");
                self.mark_needs_reauth(&leased, "refresh_refused").await?;
                Err(TokenError::NeedsReauth)
            }
            Err(e) => {
                tracing::warn!(account = %leased.id, platform = %leased.platform, error = %e, "refresh failed; will retry");
                self.accounts.release_refresh_lease(&leased).await?;
                Err(TokenError::Transient(e))
            }
        }
    }

    async fn mark_needs_reauth(&self, account: &Account, reason: &str) -> Result<(), TokenError> {
        let marked = self.accounts.set_status(account, AccountStatus::NeedsReauth).await?;
        self.events.record(kinds::ACCOUNT_NEEDS_REAUTH, &marked, Some(reason)).await?;
        Ok(())
    }
}
