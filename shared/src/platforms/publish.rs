//! Publishing: one post to one account, through the platform's current API.
//!
//! Only the final, creating call of each flow can leave the outcome unknown
//! ([`PlatformError::Ambiguous`]); the steps before it (media uploads, unpublished photos,
//! containers) are safe to repeat.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{PlatformClient, PlatformError, meta::graph_refusal, oauth1};
use crate::domain::Platform;
use crate::domain::post::Media;
use crate::domain::tokens::TokenSet;
use crate::store::Account;

/// What a published post is called on its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub url: Option<String>,
    /// The platform's answer said the budget is (nearly) spent: hold off until `until`.
    pub throttle: Option<Throttle>,
}

/// A hint from a successful answer's headers that the next call would be throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// The whole app (Meta's `X-App-Usage`), rather than this account.
    pub app_wide: bool,
    /// Unix seconds.
    pub until: i64,
}

/// Usage at or above this share of a Meta budget counts as spent.
const META_USAGE_CEILING: i64 = 95;

/// What a successful answer's headers say about the budget: X's `x-rate-limit-remaining: 0`
/// (until `x-rate-limit-reset`), Meta's `X-App-Usage` (app-wide) or `X-Business-Use-Case-Usage`
/// (this account) near 100 % or with time to regain access.
fn throttle_hint(platform: Platform, headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match platform {
        Platform::X => {
            if header("x-rate-limit-remaining")? != "0" {
                return None;
            }
            let until = header("x-rate-limit-reset").and_then(|v| v.parse().ok()).unwrap_or(now + 900);
            Some(Throttle { app_wide: false, until })
        }
        Platform::Facebook | Platform::Instagram => {
            let peak = |usage: &Value| {
                ["call_count", "total_cputime", "total_time"]
                    .iter()
                    .filter_map(|k| usage[*k].as_i64())
                    .max()
                    .unwrap_or(0)
            };
            if let Some(app) = header("x-app-usage").and_then(|v| serde_json::from_str::<Value>(v).ok())
                && peak(&app) >= META_USAGE_CEILING
            {
                return Some(Throttle { app_wide: true, until: now + 3600 });
            }
            let buc = header("x-business-use-case-usage").and_then(|v| serde_json::from_str::<Value>(v).ok())?;
            let entries: Vec<Value> =
                buc.as_object()?.values().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect();
            let wait = entries.iter().filter_map(|e| e["estimated_time_to_regain_access"].as_i64()).max().unwrap_or(0);
            if wait > 0 {
                return Some(Throttle { app_wide: false, until: now + wait * 60 });
            }
            entries
                .iter()
                .any(|e| peak(e) >= META_USAGE_CEILING)
                .then_some(Throttle { app_wide: false, until: now + 3600 })
        }
        Platform::Linkedin => None,
    }
}

/// Media are fetched by Herald for the platforms that take uploads (X, LinkedIn).
const MEDIA_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Instagram containers: status checks before giving the attempt back to the queue.
const CONTAINER_POLLS: u32 = 10;
const CONTAINER_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The id in a creating call's accepted answer. Without one the post exists but cannot be named:
/// ambiguous (X and Facebook then look for it among the account's recent posts, Instagram asks
/// its container), never published under an empty id.
fn created_id(platform: Platform, id: &Value) -> Result<String, PlatformError> {
    match id.as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => {
            Err(PlatformError::Ambiguous { platform, detail: "the platform accepted the post but named no id".into() })
        }
    }
}

/// `(id, text)` of each post in a `{"data": [...]}` listing whose text is in `field`.
fn id_and_text(listing: &Value, field: &str) -> Vec<(String, String)> {
    let text = |post: &Value, key: &str| post[key].as_str().unwrap_or_default().to_owned();
    listing["data"].as_array().into_iter().flatten().map(|post| (text(post, "id"), text(post, field))).collect()
}

