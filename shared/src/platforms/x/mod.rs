//! X: OAuth 2.0 authorization code with PKCE (confidential client, HTTP Basic on the token
//! endpoints), rotating refresh tokens, OAuth 1.0a three-legged, and `GET /2/users/me`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod publish;
mod rules;
pub(super) mod webhooks;

use super::adapter::{Adapter, Answer, RateHeaders};
use super::oauth2::{self, ClientAuth, Dialect, Endpoint, Lifetimes, TokenMethod};
use super::publish::{Listing, Outgoing, Published, Throttle};
use super::settings::{AppCredentials, PlatformApps};
use super::{AuthorizeStart, CallbackParams, Discovered, Grant, PendingAuth, PlatformClient, PlatformError, oauth1};
use crate::domain::budget::{Budget, Scope, Window};
use crate::domain::post::{Broken, Media};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use crate::store::Account;

const P: Platform = Platform::X;
/// Post, upload media, read the user, and `offline.access` for a refresh token.
const SCOPES: &[&str] = &["tweet.read", "tweet.write", "users.read", "media.write", "offline.access"];

/// The connectors' names in a pending authorization and in the tenant's setting.
const OAUTH2: &str = oauth2::CONNECTOR;
const OAUTH1: &str = "oauth1";

/// X's adapter: two connectors (OAuth 2.0 with PKCE, OAuth 1.0a), told apart here only: the
/// tenant's setting picks one at the start, the pending authorization names it at the callback,
/// and a grant's tokens show it (OAuth 1.0a ones carry a token secret).
pub(super) struct X;

impl Adapter for X {
    fn grantor_family(&self) -> &'static str {
        "x"
    }

    fn connectors(&self) -> &'static [&'static str] {
        &[OAUTH2, OAUTH1]
    }

    fn app<'a>(&self, apps: &'a PlatformApps, connector: &str) -> Option<&'a AppCredentials> {
        match connector {
            OAUTH1 => apps.x_oauth1.as_ref(),
            _ => apps.x.as_ref(),
        }
    }

    fn start<'a>(
        &'a self,
        client: &'a PlatformClient,
        connector: &'a str,
        callback: &'a url::Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move {
            match connector {
                OAUTH1 => start_oauth1(client, callback).await,
                _ => OAUTH2_DIALECT.authorize(client, P, app(client, OAUTH2)?, callback, SCOPES),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a url::Url,
    ) -> Answer<'a, Vec<Discovered>> {
        Box::pin(async move {
            match pending.connector.as_str() {
                OAUTH1 => finish_oauth1(client, pending, params).await,
                _ => finish_oauth2(client, pending, params, callback).await,
            }
        })
    }

    fn refresh<'a>(
        &'a self,
        client: &'a PlatformClient,
        refresh_token: &'a SecretString,
        _grant: &'a TokenSet,
    ) -> Answer<'a, Option<Grant>> {
        Box::pin(async move { OAUTH2_DIALECT.refresh(client, P, app(client, OAUTH2)?, refresh_token).await.map(Some) })
    }

    /// OAuth 2.0 grants are revoked; OAuth 1.0a tokens have no revoke endpoint.
    fn revoke<'a>(&'a self, client: &'a PlatformClient, tokens: &'a TokenSet) -> Answer<'a, ()> {
        Box::pin(async move {
            match tokens.token_secret {
                None => OAUTH2_DIALECT.revoke(client, P, app(client, OAUTH2)?, tokens).await,
                Some(_) => Ok(()),
            }
        })
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published> {
        Box::pin(client.publish_x(tokens, post.text, post.media))
    }

    fn deletes(&self) -> bool {
        true
    }

    /// `DELETE /2/tweets/{id}` answers `{"data": {"deleted": true}}` (X's OpenAPI `TweetDeleteResponse`).
    fn delete<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async move {
            let url = format!("{}/2/tweets/{id}", client.endpoints.x_api.as_str().trim_end_matches('/'));
            let request =
                client.http.delete(&url).header("authorization", client.x_authorization(tokens, "DELETE", &url, &[])?);
            let body: serde_json::Value = client.json(P, "DELETE /2/tweets/{id}", request, refusal).await?;
            match body["data"]["deleted"].as_bool() {
                Some(true) => Ok(Some(())),
                _ => Err(PlatformError::Unexpected { platform: P, detail: format!("the delete answered {body}") }),
            }
        })
    }

    /// X's rate-limit headers on every metered call (docs.x.com rate limits: `x-rate-limit-limit`,
    /// `-remaining`, `-reset`), read from `GET /2/users/me`.
    fn rate_headers<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
    ) -> Answer<'a, Option<RateHeaders>> {
        Box::pin(async move {
            const EXPECTED: &[&str] = &["x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"];
            let url = format!("{}/2/users/me", client.endpoints.x_api.as_str().trim_end_matches('/'));
            let request =
                client.http.get(&url).header("authorization", client.x_authorization(tokens, "GET", &url, &[])?);
            let (headers, _) = client.answer(P, "GET /2/users/me", request, refusal).await?;
            Ok(Some(RateHeaders {
                endpoint: "GET /2/users/me",
                expected: EXPECTED,
                seen: crate::platforms::publish::seen(&headers, EXPECTED),
            }))
        })
    }

    fn recent<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        since: time::OffsetDateTime,
        after: Option<&'a str>,
    ) -> Answer<'a, Option<Listing>> {
        Box::pin(async move { publish::recent(client, account, tokens, since, after).await.map(Some) })
    }

    fn media_types(&self) -> &'static [&'static str] {
        rules::MEDIA_TYPES
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        rules::check(text, media)
    }

    /// 100 posts per 15 minutes per user, 10,000 per 24 hours per app (platforms.md).
    fn budgets(&self) -> Vec<Budget> {
        vec![
            Budget::publish(P, Scope::Account, 100, Window::Fixed { seconds: 900 }),
            Budget::publish(P, Scope::App, 10_000, Window::Fixed { seconds: 86_400 }),
            // `GET /2/users/:id/tweets`, read after a lost answer (docs.x.com rate limits).
            Budget::read(P, Scope::Account, 900, Window::Fixed { seconds: 900 }),
            // `DELETE /2/tweets/:id`: 50 requests per 15 minutes per user (its API reference).
            Budget::delete(P, Scope::Account, 50, Window::Fixed { seconds: 900 }),
        ]
    }

    fn throttle_hint(&self, headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
        publish::throttle_hint(headers, now)
    }
}

