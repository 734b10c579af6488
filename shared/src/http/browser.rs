//! Binding a connect flow to the browser that started it.
//!
//! When the browser follows a connect link, Herald gives it a random secret in a cookie
//! (`HttpOnly`, `SameSite=Lax`; `Secure` with the `__Host-` prefix when Herald is served over
//! https) and stores only the secret's SHA-256 with the OAuth state. The callback must come from
//! a browser presenting that secret. A victim who is sent an attacker's authorize URL returns to
//! Herald without it, so their account is never connected to the attacker's user.
//!
//! One secret per browser, kept across flows (a user may connect two platforms at once in two
//! tabs); a browser without one, or with a malformed one, gets a new one.
//! `SameSite=Lax` is what lets the cookie ride along: the platform sends the browser back with a
//! top-level GET navigation, for which Lax cookies are sent.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use url::Url;

/// Long enough for a link's 15 minutes plus a state's 10 on the consent screen.
const MAX_AGE_S: u32 = 30 * 60;
/// 32 random bytes, base64url without padding.
const SECRET_CHARS: usize = 43;

/// The cookie's name and attributes for a deployment, from its public URL's scheme.
#[derive(Debug, Clone, Copy)]
pub(super) struct BrowserCookie {
    secure: bool,
}

impl BrowserCookie {
    pub(super) fn for_public_url(public_url: &Url) -> Self {
        Self { secure: public_url.scheme() == "https" }
    }

    /// `__Host-` needs `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2): the cookie
    /// then cannot be set or shadowed by a sibling subdomain.
    fn name(&self) -> &'static str {
        if self.secure { "__Host-herald_browser" } else { "herald_browser" }
    }

    /// The browser's secret, if it sent a well-formed one.
    pub(super) fn read(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| {
                v.len() == SECRET_CHARS && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    /// The browser's secret, or a new one; and the `Set-Cookie` that (re)sets it.
    pub(super) fn issue(&self, headers: &HeaderMap) -> (String, HeaderValue) {
        let secret = self.read(headers).unwrap_or_else(|| {
            let bytes: [u8; 32] = crate::domain::random_bytes();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        });
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!("{}={secret}; Path=/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Lax{secure}", self.name());
        (secret, HeaderValue::from_str(&cookie).expect("the cookie is ASCII"))
    }

    /// Whether the request comes from the browser whose secret hashes to `binding`.
    pub(super) fn matches(&self, headers: &HeaderMap, binding: &str) -> bool {
        match self.read(headers) {
            Some(secret) if !binding.is_empty() => {
                bool::from(self::binding(&secret).as_bytes().ct_eq(binding.as_bytes()))
            }
            _ => false,
        }
    }
}

/// What is stored with the state: the secret's SHA-256, hex.
pub(super) fn binding(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a request is a browser's own navigation to a page, by its Fetch Metadata
/// (`Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`; every current engine sends them).
/// Link-preview bots, unfurlers, scanners and `HEAD` probes do not, so they are shown a page
/// with a button instead of using the link up.
pub(super) fn is_navigation(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    value("sec-fetch-mode") == Some("navigate") && value("sec-fetch-dest") == Some("document")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_secret_is_reused_hashed_and_matched_only_exactly() {
        let local = BrowserCookie::for_public_url(&"http://127.0.0.1:3000".parse().unwrap());
        let (secret, set) = local.issue(&HeaderMap::new());
        assert_eq!(secret.len(), SECRET_CHARS);
        let set = set.to_str().unwrap();
        assert!(set.starts_with("herald_browser=") && set.contains("HttpOnly") && set.contains("SameSite=Lax"));
        assert!(!set.contains("Secure"));

        let headers = with_cookie(&format!("other=1; herald_browser={secret}; x=y"));
        assert_eq!(local.issue(&headers).0, secret, "one secret per browser");
        assert!(local.matches(&headers, &binding(&secret)));
        assert!(!local.matches(&headers, &binding("something else")));
        assert!(!local.matches(&HeaderMap::new(), &binding(&secret)));
        assert!(!local.matches(&headers, ""), "a state without a binding matches nothing");
        assert!(local.read(&with_cookie("herald_browser=short")).is_none());

        let deployed = BrowserCookie::for_public_url(&"https://herald.example".parse().unwrap());
        let set = deployed.issue(&HeaderMap::new()).1;
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-herald_browser=") && set.ends_with("; Secure") && set.contains("Path=/"));
        assert!(!deployed.matches(&headers, &binding(&secret)), "the local cookie is not the deployed one");
    }
}
