//! The apps Herald registers on servers users name (a Mastodon instance's own app registry):
//! one per platform and server, its secret sealed like tokens (with a context of its own), the
//! first registered kept when two connects race.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | server app | `SERVERAPP#{platform}#{server}` | `SERVERAPP` |

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use secrecy::{ExposeSecret as _, SecretString};

use super::{Item, StoreError, epoch, is_condition_failure, s};
use crate::clock::SharedClock;
use crate::crypto::{EncryptionContext, Sealer};
use crate::domain::Platform;

#[derive(Clone)]
pub struct ServerAppStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    sealer: Arc<Sealer>,
    clock: SharedClock,
}

impl ServerAppStore {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        sealer: Arc<Sealer>,
        clock: SharedClock,
    ) -> Self {
        Self { dynamodb, table: table.into(), sealer, clock }
    }

    fn pk(platform: Platform, server: &str) -> String {
        format!("SERVERAPP#{platform}#{server}")
    }

    /// The app kept for `server`: its client id and secret.
    pub async fn read(&self, platform: Platform, server: &str) -> Result<Option<(String, SecretString)>, StoreError> {
        let Some(item) =
            super::get_consistent(&self.dynamodb, &self.table, Self::pk(platform, server), "SERVERAPP".into()).await?
        else {
            return Ok(None);
        };
        let field = |name: &str| item.get(name).ok_or_else(|| StoreError::Corrupt(name.into()));
        let client_id = field("client_id")?.as_s().map_err(|_| StoreError::Corrupt("client_id".into()))?.clone();
        let sealed = field("client_secret")?.as_b().map_err(|_| StoreError::Corrupt("client_secret".into()))?;
        let plain = self.sealer.open(&EncryptionContext::server_app(platform, server), sealed.as_ref()).await?;
        let secret = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt("client_secret".into()))?;
        Ok(Some((client_id, SecretString::from(secret.to_owned()))))
    }

    /// Keeps the app (`client_id`, `client_secret`) for `server` unless one is kept already;
    /// the one kept.
    pub async fn write(
        &self,
        platform: Platform,
        server: &str,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<(String, SecretString), StoreError> {
        let context = EncryptionContext::server_app(platform, server);
        let sealed = self.sealer.seal(&context, client_secret.expose_secret().as_bytes()).await?;
        let item = Item::from([
            ("pk".to_owned(), s(Self::pk(platform, server))),
            ("sk".to_owned(), s("SERVERAPP")),
            ("client_id".to_owned(), s(client_id)),
            ("client_secret".to_owned(), aws_sdk_dynamodb::types::AttributeValue::B(Blob::new(sealed))),
            ("created_at".to_owned(), epoch(self.clock.now())),
        ]);
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok((client_id.to_owned(), client_secret.clone())),
            Err(e) => {
                let e = aws_sdk_dynamodb::Error::from(e);
                if !is_condition_failure(&e) {
                    return Err(StoreError::Dynamo(Box::new(e)));
                }
                // Another connect registered one first: every connection to the server uses it.
                self.read(platform, server).await?.ok_or_else(|| StoreError::Corrupt("server app".into()))
            }
        }
    }
}