/// The app of a connector.
fn app<'a>(client: &'a PlatformClient, connector: &str) -> Result<&'a AppCredentials, PlatformError> {
    X.app(&client.apps, connector).ok_or(PlatformError::NotConfigured(P))
}

/// X's OAuth 2.0: a confidential client (HTTP Basic on the token endpoints), PKCE S256 required,
/// access tokens for two hours, refresh tokens that rotate on every use (their lifetime is not
/// documented officially; platforms.md). docs.x.com `fundamentals/authentication/oauth-2-0/`.
static OAUTH2_DIALECT: Dialect = Dialect {
    authorize: "{x_web}/i/oauth2/authorize",
    token: Endpoint { url: "{x_api}/2/oauth2/token", log: "POST /2/oauth2/token" },
    revoke: Some(Endpoint { url: "{x_api}/2/oauth2/revoke", log: "POST /2/oauth2/revoke" }),
    scope_separator: " ",
    client_auth: ClientAuth::Basic,
    token_method: TokenMethod::PostForm,
    pkce: true,
    lifetimes: Lifetimes { access: Some(7200), refresh: None },
    refusal: oauth2::refusal,
};

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

fn api(client: &PlatformClient, path: &str) -> String {
    format!("{}{path}", client.endpoints.x_api.as_str().trim_end_matches('/'))
}

async fn finish_oauth2(
    client: &PlatformClient,
    pending: &PendingAuth,
    params: &CallbackParams,
    redirect: &url::Url,
) -> Result<Vec<Discovered>, PlatformError> {
    let code = params.get("code").ok_or_else(|| unexpected("the callback has no code"))?;
    let (grant, _) = OAUTH2_DIALECT.exchange(client, P, app(client, OAUTH2)?, code, redirect, pending).await?;
    let me = me(client, &format!("Bearer {}", grant.tokens.access_token.expose_secret())).await?;
    Ok(vec![discovered(me, grant, SCOPES.iter().map(|s| (*s).to_owned()).collect())])
}

#[derive(Debug, Deserialize)]
struct MeEnvelope {
    data: Me,
}

#[derive(Debug, Deserialize)]
struct Me {
    id: String,
    username: String,
}

