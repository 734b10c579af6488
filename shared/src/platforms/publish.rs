//! Publishing: one post to one account, through the platform's current API.
//!
//! Only the final, creating call of each flow can leave the outcome unknown
//! ([`PlatformError::Ambiguous`]); the steps before it (media uploads, unpublished photos,
//! containers) are safe to repeat.

use serde_json::{Value, json};

use super::adapter::adapter;
use super::{PlatformClient, PlatformError};
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
    /// Found on the platform after the creating call's answer was lost (read back by its
    /// record key, its container, or the account's listing), not answered by that call.
    pub found: bool,
}

/// One post to one account, as its adapter publishes it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub text: &'a str,
    pub media: &'a [Media],
    /// What the target's last attempt left at the platform to come back to
    /// ([`PlatformError::Processing`]), which only that platform reads.
    pub resume: Option<&'a str>,
    /// Names this post to this account, the same on every attempt (the post's id and the
    /// account's): where the platform takes a client-chosen key (Bluesky's record key,
    /// Mastodon's `Idempotency-Key`), a resend under it cannot make a second post.
    pub key: &'a str,
    /// When the post was made: as stable as `key`, for platforms whose record carries a time
    /// that must not change between attempts (Bluesky's `createdAt`).
    pub made_at: time::OffsetDateTime,
}

/// A hint from a successful answer's headers that the next call would be throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// The whole app (Meta's `X-App-Usage`), rather than this account.
    pub app_wide: bool,
    /// Unix seconds.
    pub until: i64,
}

/// What a successful answer's headers say about the budget, as the platform's adapter reads them.
fn throttle_hint(platform: Platform, headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
    adapter(platform).throttle_hint(headers, now)
}

/// How a post whose answer was lost is looked for on its platform (docs/decisions.md, "Exactly
/// once: reconcile before retry"), as its adapter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Among the account's recent posts ([`Adapter::recent`](super::adapter::Adapter)), where a
    /// post the platform made shows within `lag`: not there after it, it was not made.
    Listing { lag: std::time::Duration },
    /// A resend under the same key is the look: the platform answers with the post it made
    /// instead of making another (Bluesky's record key, Mastodon's `Idempotency-Key`), for as
    /// long as it keeps the key (`within`; for good where `None`). Where the platform records the
    /// key only once the post is made, a resend while the first request may still be running
    /// would make a second post; the resend waits `settle` after the lost answer. Past `within`
    /// the account's listing is read instead where `then_listed` ([`Lookup::LISTED`]: Mastodon's
    /// account statuses), else nothing can be asked.
    Resend { settle: std::time::Duration, within: Option<std::time::Duration>, then_listed: bool },
    /// The platform cannot be asked (LinkedIn gives posting apps no read of a member's posts).
    None,
}

impl Lookup {
    /// How long Herald waits for a listing to show a post the platform made: none of X, Facebook
    /// or Threads documents a bound, a few seconds is what clients observe, and this is an order
    /// of magnitude more (docs/decisions.md, "Exactly once").
    pub const LISTED: Lookup = Lookup::Listing { lag: std::time::Duration::from_secs(60) };

    /// How a post that may have been made at `since` is looked for at `now`: a resend only while
    /// the platform surely keeps its key; past that, the listing where the platform has one, else
    /// [`Lookup::None`].
    pub fn at(self, since: time::OffsetDateTime, now: time::OffsetDateTime) -> Lookup {
        match self {
            Lookup::Resend { within: Some(kept), then_listed, .. } if now - since > kept => {
                if then_listed {
                    Lookup::LISTED
                } else {
                    Lookup::None
                }
            }
            other => other,
        }
    }

    /// Whether a post that may have been made at `since` can still be looked for at `now`: not
    /// where the platform cannot be asked, nor once it has forgotten the key a resend relies on
    /// and has no listing to read instead.
    pub fn can_look(self, since: time::OffsetDateTime, now: time::OffsetDateTime) -> bool {
        self.at(since, now) != Lookup::None
    }
}

