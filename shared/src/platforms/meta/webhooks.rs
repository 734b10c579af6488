//! Meta's webhooks: the `hub.verify_token` handshake, `X-Hub-Signature-256` over the raw body,
//! Page and Instagram deliveries, and the `signed_request` of its deauthorize and data-deletion
//! callbacks.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use crate::domain::Platform;
use crate::platforms::header;
use crate::platforms::settings::{AppCredentials, PlatformApps};
use crate::platforms::webhooks::{
    Dialect, Handshake, HandshakeError, Inbound, Malformed, Query, Refused, digest, id_string, object, verify,
};

/// Meta's webhooks (Facebook Pages and Instagram accounts share the app and the endpoint).
pub(crate) struct Webhooks;

impl Dialect for Webhooks {
    fn path(&self) -> &'static str {
        "/webhooks/meta"
    }

    fn platform(&self) -> Platform {
        Platform::Facebook
    }

    fn app<'a>(&self, apps: &'a PlatformApps) -> Option<&'a AppCredentials> {
        apps.meta.as_ref()
    }

    fn handshake(&self, apps: &PlatformApps, query: &Query) -> Result<Handshake, HandshakeError> {
        let ours = apps.meta_webhook_verify_token.as_ref().ok_or(HandshakeError::NotConfigured(Platform::Facebook))?;
        let get = |name: &str| query.get(name).map(String::as_str);
        let challenge = meta_handshake(
            ours.expose_secret().as_bytes(),
            get("hub.mode"),
            get("hub.verify_token"),
            get("hub.challenge"),
        )
        .map_err(|_| HandshakeError::VerifyTokenInvalid)?;
        Ok(Handshake::Text(challenge.to_owned()))
    }

    fn signature(&self, secret: &[u8], headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), Refused> {
        meta_signature(secret, body, header(headers, "x-hub-signature-256"))
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
        meta(body)
    }
}

/// How old a `signed_request` may be (by its `issued_at`).
const SIGNED_REQUEST_MAX_AGE_S: i64 = 3600;

/// Why a deauthorize or data-deletion callback is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackError {
    NotConfigured(Platform),
    /// No `signed_request`, a signature that does not verify, or one issued too long ago.
    Refused,
    /// Signed, but naming no user.
    NoUser,
}

/// A Meta app's deauthorize and data-deletion callbacks, each a form with a `signed_request`
/// signed with the app's secret: Facebook Login's (Pages and Instagram) and the Threads app's,
/// which Meta's App Dashboard sets up the same way (developers.facebook.com/documentation/
/// development/create-an-app/threads-use-case, "Deauthorize callback URL", "Data Deletion Requests
/// URL").
pub struct SignedCallbacks {
    /// The grantor family the user id they name belongs to.
    pub family: &'static str,
    /// Their paths: `/webhooks/{family}/deauthorize`, `/webhooks/{family}/data-deletion` and
    /// `/webhooks/{family}/data-deletion/{code}` (a deletion's status).
    pub paths: [&'static str; 3],
    /// The platform named when the app is not configured.
    pub platform: Platform,
    app: fn(&PlatformApps) -> Option<&AppCredentials>,
}

/// Facebook Login's callbacks: they name the Facebook user behind Pages and Instagram accounts.
pub(in crate::platforms) static CALLBACKS: SignedCallbacks = SignedCallbacks::new(
    "meta",
    ["/webhooks/meta/deauthorize", "/webhooks/meta/data-deletion", "/webhooks/meta/data-deletion/{code}"],
    Platform::Facebook,
    |apps| apps.meta.as_ref(),
);

impl SignedCallbacks {
    pub(in crate::platforms) const fn new(
        family: &'static str,
        paths: [&'static str; 3],
        platform: Platform,
        app: fn(&PlatformApps) -> Option<&AppCredentials>,
    ) -> Self {
        Self { family, paths, platform, app }
    }

    /// The platform user a deauthorize or data-deletion callback names, from its verified
    /// `signed_request` form field; a captured callback replayed later is refused (Meta signs
    /// `issued_at`). `now`: Unix seconds.
    pub fn user(&self, apps: &PlatformApps, body: &[u8], now: i64) -> Result<String, CallbackError> {
        let app = (self.app)(apps).ok_or(CallbackError::NotConfigured(self.platform))?;
        signed_user(app.client_secret.expose_secret().as_bytes(), body, now)
    }
}

fn signed_user(secret: &[u8], body: &[u8], now: i64) -> Result<String, CallbackError> {
    let signed = url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "signed_request")
        .map(|(_, value)| value.into_owned())
        .ok_or(CallbackError::Refused)?;
    let payload = meta_signed_request(secret, &signed).map_err(|_| CallbackError::Refused)?;
    match payload["issued_at"].as_i64() {
        Some(issued) if issued >= now - SIGNED_REQUEST_MAX_AGE_S && issued <= now + 300 => {}
        _ => return Err(CallbackError::Refused),
    }
    id_string(&payload["user_id"]).ok_or(CallbackError::NoUser)
}

/// Meta's `X-Hub-Signature-256` over the raw body.
pub(crate) fn meta_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let hex_sig = header.and_then(|h| h.trim().strip_prefix("sha256=")).ok_or(Refused)?;
    let signature = hex::decode(hex_sig).map_err(|_| Refused)?;
    verify(app_secret, &[body], &signature)
}

