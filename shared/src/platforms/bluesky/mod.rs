//! Bluesky (the AT Protocol): an account is a DID whose repository lives on a PDS found from its
//! identity ([`identity`]); Herald writes `app.bsky.feed.post` records into it over XRPC.
//!
//! Connect: with an **app password** (`com.atproto.server.createSession`), which the user types
//! into Herald's own page (Bluesky has no consent page for it); a session from the account's main
//! password is refused and ended, since it could do anything the user can. The session's
//! `refreshJwt` is refreshed (`refreshSession`, rotated on every use) and ended on disconnect
//! (`deleteSession`). The grant's context holds the PDS, so every call goes to the user's own
//! server, under the egress policy: a PDS comes from a DID document anyone can write.
//!
//! Tested against the real reference PDS (`infra/pds`), not a simulator.

use base64::Engine;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

mod dpop;
mod identity;
mod oauth;
mod publish;
mod richtext;
mod rules;

use identity::xrpc;

use super::adapter::{Adapter, Answer, RateHeaders};
use super::publish::{Listing, Lookup, Outgoing, Published, Throttle, seen};
use super::settings::{AppCredentials, PlatformApps};
use super::{
    AuthorizeStart, CallbackParams, Discovered, FormField, Grant, PendingAuth, PlatformClient, PlatformError,
    SignInForm,
};
use crate::domain::budget::{Budget, Scope, Window};
use crate::domain::post::{Broken, Media};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use crate::store::Account;

pub(super) struct Bluesky;
pub(super) static BLUESKY: Bluesky = Bluesky;

const P: Platform = Platform::Bluesky;
/// The connector of app passwords (`PATCH /v1/tenant {"connectors": {"bluesky": "app_password"}}`).
const APP_PASSWORD: &str = "app_password";

/// Herald's page for an app password: the handle and the password, posted to the callback.
static APP_PASSWORD_FORM: SignInForm = SignInForm {
    title: "Connect your Bluesky account",
    intro: "Enter your handle and an app password. Create one in Bluesky under Settings → Privacy and \
            security → App passwords; do not use your account's password.",
    fields: &[
        FormField { name: "identifier", label: "Handle", secret: false, autocomplete: "username" },
        FormField { name: "password", label: "App password", secret: true, autocomplete: "off" },
    ],
};

/// What a Bluesky grant is bound to beyond its tokens: the account's PDS, and for an OAuth grant
/// its authorization server and DPoP key.
#[derive(Debug, Serialize, Deserialize)]
struct Context {
    pds: Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oauth: Option<oauth::OAuthGrant>,
}

impl Context {
    fn of(tokens: &TokenSet) -> Result<Self, PlatformError> {
        tokens
            .context
            .as_ref()
            .and_then(|c| serde_json::from_str(c.expose_secret()).ok())
            .ok_or_else(|| unexpected("the grant does not say which PDS holds the account"))
    }

    fn sealed(&self) -> String {
        serde_json::to_string(self).expect("a URL serializes")
    }
}

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

