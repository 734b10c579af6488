//! What happened to a tenant's accounts: events the tenant is told about (kept 30 days) and
//! audit records (kept).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | event | `EVENT#{tenant}` | `{unix ms, 13 digits}#{random}` |
//! | a target's first outcome event | the target's own item (`store::posts`), in gsi1 as `EVENT#{tenant}` | the event's id |
//! | audit record | `AUDIT#{tenant}` | `{unix ms, 13 digits}#{random}` |
//! | webhook delivery seen | `SEEN#{platform}#{event key}` | `SEEN` |

use serde::Serialize;
use time::OffsetDateTime;

use super::{Item, Reader, StoreError, epoch, s};
use crate::clock::SharedClock;
use crate::domain::post::{KeptEvent, Post, Target};
use crate::domain::{AccountId, Platform, PostId, TenantId, random_bytes};
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
    /// The user removed Herald's app at the platform (Meta's deauthorize callback) or asked for
    /// their data to be deleted; `reason` says which.
    pub const ACCOUNT_REVOKED: &str = "account.revoked";
    /// A post's target reached an outcome; `data` has `post_id`, `platform_post_id`, `url`, `error`.
    pub const POST_PUBLISHED: &str = "post.published";
    pub const POST_FAILED: &str = "post.failed";
    pub const POST_UNKNOWN: &str = "post.unknown";
    /// The tenant asked for a failed or unknown target to be tried again.
    pub const POST_RETRY_REQUESTED: &str = "post.retry_requested";
    /// The tenant deleted the post before this target was published: it never will be.
    pub const POST_CANCELED: &str = "post.canceled";
    /// The tenant deleted the post, and the platform deleted this target's post.
    pub const POST_DELETED: &str = "post.deleted";
    /// The tenant deleted the post, and this target's post could not be deleted from the
    /// platform (refused, not offered, or its tries ran out): it is still published.
    pub const POST_DELETE_FAILED: &str = "post.delete_failed";
    /// The tenant changed a scheduled post's text or time before its first attempt.
    pub const POST_UPDATED: &str = "post.updated";
}

/// A platform user's data-deletion request, as its status route reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deletion {
    pub confirmation_code: String,
    pub status: &'static str,
    /// How many Herald accounts the user had granted; their tokens are deleted.
    pub accounts: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
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

/// Whom an event is about: a tenant's user's account on a platform.
pub struct Subject<'a> {
    pub tenant: &'a TenantId,
    pub user: &'a str,
    pub account: &'a str,
    pub platform: &'a str,
}

impl<'a> From<&'a Account> for Subject<'a> {
    fn from(account: &'a Account) -> Self {
        Self {
            tenant: &account.tenant,
            user: account.user.as_str(),
            account: account.id.as_str(),
            platform: account.platform.as_str(),
        }
    }
}

/// An event ready to be written (alone or in another record's transaction), or written.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub item: Item,
    pub id: String,
    pub tenant: TenantId,
    /// Where the event is kept when it is not an item of its own: the post and the account of
    /// the target whose record holds it ([`Journal::keep`]).
    pub home: Option<(PostId, AccountId)>,
}

