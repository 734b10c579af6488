//! What Bluesky takes in a post (the `app.bsky.feed.post` and `app.bsky.embed.images` lexicons).

use super::richtext::graphemes;
use crate::domain::post::{Broken, Media};

/// `text`: `maxGraphemes` 300 and `maxLength` 3000 (UTF-8 bytes, as lexicon lengths are).
const MAX_GRAPHEMES: usize = 300;
const MAX_BYTES: usize = 3000;
/// `app.bsky.embed.images`: `images` `maxLength` 4.
const MAX_IMAGES: usize = 4;
/// Each image blob: `maxSize` 1,000,000 bytes, which the PDS does not enforce (the real server
/// takes more; infra/pds's facts), so Herald does, when it has the bytes.
pub(super) const MAX_IMAGE_BYTES: usize = 1_000_000;
/// The lexicon accepts `image/*`; these are the formats Bluesky's app shows.
pub(super) const MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png", "webp"];

pub(super) fn check(text: &str, media: &[Media]) -> Result<(), Broken> {
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "a Bluesky post needs text or images");
    }
    let length = graphemes(text);
    if length > MAX_GRAPHEMES {
        return Broken::err(
            "text_too_long",
            format!("Bluesky counts {length} graphemes; the limit is {MAX_GRAPHEMES}"),
        );
    }
    if text.len() > MAX_BYTES {
        return Broken::err(
            "text_too_long",
            format!("the text is {} bytes in UTF-8; Bluesky takes at most {MAX_BYTES}", text.len()),
        );
    }
    if media.len() > MAX_IMAGES {
        return Broken::err("too_many_media", format!("Bluesky takes at most {MAX_IMAGES} images"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bluesky_counts_graphemes_not_characters() {
        // A family emoji is five code points and one grapheme.
        let family = "👨\u{200D}👩\u{200D}👧";
        assert!(check(&family.repeat(300), &[]).is_err(), "300 families are 5,400 bytes: over 3,000");
        assert!(check(&family.repeat(166), &[]).is_ok(), "166 families: 166 graphemes, 2,988 bytes");
        assert!(check(&"é".repeat(300), &[]).is_ok());
        assert_eq!(check(&"e\u{301}".repeat(301), &[]).unwrap_err().code, "text_too_long");
        assert_eq!(check(" ", &[]).unwrap_err().code, "text_required");
    }
}
