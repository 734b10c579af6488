//! OAuth 2.0's authorization code flow (RFC 6749 §4.1, PKCE per RFC 7636, revocation per RFC
//! 7009), once for every platform: each platform states its dialect as data ([`Dialect`], in
//! the spirit of Nango's `providers.yaml`: where the consent page and the token endpoint are,
//! how scopes are joined, how the client authenticates, whether PKCE is on, the documented token
//! lifetimes), and this module runs it. What is not data stays with the platform: discovering
//! the accounts behind a grant, Meta's exchange for a long-lived token, X's OAuth 1.0a.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use super::settings::AppCredentials;
use super::{AuthorizeStart, Grant, PendingAuth, PlatformClient, PlatformError, lifetime_end};
use crate::domain::Platform;
use crate::domain::tokens::TokenSet;

/// The name a pending authorization gives the OAuth 2.0 connector (a platform with one
/// connector has only this one).
pub(super) const CONNECTOR: &str = "oauth2";

/// One platform's OAuth 2.0 dialect. URLs are templates over the deployment's platform
/// endpoints ([`super::settings::PlatformEndpoints::expand`]: `{x_api}`, `{meta_graph_version}`…),
/// so the sandbox and production differ only in settings.
#[derive(Debug)]
pub(super) struct Dialect {
    /// The consent page the user's browser is sent to.
    pub authorize: &'static str,
    /// The token endpoint: the code exchange and refreshes.
    pub token: Endpoint,
    /// The revocation endpoint, where the platform has one.
    pub revoke: Option<Endpoint>,
    /// How the requested scopes are joined in the `scope` parameter (RFC 6749 says a space;
    /// Meta takes commas).
    pub scope_separator: &'static str,
    /// How Herald's app proves itself at the token endpoint.
    pub client_auth: ClientAuth,
    /// Whether the token endpoint is called with a form body (RFC 6749) or a query string
    /// (Meta's `GET /oauth/access_token`).
    pub token_method: TokenMethod,
    /// PKCE S256 on the consent page and the code exchange (docs/decisions.md, "PKCE per
    /// platform").
    pub pkce: bool,
    /// The platform's documented lifetimes, for an answer that omits `expires_in` or
    /// `refresh_token_expires_in` (the answer's own figures win).
    pub lifetimes: Lifetimes,
    /// How the token endpoint's refusals read (RFC 6749 §5.2 errors, or the Graph error object).
    pub refusal: super::Refusal,
}

/// An endpoint: its URL template and the name its calls are logged under.
#[derive(Debug)]
pub(super) struct Endpoint {
    pub url: &'static str,
    pub log: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1, the one servers must support).
    Basic,
    /// `client_id` and `client_secret` among the parameters (RFC 6749 §2.3.1's alternative).
    Parameters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenMethod {
    PostForm,
    GetQuery,
}

/// Documented token lifetimes in seconds; `None` where the platform states none.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetimes {
    pub access: Option<i64>,
    pub refresh: Option<i64>,
}

impl Dialect {
    fn url(client: &PlatformClient, platform: Platform, template: &str) -> Result<url::Url, PlatformError> {
        client.endpoints.expand(template).ok_or_else(|| PlatformError::Unexpected {
            platform,
            detail: format!("the endpoint template {template} does not resolve"),
        })
    }

    /// Where to send the user's browser for `scopes`, and what to keep until the callback
    /// (`state`, and the PKCE verifier where PKCE is on).
    pub fn authorize(
        &self,
        client: &PlatformClient,
        platform: Platform,
        app: &AppCredentials,
        callback: &url::Url,
        scopes: &[&str],
    ) -> Result<AuthorizeStart, PlatformError> {
        let state = random_token();
        let mut url = Self::url(client, platform, self.authorize)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", callback.as_str())
            .append_pair("scope", &scopes.join(self.scope_separator))
            .append_pair("state", &state);
        let verifier = self.pkce.then(random_token);
        if let Some(verifier) = &verifier {
            url.query_pairs_mut()
                .append_pair("code_challenge", &pkce_challenge(verifier))
                .append_pair("code_challenge_method", "S256");
        }
        Ok(AuthorizeStart {
            url,
            pending: PendingAuth {
                key: state,
                secret: verifier.map(SecretString::from),
                connector: CONNECTOR.to_owned(),
            },
            form: None,
        })
    }

