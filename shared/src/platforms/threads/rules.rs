//! What Threads takes in a post (developers.facebook.com/documentation/threads/posts: text and
//! its limits, carousels, media specifications).

use unicode_segmentation::UnicodeSegmentation as _;

use crate::domain::post::{Broken, Media};

/// "Text posts are limited to 500 characters"; "emojis are counted as the number of UTF-8 bytes".
const MAX_CHARACTERS: usize = 500;
/// A carousel: 2 to 20 images or videos ("Carousels are limited to 20 images, videos, or a mix").
const MAX_ITEMS: usize = 20;
/// Image specifications: "Format: JPEG and PNG".
pub(super) const MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png"];

/// The length as Threads counts it: a character each, an emoji its UTF-8 bytes. An emoji is a
/// grapheme holding a pictographic code point (the Miscellaneous Symbols and Dingbats blocks and
/// everything from U+1F000), a variation selector 16 or a zero-width joiner.
pub(super) fn length(text: &str) -> usize {
    let emoji = |c: char| matches!(c as u32, 0x2600..=0x27BF | 0x1F000..=0x1FAFF | 0xFE0F | 0x200D);
    text.graphemes(true).map(|g| if g.chars().any(emoji) { g.len() } else { g.chars().count() }).sum()
}

pub(super) fn check(text: &str, media: &[Media]) -> Result<(), Broken> {
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "a Threads post needs text or images");
    }
    let length = length(text);
    if length > MAX_CHARACTERS {
        return Broken::err(
            "text_too_long",
            format!("Threads counts {length} characters (an emoji as its UTF-8 bytes); the limit is {MAX_CHARACTERS}"),
        );
    }
    if media.len() > MAX_ITEMS {
        return Broken::err("too_many_media", format!("a Threads carousel takes at most {MAX_ITEMS} items"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_counts_an_emoji_as_its_bytes() {
        assert_eq!(length("hello"), 5);
        assert_eq!(length("é"), 1, "a letter is one character, whatever its bytes");
        assert_eq!(length("👍"), 4);
        assert_eq!(length("👨\u{200D}👩\u{200D}👧"), 18, "a family is its 18 bytes");
        assert!(check(&"a".repeat(500), &[]).is_ok());
        assert_eq!(check(&"a".repeat(501), &[]).unwrap_err().code, "text_too_long");
        assert_eq!(check(&format!("{}👍", "a".repeat(497)), &[]).unwrap_err().code, "text_too_long");
        assert!(check(&format!("{}👍", "a".repeat(496)), &[]).is_ok());
        assert_eq!(check("  ", &[]).unwrap_err().code, "text_required");
    }
}
