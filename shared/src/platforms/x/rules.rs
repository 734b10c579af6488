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
}
