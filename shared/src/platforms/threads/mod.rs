//! Threads (Meta): its own Authorization Window and app (a Meta app with the Threads use case has
//! a Threads app ID and secret of its own), a short-lived token exchanged for a 60-day one that is
//! refreshed with itself (`th_refresh_token`), and Meta's container publishing on
//! `graph.threads.net` ([`super::containers`]), under the 250-posts-a-day quota.
//!
//! Sources (developers.facebook.com/documentation/threads/…): get-started (scopes, the two app
//! ids), get-started/get-access-tokens-and-permissions (the Authorization Window on
//! `threads.com/oauth/authorize`, `POST /oauth/access_token`), get-started/long-lived-tokens
//! (`GET /access_token` `th_exchange_token`, `GET /refresh_access_token` `th_refresh_token`, 60
//! days, refreshable once a day old), posts (containers, 500 characters, carousels), overview (250
//! posts per 24 h, `threads_publishing_limit`), posts/delete-posts (`DELETE /{threads-media-id}`),
//! troubleshooting (container statuses). Each behaviour the sandbox models is in
//! docs/sandbox.md's ledger.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod rules;

use super::adapter::{Adapter, Answer};
use super::containers::Containers;
use super::meta::graph_refusal;
use super::oauth2::{ClientAuth, Dialect, Endpoint, Lifetimes, TokenMethod};
use super::publish::{Listing, Outgoing, Published};
use super::settings::{AppCredentials, PlatformApps};
use super::{AuthorizeStart, CallbackParams, Discovered, Grant, PendingAuth, PlatformClient, PlatformError};
use crate::domain::budget::{Budget, Scope, Window};
use crate::domain::post::{Broken, Media};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use crate::store::Account;

pub(super) struct Threads;
pub(super) static THREADS: Threads = Threads;

const P: Platform = Platform::Threads;
/// The API version in every Graph path (`graph.threads.net/v1.0/...`).
const VERSION: &str = "v1.0";
/// `threads_basic` for every call, `threads_content_publish` to publish, `threads_delete` for
/// `DELETE /{threads-media-id}` (herald verify's clean-up; deleting posts).
const SCOPES: &[&str] = &["threads_basic", "threads_content_publish", "threads_delete"];
/// "Threads profiles are limited to 250 API-published posts within a 24-hour moving period";
/// also read at runtime from `threads_publishing_limit`.
const POSTS_PER_DAY: u32 = 250;

/// The Authorization Window (`client_id`, `redirect_uri`, `scope` joined by commas,
/// `response_type=code`, `state`; Threads documents no PKCE) and the code's exchange,
/// `POST /oauth/access_token` with the app's id and secret as parameters, for a short-lived token
/// (an hour) that [`finish`] exchanges for a long-lived one at once.
static DIALECT: Dialect = Dialect {
    authorize: "{threads_web}/oauth/authorize",
    token: Endpoint { url: "{threads_graph}/oauth/access_token", log: "POST /oauth/access_token" },
    revoke: None,
    scope_separator: ",",
    client_auth: ClientAuth::Parameters,
    token_method: TokenMethod::PostForm,
    pkce: false,
    lifetimes: Lifetimes { access: Some(3600), refresh: None },
    refusal: graph_refusal,
};

/// Threads' containers: `POST /{threads-user-id}/threads` with `media_type` (`TEXT`, `IMAGE`,
/// `CAROUSEL`) and `text`, `status`, `POST /{threads-user-id}/threads_publish`, `GET
/// /{threads-user-id}/threads_publishing_limit`; images and carousel items take `alt_text`.
static CONTAINERS: Containers = Containers {
    platform: P,
    name: "Threads",
    create: ("/threads", "POST /{threads-user-id}/threads"),
    publish: ("/threads_publish", "POST /{threads-user-id}/threads_publish"),
    quota: ("/threads_publishing_limit", "GET /{threads-user-id}/threads_publishing_limit"),
    status: ("status", "GET /{threads-container-id}?fields=status"),
    listing: "GET /{threads-user-id}/threads",
    text_field: "text",
    image_type: Some("IMAGE"),
    text_type: Some("TEXT"),
    item_alt_text: true,
    url: api,
    prove: as_is,
    refusal: graph_refusal,
};