/// What looking among an account's recent posts came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    Found(Published),
    /// Not among them, and the listing is whole.
    Absent,
    /// Not on this page; the next, which this cursor names, may hold it.
    More(String),
    /// The platform cannot be asked.
    Unlisted,
}

/// One of an account's recent posts, as its platform lists it.
#[derive(Debug, Clone)]
pub(super) struct Recent {
    pub id: String,
    pub text: String,
    pub url: Option<String>,
}

/// Media are fetched by Herald for the platforms that take uploads (X, LinkedIn).
const MEDIA_MAX_BYTES: usize = 5 * 1024 * 1024;
/// The id in a creating call's accepted answer. Without one the post exists but cannot be named:
/// ambiguous (X and Facebook then look for it among the account's recent posts, Instagram asks
/// its container), never published under an empty id.
pub(super) fn created_id(platform: Platform, id: &Value) -> Result<String, PlatformError> {
    match id.as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => {
            Err(PlatformError::Ambiguous { platform, detail: "the platform accepted the post but named no id".into() })
        }
    }
}

/// How many of an account's recent posts one page of a look reads: the most each platform
/// serves in one (X's user timeline, Graph's edges, LinkedIn's finder and Bluesky's
/// `listRecords` all stop at 100).
pub(super) const RECENT_PAGE: usize = 100;

/// How many pages a look reads, each its own call against the read budget: up to 1,000 posts
/// made since the lost answer. A post behind more is not concluded absent: the look fails and is
/// tried again, and past the last attempt the target is `unknown`, never sent again.
pub const LOOK_PAGES: usize = 10;

/// One page of an account's posts since a time, newest first, as its platform lists them.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub(super) posts: Vec<Recent>,
    /// Where the next page begins, while the platform says more may follow since the time (its
    /// cursor: X's `next_token`, the query of Graph's `paging.next`, LinkedIn's next `start`,
    /// Bluesky's `cursor`, the last status's id as Mastodon's `max_id`); `None` once the listing
    /// is whole.
    pub next: Option<String>,
}

/// A newest-first page of a listing that takes no time bound, cut at `since` by when each item
/// was `made`: the items made since, and whether the page reaches back past `since` (its oldest
/// item is older, so no later page holds one made since).
pub(super) fn cut_at(
    page: &[Value],
    since: time::OffsetDateTime,
    made: impl Fn(&Value) -> Option<time::OffsetDateTime>,
) -> (Vec<&Value>, bool) {
    let reaches = page.last().and_then(&made).is_some_and(|at| at < since);
    (page.iter().filter(|item| made(item).is_some_and(|at| at >= since)).collect(), reaches)
}

/// An RFC 3339 time in a listed item (Bluesky's `createdAt`, Mastodon's `created_at`).
pub(super) fn rfc3339(at: &Value) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(at.as_str()?, &time::format_description::well_known::Rfc3339).ok()
}

/// Each post of a `{"data": [...]}` listing whose text is in `field`, with its address: the
/// listing's own `permalink` where it carries one (Threads), else `url` of its id.
pub(super) fn recent_posts(listing: &Value, field: &str, url: impl Fn(&str) -> String) -> Vec<Recent> {
    let text = |post: &Value, key: &str| post[key].as_str().unwrap_or_default().to_owned();
    listing["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|post| {
            let id = text(post, "id");
            let address = post["permalink"].as_str().map_or_else(|| url(&id), str::to_owned);
            Recent { url: Some(address), id, text: text(post, field) }
        })
        .collect()
}

/// The query of a Graph listing's next page: `paging.next`'s, less the token and its proof (each
/// call adds its own), while Graph gives one. Graph pages an edge by cursor (`after`) or by time
/// (`until` with a paging token), as the edge chooses, and the link carries whichever; its absence
/// marks the last page, and a page with fewer posts than `limit` need not be the last ("don't
/// depend on the number of results being fewer than the limit value", developers.facebook.com/
/// docs/graph-api/results).
pub(super) fn graph_next(listing: &Value) -> Option<String> {
    let next = url::Url::parse(listing["paging"]["next"].as_str()?).ok()?;
    let kept = next.query_pairs().filter(|(key, _)| !matches!(key.as_ref(), "access_token" | "appsecret_proof"));
    Some(url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish())
}

