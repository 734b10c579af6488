//! LinkedIn's webhooks: the `challengeCode` validation, `X-LI-Signature` over the raw body, and
//! organization social-action notifications.

use serde_json::Value;

use crate::domain::Platform;
use crate::platforms::header;
use crate::platforms::settings::{AppCredentials, PlatformApps};
use crate::platforms::webhooks::{
    Dialect, Handshake, HandshakeError, Inbound, Malformed, Query, Refused, digest, id_string, object, sign, verify,
};

/// LinkedIn's webhooks, signed with the app's client secret.
pub(crate) struct Webhooks;

impl Dialect for Webhooks {
    fn path(&self) -> &'static str {
        "/webhooks/linkedin"
    }

    fn platform(&self) -> Platform {
        Platform::Linkedin
    }

    fn app<'a>(&self, apps: &'a PlatformApps) -> Option<&'a AppCredentials> {
        apps.linkedin.as_ref()
    }

    fn handshake(&self, apps: &PlatformApps, query: &Query) -> Result<Handshake, HandshakeError> {
        let secret = self.secret(apps).ok_or(HandshakeError::NotConfigured(Platform::Linkedin))?;
        let code = query.get("challengeCode").filter(|c| !c.is_empty()).ok_or(HandshakeError::ChallengeMissing {
            field: "challengeCode",
            detail: "LinkedIn's validation sends a challengeCode",
        })?;
        let response = linkedin_challenge_response(&secret, code).map_err(|_| HandshakeError::ChallengeInvalid {
            field: "challengeCode",
            detail: "LinkedIn's challengeCode is a UUID",
        })?;
        Ok(Handshake::Json(serde_json::json!({ "challengeCode": code, "challengeResponse": response })))
    }

    fn signature(&self, secret: &[u8], headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), Refused> {
        linkedin_signature(secret, body, header(headers, "x-li-signature"))
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
        linkedin(body)
    }
}

/// Whether `code` is what LinkedIn sends as `challengeCode`: a UUID in its 8-4-4-4-12 hex form
/// (learn.microsoft.com/linkedin/shared/api-guide/webhook-validation). Either reading of
/// `X-LI-Signature` signs the body (or `hmacsha256=` + body) with the key that answers the
/// challenge; a UUID is neither, so the handshake cannot sign a delivery.
pub(crate) fn linkedin_challenge_shape(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// LinkedIn's `challengeResponse` for `challengeCode`; refused unless the code is a UUID.
pub(crate) fn linkedin_challenge_response(client_secret: &[u8], challenge_code: &str) -> Result<String, Refused> {
    if !linkedin_challenge_shape(challenge_code) {
        return Err(Refused);
    }
    Ok(hex::encode(sign(client_secret, &[challenge_code.as_bytes()])))
}

/// LinkedIn's `X-LI-Signature`. Its documentation says the value is the HMAC-SHA256 "of the
/// JSON-encoded string representation of the POST body prefixed by `hmacsha256=`"; client
/// libraries read that two ways, so both are accepted: the hex HMAC of `"hmacsha256=" + body`,
/// or `"hmacsha256="` followed by the hex HMAC of the body.
pub(crate) fn linkedin_signature(client_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let header = header.map(str::trim).ok_or(Refused)?;
    let (parts, hex_sig): (&[&[u8]], &str) = match header.strip_prefix("hmacsha256=") {
        Some(rest) => (&[body], rest),
        None => (&[b"hmacsha256=", body], header),
    };
    let signature = hex::decode(hex_sig).map_err(|_| Refused)?;
    verify(client_secret, parts, &signature)
}

/// LinkedIn: `{"type": "...", "notifications": [{"notificationId", "organizationalEntity", ...}]}`
/// (organization social-action notifications, the kind a posting app can subscribe to).
pub(crate) fn linkedin(body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
    let root = object(body)?;
    let kind = root.get("type").and_then(Value::as_str).ok_or(Malformed)?.to_owned();
    let mut events = Vec::new();
    for item in root.get("notifications").and_then(Value::as_array).into_iter().flatten() {
        let account = item.get("organizationalEntity").and_then(Value::as_str).ok_or(Malformed)?;
        let identity = item.get("notificationId").and_then(id_string).unwrap_or_else(|| item.to_string());
        events.push(Inbound {
            platform: Platform::Linkedin,
            platform_account_id: account.to_owned(),
            kind: kind.clone(),
            dedupe_key: digest(&["linkedin", &kind, &identity]),
            data: item.clone(),
            revokes: false,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkedin_challenge_and_both_readings_of_the_signature() {
        // printf %s token | openssl dgst -sha256 -hmac secret
        // printf %s 4e1f3a5c-8f2b-4c1e-9a7d-2b3c4d5e6f70 | openssl dgst -sha256 -hmac secret
        assert_eq!(
            linkedin_challenge_response(b"secret", "4e1f3a5c-8f2b-4c1e-9a7d-2b3c4d5e6f70"),
            Ok("f422a7282166408d3497ebb6f868ebda07c7d6820ac297abd3fb021b1d6031bb".into())
        );
        for refused in [
            "token",
            "hmacsha256={}",
            "{}",
            "4e1f3a5c-8f2b-4c1e-9a7d-2b3c4d5e6f7",
            "4e1f3a5c_8f2b-4c1e-9a7d-2b3c4d5e6f70",
        ] {
            assert_eq!(linkedin_challenge_response(b"secret", refused), Err(Refused), "{refused:?}");
        }
        let body = br#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS"}"#;
        let prefixed_message = hex::encode(sign(b"secret", &[b"hmacsha256=", body]));
        let prefixed_header = format!("hmacsha256={}", hex::encode(sign(b"secret", &[body])));
        assert_eq!(linkedin_signature(b"secret", body, Some(&prefixed_message)), Ok(()));
        assert_eq!(linkedin_signature(b"secret", body, Some(&prefixed_header)), Ok(()));
        assert_eq!(linkedin_signature(b"secret", b"{}", Some(&prefixed_message)), Err(Refused));
        assert_eq!(linkedin_signature(b"other", body, Some(&prefixed_header)), Err(Refused));
    }
    #[test]
    fn linkedin_notifications_name_their_organization() {
        let body = br#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{"notificationId":7,"organizationalEntity":"urn:li:organization:2414183","action":"COMMENT"}]}"#;
        let events = linkedin(body).unwrap();
        assert_eq!(events[0].platform_account_id, "urn:li:organization:2414183");
        assert_eq!(events[0].kind, "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS");
        assert_eq!(linkedin(br#"{"notifications":[]}"#), Err(Malformed));
    }
}
