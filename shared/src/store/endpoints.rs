//! A tenant's webhook endpoint: where Herald delivers its events, and the secrets it signs them
//! with (sealed like tokens, with a context of their own).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | endpoint | `ENDPOINT#{tenant}` | `ENDPOINT` |

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;

use super::{Item, Reader, StoreError, epoch, is_condition_failure, n, s};
use crate::clock::SharedClock;
use crate::crypto::{EncryptionContext, Sealer};
use crate::domain::TenantId;

/// After a rotation the previous secret still signs for this long, so the tenant can deploy
/// the new one.
pub const ROTATION_GRACE: time::Duration = time::Duration::hours(24);

/// What the API shows of an endpoint (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub url: Url,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<OffsetDateTime>,
    #[serde(skip)]
    pub version: u64,
}

/// An endpoint with the secrets that sign for it now: the current one, and during a rotation's
/// grace period the previous one.
pub struct Signing {
    pub url: Url,
    pub secrets: Vec<SecretString>,
}

/// How long this process trusts what it read about whether a tenant has an endpoint: events
/// recorded in another container within this time after a registration are not delivered.
const EXISTS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone)]
pub struct EndpointStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    sealer: Arc<Sealer>,
    clock: SharedClock,
    /// Tenant → (has an endpoint, when read), so recording an event for a tenant without one
    /// costs no read on the hot path.
    known: Arc<std::sync::Mutex<std::collections::HashMap<TenantId, (bool, std::time::Instant)>>>,
}

fn key(tenant: &TenantId) -> [(&'static str, aws_sdk_dynamodb::types::AttributeValue); 2] {
    [("pk", s(format!("ENDPOINT#{tenant}"))), ("sk", s("ENDPOINT"))]
}

impl EndpointStore {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        sealer: Arc<Sealer>,
        clock: SharedClock,
    ) -> Self {
        Self { dynamodb, table: table.into(), sealer, clock, known: Arc::default() }
    }

    fn remember(&self, tenant: &TenantId, exists: bool) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(tenant.clone(), (exists, std::time::Instant::now()));
    }

    /// Whether the tenant has an endpoint (cached for a minute).
    pub async fn exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let cached = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            known.get(tenant).filter(|(_, at)| at.elapsed() < EXISTS_TTL).map(|(exists, _)| *exists)
        };
        if let Some(exists) = cached {
            return Ok(exists);
        }
        let exists = self.item(tenant).await?.is_some();
        self.remember(tenant, exists);
        Ok(exists)
    }

    async fn seal(&self, tenant: &TenantId, secret: &SecretString) -> Result<Blob, StoreError> {
        let context = EncryptionContext::webhook_signing(tenant);
        Ok(Blob::new(self.sealer.seal(&context, secret.expose_secret().as_bytes()).await?))
    }

    async fn open(&self, tenant: &TenantId, item: &Item, name: &str) -> Result<SecretString, StoreError> {
        let sealed = item.get(name).and_then(|v| v.as_b().ok()).ok_or_else(|| StoreError::Corrupt(name.into()))?;
        let plain = self.sealer.open(&EncryptionContext::webhook_signing(tenant), sealed.as_ref()).await?;
        let text = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt(name.into()))?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Registers (or replaces) the tenant's endpoint with `secret` (new, shown to the tenant once).
    pub async fn register(&self, tenant: &TenantId, url: Url, secret: SecretString) -> Result<Endpoint, StoreError> {
        let now = self.clock.now();
        let [(pk, pkv), (sk, skv)] = key(tenant);
        let item = Item::from([
            (pk.to_owned(), pkv),
            (sk.to_owned(), skv),
            ("url".to_owned(), s(url.as_str())),
            ("secret".to_owned(), aws_sdk_dynamodb::types::AttributeValue::B(self.seal(tenant, &secret).await?)),
            ("created_at".to_owned(), epoch(now)),
            ("version".to_owned(), n(1)),
        ]);
        self.dynamodb.put_item().table_name(&self.table).set_item(Some(item)).send().await?;
        self.remember(tenant, true);
        Ok(Endpoint { url, created_at: now, previous_secret_valid_until: None, version: 1 })
    }

    async fn item(&self, tenant: &TenantId) -> Result<Option<Item>, StoreError> {
        super::get_consistent(&self.dynamodb, &self.table, format!("ENDPOINT#{tenant}"), "ENDPOINT".into()).await
    }

    fn endpoint(item: &Item) -> Result<Endpoint, StoreError> {
        let r = Reader(item);
        Ok(Endpoint {
            url: r.str("url")?.parse().map_err(|_| StoreError::Corrupt("url".into()))?,
            created_at: r.time("created_at")?,
            previous_secret_valid_until: r.opt_time("previous_until")?,
            version: r.u64("version")?,
        })
    }

    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Endpoint>, StoreError> {
        self.item(tenant).await?.as_ref().map(Self::endpoint).transpose()
    }

    /// The URL and the secrets valid now, for a delivery.
    pub async fn signing(&self, tenant: &TenantId) -> Result<Option<Signing>, StoreError> {
        let Some(item) = self.item(tenant).await? else { return Ok(None) };
        let endpoint = Self::endpoint(&item)?;
        let mut secrets = vec![self.open(tenant, &item, "secret").await?];
        if endpoint.previous_secret_valid_until.is_some_and(|until| until > self.clock.now()) {
            secrets.push(self.open(tenant, &item, "previous_secret").await?);
        }
        Ok(Some(Signing { url: endpoint.url, secrets }))
    }

    /// Signs with `secret` (new) from now on; the current one keeps signing for [`ROTATION_GRACE`].
    pub async fn rotate(&self, tenant: &TenantId, secret: &SecretString) -> Result<Option<Endpoint>, StoreError> {
        let Some(item) = self.item(tenant).await? else { return Ok(None) };
        let endpoint = Self::endpoint(&item)?;
        let until = self.clock.now() + ROTATION_GRACE;
        let previous = item.get("secret").cloned().ok_or_else(|| StoreError::Corrupt("secret".into()))?;
        let [(pk, pkv), (sk, skv)] = key(tenant);
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .update_expression(
                "SET secret = :secret, previous_secret = :previous, previous_until = :until, version = version + :one",
            )
            .condition_expression("version = :read")
            .expression_attribute_values(
                ":secret",
                aws_sdk_dynamodb::types::AttributeValue::B(self.seal(tenant, secret).await?),
            )
            .expression_attribute_values(":previous", previous)
            .expression_attribute_values(":until", epoch(until))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":read", n(endpoint.version))
            .send()
            .await
            .map_err(StoreError::from);
        match result {
            Ok(_) => Ok(Some(Endpoint {
                previous_secret_valid_until: Some(until),
                version: endpoint.version + 1,
                ..endpoint
            })),
            Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::VersionConflict),
            Err(e) => Err(e),
        }
    }

    /// Removes the endpoint; returns whether there was one.
    pub async fn delete(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let [(pk, pkv), (sk, skv)] = key(tenant);
        let out = self
            .dynamodb
            .delete_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await?;
        self.remember(tenant, false);
        Ok(out.attributes.is_some())
    }
}