/// The query of one page of a Graph listing: `first` for the first; for a later one, the query
/// [`graph_next`] kept, with any of `first`'s parameters it lacks. Graph's links carry the
/// request's parameters as a rule, but a link without `since` would read on past the lost
/// answer's time to the account's oldest post, and one without `fields` would list posts without
/// their text: either would end a look that could have settled.
pub(super) fn graph_page(first: &[(&str, String)], after: Option<&str>) -> Vec<(String, String)> {
    let mut query: Vec<(String, String)> =
        after.map(|query| url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()).unwrap_or_default();
    for (key, value) in first {
        if !query.iter().any(|(kept, _)| kept == key) {
            query.push(((*key).to_owned(), value.clone()));
        }
    }
    query
}

/// Whether a listed post's text is `text`, as [`comparable`] compares them.
pub(super) fn same_text(listed: &str, text: &str) -> bool {
    comparable(listed) == comparable(text)
}

/// Text as compared after a platform stored it: whitespace-trimmed, URLs as placeholders, and a
/// mention of an account on another server (`@user@domain`) as Mastodon shows it (`@user`:
/// its `TextFormatter` links a known account under its username alone).
fn comparable(text: &str) -> String {
    text.split_whitespace()
        .map(|word| {
            if word.starts_with("http://") || word.starts_with("https://") {
                return "<url>".into();
            }
            mention_shown(word)
        })
        .collect::<Vec<std::borrow::Cow<'_, str>>>()
        .join(" ")
}

/// `@user@domain` (and what follows the domain, such as a comma) as `@user` and what follows;
/// any other word as it is.
fn mention_shown(word: &str) -> std::borrow::Cow<'_, str> {
    let Some(second) = word.strip_prefix('@').and_then(|rest| rest.find('@')).map(|at| at + 1) else {
        return word.into();
    };
    let domain = &word[second + 1..];
    let mut end = domain.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).unwrap_or(domain.len());
    // A domain ends in a letter or digit: a full stop after it ends the sentence.
    while end > 0 && matches!(domain.as_bytes()[end - 1], b'.' | b'-') {
        end -= 1;
    }
    if end == 0 {
        return word.into();
    }
    format!("{}{}", &word[..second], &domain[end..]).into()
}

/// Which of `expected` the answer's headers carry.
pub(super) fn seen(headers: &reqwest::header::HeaderMap, expected: &'static [&'static str]) -> Vec<&'static str> {
    expected.iter().copied().filter(|name| headers.contains_key(*name)).collect()
}

/// The format `bytes` hold, if `platform` takes it; refused otherwise (the tenant's to fix).
fn kind_taken(platform: Platform, bytes: &[u8]) -> Result<&'static str, PlatformError> {
    match super::rules::sniff(bytes) {
        Some(kind) if super::rules::takes(platform, kind) => Ok(kind),
        found => Err(PlatformError::Media {
            code: "media_type_not_allowed",
            message: format!(
                "the media holds {}, which {platform} does not take",
                found.unwrap_or("no image format Herald knows")
            ),
        }),
    }
}

impl PlatformClient {
    /// Deletes the account's post `id`; `None` where the platform gives apps no delete.
    pub async fn delete_post(
        &self,
        account: &Account,
        tokens: &TokenSet,
        id: &str,
    ) -> Result<Option<()>, PlatformError> {
        adapter(account.platform).delete(self, account, tokens, id).await
    }

    /// Whether apps may delete their posts on `platform`.
    pub fn deletes(&self, platform: crate::domain::Platform) -> bool {
        adapter(platform).deletes()
    }

    /// Whether the first page of the account's posts since `since` includes `id`; `None` where
    /// the platform cannot be asked.
    pub async fn lists_post(
        &self,
        account: &Account,
        tokens: &TokenSet,
        since: time::OffsetDateTime,
        id: &str,
    ) -> Result<Option<bool>, PlatformError> {
        let recent = adapter(account.platform).recent(self, account, tokens, since, None).await?;
        Ok(recent.map(|listing| listing.posts.iter().any(|post| post.id == id)))
    }

