//! Posts, their targets (one state machine per account) and idempotency keys.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | post | `POST#{tenant}#{post}` | `POST` |
//! | target | `POST#{tenant}#{post}` | `TARGET#{account}` |
//! | idempotency key | `IDEM#{tenant}#{sha256(key)}` | `IDEM` |
//!
//! A post and its targets (and its idempotency key) are written in one transaction. Every target
//! transition is a conditional update on the target's version and status. A target that has
//! reached an outcome keeps its first outcome's event (gsi1: `EVENT#{tenant}` / the event's id,
//! listed beside the journal's own event items; see `store::journal`).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Item, Reader, StoreError, epoch, is_condition_failure, n, s};
use crate::clock::SharedClock;
use crate::domain::post::{DeadLetterState, Media, Post, Target, TargetStatus};
use crate::domain::{AccountId, PostId, TenantId, UserId};
use crate::schema::TTL_ATTRIBUTE;

/// The id of the single-item write that last wrote a target (see `put_target`).
const WRITE_ID: &str = "write_id";
/// A target's kept event ([`crate::domain::post::KeptEvent`]), as JSON.
pub(super) const KEPT_EVENT: &str = "event";

/// Idempotency keys are remembered for a day.
const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

/// The result of creating a post with an idempotency key.
#[derive(Debug)]
pub enum Created {
    New(Post),
    /// The key was used before with the same request: the original post.
    Existing(PostId),
}

/// What became of a conditional write of a target (alone or with added writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The target moved on since it was read (someone else claimed or settled it).
    TargetMoved,
    /// An added write failed its condition (a budget is spent) or a transaction conflicted:
    /// nothing was written.
    Contended,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the idempotency key was used with a different request")]
    KeyReused,
    /// A write added to the transaction failed its condition (a budget is spent) or conflicted.
    #[error("the transaction was cancelled by one of its added writes")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct PostStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    clock: SharedClock,
}

fn post_pk(tenant: &TenantId, post: &PostId) -> String {
    format!("POST#{tenant}#{post}")
}

/// The key (`pk`, `sk`) of a target's item.
pub(super) fn target_key(tenant: &TenantId, post: &PostId, account: &AccountId) -> (String, String) {
    (post_pk(tenant, post), format!("TARGET#{account}"))
}

fn idem_pk(tenant: &TenantId, key: &str) -> String {
    format!("IDEM#{tenant}#{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// The due index spreads work over a few partitions; the sort key is the due time.
pub const DUE_PARTITIONS: u8 = 8;

/// `gsi2` keys of a target waiting for `at`: `DUE#{0-7}` / `{epoch, 12 digits}#{tenant}#{post}#{account}`.
pub fn due_keys(tenant: &TenantId, post: &PostId, account: &AccountId, at: OffsetDateTime) -> (String, String) {
    let shard = post.as_str().bytes().fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b)) % DUE_PARTITIONS;
    (format!("DUE#{shard}"), format!("{:012}#{tenant}#{post}#{account}", at.unix_timestamp()))
}

/// A target waiting in the due index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub tenant: TenantId,
    pub post: PostId,
    pub account: AccountId,
    pub at: OffsetDateTime,
}

impl Due {
    /// From a target's due-index item (`gsi2sk` = `{epoch}#{tenant}#{post}#{account}`).
    fn from_index(item: &Item) -> Result<Self, StoreError> {
        let sk = Reader(item).str("gsi2sk")?.to_owned();
        let mut parts = sk.splitn(4, '#');
        let (Some(at), Some(tenant), Some(post), Some(account)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StoreError::Corrupt(format!("due key {sk}")));
        };
        let at = at
            .parse::<i64>()
            .ok()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(|| StoreError::Corrupt(sk.clone()))?;
        let parse = |e: crate::domain::InvalidId| StoreError::Corrupt(e.to_string());
        Ok(Due {
            tenant: tenant.parse().map_err(parse)?,
            post: post.parse().map_err(parse)?,
            account: account.parse().map_err(parse)?,
            at,
        })
    }
}

fn json_attr<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).expect("plain data serializes"))
}

