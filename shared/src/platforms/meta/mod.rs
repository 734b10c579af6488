//! Meta: Facebook Login → short-lived user token → long-lived user token → Pages with their Page
//! tokens (which do not expire), and the Instagram professional accounts linked to those Pages,
//! each publishing with its Page's token.

use secrecy::ExposeSecret;
use serde::Deserialize;

mod publish;
mod rules;
pub(super) mod webhooks;

use super::adapter::{Adapter, Answer, RateHeaders};
use super::oauth2::{ClientAuth, Dialect, Endpoint, Lifetimes, TokenMethod};
use super::publish::{Listing, Lookup, Outgoing, Published, Throttle};
use super::settings::{AppCredentials, PlatformApps};
use super::{AuthorizeStart, CallbackParams, Discovered, Grant, PendingAuth, PlatformClient, PlatformError};
use crate::domain::budget::{Budget, Scope, Window};
use crate::domain::post::{Broken, Media};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use crate::store::Account;

/// Meta's adapter, for Facebook Pages and for Instagram professional accounts: one app (Facebook
/// Login), Page tokens that do not expire, and the Graph API.
pub(super) struct Meta(Platform);
pub(super) static FACEBOOK: Meta = Meta(Platform::Facebook);
pub(super) static INSTAGRAM: Meta = Meta(Platform::Instagram);

/// The answer header Graph names a request by (Facebook, Instagram and Threads).
pub(super) const META_TRACE_HEADER: &str = "x-fb-trace-id";

