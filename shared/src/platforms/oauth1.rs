//! OAuth 1.0a request signing (RFC 5849, HMAC-SHA1), for X's 1.0a user context.
//!
//! Small enough to own: the crates that do this are either unmaintained or tied to another HTTP
//! client. Verified below against RFC 5849 §1.2 and X's "Creating a signature" example.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

/// RFC 5849 §3.6: only unreserved characters stay as they are.
const OAUTH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn pct(s: &str) -> String {
    utf8_percent_encode(s, OAUTH_ENCODE).to_string()
}

/// What a signature covers besides the `oauth_*` protocol parameters.
pub struct Request<'a> {
    pub method: &'a str,
    /// Scheme, host and path; no query (§3.4.1.2).
    pub base_url: &'a str,
    /// Query and form-body parameters, decoded.
    pub params: &'a [(&'a str, &'a str)],
}

pub struct Credentials<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    pub token: Option<&'a str>,
    pub token_secret: &'a str,
}

/// The `oauth_*` parameters a request carries, plus any extra ones (`oauth_callback`, `oauth_verifier`).
pub fn protocol_params<'a>(
    creds: &Credentials<'a>,
    nonce: &'a str,
    timestamp: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, String)> {
    let mut params = vec![
        ("oauth_consumer_key", creds.consumer_key.to_owned()),
        ("oauth_nonce", nonce.to_owned()),
        ("oauth_signature_method", "HMAC-SHA1".to_owned()),
        ("oauth_timestamp", timestamp.to_owned()),
        ("oauth_version", "1.0".to_owned()),
    ];
    if let Some(token) = creds.token {
        params.push(("oauth_token", token.to_owned()));
    }
    params.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    params
}

/// The signature (§3.4.2) over the request and protocol parameters.
pub fn signature(
    request: &Request<'_>,
    protocol: &[(&str, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let mut pairs: Vec<(String, String)> = request
        .params
        .iter()
        .map(|(k, v)| (pct(k), pct(v)))
        .chain(protocol.iter().map(|(k, v)| (pct(k), pct(v))))
        .collect();
    pairs.sort();
    let joined: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base = format!("{}&{}&{}", request.method.to_ascii_uppercase(), pct(request.base_url), pct(&joined.join("&")));
    let key = format!("{}&{}", pct(consumer_secret), pct(token_secret));
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A signed `Authorization: OAuth …` header value with a fresh nonce and the given timestamp.
pub fn authorization(request: &Request<'_>, creds: &Credentials<'_>, timestamp: i64, extra: &[(&str, &str)]) -> String {
    let nonce_bytes: [u8; 16] = crate::domain::random_bytes();
    let nonce = hex::encode(nonce_bytes);
    let timestamp = timestamp.to_string();
    let mut protocol = protocol_params(creds, &nonce, &timestamp, extra);
    let sig = signature(request, &protocol, creds.consumer_secret, creds.token_secret);
    protocol.push(("oauth_signature", sig));
    let fields: Vec<String> = protocol.iter().map(|(k, v)| format!("{}=\"{}\"", pct(k), pct(v))).collect();
    format!("OAuth {}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(
        method: &str,
        url: &str,
        params: &[(&str, &str)],
        creds: Credentials<'_>,
        nonce: &str,
        ts: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let protocol: Vec<(&str, String)> =
            protocol_params(&creds, nonce, ts, extra).into_iter().filter(|(k, _)| *k != "oauth_version").collect();
        signature(&Request { method, base_url: url, params }, &protocol, creds.consumer_secret, creds.token_secret)
    }

    #[test]
    fn rfc5849_section_1_2() {
        let client = |token, secret| Credentials {
            consumer_key: "dpf43f3p2l4k3l03",
            consumer_secret: "kd94hf93k423kf44",
            token,
            token_secret: secret,
        };
        assert_eq!(
            sign(
                "POST",
                "https://photos.example.net/initiate",
                &[],
                client(None, ""),
                "wIjqoS",
                "137131200",
                &[("oauth_callback", "http://printer.example.com/ready")]
            ),
            "74KNZJeDHnMBp0EMJ9ZHt/XKycU="
        );
        assert_eq!(
            sign(
                "POST",
                "https://photos.example.net/token",
                &[],
                client(Some("hh5s93j4hdidpola"), "hdhd0244k9j7ao03"),
                "walatlh",
                "137131201",
                &[("oauth_verifier", "hfdp7dh39dks9884")]
            ),
            "gKgrFCywp7rO0OXSjdot/IHF7IU="
        );
        assert_eq!(
            sign(
                "GET",
                "http://photos.example.net/photos",
                &[("file", "vacation.jpg"), ("size", "original")],
                client(Some("nnch734d00sl2jdk"), "pfkkdhi9sl3r4s00"),
                "chapoH",
                "137131202",
                &[]
            ),
            "MdpQcU8iPSUjWoN/UDMsK2sui9I="
        );
    }

    #[test]
    fn x_creating_a_signature_example() {
        let creds = Credentials {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog",
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            token: Some("370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"),
            token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        };
        let protocol = protocol_params(&creds, "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", "1318622958", &[]);
        let request = Request {
            method: "POST",
            base_url: "https://api.x.com/1.1/statuses/update.json",
            params: &[("include_entities", "true"), ("status", "Hello Ladies + Gentlemen, a signed OAuth request!")],
        };
        assert_eq!(
            signature(&request, &protocol, creds.consumer_secret, creds.token_secret),
            "Ls93hJiZbQ3akF3HF3x1Bz8/zU4="
        );
    }

    #[test]
    fn header_carries_every_protocol_parameter_encoded() {
        let creds = Credentials { consumer_key: "ck", consumer_secret: "cs", token: None, token_secret: "" };
        let header = authorization(
            &Request { method: "POST", base_url: "https://api.x.com/oauth/request_token", params: &[] },
            &creds,
            1,
            &[("oauth_callback", "https://h.test/cb?a=1")],
        );
        assert!(header.starts_with("OAuth "));
        assert!(header.contains("oauth_callback=\"https%3A%2F%2Fh.test%2Fcb%3Fa%3D1\""), "{header}");
        assert!(header.contains("oauth_signature=\""));
    }
}
