//! LinkedIn: the OAuth 2.0 code flow with the client secret (no PKCE for web apps), the member
//! from `/v2/userinfo`, the organizations the member administers, and refresh tokens for apps
//! that have them.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod little;
mod publish;
mod rules;
pub(super) mod webhooks;

use super::adapter::{Adapter, Answer};
use super::oauth2::{self, ClientAuth, Dialect, Endpoint, Lifetimes, TokenMethod};
use super::publish::{Listing, Lookup, Outgoing, Published};
use super::settings::{AppCredentials, PlatformApps};
use super::{AuthorizeStart, CallbackParams, Discovered, Grant, PendingAuth, PlatformClient, PlatformError};
use crate::domain::budget::{Budget, Scope, Window};
use crate::domain::post::{Broken, Media};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use crate::store::Account;

/// LinkedIn's adapter: members, and the organizations they administer when the app may.
pub(super) struct Linkedin;
pub(super) static LINKEDIN: Linkedin = Linkedin;

impl Adapter for Linkedin {
    fn grantor_family(&self) -> &'static str {
        "linkedin"
    }

    fn app<'a>(&self, apps: &'a PlatformApps, _connector: &str) -> Option<&'a AppCredentials> {
        apps.linkedin.as_ref()
    }

    fn start<'a>(
        &'a self,
        client: &'a PlatformClient,
        _connector: &'a str,
        callback: &'a url::Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move { DIALECT.authorize(client, P, app(client)?, callback, &scopes(client)) })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a url::Url,
    ) -> Answer<'a, Vec<Discovered>> {
        Box::pin(finish(client, pending, params, callback))
    }

    fn refresh<'a>(
        &'a self,
        client: &'a PlatformClient,
        refresh_token: &'a SecretString,
        _grant: &'a TokenSet,
    ) -> Answer<'a, Option<Grant>> {
        Box::pin(async move { DIALECT.refresh(client, P, app(client)?, refresh_token).await.map(Some) })
    }

    fn deletes(&self) -> bool {
        true
    }

    /// `DELETE /rest/posts/{encoded post URN}` answers 204 (Microsoft Learn, Posts API, "Delete
    /// Posts").
    fn delete<'a>(
        &'a self,
        client: &'a PlatformClient,
        _account: &'a Account,
        tokens: &'a TokenSet,
        id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async move {
            let api = client.endpoints.linkedin_api.as_str().trim_end_matches('/');
            let urn = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
            let request = client.linkedin_rest(client.http.delete(format!("{api}/rest/posts/{urn}")), tokens);
            client.answer(P, "DELETE /rest/posts/{urn}", request, refusal).await.map(|_| Some(()))
        })
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published> {
        Box::pin(client.publish_linkedin(account, tokens, post.text, post.media))
    }

    fn media_types(&self) -> &'static [&'static str] {
        rules::MEDIA_TYPES
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        rules::check(text, media)
    }

    /// LinkedIn's limits are daily, reset at midnight UTC (platforms.md).
    fn unsaid_retry_at(&self, now: i64) -> i64 {
        (now.div_euclid(86_400) + 1) * 86_400
    }

    /// An organization's posts are read with `r_organization_social` (granted with the
    /// Community Management API's other organization scopes); a member's need `r_member_social`,
    /// which LinkedIn grants to its partners only, so a member's lost answer cannot be looked
    /// for, nor an organization's connected before Herald asked for the scope.
    fn lookup(&self, account: &Account) -> Lookup {
        match account.kind {
            AccountKind::Organization if account.scopes.iter().any(|s| s == READ_ORGANIZATION) => Lookup::LISTED,
            _ => Lookup::None,
        }
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
            match self.lookup(account) {
                Lookup::None => Ok(None),
                _ => client.linkedin_recent(account, tokens, since, after).await.map(Some),
            }
        })
    }

    /// 150 posts per day per member and 100,000 per day per app, days in UTC (platforms.md).
    /// LinkedIn's error-handling page asks for the answer's `x-li-uuid` when reporting a call.
    fn request_id_header(&self) -> Option<&'static str> {
        Some("x-li-uuid")
    }

    fn budgets(&self) -> Vec<Budget> {
        vec![
            Budget::publish(P, Scope::Account, 150, Window::DailyUtc),
            Budget::publish(P, Scope::App, 100_000, Window::DailyUtc),
        ]
    }
}

