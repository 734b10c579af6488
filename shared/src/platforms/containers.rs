//! Meta's two-step publishing, which Instagram and Threads share: a media container is made
//! (`POST /{user-id}/media` or `/threads`), checked until FINISHED (`GET /{container-id}`), then
//! published (`POST /{user-id}/media_publish` or `/threads_publish`), under a per-account quota
//! read first (`content_publishing_limit`, `threads_publishing_limit`). Each platform describes
//! its dialect as a [`Containers`] value in its own folder.
//!
//! Sources: Instagram's content-publishing guide and Threads' posts guide
//! (developers.facebook.com/docs/instagram-platform/content-publishing,
//! developers.facebook.com/documentation/threads/posts); the container statuses and the
//! "once per minute, for no more than 5 minutes" cadence are the same in both (Threads'
//! troubleshooting page).

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;

use super::publish::{Listing, Published, RECENT_PAGE, created_id, graph_next, graph_page, recent_posts, same_text};
use super::{PlatformClient, PlatformError, Refusal};
use crate::domain::Platform;
use crate::domain::post::Media;
use crate::domain::tokens::TokenSet;

/// Status checks of a container within one attempt, half a second apart: an image is usually
/// ready by the second. Longer processing is waited out through the queue (F15).
const CONTAINER_POLLS: u32 = 2;
const CONTAINER_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// "Query a container's status once per minute, for no more than 5 minutes": the queue comes
/// back this often, for this long.
const PROCESSING_RECHECK: u64 = 60;
const PROCESSING_LIMIT: i64 = 300;

/// One platform's container dialect.
pub(super) struct Containers {
    pub platform: Platform,
    /// The platform's name in messages.
    pub name: &'static str,
    /// The user's edge that makes a container, and its log name.
    pub create: (&'static str, &'static str),
    /// The user's edge that publishes one.
    pub publish: (&'static str, &'static str),
    /// The user's edge with the publishing quota.
    pub quota: (&'static str, &'static str),
    /// The container's status field (`status_code`, `status`) and the read's log name.
    pub status: (&'static str, &'static str),
    /// The log name of the listing of the user's posts (`GET` of the edge that makes containers).
    pub listing: &'static str,
    /// The container parameter with the post's text (`caption`, `text`).
    pub text_field: &'static str,
    /// `media_type` of an image container, where the platform wants one (Threads: `IMAGE`).
    pub image_type: Option<&'static str>,
    /// `media_type` of a container with text only, where the platform has one (Threads: `TEXT`).
    pub text_type: Option<&'static str>,
    /// Whether a carousel's items carry their alt text (Threads) or only a single image does.
    pub item_alt_text: bool,
    /// The URL of a path under the platform's versioned API.
    pub url: fn(&PlatformClient, &str) -> String,
    /// `request` with what the platform wants alongside the token (Graph's `appsecret_proof`).
    pub prove: fn(&PlatformClient, reqwest::RequestBuilder, &str) -> reqwest::RequestBuilder,
    pub refusal: Refusal,
}

impl Containers {
    fn get(&self, client: &PlatformClient, tokens: &TokenSet, path: &str, fields: &str) -> reqwest::RequestBuilder {
        let token = tokens.access_token.expose_secret();
        let request = client.http.get((self.url)(client, path)).query(&[("fields", fields), ("access_token", token)]);
        (self.prove)(client, request, token)
    }

    fn post(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let token = tokens.access_token.expose_secret();
        let mut form = form.to_vec();
        form.push(("access_token", token));
        (self.prove)(client, client.http.post((self.url)(client, path)).form(&form), token)
    }

