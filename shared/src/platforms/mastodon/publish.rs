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
use crate::platforms::publish::{Listing, Outgoing, Published, Recent, created_id, cut_at, rfc3339};
use crate::platforms::{PlatformClient, PlatformError};
use crate::store::Account;

/// Checks of a processing attachment within one attempt, half a second apart; then the queue
/// comes back every [`PROCESSING_RECHECK`] seconds, for at most [`PROCESSING_LIMIT`].
const MEDIA_POLLS: u32 = 2;
const MEDIA_POLL_INTERVAL: Duration = Duration::from_millis(500);
const PROCESSING_RECHECK: u64 = 10;
const PROCESSING_LIMIT: i64 = 600;

/// The most statuses one page of an account's statuses holds ("Max 40 statuses", methods/accounts).
const STATUSES_PAGE: usize = 40;

/// A status's text as its HTML `content` shows it, read back as Mastodon's own
/// `PlainTextFormatter` reads a remote status: a line break after each run of `<br>`, `<br />`
/// and `</p>`, the tags stripped, the entities decoded, the last line break dropped. (A link's
/// `invisible` and `ellipsis` spans hold the whole URL between them, so it survives whole.)
fn plain_text(content: &str) -> String {
    let mut text = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let tag = &rest[open..open + close + 1];
        if matches!(tag, "<br>" | "<br />" | "<br/>" | "</p>") && !text.ends_with('\n') {
            text.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    let decoded = decode_entities(&text);
    decoded.strip_suffix('\n').unwrap_or(&decoded).to_owned()
}

/// The entities a status's `content` holds decoded: the five Mastodon's `TextFormatter` writes
/// (Ruby's `ERB::Util.html_escape`: `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`), `&apos;`, and
/// any numeric one. By hand, not a crate: the HTML5 table of 2,000 named entities a general
/// decoder carries put the posts function over its 8 MiB budget, and none of them is written.
/// Anything else is left as it stands.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest.find(';').filter(|end| *end <= 10).map(|end| &rest[1..end]);
        let decoded = entity.and_then(|name| match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (entity, decoded) {
            (Some(name), Some(c)) => {
                out.push(c);
                rest = &rest[name.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

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
    /// One page of the account's statuses since `since`, newest first (the first, or the one
    /// below the status `after` names, as `max_id`), without reblogs; the listing is whole once a
    /// page reaches back past `since`, or is empty.
    pub(super) async fn mastodon_recent(
        &self,
        account: &Account,
        context: &Context,
        since: time::OffsetDateTime,
        after: Option<&str>,
    ) -> Result<Listing, PlatformError> {
        let id = super::server_id(&account.platform_account_id);
        let mut url = at(&context.server, "/api/v1/accounts")?;
        url.path_segments_mut()
            .map_err(|()| super::unexpected("the server's address takes no path"))?
            .extend([id, "statuses"]);
        url.query_pairs_mut().append_pair("limit", &STATUSES_PAGE.to_string()).append_pair("exclude_reblogs", "true");
        if let Some(max_id) = after {
            url.query_pairs_mut().append_pair("max_id", max_id);
        }
        let request = self.mastodon_request(Method::GET, &url)?;
        let listed: Value =
            self.json(P, "GET /api/v1/accounts/:id/statuses", request, super::anonymous_refusal).await?;
        let statuses = listed.as_array().map(Vec::as_slice).unwrap_or_default();
        let (recent, reaches) = cut_at(statuses, since, |status| rfc3339(&status["created_at"]));
        let next = statuses.last().filter(|_| !reaches).and_then(|s| s["id"].as_str()).map(str::to_owned);
        let posts = recent
            .into_iter()
            .filter_map(|status| {
                let id = status["id"].as_str()?.to_owned();
                let text = plain_text(status["content"].as_str().unwrap_or_default());
                Some(Recent { id, url: status["url"].as_str().map(str::to_owned), text })
            })
            .collect();
        Ok(Listing { posts, next })
    }

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

    /// Content as Mastodon's `TextFormatter` writes it reads back as the text posted
    /// (Mastodon's own `PlainTextFormatter` rules).
    #[test]
    fn content_reads_back_as_the_text_posted() {
        let content = concat!(
            "<p>Tom &amp; Jerry&#39;s &lt;show&gt;<br />see ",
            r#"<a href="https://example.com/a/very/long/path/that/is/cut" target="_blank" rel="nofollow noopener noreferrer">"#,
            r#"<span class="invisible">https://</span><span class="ellipsis">example.com/a/very/long/path/t</span>"#,
            r#"<span class="invisible">hat/is/cut</span></a></p><p><a href="https://m.test/tags/rust" class="mention hashtag" rel="tag">#<span>rust</span></a></p>"#
        );
        assert_eq!(
            plain_text(content),
            "Tom & Jerry's <show>\nsee https://example.com/a/very/long/path/that/is/cut\n#rust"
        );
        assert_eq!(plain_text("<p>one</p>"), "one");
        assert_eq!(decode_entities("&#x1F600; &#8212; &nbsp; & &amp;amp; &bogus"), "😀 — &nbsp; & &amp; &bogus");
        assert_eq!(plain_text(""), "");
    }
}