fn app(client: &PlatformClient) -> Result<&AppCredentials, PlatformError> {
    LINKEDIN.app(&client.apps, oauth2::CONNECTOR).ok_or(PlatformError::NotConfigured(P))
}

const P: Platform = Platform::Linkedin;
const MEMBER_SCOPES: &[&str] = &["openid", "profile", "w_member_social"];
const READ_ORGANIZATION: &str = "r_organization_social";
const ORGANIZATION_SCOPES: &[&str] = &["w_organization_social", READ_ORGANIZATION, "rw_organization_admin"];

/// LinkedIn's OAuth 2.0 for web apps ("3-legged OAuth"): the client secret among the token
/// request's parameters, no PKCE (it is for native apps), access tokens for 60 days, and, for
/// apps LinkedIn grants them, refresh tokens for 365 days counted from the first authorization
/// (platforms.md; learn.microsoft.com/linkedin/shared/authentication/authorization-code-flow and
/// programmatic-refresh-tokens). No documented refresh lifetime is filled in: a refresh does
/// not extend it, so only the answer's `refresh_token_expires_in` (what remains) can say it.
static DIALECT: Dialect = Dialect {
    authorize: "{linkedin_oauth}/oauth/v2/authorization",
    token: Endpoint { url: "{linkedin_oauth}/oauth/v2/accessToken", log: "POST /oauth/v2/accessToken" },
    revoke: None,
    scope_separator: " ",
    client_auth: ClientAuth::Parameters,
    token_method: TokenMethod::PostForm,
    pkce: false,
    lifetimes: Lifetimes { access: Some(60 * 86_400), refresh: None },
    refusal: oauth2::refusal,
};

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

fn scopes(client: &PlatformClient) -> Vec<&'static str> {
    let organizations = if client.apps.linkedin_organizations { ORGANIZATION_SCOPES } else { &[] };
    MEMBER_SCOPES.iter().chain(organizations).copied().collect()
}

/// How long LinkedIn's "infrastructure protection" 429 is waited out: LinkedIn says only that
/// "API service will return to normal automatically" (its rate-limits page), so Herald's guess.
const PROTECTION_WAIT: i64 = 300;