/// X's refusal of an API call (5xx is classified before this): a v2 problem
/// (RFC 7807: `type`, `title`, `detail`; the code is the type's last segment, such as
/// `invalid-request`, or the title where the type is `about:blank`), or a v1.1-style
/// `{"errors": [{"code", "message"}]}`.
pub(super) fn refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    let (status, body, retry_at) = (answer.status, answer.body, answer.retry_at);
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let problem_type = parsed["type"].as_str().filter(|t| *t != "about:blank");
    // The app's usage cap (the plan's monthly cap or the pay-per-use spend: problem type
    // `usage-capped`, docs.x.com response-codes-and-errors; seen with 429, and with 402 and 403
    // by other clients): no retry helps until the operator raises it. Any other 429 is
    // throttling.
    if problem_type.is_some_and(|t| t.ends_with("/usage-capped")) {
        let message = parsed["detail"].as_str().unwrap_or("usage cap exceeded").to_owned();
        return PlatformError::QuotaExhausted { platform, message };
    }
    if status == 429 {
        // POST /2/tweets also counts 24-hour limits, per app and per user, and says which is
        // spent; the app's holds every account.
        if let Some(reset) = publish::day_spent(answer.headers, "app", answer.now) {
            return PlatformError::RateLimited { platform, retry_at: Some(reset), app_wide: true };
        }
        if let Some(reset) = publish::day_spent(answer.headers, "user", answer.now) {
            return super::throttled(platform, reset);
        }
        return super::throttled(platform, retry_at);
    }
    let code = problem_type
        .map(|t| t.rsplit('/').next().unwrap_or(t))
        .or(parsed["title"].as_str())
        .map(str::to_owned)
        .or_else(|| parsed["errors"][0]["code"].as_i64().map(|c| c.to_string()))
        .unwrap_or_else(|| status.to_string());
    let message = parsed["detail"].as_str().or(parsed["errors"][0]["message"].as_str()).unwrap_or_default().to_owned();
    if status == 401 {
        return PlatformError::Unauthorized { platform, status, code, message };
    }
    PlatformError::Refused { platform, status, code, message }
}

async fn me(client: &PlatformClient, authorization: &str) -> Result<Me, PlatformError> {
    let request = client.http.get(api(client, "/2/users/me")).header("authorization", authorization);
    let envelope: MeEnvelope = client.json(P, "GET /2/users/me", request, refusal).await?;
    Ok(envelope.data)
}

