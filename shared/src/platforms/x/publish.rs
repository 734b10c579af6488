//! X publishing: images through `POST /2/media/upload`, the post through `POST /2/tweets`, and
//! the account's recent posts (`GET /2/users/{id}/tweets`) to look for an ambiguous one.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::refusal;
use crate::domain::Platform;
use crate::domain::post::Media;
use crate::domain::tokens::TokenSet;
use crate::platforms::publish::{Listing, Published, RECENT_PAGE, Throttle, created_id, recent_posts};
use crate::platforms::{PlatformClient, PlatformError, oauth1};
use crate::store::Account;

/// When a spent 24-hour limit of `scope` (`app` or `user`) resets, if the answer says it is
/// spent: `POST /2/tweets` reports them in `x-{scope}-limit-24hour-remaining` and `-reset` (as X
/// sends them; client libraries read them: node-twitter-api-v2 #495, #553).
pub(super) fn day_spent(headers: &reqwest::header::HeaderMap, scope: &str, now: i64) -> Option<i64> {
    let header = |name: &str| crate::platforms::header(headers, &format!("x-{scope}-limit-24hour-{name}"));
    (header("remaining") == Some("0")).then(|| header("reset").and_then(|r| r.parse().ok()).unwrap_or(now + 86_400))
}

/// A successful answer's `x-rate-limit-remaining: 0`: the budget is spent until
/// `x-rate-limit-reset`.
pub(super) fn throttle_hint(headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
    let header = |name: &str| crate::platforms::header(headers, name);
    // The app's last post of its 24 hours: every account waits for its reset.
    if let Some(until) = day_spent(headers, "app", now) {
        return Some(Throttle { app_wide: true, until });
    }
    if header("x-rate-limit-remaining")? != "0" {
        return None;
    }
    let until = header("x-rate-limit-reset").and_then(|v| v.parse().ok()).unwrap_or(now + 900);
    Some(Throttle { app_wide: false, until })
}

/// One page of the account's posts since `since` (the first, or the one `after` names): X's
/// user timeline, `start_time` cutting it at `since`, paged by `pagination_token` while the
/// answer's `meta.next_token` says more follow (X's OpenAPI, `GET /2/users/{id}/tweets`).
pub(super) async fn recent(
    client: &PlatformClient,
    account: &Account,
    tokens: &TokenSet,
    since: time::OffsetDateTime,
    after: Option<&str>,
) -> Result<Listing, PlatformError> {
    let api = client.endpoints.x_api.as_str().trim_end_matches('/');
    let url = format!("{api}/2/users/{}/tweets", account.platform_account_id);
    let start = since
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| PlatformError::Unexpected { platform: Platform::X, detail: e.to_string() })?;
    let page_size = RECENT_PAGE.to_string();
    let mut query = vec![("max_results", page_size.as_str()), ("start_time", start.as_str())];
    query.extend(after.map(|token| ("pagination_token", token)));
    let request = client
        .http
        .get(&url)
        .query(&query)
        .header("authorization", client.x_authorization(tokens, "GET", &url, &query)?);
    let page: Value = client.json(Platform::X, "GET /2/users/{id}/tweets", request, refusal).await?;
    let posts = recent_posts(&page, "text", |id| format!("https://x.com/i/web/status/{id}"));
    Ok(Listing { posts, next: page["meta"]["next_token"].as_str().map(str::to_owned) })
}

impl PlatformClient {
    /// Bearer for OAuth 2.0 grants, a signed header for OAuth 1.0a (bodies are JSON or
    /// multipart, which are not signed).
    pub(in crate::platforms) fn x_authorization(
        &self,
        tokens: &TokenSet,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<String, PlatformError> {
        match &tokens.token_secret {
            None => Ok(format!("Bearer {}", tokens.access_token.expose_secret())),
            Some(secret) => {
                let app = self.apps.x_oauth1.as_ref().ok_or(PlatformError::NotConfigured(Platform::X))?;
                let creds = oauth1::Credentials {
                    consumer_key: &app.client_id,
                    consumer_secret: app.client_secret.expose_secret(),
                    token: Some(tokens.access_token.expose_secret()),
                    token_secret: secret.expose_secret(),
                };
                let now = self.clock.now().unix_timestamp();
                Ok(oauth1::authorization(&oauth1::Request { method, base_url: url, params: query }, &creds, now, &[]))
            }
        }
    }

    pub(in crate::platforms) async fn publish_x(
        &self,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let p = Platform::X;
        let api = self.endpoints.x_api.as_str().trim_end_matches('/').to_owned();
        let mut media_ids = Vec::new();
        for item in media {
            let (bytes, content_type) = self.fetch_media(p, item).await?;
            let url = format!("{api}/2/media/upload");
            let part = reqwest::multipart::Part::bytes(bytes)
                .file_name("media")
                .mime_str(&content_type)
                .unwrap_or_else(|_| reqwest::multipart::Part::bytes(Vec::new()));
            // An animated GIF is `tweet_gif`, a photo `tweet_image`: "it's important to use the
            // correct media category" (docs.x.com media/quickstart/best-practices; F7).
            let category = if content_type == "image/gif" { "tweet_gif" } else { "tweet_image" };
            if category == "tweet_gif" && media.len() > 1 {
                return Err(PlatformError::Media {
                    code: "too_many_media",
                    message: "an animated GIF goes alone on X, and this post has more media".into(),
                });
            }
            let form = reqwest::multipart::Form::new().text("media_category", category).part("media", part);
            let request = self
                .http
                .post(&url)
                .header("authorization", self.x_authorization(tokens, "POST", &url, &[])?)
                .multipart(form);
            let uploaded: Value = self.json(p, "POST /2/media/upload", request, refusal).await?;
            let id = uploaded["data"]["id"]
                .as_str()
                .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no media id".into() })?;
            if let Some(alt) = item.alt_text.as_deref().filter(|alt| !alt.is_empty()) {
                // Alt text is the media's metadata (`POST /2/media/metadata`, X's OpenAPI
                // `CreateMediaMetadataRequest`), set before the post (F15).
                let url = format!("{api}/2/media/metadata");
                let body = json!({ "id": id, "metadata": { "alt_text": { "text": alt } } });
                let request = self
                    .http
                    .post(&url)
                    .header("authorization", self.x_authorization(tokens, "POST", &url, &[])?)
                    .json(&body);
                let _: Value = self.json(p, "POST /2/media/metadata", request, refusal).await?;
            }
            media_ids.push(id.to_owned());
        }
        let mut body = json!({ "text": text });
        if !media_ids.is_empty() {
            body["media"] = json!({ "media_ids": media_ids });
        }
        let url = format!("{api}/2/tweets");
        let request =
            self.http.post(&url).header("authorization", self.x_authorization(tokens, "POST", &url, &[])?).json(&body);
        let response = self.send_effect(p, "POST /2/tweets", request).await?;
        let (created, throttle) = self.read_effect(p, response, refusal).await?;
        let id = created_id(p, &created["data"]["id"])?;
        Ok(Published { url: Some(format!("https://x.com/i/web/status/{id}")), id, throttle, found: false })
    }
}