/// The Threads app's deauthorize and data-deletion callbacks (`/webhooks/threads/…`), signed with
/// the Threads app secret; they name the Threads user.
pub(super) static CALLBACKS: super::webhooks::SignedCallbacks = super::webhooks::SignedCallbacks::new(
    "threads",
    ["/webhooks/threads/deauthorize", "/webhooks/threads/data-deletion", "/webhooks/threads/data-deletion/{code}"],
    P,
    |apps| apps.threads.as_ref(),
);

fn api(client: &PlatformClient, path: &str) -> String {
    format!("{}/{VERSION}{path}", client.endpoints.threads_graph.as_str().trim_end_matches('/'))
}

/// Threads documents no `appsecret_proof`: its calls carry the token alone.
fn as_is(_client: &PlatformClient, request: reqwest::RequestBuilder, _token: &str) -> reqwest::RequestBuilder {
    request
}

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

fn app(client: &PlatformClient) -> Result<&AppCredentials, PlatformError> {
    client.apps.threads.as_ref().ok_or(PlatformError::NotConfigured(P))
}

/// A long-lived token's answer: `{"access_token", "token_type": "bearer", "expires_in"}`.
#[derive(Deserialize)]
struct LongLived {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

impl LongLived {
    /// The token is its own refresh credential: `th_refresh_token` takes the token itself.
    fn into_grant(self, client: &PlatformClient) -> Grant {
        // 60 days where the answer does not say (5,183,944 s in Meta's examples).
        let expires =
            time::Duration::seconds(self.expires_in.filter(|s| *s > 0).unwrap_or(60 * 86_400).min(90 * 86_400));
        let at = client.clock.now() + expires;
        let token = self.access_token;
        Grant {
            tokens: TokenSet::new(token.clone()).with_refresh_token(token),
            access_expires_at: Some(at),
            refresh_expires_at: Some(at),
        }
    }
}

/// `GET {threads_graph}/{path}` for a long-lived token (no version in these paths).
async fn long_lived(
    client: &PlatformClient,
    (path, log): (&str, &'static str),
    params: &[(&str, &str)],
) -> Result<Grant, PlatformError> {
    let url = format!("{}{path}", client.endpoints.threads_graph.as_str().trim_end_matches('/'));
    let answer: LongLived = client.json(P, log, client.http.get(url).query(params), graph_refusal).await?;
    Ok(answer.into_grant(client))
}

impl Adapter for Threads {
    fn grantor_family(&self) -> &'static str {
        "threads"
    }

    fn app<'a>(&self, apps: &'a PlatformApps, _connector: &str) -> Option<&'a AppCredentials> {
        apps.threads.as_ref()
    }

    fn start<'a>(
        &'a self,
        client: &'a PlatformClient,
        _connector: &'a str,
        callback: &'a url::Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move { DIALECT.authorize(client, P, app(client)?, callback, SCOPES) })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a url::Url,
    ) -> Answer<'a, Vec<Discovered>> {
        Box::pin(async move {
            let app = app(client)?;
            let code = params.get("code").ok_or_else(|| unexpected("the callback has no code"))?;
            let (short, granted) = DIALECT.exchange(client, P, app, code, callback, pending).await?;
            let grant = long_lived(
                client,
                ("/access_token", "GET /access_token"),
                &[
                    ("grant_type", "th_exchange_token"),
                    ("client_secret", app.client_secret.expose_secret()),
                    ("access_token", short.tokens.access_token.expose_secret()),
                ],
            )
            .await?;
            let token = grant.tokens.access_token.expose_secret();
            let request =
                client.http.get(api(client, "/me")).query(&[("fields", "id,username"), ("access_token", token)]);
            let me: serde_json::Value = client.json(P, "GET /me", request, graph_refusal).await?;
            let id = me["id"].as_str().ok_or_else(|| unexpected("the profile has no id"))?.to_owned();
            let name = me["username"].as_str().map(|u| format!("@{u}")).unwrap_or_else(|| id.clone());
            let scopes = if granted.is_empty() { SCOPES.iter().map(|s| (*s).to_owned()).collect() } else { granted };
            Ok(vec![Discovered {
                platform: P,
                platform_account_id: id.clone(),
                name,
                kind: AccountKind::Member,
                scopes,
                grant,
                token_source: None,
                // Threads' deauthorize and data-deletion callbacks name the Threads user.
                grantor: Some(id),
            }])
        })
    }

    /// `GET /refresh_access_token?grant_type=th_refresh_token&access_token=…`: the long-lived
    /// token, at least a day old and unexpired, for another 60 days.
    fn refresh<'a>(
        &'a self,
        client: &'a PlatformClient,
        refresh_token: &'a SecretString,
        _grant: &'a TokenSet,
    ) -> Answer<'a, Option<Grant>> {
        Box::pin(async move {
            let params = [("grant_type", "th_refresh_token"), ("access_token", refresh_token.expose_secret())];
            long_lived(client, ("/refresh_access_token", "GET /refresh_access_token"), &params).await.map(Some)
        })
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published> {
        let Outgoing { text, media, resume, .. } = *post;
        Box::pin(CONTAINERS.publish(client, &account.platform_account_id, tokens, text, media, resume))
    }

    /// The profile's threads since `since` (`GET /{threads-user-id}/threads`, `since` a Unix
    /// time), to look for an ambiguous publish among.
    fn recent<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        since: time::OffsetDateTime,
        after: Option<&'a str>,
    ) -> Answer<'a, Option<Listing>> {
        Box::pin(async move {
            CONTAINERS.recent(client, tokens, &account.platform_account_id, since, after).await.map(Some)
        })
    }

    fn deletes(&self) -> bool {
        true
    }

    /// `DELETE /{threads-media-id}` → `{"success": true, "deleted_id": …}` (100 deletions a day).
    fn delete<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async move {
            let request = client
                .http
                .delete(api(client, &format!("/{id}")))
                .query(&[("access_token", tokens.access_token.expose_secret())]);
            let body: serde_json::Value = client.json(P, "DELETE /{threads-media-id}", request, graph_refusal).await?;
            match body["success"].as_bool() {
                Some(true) => Ok(Some(())),
                _ => Err(unexpected(&format!("the delete answered {body}"))),
            }
        })
    }

    fn media_types(&self) -> &'static [&'static str] {
        rules::MEDIA_TYPES
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        rules::check(text, media)
    }

    /// Threads is served by Graph (graph.threads.net), which names a request by
    /// `x-fb-trace-id` as Facebook's does.
    fn request_id_header(&self) -> Option<&'static str> {
        Some(crate::platforms::meta::META_TRACE_HEADER)
    }

    fn budgets(&self) -> Vec<Budget> {
        vec![
            Budget::publish(P, Scope::Account, POSTS_PER_DAY, Window::Fixed { seconds: 86_400 }),
            // 100 deletions per profile per 24 hours (the delete call's own limit).
            Budget::delete(P, Scope::Account, 100, Window::Fixed { seconds: 86_400 }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads answers with Graph's error objects (its troubleshooting and error pages): a dead
    /// token is code 190 whatever its status, throttling codes wait.
    #[test]
    fn threads_answers_classify_as_their_rows_say() {
        let rows = [
            (
                400,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}"#,
                "unauthorized 400 190",
            ),
            (
                400,
                r#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190}}"#,
                "unauthorized 400 190",
            ),
            (
                400,
                r#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4,"is_transient":true}}"#,
                "rate_limited until 1900 app",
            ),
            (
                400,
                r#"{"error":{"message":"The parameter text is too long","type":"THApiException","code":100}}"#,
                "refused 400 100",
            ),
            (
                500,
                r#"{"error":{"message":"An unknown error has occurred.","type":"OAuthException","code":1,"is_transient":true}}"#,
                "transient",
            ),
        ];
        for (status, body, want) in rows {
            assert_eq!(super::super::classified(P, status, body, graph_refusal), want, "{status} {body}");
        }
    }
}
