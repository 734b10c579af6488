//! LinkedIn: the OAuth 2.0 code flow with the client secret (no PKCE for web apps), the member
//! from `/v2/userinfo`, the organizations the member administers, and refresh tokens for apps
//! that have them.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod publish;
mod rules;
pub(super) mod webhooks;

use super::adapter::{Adapter, Answer};
use super::publish::Published;
use super::settings::{AppCredentials, PlatformApps};
use super::{
    AuthorizeStart, CallbackParams, Discovered, Grant, PendingAuth, PlatformClient, PlatformError, TokenResponse,
    XAuth, oauth_refusal, random_token,
};
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

    fn app<'a>(&self, apps: &'a PlatformApps, _x_auth: XAuth) -> Option<&'a AppCredentials> {
        apps.linkedin.as_ref()
    }

    fn start<'a>(
        &'a self,
        client: &'a PlatformClient,
        _x_auth: XAuth,
        callback: &'a url::Url,
    ) -> Answer<'a, AuthorizeStart> {
        Box::pin(async move { start(client, callback) })
    }

    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        _pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a url::Url,
    ) -> Answer<'a, Vec<Discovered>> {
        Box::pin(finish(client, params, callback))
    }

    fn refresh<'a>(&'a self, client: &'a PlatformClient, refresh_token: &'a SecretString) -> Answer<'a, Option<Grant>> {
        Box::pin(async move { refresh(client, refresh_token).await.map(Some) })
    }

    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        text: &'a str,
        media: &'a [Media],
    ) -> Answer<'a, Published> {
        Box::pin(client.publish_linkedin(account, tokens, text, media))
    }

    fn media_types(&self) -> &'static [&'static str] {
        rules::MEDIA_TYPES
    }

    fn check(&self, _kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
        rules::check(text, media)
    }

    /// 150 posts per day per member and 100,000 per day per app, days in UTC (platforms.md).
    fn budgets(&self) -> Vec<Budget> {
        vec![
            Budget::publish(P, Scope::Account, 150, Window::DailyUtc),
            Budget::publish(P, Scope::App, 100_000, Window::DailyUtc),
        ]
    }
}

fn app(client: &PlatformClient) -> Result<&AppCredentials, PlatformError> {
    LINKEDIN.app(&client.apps, XAuth::Oauth2).ok_or(PlatformError::NotConfigured(P))
}

const P: Platform = Platform::Linkedin;
const MEMBER_SCOPES: &str = "openid profile w_member_social";
const ORGANIZATION_SCOPES: &str = "w_organization_social rw_organization_admin";

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

fn scopes(client: &PlatformClient) -> String {
    if client.apps.linkedin_organizations {
        format!("{MEMBER_SCOPES} {ORGANIZATION_SCOPES}")
    } else {
        MEMBER_SCOPES.to_owned()
    }
}

pub(super) fn start(client: &PlatformClient, callback: &url::Url) -> Result<AuthorizeStart, PlatformError> {
    let app = app(client)?;
    let state = random_token();
    let mut url = client.endpoints.linkedin_oauth.clone();
    url.path_segments_mut().map_err(|_| unexpected("linkedin_oauth cannot be a base"))?.pop_if_empty().extend([
        "oauth",
        "v2",
        "authorization",
    ]);
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", callback.as_str())
        .append_pair("state", &state)
        .append_pair("scope", &scopes(client));
    Ok(AuthorizeStart { url, pending: PendingAuth { key: state, secret: None, connector: "oauth2".to_owned() } })
}

async fn token_request(client: &PlatformClient, form: &[(&str, &str)]) -> Result<(Grant, Vec<String>), PlatformError> {
    let app = app(client)?;
    let url = format!("{}/oauth/v2/accessToken", client.endpoints.linkedin_oauth.as_str().trim_end_matches('/'));
    let mut full = form.to_vec();
    full.extend([("client_id", app.client_id.as_str()), ("client_secret", app.client_secret.expose_secret())]);
    let request = client.http.post(url).form(&full);
    let response: TokenResponse = client.json(P, "POST /oauth/v2/accessToken", request, oauth_refusal).await?;
    Ok(response.into_grant(client.clock.now()))
}

