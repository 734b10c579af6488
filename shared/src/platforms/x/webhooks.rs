//! X's webhooks (Account Activity API): the CRC handshake, `x-twitter-webhooks-signature` over
//! the raw body, and `*_events` deliveries.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::domain::Platform;
use crate::platforms::header;
use crate::platforms::settings::{AppCredentials, PlatformApps};
use crate::platforms::webhooks::{
    Dialect, Handshake, HandshakeError, Inbound, Malformed, Query, Refused, digest, id_string, object, sign, verify,
};

/// X's webhooks, signed with the app's consumer secret ("API key secret").
pub(crate) struct Webhooks;

impl Dialect for Webhooks {
    fn path(&self) -> &'static str {
        "/webhooks/x"
    }

    fn platform(&self) -> Platform {
        Platform::X
    }

    fn app<'a>(&self, apps: &'a PlatformApps) -> Option<&'a AppCredentials> {
        apps.x_oauth1.as_ref()
    }

    fn handshake(&self, apps: &PlatformApps, query: &Query) -> Result<Handshake, HandshakeError> {
        let secret = self.secret(apps).ok_or(HandshakeError::NotConfigured(Platform::X))?;
        let token = query.get("crc_token").filter(|t| !t.is_empty()).ok_or(HandshakeError::ChallengeMissing {
            field: "crc_token",
            detail: "X's CRC check sends a crc_token",
        })?;
        let response = x_crc_response(&secret, token).map_err(|_| HandshakeError::ChallengeInvalid {
            field: "crc_token",
            detail: "X's crc_token is base64, at most 256 characters",
        })?;
        Ok(Handshake::Json(serde_json::json!({ "response_token": response })))
    }

    fn signature(&self, secret: &[u8], headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), Refused> {
        x_signature(secret, body, header(headers, "x-twitter-webhooks-signature"))
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
        x(body)
    }
}

/// The longest `crc_token` answered. X documents no format; the tokens it sends are base64
/// (about 44 characters), so 256 leaves room without admitting a body.
pub(crate) const CRC_TOKEN_MAX: usize = 256;