    /// How a lost answer of `account`'s platform is looked for.
    pub fn lookup(&self, account: &Account) -> Lookup {
        adapter(account.platform).lookup(account)
    }

    /// Whether one page of the account's posts since `since` (the first, or the one `after`
    /// names) includes `text` (URLs compared as placeholders, since X rewrites them to t.co
    /// links). One call: the caller counts each page against the read budget.
    pub async fn find(
        &self,
        account: &Account,
        tokens: &TokenSet,
        since: time::OffsetDateTime,
        text: &str,
        after: Option<&str>,
    ) -> Result<Search, PlatformError> {
        let Some(listing) = adapter(account.platform).recent(self, account, tokens, since, after).await? else {
            return Ok(Search::Unlisted);
        };
        let found = listing.posts.into_iter().find(|post| !post.id.is_empty() && same_text(&post.text, text));
        Ok(match (found, listing.next) {
            (Some(found), _) => Search::Found(Published { id: found.id, url: found.url, throttle: None, found: true }),
            (None, Some(next)) => Search::More(next),
            (None, None) => Search::Absent,
        })
    }

    /// The rate-limit headers the platform documents, as its answer to a cheap read carried them.
    pub async fn rate_headers(
        &self,
        account: &Account,
        tokens: &TokenSet,
    ) -> Result<Option<super::RateHeaders>, PlatformError> {
        adapter(account.platform).rate_headers(self, account, tokens).await
    }

    /// Publishes `post` as `account`, with its usable `tokens`.
    pub async fn publish(
        &self,
        account: &Account,
        tokens: &TokenSet,
        post: &Outgoing<'_>,
    ) -> Result<Published, PlatformError> {
        let started = self.clock.now();
        let (platform, detail) = match adapter(account.platform).publish(self, account, tokens, post).await {
            Err(PlatformError::Ambiguous { platform, detail }) => (platform, detail),
            other => return other,
        };
        // Where the platform is looked at by listing, the post may be among the account's recent
        // ones already (a minute of clock skew allowed). Instagram asks its container instead,
        // inside its publish; where a resend under the post's key is the look (Bluesky, Mastodon
        // within the key's hour), the key decides, not a match of text.
        if !matches!(self.lookup(account), Lookup::Listing { .. }) {
            return Err(PlatformError::Ambiguous { platform, detail });
        }
        match self.find(account, tokens, started - time::Duration::minutes(1), post.text, None).await {
            Ok(Search::Found(found)) => {
                tracing::info!(platform = %platform, "an ambiguous publish was found on the platform");
                Ok(found)
            }
            // Not visible yet proves nothing (reads lag writes): the target looks again after
            // the platform's lag, before anything is sent. It was made just now: on the first
            // page if anywhere, so no further page is read here.
            Ok(Search::Absent | Search::More(_)) => Err(PlatformError::Ambiguous {
                platform,
                detail: format!("{detail}; not among the account's recent posts when checked"),
            }),
            Ok(Search::Unlisted) | Err(_) => Err(PlatformError::Ambiguous { platform, detail }),
        }
    }