/// Text as compared after a platform stored it: whitespace-trimmed, URLs as placeholders.
fn comparable(text: &str) -> String {
    text.split_whitespace()
        .map(|word| if word.starts_with("http://") || word.starts_with("https://") { "<url>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

impl PlatformClient {
    /// Publishes `text` and `media` as `account`, with its usable `tokens`.
    pub async fn publish(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let started = self.clock.now();
        let result = match account.platform {
            Platform::X => self.publish_x(tokens, text, media).await,
            Platform::Facebook => self.publish_facebook(account, tokens, text, media).await,
            Platform::Instagram => self.publish_instagram(account, tokens, text, media).await,
            Platform::Linkedin => self.publish_linkedin(account, tokens, text, media).await,
        };
        match result {
            // X and Facebook let us look: the post is among the account's recent ones, or not.
            Err(PlatformError::Ambiguous { platform, detail })
                if matches!(account.platform, Platform::X | Platform::Facebook) =>
            {
                match self.find_recent(account, tokens, text, started).await {
                    Ok(Some(published)) => {
                        tracing::info!(platform = %platform, "an ambiguous publish was found on the platform");
                        Ok(published)
                    }
                    // Not (yet) visible proves nothing: reads may lag the write. Never resent.
                    Ok(None) => Err(PlatformError::Ambiguous {
                        platform,
                        detail: format!("{detail}; not among the account's recent posts when checked"),
                    }),
                    Err(_) => Err(PlatformError::Ambiguous { platform, detail }),
                }
            }
            other => other,
        }
    }

    /// Looks for a post with `text` among the account's posts since `since` (a minute of clock
    /// skew allowed): how an ambiguous final call is checked where publishing has no idempotent
    /// step to ask about (Instagram's container has one). URLs are compared as placeholders,
    /// since X rewrites them to t.co links.
    async fn find_recent(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        since: time::OffsetDateTime,
    ) -> Result<Option<Published>, PlatformError> {
        let since = since - time::Duration::minutes(1);
        let wanted = comparable(text);
        let (platform, found): (Platform, Vec<(String, String)>) = match account.platform {
            Platform::X => {
                let api = self.endpoints.x_api.as_str().trim_end_matches('/');
                let url = format!("{api}/2/users/{}/tweets", account.platform_account_id);
                let start = since
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| PlatformError::Unexpected { platform: Platform::X, detail: e.to_string() })?;
                let query = [("max_results", "20"), ("start_time", start.as_str())];
                let request = self
                    .http
                    .get(&url)
                    .query(&query)
                    .header("authorization", self.x_authorization(tokens, "GET", &url, &query)?);
                let page: Value =
                    self.json(Platform::X, "GET /2/users/{id}/tweets", request, super::x::refusal).await?;
                (Platform::X, id_and_text(&page, "text"))
            }
            Platform::Facebook => {
                let page = &account.platform_account_id;
                let request = self.http.get(self.graph_url(&format!("/{page}/feed"))).query(&[
                    ("fields", "id,message"),
                    ("since", &since.unix_timestamp().to_string()),
                    ("limit", "25"),
                    ("access_token", tokens.access_token.expose_secret()),
                ]);
                let feed: Value = self.json(Platform::Facebook, "GET /{page-id}/feed", request, graph_refusal).await?;
                (Platform::Facebook, id_and_text(&feed, "message"))
            }
            Platform::Instagram | Platform::Linkedin => return Ok(None),
        };
        Ok(found.into_iter().find(|(id, body)| !id.is_empty() && comparable(body) == wanted).map(|(id, _)| Published {
            url: Some(match platform {
                Platform::X => format!("https://x.com/i/web/status/{id}"),
                _ => format!("https://www.facebook.com/{id}"),
            }),
            id,
            throttle: None,
        }))
    }

    /// Downloads a tenant's media through the egress policy (public https hosts only, at most
    /// 5 MB read). A refused or failing URL is the tenant's to fix: refused, not retried; a
    /// network failure or timeout is transient.
    async fn fetch_media(&self, platform: Platform, media: &Media) -> Result<(Vec<u8>, String), PlatformError> {
        use crate::egress::EgressError;
        let started = std::time::Instant::now();
        let result = self.egress.fetch(&media.url, MEDIA_MAX_BYTES).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let media = |code: &'static str, message: String| PlatformError::Media { code, message };
        match result {
            Ok(fetched) => {
                tracing::info!(platform = %platform, endpoint = "GET media", status = 200, latency_ms, "media fetched");
                Ok((fetched.bytes, fetched.content_type))
            }
            Err(e) => {
                tracing::warn!(platform = %platform, endpoint = "GET media", latency_ms, error = %e, "media not fetched");
                Err(match e {
                    EgressError::Refused(refusal) => {
                        media("media_url_blocked", format!("the media URL is not allowed: {refusal}"))
                    }
                    EgressError::Status(status) => {
                        media("media_unreachable", format!("fetching the media answered {status}"))
                    }
                    EgressError::TooLarge { .. } => media("media_too_large", "over 5 MB".into()),
                    EgressError::Timeout | EgressError::Unreachable | EgressError::CutOff => {
                        PlatformError::Transient { platform, detail: format!("media download: {e}") }
                    }
                })
            }
        }
    }

    // --- X ----------------------------------------------------------------------------------

    /// Bearer for OAuth 2.0 grants, a signed header for OAuth 1.0a (bodies are JSON or
    /// multipart, which are not signed).
    fn x_authorization(
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

    async fn publish_x(&self, tokens: &TokenSet, text: &str, media: &[Media]) -> Result<Published, PlatformError> {
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
            let form = reqwest::multipart::Form::new().text("media_category", "tweet_image").part("media", part);
            let request = self
                .http
                .post(&url)
                .header("authorization", self.x_authorization(tokens, "POST", &url, &[])?)
                .multipart(form);
            let uploaded: Value = self.json(p, "POST /2/media/upload", request, super::x::refusal).await?;
            let id = uploaded["data"]["id"]
                .as_str()
                .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no media id".into() })?;
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
        let (created, throttle) = self.read_effect(p, response, super::x::refusal).await?;
        let id = created_id(p, &created["data"]["id"])?;
        Ok(Published { url: Some(format!("https://x.com/i/web/status/{id}")), id, throttle })
    }

    /// Reads the answer of a creating call: errors are classified as in [`Self::json`], and a
    /// body cut off after a 2xx status is ambiguous (the post exists).
    async fn read_effect(
        &self,
        platform: Platform,
        response: reqwest::Response,
        refusal: fn(Platform, u16, &[u8], i64) -> PlatformError,
    ) -> Result<(Value, Option<Throttle>), PlatformError> {
        let status = response.status().as_u16();
        let retry_at = super::retry_at(platform, response.headers(), self.clock.now());
        let headers = response.headers().clone();
        let throttle = throttle_hint(platform, &headers, self.clock.now().unix_timestamp());
        let body = response
            .bytes()
            .await
            .map_err(|_| PlatformError::Ambiguous { platform, detail: "the answer was cut off".into() })?;
        Self::classify(platform, status, &body, retry_at, refusal)?;
        if body.is_empty() {
            // LinkedIn answers 201 with the id in a header.
            let id = headers.get("x-restli-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            return Ok((json!({ "id": id }), throttle));
        }
        // Accepted, but unreadable: the post may well exist.
        let value = serde_json::from_slice(&body).map_err(|e| PlatformError::Ambiguous {
            platform,
            detail: format!("the answer to the creating call could not be read ({e})"),
        })?;
        Ok((value, throttle))
    }

    // --- Facebook Pages ---------------------------------------------------------------------

    fn graph_url(&self, path: &str) -> String {
        format!(
            "{}/{}{path}",
            self.endpoints.meta_graph.as_str().trim_end_matches('/'),
            self.endpoints.meta_graph_version
        )
    }

    async fn publish_facebook(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let p = Platform::Facebook;
        let page = &account.platform_account_id;
        let token = tokens.access_token.expose_secret();
        let post_url = |id: &str| Some(format!("https://www.facebook.com/{id}"));
        if media.len() == 1 {
            let request = self.http.post(self.graph_url(&format!("/{page}/photos"))).form(&[
                ("url", media[0].url.as_str()),
                ("caption", text),
                ("access_token", token),
            ]);
            let response = self.send_effect(p, "POST /{page-id}/photos", request).await?;
            let (created, throttle) = self.read_effect(p, response, graph_refusal).await?;
            let id = created_id(p, if created["post_id"].is_string() { &created["post_id"] } else { &created["id"] })?;
            return Ok(Published { url: post_url(&id), id, throttle });
        }
        let mut form: Vec<(String, String)> =
            vec![("message".into(), text.to_owned()), ("access_token".into(), token.to_owned())];
        for (i, item) in media.iter().enumerate() {
            // Unpublished photos first; they are attached to one post below.
            let request = self.http.post(self.graph_url(&format!("/{page}/photos"))).form(&[
                ("url", item.url.as_str()),
                ("published", "false"),
                ("access_token", token),
            ]);
            let photo: Value = self.json(p, "POST /{page-id}/photos (unpublished)", request, graph_refusal).await?;
            let id = photo["id"]
                .as_str()
                .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no photo id".into() })?;
            form.push((format!("attached_media[{i}]"), json!({ "media_fbid": id }).to_string()));
        }
        let request = self.http.post(self.graph_url(&format!("/{page}/feed"))).form(&form);
        let response = self.send_effect(p, "POST /{page-id}/feed", request).await?;
        let (created, throttle) = self.read_effect(p, response, graph_refusal).await?;
        let id = created_id(p, &created["id"])?;
        Ok(Published { url: post_url(&id), id, throttle })
    }

    // --- Instagram --------------------------------------------------------------------------

    async fn container(&self, tokens: &TokenSet, ig: &str, params: &[(&str, &str)]) -> Result<String, PlatformError> {
        let p = Platform::Instagram;
        let mut form = params.to_vec();
        form.push(("access_token", tokens.access_token.expose_secret()));
        let request = self.http.post(self.graph_url(&format!("/{ig}/media"))).form(&form);
        let created: Value = self.json(p, "POST /{ig-user-id}/media", request, graph_refusal).await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no container id".into() })
    }

    /// Polls a container until FINISHED (bounded); still in progress → transient.
    async fn container_ready(&self, tokens: &TokenSet, container: &str) -> Result<(), PlatformError> {
        let p = Platform::Instagram;
        for poll in 0..CONTAINER_POLLS {
            let status = self.container_status(tokens, container).await?;
            match Some(status.as_str()).filter(|s| !s.is_empty()) {
                Some("FINISHED") => return Ok(()),
                Some("IN_PROGRESS") if poll + 1 < CONTAINER_POLLS => tokio::time::sleep(CONTAINER_POLL_INTERVAL).await,
                Some("IN_PROGRESS") => break,
                other => {
                    return Err(PlatformError::Refused {
                        platform: p,
                        status: 400,
                        code: format!("container_{}", other.unwrap_or("unknown").to_ascii_lowercase()),
                        message: "the media container could not be processed".into(),
                    });
                }
            }
        }
        Err(PlatformError::Transient { platform: p, detail: "the media is still being processed".into() })
    }

    async fn publish_instagram(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let p = Platform::Instagram;
        let ig = &account.platform_account_id;
        // The publishing quota is read and respected before anything is created.
        let request = self
            .http
            .get(self.graph_url(&format!("/{ig}/content_publishing_limit")))
            .query(&[("fields", "quota_usage,config"), ("access_token", tokens.access_token.expose_secret())]);
        let limit: Value = self.json(p, "GET /{ig-user-id}/content_publishing_limit", request, graph_refusal).await?;
        let usage = limit["data"][0]["quota_usage"].as_i64().unwrap_or(0);
        let total = limit["data"][0]["config"]["quota_total"].as_i64().unwrap_or(i64::MAX);
        if usage >= total {
            // A rolling 24 h window: a slot frees when the oldest post leaves it; check hourly.
            return Err(PlatformError::RateLimited {
                platform: p,
                retry_at: Some(self.clock.now().unix_timestamp() + 3600),
            });
        }
        let creation = if media.len() == 1 {
            let mut params = vec![("image_url", media[0].url.as_str()), ("caption", text)];
            if let Some(alt) = &media[0].alt_text {
                params.push(("alt_text", alt.as_str()));
            }
            self.container(tokens, ig, &params).await?
        } else {
            let mut children = Vec::new();
            for item in media {
                let child = self
                    .container(tokens, ig, &[("image_url", item.url.as_str()), ("is_carousel_item", "true")])
                    .await?;
                self.container_ready(tokens, &child).await?;
                children.push(child);
            }
            let joined = children.join(",");
            self.container(tokens, ig, &[("media_type", "CAROUSEL"), ("children", &joined), ("caption", text)]).await?
        };
        self.container_ready(tokens, &creation).await?;
        let request = self
            .http
            .post(self.graph_url(&format!("/{ig}/media_publish")))
            .form(&[("creation_id", creation.as_str()), ("access_token", tokens.access_token.expose_secret())]);
        let outcome = match self.send_effect(p, "POST /{ig-user-id}/media_publish", request).await {
            Ok(response) => self
                .read_effect(p, response, graph_refusal)
                .await
                .and_then(|(published, throttle)| Ok((created_id(p, &published["id"])?, throttle))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((id, throttle)) => Ok(Published { id, url: None, throttle }),
            // Instagram lets us check: the container says whether it was published.
            Err(PlatformError::Ambiguous { detail, .. }) => match self.container_status(tokens, &creation).await {
                Ok(status) if status == "PUBLISHED" => {
                    Ok(Published { id: format!("container:{creation}"), url: None, throttle: None })
                }
                Ok(status) if status == "FINISHED" => Err(PlatformError::Transient {
                    platform: p,
                    detail: format!("{detail}; the container is still unpublished, so publishing can be retried"),
                }),
                _ => Err(PlatformError::Ambiguous { platform: p, detail }),
            },
            Err(e) => Err(e),
        }
    }

    async fn container_status(&self, tokens: &TokenSet, container: &str) -> Result<String, PlatformError> {
        let request = self
            .http
            .get(self.graph_url(&format!("/{container}")))
            .query(&[("fields", "status_code"), ("access_token", tokens.access_token.expose_secret())]);
        let status: Value =
            self.json(Platform::Instagram, "GET /{container-id}?fields=status_code", request, graph_refusal).await?;
        Ok(status["status_code"].as_str().unwrap_or_default().to_owned())
    }

    // --- LinkedIn ---------------------------------------------------------------------------

    fn linkedin_rest(&self, request: reqwest::RequestBuilder, tokens: &TokenSet) -> reqwest::RequestBuilder {
        request
            .bearer_auth(tokens.access_token.expose_secret())
            .header("LinkedIn-Version", self.endpoints.linkedin_version.as_str())
            .header("X-Restli-Protocol-Version", "2.0.0")
    }

    async fn publish_linkedin(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let p = Platform::Linkedin;
        let api = self.endpoints.linkedin_api.as_str().trim_end_matches('/').to_owned();
        let author = &account.platform_account_id;
        let mut images = Vec::new();
        for item in media {
            let request =
                self.linkedin_rest(self.http.post(format!("{api}/rest/images?action=initializeUpload")), tokens);
            let init: Value = self
                .json(
                    p,
                    "POST /rest/images?action=initializeUpload",
                    request.json(&json!({ "initializeUploadRequest": { "owner": author } })),
                    super::linkedin::refusal,
                )
                .await?;
            let (Some(upload_url), Some(image)) =
                (init["value"]["uploadUrl"].as_str(), init["value"]["image"].as_str())
            else {
                return Err(PlatformError::Unexpected { platform: p, detail: "no upload URL".into() });
            };
            let (bytes, _) = self.fetch_media(p, item).await?;
            let put = self.http.put(upload_url).bearer_auth(tokens.access_token.expose_secret()).body(bytes);
            let uploaded = self.send(p, "PUT upload URL", put).await?;
            if !uploaded.status().is_success() {
                return Err(PlatformError::Transient {
                    platform: p,
                    detail: format!("image upload answered {}", uploaded.status()),
                });
            }
            images.push(json!({ "id": image, "altText": item.alt_text.clone().unwrap_or_default() }));
        }
        let mut body = json!({
            "author": author,
            "commentary": text,
            "visibility": "PUBLIC",
            "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        });
        match images.len() {
            0 => {}
            1 => body["content"] = json!({ "media": images[0] }),
            _ => body["content"] = json!({ "multiImage": { "images": images } }),
        }
        let request = self.linkedin_rest(self.http.post(format!("{api}/rest/posts")), tokens).json(&body);
        let response = self.send_effect(p, "POST /rest/posts", request).await?;
        let (created, throttle) = self.read_effect(p, response, super::linkedin::refusal).await?;
        let urn = created_id(p, &created["id"])?;
        Ok(Published { url: Some(format!("https://www.linkedin.com/feed/update/{urn}")), id: urn, throttle })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn throttle_hints_from_success_headers() {
        let x = headers(&[("x-rate-limit-remaining", "0"), ("x-rate-limit-reset", "1900")]);
        assert_eq!(throttle_hint(Platform::X, &x, 1000), Some(Throttle { app_wide: false, until: 1900 }));
        let x = headers(&[("x-rate-limit-remaining", "3"), ("x-rate-limit-reset", "1900")]);
        assert_eq!(throttle_hint(Platform::X, &x, 1000), None);
        let app = headers(&[("x-app-usage", r#"{"call_count":96,"total_cputime":10,"total_time":12}"#)]);
        assert_eq!(throttle_hint(Platform::Facebook, &app, 1000), Some(Throttle { app_wide: true, until: 4600 }));
        let calm = headers(&[("x-app-usage", r#"{"call_count":40,"total_cputime":10,"total_time":12}"#)]);
        assert_eq!(throttle_hint(Platform::Instagram, &calm, 1000), None);
        let buc = headers(&[(
            "x-business-use-case-usage",
            r#"{"104":[{"type":"pages","call_count":50,"total_cputime":5,"total_time":5,"estimated_time_to_regain_access":7}]}"#,
        )]);
        assert_eq!(throttle_hint(Platform::Facebook, &buc, 1000), Some(Throttle { app_wide: false, until: 1420 }));
        assert_eq!(throttle_hint(Platform::Linkedin, &x, 1000), None);
    }

    #[test]
    fn an_accepted_post_without_an_id_is_ambiguous_not_published() {
        assert_eq!(created_id(Platform::X, &json!("1860")).unwrap(), "1860");
        for missing in [json!(""), json!(null), json!(1860)] {
            let e = created_id(Platform::Facebook, &missing).unwrap_err();
            assert!(matches!(e, PlatformError::Ambiguous { platform: Platform::Facebook, .. }), "{missing}: {e:?}");
        }
    }
}