/// What a tenant's change does to the post item itself ([`PostStore::amend`]).
#[derive(Debug, Clone, Copy)]
pub enum PostChange<'a> {
    /// Nothing (the post must still not be deleted).
    None,
    /// Deleted by the tenant at this time.
    Deleted(OffsetDateTime),
    /// A scheduled post's new text and time.
    Edited { text: &'a str, scheduled_at: OffsetDateTime },
}

/// A page of a user's post ids, newest first, and whether DynamoDB has more after them.
#[derive(Debug)]
pub struct PostIds {
    pub ids: Vec<PostId>,
    pub more: bool,
}

fn put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl Target {
    /// The whole stored item: every transition is a conditional put of the target as it becomes
    /// (computed by [`Target::claimed`] and [`Target::settled`]), so what a write
    /// returns is what a read will return.
    fn to_item(&self, tenant: &TenantId, post: &PostId, created_at: OffsetDateTime) -> Item {
        let (pk, sk) = target_key(tenant, post, &self.account_id);
        let mut item = Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("account_id".to_owned(), s(self.account_id.as_str())),
            ("platform".to_owned(), s(self.platform.as_str())),
            ("status".to_owned(), s(self.status.as_str())),
            ("attempts".to_owned(), n(self.attempts)),
            ("version".to_owned(), n(self.version)),
        ]);
        let optional = [
            ("next_attempt_at", self.next_attempt_at.map(epoch)),
            ("lease_until", self.lease_until.map(epoch)),
            ("platform_post_id", self.platform_post_id.clone().map(s)),
            ("post_url", self.url.clone().map(s)),
            ("error", self.error.as_ref().map(json_attr)),
            ("dead_letter", self.dead_letter.map(|d| s(d.as_str()))),
            ("resume", self.resume.clone().map(s)),
            ("check_since", self.check_since.map(epoch)),
            (
                "history",
                (!self.history.is_empty()).then(|| AttributeValue::L(self.history.iter().map(json_attr).collect())),
            ),
        ];
        item.extend(optional.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?))));
        // The first outcome's event, listed with the tenant's events through gsi1.
        if let Some(event) = &self.kept_event {
            item.insert("gsi1pk".to_owned(), s(super::journal::event_pk(tenant)));
            item.insert("gsi1sk".to_owned(), s(event.id.clone()));
            item.insert(KEPT_EVENT.to_owned(), json_attr(event));
        }
        // Every open target is in the due index from the start (due now unless scheduled), so a
        // first attempt that dies half-way cannot lose it; a claimed one is due when its lease
        // ends, so a dead claimer's target is found and reconciled.
        let due = match self.status {
            TargetStatus::Pending | TargetStatus::Retrying | TargetStatus::Deleting => {
                Some(self.next_attempt_at.unwrap_or(created_at))
            }
            TargetStatus::Publishing => self.lease_until,
            _ => None,
        };
        if let Some(at) = due {
            let (pk, sk) = due_keys(tenant, post, &self.account_id, at);
            item.insert("gsi2pk".to_owned(), s(pk));
            item.insert("gsi2sk".to_owned(), s(sk));
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader(item);
        let error = item
            .get("error")
            .and_then(|v| v.as_s().ok())
            .map(|raw| serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?;
        let history = match item.get("history").and_then(|v| v.as_l().ok()) {
            None => Vec::new(),
            Some(entries) => entries
                .iter()
                .map(|v| {
                    let raw = v.as_s().map_err(|_| StoreError::Corrupt("history".into()))?;
                    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        let dead_letter = match item.get("dead_letter").and_then(|v| v.as_s().ok()).map(String::as_str) {
            None => None,
            Some("pending") => Some(DeadLetterState::Pending),
            Some("sent") => Some(DeadLetterState::Sent),
            Some(other) => return Err(StoreError::Corrupt(format!("dead_letter {other}"))),
        };
        Ok(Self {
            account_id: r.parse("account_id")?,
            platform: r.parse("platform")?,
            status: r.str("status")?.parse().map_err(|_| StoreError::Corrupt("status".into()))?,
            attempts: r.u64("attempts")? as u32,
            platform_post_id: item.get("platform_post_id").and_then(|v| v.as_s().ok()).cloned(),
            url: item.get("post_url").and_then(|v| v.as_s().ok()).cloned(),
            error,
            next_attempt_at: r.opt_time("next_attempt_at")?,
            history,
            dead_letter,
            lease_until: r.opt_time("lease_until")?,
            resume: item.get("resume").and_then(|v| v.as_s().ok()).cloned(),
            check_since: r.opt_time("check_since")?,
            kept_event: item
                .get(KEPT_EVENT)
                .and_then(|v| v.as_s().ok())
                .map(|raw| serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()?,
            version: r.u64("version")?,
        })
    }
}

impl PostStore {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>, clock: SharedClock) -> Self {
        Self { dynamodb, table: table.into(), clock }
    }

    /// Stores a post and its targets; with an idempotency key, at most once per key. `with`:
    /// more writes for the same transaction (the budgets of targets stored already claimed);
    /// if one of those fails its condition, nothing is written and the answer is
    /// [`CreateError::Contended`].
    pub async fn create(
        &self,
        post: Post,
        idempotency: Option<(&str, &str)>,
        with: Vec<TransactWriteItem>,
    ) -> Result<Created, CreateError> {
        let pk = post_pk(&post.tenant, &post.id);
        let mut item = Item::from([
            ("pk".to_owned(), s(pk.clone())),
            ("sk".to_owned(), s("POST")),
            ("post_id".to_owned(), s(post.id.as_str())),
            ("user_id".to_owned(), s(post.user_id.as_str())),
            ("text".to_owned(), s(post.text.clone())),
            ("media".to_owned(), json_attr(&post.media)),
            ("created_at".to_owned(), epoch(post.created_at)),
            // gsi1: a user's posts, newest first (post ids sort by creation time).
            ("gsi1pk".to_owned(), s(format!("POSTS#{}#{}", post.tenant, post.user_id))),
            ("gsi1sk".to_owned(), s(post.id.as_str())),
        ]);
        if let Some(at) = post.scheduled_at {
            item.insert("scheduled_at".to_owned(), epoch(at));
        }
        let mut writes = vec![put(&self.table, item, Some("attribute_not_exists(pk)"))?];
        for target in &post.targets {
            writes.push(put(
                &self.table,
                target.to_item(&post.tenant, &post.id, post.created_at),
                Some("attribute_not_exists(pk)"),
            )?);
        }
        let mut idem_at = None;
        if let Some((key, hash)) = idempotency {
            let idem = Item::from([
                ("pk".to_owned(), s(idem_pk(&post.tenant, key))),
                ("sk".to_owned(), s("IDEM")),
                ("post_id".to_owned(), s(post.id.as_str())),
                ("request_hash".to_owned(), s(hash)),
                (TTL_ATTRIBUTE.to_owned(), epoch(self.clock.now() + IDEMPOTENCY_TTL)),
            ]);
            idem_at = Some(writes.len());
            // A key past its 24 hours is free again, whether or not TTL has deleted it yet (TTL
            // deletion can lag by days).
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(idem))
                .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", epoch(self.clock.now()))
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let added = !with.is_empty();
        writes.extend(with);
        let err = match super::transact(&self.dynamodb, writes).await {
            Ok(()) => return Ok(Created::New(post)),
            Err(StoreError::Dynamo(e)) => e,
            Err(e) => return Err(e.into()),
        };
        let failed = super::failed_conditions(&err);
        match (idempotency, idem_at, &failed) {
            (Some((key, hash)), Some(at), Some(failed)) if failed.get(at) == Some(&true) => {
                self.existing(&post.tenant, key, hash).await
            }
            // The post's id is new, so the cancellation came from the added writes.
            (_, _, Some(_)) if added => Err(CreateError::Contended),
            _ => Err(StoreError::Dynamo(err).into()),
        }
    }

    async fn existing(&self, tenant: &TenantId, key: &str, hash: &str) -> Result<Created, CreateError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(idem_pk(tenant, key)))
            .key("sk", s("IDEM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from)?;
        let item = out.item.ok_or_else(|| StoreError::Corrupt("idempotency key vanished".into()))?;
        let r = Reader(&item);
        if r.time(TTL_ATTRIBUTE)? <= self.clock.now() {
            // Expired between the write and this read: the caller may simply try again.
            return Err(CreateError::Contended);
        }
        if r.str("request_hash")? != hash {
            return Err(CreateError::KeyReused);
        }
        Ok(Created::Existing(r.parse("post_id")?))
    }

    /// A post with all its targets.
    pub async fn get(&self, tenant: &TenantId, id: &PostId) -> Result<Option<Post>, StoreError> {
        let mut post: Option<Post> = None;
        let mut targets = Vec::new();
        for item in super::query_partition(&self.dynamodb, &self.table, None, post_pk(tenant, id)).await? {
            let r = Reader(&item);
            if r.str("sk")? == "POST" {
                let media: Vec<Media> =
                    serde_json::from_str(r.str("media")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                post = Some(Post {
                    id: id.clone(),
                    tenant: tenant.clone(),
                    user_id: r.parse("user_id")?,
                    text: r.str("text")?.to_owned(),
                    media,
                    scheduled_at: r.opt_time("scheduled_at")?,
                    created_at: r.time("created_at")?,
                    deleted_at: r.opt_time("deleted_at")?,
                    targets: Vec::new(),
                });
            } else {
                targets.push(Target::from_item(&item)?);
            }
        }
        Ok(post.map(|mut p| {
            p.targets = targets;
            p
        }))
    }

    /// A user's post ids, newest first; `after` continues from the last id of the previous page.
    pub async fn list(
        &self,
        tenant: &TenantId,
        user: &UserId,
        limit: i32,
        after: Option<&PostId>,
    ) -> Result<PostIds, StoreError> {
        // DynamoDB stops a page at 1 MB of items read (gsi1 projects whole posts, up to 64 KiB
        // each), before `limit`: keep reading from `LastEvaluatedKey` until `limit` ids or the end.
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(format!("POSTS#{tenant}#{user}")))
                .scan_index_forward(false)
                .limit(limit - ids.len() as i32)
                .set_exclusive_start_key(start.take());
            if let Some(after) = after {
                query = query
                    .key_condition_expression("gsi1pk = :pk AND gsi1sk < :after")
                    .expression_attribute_values(":after", s(after.as_str()));
            }
            let out = query.send().await?;
            for item in out.items() {
                ids.push(Reader(item).parse("post_id")?);
            }
            match out.last_evaluated_key {
                Some(key) if ids.len() < limit as usize => start = Some(key),
                more => return Ok(PostIds { ids, more: more.is_some() }),
            }
        }
    }

    /// Claims a target for one attempt: `pending`/`retrying` (and due) → `publishing`, with a
    /// lease, as read at `target.version`. Exactly one caller wins; the others get
    /// `VersionConflict`.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        post: &PostId,
        target: &Target,
        lease: time::Duration,
    ) -> Result<Target, StoreError> {
        let claimed = target.claimed(self.clock.now(), lease);
        match self.claim_with(tenant, post, target, &claimed, Vec::new()).await? {
            Written::Yes => Ok(claimed),
            Written::TargetMoved => Err(StoreError::VersionConflict),
            Written::Contended => Err(StoreError::Busy),
        }
    }

    /// Writes `claimed` ([`Target::claimed`] of `target` as read) with more writes in the same
    /// transaction (the attempt's budgets): all are written or none.
    pub async fn claim_with(
        &self,
        tenant: &TenantId,
        post: &PostId,
        target: &Target,
        claimed: &Target,
        with: Vec<TransactWriteItem>,
    ) -> Result<Written, StoreError> {
        let now = self.clock.now();
        let item = claimed.to_item(tenant, post, now);
        let condition = "version = :read AND #status IN (:pending, :retrying) AND (attribute_not_exists(next_attempt_at) OR next_attempt_at <= :now)";
        let values = [
            (":read", n(target.version)),
            (":pending", s(TargetStatus::Pending.as_str())),
            (":retrying", s(TargetStatus::Retrying.as_str())),
            (":now", epoch(now)),
        ];
        self.put_target(item, condition, &values, None, with).await
    }

    /// Records `settled` (the claimed target after its attempt, [`Target::settled`]), with
    /// `event` (the outcome's journal item) in the same transaction.
    pub async fn finish(
        &self,
        tenant: &TenantId,
        post: &PostId,
        claimed: &Target,
        settled: &Target,
        event: Option<Item>,
    ) -> Result<(), StoreError> {
        let item = settled.to_item(tenant, post, self.clock.now());
        let values = [(":read", n(claimed.version)), (":publishing", s(TargetStatus::Publishing.as_str()))];
        let condition = "version = :read AND #status = :publishing";
        // A transaction conflict (another transaction on the target at that moment, such as a
        // duplicate job's claim) is not a refusal, nor is DynamoDB's trouble that outlasted the
        // SDK's retries: the outcome must still be written, or the sweep would later call the
        // target `unknown`. `put_target` resends it (`store::transact`, `store::retry_conflicts`,
        // `store::resend_on_trouble`); past that, the caller's job is retried.
        match self.put_target(item, condition, &values, event, Vec::new()).await? {
            Written::Yes => Ok(()),
            Written::TargetMoved => Err(StoreError::VersionConflict),
            Written::Contended => Err(StoreError::Busy),
        }
    }

    /// A conditional put of one target, alone or in a transaction with `event` and `with`.
    async fn put_target(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
        event: Option<Item>,
        with: Vec<TransactWriteItem>,
    ) -> Result<Written, StoreError> {
        let names = std::collections::HashMap::from([("#status".to_owned(), "status".to_owned())]);
        let values: Item = values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        if event.is_none() && with.is_empty() {
            // This write's own id: when its answer is lost and the SDK sends it again, the second
            // send fails its condition against the first; the item it then returns is this one.
            let write_id = hex::encode(crate::domain::random_bytes::<12>());
            let mut item = item;
            item.insert(WRITE_ID.to_owned(), s(write_id.clone()));
            let put = self
                .dynamodb
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            // Sent again after trouble with the same write id, so the repeat recognises its own.
            let result = super::resend_on_trouble(|| async {
                super::retry_conflicts(|| put.clone().send()).await.map_err(StoreError::from)
            })
            .await;
            return match result {
                Ok(_) => Ok(Written::Yes),
                Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => {
                    let stored = match e.as_ref() {
                        aws_sdk_dynamodb::Error::ConditionalCheckFailedException(failed) => {
                            failed.item().and_then(|old| old.get(WRITE_ID)).and_then(|v| v.as_s().ok())
                        }
                        _ => None,
                    };
                    if stored == Some(&write_id) {
                        tracing::info!("a target write whose answer was lost is this write: written");
                        Ok(Written::Yes)
                    } else {
                        Ok(Written::TargetMoved)
                    }
                }
                Err(e) => Err(e),
            };
        }
        let target = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut writes = vec![TransactWriteItem::builder().put(target).build()];
        if let Some(event) = event {
            writes.push(put(&self.table, event, None)?);
        }
        writes.extend(with);
        match super::transact(&self.dynamodb, writes).await {
            Ok(()) => Ok(Written::Yes),
            Err(StoreError::Dynamo(e)) => match super::failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => Ok(Written::TargetMoved),
                Some(_) => Ok(Written::Contended),
                None => Err(StoreError::Dynamo(e)),
            },
            Err(e) => Err(e),
        }
    }

    /// A tenant's change to a post as read (`post`): each of `changes` (a target as read, and as
    /// it becomes), the post's own `change`, and `events`, in one transaction. Every target is
    /// written on its version as read, and nothing is written to a deleted post; if anything
    /// moved since it was read, nothing is written and the answer is [`Written::TargetMoved`].
    pub async fn amend(
        &self,
        post: &Post,
        changes: &[(Target, Target)],
        change: PostChange<'_>,
        events: Vec<Item>,
    ) -> Result<Written, StoreError> {
        let key = Item::from([("pk".to_owned(), s(post_pk(&post.tenant, &post.id))), ("sk".to_owned(), s("POST"))]);
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Corrupt(e.to_string());
        let first = match change {
            PostChange::None => {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
            PostChange::Deleted(at) => {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .update_expression("SET deleted_at = :at")
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
                    .expression_attribute_values(":at", epoch(at))
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().update(update).build()
            }
            PostChange::Edited { text, scheduled_at } => {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .update_expression("SET #text = :text, scheduled_at = :at")
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
                    .expression_attribute_names("#text", "text")
                    .expression_attribute_values(":text", s(text))
                    .expression_attribute_values(":at", epoch(scheduled_at))
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().update(update).build()
            }
        };
        let mut writes = vec![first];
        for (read, next) in changes {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(next.to_item(&post.tenant, &post.id, post.created_at)))
                .condition_expression("version = :read")
                .expression_attribute_values(":read", n(read.version))
                .build()
                .map_err(build)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        for event in events {
            writes.push(put(&self.table, event, None)?);
        }
        match super::transact(&self.dynamodb, writes).await {
            Ok(()) => Ok(Written::Yes),
            Err(StoreError::Dynamo(e)) if super::failed_conditions(&e).is_some_and(|f| f.contains(&true)) => {
                Ok(Written::TargetMoved)
            }
            Err(e) => Err(e),
        }
    }

    /// Records one try at deleting a `deleting` target (`next`, [`Target::after_deletion`] of
    /// `read`) with its event, if it has one.
    pub async fn deletion_tried(
        &self,
        tenant: &TenantId,
        post: &PostId,
        read: &Target,
        next: &Target,
        event: Option<Item>,
    ) -> Result<Written, StoreError> {
        let item = next.to_item(tenant, post, self.clock.now());
        let values = [(":read", n(read.version)), (":deleting", s(TargetStatus::Deleting.as_str()))];
        self.put_target(item, "version = :read AND #status = :deleting", &values, event, Vec::new()).await
    }

    /// Records that an exhausted target's dead letter reached the dead-letter queue.
    pub async fn dead_letter_sent(
        &self,
        tenant: &TenantId,
        post: &PostId,
        target: &Target,
    ) -> Result<Target, StoreError> {
        let update = self
            .update_target(tenant, post, &target.account_id)
            .update_expression("SET dead_letter = :sent, version = version + :one")
            .condition_expression("version = :read AND dead_letter = :pending")
            .expression_attribute_values(":sent", s(DeadLetterState::Sent.as_str()))
            .expression_attribute_values(":pending", s(DeadLetterState::Pending.as_str()))
            .expression_attribute_values(":read", n(target.version))
            .expression_attribute_values(":one", n(1));
        send_target_update(update).await
    }

    /// Reopens a target whose attempts ran out (an operator's redrive): `retrying`, due now, with
    /// a fresh count of attempts; its history stays. A target that is not dead-lettered (already
    /// redriven, or settled otherwise) is left alone and reported as a conflict.
    pub async fn redrive(&self, tenant: &TenantId, post: &PostId, account: &AccountId) -> Result<Target, StoreError> {
        let now = self.clock.now();
        let (due_pk, due_sk) = due_keys(tenant, post, account, now);
        let update = self
            .update_target(tenant, post, account)
            .update_expression("SET #status = :retrying, attempts = :zero, next_attempt_at = :now, gsi2pk = :due_pk, gsi2sk = :due_sk, version = version + :one REMOVE dead_letter")
            .condition_expression("#status = :failed AND attribute_exists(dead_letter)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":retrying", s(TargetStatus::Retrying.as_str()))
            .expression_attribute_values(":failed", s(TargetStatus::Failed.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", epoch(now))
            .expression_attribute_values(":due_pk", s(due_pk))
            .expression_attribute_values(":due_sk", s(due_sk))
            .expression_attribute_values(":one", n(1));
        send_target_update(update).await
    }

    /// The current state of one target.
    pub async fn target(
        &self,
        tenant: &TenantId,
        post: &PostId,
        account: &AccountId,
    ) -> Result<Option<Target>, StoreError> {
        let (pk, sk) = target_key(tenant, post, account);
        let item = super::get_consistent(&self.dynamodb, &self.table, pk, sk).await?;
        item.as_ref().map(Target::from_item).transpose()
    }

    /// One page of shard `shard` of the targets waiting (pending or retrying) whose time is
    /// before `before`, from the eventually consistent due index, and where the next starts.
    pub async fn due_page(
        &self,
        shard: u8,
        before: OffsetDateTime,
        after: Option<&super::SweepCursor>,
        limit: i32,
    ) -> Result<(Vec<Due>, Option<super::SweepCursor>), StoreError> {
        let (items, next) = super::due_page(&self.dynamodb, &self.table, "DUE", shard, before, after, limit).await?;
        let due = items.iter().map(Due::from_index).collect::<Result<_, _>>()?;
        Ok((due, next))
    }

    /// A conditional update of one target that answers with the target as written.
    fn update_target(&self, tenant: &TenantId, post: &PostId, account: &AccountId) -> UpdateItemFluentBuilder {
        let (pk, sk) = target_key(tenant, post, account);
        self.dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .return_values(ReturnValue::AllNew)
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

/// Sends a target update built by [`PostStore::update_target`]; a failed condition means the
/// target moved on since it was read.
async fn send_target_update(update: UpdateItemFluentBuilder) -> Result<Target, StoreError> {
    match super::retry_conflicts(|| update.clone().send()).await.map_err(StoreError::from) {
        Ok(out) => Target::from_item(&out.attributes.unwrap_or_default()),
        Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::VersionConflict),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;
    use crate::domain::post::TargetError;
    use crate::domain::post::{Outcome, Report};

    fn pending() -> Target {
        Target::pending("acc_AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(), Platform::X, None)
    }

    fn error(code: &str) -> TargetError {
        TargetError { code: code.into(), message: "m".into(), platform_code: Some("p".into()), platform_message: None }
    }

    /// Every transition is a put of the computed target: reading it back must give it exactly.
    #[test]
    fn every_transition_reads_back_as_written() {
        let (tenant, post): (TenantId, PostId) =
            ("tnt_AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(), "pst_01a22901d02341b80d8991".parse().unwrap());
        let now = OffsetDateTime::from_unix_timestamp(1_795_953_600).unwrap() + time::Duration::milliseconds(250);
        let later = now + time::Duration::seconds(30);
        let outcomes = [
            Outcome::Published { platform_post_id: "1".into(), url: Some("https://x.com/i/1".into()), found: false },
            Outcome::Failed(error("platform_rejected")),
            Outcome::Unknown(error("outcome_unknown")),
            Outcome::Exhausted(error("attempts_exhausted")),
            Outcome::Retry { at: later, error: Some(error("platform_unavailable")), counted: true },
            Outcome::Retry { at: later, error: None, counted: false },
        ];
        for outcome in &outcomes {
            let claimed = pending().claimed(now, time::Duration::minutes(2));
            let mut settled = claimed.settled(outcome, Report::default(), now);
            let again = settled.claimed(later, time::Duration::minutes(2)).settled(outcome, Report::default(), later);
            // A settled target keeps its event; later transitions carry it along.
            if settled.status.is_terminal() {
                settled.kept_event = Some(crate::domain::post::KeptEvent {
                    id: "1795953600250#0a1b2c3d".into(),
                    kind: "post.published".into(),
                    user_id: "user-1".into(),
                    reason: None,
                    data: Some(r#"{"post_id":"pst_01a22901d02341b80d8991"}"#.into()),
                    at: OffsetDateTime::from_unix_timestamp(1_795_953_600).unwrap(),
                });
            }
            let reopened = settled.reopened(later, None);
            for target in [&claimed, &settled, &again, &reopened] {
                let item = target.to_item(&tenant, &post, now);
                assert_eq!(&Target::from_item(&item).unwrap(), target, "{outcome:?}");
                // Open and claimed targets are in the due index; settled ones are not.
                let indexed = item.contains_key("gsi2sk");
                assert_eq!(indexed, !target.status.is_terminal(), "{:?}", target.status);
                // A kept event is listed through gsi1 under the tenant's events.
                assert_eq!(
                    item.get("gsi1pk").and_then(|v| v.as_s().ok()).map(String::as_str),
                    target.kept_event.as_ref().map(|_| "EVENT#tnt_AAAAAAAAAAAAAAAAAAAAAA"),
                );
            }
            assert_eq!(reopened.kept_event, settled.kept_event);
            assert_eq!(claimed.attempts, 1);
            assert_eq!(claimed.version, 2);
            assert_eq!(settled.version, 3);
            let counted = !matches!(outcome, Outcome::Retry { counted: false, .. });
            assert_eq!(settled.history.len(), usize::from(counted));
            assert_eq!(settled.attempts, u32::from(counted));
        }
    }
}
