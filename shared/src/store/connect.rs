//! One-time connect links and OAuth states: short-lived, consumed atomically, bound to who
//! started the flow. Expiry is checked on read (DynamoDB's TTL deletion may lag by days).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connect link | `LINK#{sha256(token)}` | `LINK` |
//! | OAuth state | `STATE#{state or OAuth 1.0a request token}` | `STATE` |

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::{Item, Reader, StoreError, epoch, is_condition_failure, s, whole_seconds};
use crate::clock::SharedClock;
use crate::crypto::{EncryptionContext, Sealer};
use crate::domain::{Platform, TenantId, UserId, random_bytes};
use crate::schema::TTL_ATTRIBUTE;

/// How long a connect link stays usable.
pub const LINK_TTL: time::Duration = time::Duration::minutes(15);
/// How long the user may take on the platform's consent screen.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);

/// What a connect link was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectLink {
    pub tenant: TenantId,
    pub user: UserId,
    pub platform: Platform,
    pub return_to: Url,
    pub expires_at: OffsetDateTime,
}

/// A pending authorization: who started it, where to send the user back, the PKCE verifier
/// or OAuth 1.0a request secret, and the browser it was started in.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub tenant: TenantId,
    pub user: UserId,
    pub platform: Platform,
    pub return_to: Url,
    /// The platform's connector for this flow, by its adapter's name (opaque here).
    pub connector: String,
    pub secret: Option<SecretString>,
    /// SHA-256 (hex) of the browser secret in the cookie set when the flow started; the callback
    /// must present the secret (docs/security.md, "Connect flows are bound to the browser").
    pub browser: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError<T> {
    #[error("unknown")]
    Unknown,
    /// Used before: the record is kept until it expires, so the user can still be sent back.
    #[error("already used")]
    Replayed(T),
    #[error("expired")]
    Expired(T),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct ConnectStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    sealer: Arc<Sealer>,
    clock: SharedClock,
}

fn link_key(token: &str) -> String {
    format!("LINK#{}", hex::encode(Sha256::digest(token.as_bytes())))
}

