//! DynamoDB persistence: one table, `pk`/`sk`, items mapped to domain types in this module only.
//!
//! Key layout (see docs/data-model.md):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | tenant | `TENANT#{tenant}` | `TENANT` |
//! | API key | `APIKEY#{sha256(key)}` | `APIKEY` |
//! | account | `USER#{tenant}#{user}` | `ACCOUNT#{account}` |

pub mod accounts;
pub mod connect;
pub mod endpoints;
pub mod journal;
pub mod posts;
pub mod server_apps;
pub mod tenants;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

pub use accounts::{Account, AccountStore, Credentials, NewAccount};
pub use connect::{ConnectLink, ConnectStore, ConsumeError, OAuthState};
pub use endpoints::{Endpoint, EndpointStore};
pub use journal::{Event, Journal};
pub use posts::{CreateError, Created, PostStore};
pub use tenants::{ApiKey, Origin, Tenant, TenantStore};

use crate::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An optimistic-concurrency check failed: someone else wrote the record since it was read.
    #[error("the record changed since it was read")]
    VersionConflict,
    #[error("the record already exists")]
    AlreadyExists,
    /// Other transactions kept writing the record; the write may be tried again.
    #[error("the record was busy with other transactions")]
    Busy,
    #[error("the record does not exist")]
    NotFound,
    #[error("a DynamoDB call failed")]
    Dynamo(#[source] Box<aws_sdk_dynamodb::Error>),
    #[error("a stored record is malformed: {0}")]
    Corrupt(String),
    #[error("stored secrets could not be sealed or opened")]
    Crypto(#[from] CryptoError),
}

impl<E, R> From<aws_sdk_dynamodb::error::SdkError<E, R>> for StoreError
where
    aws_sdk_dynamodb::Error: From<aws_sdk_dynamodb::error::SdkError<E, R>>,
{
    fn from(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> Self {
        StoreError::Dynamo(Box::new(aws_sdk_dynamodb::Error::from(err)))
    }
}

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Every item of one partition of the table (`index` None, read consistently) or of an index.
pub(crate) async fn query_partition(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    index: Option<&str>,
    pk: String,
) -> Result<Vec<Item>, StoreError> {
    let key = index.map_or_else(|| "pk".to_owned(), |i| format!("{i}pk"));
    let mut pages = dynamodb
        .query()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", key)
        .expression_attribute_values(":pk", s(pk))
        // Indexes cannot be read consistently.
        .consistent_read(index.is_none())
        .into_paginator()
        .items()
        .send();
    let mut items = Vec::new();
    while let Some(item) = pages.next().await {
        items.push(item?);
    }
    Ok(items)
}

/// One item by its key, read consistently.
pub(crate) async fn get_consistent(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    sk: String,
) -> Result<Option<Item>, StoreError> {
    let out =
        dynamodb.get_item().table_name(table).key("pk", s(pk)).key("sk", s(sk)).consistent_read(true).send().await?;
    Ok(out.item)
}

/// Where a sweep of one shard of `gsi2` stopped: the `LastEvaluatedKey` of its last page, carried
/// by the job that continues it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepCursor {
    pub pk: String,
    pub sk: String,
    pub gsi2sk: String,
}

/// One page (at most `limit` items) of shard `shard` of `{prefix}#{shard}` in `gsi2`, due before
/// `before`, from `after` on; and where the next page starts, if DynamoDB says there is one.
pub(crate) async fn due_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    prefix: &str,
    shard: u8,
    before: OffsetDateTime,
    after: Option<&SweepCursor>,
    limit: i32,
) -> Result<(Vec<Item>, Option<SweepCursor>), StoreError> {
    let gsi2pk = format!("{prefix}#{shard}");
    let start = after.map(|c| {
        Item::from([
            ("pk".to_owned(), s(c.pk.clone())),
            ("sk".to_owned(), s(c.sk.clone())),
            ("gsi2pk".to_owned(), s(gsi2pk.clone())),
            ("gsi2sk".to_owned(), s(c.gsi2sk.clone())),
        ])
    });
    let out = dynamodb
        .query()
        .table_name(table)
        .index_name("gsi2")
        .key_condition_expression("gsi2pk = :pk AND gsi2sk <= :upper")
        .expression_attribute_values(":pk", s(gsi2pk))
        .expression_attribute_values(":upper", s(format!("{:012}#~", before.unix_timestamp())))
        .set_exclusive_start_key(start)
        .limit(limit)
        .send()
        .await?;
    let next = match out.last_evaluated_key() {
        None => None,
        Some(key) => {
            let r = Reader(key);
            Some(SweepCursor {
                pk: r.str("pk")?.to_owned(),
                sk: r.str("sk")?.to_owned(),
                gsi2sk: r.str("gsi2sk")?.to_owned(),
            })
        }
    };
    Ok((out.items.unwrap_or_default(), next))
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Times are stored as epoch seconds; what a write returns equals what a read will return.
pub use crate::clock::whole_seconds;

pub fn epoch(at: OffsetDateTime) -> AttributeValue {
    n(at.unix_timestamp())
}

pub(crate) fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

/// Typed reads from an item; a missing or mistyped attribute is a `Corrupt` error naming it.
pub(crate) struct Reader<'a>(pub &'a Item);

