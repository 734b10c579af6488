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

/// Status checks of a container within one attempt, half a second apart: an image is usually
/// ready by the second. Longer processing is waited out through the queue (F15).
const CONTAINER_POLLS: u32 = 2;
const CONTAINER_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// "Query a container's status once per minute, for no more than 5 minutes" (Meta's
/// content-publishing guide): the queue comes back this often, for this long.
const PROCESSING_RECHECK: u64 = 60;
const PROCESSING_LIMIT: i64 = 300;

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

    /// Checks containers until each is FINISHED (at most [`CONTAINER_POLLS`] times, half a second
    /// apart): still processing → [`PlatformError::Processing`] with `resume` (the containers and
    /// when the first was made, [`Resume`]), so the next attempt comes back to them, until
    /// [`PROCESSING_LIMIT`] has passed; ERROR or EXPIRED → refused.
    async fn containers_ready(&self, tokens: &TokenSet, resume: &Resume) -> Result<(), PlatformError> {
        let p = Platform::Instagram;
        for poll in 0..CONTAINER_POLLS {
            let mut processing = false;
            for container in &resume.containers {
                let status = self.container_status(tokens, container).await?;
                match Some(status.as_str()).filter(|s| !s.is_empty()) {
                    Some("FINISHED") => {}
                    Some("IN_PROGRESS") => processing = true,
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
            if !processing {
                return Ok(());
            }
            if poll + 1 < CONTAINER_POLLS {
                tokio::time::sleep(CONTAINER_POLL_INTERVAL).await;
            }
        }
        let waited = self.clock.now().unix_timestamp() - resume.made_at;
        if waited >= PROCESSING_LIMIT {
            return Err(PlatformError::Refused {
                platform: p,
                status: 400,
                code: "container_processing_timeout".into(),
                message: format!("Instagram was still processing the media after {waited} s"),
            });
        }
        Err(PlatformError::Processing {
            platform: p,
            resume: resume.encode(),
            retry_in: PROCESSING_RECHECK,
            detail: format!("Instagram is processing the media ({waited} s so far); checked again in a minute"),
        })
    }

    pub(in crate::platforms) async fn publish_instagram(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
        resume: Option<&str>,
    ) -> Result<Published, PlatformError> {
        let p = Platform::Instagram;
        let ig = &account.platform_account_id;
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
        // Where an earlier attempt left containers processing, they are checked again, not made
        // again; a carousel's children first, then the carousel itself.
        let creation = match resume.and_then(Resume::decode) {
            Some(resumed) => {
                self.containers_ready(tokens, &resumed).await?;
                match resumed.stage {
                    Stage::Ready => resumed.containers[0].clone(),
                    Stage::Children => self.carousel(tokens, ig, text, &resumed.containers, resumed.made_at).await?,
                }
            }
            // Instagram fetches the media itself and takes JPEG only: each file's first bytes say
            // what it is, before any container is made (F15); a resumed attempt made them already.
            None => {
                for item in media {
                    self.media_kind(p, item).await?;
                }
                self.create_containers(tokens, ig, text, media).await?
            }
        };
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

    /// This attempt's containers (an image's, or a carousel's children then the carousel), each
    /// checked until ready; the one to publish.
    async fn create_containers(
        &self,
        tokens: &TokenSet,
        ig: &str,
        text: &str,
        media: &[Media],
    ) -> Result<String, PlatformError> {
        let now = self.clock.now().unix_timestamp();
        if media.len() == 1 {
            let mut params = vec![("image_url", media[0].url.as_str()), ("caption", text)];
            if let Some(alt) = &media[0].alt_text {
                params.push(("alt_text", alt.as_str()));
            }
            let creation = self.container(tokens, ig, &params).await?;
            let ready = Resume { stage: Stage::Ready, containers: vec![creation.clone()], made_at: now };
            self.containers_ready(tokens, &ready).await?;
            return Ok(creation);
        }
        let mut children = Vec::new();
        for item in media {
            let params = [("image_url", item.url.as_str()), ("is_carousel_item", "true")];
            children.push(self.container(tokens, ig, &params).await?);
        }
        let pending = Resume { stage: Stage::Children, containers: children.clone(), made_at: now };
        self.containers_ready(tokens, &pending).await?;
        self.carousel(tokens, ig, text, &children, now).await
    }

    /// The carousel container over finished `children`, checked until it is ready in turn.
    async fn carousel(
        &self,
        tokens: &TokenSet,
        ig: &str,
        text: &str,
        children: &[String],
        made_at: i64,
    ) -> Result<String, PlatformError> {
        let joined = children.join(",");
        let creation =
            self.container(tokens, ig, &[("media_type", "CAROUSEL"), ("children", &joined), ("caption", text)]).await?;
        self.containers_ready(tokens, &Resume { stage: Stage::Ready, containers: vec![creation.clone()], made_at })
            .await?;
        Ok(creation)
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

/// Where an attempt left Instagram's containers: `ready:{id}@{made}` (the container to publish
/// once FINISHED) or `children:{id},{id}@{made}` (a carousel's children, the carousel not made
/// yet); `made`: when the first was made (Unix seconds), which bounds the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resume {
    stage: Stage,
    containers: Vec<String>,
    made_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ready,
    Children,
}

impl Resume {
    fn encode(&self) -> String {
        let stage = match self.stage {
            Stage::Ready => "ready",
            Stage::Children => "children",
        };
        format!("{stage}:{}@{}", self.containers.join(","), self.made_at)
    }

    fn decode(raw: &str) -> Option<Self> {
        let (stage, rest) = raw.split_once(':')?;
        let (ids, made) = rest.rsplit_once('@')?;
        let stage = match stage {
            "ready" => Stage::Ready,
            "children" => Stage::Children,
            _ => return None,
        };
        let containers: Vec<String> = ids.split(',').filter(|id| !id.is_empty()).map(str::to_owned).collect();
        (!containers.is_empty()).then_some(Self { stage, containers, made_at: made.parse().ok()? })
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;

    #[test]
    fn a_resume_reads_back_as_written() {
        for resume in [
            Resume { stage: Stage::Ready, containers: vec!["1790".into()], made_at: 1_764_000_000 },
            Resume { stage: Stage::Children, containers: vec!["1".into(), "2".into()], made_at: 5 },
        ] {
            assert_eq!(Resume::decode(&resume.encode()), Some(resume));
        }
        for bad in ["", "ready:@5", "later:1@5", "ready:1", "ready:1@soon"] {
            assert_eq!(Resume::decode(bad), None, "{bad}");
        }
    }
}
