//! What X takes in a post.

use crate::domain::post::{Broken, Media};

const MAX_IMAGES: usize = 4;
/// The media types X takes, by the URL path's extension.
pub(super) const MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png", "gif", "webp"];

// X's weighted length and cashtags: twitter-text's, configuration v3 (the `herald-x-text` crate,
// judged by twitter-text's conformance suite; F5).
use herald_x_text::cashtags;

/// Self-serve API posts may carry at most one cashtag: "Requests that include more than 1 cashtag
/// will be rejected" (docs.x.com `x-api/posts/manage-tweets/integrate`, "Post creation
/// restrictions (self-serve)"; F8).
const MAX_CASHTAGS: usize = 1;

pub(super) fn check(text: &str, media: &[Media]) -> Result<(), Broken> {
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "an X post needs text or media");
    }
    let parsed = herald_x_text::parse(text, &herald_x_text::V3);
    let (length, limit) = (parsed.weighted_length, herald_x_text::V3.max_weighted_length);
    if length > limit {
        return Broken::err("text_too_long", format!("X counts this text as {length}; the limit is {limit}"));
    }
    if !parsed.valid && !text.is_empty() {
        return Broken::err(
            "text_invalid_characters",
            "X refuses text holding U+FFFE, U+FEFF or U+FFFF (twitter-text's invalid characters)",
        );
    }
    if media.len() > MAX_IMAGES {
        return Broken::err("too_many_media", format!("X takes at most {MAX_IMAGES} images"));
    }
    // "Up to 4 photos, 1 animated GIF or 1 video in a Post" (docs.x.com media best practices; F7).
    if media.len() > 1 && media.iter().any(|m| crate::platforms::rules::extension(m).as_deref() == Some("gif")) {
        return Broken::err("too_many_media", "X takes one animated GIF alone, or up to 4 photos");
    }
    let tags = cashtags(text).len();
    if tags > MAX_CASHTAGS {
        return Broken::err(
            "too_many_cashtags",
            format!("X refuses API posts with more than {MAX_CASHTAGS} cashtag; this one has {tags}"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountKind, Platform};
    use crate::posts::validate::for_platform;
    use herald_x_text::weighted_length;

    fn code(result: Result<(), Broken>) -> &'static str {
        result.err().map(|b| b.code).unwrap_or("ok")
    }

    #[test]
    fn x_weighting_matches_twitter_text() {
        assert_eq!(weighted_length("hello"), 5);
        assert_eq!(weighted_length("日本語"), 6);
        assert_eq!(weighted_length("read https://example.com/a/long/path/indeed"), 5 + 23);
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, &"a".repeat(280), &[])), "ok");
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, &"a".repeat(281), &[])), "text_too_long");
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, &"日".repeat(141), &[])), "text_too_long");
    }

    /// F5: what the old counter got wrong, each way. A link without a scheme or inside
    /// parentheses weighs 23 however long it is; an emoji sequence weighs 2 however many code
    /// points it joins; NFC first. And twitter-text's invalid characters are refused.
    #[test]
    fn x_counts_links_emoji_and_normalization_as_twitter_text_does() {
        let long_path = format!("example.com/{}", "p".repeat(200));
        let x = |text: &str| code(for_platform(Platform::X, AccountKind::Member, text, &[]));
        assert_eq!(weighted_length(&long_path), 23);
        assert_eq!(x(&format!("{} {long_path}", "a".repeat(256))), "ok", "256 + 1 + 23 = 280");
        assert_eq!(x(&format!("{} (https://example.com/{})", "a".repeat(254), "p".repeat(100))), "ok");
        assert_eq!(weighted_length("👨‍👩‍👧‍👦"), 2);
        assert_eq!(x(&"👨‍👩‍👧‍👦".repeat(140)), "ok", "140 family emoji are 280");
        assert_eq!(x(&"👨‍👩‍👧‍👦".repeat(141)), "text_too_long");
        assert_eq!(x(&"e\u{301}".repeat(280)), "ok", "NFC: each é is one code point");
        assert_eq!(x("a\u{FFFE}b"), "text_invalid_characters");
        // "example.comx" is no link: the top-level domain must end there (twitter-text).
        assert_eq!(weighted_length(&format!("example.comx{}", "x".repeat(30))), 42);
    }

    /// X's self-serve limit of one cashtag (cashtags are found by `herald-x-text`, judged by
    /// twitter-text's `cashtags` cases).
    #[test]
    fn more_than_one_cashtag_is_refused() {
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, "buy $AAPL now", &[])), "ok");
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, "$AAPL vs $MSFT", &[])), "too_many_cashtags");
    }
}
