//! Envelope encryption: KMS wraps a per-context AES-256 data key, AES-256-GCM seals the data.
//!
//! Every sealed value is bound to an [`EncryptionContext`] naming tenant, platform and account,
//! twice over: KMS refuses to unwrap the data key under another context, and the same context is
//! the AES-GCM associated data. A ciphertext copied into another account's row does not open.
//!
//! A bounded, time-limited in-memory cache keeps plaintext data keys so the warm path makes no
//! KMS call per token: sealing reuses a data key per context (at most `max_uses_per_key` times),
//! and opening remembers the key for each wrapped key it has unwrapped.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use lru::LruCache;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::clock::SharedClock;
use crate::domain::{AccountId, Platform, TenantId};

/// Envelope-encryption settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoSettings {
    /// `HERALD_KMS_KEY_ID`: key id, ARN or alias of the symmetric KMS key that wraps data keys.
    pub key_id: String,
    /// `HERALD_DATA_KEY_CACHE_SECONDS` (default 300): how long a plaintext data key is kept in memory.
    pub cache_ttl: std::time::Duration,
    /// `HERALD_DATA_KEY_CACHE_ENTRIES` (default 1024): the most data keys kept in memory.
    pub cache_capacity: usize,
    /// `HERALD_DATA_KEY_MAX_USES` (default 1000): seals under one cached data key before a new one.
    pub max_uses_per_key: u32,
}

impl CryptoSettings {
    pub const DEFAULT_CACHE_SECONDS: u64 = 300;
    pub const DEFAULT_CACHE_ENTRIES: usize = 1024;
    pub const DEFAULT_MAX_USES: u32 = 1000;

    /// `key_id` with the defaults for everything else.
    pub fn with_key(key_id: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            cache_ttl: std::time::Duration::from_secs(Self::DEFAULT_CACHE_SECONDS),
            cache_capacity: Self::DEFAULT_CACHE_ENTRIES,
            max_uses_per_key: Self::DEFAULT_MAX_USES,
        }
    }
}

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// KMS could not be reached or refused for a reason other than the ciphertext itself.
    #[error("the key service call failed")]
    KeyService(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Wrong context, tampered or truncated data, or a wrapped key KMS will not unwrap. One error
    /// for all of them, so the caller learns nothing about which check failed.
    #[error("sealed data could not be opened")]
    Open,
}

/// What a sealed value is bound to. KMS logs it in CloudTrail, so it names, never contains, secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptionContext {
    pairs: Vec<(&'static str, String)>,
}

impl EncryptionContext {
    /// An account's tokens.
    pub fn new(tenant: &TenantId, platform: Platform, account: &AccountId) -> Self {
        Self {
            pairs: vec![
                ("herald:tenant", tenant.as_str().to_owned()),
                ("herald:platform", platform.as_str().to_owned()),
                ("herald:account", account.as_str().to_owned()),
            ],
        }
    }

    /// The secret of an app Herald registered on a user's server (a Mastodon instance).
    pub fn server_app(platform: Platform, server: &str) -> Self {
        Self {
            pairs: vec![
                ("herald:platform", platform.as_str().to_owned()),
                ("herald:server", server.to_owned()),
                ("herald:purpose", "server-app".to_owned()),
            ],
        }
    }

    /// What a pending authorization keeps until its callback (PKCE verifier, request-token
    /// secret, DPoP key): per platform, not per flow, so flows share a cached data key.
    pub fn oauth_state(platform: Platform) -> Self {
        Self {
            pairs: vec![
                ("herald:platform", platform.as_str().to_owned()),
                ("herald:purpose", "oauth-state".to_owned()),
            ],
        }
    }

    /// A tenant's webhook signing secrets.
    pub fn webhook_signing(tenant: &TenantId) -> Self {
        Self {
            pairs: vec![
                ("herald:tenant", tenant.as_str().to_owned()),
                ("herald:purpose", "webhook-signing".to_owned()),
            ],
        }
    }