    /// Exchanges the callback's `code` for a grant; also the scopes the answer says were
    /// granted (empty where it does not say).
    pub async fn exchange(
        &self,
        client: &PlatformClient,
        platform: Platform,
        app: &AppCredentials,
        code: &str,
        callback: &url::Url,
        pending: &PendingAuth,
    ) -> Result<(Grant, Vec<String>), PlatformError> {
        let mut params =
            vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", callback.as_str())];
        if self.pkce {
            let verifier = pending
                .secret
                .as_ref()
                .ok_or_else(|| PlatformError::Unexpected { platform, detail: "no PKCE verifier was kept".into() })?;
            params.push(("code_verifier", verifier.expose_secret()));
        }
        self.token_call(client, platform, app, &params).await
    }

    /// Exchanges a refresh token for a new grant (RFC 6749 §6).
    pub async fn refresh(
        &self,
        client: &PlatformClient,
        platform: Platform,
        app: &AppCredentials,
        refresh_token: &SecretString,
    ) -> Result<Grant, PlatformError> {
        let params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        Ok(self.token_call(client, platform, app, &params).await?.0)
    }

    /// Revokes the grant (RFC 7009): its refresh token where it has one, which ends the whole
    /// grant, else its access token. Nothing to do where the platform has no revocation endpoint.
    pub async fn revoke(
        &self,
        client: &PlatformClient,
        platform: Platform,
        app: &AppCredentials,
        tokens: &TokenSet,
    ) -> Result<(), PlatformError> {
        let Some(endpoint) = &self.revoke else { return Ok(()) };
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let request = self.request(client, platform, app, endpoint, &[("token", token.expose_secret())])?;
        let _: serde_json::Value = client.json(platform, endpoint.log, request, self.refusal).await?;
        Ok(())
    }

    /// One call to the token endpoint with `params` (a grant type and its parameters).
    pub async fn token_call(
        &self,
        client: &PlatformClient,
        platform: Platform,
        app: &AppCredentials,
        params: &[(&str, &str)],
    ) -> Result<(Grant, Vec<String>), PlatformError> {
        let request = self.request(client, platform, app, &self.token, params)?;
        let answer: TokenResponse = client.json(platform, self.token.log, request, self.refusal).await?;
        Ok(answer.into_grant(client.clock.now(), self.lifetimes))
    }

    fn request(
        &self,
        client: &PlatformClient,
        platform: Platform,
        app: &AppCredentials,
        endpoint: &Endpoint,
        params: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, PlatformError> {
        let url = Self::url(client, platform, endpoint.url)?;
        let mut params = params.to_vec();
        if self.client_auth == ClientAuth::Parameters {
            params
                .extend([("client_id", app.client_id.as_str()), ("client_secret", app.client_secret.expose_secret())]);
        }
        let request = match self.token_method {
            TokenMethod::PostForm => client.http.post(url).form(&params),
            TokenMethod::GetQuery => client.http.get(url).query(&params),
        };
        Ok(match self.client_auth {
            ClientAuth::Basic => request.basic_auth(&app.client_id, Some(app.client_secret.expose_secret())),
            ClientAuth::Parameters => request,
        })
    }
}

/// An OAuth token response (RFC 6749 §5.1), with the `refresh_token_expires_in` LinkedIn adds.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_token_expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenResponse {
    /// Lifetimes count from `now`, Herald's clock when the answer arrived; where the answer
    /// states none, the dialect's documented ones (a refresh lifetime only with a refresh token).
    fn into_grant(self, now: OffsetDateTime, documented: Lifetimes) -> (Grant, Vec<String>) {
        let scopes =
            self.scope.unwrap_or_default().split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let refresh_lifetime = self.refresh_token.as_ref().and(self.refresh_token_expires_in.or(documented.refresh));
        let mut tokens = TokenSet::new(self.access_token);
        if let Some(refresh) = self.refresh_token {
            tokens = tokens.with_refresh_token(refresh);
        }
        let grant = Grant {
            tokens,
            access_expires_at: self.expires_in.or(documented.access).and_then(|s| lifetime_end(now, s)),
            refresh_expires_at: refresh_lifetime.and_then(|s| lifetime_end(now, s)),
        };
        (grant, scopes)
    }
}