impl Adapter for Meta {
    fn grantor_family(&self) -> &'static str {
        "meta"
    }

    fn app<'a>(&self, apps: &'a PlatformApps, _connector: &str) -> Option<&'a AppCredentials> {
        apps.meta.as_ref()
    }

    fn start<'a>(
        &'a self,
        client: &'a PlatformClient,
        _connector: &'a str,
        callback: &'a url::Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move { DIALECT.authorize(client, self.0, app(client, self.0)?, callback, scopes(self.0)) })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a url::Url,
    ) -> Answer<'a, Vec<Discovered>> {
        Box::pin(finish(client, self.0, pending, params, callback))
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published> {
        let Outgoing { text, media, resume, .. } = *post;
        match self.0 {
            Platform::Instagram => Box::pin(INSTAGRAM_CONTAINERS.publish(
                client,
                &account.platform_account_id,
                tokens,
                text,
                media,
                resume,
            )),
            _ => Box::pin(client.publish_facebook(account, tokens, text, media)),
        }
    }

    fn deletes(&self) -> bool {
        self.0 == Platform::Facebook
    }

    /// A Page's feed can be read back; Instagram asks its container instead (inside its publish).
    /// A Page post is deleted with `DELETE /{post-id}` (`{"success": true}`); Instagram's API has
    /// no delete.
    fn delete<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async move {
            if self.0 != Platform::Facebook {
                return Ok(None);
            }
            let token = tokens.access_token.expose_secret();
            let request = client
                .proved(client.http.delete(graph(client, &format!("/{id}"))).query(&[("access_token", token)]), token);
            let body: serde_json::Value = client.json(self.0, "DELETE /{post-id}", request, graph_refusal).await?;
            match body["success"].as_bool() {
                Some(true) => Ok(Some(())),
                _ => Err(unexpected(self.0, &format!("the delete answered {body}"))),
            }
        })
    }

    /// Calls with a Page token are counted against the Page's Business Use Case budget, reported
    /// in `X-Business-Use-Case-Usage` (developers.facebook.com/docs/graph-api/overview/rate-limiting).
    fn rate_headers<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
    ) -> Answer<'a, Option<RateHeaders>> {
        Box::pin(async move {
            const EXPECTED: &[&str] = &["x-business-use-case-usage"];
            let token = tokens.access_token.expose_secret();
            let request = client.proved(
                client.http.get(graph(client, "/me")).query(&[("fields", "id"), ("access_token", token)]),
                token,
            );
            let (headers, _) = client.answer(self.0, "GET /me", request, graph_refusal).await?;
            Ok(Some(RateHeaders {
                endpoint: "GET /me",
                expected: EXPECTED,
                seen: super::publish::seen(&headers, EXPECTED),
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
        Box::pin(async move {
            let user = &account.platform_account_id;
            match self.0 {
                Platform::Facebook => publish::recent(client, account, tokens, since, after).await.map(Some),
                _ => INSTAGRAM_CONTAINERS.recent(client, tokens, user, since, after).await.map(Some),
            }
        })
    }

    /// A Page's feed and an Instagram account's media are listed (an Instagram container is
    /// also asked inside its publish, at once).
    fn lookup(&self, _account: &Account) -> Lookup {
        Lookup::LISTED
    }

    fn media_types(&self) -> &'static [&'static str] {
        match self.0 {
            Platform::Instagram => rules::INSTAGRAM_MEDIA_TYPES,
            _ => rules::FACEBOOK_MEDIA_TYPES,
        }
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        match self.0 {
            Platform::Instagram => rules::instagram(text, media),
            _ => rules::facebook(text, media),
        }
    }

    /// Pages: 4,800 calls per 24 hours per Page; Instagram: 50 posts per 24 hours per account
    /// (also read at runtime from `content_publishing_limit`) (platforms.md).
    /// Graph's identifier for a request: the `x-fb-trace-id` header. Graph's error object names
    /// `fbtrace_id` for support; the header of that name is what client libraries read
    /// (second-hand: docs/fidelity-ledger.md).
    fn request_id_header(&self) -> Option<&'static str> {
        Some(META_TRACE_HEADER)
    }

    fn budgets(&self) -> Vec<Budget> {
        let day = Window::Fixed { seconds: 86_400 };
        match self.0 {
            Platform::Instagram => vec![Budget::publish(self.0, Scope::Account, 50, day)],
            _ => vec![Budget::publish(self.0, Scope::Account, 4_800, day)],
        }
    }

    fn throttle_hint(&self, headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
        publish::throttle_hint(headers, now)
    }
}

/// Instagram's containers (developers.facebook.com/docs/instagram-platform/content-publishing):
/// `POST /{ig-user-id}/media` (an image omits `media_type`; `caption`), `status_code`,
/// `POST /{ig-user-id}/media_publish`, `GET /{ig-user-id}/content_publishing_limit`; only a
/// single image takes `alt_text`.
static INSTAGRAM_CONTAINERS: super::containers::Containers = super::containers::Containers {
    platform: Platform::Instagram,
    name: "Instagram",
    create: ("/media", "POST /{ig-user-id}/media"),
    publish: ("/media_publish", "POST /{ig-user-id}/media_publish"),
    quota: ("/content_publishing_limit", "GET /{ig-user-id}/content_publishing_limit"),
    status: ("status_code", "GET /{container-id}?fields=status_code"),
    listing: "GET /{ig-user-id}/media",
    text_field: "caption",
    image_type: None,
    text_type: None,
    item_alt_text: false,
    url: PlatformClient::graph_url,
    prove: PlatformClient::proved,
    refusal: graph_refusal,
};

fn app(client: &PlatformClient, platform: Platform) -> Result<&AppCredentials, PlatformError> {
    FACEBOOK.app(&client.apps, super::oauth2::CONNECTOR).ok_or(PlatformError::NotConfigured(platform))
}

/// `business_management` reaches the Pages a user holds through a Business portfolio (listed by
/// the business, not by `/me/accounts`), and Instagram publishing needs it for an account whose
/// Page role came through Business Manager ("you will also need one of: ads_management,
/// ads_read", business_management in Meta's current copy of the content-publishing guide; F2).
const FACEBOOK_SCOPES: &[&str] =
    &["pages_show_list", "pages_manage_posts", "pages_read_engagement", "business_management"];
const INSTAGRAM_SCOPES: &[&str] = &[
    "pages_show_list",
    "pages_read_engagement",
    "instagram_basic",
    "instagram_content_publish",
    "business_management",
];
/// Throttling codes: app (4), user (17), Page (32), custom (613), Pages and Instagram BUC.
const THROTTLING: [i64; 6] = [4, 17, 32, 613, 80001, 80002];
/// Instagram's spam restriction, a subcode of code 4.
const SPAM_RESTRICTED: i64 = 2207051;

/// Facebook Login's manually built flow: the Login dialog under the Graph version, the code
/// exchanged at `GET /oauth/access_token` with the app secret among the parameters, scopes
/// joined by commas, and PKCE S256 as Meta's manual-flow OIDC guide documents it
/// (docs/decisions.md, "PKCE per platform"). The user token is short-lived (about an hour;
/// `expires_in` says); Herald exchanges it for a long-lived one and keeps only the Page tokens
/// taken from that, which do not expire (developers.facebook.com/docs/facebook-login/guides/
/// access-tokens/get-long-lived).
static DIALECT: Dialect = Dialect {
    authorize: "{meta_web}/{meta_graph_version}/dialog/oauth",
    token: Endpoint { url: "{meta_graph}/{meta_graph_version}/oauth/access_token", log: "GET /oauth/access_token" },
    revoke: None,
    scope_separator: ",",
    client_auth: ClientAuth::Parameters,
    token_method: TokenMethod::GetQuery,
    pkce: true,
    lifetimes: Lifetimes { access: None, refresh: None },
    refusal: graph_refusal,
};

/// Graph's `appsecret_proof` for `token`: hex HMAC-SHA256 keyed with the app secret.
fn appsecret_proof(app_secret: &secrecy::SecretString, token: &str) -> String {
    hex::encode(super::webhooks::sign(app_secret.expose_secret().as_bytes(), &[token.as_bytes()]))
}

fn scopes(platform: Platform) -> &'static [&'static str] {
    if platform == Platform::Instagram { INSTAGRAM_SCOPES } else { FACEBOOK_SCOPES }
}

