//! Mastodon: every server is its own platform host with its own app registry. A user names their
//! server on Herald's page; Herald registers its app there once (`POST /api/v1/apps`, kept per
//! server in the store, its secret sealed), then sends the user to the server's consent page
//! (OAuth 2.0 authorization code with PKCE S256). Tokens do not expire; they are revoked on
//! disconnect (`POST /oauth/revoke`). Posts go to `POST /api/v1/statuses` with an
//! `Idempotency-Key` (Mastodon's own exactly-once), media through `POST /api/v2/media` (processed
//! asynchronously); limits come from the server (`GET /api/v2/instance`, `X-RateLimit-*`).
//!
//! Sources (docs.joinmastodon.org): methods/apps, methods/oauth, spec/oauth, methods/accounts
//! (`verify_credentials`), methods/instance (`/api/v2/instance`), methods/statuses (the
//! `Idempotency-Key` header, "stored for up to 1 hour"), methods/media (v2: 200 or 202, then
//! `GET /api/v1/media/:id`: 206 while processing), api/rate-limits, entities/Error; requests are
//! held to the Mastodon OpenAPI description in the sandbox (docs/fidelity-ledger.md).

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

mod publish;
mod rules;

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

pub(super) struct Mastodon;
pub(super) static MASTODON: Mastodon = Mastodon;

const P: Platform = Platform::Mastodon;
/// The stage of Herald's page that asks for the server, before the server's consent page.
const SERVER_STAGE: &str = "server";
/// What Herald asks for: to read the account it posts as, post, and upload media.
const SCOPES: &str = "read:accounts write:statuses write:media";
/// "300 requests per 5 minutes" per account, every endpoint (api/rate-limits).
const CALLS_PER_FIVE_MINUTES: u32 = 300;
/// How long after a lost answer the status is sent again under its key: a request the server
/// is still making past this is not expected (Herald gave up on it after its platform timeout,
/// 10 s by default). The same wait as a listing's lag ([`Lookup::LISTED`]).
const RESEND_SETTLE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long after the first send a resend under the same key is still answered with the status
/// it made: the server's hour ("Idempotency keys are stored for up to 1 hour", methods/statuses),
/// counted from when it stored the key, less 5 minutes for the time between Herald's check and
/// the server's (the request's transit, clocks of different instances).
const KEY_KEPT: std::time::Duration = std::time::Duration::from_secs(55 * 60);

static SERVER_FORM: SignInForm = SignInForm {
    title: "Connect your Mastodon account",
    intro: "Enter your Mastodon server (for example mastodon.social, or your full address @you@mastodon.social). \
            You will sign in there and choose whether to let this app post for you.",
    fields: &[FormField { name: "server", label: "Server", secret: false, autocomplete: "url" }],
};

/// What a Mastodon grant is bound to beyond its token: its server and what the server allows.
#[derive(Debug, Serialize, Deserialize)]
struct Context {
    server: Url,
    /// The server's own limits (`configuration.statuses`), read at connect.
    #[serde(flatten)]
    limits: rules::Limits,
}

impl Context {
    fn of(tokens: &TokenSet) -> Result<Self, PlatformError> {
        tokens
            .context
            .as_ref()
            .and_then(|c| serde_json::from_str(c.expose_secret()).ok())
            .ok_or_else(|| unexpected("the grant does not say which server holds the account"))
    }
}

/// What the server stage hands the consent stage: the server and the PKCE verifier.
#[derive(Serialize, Deserialize)]
struct Started {
    server: Url,
    verifier: String,
}

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

fn refused(code: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::Refused { platform: P, status: 400, code: code.to_owned(), message: message.into() }
}