/// A LinkedIn 429, as its rate-limits page explains them (learn.microsoft.com/linkedin/shared/
/// api-guide/concepts/rate-limits): limits are per day, application-wide or per member, and
/// reset at midnight UTC; the answer names which ("Resource level throttle APPLICATION DAY
/// limit…", "…MEMBER DAY limit…"). Any other 429 is "infrastructure protection", which passes
/// by itself: waited out briefly, not until midnight. A `Retry-After` wins where sent.
fn throttle(platform: Platform, answer: &super::Answer) -> PlatformError {
    let message = serde_json::from_slice::<serde_json::Value>(answer.body).unwrap_or_default()["message"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let midnight = LINKEDIN.unsaid_retry_at(answer.now);
    let daily = message.contains(" DAY ");
    let retry_at = match (answer.said, daily) {
        (true, _) => answer.retry_at,
        (false, true) => midnight,
        (false, false) => answer.now + PROTECTION_WAIT,
    };
    PlatformError::RateLimited {
        platform,
        retry_at: Some(retry_at),
        app_wide: daily && message.contains("APPLICATION"),
    }
}

/// LinkedIn's refusal of an API call (5xx is classified before this; 429 is throttling): its
/// service error `{"status", "serviceErrorCode", "code", "message"}`; the code is `code` (such as
/// `ACCESS_DENIED`), else `serviceErrorCode`, else the status.
pub(super) fn refusal(platform: Platform, answer: &super::Answer) -> PlatformError {
    let (status, body) = (answer.status, answer.body);
    if status == 429 {
        return throttle(platform, answer);
    }
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed["code"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| parsed["serviceErrorCode"].as_i64().map(|c| c.to_string()))
        .unwrap_or_else(|| status.to_string());
    let message = parsed["message"].as_str().unwrap_or_default().to_owned();
    match status {
        401 => PlatformError::Unauthorized { platform, status, code, message },
        _ => PlatformError::Refused { platform, status, code, message },
    }
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

async fn finish(
    client: &PlatformClient,
    pending: &PendingAuth,
    params: &CallbackParams,
    redirect: &url::Url,
) -> Result<Vec<Discovered>, PlatformError> {
    let code = params.get("code").ok_or_else(|| unexpected("the callback has no code"))?;
    let (grant, granted) = DIALECT.exchange(client, P, app(client)?, code, redirect, pending).await?;
    let api = client.endpoints.linkedin_api.as_str().trim_end_matches('/').to_owned();
    let bearer = grant.tokens.access_token.expose_secret().to_owned();
    let info: UserInfo = client
        .json(P, "GET /v2/userinfo", client.http.get(format!("{api}/v2/userinfo")).bearer_auth(&bearer), refusal)
        .await?;
    let scopes = if granted.is_empty() { scopes(client).into_iter().map(str::to_owned).collect() } else { granted };
    let may_post_as_organization = scopes.iter().any(|s| s == "w_organization_social");
    let mut accounts = vec![Discovered {
        platform: P,
        platform_account_id: format!("urn:li:person:{}", info.sub),
        name: info.name.unwrap_or_else(|| info.sub.clone()),
        kind: AccountKind::Member,
        scopes: scopes.clone(),
        grant: grant.clone(),
        token_source: None,
        grantor: None,
    }];
    if client.apps.linkedin_organizations && may_post_as_organization {
        for urn in postable_organizations(client, &grant.tokens).await? {
            let name = organization_name(client, &grant.tokens, &urn).await.unwrap_or_else(|| urn.clone());
            accounts.push(Discovered {
                platform: P,
                platform_account_id: urn,
                name,
                kind: AccountKind::Organization,
                scopes: scopes.clone(),
                // Organizations publish with the member's grant; one copy of it, on the member.
                grant: grant.clone(),
                token_source: Some(0),
                grantor: None,
            });
        }
    }
    Ok(accounts)
}

/// The roles that may post as an organization: an administrator "can post updates", a content
/// administrator manages the Page's content; the others (analyst, curator, recruiting poster,
/// sponsored-content poster, lead-gen manager) cannot create its organic posts
/// (learn.microsoft.com/linkedin/marketing/community-management/organizations/
/// organization-access-control-by-role; F12).
const POSTING_ROLES: [&str; 2] = ["ADMINISTRATOR", "CONTENT_ADMINISTRATOR"];
/// Rest.li paging: `start` and `count` (LinkedIn's api-guide "Pagination").
const ACLS_PER_PAGE: usize = 100;
const MAX_ACL_PAGES: usize = 50;

/// The organizations the member may post as (an approved posting role), every page of them
/// (F9: `organizationAcls` is paged).
async fn postable_organizations(client: &PlatformClient, tokens: &TokenSet) -> Result<Vec<String>, PlatformError> {
    let api = client.endpoints.linkedin_api.as_str().trim_end_matches('/').to_owned();
    let mut organizations = Vec::new();
    let mut start = 0;
    for _ in 0..MAX_ACL_PAGES {
        let request = client.linkedin_rest(client.http.get(format!("{api}/rest/organizationAcls")), tokens).query(&[
            ("q", "roleAssignee"),
            ("start", &start.to_string()),
            ("count", &ACLS_PER_PAGE.to_string()),
        ]);
        let page: serde_json::Value = client.json(P, "GET /rest/organizationAcls", request, refusal).await?;
        let elements = page["elements"].as_array().cloned().unwrap_or_default();
        for element in &elements {
            let approved = element["state"].as_str() == Some("APPROVED");
            let posting = element["role"].as_str().is_some_and(|role| POSTING_ROLES.contains(&role));
            if let (true, true, Some(urn)) = (approved, posting, element["organization"].as_str())
                && !organizations.iter().any(|known| known == urn)
            {
                organizations.push(urn.to_owned());
            }
        }
        start += elements.len();
        let total = page["paging"]["total"].as_u64().map(|t| t as usize);
        if elements.len() < ACLS_PER_PAGE || total.is_some_and(|total| start >= total) {
            return Ok(organizations);
        }
    }
    Err(unexpected("the member has more organization roles than Herald reads"))
}

/// An organization's name (`localizedName`, Organization Lookup API: `GET /rest/organizations/{id}`);
/// `None` when LinkedIn does not say, and the URN stands for it.
async fn organization_name(client: &PlatformClient, tokens: &TokenSet, urn: &str) -> Option<String> {
    let id = urn.strip_prefix("urn:li:organization:")?;
    let api = client.endpoints.linkedin_api.as_str().trim_end_matches('/').to_owned();
    let request = client.linkedin_rest(client.http.get(format!("{api}/rest/organizations/{id}")), tokens);
    let organization: serde_json::Value =
        client.json(P, "GET /rest/organizations/{id}", request, refusal).await.ok()?;
    organization["localizedName"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LinkedIn's service errors (`status`, `serviceErrorCode`, `message`, and `code` where the
    /// API names one), per learn.microsoft.com/linkedin/shared/api-guide/concepts/error-handling;
    /// the first row is that page's own sample.
    /// A 429 with no `Retry-After`, at 1970-01-01T00:16:40Z: the day's limit waits for midnight
    /// UTC (the application's holds every account), LinkedIn's "infrastructure protection"
    /// five minutes (its rate-limits page).
    #[test]
    fn linkedin_429s_wait_for_what_they_name() {
        let rows = [
            ("Resource level throttle APPLICATION DAY limit for calls to this resource is reached.", 86_400, true),
            ("Resource level throttle MEMBER DAY limit for calls to this resource is reached.", 86_400, false),
            ("Too many requests", 1_300, false),
        ];
        for (message, until, app_wide) in rows {
            let body = serde_json::json!({ "status": 429, "message": message }).to_string();
            let answer = super::super::Answer {
                status: 429,
                body: body.as_bytes(),
                retry_at: 86_400,
                said: false,
                now: 1_000,
                headers: &Default::default(),
            };
            let e = refusal(P, &answer);
            assert!(
                matches!(e, PlatformError::RateLimited { retry_at: Some(at), app_wide: wide, .. } if at == until && wide == app_wide),
                "{message}: {e:?}"
            );
        }
    }

    #[test]
    fn linkedin_answers_classify_as_their_rows_say() {
        let rows = [
            (
                401,
                r#"{"message":"Empty oauth2_access_token","serviceErrorCode":401,"status":401}"#,
                "unauthorized 401 401",
            ),
            (
                401,
                r#"{"status":401,"serviceErrorCode":65600,"code":"INVALID_ACCESS_TOKEN","message":"Invalid access token"}"#,
                "unauthorized 401 INVALID_ACCESS_TOKEN",
            ),
            (
                403,
                r#"{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: partnerApiPostsExternal.CREATE.20260901"}"#,
                "refused 403 ACCESS_DENIED",
            ),
            (
                426,
                r#"{"status":426,"code":"NONEXISTENT_VERSION","message":"Requested version 20251101 is not active"}"#,
                "refused 426 NONEXISTENT_VERSION",
            ),
            (
                400,
                r#"{"status":400,"serviceErrorCode":100,"message":"Field Value validation failed in REQUEST_BODY"}"#,
                "refused 400 100",
            ),
            (422, r#"{"status":422,"message":"ERROR :: /commentary :: is too long"}"#, "refused 422 422"),
            (
                429,
                r#"{"status":429,"serviceErrorCode":101,"code":"TOO_MANY_REQUESTS","message":"Resource level throttle APPLICATION DAY limit for calls to this resource is reached."}"#,
                "rate_limited until 1900 app",
            ),
            (504, "", "transient"),
            (201, "", "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(super::super::classified(P, status, body, refusal), want, "{status} {body}");
        }
    }
}