    /// Publishes `text` and `media` as `user` (the platform's user id): the quota first, then the
    /// containers (or, with `resume`, those an earlier attempt left processing), then the publish
    /// call, the one that can be ambiguous; after a lost answer the container says whether it was
    /// published.
    pub async fn publish(
        &self,
        client: &PlatformClient,
        user: &str,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
        resume: Option<&str>,
    ) -> Result<Published, PlatformError> {
        let p = self.platform;
        let request = self.get(client, tokens, &format!("/{user}{}", self.quota.0), "quota_usage,config");
        let limit: Value = client.json(p, self.quota.1, request, self.refusal).await?;
        let usage = limit["data"][0]["quota_usage"].as_i64().unwrap_or(0);
        let total = limit["data"][0]["config"]["quota_total"].as_i64().unwrap_or(i64::MAX);
        if usage >= total {
            // A rolling 24 h window: a slot frees when the oldest post leaves it; check hourly.
            return Err(PlatformError::RateLimited {
                app_wide: false,
                platform: p,
                retry_at: Some(client.clock.now().unix_timestamp() + 3600),
            });
        }
        // Where an earlier attempt left containers processing, they are checked again, not made
        // again; a carousel's children first, then the carousel itself.
        let creation = match resume.and_then(Resume::decode) {
            Some(resumed) => {
                self.ready(client, tokens, &resumed).await?;
                match resumed.stage {
                    Stage::Ready => resumed.containers[0].clone(),
                    Stage::Children => {
                        self.carousel(client, tokens, user, text, &resumed.containers, resumed.made_at).await?
                    }
                }
            }
            // The platform fetches the media itself: each file's first bytes say what it is,
            // before any container is made (F15); a resumed attempt made them already.
            None => {
                for item in media {
                    client.media_kind(p, item).await?;
                }
                self.create_containers(client, tokens, user, text, media).await?
            }
        };
        let request = self.post(client, tokens, &format!("/{user}{}", self.publish.0), &[("creation_id", &creation)]);
        let outcome = match client.send_effect(p, self.publish.1, request).await {
            Ok(response) => client
                .read_effect(p, response, self.refusal)
                .await
                .and_then(|(published, throttle)| Ok((created_id(p, &published["id"])?, throttle))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((id, throttle)) => Ok(Published { id, url: None, throttle, found: false }),
            // The container says whether it was published.
            Err(PlatformError::Ambiguous { detail, .. }) => match self.status(client, tokens, &creation).await {
                Ok(status) if status == "PUBLISHED" => {
                    Ok(self.published_as(client, tokens, user, text, &creation).await)
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

    /// One page of the user's posts since `since`, newest first (the first, or the one `after`
    /// names): `GET /{user}{create}` with the text field, `permalink` and `timestamp`; both edges
    /// take `since` as a Unix time and page by `paging.next` ([`graph_next`]); to look for a post
    /// whose answer was lost among.
    pub async fn recent(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        user: &str,
        since: time::OffsetDateTime,
        after: Option<&str>,
    ) -> Result<Listing, PlatformError> {
        let token = tokens.access_token.expose_secret();
        let first = [
            ("fields", format!("id,{},permalink,timestamp", self.text_field)),
            ("since", since.unix_timestamp().to_string()),
            ("limit", RECENT_PAGE.to_string()),
        ];
        let request = client
            .http
            .get((self.url)(client, &format!("/{user}{}", self.create.0)))
            .query(&graph_page(&first, after))
            .query(&[("access_token", token)]);
        let request = (self.prove)(client, request, token);
        let listing: Value = client.json(self.platform, self.listing, request, self.refusal).await?;
        // Each post carries its `permalink`; without one, its address is unknown.
        let posts = recent_posts(&listing, self.text_field, |_| String::new());
        Ok(Listing { posts, next: graph_next(&listing) })
    }

    /// A container its status calls `PUBLISHED` after the publish call's answer was lost: the
    /// post it made, as the user's listing names it where it shows already (its id and
    /// permalink), else named by its container (published for certain, its id not yet known).
    async fn published_as(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        user: &str,
        text: &str,
        creation: &str,
    ) -> Published {
        let since = client.clock.now() - time::Duration::minutes(10);
        let listed = self.recent(client, tokens, user, since, None).await.map(|page| page.posts).unwrap_or_default();
        match listed.into_iter().find(|post| same_text(&post.text, text)) {
            Some(post) => {
                Published { id: post.id, url: post.url.filter(|u| !u.is_empty()), throttle: None, found: true }
            }
            None => Published { id: format!("container:{creation}"), url: None, throttle: None, found: true },
        }
    }

    async fn container(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        user: &str,
        params: &[(&str, &str)],
    ) -> Result<String, PlatformError> {
        let request = self.post(client, tokens, &format!("/{user}{}", self.create.0), params);
        let created: Value = client.json(self.platform, self.create.1, request, self.refusal).await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PlatformError::Unexpected { platform: self.platform, detail: "no container id".into() })
    }

    /// An image container's parameters: its `media_type` where the platform wants one.
    fn image<'a>(&self, item: &'a Media, alt: bool) -> Vec<(&'static str, &'a str)> {
        let mut params = Vec::new();
        if let Some(kind) = self.image_type {
            params.push(("media_type", kind));
        }
        params.push(("image_url", item.url.as_str()));
        if alt && let Some(alt) = &item.alt_text {
            params.push(("alt_text", alt.as_str()));
        }
        params
    }

    /// This attempt's containers (text only, an image's, or a carousel's children then the
    /// carousel), each checked until ready; the one to publish.
    async fn create_containers(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        user: &str,
        text: &str,
        media: &[Media],
    ) -> Result<String, PlatformError> {
        let now = client.clock.now().unix_timestamp();
        if media.len() <= 1 {
            let mut params = match (media.first(), self.text_type) {
                (Some(item), _) => self.image(item, true),
                (None, Some(kind)) => vec![("media_type", kind)],
                (None, None) => {
                    return Err(PlatformError::Unexpected { platform: self.platform, detail: "no media".into() });
                }
            };
            params.push((self.text_field, text));
            let creation = self.container(client, tokens, user, &params).await?;
            let ready = Resume { stage: Stage::Ready, containers: vec![creation.clone()], made_at: now };
            self.ready(client, tokens, &ready).await?;
            return Ok(creation);
        }
        let mut children = Vec::new();
        for item in media {
            let mut params = self.image(item, self.item_alt_text);
            params.push(("is_carousel_item", "true"));
            children.push(self.container(client, tokens, user, &params).await?);
        }
        let pending = Resume { stage: Stage::Children, containers: children.clone(), made_at: now };
        self.ready(client, tokens, &pending).await?;
        self.carousel(client, tokens, user, text, &children, now).await
    }

    /// The carousel container over finished `children`, checked until it is ready in turn.
    async fn carousel(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        user: &str,
        text: &str,
        children: &[String],
        made_at: i64,
    ) -> Result<String, PlatformError> {
        let joined = children.join(",");
        let params = [("media_type", "CAROUSEL"), ("children", joined.as_str()), (self.text_field, text)];
        let creation = self.container(client, tokens, user, &params).await?;
        let ready = Resume { stage: Stage::Ready, containers: vec![creation.clone()], made_at };
        self.ready(client, tokens, &ready).await?;
        Ok(creation)
    }

    /// Checks containers until each is FINISHED (at most [`CONTAINER_POLLS`] times, half a second
    /// apart): still processing → [`PlatformError::Processing`] with `resume` (the containers and
    /// when the first was made, [`Resume`]), so the next attempt comes back to them, until
    /// [`PROCESSING_LIMIT`] has passed; ERROR or EXPIRED → refused.
    async fn ready(&self, client: &PlatformClient, tokens: &TokenSet, resume: &Resume) -> Result<(), PlatformError> {
        let p = self.platform;
        for poll in 0..CONTAINER_POLLS {
            let mut processing = false;
            for container in &resume.containers {
                let status = self.status(client, tokens, container).await?;
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
        let waited = client.clock.now().unix_timestamp() - resume.made_at;
        if waited >= PROCESSING_LIMIT {
            return Err(PlatformError::Refused {
                platform: p,
                status: 400,
                code: "container_processing_timeout".into(),
                message: format!("{} was still processing the media after {waited} s", self.name),
            });
        }
        Err(PlatformError::Processing {
            platform: p,
            resume: resume.encode(),
            retry_in: PROCESSING_RECHECK,
            detail: format!("{} is processing the media ({waited} s so far); checked again in a minute", self.name),
        })
    }

    async fn status(
        &self,
        client: &PlatformClient,
        tokens: &TokenSet,
        container: &str,
    ) -> Result<String, PlatformError> {
        let (field, log) = self.status;
        let request = self.get(client, tokens, &format!("/{container}"), field);
        let status: Value = client.json(self.platform, log, request, self.refusal).await?;
        Ok(status[field].as_str().unwrap_or_default().to_owned())
    }
}

/// Where an attempt left the containers: `ready:{id}@{made}` (the container to publish once
/// FINISHED) or `children:{id},{id}@{made}` (a carousel's children, the carousel not made yet);
/// `made`: when the first was made (Unix seconds), which bounds the wait.
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
mod tests {
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