/// Meta's subscription check: the challenge to echo when the verify token is ours.
pub(crate) fn meta_handshake<'a>(
    verify_token: &[u8],
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&'a str>,
) -> Result<&'a str, Refused> {
    let token = token.ok_or(Refused)?;
    let matches: bool = token.as_bytes().ct_eq(verify_token).into();
    match (mode, challenge) {
        (Some("subscribe"), Some(challenge)) if matches && !challenge.is_empty() && challenge.len() <= 256 => {
            Ok(challenge)
        }
        _ => Err(Refused),
    }
}

/// A Meta `signed_request` (deauthorize and data-deletion callbacks): the verified payload.
pub(crate) fn meta_signed_request(app_secret: &[u8], signed_request: &str) -> Result<Value, Refused> {
    let (encoded_sig, encoded_payload) = signed_request.trim().split_once('.').ok_or(Refused)?;
    let signature = b64url(encoded_sig)?;
    // The HMAC covers the payload part exactly as received (padding and all).
    verify(app_secret, &[encoded_payload.as_bytes()], &signature)?;
    let payload: Value = serde_json::from_slice(&b64url(encoded_payload)?).map_err(|_| Refused)?;
    match payload.get("algorithm").and_then(Value::as_str) {
        Some(algorithm) if algorithm.eq_ignore_ascii_case("HMAC-SHA256") => Ok(payload),
        _ => Err(Refused),
    }
}

/// base64url, with or without padding (Meta's own SDK tests use both).
fn b64url(raw: &str) -> Result<Vec<u8>, Refused> {
    URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).map_err(|_| Refused)
}

