//! The platforms' webhook handshakes and signatures, as pure functions over raw bytes.
//!
//! Every check runs on the bytes as received, before any parsing, and compares in constant time
//! (`Mac::verify_slice`). A refusal says nothing about which part failed.
//!
//! | platform | handshake | delivery |
//! |---|---|---|
//! | Meta | `hub.verify_token` must equal ours; echo `hub.challenge` | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>` |
//! | Meta callbacks | | `signed_request=<b64url sig>.<b64url JSON>`, HMAC-SHA256(app secret, the JSON part as received) |
//! | X | `crc_token` → `{"response_token":"sha256=<b64 HMAC-SHA256(consumer secret, token)>"}` | `x-twitter-webhooks-signature: sha256=<b64 HMAC-SHA256(consumer secret, body)>` |
//! | LinkedIn | `challengeCode` → `{"challengeCode","challengeResponse":<hex HMAC-SHA256(client secret, code)>}` | `X-LI-Signature`: see [`linkedin_signature`] |

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

type HmacSha256 = Hmac<Sha256>;

/// A request that failed verification. Deliberately without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request's signature or format did not verify")]
pub struct Refused;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn sign(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn verify(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> Result<(), Refused> {
    let mut mac = mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(signature).map_err(|_| Refused)
}

/// Meta's `X-Hub-Signature-256` over the raw body.
pub fn meta_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let hex_sig = header.and_then(|h| h.trim().strip_prefix("sha256=")).ok_or(Refused)?;
    let signature = hex::decode(hex_sig).map_err(|_| Refused)?;
    verify(app_secret, &[body], &signature)
}

/// Meta's subscription check: the challenge to echo when the verify token is ours.
pub fn meta_handshake<'a>(
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
pub fn meta_signed_request(app_secret: &[u8], signed_request: &str) -> Result<Value, Refused> {
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

/// The longest `crc_token` answered. X documents no format; the tokens it sends are base64
/// (about 44 characters), so 256 leaves room without admitting a body.
pub const CRC_TOKEN_MAX: usize = 256;

/// Whether `token` has the shape of a CRC token X sends: base64 or base64url characters only.
/// A webhook body X signs is a JSON object and contains `{`, so no accepted token can be one:
/// the handshake cannot be used to sign a delivery (`x_signature` uses the same key).
pub fn x_crc_token_shape(token: &str) -> bool {
    (1..=CRC_TOKEN_MAX).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

/// X's CRC answer for `crc_token`; refused unless the token has X's shape ([`x_crc_token_shape`]).
pub fn x_crc_response(consumer_secret: &[u8], crc_token: &str) -> Result<String, Refused> {
    if !x_crc_token_shape(crc_token) {
        return Err(Refused);
    }
    Ok(format!("sha256={}", STANDARD.encode(sign(consumer_secret, &[crc_token.as_bytes()]))))
}

/// X's `x-twitter-webhooks-signature` over the raw body.
pub fn x_signature(consumer_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let encoded = header.and_then(|h| h.trim().strip_prefix("sha256=")).ok_or(Refused)?;
    let signature = STANDARD.decode(encoded).map_err(|_| Refused)?;
    verify(consumer_secret, &[body], &signature)
}

/// Whether `code` is what LinkedIn sends as `challengeCode`: a UUID in its 8-4-4-4-12 hex form
/// (learn.microsoft.com/linkedin/shared/api-guide/webhook-validation). Either reading of
/// `X-LI-Signature` signs the body (or `hmacsha256=` + body) with the key that answers the
/// challenge; a UUID is neither, so the handshake cannot sign a delivery.
pub fn linkedin_challenge_shape(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// LinkedIn's `challengeResponse` for `challengeCode`; refused unless the code is a UUID.
pub fn linkedin_challenge_response(client_secret: &[u8], challenge_code: &str) -> Result<String, Refused> {
    if !linkedin_challenge_shape(challenge_code) {
        return Err(Refused);
    }
    Ok(hex::encode(sign(client_secret, &[challenge_code.as_bytes()])))
}

/// LinkedIn's `X-LI-Signature`. Its documentation says the value is the HMAC-SHA256 "of the
/// JSON-encoded string representation of the POST body prefixed by `hmacsha256=`"; client
/// libraries read that two ways, so both are accepted: the hex HMAC of `"hmacsha256=" + body`,
/// or `"hmacsha256="` followed by the hex HMAC of the body.
pub fn linkedin_signature(client_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let header = header.map(str::trim).ok_or(Refused)?;
    let (parts, hex_sig): (&[&[u8]], &str) = match header.strip_prefix("hmacsha256=") {
        Some(rest) => (&[body], rest),
        None => (&[b"hmacsha256=", body], header),
    };
    let signature = hex::decode(hex_sig).map_err(|_| Refused)?;
    verify(client_secret, parts, &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

/// Property tests: over arbitrary input the verifiers and parsers never panic, a correct
/// signature always verifies, and any change to the signed bytes is refused.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::webhooks::inbound;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_input_never_panics(secret in any::<Vec<u8>>(), body in any::<Vec<u8>>(), header in any::<String>()) {
            let _ = meta_signature(&secret, &body, Some(&header));
            let _ = x_signature(&secret, &body, Some(&header));
            let _ = linkedin_signature(&secret, &body, Some(&header));
            let _ = meta_signed_request(&secret, &header);
            let _ = meta_handshake(&secret, Some("subscribe"), Some(&header), Some(&header));
            let _ = inbound::meta(&body);
            let _ = inbound::x(&body);
            let _ = inbound::linkedin(&body);
            let _ = inbound::meta(header.as_bytes());
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