impl Adapter for Bluesky {
    /// App passwords (the default, as tenants have them) and AT Protocol OAuth.
    fn connectors(&self) -> &'static [&'static str] {
        &[APP_PASSWORD, oauth::OAUTH]
    }

    /// Bluesky has no app to register for app passwords.
    fn app<'a>(&self, _apps: &'a PlatformApps, _connector: &str) -> Option<&'a AppCredentials> {
        None
    }

    /// Neither connector has an app to register: OAuth's client is Herald's metadata document.
    fn configured(&self, _apps: &PlatformApps, connector: &str) -> bool {
        [APP_PASSWORD, oauth::OAUTH].contains(&connector)
    }

    fn client_metadata(&self, callback: &Url) -> Option<Value> {
        Some(oauth::client_metadata(callback))
    }

    fn grantor_family(&self) -> &'static str {
        "bluesky"
    }

    /// Both begin on Herald's own page: the app password form, or OAuth's handle.
    fn start<'a>(
        &'a self,
        _client: &'a PlatformClient,
        connector: &'a str,
        callback: &'a Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move {
            let (stage, form) = if connector == oauth::OAUTH {
                (oauth::HANDLE_STAGE, &oauth::HANDLE_FORM)
            } else {
                (APP_PASSWORD, &APP_PASSWORD_FORM)
            };
            Ok(AuthorizeStart {
                url: callback.clone(),
                pending: PendingAuth { key: super::oauth2::random_token(), secret: None, connector: stage.into() },
                form: Some(form),
            })
        })
    }

    /// OAuth's handle: on to the account's authorization server.
    fn proceed<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a Url,
    ) -> Answer<'a, Option<AuthorizeStart>> {
        Box::pin(async move {
            if pending.connector != oauth::HANDLE_STAGE {
                return Ok(None);
            }
            client.bluesky_oauth_begin(params, callback).await.map(Some)
        })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a Url,
    ) -> Answer<'a, Vec<Discovered>> {
        if pending.connector == oauth::OAUTH {
            return Box::pin(client.bluesky_oauth_finish(pending, params, callback));
        }
        Box::pin(connect_with_app_password(client, params))
    }

    fn refresh<'a>(
        &'a self,
        client: &'a PlatformClient,
        refresh_token: &'a SecretString,
        grant: &'a TokenSet,
    ) -> Answer<'a, Option<Grant>> {
        Box::pin(async move {
            let context = Context::of(grant)?;
            if let Some(oauth) = &context.oauth {
                return client.bluesky_oauth_refresh(refresh_token, &context, oauth).await.map(Some);
            }
            let request = client
                .bluesky_request(Method::POST, &xrpc(&context.pds, "com.atproto.server.refreshSession"))?
                .bearer_auth(refresh_token.expose_secret());
            let session: Session =
                client.json(P, "POST /xrpc/com.atproto.server.refreshSession", request, refusal).await?;
            Ok(Some(session.grant(&context).0))
        })
    }

    /// Ends the session at the PDS (`deleteSession` with the refresh token).
    fn revoke<'a>(&'a self, client: &'a PlatformClient, tokens: &'a TokenSet) -> Answer<'a, ()> {
        Box::pin(async move {
            let Some(refresh) = &tokens.refresh_token else { return Ok(()) };
            let context = Context::of(tokens)?;
            if let Some(oauth) = &context.oauth {
                return client.bluesky_oauth_revoke(tokens, oauth).await;
            }
            let request = client
                .bluesky_request(Method::POST, &xrpc(&context.pds, "com.atproto.server.deleteSession"))?
                .bearer_auth(refresh.expose_secret());
            client.answer(P, "POST /xrpc/com.atproto.server.deleteSession", request, refusal).await.map(|_| ())
        })
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published> {
        Box::pin(client.publish_bluesky(account, tokens, post))
    }

    fn recent<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        since: time::OffsetDateTime,
        after: Option<&'a str>,
    ) -> Answer<'a, Option<Listing>> {
        Box::pin(async move { client.bluesky_recent(account, tokens, since, after).await.map(Some) })
    }

    fn deletes(&self) -> bool {
        true
    }

    /// `com.atproto.repo.deleteRecord` of the post's record key.
    fn delete<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async move { client.bluesky_delete(account, tokens, id).await.map(Some) })
    }

    /// The PDS's `RateLimit-*` headers, on `com.atproto.server.getSession` (sent where the PDS
    /// limits rates, as bsky.social's do).
    fn rate_headers<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
    ) -> Answer<'a, Option<RateHeaders>> {
        Box::pin(async move {
            const EXPECTED: &[&str] =
                &["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"];
            const ENDPOINT: &str = "GET /xrpc/com.atproto.server.getSession";
            let context = Context::of(tokens)?;
            let url = xrpc(&context.pds, "com.atproto.server.getSession");
            let response = client
                .bluesky_call(Method::GET, &url, tokens, &context, (ENDPOINT, false), oauth::Payload::None)
                .await?;
            let (headers, _) = client.read_answer(P, response, refusal).await?;
            Ok(Some(RateHeaders { endpoint: ENDPOINT, expected: EXPECTED, seen: seen(&headers, EXPECTED) }))
        })
    }

    fn media_types(&self) -> &'static [&'static str] {
        rules::MEDIA_TYPES
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        rules::check(text, media)
    }

    /// The record key is the post's: `putRecord` under it again cannot make a second record
    /// (a repository holds one record per collection and key), however the two requests
    /// interleave, so the resend need not wait.
    fn lookup(&self, _account: &Account) -> Lookup {
        Lookup::Resend { settle: std::time::Duration::ZERO, within: None, then_listed: false }
    }

    /// The PDS's repository writes: 5,000 points an hour and 35,000 a day per account, a new
    /// record costing 3 (the reference PDS's limits, as bsky.social's; infra/pds's facts,
    /// docs.bsky.app/docs/advanced-guides/rate-limits): 1,666 posts an hour, 11,666 a day.
    fn budgets(&self) -> Vec<Budget> {
        vec![
            Budget::publish(P, Scope::Account, 5_000 / WRITE_POINTS, Window::Fixed { seconds: 3_600 }),
            Budget::publish(P, Scope::Account, 35_000 / WRITE_POINTS, Window::Fixed { seconds: 86_400 }),
        ]
    }

    fn throttle_hint(&self, headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
        throttle_hint(headers, now)
    }
}