impl ConnectStore {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        sealer: Arc<Sealer>,
        clock: SharedClock,
    ) -> Self {
        Self { dynamodb, table: table.into(), sealer, clock }
    }

    /// Stores a link and returns its token (256 random bits; only its hash is stored).
    pub async fn create_link(
        &self,
        tenant: &TenantId,
        user: &UserId,
        platform: Platform,
        return_to: &Url,
    ) -> Result<(String, ConnectLink), StoreError> {
        let bytes: [u8; 32] = random_bytes();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let link = ConnectLink {
            tenant: tenant.clone(),
            user: user.clone(),
            platform,
            return_to: return_to.clone(),
            expires_at: whole_seconds(self.clock.now() + LINK_TTL),
        };
        let item = Item::from([
            ("pk".to_owned(), s(link_key(&token))),
            ("sk".to_owned(), s("LINK")),
            ("tenant_id".to_owned(), s(tenant.as_str())),
            ("user_id".to_owned(), s(user.as_str())),
            ("platform".to_owned(), s(platform.as_str())),
            ("return_to".to_owned(), s(return_to.as_str())),
            (TTL_ATTRIBUTE.to_owned(), epoch(link.expires_at)),
        ]);
        self.put_new(item).await?;
        Ok((token, link))
    }

    async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await?;
        Ok(())
    }

    /// Uses a link up: the first caller gets it, everyone after gets `Replayed`.
    pub async fn consume_link(&self, token: &str) -> Result<ConnectLink, ConsumeError<ConnectLink>> {
        let item = self.consume(link_key(token), "LINK").await?;
        let r = Reader(&item.1);
        let link = ConnectLink {
            tenant: r.parse("tenant_id")?,
            user: r.parse("user_id")?,
            platform: r.parse("platform")?,
            return_to: Url::parse(r.str("return_to")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            expires_at: r.time(TTL_ATTRIBUTE)?,
        };
        self.judge(item.0, link.expires_at, link)
    }

    pub async fn put_state(&self, key: &str, state: &OAuthState) -> Result<(), StoreError> {
        let mut item = Item::from([
            ("pk".to_owned(), s(format!("STATE#{key}"))),
            ("sk".to_owned(), s("STATE")),
            ("tenant_id".to_owned(), s(state.tenant.as_str())),
            ("user_id".to_owned(), s(state.user.as_str())),
            ("platform".to_owned(), s(state.platform.as_str())),
            ("return_to".to_owned(), s(state.return_to.as_str())),
            ("connector".to_owned(), s(&state.connector)),
            ("browser".to_owned(), s(&state.browser)),
            (TTL_ATTRIBUTE.to_owned(), epoch(state.expires_at)),
        ]);
        if let Some(secret) = &state.secret {
            // A PKCE verifier, a request-token secret or a DPoP private key: sealed like tokens,
            // under a context per platform (so one data key serves every flow while cached).
            let sealed = self
                .sealer
                .seal(&EncryptionContext::oauth_state(state.platform), secret.expose_secret().as_bytes())
                .await?;
            item.insert("secret".to_owned(), AttributeValue::B(Blob::new(sealed)));
        }
        self.put_new(item).await?;
        Ok(())
    }

    /// Uses a state up atomically: exactly one callback gets it.
    pub async fn consume_state(&self, key: &str) -> Result<OAuthState, ConsumeError<OAuthState>> {
        let item = self.consume(format!("STATE#{key}"), "STATE").await?;
        let r = Reader(&item.1);
        let platform: Platform = r.parse("platform")?;
        let secret = match item.1.get("secret") {
            Some(AttributeValue::B(sealed)) => {
                let plain = self
                    .sealer
                    .open(&EncryptionContext::oauth_state(platform), sealed.as_ref())
                    .await
                    .map_err(StoreError::from)?;
                let text = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt("secret".into()))?;
                Some(SecretString::from(text.to_owned()))
            }
            // Written in the clear before states were sealed (they lived ten minutes).
            Some(AttributeValue::S(plain)) => Some(SecretString::from(plain.clone())),
            _ => None,
        };
        let state = OAuthState {
            tenant: r.parse("tenant_id")?,
            user: r.parse("user_id")?,
            platform,
            return_to: Url::parse(r.str("return_to")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            // States written before the connector was named lived ten minutes; read theirs too.
            connector: r.str("connector").or_else(|_| r.str("x_auth"))?.to_owned(),
            secret,
            // A state stored before browser binding has none, and matches no browser.
            browser: item.1.get("browser").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
            expires_at: r.time(TTL_ATTRIBUTE)?,
        };
        self.judge(item.0, state.expires_at, state)
    }

    fn judge<T>(&self, first_use: bool, expires_at: OffsetDateTime, value: T) -> Result<T, ConsumeError<T>> {
        if !first_use {
            Err(ConsumeError::Replayed(value))
        } else if expires_at <= self.clock.now() {
            Err(ConsumeError::Expired(value))
        } else {
            Ok(value)
        }
    }

    /// Marks the item used, in one conditional write. Returns whether this was the first use,
    /// and the item.
    async fn consume<T>(&self, pk: String, sk: &str) -> Result<(bool, Item), ConsumeError<T>> {
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET used_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(used_at)")
            .expression_attribute_values(":now", epoch(self.clock.now()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok((true, out.attributes.unwrap_or_default())),
            Err(err) => {
                let err = aws_sdk_dynamodb::Error::from(err);
                if let aws_sdk_dynamodb::Error::ConditionalCheckFailedException(failed) = &err {
                    return match failed.item() {
                        Some(item) if !item.is_empty() => Ok((false, item.clone())),
                        _ => Err(ConsumeError::Unknown),
                    };
                }
                if is_condition_failure(&err) {
                    return Err(ConsumeError::Unknown);
                }
                Err(ConsumeError::Store(StoreError::Dynamo(Box::new(err))))
            }
        }
    }
}
