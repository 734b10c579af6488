//! Bluesky publishing: images as blobs (`com.atproto.repo.uploadBlob`), then the post as a record
//! under a record key Herald chooses (`com.atproto.repo.putRecord` with `swapRecord: null`).
//!
//! The key is a TID made from the post and the account ([`record_key`]), the same on every
//! attempt, and the record is the same bytes on every attempt (its `createdAt` is the post's), so
//! a resend is a no-op at the PDS, and a different record under the key is refused
//! (`InvalidSwap`) rather than written: a post is made once whatever is resent. An attempt whose
//! answer was lost reads the key back (`getRecord`): the record there is the post; none there
//! means nothing was written, and the next attempt may safely put it.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use super::identity::xrpc;
use super::oauth::Payload;
use super::richtext::{self, Feature};
use super::{Context, P, refusal};
use crate::domain::tokens::TokenSet;
use crate::platforms::publish::{Listing, Outgoing, Published, RECENT_PAGE, Recent, created_id, cut_at, rfc3339};
use crate::platforms::{PlatformClient, PlatformError};
use crate::store::Account;

const COLLECTION: &str = "app.bsky.feed.post";
const PUT_RECORD: &str = "POST /xrpc/com.atproto.repo.putRecord";
const GET_RECORD: &str = "GET /xrpc/com.atproto.repo.getRecord";

