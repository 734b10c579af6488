//! Mastodon publishing: media through `POST /api/v2/media` (200 when processed, 202 while the
//! server still processes it, then `GET /api/v1/media/:id` until 200), then `POST
//! /api/v1/statuses` with an `Idempotency-Key`: "Prevent duplicate submissions of the same
//! status. Idempotency keys are stored for up to 1 hour" (methods/statuses). A lost answer is
//! asked again under the same key a minute later, through the queue (not at once: the server
//! stores the key only once it has made the status), and the server answers with the status it
//! made, if it made one.

use std::time::Duration;

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{Context, P, at, refusal};
use crate::domain::tokens::TokenSet;
use crate::platforms::publish::{Outgoing, Published, created_id};
use crate::platforms::{PlatformClient, PlatformError};

/// Checks of a processing attachment within one attempt, half a second apart; then the queue
/// comes back every [`PROCESSING_RECHECK`] seconds, for at most [`PROCESSING_LIMIT`].
const MEDIA_POLLS: u32 = 2;
const MEDIA_POLL_INTERVAL: Duration = Duration::from_millis(500);
const PROCESSING_RECHECK: u64 = 10;
const PROCESSING_LIMIT: i64 = 600;

/// The `Idempotency-Key` of a post to an account: the same on every attempt.
fn idempotency_key(key: &str) -> String {
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
}

/// Attachments an earlier attempt uploaded: `media:{id},{id}@{made}`.
fn resumed(raw: &str) -> Option<(Vec<String>, i64)> {
    let (ids, made) = raw.strip_prefix("media:")?.rsplit_once('@')?;
    let ids: Vec<String> = ids.split(',').filter(|id| !id.is_empty()).map(str::to_owned).collect();
    (!ids.is_empty()).then_some((ids, made.parse().ok()?))
}

impl PlatformClient {
    pub(super) async fn publish_mastodon(
        &self,
        tokens: &TokenSet,
        context: &Context,
        post: &Outgoing<'_>,
    ) -> Result<Published, PlatformError> {
        // The server's own limits, read at connect (Herald's check used Mastodon's defaults).
        if let Err(broken) = super::rules::check(post.text, post.media, &context.limits) {
            return Err(PlatformError::Refused {
                platform: P,
                status: 422,
                code: broken.code.into(),
                message: broken.detail,
            });
        }
        let token = tokens.access_token.expose_secret();
        let (media, made_at) = match post.resume.and_then(resumed) {
            Some(resumed) => resumed,
            None => {
                let mut ids = Vec::new();
                for item in post.media {
                    ids.push(self.mastodon_upload(context, token, item).await?);
                }
                (ids, self.clock.now().unix_timestamp())
            }
        };
        self.mastodon_media_ready(context, token, &media, made_at).await?;
        let body = json!({ "status": post.text, "media_ids": media, "visibility": "public" });
        let key = idempotency_key(post.key);
        let url = at(&context.server, "/api/v1/statuses")?;
        let request =
            self.mastodon_request(Method::POST, &url)?.bearer_auth(token).header("Idempotency-Key", &key).json(&body);
        // A lost answer is not asked again at once: the server may still be making the status,
        // and until it has, the same key makes another (Adapter::lookup). The queue resends it.
        let response = self.send_effect(P, "POST /api/v1/statuses", request).await?;
        let (created, throttle) = self.read_effect(P, response, refusal).await?;
        let id = created_id(P, &created["id"])?;
        Ok(Published { id, url: created["url"].as_str().map(str::to_owned), throttle, found: false })
    }

    /// Uploads one attachment (`POST /api/v2/media`, `file` and `description`): its id.
    async fn mastodon_upload(
        &self,
        context: &Context,
        token: &str,
        item: &crate::domain::post::Media,
    ) -> Result<String, PlatformError> {
        let (bytes, mime) = self.fetch_media(P, item).await?;
        let name = format!("media.{}", mime.rsplit('/').next().unwrap_or("bin"));
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name)
            .mime_str(&mime)
            .map_err(|e| PlatformError::Unexpected { platform: P, detail: e.to_string() })?;
        let mut form = reqwest::multipart::Form::new().part("file", part);
        if let Some(alt) = &item.alt_text {
            form = form.text("description", alt.clone());
        }
        let request = self
            .mastodon_request(Method::POST, &at(&context.server, "/api/v2/media")?)?
            .bearer_auth(token)
            .multipart(form);
        let uploaded: Value = self.json(P, "POST /api/v2/media", request, refusal).await?;
        created_id(P, &uploaded["id"])
    }

    /// Waits for every attachment to be processed (`url` set): a few checks now, then
    /// [`PlatformError::Processing`] so the queue comes back to the same attachments.
    async fn mastodon_media_ready(
        &self,
        context: &Context,
        token: &str,
        media: &[String],
        made_at: i64,
    ) -> Result<(), PlatformError> {
        for poll in 0..MEDIA_POLLS {
            let mut processing = false;
            for id in media {
                let url = at(&context.server, &format!("/api/v1/media/{id}"))?;
                let request = self.mastodon_request(Method::GET, &url)?.bearer_auth(token);
                let attachment: Value = self.json(P, "GET /api/v1/media/:id", request, refusal).await?;
                processing |= attachment["url"].is_null();
            }
            if !processing {
                return Ok(());
            }
            if poll + 1 < MEDIA_POLLS {
                tokio::time::sleep(MEDIA_POLL_INTERVAL).await;
            }
        }
        let waited = self.clock.now().unix_timestamp() - made_at;
        if waited >= PROCESSING_LIMIT {
            return Err(PlatformError::Refused {
                platform: P,
                status: 422,
                code: "media_processing_timeout".into(),
                message: format!("the server was still processing the media after {waited} s"),
            });
        }
        Err(PlatformError::Processing {
            platform: P,
            resume: format!("media:{}@{made_at}", media.join(",")),
            retry_in: PROCESSING_RECHECK,
            detail: format!("the server is processing the media ({waited} s so far)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_resumes_read_back() {
        assert_eq!(idempotency_key("pst_1/acc_1"), idempotency_key("pst_1/acc_1"));
        assert_ne!(idempotency_key("pst_1/acc_1"), idempotency_key("pst_2/acc_1"));
        assert_eq!(idempotency_key("pst_1/acc_1").len(), 32);
        assert_eq!(resumed("media:1,2@5"), Some((vec!["1".into(), "2".into()], 5)));
        for bad in ["", "media:@5", "media:1", "ready:1@5", "media:1@soon"] {
            assert_eq!(resumed(bad), None, "{bad}");
        }
    }
}
