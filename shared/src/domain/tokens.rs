//! Platform credentials as secret types: they never print, never serialize except into the
//! sealer, and are compared only by the platforms.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Everything a platform grant gives Herald. `Debug` shows `[REDACTED]` for each secret.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// OAuth 2.0 refresh token, where the platform issues one (X rotates it on every use).
    pub refresh_token: Option<SecretString>,
    /// OAuth 1.0a token secret (X's 1.0a flow).
    pub token_secret: Option<SecretString>,
    /// What else the grant is bound to, as its platform's adapter writes and reads it (Bluesky:
    /// the account's PDS, and for AT Protocol OAuth the grant's DPoP key): sealed with the
    /// tokens, since a key is as secret as they are.
    pub context: Option<SecretString>,
}

/// The plaintext form that goes into the sealer, and only there.
#[derive(Serialize, Deserialize)]
struct Plain<'a> {
    #[serde(borrow)]
    a: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    r: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    s: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    c: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, thiserror::Error)]
#[error("opened token data is not a token set")]
pub struct MalformedTokens;

impl TokenSet {
    pub fn new(access_token: impl Into<String>) -> Self {
        Self {
            access_token: SecretString::from(access_token.into()),
            refresh_token: None,
            token_secret: None,
            context: None,
        }
    }

    pub fn with_refresh_token(mut self, token: impl Into<String>) -> Self {
        self.refresh_token = Some(SecretString::from(token.into()));
        self
    }

    pub fn with_token_secret(mut self, secret: impl Into<String>) -> Self {
        self.token_secret = Some(SecretString::from(secret.into()));
        self
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(SecretString::from(context.into()));
        self
    }

    pub(crate) fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let plain = Plain {
            a: self.access_token.expose_secret().into(),
            r: self.refresh_token.as_ref().map(|t| t.expose_secret().into()),
            s: self.token_secret.as_ref().map(|t| t.expose_secret().into()),
            c: self.context.as_ref().map(|t| t.expose_secret().into()),
        };
        Zeroizing::new(serde_json::to_vec(&plain).expect("strings always serialize"))
    }

    pub(crate) fn from_plaintext(bytes: &[u8]) -> Result<Self, MalformedTokens> {
        let plain: Plain<'_> = serde_json::from_slice(bytes).map_err(|_| MalformedTokens)?;
        Ok(Self {
            access_token: SecretString::from(plain.a.into_owned()),
            refresh_token: plain.r.map(|t| SecretString::from(t.into_owned())),
            token_secret: plain.s.map(|t| SecretString::from(t.into_owned())),
            context: plain.c.map(|t| SecretString::from(t.into_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let tokens = TokenSet::new("at-SECRET-1")
            .with_refresh_token("rt-SECRET-2")
            .with_token_secret("ts-SECRET-3")
            .with_context("ctx-SECRET-4");
        let shown = format!("{tokens:?} {tokens:#?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn plaintext_round_trip() {
        let tokens = TokenSet::new("a\"b\\c").with_refresh_token("r");
        let back = TokenSet::from_plaintext(&tokens.to_plaintext()).unwrap();
        assert_eq!(back.access_token.expose_secret(), "a\"b\\c");
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "r");
        assert!(back.token_secret.is_none() && back.context.is_none());
        let bound = TokenSet::new("a").with_context(r#"{"pds":"https://pds.example"}"#);
        let back = TokenSet::from_plaintext(&bound.to_plaintext()).unwrap();
        assert_eq!(back.context.unwrap().expose_secret(), r#"{"pds":"https://pds.example"}"#);
        assert!(TokenSet::from_plaintext(b"{}").is_err());
    }
}