/// The base32 alphabet TIDs are written in (atproto.com/specs/tid: "base32-sortable").
const S32: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// The record key of a post to an account: a TID (atproto.com/specs/tid: 53 bits of
/// microseconds since the epoch, then a 10-bit clock id, 13 characters), the same on every attempt
/// of the post. Its second is when the post was made (so keys sort by time); its microseconds and
/// clock id come from `key`, about 30 bits, since posts made in the same second are common
/// (a batch, or posts scheduled for the same minute) and two posts under one key would make the
/// second fail `InvalidSwap`: a thousand posts in one second collide with odds of about 1 in 2,000.
/// (The chaos run on the real PDS found the first version, microseconds from the clock and ten
/// bits from the key, colliding among 60 posts made in the same second.)
pub(super) fn record_key(key: &str, made_at: time::OffsetDateTime) -> String {
    let hash = sha2::Sha256::digest(key.as_bytes());
    let word = |i: usize| u64::from_be_bytes(hash[i..i + 8].try_into().expect("eight bytes of a 32-byte digest"));
    let seconds = made_at.unix_timestamp().clamp(0, ((1 << 53) - 1) / 1_000_000) as u64;
    let micros = seconds * 1_000_000 + word(0) % 1_000_000;
    let clock = word(8) & 0x3FF;
    let mut value = (micros << 10) | clock;
    let mut out = [0u8; 13];
    for slot in out.iter_mut().rev() {
        *slot = S32[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("the alphabet is ASCII")
}

/// `createdAt` as the lexicon's datetime: RFC 3339 in UTC with milliseconds.
fn created_at(made_at: time::OffsetDateTime) -> String {
    let utc = made_at.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    utc.format(&format).expect("a date in range formats")
}

/// The post's web address (`https://bsky.app/profile/{did}/post/{rkey}`).
fn web_url(did: &str, rkey: &str) -> String {
    format!("https://bsky.app/profile/{did}/post/{rkey}")
}

impl PlatformClient {
    pub(super) async fn publish_bluesky(
        &self,
        account: &Account,
        tokens: &TokenSet,
        post: &Outgoing<'_>,
    ) -> Result<Published, PlatformError> {
        let context = Context::of(tokens)?;
        let did = account.platform_account_id.as_str();
        let rkey = record_key(post.key, post.made_at);
        let mut record = json!({ "$type": COLLECTION, "text": post.text, "createdAt": created_at(post.made_at) });
        let facets = self.facets(&context, post.text).await?;
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if !post.media.is_empty() {
            let mut images = Vec::with_capacity(post.media.len());
            for media in post.media {
                let blob = self.upload_blob(&context, tokens, media).await?;
                images.push(json!({ "alt": media.alt_text.as_deref().unwrap_or_default(), "image": blob }));
            }
            record["embed"] = json!({ "$type": "app.bsky.embed.images", "images": images });
        }
        let body = json!({ "repo": did, "collection": COLLECTION, "rkey": rkey, "record": record, "swapRecord": null });
        let url = xrpc(&context.pds, "com.atproto.repo.putRecord");
        let answered = match self
            .bluesky_call(Method::POST, &url, tokens, &context, (PUT_RECORD, true), Payload::Json(&body))
            .await
        {
            Ok(response) => self.read_effect(P, response, refusal).await,
            Err(e) => Err(e),
        };
        match answered {
            Ok((answer, throttle)) => {
                let id = created_id(P, &answer["uri"])?;
                Ok(Published { id, url: Some(web_url(did, &rkey)), throttle, found: false })
            }
            // Lost, or refused because a record is already there: the key says which.
            Err(e) if matches!(e, PlatformError::Ambiguous { .. }) || swapped(&e) => {
                self.read_back(&context, did, &rkey, post.text, e).await
            }
            Err(e) => Err(e),
        }
    }

    /// What is under the post's record key after `failed`: the post (published), nothing (not
    /// written: safe to put again), or something else (`failed` stands).
    async fn read_back(
        &self,
        context: &Context,
        did: &str,
        rkey: &str,
        text: &str,
        failed: PlatformError,
    ) -> Result<Published, PlatformError> {
        let mut url = xrpc(&context.pds, "com.atproto.repo.getRecord");
        url.query_pairs_mut().append_pair("repo", did).append_pair("collection", COLLECTION).append_pair("rkey", rkey);
        let request = self.bluesky_request(Method::GET, &url)?;
        match self.json::<Value>(P, GET_RECORD, request, refusal).await {
            Ok(found) if found["value"]["text"].as_str() == Some(text) => {
                tracing::info!(platform = %P, "the post was found under its record key");
                Ok(Published {
                    id: created_id(P, &found["uri"])?,
                    url: Some(web_url(did, rkey)),
                    throttle: None,
                    found: true,
                })
            }
            Err(PlatformError::Refused { code, .. }) if code == "RecordNotFound" && !swapped(&failed) => {
                Err(PlatformError::Transient {
                    platform: P,
                    detail: "the post is not under its record key: not written, and a resend under the key cannot \
                             write it twice"
                        .into(),
                })
            }
            _ => Err(failed),
        }
    }

    /// The text's facets, with each mention's handle resolved to its DID at the PDS (a mention
    /// that does not resolve stays plain text, as in Bluesky's app).
    async fn facets(&self, context: &Context, text: &str) -> Result<Vec<Value>, PlatformError> {
        let mut facets = Vec::new();
        for facet in richtext::detect(text) {
            // The ranges are Herald's to get right (the PDS does not check them).
            debug_assert!(text.is_char_boundary(facet.start) && text.is_char_boundary(facet.end));
            let feature = match facet.feature {
                Feature::Link(uri) => json!({ "$type": "app.bsky.richtext.facet#link", "uri": uri }),
                Feature::Tag(tag) => json!({ "$type": "app.bsky.richtext.facet#tag", "tag": tag }),
                Feature::Mention(handle) => match self.mentioned(context, &handle).await? {
                    Some(did) => json!({ "$type": "app.bsky.richtext.facet#mention", "did": did }),
                    None => continue,
                },
            };
            facets.push(json!({
                "index": { "byteStart": facet.start, "byteEnd": facet.end },
                "features": [feature],
            }));
        }
        Ok(facets)
    }

    /// A mentioned handle's DID, where it resolves.
    async fn mentioned(&self, context: &Context, handle: &str) -> Result<Option<String>, PlatformError> {
        let mut url = xrpc(&context.pds, "com.atproto.identity.resolveHandle");
        url.query_pairs_mut().append_pair("handle", handle);
        let request = self.bluesky_request(Method::GET, &url)?;
        match self.json::<Value>(P, "GET /xrpc/com.atproto.identity.resolveHandle", request, refusal).await {
            Ok(found) => Ok(found["did"].as_str().map(str::to_owned)),
            Err(PlatformError::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An image as a blob of the account's repository; at most 1,000,000 bytes, which the PDS
    /// itself does not hold it to.
    async fn upload_blob(
        &self,
        context: &Context,
        tokens: &TokenSet,
        media: &crate::domain::post::Media,
    ) -> Result<Value, PlatformError> {
        let (bytes, mime) = self.fetch_media(P, media).await?;
        if bytes.len() > super::rules::MAX_IMAGE_BYTES {
            return Err(PlatformError::Media {
                code: "media_too_large",
                message: format!(
                    "the image is {} bytes; Bluesky takes at most {}",
                    bytes.len(),
                    super::rules::MAX_IMAGE_BYTES
                ),
            });
        }
        let url = xrpc(&context.pds, "com.atproto.repo.uploadBlob");
        let call = ("POST /xrpc/com.atproto.repo.uploadBlob", false);
        let response =
            self.bluesky_call(Method::POST, &url, tokens, context, call, Payload::Bytes(&bytes, &mime)).await?;
        let (_, body) = self.read_answer(P, response, refusal).await?;
        let uploaded: Value = serde_json::from_slice(&body)
            .map_err(|e| PlatformError::Unexpected { platform: P, detail: e.to_string() })?;
        match &uploaded["blob"] {
            blob @ Value::Object(_) => Ok(blob.clone()),
            _ => Err(PlatformError::Unexpected { platform: P, detail: "uploadBlob named no blob".into() }),
        }
    }

    /// One page of the account's latest posts (`com.atproto.repo.listRecords`), newest first:
    /// the first, or the one from the `cursor` an earlier page gave (`after`).
    pub(super) async fn bluesky_recent(
        &self,
        account: &Account,
        tokens: &TokenSet,
        since: time::OffsetDateTime,
        after: Option<&str>,
    ) -> Result<Listing, PlatformError> {
        let context = Context::of(tokens)?;
        let did = account.platform_account_id.as_str();
        let mut url = xrpc(&context.pds, "com.atproto.repo.listRecords");
        url.query_pairs_mut()
            .append_pair("repo", did)
            .append_pair("collection", COLLECTION)
            .append_pair("limit", &RECENT_PAGE.to_string());
        if let Some(cursor) = after {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let request = self.bluesky_request(Method::GET, &url)?;
        let listing: Value = self.json(P, "GET /xrpc/com.atproto.repo.listRecords", request, refusal).await?;
        let records = listing["records"].as_array().map(Vec::as_slice).unwrap_or_default();
        let (recent, reaches) = cut_at(records, since, |r| rfc3339(&r["value"]["createdAt"]));
        // The listing is whole once a page reaches back past `since`, or gives no cursor.
        let next = listing["cursor"].as_str().filter(|_| !reaches && !records.is_empty()).map(str::to_owned);
        let posts = recent
            .into_iter()
            .filter_map(|r| {
                let id = r["uri"].as_str()?.to_owned();
                let rkey = id.rsplit('/').next().unwrap_or_default().to_owned();
                let text = r["value"]["text"].as_str().unwrap_or_default().to_owned();
                Some(Recent { url: Some(web_url(did, &rkey)), id, text })
            })
            .collect();
        Ok(Listing { posts, next })
    }

    /// Deletes the post `id` (its `at://` URI) from the account's repository.
    pub(super) async fn bluesky_delete(
        &self,
        account: &Account,
        tokens: &TokenSet,
        id: &str,
    ) -> Result<(), PlatformError> {
        let context = Context::of(tokens)?;
        let rkey = id.rsplit('/').next().unwrap_or_default();
        let body = json!({ "repo": account.platform_account_id, "collection": COLLECTION, "rkey": rkey });
        let url = xrpc(&context.pds, "com.atproto.repo.deleteRecord");
        let call = ("POST /xrpc/com.atproto.repo.deleteRecord", false);
        let response = self.bluesky_call(Method::POST, &url, tokens, &context, call, Payload::Json(&body)).await?;
        self.read_answer(P, response, refusal).await.map(|_| ())
    }
}

fn swapped(e: &PlatformError) -> bool {
    matches!(e, PlatformError::Refused { code, .. } if code == "InvalidSwap")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TIDs as the spec's examples write them: 13 characters of the sortable alphabet, the first
    /// in `234567abcdefghij`, later posts sorting later.
    #[test]
    fn record_keys_are_tids_stable_per_post_and_sorted_by_time() {
        let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let key = record_key("pst_1/acc_1", at(1_764_655_200));
        assert_eq!(key.len(), 13);
        assert!(key.bytes().all(|b| S32.contains(&b)) && b"234567abcdefghij".contains(&key.as_bytes()[0]), "{key}");
        assert_eq!(key, record_key("pst_1/acc_1", at(1_764_655_200)), "the same on every attempt");
        assert_ne!(key, record_key("pst_2/acc_1", at(1_764_655_200)), "another post, another key");
        assert!(record_key("pst_3/acc_1", at(1_764_655_201)) > key, "TIDs sort by time");
        // Posts made in the same second: a thousand keys, all different.
        let keys: std::collections::HashSet<String> =
            (0..1000).map(|i| record_key(&format!("pst_{i}/acc_1"), at(1_764_655_200))).collect();
        assert_eq!(keys.len(), 1000);
        assert_eq!(created_at(at(1_764_655_200)), "2025-12-02T06:00:00.000Z");
    }
}