fn unexpected(platform: Platform, detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform, detail: detail.to_owned() }
}

/// A Graph error object as a refusal, or as transient when it is throttling.
pub(super) fn graph_refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    let (status, body, retry_at) = (answer.status, answer.body, answer.retry_at);
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &parsed["error"];
    let code = error["code"].as_i64().unwrap_or(0);
    let subcode = error["error_subcode"].as_i64();
    if status == 429 {
        return super::throttled(platform, retry_at);
    }
    // Instagram's "We restrict certain activity to protect our community" rides on code 4 (the
    // app throttling code) with subcode 2207051 and HTTP 400: the content or account is
    // suspected of spam. Retrying would re-post what Meta flagged (F3), so it is a refusal
    // (Instagram's error-codes reference, row `400 | 4 | 2207051`).
    if code == 4 && subcode == Some(SPAM_RESTRICTED) {
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        return PlatformError::Refused { platform, status, code: format!("{code}/{SPAM_RESTRICTED}"), message };
    }
    if THROTTLING.contains(&code) {
        // Code 4 is the app's limit (every account of the app waits, X-App-Usage); 17 the user's,
        // 32, 80001 and 80002 the Page's or Instagram account's, 613 the endpoint's (Graph's
        // rate-limiting page): those wait per account.
        return PlatformError::RateLimited { platform, retry_at: Some(retry_at), app_wide: code == 4 };
    }
    if error["is_transient"].as_bool() == Some(true) {
        return PlatformError::Transient { platform, detail: format!("Graph code {code}") };
    }
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    // 190: the access token is invalid or expired (whatever its subcode: 458 app removed, 460
    // password changed, 463 expired, 467 invalid), sent with HTTP 400 (Graph's error-handling
    // guide, "Access token" codes).
    if code == 190 {
        return PlatformError::Unauthorized { platform, status, code: code.to_string(), message };
    }
    PlatformError::Refused { platform, status, code: code.to_string(), message }
}

fn graph(client: &PlatformClient, path: &str) -> String {
    format!(
        "{}/{}{path}",
        client.endpoints.meta_graph.as_str().trim_end_matches('/'),
        client.endpoints.meta_graph_version
    )
}

/// One page of a Graph list, with its cursors (developers.facebook.com/docs/graph-api/results).
#[derive(Debug, Deserialize)]
struct Listed<T> {
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    /// Present while more pages follow.
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Cursors {
    after: Option<String>,
}

/// At most this many pages (100 entries each) are read of one list: 10,000 Pages per user.
const MAX_LIST_PAGES: usize = 100;

/// A whole Graph list, following its `after` cursor while Graph says more follow (F9: the
/// default page is 25). The cursor, not the `next` URL, is followed, so Herald only ever calls
/// its configured Graph host.
async fn listed<T: serde::de::DeserializeOwned>(
    client: &PlatformClient,
    platform: Platform,
    (path, log): (&str, &'static str),
    fields: &str,
    user_token: &str,
) -> Result<Vec<T>, PlatformError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let mut query = vec![("fields", fields), ("limit", "100"), ("access_token", user_token)];
        if let Some(cursor) = &after {
            query.push(("after", cursor.as_str()));
        }
        let request = client.proved(client.http.get(graph(client, path)).query(&query), user_token);
        let page: Listed<T> = client.json(platform, log, request, graph_refusal).await?;
        all.extend(page.data);
        match page.paging {
            Some(Paging { next: Some(_), cursors: Some(Cursors { after: Some(cursor) }) }) => after = Some(cursor),
            _ => return Ok(all),
        }
    }
    Err(unexpected(platform, "the user manages more Pages than Herald reads"))
}