fn discovered(me: Me, grant: Grant, scopes: Vec<String>) -> Discovered {
    Discovered {
        platform: P,
        platform_account_id: me.id,
        name: format!("@{}", me.username),
        kind: AccountKind::Member,
        scopes,
        grant,
        token_source: None,
        grantor: None,
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn form_pairs(body: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

/// A signed OAuth 1.0a POST to one of X's token endpoints; answers are form-encoded. Returns
/// the answer's fields and status.
async fn oauth1_post(
    client: &PlatformClient,
    endpoint: &'static str,
    path: &str,
    token: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> Result<(u16, std::collections::HashMap<String, String>), PlatformError> {
    let app = app(client, OAUTH1)?;
    let url = api(client, path);
    let creds = oauth1::Credentials {
        consumer_key: &app.client_id,
        consumer_secret: app.client_secret.expose_secret(),
        token: token.map(|(t, _)| t),
        token_secret: token.map_or("", |(_, s)| s),
    };
    let header = oauth1::authorization(
        &oauth1::Request { method: "POST", base_url: &url, params: &[] },
        &creds,
        unix_now(),
        extra,
    );
    let response = client.send(P, endpoint, client.http.post(&url).header("authorization", header)).await?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|_| PlatformError::Transient { platform: P, detail: "cut off".into() })?;
    if status >= 500 {
        return Err(PlatformError::Transient { platform: P, detail: format!("status {status}") });
    }
    Ok((status, form_pairs(&body)))
}

/// OAuth 1.0a step 1: a request token for our callback; the user is sent to `/oauth/authorize`.
pub(super) async fn start_oauth1(
    client: &PlatformClient,
    callback: &url::Url,
) -> Result<AuthorizeStart, PlatformError> {
    let (status, pairs) = oauth1_post(
        client,
        "POST /oauth/request_token",
        "/oauth/request_token",
        None,
        &[("oauth_callback", callback.as_str())],
    )
    .await?;
    let (Some(token), Some(secret)) = (pairs.get("oauth_token"), pairs.get("oauth_token_secret")) else {
        return Err(PlatformError::Refused {
            platform: P,
            status,
            code: "request_token".into(),
            message: String::new(),
        });
    };
    if pairs.get("oauth_callback_confirmed").map(String::as_str) != Some("true") {
        return Err(unexpected("the callback was not confirmed"));
    }
    let mut authorize = client.endpoints.x_api.clone();
    authorize
        .path_segments_mut()
        .map_err(|_| unexpected("x_api cannot be a base"))?
        .pop_if_empty()
        .extend(["oauth", "authorize"]);
    authorize.query_pairs_mut().append_pair("oauth_token", token);
    Ok(AuthorizeStart {
        url: authorize,
        pending: PendingAuth {
            key: token.clone(),
            secret: Some(SecretString::from(secret.clone())),
            connector: OAUTH1.to_owned(),
        },
        form: None,
    })
}

/// OAuth 1.0a step 3: the verifier for an access token that does not expire.
pub(super) async fn finish_oauth1(
    client: &PlatformClient,
    pending: &PendingAuth,
    params: &CallbackParams,
) -> Result<Vec<Discovered>, PlatformError> {
    let verifier = params.get("oauth_verifier").ok_or_else(|| unexpected("the callback has no oauth_verifier"))?;
    let request_secret = pending.secret.as_ref().ok_or_else(|| unexpected("no request-token secret was kept"))?;
    let (status, pairs) = oauth1_post(
        client,
        "POST /oauth/access_token",
        "/oauth/access_token",
        Some((&pending.key, request_secret.expose_secret())),
        &[("oauth_verifier", verifier)],
    )
    .await?;
    let (Some(token), Some(secret), Some(user_id), Some(screen_name)) =
        (pairs.get("oauth_token"), pairs.get("oauth_token_secret"), pairs.get("user_id"), pairs.get("screen_name"))
    else {
        return Err(PlatformError::Refused {
            platform: P,
            status,
            code: "access_token".into(),
            message: String::new(),
        });
    };
    let grant = Grant {
        // "These tokens do not expire but can be revoked by the user at any time."
        tokens: TokenSet::new(token.clone()).with_token_secret(secret.clone()),
        access_expires_at: None,
        refresh_expires_at: None,
    };
    let me = Me { id: user_id.clone(), username: screen_name.clone() };
    Ok(vec![discovered(me, grant, vec!["oauth1".to_owned()])])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X's refusals, from the bodies its API v2 sends: problem details per X's OpenAPI document
    /// (`Problem`, its types under `https://api.x.com/2/problems/`, in
    /// ../shared/reference/specs/x-openapi.json), and the `Error` `{code, message}` list some
    /// endpoints still answer with.
    #[test]
    fn x_answers_classify_as_their_rows_say() {
        let rows = [
            (
                403,
                r#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#,
                "refused 403 Forbidden",
            ),
            (
                401,
                r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#,
                "unauthorized 401 Unauthorized",
            ),
            (
                400,
                r#"{"errors":[{"parameters":{"text":[""]},"message":"Invalid text"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.x.com/2/problems/invalid-request"}"#,
                "refused 400 invalid-request",
            ),
            (
                403,
                r#"{"errors":[{"code":453,"message":"You currently have access to a subset of X API V2 endpoints"}]}"#,
                "refused 403 453",
            ),
            (
                404,
                r#"{"title":"Not Found Error","detail":"Could not find user","type":"https://api.x.com/2/problems/resource-not-found"}"#,
                "refused 404 resource-not-found",
            ),
            (
                429,
                r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#,
                "rate_limited until 1900",
            ),
            (
                429,
                r#"{"title":"Rate limit exceeded","type":"https://api.x.com/2/problems/rate-limit-exceeded","status":429}"#,
                "rate_limited until 1900",
            ),
            (429, r#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#, "rate_limited until 1900"),
            // The app's usage cap (F6): terminal until the operator raises it, not a rate limit.
            // The body as X sent it (a client's report, older host name).
            (
                429,
                r#"{"account_id":1,"product_name":"standard-basic","title":"UsageCapExceeded","period":"Monthly","scope":"Product","detail":"Usage cap exceeded: Monthly product cap","type":"https://api.twitter.com/2/problems/usage-capped"}"#,
                "quota_exhausted",
            ),
            (
                402,
                r#"{"type":"https://api.x.com/2/problems/usage-capped","title":"UsageCapExceeded"}"#,
                "quota_exhausted",
            ),
            (503, r#"{"title":"Service Unavailable","type":"about:blank","status":503}"#, "transient"),
            (400, "<html>bad request</html>", "refused 400 400"),
            (201, r#"{"data":{"id":"1","text":"hi"}}"#, "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(super::super::classified(P, status, body, refusal), want, "{status} {body}");
        }
    }
}
