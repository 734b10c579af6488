//! Tenants (applications using Herald) and their API keys, stored hashed.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::{Item, Reader, StoreError, epoch, is_condition_failure, s, string_list, whole_seconds};
use crate::clock::SharedClock;
use crate::domain::{LEGACY_CONNECTOR_SETTING, Platform, TenantId, random_bytes};

const KEY_PREFIX: &str = "hk_";
/// `hk_` + 43 characters of URL-safe base64 over 256 random bits.
const KEY_LEN: usize = KEY_PREFIX.len() + 43;

/// A tenant API key. Shown once, at creation; only its SHA-256 is stored. A hash without salt or
/// stretching is enough because the key is 256 random bits, not a password.
pub struct ApiKey(SecretString);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl ApiKey {
    fn generate() -> Self {
        let bytes: [u8; 32] = random_bytes();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self(SecretString::from(format!("{KEY_PREFIX}{body}")))
    }

    /// The key itself, for printing once to the operator who created it.
    pub fn reveal(&self) -> &str {
        self.0.expose_secret()
    }

    /// Checks the shape before any lookup, so junk costs no DynamoDB call.
    fn well_formed(presented: &str) -> bool {
        presented.len() == KEY_LEN
            && presented.starts_with(KEY_PREFIX)
            && presented[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    fn hash(presented: &str) -> String {
        hex::encode(Sha256::digest(presented.as_bytes()))
    }
}

/// A web origin (`scheme://host[:port]`) a tenant allows as a `return_to` target.
/// HTTPS only, except loopback hosts for local development.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an allowed origin: {1}")]
pub struct InvalidOrigin(pub String, pub &'static str);

impl Origin {
    pub fn parse(raw: &str) -> Result<Self, InvalidOrigin> {
        let bad = |why| InvalidOrigin(raw.chars().take(200).collect(), why);
        let url = Url::parse(raw).map_err(|_| bad("not an absolute URL"))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("must be https (http only for localhost)")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain credentials"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must be an origin only, without path, query or fragment"));
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `url` is on this origin (same scheme, host and port).
    pub fn contains(&self, url: &Url) -> bool {
        url.origin().ascii_serialization() == self.0
    }
}

impl TryFrom<String> for Origin {
    type Error = InvalidOrigin;
    fn try_from(raw: String) -> Result<Self, InvalidOrigin> {
        Self::parse(&raw)
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub allowed_origins: Vec<Origin>,
    /// How this tenant's users authorize each platform where it chose (by the connector's
    /// name, such as X's `oauth1`); a platform missing here uses its default connector. Stored
    /// as one `connector_{platform}` attribute each, so setting one never races another.
    #[serde(skip)]
    pub connectors: std::collections::BTreeMap<Platform, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Tenant {
    fn key(id: &TenantId) -> (String, String) {
        (format!("TENANT#{id}"), "TENANT".to_owned())
    }

    fn to_item(&self) -> Item {
        let (pk, sk) = Self::key(&self.id);
        let origins: Vec<String> = self.allowed_origins.iter().map(|o| o.as_str().to_owned()).collect();
        let mut item = Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("tenant_id".to_owned(), s(self.id.as_str())),
            ("name".to_owned(), s(&self.name)),
            ("allowed_origins".to_owned(), string_list(&origins)),
            ("created_at".to_owned(), epoch(self.created_at)),
        ]);
        item.extend(self.connectors.iter().map(|(platform, connector)| (connector_attribute(*platform), s(connector))));
        item
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let r = Reader(item);
        let origins = r.strings("allowed_origins")?;
        Ok(Self {
            id: r.parse("tenant_id")?,
            name: r.str("name")?.to_owned(),
            allowed_origins: origins
                .iter()
                .map(|o| Origin::parse(o).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect::<Result<_, _>>()?,
            connectors: Platform::ALL
                .into_iter()
                .filter_map(|platform| {
                    let legacy = (platform == LEGACY_CONNECTOR_SETTING.1).then_some(LEGACY_CONNECTOR_SETTING.0);
                    let value = item.get(&connector_attribute(platform)).or_else(|| item.get(legacy?))?;
                    Some((platform, value.as_s().ok()?.clone()))
                })
                .collect(),
            created_at: r.time("created_at")?,
        })
    }
}

fn connector_attribute(platform: Platform) -> String {
    format!("connector_{platform}")
}

/// How long an instance trusts an API key it has looked up: a deleted key keeps working this
/// long in warm instances.
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const KEY_CACHE_ENTRIES: usize = 1024;

type KeyCache = lru::LruCache<String, (TenantId, std::time::Instant)>;

#[derive(Clone)]
pub struct TenantStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    clock: SharedClock,
    /// Keys found recently, by their SHA-256 (never the key itself); unknown keys are not
    /// remembered, so guessing fills nothing and a new key works at once.
    known_keys: std::sync::Arc<std::sync::Mutex<KeyCache>>,
}

impl TenantStore {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>, clock: SharedClock) -> Self {
        let capacity = std::num::NonZeroUsize::new(KEY_CACHE_ENTRIES).expect("non-zero");
        Self {
            dynamodb,
            table: table.into(),
            clock,
            known_keys: std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(capacity))),
        }
    }

    /// Creates a tenant and its first API key in one transaction. The key is returned once.
    pub async fn create(&self, name: &str, allowed_origins: Vec<Origin>) -> Result<(Tenant, ApiKey), StoreError> {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: name.to_owned(),
            allowed_origins,
            connectors: Default::default(),
            created_at: whole_seconds(self.clock.now()),
        };
        let key = ApiKey::generate();
        let key_item = self.api_key_item(&tenant.id, &key);
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let result = self
            .dynamodb
            .transact_write_items()
            .transact_items(put(tenant.to_item())?)
            .transact_items(put(key_item)?)
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok((tenant, key)),
            Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    /// Issues another API key for an existing tenant (rotation: both work until one is revoked).
    pub async fn add_key(&self, tenant: &TenantId) -> Result<ApiKey, StoreError> {
        let key = ApiKey::generate();
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.api_key_item(tenant, &key)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await?;
        Ok(key)
    }

    fn api_key_item(&self, tenant: &TenantId, key: &ApiKey) -> Item {
        let secret = key.reveal();
        Item::from([
            ("pk".to_owned(), s(format!("APIKEY#{}", ApiKey::hash(secret)))),
            ("sk".to_owned(), s("APIKEY")),
            ("tenant_id".to_owned(), s(tenant.as_str())),
            // Enough to recognise a key in a list, far too little to guess it.
            ("key_prefix".to_owned(), s(&secret[..KEY_PREFIX.len() + 4])),
            ("created_at".to_owned(), epoch(self.clock.now())),
        ])
    }

    /// The tenant a presented API key belongs to, or `None` for an unknown or malformed key.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<TenantId>, StoreError> {
        if !ApiKey::well_formed(presented) {
            return Ok(None);
        }
        let hash = ApiKey::hash(presented);
        {
            let mut known = self.known_keys.lock().unwrap_or_else(|e| e.into_inner());
            match known.get(&hash) {
                Some((tenant, at)) if at.elapsed() < KEY_CACHE_TTL => return Ok(Some(tenant.clone())),
                Some(_) => {
                    known.pop(&hash);
                }
                None => {}
            }
        }
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("APIKEY#{hash}")))
            .key("sk", s("APIKEY"))
            .send()
            .await?;
        let tenant: Option<TenantId> = out.item.as_ref().map(|item| Reader(item).parse("tenant_id")).transpose()?;
        if let Some(tenant) = &tenant {
            let mut known = self.known_keys.lock().unwrap_or_else(|e| e.into_inner());
            known.put(hash, (tenant.clone(), std::time::Instant::now()));
        }
        Ok(tenant)
    }

    pub async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let (pk, sk) = Tenant::key(id);
        let out = self.dynamodb.get_item().table_name(&self.table).key("pk", s(pk)).key("sk", s(sk)).send().await?;
        out.item.as_ref().map(Tenant::from_item).transpose()
    }

    /// Changes a tenant's name, allowed origins and connectors (each given one replaced);
    /// returns the updated tenant.
    pub async fn update(
        &self,
        id: &TenantId,
        name: Option<&str>,
        allowed_origins: Option<&[Origin]>,
        connectors: &[(Platform, &str)],
    ) -> Result<Tenant, StoreError> {
        let (pk, sk) = Tenant::key(id);
        let mut sets = Vec::new();
        let mut update = self.dynamodb.update_item().table_name(&self.table).key("pk", s(pk)).key("sk", s(sk));
        if let Some(name) = name {
            sets.push("#name = :name");
            update = update.expression_attribute_names("#name", "name").expression_attribute_values(":name", s(name));
        }
        if let Some(origins) = allowed_origins {
            let origins: Vec<String> = origins.iter().map(|o| o.as_str().to_owned()).collect();
            sets.push("allowed_origins = :origins");
            update = update.expression_attribute_values(":origins", string_list(&origins));
        }
        let mut sets: Vec<String> = sets.into_iter().map(str::to_owned).collect();
        for (platform, connector) in connectors {
            sets.push(format!("#c_{platform} = :c_{platform}"));
            update = update
                .expression_attribute_names(format!("#c_{platform}"), connector_attribute(*platform))
                .expression_attribute_values(format!(":c_{platform}"), s(*connector));
        }
        if sets.is_empty() {
            return self.get(id).await?.ok_or(StoreError::NotFound);
        }
        let result = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression("attribute_exists(pk)")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(out) => Tenant::from_item(&out.attributes.unwrap_or_default()),
            Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => Err(StoreError::NotFound),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_hash_stably() {
        let key = ApiKey::generate();
        assert!(ApiKey::well_formed(key.reveal()), "{}", key.reveal().len());
        assert_eq!(ApiKey::hash(key.reveal()), ApiKey::hash(key.reveal()));
        assert!(!format!("{key:?}").contains(&key.reveal()[3..]));
        for junk in ["", "hk_", "Bearer x", &"a".repeat(KEY_LEN), &format!("hk_{}", "!".repeat(43))] {
            assert!(!ApiKey::well_formed(junk), "{junk}");
        }
    }

    #[test]
    fn origins_are_https_or_loopback_and_bare() {
        assert_eq!(Origin::parse("https://app.example.com").unwrap().as_str(), "https://app.example.com");
        assert_eq!(Origin::parse("https://app.example.com:8443/").unwrap().as_str(), "https://app.example.com:8443");
        assert!(Origin::parse("http://localhost:5173").is_ok());
        for bad in [
            "http://app.example.com",
            "https://app.example.com/cb",
            "https://app.example.com?x=1",
            "javascript:alert(1)",
            "https://user:pw@app.example.com",
            "app.example.com",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        let origin = Origin::parse("https://app.example.com").unwrap();
        assert!(origin.contains(&Url::parse("https://app.example.com/after?x=1").unwrap()));
        assert!(!origin.contains(&Url::parse("https://app.example.com.evil.test/").unwrap()));
        assert!(!origin.contains(&Url::parse("http://app.example.com/").unwrap()));
    }
}
