//! Platform webhooks: each platform's dialect (its handshake, its signature over the raw body,
//! and what a delivery says: [`Inbound`] events), behind one trait and a registry; the
//! handshakes and signatures are pure functions over raw bytes, in each platform's folder.
//!
//! Every check runs on the bytes as received, before any parsing, and compares in constant time
//! (`Mac::verify_slice`). A refusal says nothing about which part failed.
//!
//! | platform | handshake | delivery |
//! |---|---|---|
//! | Meta | `hub.verify_token` must equal ours; echo `hub.challenge` | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>` |
//! | Meta callbacks | | `signed_request=<b64url sig>.<b64url JSON>`, HMAC-SHA256(app secret, the JSON part as received) |
//! | X | `crc_token` → `{"response_token":"sha256=<b64 HMAC-SHA256(consumer secret, token)>"}` | `x-twitter-webhooks-signature: sha256=<b64 HMAC-SHA256(consumer secret, body)>` |
//! | LinkedIn | `challengeCode` → `{"challengeCode","challengeResponse":<hex HMAC-SHA256(client secret, code)>}` | `X-LI-Signature`: see `linkedin::webhooks::linkedin_signature` |

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::settings::{AppCredentials, PlatformApps};
use crate::domain::Platform;

type HmacSha256 = Hmac<Sha256>;

/// A request that failed verification. Deliberately without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request's signature or format did not verify")]
pub struct Refused;

/// HMAC-SHA256 of `parts`, one after the other.
fn mac_over(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

pub(super) fn sign(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    mac_over(key, parts).finalize().into_bytes().to_vec()
}

pub(super) fn verify(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> Result<(), Refused> {
    mac_over(key, parts).verify_slice(signature).map_err(|_| Refused)
}

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub platform: Platform,
    /// The platform's id of the account (Page id, Instagram account id, X user id, LinkedIn URN).
    pub platform_account_id: String,
    /// The platform's name for what happened (Meta's field, X's `*_events` key, LinkedIn's type).
    pub kind: String,
    /// The same for every retry of this event: the platform's own id where it has one, else a
    /// digest of the event's content.
    pub dedupe_key: String,
    pub data: Value,
    /// The event says the user took Herald's access away (X's `user_event` `revoke`): the
    /// account's grant is dead.
    pub revokes: bool,
}

/// A body that verified but is not what the platform sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery is not in the platform's format")]
pub struct Malformed;

pub(super) fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

pub(super) fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Malformed> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Malformed),
    }
}

/// A platform id given as a JSON string or number.
pub(crate) fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A handshake's query parameters.
pub type Query = HashMap<String, String>;

/// What a subscription handshake is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    Text(String),
    Json(Value),
}

/// Why a handshake is not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// This deployment has no app (or no verify token) for the platform.
    NotConfigured(Platform),
    /// Meta's `hub.verify_token` is not ours.
    VerifyTokenInvalid,
    /// The parameter the platform sends is missing.
    ChallengeMissing { field: &'static str, detail: &'static str },
    /// The parameter is not in the shape the platform sends: answering it would sign
    /// attacker-chosen bytes with the key that signs deliveries.
    ChallengeInvalid { field: &'static str, detail: &'static str },
}

/// Why a delivery is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    NotConfigured(Platform),
    /// The signature did not verify.
    Refused,
}

/// One platform's webhooks, as they arrive on `path` (a Lambda function URL on AWS).
pub trait Dialect: Send + Sync {
    /// Where the platform sends them: `GET` for the handshake, `POST` for deliveries.
    fn path(&self) -> &'static str;
    /// The platform named when this deployment has no app for these webhooks.
    fn platform(&self) -> Platform;
    /// The app whose secret signs the deliveries (and answers the challenge).
    fn app<'a>(&self, apps: &'a PlatformApps) -> Option<&'a AppCredentials>;
    /// The subscription handshake (Meta's verify token, X's CRC, LinkedIn's challenge).
    fn handshake(&self, apps: &PlatformApps, query: &Query) -> Result<Handshake, HandshakeError>;
    /// Whether the delivery's signature (in `headers`) holds for the raw `body` under `secret`.
    fn signature(&self, secret: &[u8], headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), Refused>;
    /// What a verified delivery says.
    fn parse(&self, body: &[u8]) -> Result<Vec<Inbound>, Malformed>;

    /// The signing secret, where this deployment has the app.
    fn secret(&self, apps: &PlatformApps) -> Option<Vec<u8>> {
        use secrecy::ExposeSecret as _;
        self.app(apps).map(|a| a.client_secret.expose_secret().as_bytes().to_vec())
    }

    /// The delivery's signature over the raw body, checked before anything is parsed.
    fn verify(
        &self,
        apps: &PlatformApps,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), DeliveryError> {
        let secret = self.secret(apps).ok_or(DeliveryError::NotConfigured(self.platform()))?;
        self.signature(&secret, headers, body).map_err(|_| DeliveryError::Refused)
    }
}