/// The server a user typed, as a base URL: `mastodon.social`, `https://mastodon.social/`,
/// `@ada@mastodon.social` and `ada@mastodon.social` all name `https://mastodon.social`; a URL
/// with a path (a server under a prefix, such as the sandbox's) keeps it. `None` for anything else.
pub(super) fn server(typed: &str) -> Option<Url> {
    let typed = typed.trim();
    let typed = match typed.trim_start_matches('@').rsplit_once('@') {
        Some((user, host)) if !user.is_empty() && !user.contains('/') && !host.contains('/') => host,
        _ => typed,
    };
    let with_scheme = if typed.contains("://") { typed.to_owned() } else { format!("https://{typed}") };
    let mut url = Url::parse(&with_scheme).ok()?;
    if !matches!(url.scheme(), "https" | "http")
        || url.host_str().is_none_or(|h| !h.contains('.') && h != "localhost")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return None;
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Some(url)
}

/// `{server}{path}`, keeping a server's own path prefix.
fn at(server: &Url, path: &str) -> Result<Url, PlatformError> {
    let base = server.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}{path}")).map_err(|e| unexpected(&e.to_string()))
}

/// An account's own id on its server, from Herald's name for it (`{id}@{server}`, as
/// [`Adapter::finish`] makes it).
fn server_id(platform_account_id: &str) -> &str {
    platform_account_id.split_once('@').map_or(platform_account_id, |(id, _)| id)
}

/// The registry key of a server: its URL without the scheme's slashes.
fn key(server: &Url) -> String {
    server.as_str().trim_end_matches('/').to_owned()
}

/// A Mastodon error (`{"error": "…", "error_description"?}`; entities/Error) as Herald's class:
/// 401 is a token the server no longer takes; 429 waits until `X-RateLimit-Reset` (an ISO 8601
/// time); 422 is a validation failure with the server's words.
pub(super) fn refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    let parsed: Value = serde_json::from_slice(answer.body).unwrap_or_default();
    let message = parsed["error"].as_str().unwrap_or_default().to_owned();
    let status = answer.status;
    if status == 429 {
        let reset = super::header(answer.headers, "x-ratelimit-reset").and_then(reset_at);
        let retry_at = if answer.said { answer.retry_at } else { reset.unwrap_or(answer.retry_at) };
        return super::throttled(platform, retry_at.max(answer.now));
    }
    let code = match status {
        401 => return PlatformError::Unauthorized { platform, status, code: "401".into(), message },
        _ => status.to_string(),
    };
    PlatformError::Refused { platform, status, code, message }
}

/// [`refusal`] of a read made without the token: a 401 or 403 there says the server does not
/// serve anonymous reads (`DISALLOW_UNAUTHENTICATED_API_ACCESS`), not that the grant is gone.
pub(super) fn anonymous_refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    match refusal(platform, answer) {
        PlatformError::Unauthorized { status, message, .. }
        | PlatformError::Refused { status: status @ 403, message, .. } => PlatformError::Refused {
            platform,
            status,
            code: "anonymous_reads_refused".into(),
            message: format!("the server does not let its statuses be read without a token: {message}"),
        },
        other => other,
    }
}