/// What creating a record costs of the PDS's write points.
const WRITE_POINTS: u32 = 3;

/// A successful answer whose `RateLimit-Remaining` leaves less than another record's points:
/// hold off until `RateLimit-Reset` (Unix seconds, as the PDS sends it).
fn throttle_hint(headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
    let header = |name: &str| super::header(headers, name).and_then(|v| v.trim().parse::<i64>().ok());
    let remaining = header("ratelimit-remaining")?;
    (remaining < i64::from(WRITE_POINTS)).then(|| Throttle {
        app_wide: false,
        until: header("ratelimit-reset").filter(|at| *at > now).unwrap_or(now + 300),
    })
}

/// A PDS's XRPC error (`{"error", "message"}`): an expired or refused token is `Unauthorized`
/// (refreshed, or the user connects again), 429 `RateLimitExceeded` waits for `Retry-After` or
/// `RateLimit-Reset`, anything else is the PDS's refusal in its own words (`InvalidRequest`
/// with the record's validation error, `InvalidSwap`, `RecordNotFound`).
pub(super) fn refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    let parsed: Value = serde_json::from_slice(answer.body).unwrap_or_default();
    let code = parsed["error"].as_str().map_or_else(|| answer.status.to_string(), str::to_owned);
    let message = parsed["message"].as_str().unwrap_or_default().to_owned();
    let status = answer.status;
    if status == 429 {
        let reset = super::header(answer.headers, "ratelimit-reset").and_then(|v| v.trim().parse::<i64>().ok());
        let retry_at = if answer.said { answer.retry_at } else { reset.unwrap_or(answer.retry_at) };
        return super::throttled(platform, retry_at.max(answer.now));
    }
    match (status, code.as_str()) {
        (401, _) | (_, "ExpiredToken" | "InvalidToken") => {
            PlatformError::Unauthorized { platform, status, code, message }
        }
        _ => PlatformError::Refused { platform, status, code, message },
    }
}

/// A session as `createSession` and `refreshSession` answer it.
#[derive(Deserialize)]
struct Session {
    did: String,
    handle: String,
    #[serde(rename = "accessJwt")]
    access: String,
    #[serde(rename = "refreshJwt")]
    refresh: String,
}

impl Session {
    /// The grant, and the session's account and handle.
    fn grant(self, context: &Context) -> (Grant, String, String) {
        let (access, refresh) = (SecretString::from(self.access), SecretString::from(self.refresh));
        let grant = Grant {
            access_expires_at: claim(&access, "exp").and_then(|v| v.as_i64()).and_then(at),
            refresh_expires_at: claim(&refresh, "exp").and_then(|v| v.as_i64()).and_then(at),
            tokens: TokenSet {
                access_token: access,
                refresh_token: Some(refresh),
                token_secret: None,
                context: Some(SecretString::from(context.sealed())),
            },
        };
        (grant, self.did, self.handle)
    }
}

fn at(unix: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix).ok()
}

/// A claim of a session JWT, read without checking its signature: the PDS that issued it is the
/// one that checks it; Herald only learns when it ends and what it may do.
fn claim(jwt: &SecretString, name: &str) -> Option<Value> {
    let payload = jwt.expose_secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let mut claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims[name].take())
}

/// The scopes of a session made with an app password (`com.atproto.appPass`, or
/// `com.atproto.appPassPrivileged` for one allowed direct messages); the account's own password
/// gives `com.atproto.access`.
const APP_PASSWORD_SCOPES: [&str; 2] = ["com.atproto.appPass", "com.atproto.appPassPrivileged"];