/// Whether `token` has the shape of a CRC token X sends: base64 or base64url characters only.
/// A webhook body X signs is a JSON object and contains `{`, so no accepted token can be one:
/// the handshake cannot be used to sign a delivery (`x_signature` uses the same key).
pub(crate) fn x_crc_token_shape(token: &str) -> bool {
    (1..=CRC_TOKEN_MAX).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

/// X's CRC answer for `crc_token`; refused unless the token has X's shape ([`x_crc_token_shape`]).
pub(crate) fn x_crc_response(consumer_secret: &[u8], crc_token: &str) -> Result<String, Refused> {
    if !x_crc_token_shape(crc_token) {
        return Err(Refused);
    }
    Ok(format!("sha256={}", STANDARD.encode(sign(consumer_secret, &[crc_token.as_bytes()]))))
}

/// X's `x-twitter-webhooks-signature` over the raw body.
pub(crate) fn x_signature(consumer_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let encoded = header.and_then(|h| h.trim().strip_prefix("sha256=")).ok_or(Refused)?;
    let signature = STANDARD.decode(encoded).map_err(|_| Refused)?;
    verify(consumer_secret, &[body], &signature)
}

/// X (Account Activity): `{"for_user_id", "<kind>_events": [...], ...}`; each item of each
/// `*_events` array is one event, keyed by its `id_str`/`id` where it has one. Or a `user_event`,
/// which names no `for_user_id`: `{"user_event": {"revoke": {"date_time", "target": {"app_id"},
/// "source": {"user_id"}}}}` when the user revoked the app (docs.x.com
/// `x-api/account-activity/introduction`, "user_event"; F11), one event for that user that
/// revokes their grant.
pub(crate) fn x(body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
    let root = object(body)?;
    if let Some(user_event) = root.get("user_event") {
        return user_events(user_event);
    }
    let user = root.get("for_user_id").and_then(id_string).ok_or(Malformed)?;
    let mut events = Vec::new();
    for (key, value) in &root {
        let (Some(kind), Some(items)) = (key.strip_suffix("_events"), value.as_array()) else { continue };
        for item in items {
            let id = item.get("id_str").or_else(|| item.get("id")).and_then(id_string);
            let identity = id.unwrap_or_else(|| item.to_string());
            events.push(Inbound {
                platform: Platform::X,
                platform_account_id: user.clone(),
                kind: key.clone(),
                dedupe_key: digest(&["x", &user, kind, &identity]),
                data: item.clone(),
                revokes: false,
            });
        }
    }
    Ok(events)
}

/// A `user_event`'s revocation: the user is its `source.user_id`.
fn user_events(user_event: &serde_json::Value) -> Result<Vec<Inbound>, Malformed> {
    let revoke = user_event.get("revoke").ok_or(Malformed)?;
    let user = revoke["source"].get("user_id").and_then(id_string).ok_or(Malformed)?;
    let when = revoke["date_time"].as_str().unwrap_or_default();
    let app = revoke["target"].get("app_id").and_then(id_string).unwrap_or_default();
    Ok(vec![Inbound {
        platform: Platform::X,
        platform_account_id: user.clone(),
        kind: "user_event.revoke".to_owned(),
        dedupe_key: digest(&["x", &user, "revoke", when, &app]),
        data: revoke.clone(),
        revokes: true,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_crc_and_signature() {
        // Computed independently: printf %s token | openssl dgst -sha256 -hmac secret -binary | base64
        assert_eq!(
            x_crc_response(b"secret", "token"),
            Ok("sha256=6UERDj0r/oJiHw4+FDRzDXMF0QbF9oyHFl0LJ6RhGko=".into())
        );
        assert!(x_crc_response(b"secret", "aGVsbG8gd29ybGQ_-+/=").is_ok(), "base64 and base64url alphabets");
        // A body, or anything that is not a token's alphabet, is never signed.
        for refused in ["", r#"{"for_user_id":"1"}"#, "a b", "tok\n", &"a".repeat(CRC_TOKEN_MAX + 1)] {
            assert_eq!(x_crc_response(b"secret", refused), Err(Refused), "{refused:?}");
        }
        let body = br#"{"for_user_id":"2244994945","tweet_create_events":[]}"#;
        let header = format!("sha256={}", STANDARD.encode(sign(b"secret", &[body])));
        assert_eq!(x_signature(b"secret", body, Some(&header)), Ok(()));
        assert_eq!(x_signature(b"secret", &body[1..], Some(&header)), Err(Refused));
        assert_eq!(x_signature(b"secret", body, Some("sha256=!!")), Err(Refused));
    }
    #[test]
    fn x_events_are_keyed_by_their_ids() {
        let body = br#"{"for_user_id":"2244994945","tweet_create_events":[{"id_str":"1","text":"a"},{"id_str":"2"}],"users":{}}"#;
        let events = x(body).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.kind == "tweet_create_events" && e.platform_account_id == "2244994945"));
        assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
        assert_eq!(x(br#"{"tweet_create_events":[]}"#), Err(Malformed));
    }

    /// The revoke event as X's Account Activity documentation shows it: no `for_user_id`.
    #[test]
    fn a_revoke_user_event_revokes_its_users_grant() {
        let body = br#"{"user_event":{"revoke":{"date_time":"2018-05-24T09:48:12+00:00","target":{"app_id":"13090192"},"source":{"user_id":"63046977"}}}}"#;
        let events = x(body).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(
            (event.platform_account_id.as_str(), event.kind.as_str(), event.revokes),
            ("63046977", "user_event.revoke", true)
        );
        assert_eq!(x(body).unwrap()[0].dedupe_key, event.dedupe_key, "a retry is the same event");
        assert_eq!(x(br#"{"user_event":{"other":{}}}"#), Err(Malformed));
        assert_eq!(x(br#"{"user_event":{"revoke":{"source":{}}}}"#), Err(Malformed));
    }
}