/// LinkedIn's refusal of an API call (statuses 429 and 5xx are classified before this): its
/// service error `{"status", "serviceErrorCode", "code", "message"}`; the code is `code` (such as
/// `ACCESS_DENIED`), else `serviceErrorCode`, else the status.
pub(super) fn refusal(platform: Platform, status: u16, body: &[u8], _retry_at: i64) -> PlatformError {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    PlatformError::Refused {
        platform,
        status,
        code: parsed["code"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| parsed["serviceErrorCode"].as_i64().map(|c| c.to_string()))
            .unwrap_or_else(|| status.to_string()),
        message: parsed["message"].as_str().unwrap_or_default().to_owned(),
    }
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

pub(super) async fn finish(
    client: &PlatformClient,
    params: &CallbackParams,
    redirect: &url::Url,
) -> Result<Vec<Discovered>, PlatformError> {
    let code = params.get("code").ok_or_else(|| unexpected("the callback has no code"))?;
    let (grant, granted) = token_request(
        client,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect.as_str())],
    )
    .await?;
    let api = client.endpoints.linkedin_api.as_str().trim_end_matches('/').to_owned();
    let bearer = grant.tokens.access_token.expose_secret().to_owned();
    let info: UserInfo = client
        .json(P, "GET /v2/userinfo", client.http.get(format!("{api}/v2/userinfo")).bearer_auth(&bearer), refusal)
        .await?;
    let scopes = if granted.is_empty() { scopes(client).split(' ').map(str::to_owned).collect() } else { granted };
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
        let acls: serde_json::Value = client
            .json(
                P,
                "GET /rest/organizationAcls",
                client
                    .http
                    .get(format!("{api}/rest/organizationAcls"))
                    .query(&[("q", "roleAssignee")])
                    .bearer_auth(&bearer)
                    .header("LinkedIn-Version", client.endpoints.linkedin_version.as_str())
                    .header("X-Restli-Protocol-Version", "2.0.0"),
                refusal,
            )
            .await?;
        for element in acls["elements"].as_array().into_iter().flatten() {
            let (Some(urn), Some("APPROVED")) = (element["organization"].as_str(), element["state"].as_str()) else {
                continue;
            };
            accounts.push(Discovered {
                platform: P,
                platform_account_id: urn.to_owned(),
                name: element["organizationName"].as_str().unwrap_or(urn).to_owned(),
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

pub(super) async fn refresh(client: &PlatformClient, refresh_token: &SecretString) -> Result<Grant, PlatformError> {
    let (grant, _) =
        token_request(client, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())])
            .await?;
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LinkedIn's service errors (`status`, `serviceErrorCode`, `message`, and `code` where the
    /// API names one), per learn.microsoft.com/linkedin/shared/api-guide/concepts/error-handling;
    /// the first row is that page's own sample.
    #[test]
    fn linkedin_answers_classify_as_their_rows_say() {
        let rows = [
            (
                401,
                r#"{"message":"Empty oauth2_access_token","serviceErrorCode":401,"status":401}"#,
                "refused 401 401 dead",
            ),
            (
                401,
                r#"{"status":401,"serviceErrorCode":65600,"code":"INVALID_ACCESS_TOKEN","message":"Invalid access token"}"#,
                "refused 401 INVALID_ACCESS_TOKEN dead",
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
                "rate_limited until 1900",
            ),
            (504, "", "transient"),
            (201, "", "ok"),
        ];
        for (status, body, want) in rows {
            assert_eq!(super::super::classified(P, status, body, refusal), want, "{status} {body}");
        }
    }
}