/// An OAuth error body (RFC 6749 §5.2: `{"error", "error_description"}`) as a refusal.
pub(super) fn refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    let (status, body) = (answer.status, answer.body);
    if status == 429 {
        return super::throttled(platform, answer.retry_at);
    }
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => {
            PlatformError::Refused { platform, status, code: e.error, message: e.error_description.unwrap_or_default() }
        }
        Err(_) => PlatformError::Refused { platform, status, code: status.to_string(), message: String::new() },
    }
}

/// A random URL-safe value for `state` and PKCE verifiers (256 bits).
pub(super) fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = crate::domain::random_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE S256 (RFC 7636): `BASE64URL(SHA256(verifier))`.
pub(super) fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::super::classified;
    use super::*;

    const NONE: Lifetimes = Lifetimes { access: None, refresh: None };

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random_token().len(), 43);
    }

    fn answer(expires_in: Option<i64>, refresh: bool, refresh_in: Option<i64>) -> TokenResponse {
        TokenResponse {
            access_token: "t".into(),
            expires_in,
            refresh_token: refresh.then(|| "r".to_owned()),
            refresh_token_expires_in: refresh_in,
            scope: None,
        }
    }

    #[test]
    fn malformed_lifetimes_do_not_panic() {
        let now = OffsetDateTime::now_utc();
        for seconds in [i64::MAX, i64::MIN, i64::MAX / 2] {
            let (grant, _) = answer(Some(seconds), true, Some(seconds)).into_grant(now, NONE);
            assert!(grant.access_expires_at.is_none() && grant.refresh_expires_at.is_none(), "{seconds}");
        }
        assert_eq!(lifetime_end(now, 7200), Some(now + time::Duration::hours(2)));
    }

    /// The answer's own lifetimes win; the documented ones fill what it omits; a refresh
    /// lifetime needs a refresh token.
    #[test]
    fn lifetimes_come_from_the_answer_then_the_dialect() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let documented = Lifetimes { access: Some(100), refresh: Some(1000) };
        let at = |s: i64| Some(now + time::Duration::seconds(s));
        let rows = [
            (answer(Some(7), true, Some(70)), documented, at(7), at(70)),
            (answer(None, true, None), documented, at(100), at(1000)),
            (answer(None, false, None), documented, at(100), None),
            (answer(None, true, None), NONE, None, None),
            (answer(Some(7), false, Some(70)), NONE, at(7), None),
        ];
        for (i, (answer, documented, access, refresh)) in rows.into_iter().enumerate() {
            let (grant, _) = answer.into_grant(now, documented);
            assert_eq!((grant.access_expires_at, grant.refresh_expires_at), (access, refresh), "row {i}");
        }
    }

    #[test]
    fn granted_scopes_split_on_spaces_and_commas() {
        let mut answer = answer(None, false, None);
        answer.scope = Some("a b,c  ".into());
        assert_eq!(answer.into_grant(OffsetDateTime::now_utc(), NONE).1, ["a", "b", "c"]);
    }

    #[test]
    fn refusals_name_the_platform_code() {
        let body = br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        let e = refusal(
            Platform::ALL[0],
            &super::super::Answer { status: 400, body, retry_at: 0, said: false, now: 0, headers: &Default::default() },
        );
        assert!(e.is_dead_grant());
        assert!(matches!(e, PlatformError::Refused { ref code, .. } if code == "invalid_grant"));
        let transient = PlatformError::Transient { platform: Platform::ALL[0], detail: "status 503".into() };
        assert!(!transient.is_dead_grant());
    }

    /// OAuth token-endpoint errors (RFC 6749 §5.2), as X's and LinkedIn's token endpoints send
    /// them.
    #[test]
    fn oauth_errors_classify_as_their_rows_say() {
        let rows = [
            (
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
                "refused 400 invalid_grant dead",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"Value passed for the token was invalid."}"#,
                "refused 400 invalid_request dead",
            ),
            // Herald's own app credentials, not the user's grant: not a dead grant.
            (
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                "refused 401 invalid_client",
            ),
            (400, r#"{"error":"unsupported_grant_type"}"#, "refused 400 unsupported_grant_type"),
            (403, "<html>forbidden</html>", "refused 403 403"),
            (429, r#"{"error":"rate_limited"}"#, "rate_limited until 1900"),
            (503, "", "transient"),
            (200, "{}", "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(classified(Platform::ALL[0], status, body, refusal), want, "{status} {body}");
        }
    }
}
