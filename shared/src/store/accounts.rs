//! Connected accounts and their sealed tokens, with optimistic versioning.
//!
//! Every write that changes an existing account names the version it read; DynamoDB refuses it
//! if another writer got there first ([`StoreError::VersionConflict`]). Tokens are sealed as one
//! blob per account, bound to tenant, platform and account (see [`crate::crypto`]).

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::Serialize;
use time::OffsetDateTime;

use super::{Item, Reader, StoreError, epoch, is_condition_failure, n, s, string_list, whole_seconds};
use crate::clock::SharedClock;
use crate::crypto::{EncryptionContext, Sealer};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountId, AccountKind, AccountStatus, Platform, TenantId, UserId};

/// A connected account as Herald knows it. Carries its tokens only in sealed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub tenant: TenantId,
    pub user: UserId,
    pub id: AccountId,
    pub platform: Platform,
    pub platform_account_id: String,
    pub name: String,
    pub kind: AccountKind,
    pub status: AccountStatus,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub access_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub refresh_expires_at: Option<OffsetDateTime>,
    /// Incremented by every write; the optimistic-concurrency token.
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Publishes with another account's grant (a LinkedIn organization uses its member's), so
    /// there is one copy of each grant to refresh.
    pub token_source: Option<AccountId>,
    /// Set while one process refreshes the grant; others wait for the new tokens.
    #[serde(skip)]
    pub refresh_lease_until: Option<OffsetDateTime>,
    /// When the tenant was told this grant will expire and cannot be refreshed (once per grant).
    #[serde(skip)]
    pub expiry_warned_at: Option<OffsetDateTime>,
    #[serde(skip)]
    sealed_tokens: SealedTokens,
}

/// Ciphertext, absent on accounts that use another account's grant; `Debug` shows the length.
/// Beside it, in the clear, whether the grant carries a refresh token: the sweep decides what
/// to do with a grant from that, without a KMS call for each grant it passes over. `None` on
/// records written before the attribute existed (their tokens are opened to find out).
#[derive(Clone, PartialEq, Eq, Default)]
struct SealedTokens {
    blob: Option<Vec<u8>>,
    refreshable: Option<bool>,
}

impl std::fmt::Debug for SealedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedTokens({} bytes)", self.blob.as_ref().map_or(0, Vec::len))
    }
}

/// Where a connected account's grant lives.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    Own(&'a TokenSet),
    /// Another account of the same user holds the grant.
    From(&'a AccountId),
}

/// The expiry index is spread over a few partitions so no single key takes every write.
pub const EXPIRY_PARTITIONS: u8 = 8;

fn expiry_partition(id: &AccountId) -> String {
    let shard = id.as_str().bytes().fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b)) % EXPIRY_PARTITIONS;
    format!("EXPIRES#{shard}")
}

/// What a successful connection yields, before it is stored.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub tenant: TenantId,
    pub user: UserId,
    pub platform: Platform,
    pub platform_account_id: String,
    pub name: String,
    pub kind: AccountKind,
    pub scopes: Vec<String>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
}

impl Account {
    /// Whose limits this account's calls count against: the holder of the grant they are made
    /// with. Platforms limit per token, and LinkedIn's member limit is "the total number of calls
    /// that a single member per application can make in a day", the member being the one "whose
    /// token is used" (learn.microsoft.com/linkedin/shared/api-guide/concepts/rate-limits): an
    /// organization's posts, made with its admin's token, count against that member's 150 a day.
    pub fn limit_key(&self) -> &str {
        self.token_source.as_ref().unwrap_or(&self.id).as_str()
    }

    pub fn encryption_context(&self) -> EncryptionContext {
        EncryptionContext::new(&self.tenant, self.platform, &self.id)
    }

