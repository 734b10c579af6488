//! What X takes in a post.

use crate::domain::post::{Broken, Media};

/// X: twitter-text's weighted length (URLs count 23; code points outside the light ranges 2).
const MAX_WEIGHTED: usize = 280;
const MAX_IMAGES: usize = 4;
/// The media types X takes, by the URL path's extension.
pub(super) const MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png", "gif", "webp"];

/// twitter-text v3: weight 1 for these code point ranges, 2 otherwise; URLs weigh 23.
pub fn weighted_length(text: &str) -> usize {
    const LIGHT: [(u32, u32); 4] = [(0, 4351), (8192, 8205), (8208, 8223), (8242, 8247)];
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let bare = word.trim_end();
            if bare.starts_with("https://") || bare.starts_with("http://") {
                23 + (word.len() - bare.len())
            } else {
                word.chars()
                    .map(|c| if LIGHT.iter().any(|(lo, hi)| (*lo..=*hi).contains(&(c as u32))) { 1 } else { 2 })
                    .sum()
            }
        })
        .sum()
}

/// Self-serve API posts may carry at most one cashtag: "Requests that include more than 1 cashtag
/// will be rejected" (docs.x.com `x-api/posts/manage-tweets/integrate`, "Post creation
/// restrictions (self-serve)"; F8).
const MAX_CASHTAGS: usize = 1;

/// The cashtags in `text` as twitter-text finds them (its `cashtags` conformance cases in
/// extract.yml): `$` or `＄` at the start or after whitespace, 1 to 6 ASCII letters, optionally `.`
/// or `_` and 1 or 2 letters more, then the end, whitespace or ASCII punctuation.
pub fn cashtags(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        let at_boundary = previous.is_none_or(char::is_whitespace);
        previous = Some(c);
        if !(at_boundary && (c == '$' || c == '＄')) {
            continue;
        }
        let rest = &text[i + c.len_utf8()..];
        let letters = |s: &str| s.bytes().take_while(u8::is_ascii_alphabetic).count();
        let head = letters(rest);
        if !(1..=6).contains(&head) {
            continue;
        }
        let mut end = head;
        let after = &rest[head..];
        if let Some(sep) = after.chars().next().filter(|c| *c == '.' || *c == '_') {
            let tail = letters(&after[sep.len_utf8()..]);
            if (1..=2).contains(&tail) {
                end += 1 + tail;
            }
        }
        let terminated =
            rest[end..].chars().next().is_none_or(|next| next.is_whitespace() || next.is_ascii_punctuation());
        if terminated {
            found.push(&rest[..end]);
        }
    }
    found
}

pub(super) fn check(text: &str, media: &[Media]) -> Result<(), Broken> {
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "an X post needs text or media");
    }
    let length = weighted_length(text);
    if length > MAX_WEIGHTED {
        return Broken::err("text_too_long", format!("X counts this text as {length}; the limit is {MAX_WEIGHTED}"));
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

    /// twitter-text's `cashtags` conformance cases (../shared/reference/specs/twitter-text/
    /// extract.yml), then X's self-serve limit of one.
    #[test]
    fn cashtags_are_found_as_twitter_text_finds_them() {
        let rows: [(&str, &[&str]); 8] = [
            ("Example cashtags: $TEST $Stock   $symbol", &["TEST", "Stock", "symbol"]),
            ("Example cashtags: $TEST.T $test.tt $Stock_X $symbol_ab", &["TEST.T", "test.tt", "Stock_X", "symbol_ab"]),
            ("$123 $test123 $TE123ST", &[]),
            ("$ストック $株", &[]),
            ("$ $. $- $@ $! $() $+", &[]),
            ("$TEST. $TEST_", &["TEST", "TEST"]),
            ("$OK$NG$BAD text$NO .$NG $$NG", &["OK"]),
            ("$CashtagMustBeLessThanSixCharacter", &[]),
        ];
        for (text, want) in rows {
            assert_eq!(cashtags(text), want, "{text}");
        }
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, "buy $AAPL now", &[])), "ok");
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, "$AAPL vs $MSFT", &[])), "too_many_cashtags");
    }
}