/// The partition of a tenant's events (the table's for their own items, gsi1's for the events
/// targets keep).
pub(super) fn event_pk(tenant: &TenantId) -> String {
    format!("EVENT#{tenant}")
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

    fn item(&self, pk: String, kind: &str, subject: &Subject<'_>, reason: Option<&str>) -> (Item, OffsetDateTime) {
        let now = self.clock.now();
        let suffix: [u8; 4] = random_bytes();
        let sk = format!("{:013}#{}", (now.unix_timestamp_nanos() / 1_000_000), hex::encode(suffix));
        let mut item = Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("type".to_owned(), s(kind)),
            ("user_id".to_owned(), s(subject.user)),
            ("account_id".to_owned(), s(subject.account)),
            ("platform".to_owned(), s(subject.platform)),
            ("at".to_owned(), epoch(now)),
        ]);
        if let Some(reason) = reason {
            item.insert("reason".to_owned(), s(reason));
        }
        (item, now)
    }

    /// Writes an event for the tenant about one of its accounts, with its content where it has
    /// one (a platform's webhook payload). Only [`crate::events`] records events: it also
    /// announces them.
    pub async fn write_event(
        &self,
        kind: &str,
        account: &Account,
        reason: Option<&str>,
        data: Option<&serde_json::Value>,
    ) -> Result<PreparedEvent, StoreError> {
        self.write(self.prepare(kind, &Subject::from(account), reason, data)).await
    }

    /// The outcome event of `target` as an item, to be written in the same transaction as the
    /// outcome itself (or by [`write`](Self::write)); `None` while the target is open.
    pub fn post_event_item(
        &self,
        post: &crate::domain::post::Post,
        target: &crate::domain::post::Target,
    ) -> Option<PreparedEvent> {
        let kind = match target.status {
            crate::domain::post::TargetStatus::Published => kinds::POST_PUBLISHED,
            crate::domain::post::TargetStatus::Failed => kinds::POST_FAILED,
            crate::domain::post::TargetStatus::Unknown => kinds::POST_UNKNOWN,
            _ => return None,
        };
        Some(self.post_event(kind, post, target))
    }

    /// An event of `kind` about `target` of `post`, as an item to be written in the transaction
    /// of the change it reports; `data` has `post_id`, `status`, `platform_post_id`, `url`, `error`.
    pub fn post_event(
        &self,
        kind: &str,
        post: &crate::domain::post::Post,
        target: &crate::domain::post::Target,
    ) -> PreparedEvent {
        let subject = Subject {
            tenant: &post.tenant,
            user: post.user_id.as_str(),
            account: target.account_id.as_str(),
            platform: target.platform.as_str(),
        };
        let data = serde_json::json!({
            "post_id": post.id,
            "status": target.status,
            "platform_post_id": target.platform_post_id,
            "url": target.url,
            "error": target.error,
        });
        self.prepare(kind, &subject, target.error.as_ref().map(|e| e.code.as_str()), Some(&data))
    }

    /// Writes a prepared event on its own.
    pub async fn write(&self, event: PreparedEvent) -> Result<PreparedEvent, StoreError> {
        self.dynamodb.put_item().table_name(&self.table).set_item(Some(event.item.clone())).send().await?;
        Ok(event)
    }

    fn prepare(
        &self,
        kind: &str,
        subject: &Subject<'_>,
        reason: Option<&str>,
        data: Option<&serde_json::Value>,
    ) -> PreparedEvent {
        let (mut item, now) = self.item(format!("EVENT#{}", subject.tenant), kind, subject, reason);
        item.insert(TTL_ATTRIBUTE.to_owned(), epoch(now + EVENT_RETENTION));
        if let Some(data) = data {
            item.insert("data".to_owned(), s(data.to_string()));
        }
        let id = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        PreparedEvent { item, id, tenant: subject.tenant.clone(), home: None }
    }

    /// Keeps `event`, the outcome event of `target` of `post`, in the target's own record
    /// ([`KeptEvent`]) if the target keeps none yet: then `true`, and writing the target writes
    /// the event. Otherwise `false`: the event is an item of its own, written in the outcome's
    /// transaction.
    pub fn keep(&self, event: &mut PreparedEvent, post: &Post, target: &mut Target) -> bool {
        if target.kept_event.is_some() {
            return false;
        }
        let r = Reader(&event.item);
        let (Ok(kind), Ok(at)) = (r.str("type"), r.time("at")) else { return false };
        let text = |name: &str| event.item.get(name).and_then(|v| v.as_s().ok()).cloned();
        target.kept_event = Some(KeptEvent {
            id: event.id.clone(),
            kind: kind.to_owned(),
            user_id: post.user_id.as_str().to_owned(),
            reason: text("reason"),
            data: text("data"),
            at,
        });
        event.home = Some((post.id.clone(), target.account_id.clone()));
        true
    }

    /// Records an action for the audit trail (no expiry).
    pub async fn audit(&self, action: &str, account: &Account, reason: Option<&str>) -> Result<(), StoreError> {
        let (item, _) = self.item(format!("AUDIT#{}", account.tenant), action, &Subject::from(account), reason);
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

    /// One of the tenant's events by id; `home`: the post and account of the target that keeps
    /// it, if one does. Read consistently either way.
    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: &str,
        home: Option<(&PostId, &AccountId)>,
    ) -> Result<Option<Event>, StoreError> {
        let Some((post, account)) = home else {
            let item = super::get_consistent(&self.dynamodb, &self.table, event_pk(tenant), id.to_owned()).await?;
            return item.as_ref().map(event_of).transpose();
        };
        let (pk, sk) = super::posts::target_key(tenant, post, account);
        let item = super::get_consistent(&self.dynamodb, &self.table, pk, sk).await?;
        let event = item.as_ref().map(kept_event_of).transpose()?.flatten();
        Ok(event.filter(|e| e.id == id && !self.expired(e)))
    }

    /// Past the events' retention (kept events have no TTL of their own: their target stays).
    fn expired(&self, event: &Event) -> bool {
        event.at + EVENT_RETENTION <= self.clock.now()
    }

    /// Records a completed data-deletion request (kept, so its status can be looked up) and
    /// returns its confirmation code.
    pub async fn record_deletion(&self, accounts: usize) -> Result<Deletion, StoreError> {
        let code: [u8; 12] = random_bytes();
        let deletion = Deletion {
            confirmation_code: hex::encode(code),
            status: "complete",
            accounts: accounts as u64,
            completed_at: self.clock.now(),
        };
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("DELETION#{}", deletion.confirmation_code)))
            .item("sk", s("DELETION"))
            .item("accounts", super::n(deletion.accounts))
            .item("completed_at", epoch(deletion.completed_at))
            .send()
            .await?;
        Ok(deletion)
    }

    pub async fn deletion(&self, code: &str) -> Result<Option<Deletion>, StoreError> {
        let item =
            super::get_consistent(&self.dynamodb, &self.table, format!("DELETION#{code}"), "DELETION".into()).await?;
        item.map(|item| {
            let r = Reader(&item);
            Ok(Deletion {
                confirmation_code: code.to_owned(),
                status: "complete",
                accounts: r.u64("accounts")?,
                completed_at: r.time("completed_at")?,
            })
        })
        .transpose()
    }

    /// The tenant's events (or audit records), oldest first.
    pub async fn list(&self, tenant: &TenantId, audit: bool) -> Result<Vec<Event>, StoreError> {
        let pk = if audit { format!("AUDIT#{tenant}") } else { event_pk(tenant) };
        let now = self.clock.now().unix_timestamp();
        let mut events = Vec::new();
        for item in super::query_partition(&self.dynamodb, &self.table, None, pk.clone()).await? {
            let r = Reader(&item);
            // Expired but not yet deleted by TTL: gone as far as readers are concerned.
            if item.contains_key(TTL_ATTRIBUTE) && r.u64(TTL_ATTRIBUTE)? as i64 <= now {
                continue;
            }
            events.push(event_of(&item)?);
        }
        if !audit {
            for item in super::query_partition(&self.dynamodb, &self.table, Some("gsi1"), pk).await? {
                events.extend(kept_event_of(&item)?.filter(|e| !self.expired(e)));
            }
            // Ids begin with their time in milliseconds: both sources in one order.
            events.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(events)
    }
}

/// The event a target's item keeps, if it keeps one.
fn kept_event_of(item: &Item) -> Result<Option<Event>, StoreError> {
    let Some(raw) = item.get(super::posts::KEPT_EVENT).and_then(|v| v.as_s().ok()) else { return Ok(None) };
    let kept: KeptEvent = serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let r = Reader(item);
    Ok(Some(Event {
        id: kept.id,
        kind: kept.kind,
        user_id: kept.user_id,
        account_id: r.str("account_id")?.to_owned(),
        platform: r.str("platform")?.to_owned(),
        reason: kept.reason,
        data: kept
            .data
            .map(|raw| serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?,
        at: kept.at,
    }))
}

fn event_of(item: &Item) -> Result<Event, StoreError> {
    let r = Reader(item);
    Ok(Event {
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
    })
}