    fn key(tenant: &TenantId, user: &UserId, id: &AccountId) -> [(&'static str, AttributeValue); 2] {
        [("pk", s(format!("USER#{tenant}#{user}"))), ("sk", s(format!("ACCOUNT#{id}")))]
    }

    fn to_item(&self) -> Item {
        let mut item: Item =
            Self::key(&self.tenant, &self.user, &self.id).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut put = |k: &str, v: AttributeValue| {
            item.insert(k.to_owned(), v);
        };
        // gsi1 finds Herald's accounts from a platform's id, e.g. to route webhooks.
        put("gsi1pk", s(format!("PLATFORM#{}#{}", self.platform, self.platform_account_id)));
        put("gsi1sk", s(format!("ACCOUNT#{}#{}", self.tenant, self.id)));
        put("tenant_id", s(self.tenant.as_str()));
        put("user_id", s(self.user.as_str()));
        put("account_id", s(self.id.as_str()));
        put("platform", s(self.platform.as_str()));
        put("platform_account_id", s(&self.platform_account_id));
        put("name", s(&self.name));
        put("kind", s(self.kind.as_str()));
        put("status", s(self.status.as_str()));
        put("scopes", string_list(&self.scopes));
        if let Some(sealed) = &self.sealed_tokens.blob {
            put("tokens", AttributeValue::B(Blob::new(sealed.clone())));
            if let Some(refreshable) = self.sealed_tokens.refreshable {
                put("refreshable", AttributeValue::Bool(refreshable));
            }
        }
        if let Some(source) = &self.token_source {
            put("token_source", s(source.as_str()));
        }
        if let Some(at) = self.expiry_warned_at {
            put("expiry_warned_at", epoch(at));
        }
        // gsi2 lists active grants by expiry, for the refresh sweep.
        if let (None, AccountStatus::Active, Some(expires)) = (&self.token_source, self.status, self.access_expires_at)
        {
            put("gsi2pk", s(expiry_partition(&self.id)));
            put("gsi2sk", s(format!("{:012}#{}", expires.unix_timestamp(), self.id)));
        }
        put("version", n(self.version));
        put("created_at", epoch(self.created_at));
        put("updated_at", epoch(self.updated_at));
        if let Some(at) = self.access_expires_at {
            put("access_expires_at", epoch(at));
        }
        if let Some(at) = self.refresh_expires_at {
            put("refresh_expires_at", epoch(at));
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader(item);
        Ok(Self {
            tenant: r.parse("tenant_id")?,
            user: r.parse("user_id")?,
            id: r.parse("account_id")?,
            platform: r.parse("platform")?,
            platform_account_id: r.str("platform_account_id")?.to_owned(),
            name: r.str("name")?.to_owned(),
            kind: r.parse("kind")?,
            status: r.parse("status")?,
            scopes: r.strings("scopes")?,
            access_expires_at: r.opt_time("access_expires_at")?,
            refresh_expires_at: r.opt_time("refresh_expires_at")?,
            version: r.u64("version")?,
            created_at: r.time("created_at")?,
            updated_at: r.time("updated_at")?,
            token_source: item.get("token_source").map(|_| r.parse("token_source")).transpose()?,
            refresh_lease_until: r.opt_time("refresh_lease_until")?,
            expiry_warned_at: r.opt_time("expiry_warned_at")?,
            sealed_tokens: SealedTokens {
                blob: item.get("tokens").map(|_| r.bytes("tokens").map(<[u8]>::to_vec)).transpose()?,
                refreshable: item.get("refreshable").and_then(|v| v.as_bool().ok()).copied(),
            },
        })
    }
}

#[derive(Clone)]
pub struct AccountStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    sealer: Arc<Sealer>,
    clock: SharedClock,
}

impl AccountStore {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        sealer: Arc<Sealer>,
        clock: SharedClock,
    ) -> Self {
        Self { dynamodb, table: table.into(), sealer, clock }
    }

    /// Stores a newly connected account at version 1.
    pub async fn insert(&self, new: NewAccount, tokens: &TokenSet) -> Result<Account, StoreError> {
        self.insert_with(new, Credentials::Own(tokens)).await
    }

    /// Stores a connection: a new account, or, when the user had connected this platform account
    /// before, the same account with the new grant, active again.
    pub async fn connect(&self, new: NewAccount, credentials: Credentials<'_>) -> Result<Account, StoreError> {
        let existing = self
            .list(&new.tenant, &new.user)
            .await?
            .into_iter()
            .find(|a| a.platform == new.platform && a.platform_account_id == new.platform_account_id);
        let Some(existing) = existing else {
            return self.insert_with(new, credentials).await;
        };
        let mut next = existing.clone();
        next.name = new.name;
        next.kind = new.kind;
        next.scopes = new.scopes;
        next.status = AccountStatus::Active;
        next.access_expires_at = new.access_expires_at.map(whole_seconds);
        next.refresh_expires_at = new.refresh_expires_at.map(whole_seconds);
        self.set_credentials(&mut next, credentials).await?;
        self.write_next(&existing, next).await
    }

    async fn set_credentials(&self, account: &mut Account, credentials: Credentials<'_>) -> Result<(), StoreError> {
        match credentials {
            Credentials::Own(tokens) => {
                account.token_source = None;
                account.sealed_tokens = self.seal(account, tokens).await?;
            }
            Credentials::From(source) => {
                account.token_source = Some(source.clone());
                account.sealed_tokens = SealedTokens::default();
            }
        }
        Ok(())
    }