impl Reader<'_> {
    fn corrupt(name: &str) -> StoreError {
        StoreError::Corrupt(format!("attribute {name} is missing or has the wrong type"))
    }

    pub fn str(&self, name: &str) -> Result<&str, StoreError> {
        self.0.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| Self::corrupt(name))
    }

    pub fn parse<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.str(name)?.parse().map_err(|_| Self::corrupt(name))
    }

    pub fn u64(&self, name: &str) -> Result<u64, StoreError> {
        self.0.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| Self::corrupt(name))
    }

    pub fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        let secs = self.0.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
        secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()).ok_or_else(|| Self::corrupt(name))
    }

    pub fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        if self.0.contains_key(name) { self.time(name).map(Some) } else { Ok(None) }
    }

    pub fn bytes(&self, name: &str) -> Result<&[u8], StoreError> {
        self.0.get(name).and_then(|v| v.as_b().ok()).map(|b| b.as_ref()).ok_or_else(|| Self::corrupt(name))
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let list = self.0.get(name).and_then(|v| v.as_l().ok()).ok_or_else(|| Self::corrupt(name))?;
        list.iter().map(|v| v.as_s().cloned().map_err(|_| Self::corrupt(name))).collect()
    }
}

/// For a cancelled transaction, whether each of its items (in order) failed its condition;
/// `None` for any other error (a transaction cancelled for a conflict has no failed condition).
pub(crate) fn failed_conditions(err: &aws_sdk_dynamodb::Error) -> Option<Vec<bool>> {
    match err {
        aws_sdk_dynamodb::Error::TransactionCanceledException(e) => {
            Some(e.cancellation_reasons().iter().map(|r| r.code() == Some("ConditionalCheckFailed")).collect())
        }
        _ => None,
    }
}

/// Writes `items` in one transaction, with a client request token so that a repeat of a
/// transaction whose answer was lost does not apply it twice. A cancellation is a
/// `StoreError::Dynamo` (see [`failed_conditions`]).
///
/// A transaction cancelled only because another one held one of its items (reason
/// `TransactionConflict`, nothing applied) is sent again after a random pause, as single writes
/// are ([`retry_conflicts`]), each time with a new token: the cancelled one applied nothing.
/// One whose SDK retries were spent on DynamoDB's trouble, or that got no answer, is sent again
/// with the same token ([`resend_on_trouble`]): if an earlier send was applied, DynamoDB answers
/// for it without applying it again (TransactWriteItems API reference, `ClientRequestToken`).
pub(crate) async fn transact(
    dynamodb: &aws_sdk_dynamodb::Client,
    items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
) -> Result<(), StoreError> {
    let mut sent = 0;
    loop {
        sent += 1;
        let token = hex::encode(crate::domain::random_bytes::<16>());
        let send = || async {
            dynamodb
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        };
        match resend_on_trouble(send).await {
            Err(StoreError::Dynamo(e)) if sent < CONFLICT_SENDS && only_conflicted(&e) => {
                tokio::time::sleep(pause(20, sent)).await;
            }
            other => return other,
        }
    }
}