    fn kms_map(&self) -> std::collections::HashMap<String, String> {
        self.pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    /// Length-prefixed, so no two contexts serialize alike.
    fn aad(&self) -> Vec<u8> {
        let mut out = b"herald/v1".to_vec();
        for (k, v) in &self.pairs {
            for part in [*k, v.as_str()] {
                out.extend_from_slice(&(part.len() as u16).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}

struct OpenKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    expires: OffsetDateTime,
}

struct SealKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    wrapped: Vec<u8>,
    expires: OffsetDateTime,
    uses: u32,
}

struct Caches {
    /// AAD ‖ wrapped key → plaintext key.
    open: LruCache<Vec<u8>, OpenKey>,
    /// AAD → the data key currently used for sealing under that context.
    seal: LruCache<Vec<u8>, SealKey>,
}

/// Seals and opens secrets with KMS envelope encryption and a bounded data-key cache.
pub struct Sealer {
    kms: aws_sdk_kms::Client,
    settings: CryptoSettings,
    clock: SharedClock,
    caches: Mutex<Caches>,
    /// One `Decrypt` per data key at a time: callers missing the same key wait for the first.
    opening: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    kms_calls: AtomicU64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.settings.key_id).finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(kms: aws_sdk_kms::Client, settings: CryptoSettings, clock: SharedClock) -> Self {
        let capacity = NonZeroUsize::new(settings.cache_capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            kms,
            settings,
            clock,
            caches: Mutex::new(Caches { open: LruCache::new(capacity), seal: LruCache::new(capacity) }),
            opening: Mutex::new(HashMap::new()),
            kms_calls: AtomicU64::new(0),
        }
    }

    /// How many KMS calls this sealer has made (for tests and the per-post cost benchmark).
    pub fn kms_calls(&self) -> u64 {
        self.kms_calls.load(Ordering::Relaxed)
    }

    fn cached_open(&self, cache_key: &[u8], now: OffsetDateTime) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        match self.caches().open.get(cache_key) {
            Some(entry) if entry.expires > now => Some(entry.key.clone()),
            _ => None,
        }
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        // A panic while holding the lock cannot leave the cache inconsistent (each access is
        // one insert or lookup), so a poisoned lock is still usable.
        self.caches.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn seal(&self, context: &EncryptionContext, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let aad = context.aad();
        let now = self.clock.now();
        let cached = {
            let mut caches = self.caches();
            match caches.seal.get_mut(&aad) {
                Some(entry) if entry.expires > now && entry.uses < self.settings.max_uses_per_key => {
                    entry.uses += 1;
                    Some((entry.key.clone(), entry.wrapped.clone()))
                }
                _ => None,
            }
        };
        let (key, wrapped) = match cached {
            Some(hit) => hit,
            None => {
                let (key, wrapped) = self.generate_data_key(context).await?;
                let expires = now + self.settings.cache_ttl;
                let mut caches = self.caches();
                caches.seal.put(aad.clone(), SealKey { key: key.clone(), wrapped: wrapped.clone(), expires, uses: 1 });
                // What we seal now we will likely open soon: remember the unwrapped key for that too.
                caches.open.put(open_cache_key(&aad, &wrapped), OpenKey { key: key.clone(), expires });
                (key, wrapped)
            }
        };

        let nonce_bytes: [u8; NONCE_LEN] = crate::domain::random_bytes();
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| CryptoError::Open)?;
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce_bytes), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| CryptoError::Open)?;