    async fn insert_with(&self, new: NewAccount, credentials: Credentials<'_>) -> Result<Account, StoreError> {
        let now = whole_seconds(self.clock.now());
        let mut account = Account {
            tenant: new.tenant,
            user: new.user,
            id: AccountId::generate(),
            platform: new.platform,
            platform_account_id: new.platform_account_id,
            name: new.name,
            kind: new.kind,
            status: AccountStatus::Active,
            scopes: new.scopes,
            access_expires_at: new.access_expires_at.map(whole_seconds),
            refresh_expires_at: new.refresh_expires_at.map(whole_seconds),
            version: 1,
            created_at: now,
            updated_at: now,
            token_source: None,
            refresh_lease_until: None,
            expiry_warned_at: None,
            sealed_tokens: SealedTokens::default(),
        };
        self.set_credentials(&mut account, credentials).await?;
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(account.to_item()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok(account),
            Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, tenant: &TenantId, user: &UserId, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let [(pk, pkv), (sk, skv)] = Account::key(tenant, user, id);
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .consistent_read(true)
            .send()
            .await?;
        out.item.as_ref().map(Account::from_item).transpose()
    }

    /// A user's accounts, oldest first.
    pub async fn list(&self, tenant: &TenantId, user: &UserId) -> Result<Vec<Account>, StoreError> {
        let mut accounts = Vec::new();
        // Consistent: a reconnect looks its account up here, and an eventually consistent read
        // could miss one connected a moment ago and create a second (AWS audit F15).
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(format!("USER#{tenant}#{user}")))
            .expression_attribute_values(":prefix", s("ACCOUNT#"))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            accounts.push(Account::from_item(&item?)?);
        }
        accounts.sort_by_key(|a| a.created_at);
        Ok(accounts)
    }

    /// Every Herald account (in any tenant) for a platform's account id, from `gsi1`.
    pub async fn by_platform_account(
        &self,
        platform: Platform,
        platform_account_id: &str,
    ) -> Result<Vec<Account>, StoreError> {
        let pk = format!("PLATFORM#{platform}#{platform_account_id}");
        let items = super::query_partition(&self.dynamodb, &self.table, Some("gsi1"), pk).await?;
        items.iter().map(Account::from_item).collect()
    }

    /// The account that holds this account's grant: itself, or its token source.
    pub async fn grant_holder(&self, account: &Account) -> Result<Account, StoreError> {
        match &account.token_source {
            None => Ok(account.clone()),
            Some(source) => self.get(&account.tenant, &account.user, source).await?.ok_or(StoreError::NotFound),
        }
    }

    /// Opens the account's tokens (its grant holder's). Fails if the sealed blob does not belong
    /// to that account.
    pub async fn tokens(&self, account: &Account) -> Result<TokenSet, StoreError> {
        let holder = self.grant_holder(account).await?;
        let sealed = holder.sealed_tokens.blob.as_deref().ok_or(StoreError::NotFound)?;
        let plain = self.sealer.open(&holder.encryption_context(), sealed).await?;
        TokenSet::from_plaintext(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Whether the account's grant carries a refresh token: from the record, without opening the
    /// tokens, except on a record written before the record said so.
    pub async fn refreshable(&self, account: &Account) -> Result<bool, StoreError> {
        let holder = self.grant_holder(account).await?;
        match holder.sealed_tokens.refreshable {
            Some(refreshable) => Ok(refreshable),
            None => Ok(self.tokens(&holder).await?.refresh_token.is_some()),
        }
    }

    async fn seal(&self, account: &Account, tokens: &TokenSet) -> Result<SealedTokens, StoreError> {
        let blob = self.sealer.seal(&account.encryption_context(), &tokens.to_plaintext()).await?;
        Ok(SealedTokens { blob: Some(blob), refreshable: Some(tokens.refresh_token.is_some()) })
    }

    /// Replaces the tokens of the account as read at `account.version`; fails with
    /// [`StoreError::VersionConflict`] if anyone wrote it since. Returns the new record.
    pub async fn replace_tokens(
        &self,
        account: &Account,
        tokens: &TokenSet,
        access_expires_at: Option<OffsetDateTime>,
        refresh_expires_at: Option<OffsetDateTime>,
    ) -> Result<Account, StoreError> {
        let mut next = account.clone();
        next.sealed_tokens = self.seal(account, tokens).await?;
        next.expiry_warned_at = None;
        next.access_expires_at = access_expires_at.map(whole_seconds);
        next.refresh_expires_at = refresh_expires_at.map(whole_seconds);
        self.write_next(account, next).await
    }

    /// Sets the account's status (e.g. `needs_reauth` after a refused refresh), version-checked.
    /// Revokes the account and deletes its sealed tokens (a platform's data-deletion request);
    /// the record stays, so the tenant sees what happened.
    pub async fn erase_tokens(&self, account: &Account) -> Result<Account, StoreError> {
        let mut next = account.clone();
        next.status = AccountStatus::Revoked;
        next.sealed_tokens = SealedTokens::default();
        self.write_next(account, next).await
    }

    /// Remembers that the platform user `grantor` granted `account` (`family`: `meta` for
    /// Facebook and Instagram, whose callbacks name the Facebook user, not the Page).
    pub async fn index_grantor(&self, family: &str, grantor: &str, account: &Account) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("GRANTOR#{family}#{grantor}")))
            .item("sk", s(format!("ACCOUNT#{}#{}#{}", account.tenant, account.user, account.id)))
            .item("tenant_id", s(account.tenant.as_str()))
            .item("user_id", s(account.user.as_str()))
            .item("account_id", s(account.id.as_str()))
            .send()
            .await?;
        Ok(())
    }

    /// The accounts (in any tenant) that `grantor` granted and that still exist.
    pub async fn by_grantor(&self, family: &str, grantor: &str) -> Result<Vec<Account>, StoreError> {
        let pk = format!("GRANTOR#{family}#{grantor}");
        let mut accounts = Vec::new();
        for item in super::query_partition(&self.dynamodb, &self.table, None, pk).await? {
            let r = Reader(&item);
            if let Some(account) =
                self.get(&r.parse("tenant_id")?, &r.parse("user_id")?, &r.parse("account_id")?).await?
            {
                accounts.push(account);
            }
        }
        Ok(accounts)
    }

    pub async fn set_status(&self, account: &Account, status: AccountStatus) -> Result<Account, StoreError> {
        let mut next = account.clone();
        next.status = status;
        self.write_next(account, next).await
    }

    /// One page of shard `shard` of the active accounts holding a grant that expires before
    /// `before` (from the eventually consistent expiry index: re-read before acting), and where
    /// the next starts.
    pub async fn expiring_page(
        &self,
        shard: u8,
        before: OffsetDateTime,
        after: Option<&super::SweepCursor>,
        limit: i32,
    ) -> Result<(Vec<Account>, Option<super::SweepCursor>), StoreError> {
        let (items, next) =
            super::due_page(&self.dynamodb, &self.table, "EXPIRES", shard, before, after, limit).await?;
        Ok((items.iter().map(Account::from_item).collect::<Result<_, _>>()?, next))
    }

    /// Records that the tenant was warned this grant will expire.
    pub async fn mark_expiry_warned(&self, account: &Account) -> Result<Account, StoreError> {
        let mut next = account.clone();
        next.expiry_warned_at = Some(whole_seconds(self.clock.now()));
        self.write_next(account, next).await
    }

    /// Takes the refresh lease on the account as read: succeeds only if nobody wrote it since and
    /// no other lease is live. The returned record carries the lease (and the next version);
    /// writing new tokens with it releases the lease.
    pub async fn acquire_refresh_lease(&self, read: &Account, hold: time::Duration) -> Result<Account, StoreError> {
        let now = self.clock.now();
        let [(pk, pkv), (sk, skv)] = Account::key(&read.tenant, &read.user, &read.id);
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .update_expression("SET refresh_lease_until = :until, version = version + :one")
            .condition_expression(
                "version = :read AND (attribute_not_exists(refresh_lease_until) OR refresh_lease_until < :now)",
            )
            .expression_attribute_values(":until", epoch(now + hold))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":read", n(read.version))
            .expression_attribute_values(":now", epoch(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(out) => Account::from_item(&out.attributes.unwrap_or_default()),
            Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::VersionConflict),
            Err(e) => Err(e),
        }
    }

    /// Gives a lease back without new tokens (the refresh failed for a passing reason).
    pub async fn release_refresh_lease(&self, leased: &Account) -> Result<Account, StoreError> {
        let mut next = leased.clone();
        next.refresh_lease_until = None;
        self.write_next(leased, next).await
    }

    /// Writes `next` as version `read.version + 1`, only if the stored version is still `read.version`.
    async fn write_next(&self, read: &Account, mut next: Account) -> Result<Account, StoreError> {
        next.version = read.version + 1;
        // Any write of the whole record ends a refresh lease.
        next.refresh_lease_until = None;
        next.updated_at = whole_seconds(self.clock.now());
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(next.to_item()))
            .condition_expression("version = :read")
            .expression_attribute_values(":read", n(read.version))
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok(next),
            Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::VersionConflict),
            Err(e) => Err(e),
        }
    }

    /// Deletes the account and its sealed tokens. Returns the deleted record, if there was one.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &AccountId,
    ) -> Result<Option<Account>, StoreError> {
        let [(pk, pkv), (sk, skv)] = Account::key(tenant, user, id);
        let out = self
            .dynamodb
            .delete_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .return_values(ReturnValue::AllOld)
            .send()
            .await?;
        out.attributes.as_ref().map(Account::from_item).transpose()
    }
}
