//! Meta publishing: Facebook Page posts (`/{page-id}/feed`, photos through `/{page-id}/photos`)
//! and Instagram containers (`/{ig-user-id}/media`, checked, then `/media_publish`), and a Page's
//! recent posts to look for an ambiguous one.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::graph_refusal;
use crate::domain::Platform;
use crate::domain::post::Media;
use crate::domain::tokens::TokenSet;
use crate::platforms::publish::{Published, Recent, Throttle, created_id, recent_posts};
use crate::platforms::{PlatformClient, PlatformError};
use crate::store::Account;

/// Usage at or above this share of a Meta budget counts as spent.
const META_USAGE_CEILING: i64 = 95;
/// Instagram containers: status checks before giving the attempt back to the queue.
const CONTAINER_POLLS: u32 = 10;
const CONTAINER_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What a successful answer's headers say about the budget: `X-App-Usage` (app-wide) or
/// `X-Business-Use-Case-Usage` (this account) near 100 % or with time to regain access.
pub(super) fn throttle_hint(headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
    let header = |name: &str| crate::platforms::header(headers, name);
    let peak = |usage: &Value| {
        ["call_count", "total_cputime", "total_time"].iter().filter_map(|k| usage[*k].as_i64()).max().unwrap_or(0)
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
    entries.iter().any(|e| peak(e) >= META_USAGE_CEILING).then_some(Throttle { app_wide: false, until: now + 3600 })
}

/// A Facebook Page's posts since `since`.
pub(super) async fn recent(
    client: &PlatformClient,
    account: &Account,
    tokens: &TokenSet,
    since: time::OffsetDateTime,
) -> Result<Vec<Recent>, PlatformError> {
    let page = &account.platform_account_id;
    let token = tokens.access_token.expose_secret();
    let request = client.http.get(client.graph_url(&format!("/{page}/feed"))).query(&[
        ("fields", "id,message"),
        ("since", &since.unix_timestamp().to_string()),
        ("limit", "25"),
        ("access_token", token),
    ]);
    let request = client.proved(request, token);
    let feed: Value = client.json(Platform::Facebook, "GET /{page-id}/feed", request, graph_refusal).await?;
    Ok(recent_posts(&feed, "message", |id| format!("https://www.facebook.com/{id}")))
}

impl PlatformClient {
    /// `request` with the `appsecret_proof` of `token`: the hex HMAC-SHA256 of the token keyed
    /// with the app secret, which Graph requires of every call with a user or Page token when the
    /// app enables "Require App Secret", as Meta's security guide recommends
    /// (developers.facebook.com/docs/facebook-login/security, "App secret proof"; F10). Sent
    /// always: without the setting, Graph checks a proof it is given and ignores none.
    pub(in crate::platforms) fn proved(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> reqwest::RequestBuilder {
        match &self.apps.meta {
            Some(app) => request.query(&[("appsecret_proof", super::appsecret_proof(&app.client_secret, token))]),
            None => request,
        }
    }

    pub(in crate::platforms) fn graph_url(&self, path: &str) -> String {
        format!(
            "{}/{}{path}",
            self.endpoints.meta_graph.as_str().trim_end_matches('/'),
            self.endpoints.meta_graph_version
        )
    }

    pub(in crate::platforms) async fn publish_facebook(
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
            let request = self.proved(request, token);
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
            let request = self.proved(request, token);
            let photo: Value = self.json(p, "POST /{page-id}/photos (unpublished)", request, graph_refusal).await?;
            let id = photo["id"]
                .as_str()
                .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no photo id".into() })?;
            form.push((format!("attached_media[{i}]"), json!({ "media_fbid": id }).to_string()));
        }
        let request = self.proved(self.http.post(self.graph_url(&format!("/{page}/feed"))).form(&form), token);
        let response = self.send_effect(p, "POST /{page-id}/feed", request).await?;
        let (created, throttle) = self.read_effect(p, response, graph_refusal).await?;
        let id = created_id(p, &created["id"])?;
        Ok(Published { url: post_url(&id), id, throttle })
    }

    pub(in crate::platforms) async fn container(
        &self,
        tokens: &TokenSet,
        ig: &str,
        params: &[(&str, &str)],
    ) -> Result<String, PlatformError> {
        let p = Platform::Instagram;
        let mut form = params.to_vec();
        form.push(("access_token", tokens.access_token.expose_secret()));
        let request = self.proved(
            self.http.post(self.graph_url(&format!("/{ig}/media"))).form(&form),
            tokens.access_token.expose_secret(),
        );
        let created: Value = self.json(p, "POST /{ig-user-id}/media", request, graph_refusal).await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no container id".into() })
    }

    /// Polls a container until FINISHED (bounded); still in progress → transient.
    pub(in crate::platforms) async fn container_ready(
        &self,
        tokens: &TokenSet,
        container: &str,
    ) -> Result<(), PlatformError> {
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

    pub(in crate::platforms) async fn publish_instagram(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let p = Platform::Instagram;
        let ig = &account.platform_account_id;
        // Instagram fetches the media itself and takes JPEG only: each file's first bytes say
        // what it is, before any container is made (F15).
        for item in media {
            self.media_kind(p, item).await?;
        }
        // The publishing quota is read and respected before anything is created.
        let request = self
            .http
            .get(self.graph_url(&format!("/{ig}/content_publishing_limit")))
            .query(&[("fields", "quota_usage,config"), ("access_token", tokens.access_token.expose_secret())]);
        let request = self.proved(request, tokens.access_token.expose_secret());
        let limit: Value = self.json(p, "GET /{ig-user-id}/content_publishing_limit", request, graph_refusal).await?;
        let usage = limit["data"][0]["quota_usage"].as_i64().unwrap_or(0);
        let total = limit["data"][0]["config"]["quota_total"].as_i64().unwrap_or(i64::MAX);
        if usage >= total {
            // A rolling 24 h window: a slot frees when the oldest post leaves it; check hourly.
            return Err(PlatformError::RateLimited {
                app_wide: false,
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
        let request = self.proved(request, tokens.access_token.expose_secret());
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

    pub(in crate::platforms) async fn container_status(
        &self,
        tokens: &TokenSet,
        container: &str,
    ) -> Result<String, PlatformError> {
        let request = self
            .http
            .get(self.graph_url(&format!("/{container}")))
            .query(&[("fields", "status_code"), ("access_token", tokens.access_token.expose_secret())]);
        let request = self.proved(request, tokens.access_token.expose_secret());
        let status: Value =
            self.json(Platform::Instagram, "GET /{container-id}?fields=status_code", request, graph_refusal).await?;
        Ok(status["status_code"].as_str().unwrap_or_default().to_owned())
    }
}
