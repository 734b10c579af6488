//! LinkedIn publishing: images through the Images API (`initializeUpload`, then the upload URL),
//! the post through `POST /rest/posts` with the `LinkedIn-Version` header.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::refusal;
use crate::domain::Platform;
use crate::domain::post::Media;
use crate::domain::tokens::TokenSet;
use crate::platforms::publish::{Listing, Published, RECENT_PAGE, Recent, created_id, cut_at};
use crate::platforms::{PlatformClient, PlatformError};
use crate::store::Account;

impl PlatformClient {
    pub(in crate::platforms) fn linkedin_rest(
        &self,
        request: reqwest::RequestBuilder,
        tokens: &TokenSet,
    ) -> reqwest::RequestBuilder {
        request
            .bearer_auth(tokens.access_token.expose_secret())
            .header("LinkedIn-Version", self.endpoints.linkedin_version.as_str())
            .header("X-Restli-Protocol-Version", "2.0.0")
    }

    pub(in crate::platforms) async fn publish_linkedin(
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
            // The bytes first: a file LinkedIn does not take is refused before an upload is opened.
            let (bytes, _) = self.fetch_media(p, item).await?;
            let request =
                self.linkedin_rest(self.http.post(format!("{api}/rest/images?action=initializeUpload")), tokens);
            let init: Value = self
                .json(
                    p,
                    "POST /rest/images?action=initializeUpload",
                    request.json(&json!({ "initializeUploadRequest": { "owner": author } })),
                    refusal,
                )
                .await?;
            let (Some(upload_url), Some(image)) =
                (init["value"]["uploadUrl"].as_str(), init["value"]["image"].as_str())
            else {
                return Err(PlatformError::Unexpected { platform: p, detail: "no upload URL".into() });
            };
            let put = self.http.put(upload_url).bearer_auth(tokens.access_token.expose_secret()).body(bytes);
            let uploaded = self.send(p, "PUT upload URL", put).await?;
            if !uploaded.status().is_success() {
                return Err(PlatformError::Transient {
                    platform: p,
                    detail: format!("image upload answered {}", uploaded.status()),
                });
            }
            // `altText` only where there is one: whether LinkedIn takes an empty one is not
            // documented (F15).
            let mut entry = json!({ "id": image });
            if let Some(alt) = item.alt_text.as_deref().filter(|alt| !alt.is_empty()) {
                entry["altText"] = json!(alt);
            }
            images.push(entry);
        }
        let mut body = json!({
            "author": author,
            // Escaped, or LinkedIn cuts the post at its first reserved character (F1).
            "commentary": super::little::escape(text),
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
        let (created, throttle) = self.read_effect(p, response, refusal).await?;
        let urn = created_id(p, &created["id"])?;
        Ok(Published { url: Some(post_url(&urn)), id: urn, throttle, found: false })
    }

    /// One page of an organization's posts since `since` (the first, or the one from the index
    /// `after`): the Posts API's "Find Posts by Authors" finder (`q=author`, newest first by
    /// creation; `r_organization_social`), each commentary read back from little text. The
    /// finder takes no time bound, so the page is cut at `since` here; it pages by `start` and
    /// `count`, and a page with fewer than `count` is the last (Microsoft Learn, LinkedIn API
    /// guide, "Pagination": "End of the Dataset").
    pub(in crate::platforms) async fn linkedin_recent(
        &self,
        account: &Account,
        tokens: &TokenSet,
        since: time::OffsetDateTime,
        after: Option<&str>,
    ) -> Result<Listing, PlatformError> {
        let api = self.endpoints.linkedin_api.as_str().trim_end_matches('/');
        let start: usize = match after.map(str::parse).transpose() {
            Ok(start) => start.unwrap_or(0),
            Err(_) => {
                return Err(PlatformError::Unexpected {
                    platform: Platform::Linkedin,
                    detail: "a page's start is not an index".into(),
                });
            }
        };
        let (start_at, page_size) = (start.to_string(), RECENT_PAGE.to_string());
        let query = [
            ("q", "author"),
            ("author", account.platform_account_id.as_str()),
            ("start", &start_at),
            ("count", &page_size),
            ("sortBy", "CREATED"),
        ];
        let request = self
            .linkedin_rest(self.http.get(format!("{api}/rest/posts")), tokens)
            .header("X-RestLi-Method", "FINDER")
            .query(&query);
        let page: Value = self.json(Platform::Linkedin, "GET /rest/posts?q=author", request, refusal).await?;
        let elements = page["elements"].as_array().map(Vec::as_slice).unwrap_or_default();
        let made = |post: &Value| {
            let ms = post["createdAt"].as_i64()?;
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        };
        let (recent, reaches) = cut_at(elements, since, made);
        let next = (elements.len() >= RECENT_PAGE && !reaches).then(|| (start + elements.len()).to_string());
        let posts = recent
            .into_iter()
            .filter_map(|post| {
                let id = post["id"].as_str()?.to_owned();
                let text = super::little::shown(post["commentary"].as_str().unwrap_or_default());
                Some(Recent { url: Some(post_url(&id)), id, text })
            })
            .collect();
        Ok(Listing { posts, next })
    }
}

/// A post's address on LinkedIn.
fn post_url(urn: &str) -> String {
    format!("https://www.linkedin.com/feed/update/{urn}")
}
