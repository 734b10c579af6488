//! What happened to a tenant's accounts: events the tenant is told about (kept 30 days) and
//! audit records (kept).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | event | `EVENT#{tenant}` | `{unix ms, 13 digits}#{random}` |
//! | audit record | `AUDIT#{tenant}` | `{unix ms, 13 digits}#{random}` |
//! | webhook delivery seen | `SEEN#{platform}#{event key}` | `SEEN` |

use serde::Serialize;
use time::OffsetDateTime;

use super::{Item, Reader, StoreError, epoch, s};
use crate::clock::SharedClock;
use crate::domain::{Platform, TenantId, random_bytes};
use crate::schema::TTL_ATTRIBUTE;
use crate::store::Account;

const EVENT_RETENTION: time::Duration = time::Duration::days(30);
/// Platforms retry a delivery for up to 36 hours (Meta); its key is remembered for a week.
const SEEN_RETENTION: time::Duration = time::Duration::days(7);

/// Event types (stable strings, also used by outbound webhooks).
pub mod kinds {
    pub const ACCOUNT_CONNECTED: &str = "account.connected";
    pub const ACCOUNT_NEEDS_REAUTH: &str = "account.needs_reauth";
    pub const ACCOUNT_EXPIRING: &str = "account.expiring";
    pub const ACCOUNT_DISCONNECTED: &str = "account.disconnected";
    /// A verified webhook event from the platform about the account; `reason` is the
    /// platform's name for it and `data` its content.
    pub const PLATFORM_EVENT: &str = "platform.event";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: String,
    pub account_id: String,
    pub platform: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Clone)]
pub struct Journal {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    clock: SharedClock,
}

impl Journal {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>, clock: SharedClock) -> Self {
        Self { dynamodb, table: table.into(), clock }
    }

    fn item(&self, pk: String, kind: &str, account: &Account, reason: Option<&str>) -> (Item, OffsetDateTime) {
        let now = self.clock.now();
        let suffix: [u8; 4] = random_bytes();
        let sk = format!("{:013}#{}", (now.unix_timestamp_nanos() / 1_000_000), hex::encode(suffix));
        let mut item = Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("type".to_owned(), s(kind)),
            ("user_id".to_owned(), s(account.user.as_str())),
            ("account_id".to_owned(), s(account.id.as_str())),
            ("platform".to_owned(), s(account.platform.as_str())),
            ("at".to_owned(), epoch(now)),
        ]);
        if let Some(reason) = reason {
            item.insert("reason".to_owned(), s(reason));
        }
        (item, now)
    }

    /// Records an event for the tenant about one of its accounts.
    pub async fn event(&self, kind: &str, account: &Account, reason: Option<&str>) -> Result<(), StoreError> {
        self.event_with_data(kind, account, reason, None).await
    }

    /// As [`event`](Self::event), with the event's content (a platform's webhook payload).
    pub async fn event_with_data(
        &self,
        kind: &str,
        account: &Account,
        reason: Option<&str>,
        data: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let (mut item, now) = self.item(format!("EVENT#{}", account.tenant), kind, account, reason);
        item.insert(TTL_ATTRIBUTE.to_owned(), epoch(now + EVENT_RETENTION));
        if let Some(data) = data {
            item.insert("data".to_owned(), s(data.to_string()));
        }
        self.dynamodb.put_item().table_name(&self.table).set_item(Some(item)).send().await?;
        Ok(())
    }

    /// Records an action for the audit trail (no expiry).
    pub async fn audit(&self, action: &str, account: &Account, reason: Option<&str>) -> Result<(), StoreError> {
        let (item, _) = self.item(format!("AUDIT#{}", account.tenant), action, account, reason);
        self.dynamodb.put_item().table_name(&self.table).set_item(Some(item)).send().await?;
        Ok(())
    }

    /// Records that a platform's event was received; `false` if it was already (a retried or
    /// duplicated delivery).
    pub async fn first_delivery(&self, platform: Platform, key: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("SEEN#{platform}#{key}")))
            .item("sk", s("SEEN"))
            .item(TTL_ATTRIBUTE, epoch(now + SEEN_RETENTION))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", epoch(now))
            .send()
            .await
            .map_err(StoreError::from);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::Dynamo(e)) if super::is_condition_failure(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forgets a delivery whose processing failed, so the platform's retry is processed.
    pub async fn forget_delivery(&self, platform: Platform, key: &str) -> Result<(), StoreError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("SEEN#{platform}#{key}")))
            .key("sk", s("SEEN"))
            .send()
            .await?;
        Ok(())
    }

    /// The tenant's events (or audit records), oldest first.
    pub async fn list(&self, tenant: &TenantId, audit: bool) -> Result<Vec<Event>, StoreError> {
        let pk = format!("{}#{tenant}", if audit { "AUDIT" } else { "EVENT" });
        let now = self.clock.now().unix_timestamp();
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .into_paginator()
            .items()
            .send();
        let mut events = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item?;
            let r = Reader(&item);
            // Expired but not yet deleted by TTL: gone as far as readers are concerned.
            if item.contains_key(TTL_ATTRIBUTE) && r.u64(TTL_ATTRIBUTE)? as i64 <= now {
                continue;
            }
            events.push(Event {
                id: r.str("sk")?.to_owned(),
                kind: r.str("type")?.to_owned(),
                user_id: r.str("user_id")?.to_owned(),
                account_id: r.str("account_id")?.to_owned(),
                platform: r.str("platform")?.to_owned(),
                reason: item.get("reason").and_then(|v| v.as_s().ok()).cloned(),
                data: item
                    .get("data")
                    .and_then(|v| v.as_s().ok())
                    .map(|raw| serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string())))
                    .transpose()?,
                at: r.time("at")?,
            });
        }
        Ok(events)
    }
}