/// How often a write is sent again after the SDK's own retries were spent on DynamoDB's trouble
/// or it got no answer at all.
const TROUBLE_RESENDS: u32 = 3;

/// Sends a write (`send` builds and sends it) again, after a random pause of up to 100 ms · 2^n,
/// while it fails with DynamoDB's passing trouble after the SDK's retries ([`is_transient`])
/// or with no answer (a timeout, a dropped connection).
/// Only for writes whose repeat is recognised when an earlier send was in fact applied: a
/// transaction's client request token, a target's write id.
pub(crate) async fn resend_on_trouble<T, F, Fut>(mut send: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut resent = 0;
    loop {
        match send().await {
            Err(StoreError::Dynamo(e)) if resent < TROUBLE_RESENDS && worth_resending(&e) => {
                resent += 1;
                tracing::warn!(error = %e, resent, "a DynamoDB write failed after its retries; sending it again");
                tokio::time::sleep(pause(100, resent)).await;
            }
            other => return other,
        }
    }
}

/// DynamoDB's own passing trouble, or no answer: not a conflict (those are resent with a new
/// token), not a refusal of the request.
fn worth_resending(err: &aws_sdk_dynamodb::Error) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    !only_conflicted(err) && (is_transient(err) || err.code().is_none())
}

/// A transaction cancelled for a conflict with another, and for nothing else.
fn only_conflicted(err: &aws_sdk_dynamodb::Error) -> bool {
    match err {
        aws_sdk_dynamodb::Error::TransactionCanceledException(e) => {
            let codes: Vec<&str> = e.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
            codes.contains(&"TransactionConflict") && codes.iter().all(|c| matches!(*c, "TransactionConflict" | "None"))
        }
        _ => false,
    }
}

/// A random pause of up to `base_ms` · 2^`n` (full jitter).
fn pause(base_ms: u64, n: u32) -> std::time::Duration {
    let ceiling = base_ms << n.min(10);
    std::time::Duration::from_millis(u64::from_le_bytes(crate::domain::random_bytes()) % ceiling)
}

/// Whether a DynamoDB error is DynamoDB's own trouble, worth trying again and never the
/// caller's fault: throttling, a conflict with an ongoing transaction, an internal error.
pub fn is_transient(err: &aws_sdk_dynamodb::Error) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    only_conflicted(err)
        || matches!(
            err.code(),
            Some(
                "TransactionConflictException"
                    | "TransactionInProgressException"
                    | "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
            )
        )
}

impl StoreError {
    /// DynamoDB's own passing trouble ([`is_transient`]) or a record kept busy by transactions.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Dynamo(e) => is_transient(e),
            StoreError::Busy => true,
            _ => false,
        }
    }
}

/// How often a single-item write is sent when DynamoDB answers `TransactionConflictException`.
const CONFLICT_SENDS: u32 = 5;

/// Sends a single-item write (`send` builds and sends it) again, after a random pause of up to
/// 20 ms · 2^n, while DynamoDB answers `TransactionConflictException`: the item was in an
/// ongoing transaction, and the write was not applied (DynamoDB developer guide, "Transaction
/// conflict handling"). The SDK retries throttling and internal errors itself, not this.
pub(crate) async fn retry_conflicts<T, E, R, F, Fut>(mut send: F) -> Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>>,
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    let mut sent = 0;
    loop {
        sent += 1;
        match send().await {
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
                if sent < CONFLICT_SENDS && e.err().code() == Some("TransactionConflictException") =>
            {
                tokio::time::sleep(pause(20, sent)).await;
            }
            other => return other,
        }
    }
}

/// True when a DynamoDB error is a failed condition check (plain or inside a transaction).
pub fn is_condition_failure(err: &aws_sdk_dynamodb::Error) -> bool {
    match err {
        aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_) => true,
        aws_sdk_dynamodb::Error::TransactionCanceledException(e) => {
            e.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}