async fn connect_with_app_password(
    client: &PlatformClient,
    params: &CallbackParams,
) -> Result<Vec<Discovered>, PlatformError> {
    let field = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (Some(identifier), Some(password)) = (field("identifier"), field("password")) else {
        return Err(PlatformError::Refused {
            platform: P,
            status: 400,
            code: "InvalidRequest".into(),
            message: "a handle and an app password are needed".into(),
        });
    };
    let identity = client.bluesky_identity(identifier).await?;
    let request = client
        .bluesky_request(Method::POST, &xrpc(&identity.pds, "com.atproto.server.createSession"))?
        .json(&json!({ "identifier": identity.did, "password": password }));
    let session: Session = client.json(P, "POST /xrpc/com.atproto.server.createSession", request, refusal).await?;
    let context = Context { pds: identity.pds.clone(), oauth: None };
    let (grant, did, handle) = session.grant(&context);
    let scope =
        claim(&grant.tokens.access_token, "scope").and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_default();
    if did != identity.did || !APP_PASSWORD_SCOPES.contains(&scope.as_str()) {
        // Not an app password (or not this account): the session is ended, not kept.
        let _ = BLUESKY.revoke(client, &grant.tokens).await;
        return Err(PlatformError::Refused {
            platform: P,
            status: 400,
            code: "AppPasswordRequired".into(),
            message: "connect with an app password, not the account's password".into(),
        });
    }
    Ok(vec![Discovered {
        platform: P,
        platform_account_id: did.clone(),
        name: identity.handle.unwrap_or(handle),
        kind: AccountKind::Member,
        scopes: vec![scope],
        grant,
        token_source: None,
        grantor: Some(did),
    }])
}

/// The text's grapheme count and facets as JSON, mentions unresolved ([`super::bluesky_rich_text`]).
pub(super) fn rich_text(text: &str) -> (usize, Vec<Value>) {
    let facets = richtext::detect(text)
        .into_iter()
        .map(|f| {
            let feature = match f.feature {
                richtext::Feature::Mention(handle) => {
                    json!({ "$type": "app.bsky.richtext.facet#mention", "did": handle })
                }
                richtext::Feature::Link(uri) => json!({ "$type": "app.bsky.richtext.facet#link", "uri": uri }),
                richtext::Feature::Tag(tag) => json!({ "$type": "app.bsky.richtext.facet#tag", "tag": tag }),
            };
            json!({ "start": f.start, "end": f.end, "feature": feature })
        })
        .collect();
    (richtext::graphemes(text), facets)
}

impl PlatformClient {
    /// A request to a Bluesky host: each is found from a user's identity.
    fn bluesky_request(&self, method: Method, url: &Url) -> Result<reqwest::RequestBuilder, PlatformError> {
        self.user_host_request(P, method, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers of the reference PDS (seen in tests/it/bluesky.rs) and their classes.
    #[test]
    fn pds_answers_classify_as_their_rows_say() {
        let rows = [
            (400, r#"{"error":"ExpiredToken","message":"Token has expired"}"#, "unauthorized 400 ExpiredToken"),
            (
                400,
                r#"{"error":"InvalidToken","message":"Token could not be verified"}"#,
                "unauthorized 400 InvalidToken",
            ),
            (
                401,
                r#"{"error":"AuthenticationRequired","message":"Invalid identifier or password"}"#,
                "unauthorized 401 AuthenticationRequired",
            ),
            (400, r#"{"error":"InvalidSwap","message":"Record was at bafy…"}"#, "refused 400 InvalidSwap"),
            (
                400,
                r#"{"error":"InvalidRequest","message":"Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"}"#,
                "refused 400 InvalidRequest",
            ),
            (429, r#"{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}"#, "rate_limited until 1900"),
            (502, "", "transient"),
            (200, "{}", "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(super::super::classified(P, status, body, refusal), want, "{status} {body}");
        }
    }

    #[test]
    fn the_pds_budget_headers_hold_off_before_a_write_would_be_refused() {
        let headers = |remaining: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert("ratelimit-remaining", remaining.parse().unwrap());
            map.insert("ratelimit-reset", "1900".parse().unwrap());
            map
        };
        assert_eq!(throttle_hint(&headers("2"), 1000), Some(Throttle { app_wide: false, until: 1900 }));
        assert_eq!(throttle_hint(&headers("3"), 1000), None);
        assert_eq!(throttle_hint(&reqwest::header::HeaderMap::new(), 1000), None);
    }

    #[test]
    fn session_claims_are_read_from_the_jwt() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"scope":"com.atproto.appPass","sub":"did:plc:x","exp":1900}"#);
        let jwt = SecretString::from(format!("eyJhbGciOiJFUzI1NksifQ.{payload}.c2ln"));
        assert_eq!(claim(&jwt, "exp"), Some(json!(1900)));
        assert_eq!(claim(&jwt, "scope"), Some(json!("com.atproto.appPass")));
        assert_eq!(claim(&SecretString::from("not a jwt".to_owned()), "exp"), None);
    }
}
