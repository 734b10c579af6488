//! What a Mastodon server takes in a status (docs.joinmastodon.org: methods/statuses, and the
//! server's `configuration` in `GET /api/v2/instance`).

use unicode_segmentation::UnicodeSegmentation as _;

use crate::domain::post::{Broken, Media};

/// The limits a server states; [`Limits::DEFAULT`] are Mastodon's defaults, which Herald checks
/// before anything is stored (a server's own, read at connect, are checked again before the call).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Limits {
    /// `max_characters` (500 by default).
    pub max_characters: usize,
    /// `characters_reserved_per_url` (23).
    pub url_characters: usize,
    /// `max_media_attachments` (4).
    pub max_media: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { max_characters: 500, url_characters: 23, max_media: 4 };
}

/// Mastodon's default image types (`configuration.media_attachments.supported_mime_types`).
pub(super) const MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png", "gif", "webp"];

/// The length as Mastodon counts it: graphemes, a URL as `characters_reserved_per_url` whatever
/// its length, and a remote mention as its local part (`@ada@example.social` counts as `@ada`).
pub(super) fn length(text: &str, url_characters: usize) -> usize {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let (body, space) = word.split_at(word.trim_end().len());
            let counted = if body.starts_with("http://") || body.starts_with("https://") {
                url_characters
            } else {
                match body.strip_prefix('@').and_then(|rest| rest.split_once('@')) {
                    Some((user, _domain)) if !user.is_empty() => user.graphemes(true).count() + 1,
                    _ => body.graphemes(true).count(),
                }
            };
            counted + space.graphemes(true).count()
        })
        .sum()
}

pub(super) fn check(text: &str, media: &[Media], limits: &Limits) -> Result<(), Broken> {
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "a Mastodon status needs text or media");
    }
    let length = length(text, limits.url_characters);
    if length > limits.max_characters {
        return Broken::err(
            "text_too_long",
            format!("Mastodon counts {length} characters; the server takes {}", limits.max_characters),
        );
    }
    if media.len() > limits.max_media {
        return Broken::err("too_many_media", format!("the server takes at most {} attachments", limits.max_media));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mastodon_counts_urls_and_remote_mentions_short() {
        assert_eq!(length("hello world", 23), 11);
        assert_eq!(length("see https://example.com/a/very/long/path/indeed?x=1", 23), 4 + 23);
        assert_eq!(length("hi @ada@example.social", 23), 3 + 4);
        assert_eq!(length("👨\u{200D}👩\u{200D}👧", 23), 1);
        let limits = Limits::DEFAULT;
        assert!(check(&"a".repeat(500), &[], &limits).is_ok());
        assert_eq!(check(&"a".repeat(501), &[], &limits).unwrap_err().code, "text_too_long");
        let long_link = format!("{} https://example.com/{}", "a".repeat(476), "x".repeat(300));
        assert!(check(&long_link, &[], &limits).is_ok(), "a link counts 23");
        assert_eq!(check(" ", &[], &limits).unwrap_err().code, "text_required");
    }
}