/// Meta: `{"object": "page"|"instagram", "entry": [{"id", "time", "changes": [{"field", "value"}],
/// "messaging": [...]}]}`. Objects other than Pages and Instagram accounts are acknowledged and
/// yield nothing.
pub(crate) fn meta(body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
    let root = object(body)?;
    let platform = match root.get("object").and_then(Value::as_str).ok_or(Malformed)? {
        "page" => Platform::Facebook,
        "instagram" => Platform::Instagram,
        _ => return Ok(Vec::new()),
    };
    let entries = root.get("entry").and_then(Value::as_array).ok_or(Malformed)?;
    let mut events = Vec::new();
    for entry in entries {
        let id = entry.get("id").and_then(id_string).ok_or(Malformed)?;
        let time = entry.get("time").map(Value::to_string).unwrap_or_default();
        let changes = entry.get("changes").and_then(Value::as_array).into_iter().flatten();
        for change in changes {
            let field = change.get("field").and_then(Value::as_str).ok_or(Malformed)?;
            let content = change.to_string();
            events.push(Inbound {
                platform,
                platform_account_id: id.clone(),
                kind: field.to_owned(),
                dedupe_key: digest(&["meta", &id, &time, &content]),
                data: change.get("value").cloned().unwrap_or(Value::Null),
                revokes: false,
            });
        }
        for message in entry.get("messaging").and_then(Value::as_array).into_iter().flatten() {
            let mid = message.pointer("/message/mid").and_then(id_string);
            let content = message.to_string();
            events.push(Inbound {
                platform,
                platform_account_id: id.clone(),
                kind: "messaging".into(),
                dedupe_key: match mid {
                    Some(mid) => digest(&["meta", &id, "mid", &mid]),
                    None => digest(&["meta", &id, &time, &content]),
                },
                data: message.clone(),
                revokes: false,
            });
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::webhooks::sign;

    /// Facebook's own PHP SDK tests (`tests/SignedRequestTest.php`, app secret `foo_app_secret`).
    const FB_SDK_SIGNED_REQUEST: &str = "U0_O1MqqNKUt32633zAkdd2Ce-jGVgRgJeRauyx_zC8=.eyJvYXV0aF90b2tlbiI6ImZvb190b2tlbiIsImFsZ29yaXRobSI6IkhNQUMtU0hBMjU2IiwiaXNzdWVkX2F0IjozMjEsImNvZGUiOiJmb29fY29kZSIsInN0YXRlIjoiZm9vX3N0YXRlIiwidXNlcl9pZCI6MTIzLCJmb28iOiJiYXIifQ==";
    #[test]
    fn facebooks_own_signed_request_example_verifies() {
        let payload = meta_signed_request(b"foo_app_secret", FB_SDK_SIGNED_REQUEST).unwrap();
        assert_eq!(payload["user_id"], 123);
        assert_eq!(payload["oauth_token"], "foo_token");
        assert_eq!(payload["issued_at"], 321);
        assert_eq!(meta_signed_request(b"bar_app_secret", FB_SDK_SIGNED_REQUEST), Err(Refused));
        // Facebook::OpenGraph's test: unpadded, secret "secret".
        let perl =
            "vlXgu64BQGFSQrY0ZcJBZASMvYvTHu9GQ0YM9rjPSso.eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiIsIjAiOiJwYXlsb2FkIn0";
        assert_eq!(meta_signed_request(b"secret", perl).unwrap()["0"], "payload");
    }

    #[test]
    fn tampered_truncated_and_reencoded_signed_requests_are_refused() {
        let (sig, payload) = FB_SDK_SIGNED_REQUEST.split_once('.').unwrap();
        let secret = b"foo_app_secret";
        // The same JSON re-serialized (different bytes) does not verify.
        let json = b64url(payload).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        let reencoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec_pretty(&value).unwrap());
        for forged in [
            format!("{sig}.{reencoded}"),
            format!("{sig}.{}", &payload[..payload.len() - 8]),
            format!("{}.{payload}", &sig[..sig.len() - 4]),
            payload.to_owned(),
            String::new(),
            ".".into(),
        ] {
            assert_eq!(meta_signed_request(secret, &forged), Err(Refused), "{forged}");
        }
        // A correct signature over a payload with another algorithm is refused.
        let other = URL_SAFE_NO_PAD.encode(br#"{"algorithm":"HMAC-SHA1","user_id":"1"}"#);
        let signed = URL_SAFE_NO_PAD.encode(sign(secret, &[other.as_bytes()]));
        assert_eq!(meta_signed_request(secret, &format!("{signed}.{other}")), Err(Refused));
    }

    #[test]
    fn meta_handshake_echoes_the_challenge_only_for_our_token() {
        let ours = b"verify-me";
        assert_eq!(meta_handshake(ours, Some("subscribe"), Some("verify-me"), Some("1158201444")), Ok("1158201444"));
        assert_eq!(meta_handshake(ours, Some("subscribe"), Some("verify-you"), Some("1")), Err(Refused));
        assert_eq!(meta_handshake(ours, Some("unsubscribe"), Some("verify-me"), Some("1")), Err(Refused));
        assert_eq!(meta_handshake(ours, Some("subscribe"), None, Some("1")), Err(Refused));
        assert_eq!(meta_handshake(ours, Some("subscribe"), Some("verify-me"), None), Err(Refused));
    }

    #[test]
    fn meta_signature_covers_the_raw_body() {
        let secret = b"app-secret";
        let body = br#"{"object":"page","entry":[]}"#;
        let header = format!("sha256={}", hex::encode(sign(secret, &[body])));
        assert_eq!(meta_signature(secret, body, Some(&header)), Ok(()));
        assert_eq!(meta_signature(secret, br#"{"object": "page","entry":[]}"#, Some(&header)), Err(Refused));
        assert_eq!(meta_signature(secret, body, Some(&header[..header.len() - 2])), Err(Refused));
        assert_eq!(meta_signature(secret, body, Some(header.trim_start_matches("sha256="))), Err(Refused));
        assert_eq!(meta_signature(secret, body, None), Err(Refused));
        assert_eq!(meta_signature(b"other", body, Some(&header)), Err(Refused));
    }
    #[test]
    fn meta_entries_become_one_event_per_change_and_message() {
        let body = br#"{"object":"page","entry":[{"id":"104000000000001","time":1764400000,
            "changes":[{"field":"feed","value":{"item":"comment","verb":"add"}},{"field":"mention","value":{}}],
            "messaging":[{"message":{"mid":"m_1","text":"hi"}}]}]}"#;
        let events = meta(body).unwrap();
        assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["feed", "mention", "messaging"]);
        assert!(events.iter().all(|e| e.platform == Platform::Facebook && e.platform_account_id == "104000000000001"));
        assert_eq!(events[0].data["verb"], "add");
        // The same delivery again has the same keys; a different change has another.
        assert_eq!(meta(body).unwrap()[0].dedupe_key, events[0].dedupe_key);
        assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
        let ig = br#"{"object":"instagram","entry":[{"id":"17841400000000001","time":1,"changes":[{"field":"comments","value":{}}]}]}"#;
        assert_eq!(meta(ig).unwrap()[0].platform, Platform::Instagram);
        assert!(meta(br#"{"object":"user","entry":[]}"#).unwrap().is_empty());
        for bad in
            [&b"[]"[..], b"{}", br#"{"object":"page"}"#, br#"{"object":"page","entry":[{"changes":[]}]}"#, b"\xff"]
        {
            assert_eq!(meta(bad), Err(Malformed));
        }
    }
}