        let wrapped_len = u16::try_from(wrapped.len()).map_err(|_| CryptoError::Open)?;
        let mut out = Vec::with_capacity(3 + wrapped.len() + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&wrapped_len.to_be_bytes());
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub async fn open(&self, context: &EncryptionContext, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parsed = parse(sealed).ok_or(CryptoError::Open)?;
        let aad = context.aad();
        let cache_key = open_cache_key(&aad, parsed.wrapped);
        let now = self.clock.now();
        let key = match self.cached_open(&cache_key, now) {
            Some(key) => key,
            None => {
                // A batch of jobs for one account misses the same key at once: one Decrypt.
                let gate = self
                    .opening
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(cache_key.clone())
                    .or_default()
                    .clone();
                let _turn = gate.lock().await;
                match self.cached_open(&cache_key, now) {
                    Some(key) => key,
                    None => {
                        let opened = self.decrypt_data_key(context, parsed.wrapped).await;
                        if let Ok(key) = &opened {
                            let expires = now + self.settings.cache_ttl;
                            self.caches().open.put(cache_key.clone(), OpenKey { key: key.clone(), expires });
                        }
                        self.opening.lock().unwrap_or_else(|e| e.into_inner()).remove(&cache_key);
                        opened?
                    }
                }
            }
        };
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| CryptoError::Open)?;
        let nonce: [u8; NONCE_LEN] = parsed.nonce.try_into().map_err(|_| CryptoError::Open)?;
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: parsed.ciphertext, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }

    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<[u8; KEY_LEN]>, Vec<u8>), CryptoError> {
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let out = self
            .kms
            .generate_data_key()
            .key_id(&self.settings.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context.kms_map()))
            .send()
            .await
            .map_err(|e| CryptoError::KeyService(Box::new(aws_sdk_kms::Error::from(e))))?;
        let key = out.plaintext.as_ref().and_then(|b| key_from(b.as_ref()));
        match (key, out.ciphertext_blob) {
            (Some(key), Some(wrapped)) => Ok((key, wrapped.into_inner())),
            _ => Err(CryptoError::KeyService("GenerateDataKey returned no usable key".into())),
        }
    }

    async fn decrypt_data_key(
        &self,
        context: &EncryptionContext,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let result = self
            .kms
            .decrypt()
            .key_id(&self.settings.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(context.kms_map()))
            .send()
            .await;
        match result {
            Ok(out) => out.plaintext.as_ref().and_then(|b| key_from(b.as_ref())).ok_or(CryptoError::Open),
            Err(err) => match aws_sdk_kms::Error::from(err) {
                // The wrapped key does not belong to this context (or key): the data was moved.
                aws_sdk_kms::Error::InvalidCiphertextException(_) | aws_sdk_kms::Error::IncorrectKeyException(_) => {
                    Err(CryptoError::Open)
                }
                other => Err(CryptoError::KeyService(Box::new(other))),
            },
        }
    }
}

fn key_from(bytes: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
    Some(Zeroizing::new(array))
}

fn open_cache_key(aad: &[u8], wrapped: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(aad.len() + wrapped.len());
    key.extend_from_slice(aad);
    key.extend_from_slice(wrapped);
    key
}

struct Parsed<'a> {
    wrapped: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

/// `[version=1][u16 wrapped-key length][wrapped key][12-byte nonce][ciphertext ‖ 16-byte tag]`
fn parse(sealed: &[u8]) -> Option<Parsed<'_>> {
    let (&version, rest) = sealed.split_first()?;
    if version != FORMAT_V1 || rest.len() < 2 {
        return None;
    }
    let wrapped_len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    if wrapped_len == 0 || rest.len() < wrapped_len + NONCE_LEN + 16 {
        return None;
    }
    let (wrapped, rest) = rest.split_at(wrapped_len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    Some(Parsed { wrapped, nonce, ciphertext })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_distinguishes_contexts_that_concatenate_alike() {
        let t = TenantId::parse("ten_a").unwrap();
        let a = EncryptionContext::new(&t, Platform::X, &AccountId::parse("acc_1").unwrap());
        let b = EncryptionContext::new(&t, Platform::X, &AccountId::parse("acc_12").unwrap());
        assert_ne!(a.aad(), b.aad());
    }

    #[test]
    fn parse_refuses_truncated_and_unknown_versions() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[2, 0, 1, 0]).is_none());
        let mut ok = vec![1, 0, 3, 9, 9, 9];
        ok.extend_from_slice(&[0u8; NONCE_LEN + 16]);
        assert!(parse(&ok).is_some());
        assert!(parse(&ok[..ok.len() - 1]).is_none());
    }
}