#[derive(Debug, Deserialize)]
struct Business {
    id: String,
}

/// Every Page the user can post to: those of their own Page roles (`/me/accounts`), then those
/// they reach through a Business portfolio, owned by it or a client's (`/me/businesses`, then
/// each business's `owned_pages` and `client_pages`; F2), each once. A Page a business lists
/// without a Page token is one the user has no task on: not connected. A grant without
/// `business_management` lists no businesses: the user's own Pages are still connected.
async fn managed_pages(
    client: &PlatformClient,
    platform: Platform,
    user_token: &str,
) -> Result<Vec<PageEntry>, PlatformError> {
    const PAGE_FIELDS: &str = "id,name,access_token";
    let mut pages: Vec<PageEntry> =
        listed(client, platform, ("/me/accounts", "GET /me/accounts"), PAGE_FIELDS, user_token).await?;
    let businesses: Vec<Business> =
        match listed(client, platform, ("/me/businesses", "GET /me/businesses"), "id", user_token).await {
            Ok(businesses) => businesses,
            Err(PlatformError::Refused { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
    for business in businesses {
        for (edge, log) in
            [("owned_pages", "GET /{business-id}/owned_pages"), ("client_pages", "GET /{business-id}/client_pages")]
        {
            let path = format!("/{}/{edge}", business.id);
            let found: Vec<BusinessPage> = listed(client, platform, (&path, log), PAGE_FIELDS, user_token).await?;
            for page in found {
                let Some(access_token) = page.access_token else { continue };
                if !pages.iter().any(|p| p.id == page.id) {
                    pages.push(PageEntry { id: page.id, name: page.name, access_token });
                }
            }
        }
    }
    Ok(pages)
}

#[derive(Debug, Deserialize)]
struct BusinessPage {
    id: String,
    name: String,
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PageEntry {
    id: String,
    name: String,
    access_token: String,
}

pub(super) async fn finish(
    client: &PlatformClient,
    platform: Platform,
    pending: &PendingAuth,
    params: &CallbackParams,
    redirect: &url::Url,
) -> Result<Vec<Discovered>, PlatformError> {
    let app = app(client, platform)?;
    let code = params.get("code").ok_or_else(|| unexpected(platform, "the callback has no code"))?;
    let (short, _) = DIALECT.exchange(client, platform, app, code, redirect, pending).await?;
    // Page tokens taken from a long-lived user token do not expire.
    let (long, _) = DIALECT
        .token_call(
            client,
            platform,
            app,
            &[("grant_type", "fb_exchange_token"), ("fb_exchange_token", short.tokens.access_token.expose_secret())],
        )
        .await?;
    let long_token = long.tokens.access_token.expose_secret();
    // The Facebook user behind the grant, whom Meta's deauthorize and data-deletion callbacks name.
    let me: serde_json::Value = client
        .json(
            platform,
            "GET /me",
            client.proved(
                client.http.get(graph(client, "/me")).query(&[("fields", "id"), ("access_token", long_token)]),
                long_token,
            ),
            graph_refusal,
        )
        .await?;
    let grantor = me["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PlatformError::Unexpected { platform, detail: "no user id".into() })?;
    let pages = managed_pages(client, platform, long_token).await?;
    let scopes: Vec<String> = scopes(platform).iter().map(|s| (*s).to_owned()).collect();
    let page_grant = |token: &str| Grant {
        tokens: TokenSet::new(token.to_owned()),
        access_expires_at: None,
        refresh_expires_at: None,
    };
    if platform == Platform::Facebook {
        return Ok(pages
            .into_iter()
            .map(|page| Discovered {
                platform,
                grant: page_grant(&page.access_token),
                platform_account_id: page.id,
                name: page.name,
                kind: AccountKind::Page,
                scopes: scopes.clone(),
                token_source: None,
                grantor: Some(grantor.clone()),
            })
            .collect());
    }
    let mut accounts = Vec::new();
    for page in pages {
        let linked: serde_json::Value = client
            .json(
                platform,
                "GET /{page-id}?fields=instagram_business_account",
                client.proved(
                    client.http.get(graph(client, &format!("/{}", page.id))).query(&[
                        ("fields", "instagram_business_account"),
                        ("access_token", page.access_token.as_str()),
                    ]),
                    &page.access_token,
                ),
                graph_refusal,
            )
            .await?;
        let Some(ig_id) = linked["instagram_business_account"]["id"].as_str() else { continue };
        let profile: serde_json::Value = client
            .json(
                platform,
                "GET /{ig-user-id}?fields=username",
                client.proved(
                    client
                        .http
                        .get(graph(client, &format!("/{ig_id}")))
                        .query(&[("fields", "username"), ("access_token", page.access_token.as_str())]),
                    &page.access_token,
                ),
                graph_refusal,
            )
            .await?;
        let name = profile["username"].as_str().map(|u| format!("@{u}")).unwrap_or_else(|| page.name.clone());
        accounts.push(Discovered {
            platform,
            platform_account_id: ig_id.to_owned(),
            name,
            kind: AccountKind::ProfessionalAccount,
            scopes: scopes.clone(),
            grant: page_grant(&page.access_token),
            token_source: None,
            grantor: Some(grantor.clone()),
        });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Graph's `appsecret_proof`: hex HMAC-SHA256 of the token keyed with the app secret (the
    /// value from Python's `hmac` module, an implementation apart from Herald's).
    #[test]
    fn the_app_secret_proof_is_the_tokens_hmac() {
        let secret = secrecy::SecretString::from("e1b2c3d4app-secret");
        assert_eq!(
            appsecret_proof(&secret, "EAAPageToken123"),
            "61c78c318862f50da3320f83d33049cafa1dc9d14233c1c08f50f61b7a8fbcdb"
        );
    }

    /// Graph error objects (`error.code`, `error_subcode`, `is_transient`), per
    /// developers.facebook.com/docs/graph-api/guides/error-handling (its error object, codes 1, 2,
    /// 4, 17, 190, 200-299, and the subcodes) and the rate-limiting page (32, 613, 80001, 80002).
    #[test]
    fn graph_answers_classify_as_their_rows_say() {
        let rows = [
            // A dead token: code 190 (here subcode 463, expired), sent with HTTP 400.
            (
                400,
                r#"{"error":{"message":"Error validating access token: Session has expired.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"AZx"}}"#,
                "unauthorized 400 190",
            ),
            (
                400,
                r#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","is_transient":true,"code":4,"fbtrace_id":"A1"}}"#,
                "rate_limited until 1900 app",
            ),
            (
                400,
                r#"{"error":{"message":"(#17) User request limit reached","type":"OAuthException","code":17}}"#,
                "rate_limited until 1900",
            ),
            (
                400,
                r#"{"error":{"message":"(#32) Page request limit reached","type":"OAuthException","code":32}}"#,
                "rate_limited until 1900",
            ),
            (
                400,
                r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","type":"OAuthException","code":613}}"#,
                "rate_limited until 1900",
            ),
            (
                400,
                r#"{"error":{"message":"(#80001) There have been too many calls to this Page account.","type":"OAuthException","code":80001}}"#,
                "rate_limited until 1900",
            ),
            // Instagram's spam restriction rides on code 4 (subcode 2207051): a refusal (F3).
            (
                400,
                r#"{"error":{"message":"We restrict certain activity to protect our community. Tell us if you think we made a mistake.","type":"OAuthException","is_transient":false,"code":4,"error_subcode":2207051,"error_user_title":"Action is blocked"}}"#,
                "refused 400 4/2207051",
            ),
            (
                429,
                r#"{"error":{"message":"Too many calls","type":"OAuthException","code":4}}"#,
                "rate_limited until 1900",
            ),
            (
                400,
                r#"{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","is_transient":true,"code":2}}"#,
                "transient",
            ),
            (
                500,
                r#"{"error":{"message":"An unknown error has occurred.","type":"OAuthException","is_transient":true,"code":1}}"#,
                "transient",
            ),
            (
                403,
                r#"{"error":{"message":"(#200) The user hasn't authorized the application to perform this action","type":"OAuthException","code":200}}"#,
                "refused 403 200",
            ),
            (
                400,
                r#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2207026}}"#,
                "refused 400 100",
            ),
            (400, "not json", "refused 400 0"),
            (200, r#"{"id":"1_2"}"#, "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(
                super::super::classified(Platform::Facebook, status, body, graph_refusal),
                want,
                "{status} {body}"
            );
        }
    }
}
