//! Connecting and disconnecting accounts: what a completed authorization stores, what the tenant's
//! disconnect removes, and what a platform's "the user removed your app" callback revokes. The
//! HTTP handlers parse and answer; these are the steps, in the order that keeps each outcome
//! recorded.

use std::sync::Arc;

use crate::domain::{AccountId, AccountStatus, TenantId, UserId};
use crate::events::Events;
use crate::platforms::{Discovered, PlatformClient};
use crate::store::journal::kinds;
use crate::store::{Account, AccountStore, Credentials, Journal, NewAccount, StoreError};

/// What connecting and disconnecting use, and nothing else: built once by [`crate::app::App`].
#[derive(Clone)]
pub struct Connections {
    pub accounts: AccountStore,
    pub platforms: Arc<PlatformClient>,
    pub events: Events,
    /// The audit trail of disconnections and revocations.
    pub journal: Journal,
}

impl Connections {
    /// Stores the accounts an authorization discovered for `user` (sealing each grant once: an
    /// account that publishes with another's grant names it), indexes each under the platform
    /// user who granted it, and tells the tenant. Returns their ids, in order.
    pub async fn connect(
        &self,
        tenant: &TenantId,
        user: &UserId,
        discovered: Vec<Discovered>,
    ) -> Result<Vec<AccountId>, StoreError> {
        let mut ids: Vec<AccountId> = Vec::with_capacity(discovered.len());
        for found in discovered {
            let new = NewAccount {
                tenant: tenant.clone(),
                user: user.clone(),
                platform: found.platform,
                platform_account_id: found.platform_account_id,
                name: found.name,
                kind: found.kind,
                scopes: found.scopes,
                access_expires_at: found.grant.access_expires_at,
                refresh_expires_at: found.grant.refresh_expires_at,
            };
            let credentials = match found.token_source.and_then(|i| ids.get(i)) {
                Some(source) => Credentials::From(source),
                None => Credentials::Own(&found.grant.tokens),
            };
            let account = self.accounts.connect(new, credentials).await?;
            if let Some(grantor) = &found.grantor {
                let family = crate::platforms::grantor_family(account.platform);
                self.accounts.index_grantor(family, grantor, &account).await?;
            }
            self.events.record(kinds::ACCOUNT_CONNECTED, &account, None).await?;
            ids.push(account.id);
        }
        Ok(ids)
    }

    /// Disconnects `account` of `user` at the tenant's request: revokes its grant at the
    /// platform (best effort), then deletes it and the accounts publishing with its grant, each
    /// audited and announced. `false` when the tenant has no such account (another tenant's id is
    /// simply not found: keys start with the caller's tenant).
    pub async fn disconnect(&self, tenant: &TenantId, user: &UserId, account: &AccountId) -> Result<bool, StoreError> {
        let Some(account) = self.accounts.get(tenant, user, account).await? else { return Ok(false) };
        if account.token_source.is_none() {
            match self.accounts.tokens(&account).await {
                Ok(tokens) => {
                    if let Err(e) = self.platforms.revoke(account.platform, &tokens).await {
                        // Best effort: the grant is deleted here whatever the platform says.
                        tracing::warn!(account = %account.id, error = %e, "revoking at the platform failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(account = %account.id, error = %e, "tokens could not be opened for revocation")
                }
            }
        }
        // Accounts publishing with this one's grant go with it.
        let dependents: Vec<Account> = self
            .accounts
            .list(tenant, user)
            .await?
            .into_iter()
            .filter(|a| a.token_source.as_ref() == Some(&account.id))
            .collect();
        for gone in dependents.iter().chain(std::iter::once(&account)) {
            self.accounts.delete(tenant, user, &gone.id).await?;
            self.journal.audit(kinds::ACCOUNT_DISCONNECTED, gone, Some("deleted by the tenant")).await?;
            self.events.record(kinds::ACCOUNT_DISCONNECTED, gone, None).await?;
        }
        Ok(true)
    }

    /// Revokes every account the platform user `grantor` (of the grantor `family`) granted, in
    /// every tenant, and with `erase` also deletes their sealed tokens (a data-deletion request),
    /// telling each tenant why (`reason`). Returns how many accounts there were.
    pub async fn revoke_granted(
        &self,
        family: &str,
        grantor: &str,
        erase: bool,
        reason: &str,
    ) -> Result<usize, StoreError> {
        let accounts = self.accounts.by_grantor(family, grantor).await?;
        revoke(&self.accounts, &self.events, &self.journal, &accounts, erase, reason).await?;
        tracing::info!(accounts = accounts.len(), erase, "platform user callback handled");
        Ok(accounts.len())
    }
}

/// Marks `accounts` revoked (with `erase`, also deletes their sealed tokens), telling each tenant
/// and the audit trail why; an account already revoked is left as it is unless erasing. The step
/// a platform's "the user removed your app" callback and a revoking webhook event share.
pub async fn revoke(
    store: &AccountStore,
    events: &Events,
    journal: &Journal,
    accounts: &[Account],
    erase: bool,
    reason: &str,
) -> Result<(), StoreError> {
    for account in accounts {
        if account.status == AccountStatus::Revoked && !erase {
            continue;
        }
        let revoked = if erase {
            store.erase_tokens(account).await?
        } else {
            store.set_status(account, AccountStatus::Revoked).await?
        };
        events.record(kinds::ACCOUNT_REVOKED, &revoked, Some(reason)).await?;
        journal.audit(kinds::ACCOUNT_REVOKED, &revoked, Some(reason)).await?;
    }
    Ok(())
}