/// The registry: every platform's webhooks.
pub fn dialects() -> [&'static dyn Dialect; 3] {
    [&super::meta::webhooks::Webhooks, &super::x::webhooks::Webhooks, &super::linkedin::webhooks::Webhooks]
}

pub use super::meta::webhooks::{CallbackError, SignedCallbacks};

/// The registry of deauthorize and data-deletion callbacks: Meta's apps (Facebook Login's and
/// Threads').
pub fn signed_callbacks() -> [&'static SignedCallbacks; 2] {
    [&super::meta::webhooks::CALLBACKS, &super::threads::CALLBACKS]
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;
    use crate::platforms::linkedin::webhooks::{linkedin, linkedin_signature};
    use crate::platforms::meta::webhooks::{meta, meta_handshake, meta_signature, meta_signed_request};
    use crate::platforms::x::webhooks::{x, x_signature};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_input_never_panics(secret in any::<Vec<u8>>(), body in any::<Vec<u8>>(), header in any::<String>()) {
            let _ = meta_signature(&secret, &body, Some(&header));
            let _ = x_signature(&secret, &body, Some(&header));
            let _ = linkedin_signature(&secret, &body, Some(&header));
            let _ = meta_signed_request(&secret, &header);
            let _ = meta_handshake(&secret, Some("subscribe"), Some(&header), Some(&header));
            let _ = meta(&body);
            let _ = x(&body);
            let _ = linkedin(&body);
            let _ = meta(header.as_bytes());
        }

        #[test]
        fn signatures_hold_exactly_for_the_signed_bytes(secret in any::<Vec<u8>>(), body in any::<Vec<u8>>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let meta_header = format!("sha256={}", hex::encode(sign(&secret, &[&body])));
            let x_header = format!("sha256={}", STANDARD.encode(sign(&secret, &[&body])));
            let li_header = hex::encode(sign(&secret, &[b"hmacsha256=", &body]));
            prop_assert_eq!(meta_signature(&secret, &body, Some(&meta_header)), Ok(()));
            prop_assert_eq!(x_signature(&secret, &body, Some(&x_header)), Ok(()));
            prop_assert_eq!(linkedin_signature(&secret, &body, Some(&li_header)), Ok(()));
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip.index(body.len())] ^= 1 << bit;
                prop_assert_eq!(meta_signature(&secret, &changed, Some(&meta_header)), Err(Refused));
                prop_assert_eq!(x_signature(&secret, &changed, Some(&x_header)), Err(Refused));
                prop_assert_eq!(linkedin_signature(&secret, &changed, Some(&li_header)), Err(Refused));
            }
        }

        #[test]
        fn signed_requests_verify_only_unchanged(secret in any::<Vec<u8>>(), user in "[0-9]{1,20}", flip in any::<prop::sample::Index>()) {
            let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"algorithm":"HMAC-SHA256","user_id":"{user}","issued_at":1}}"#));
            let signature = URL_SAFE_NO_PAD.encode(sign(&secret, &[payload.as_bytes()]));
            let signed = format!("{signature}.{payload}");
            let verified = meta_signed_request(&secret, &signed).unwrap();
            prop_assert_eq!(verified["user_id"].as_str(), Some(user.as_str()));
            let mut bytes = signed.into_bytes();
            let at = flip.index(bytes.len());
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(meta_signed_request(&secret, &forged), Err(Refused));
        }
    }
}