    /// The format of a tenant's media, from its first bytes (read through the egress policy),
    /// for a platform that fetches the media itself (Instagram): refused unless the platform
    /// takes it, whatever the URL or the server's content type says (the audit's F15).
    pub(super) async fn media_kind(&self, platform: Platform, media: &Media) -> Result<&'static str, PlatformError> {
        let peeked = self.get_media(platform, media, super::rules::SNIFF_BYTES, true).await?;
        kind_taken(platform, &peeked)
    }

    /// Downloads a tenant's media (at most 5 MB), judged by its bytes, not its name (F15): the
    /// bytes and their MIME type.
    pub(super) async fn fetch_media(
        &self,
        platform: Platform,
        media: &Media,
    ) -> Result<(Vec<u8>, String), PlatformError> {
        let bytes = self.get_media(platform, media, MEDIA_MAX_BYTES, false).await?;
        let kind = kind_taken(platform, &bytes)?;
        Ok((bytes, super::rules::mime(kind)))
    }

    /// A tenant's media through the egress policy (public https hosts only), logged as a call:
    /// all of it up to `limit` bytes, or with `peek` its first `limit` bytes. A refused or
    /// failing URL is the tenant's to fix: refused, not retried; a network failure or timeout is
    /// transient.
    async fn get_media(
        &self,
        platform: Platform,
        media: &Media,
        limit: usize,
        peek: bool,
    ) -> Result<Vec<u8>, PlatformError> {
        use crate::egress::EgressError;
        let started = std::time::Instant::now();
        let result =
            if peek { self.egress.peek(&media.url, limit).await } else { self.egress.fetch(&media.url, limit).await };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let media = |code: &'static str, message: String| PlatformError::Media { code, message };
        match result {
            Ok(fetched) => {
                tracing::info!(platform = %platform, endpoint = "GET media", status = 200, latency_ms, "media fetched");
                Ok(fetched.bytes)
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

    /// Reads the answer of a creating call: errors are classified as in [`Self::json`], and a
    /// body cut off after a 2xx status is ambiguous (the post exists).
    pub(super) async fn read_effect(
        &self,
        platform: Platform,
        response: reqwest::Response,
        refusal: super::Refusal,
    ) -> Result<(Value, Option<Throttle>), PlatformError> {
        let status = response.status().as_u16();
        let now = self.clock.now();
        let headers = response.headers().clone();
        let throttle = throttle_hint(platform, &headers, self.clock.now().unix_timestamp());
        let body = response
            .bytes()
            .await
            .map_err(|_| PlatformError::Ambiguous { platform, detail: "the answer was cut off".into() })?;
        // A server error to the creating call does not say the post was not made (the audit's
        // F14): a 500 may come after the platform acted, a gateway's 502 or 504 after the
        // platform behind it did. So it is checked where the platform lets us look, never resent
        // blindly. 503 is the one that says the server did not handle the request (RFC 9110
        // §15.6.4, "currently unable to handle the request"): retried as before.
        if status >= 500 && status != 503 {
            return Err(PlatformError::Ambiguous {
                platform,
                detail: format!("the creating call was answered {status}, which does not say whether it was applied"),
            });
        }
        Self::classify(platform, &super::Answer::read(platform, status, &body, &headers, now), refusal)?;
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

    /// A mention of another server's account compares as Mastodon shows it; the rest as it is.
    #[test]
    fn mentions_compare_as_mastodon_shows_them() {
        assert!(same_text("hi @bob, see https://t.co/x", "hi @bob@remote.test, see https://example.com/a"));
        assert!(same_text("@bob.", "@bob@remote.test."));
        assert!(!same_text("hi @bob", "hi @carol@remote.test"));
        assert_eq!(mention_shown("me@example.com"), "me@example.com");
        assert_eq!(mention_shown("@a@"), "@a@");
    }

    /// A Graph page's `paging.next` is the next page's query, less the token and its proof
    /// (each call adds its own, and a cursor must never carry a secret), and keeping the first
    /// page's parameters where the link drops them; no `next`, no page.
    #[test]
    fn graph_next_keeps_the_links_query_without_its_secrets() {
        let listing = json!({ "data": [], "paging": { "next":
            "https://graph.facebook.com/v23.0/1/feed?fields=id%2Cmessage&limit=100&access_token=EAAB.secret&until=1700000000&__paging_token=enc_AdA&appsecret_proof=ab12" } });
        let next = graph_next(&listing).unwrap();
        assert!(!next.contains("secret") && !next.contains("ab12"), "{next}");
        let query = graph_page(&[("fields", "id".into()), ("since", "1600000000".into())], Some(&next));
        let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
        // The link's own parameters as it gives them, and the first page's it dropped.
        assert_eq!(keys, ["fields", "limit", "until", "__paging_token", "since"]);
        assert_eq!(query[0].1, "id,message");
        assert_eq!(query[4].1, "1600000000");
        assert_eq!(graph_next(&json!({ "data": [], "paging": { "cursors": { "after": "x" } } })), None);
        assert_eq!(graph_page(&[("limit", "100".into())], None), [("limit".to_owned(), "100".to_owned())]);
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
