//! What X takes in a post.

use crate::domain::post::{Broken, Media};
use crate::platforms::rules::broken;

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
        return broken("text_required", "an X post needs text or media");
    }
    let length = weighted_length(text);
    if length > MAX_WEIGHTED {
        return broken("text_too_long", format!("X counts this text as {length}; the limit is {MAX_WEIGHTED}"));
    }
    if media.len() > MAX_IMAGES {
        return broken("too_many_media", format!("X takes at most {MAX_IMAGES} images"));
    }
    Ok(())
}