/// `X-RateLimit-Reset`: "timestamp at which the rate limit will reset" (ISO 8601), Unix seconds.
fn reset_at(value: &str) -> Option<i64> {
    time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

impl PlatformClient {
    fn mastodon_request(&self, method: Method, url: &Url) -> Result<reqwest::RequestBuilder, PlatformError> {
        self.user_host_request(P, method, url)
    }

    /// Herald's app on `server`: the one kept, or, given the callback to register, one registered
    /// now (`POST /api/v1/apps`) and kept (the first kept wins a race).
    async fn mastodon_app(&self, server: &Url, register: Option<&Url>) -> Result<AppCredentials, PlatformError> {
        let registry =
            self.server_apps.as_ref().ok_or_else(|| unexpected("this deployment keeps no apps for users' servers"))?;
        let store_error = |e: crate::BoxError| PlatformError::Transient { platform: P, detail: e.to_string() };
        if let Some(app) = registry.get(P, &key(server)).await.map_err(store_error)? {
            return Ok(app);
        }
        let Some(callback) = register else {
            return Err(unexpected("Herald has no app on this server"));
        };
        let body = json!({ "client_name": "Herald", "redirect_uris": [callback.as_str()], "scopes": SCOPES });
        let request = self.mastodon_request(Method::POST, &at(server, "/api/v1/apps")?)?.json(&body);
        let made: Value = self.json(P, "POST /api/v1/apps", request, refusal).await?;
        let (Some(id), Some(secret)) = (made["client_id"].as_str(), made["client_secret"].as_str()) else {
            return Err(unexpected("the server registered no client id and secret"));
        };
        let app = AppCredentials { client_id: id.to_owned(), client_secret: SecretString::from(secret.to_owned()) };
        registry.put(P, &key(server), &app).await.map_err(store_error)
    }
}

impl Adapter for Mastodon {
    fn grantor_family(&self) -> &'static str {
        "mastodon"
    }

    fn app<'a>(&self, _apps: &'a PlatformApps, _connector: &str) -> Option<&'a AppCredentials> {
        None
    }

    /// Herald registers its app on each server as users connect: nothing to configure.
    fn configured(&self, _apps: &PlatformApps, _connector: &str) -> bool {
        true
    }

    fn start<'a>(
        &'a self,
        _client: &'a PlatformClient,
        _connector: &'a str,
        callback: &'a Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move {
            Ok(AuthorizeStart {
                url: callback.clone(),
                pending: PendingAuth {
                    key: super::oauth2::random_token(),
                    secret: None,
                    connector: SERVER_STAGE.to_owned(),
                },
                form: Some(&SERVER_FORM),
            })
        })
    }

    /// The server the user named: Herald's app there (registered on first use), then the
    /// server's consent page with PKCE.
    fn proceed<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a Url,
    ) -> Answer<'a, Option<AuthorizeStart>> {
        Box::pin(async move {
            if pending.connector != SERVER_STAGE {
                return Ok(None);
            }
            let typed = params.get("server").map(String::as_str).unwrap_or_default();
            let server = server(typed).ok_or_else(|| refused("server_invalid", "not a Mastodon server's address"))?;
            let app = client.mastodon_app(&server, Some(callback)).await?;
            let state = super::oauth2::random_token();
            let verifier = super::oauth2::random_token();
            let mut url = at(&server, "/oauth/authorize")?;
            url.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", &app.client_id)
                .append_pair("redirect_uri", callback.as_str())
                .append_pair("scope", SCOPES)
                .append_pair("state", &state)
                .append_pair("code_challenge", &super::oauth2::pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            let started = serde_json::to_string(&Started { server, verifier }).expect("a URL and a string serialize");
            Ok(Some(AuthorizeStart {
                url,
                pending: PendingAuth {
                    key: state,
                    secret: Some(SecretString::from(started)),
                    connector: super::oauth2::CONNECTOR.to_owned(),
                },
                form: None,
            }))
        })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a Url,
    ) -> Answer<'a, Vec<Discovered>> {
        Box::pin(async move {
            let started: Started = pending
                .secret
                .as_ref()
                .and_then(|s| serde_json::from_str(s.expose_secret()).ok())
                .ok_or_else(|| unexpected("the authorization did not name a server"))?;
            let code = params.get("code").ok_or_else(|| unexpected("the callback has no code"))?;
            let server = started.server;
            let app = client.mastodon_app(&server, None).await?;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.expose_secret()),
                ("redirect_uri", callback.as_str()),
                ("code_verifier", started.verifier.as_str()),
                ("scope", SCOPES),
            ];
            let request = client.mastodon_request(Method::POST, &at(&server, "/oauth/token")?)?.form(&form);
            let token: Value = client.json(P, "POST /oauth/token", request, refusal).await?;
            let access = token["access_token"].as_str().ok_or_else(|| unexpected("no access token"))?.to_owned();
            let request = client
                .mastodon_request(Method::GET, &at(&server, "/api/v1/accounts/verify_credentials")?)?
                .bearer_auth(&access);
            let me: Value = client.json(P, "GET /api/v1/accounts/verify_credentials", request, refusal).await?;
            let id = me["id"].as_str().ok_or_else(|| unexpected("the account has no id"))?.to_owned();
            let request = client.mastodon_request(Method::GET, &at(&server, "/api/v2/instance")?)?;
            let instance: Value = client.json(P, "GET /api/v2/instance", request, refusal).await?;
            let statuses = &instance["configuration"]["statuses"];
            let limit = |field: &str, default: usize| {
                statuses[field].as_u64().and_then(|n| usize::try_from(n).ok()).filter(|n| *n > 0).unwrap_or(default)
            };
            let host = server.host_str().unwrap_or_default().to_owned();
            let defaults = rules::Limits::DEFAULT;
            let limits = rules::Limits {
                max_characters: limit("max_characters", defaults.max_characters),
                url_characters: limit("characters_reserved_per_url", defaults.url_characters),
                max_media: limit("max_media_attachments", defaults.max_media),
            };
            let context = Context { server: server.clone(), limits };
            let sealed = serde_json::to_string(&context).expect("the context serializes");
            let username = me["username"].as_str().unwrap_or(&id);
            let scopes = token["scope"].as_str().unwrap_or(SCOPES).split(' ').map(str::to_owned).collect();
            Ok(vec![Discovered {
                platform: P,
                // An account id is its server's: the server keeps two apart.
                platform_account_id: format!("{id}@{}", key(&server)),
                name: format!("@{username}@{host}"),
                kind: AccountKind::Member,
                scopes,
                grant: Grant {
                    tokens: TokenSet::new(access).with_context(sealed),
                    access_expires_at: None,
                    refresh_expires_at: None,
                },
                token_source: None,
                grantor: None,
            }])
        })
    }

    /// `POST /oauth/revoke` with the app's credentials and the token.
    fn revoke<'a>(&'a self, client: &'a PlatformClient, tokens: &'a TokenSet) -> Answer<'a, ()> {
        Box::pin(async move {
            let context = Context::of(tokens)?;
            let app = client.mastodon_app(&context.server, None).await?;
            let form = [
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.expose_secret()),
                ("token", tokens.access_token.expose_secret()),
            ];
            let request = client.mastodon_request(Method::POST, &at(&context.server, "/oauth/revoke")?)?.form(&form);
            let _: Value = client.json(P, "POST /oauth/revoke", request, refusal).await?;
            Ok(())
        })
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published> {
        Box::pin(async move { client.publish_mastodon(tokens, &Context::of(tokens)?, post).await })
    }

    fn deletes(&self) -> bool {
        true
    }

    /// `DELETE /api/v1/statuses/:id` → the deleted status.
    fn delete<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async move {
            let context = Context::of(tokens)?;
            let url = at(&context.server, &format!("/api/v1/statuses/{id}"))?;
            let request =
                client.mastodon_request(Method::DELETE, &url)?.bearer_auth(tokens.access_token.expose_secret());
            let _: Value = client.json(P, "DELETE /api/v1/statuses/:id", request, refusal).await?;
            Ok(Some(()))
        })
    }

    /// Every answer carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (api/rate-limits).
    fn rate_headers<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
    ) -> Answer<'a, Option<RateHeaders>> {
        Box::pin(async move {
            const EXPECTED: &[&str] = &["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];
            let context = Context::of(tokens)?;
            let url = at(&context.server, "/api/v1/accounts/verify_credentials")?;
            let request = client.mastodon_request(Method::GET, &url)?.bearer_auth(tokens.access_token.expose_secret());
            let (headers, _) = client.answer(P, "GET /api/v1/accounts/verify_credentials", request, refusal).await?;
            Ok(Some(RateHeaders {
                endpoint: "GET /api/v1/accounts/verify_credentials",
                expected: EXPECTED,
                seen: seen(&headers, EXPECTED),
            }))
        })
    }

    fn media_types(&self) -> &'static [&'static str] {
        rules::MEDIA_TYPES
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        rules::check(text, media, &rules::Limits::DEFAULT)
    }

    /// The same `Idempotency-Key`, which the server keeps an hour. Mastodon's `PostStatusService`
    /// reads the key, makes the status, and only then stores the key (`redis.setex(key, 3_600,
    /// id)`): a repeat after that answers the status it made, but a repeat while the first
    /// request is still being made makes a second status, and a server finishes a request whose
    /// client gave up. So the resend waits [`RESEND_SETTLE`] after the lost answer, and is made
    /// only while the key is surely kept: [`KEY_KEPT`], the hour less a margin for the time
    /// between Herald's check and the server's. Past that a resend could post twice, so the
    /// account's statuses are read instead ([`recent`](Adapter::recent)).
    fn lookup(&self, _account: &Account) -> Lookup {
        Lookup::Resend { settle: RESEND_SETTLE, within: Some(KEY_KEPT), then_listed: true }
    }

    /// One page of the account's statuses (`GET /api/v1/accounts/:id/statuses`), read without
    /// the token: the endpoint takes a token only with `read:statuses` ("authorize_if_got_token!
    /// :read, :'read:statuses'", Mastodon's `Accounts::StatusesController`), which Herald does not
    /// ask for, and Herald's statuses are public. A server that refuses anonymous reads
    /// (`DISALLOW_UNAUTHENTICATED_API_ACCESS`) leaves the look failed, and the target `unknown`.
    fn recent<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        since: time::OffsetDateTime,
        after: Option<&'a str>,
    ) -> Answer<'a, Option<Listing>> {
        Box::pin(async move { client.mastodon_recent(account, &Context::of(tokens)?, since, after).await.map(Some) })
    }

    /// Mastodon is a Rails app: Rails' request-id middleware (on by default) answers every
    /// request with `x-request-id`, which is what its logs carry.
    fn request_id_header(&self) -> Option<&'static str> {
        Some("x-request-id")
    }

    fn budgets(&self) -> Vec<Budget> {
        vec![Budget::publish(P, Scope::Account, CALLS_PER_FIVE_MINUTES, Window::Fixed { seconds: 300 })]
    }

    /// Nearly spent (fewer than 3 calls left): wait for `X-RateLimit-Reset`.
    fn throttle_hint(&self, headers: &reqwest::header::HeaderMap, _now: i64) -> Option<Throttle> {
        let remaining = super::header(headers, "x-ratelimit-remaining")?.trim().parse::<i64>().ok()?;
        let until = super::header(headers, "x-ratelimit-reset").and_then(reset_at)?;
        (remaining < 3).then_some(Throttle { app_wide: false, until })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_what_the_user_meant() {
        for (typed, want) in [
            ("mastodon.social", Some("https://mastodon.social/")),
            ("https://mastodon.social/", Some("https://mastodon.social/")),
            ("@ada@mastodon.social", Some("https://mastodon.social/")),
            ("ada@Mastodon.Social", Some("https://mastodon.social/")),
            ("http://127.0.0.1:4000/mastodon/", Some("http://127.0.0.1:4000/mastodon")),
            ("mastodon", None),
            ("ftp://mastodon.social", None),
            ("https://mastodon.social/?x=1", None),
            ("https://user@mastodon.social", None),
            ("", None),
        ] {
            assert_eq!(server(typed).map(String::from).as_deref(), want, "{typed}");
        }
    }

    /// Mastodon's errors (entities/Error and the methods' documented answers) and their classes.
    #[test]
    fn mastodon_answers_classify_as_their_rows_say() {
        let rows = [
            (401, r#"{"error":"The access token is invalid"}"#, "unauthorized 401 401"),
            (401, r#"{"error":"The access token was revoked"}"#, "unauthorized 401 401"),
            (422, r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#, "refused 422 422"),
            (404, r#"{"error":"Record not found"}"#, "refused 404 404"),
            (429, r#"{"error":"Too many requests"}"#, "rate_limited until 1900"),
            (503, r#"{"error":"Service unavailable"}"#, "transient"),
            (200, r#"{"id":"1"}"#, "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(super::super::classified(P, status, body, refusal), want, "{status} {body}");
        }
        assert_eq!(reset_at("2026-12-02T13:25:00.019685Z"), Some(1_796_217_900));
    }
}
