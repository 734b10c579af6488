//! What LinkedIn takes in a post.

use crate::domain::post::{Broken, Media};

/// LinkedIn `commentary`.
const MAX_CHARS: usize = 3000;
const MAX_IMAGES: usize = 20;
/// The media types LinkedIn's Images API takes, by the URL path's extension.
pub(super) const MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png", "gif"];

pub(super) fn check(text: &str, media: &[Media]) -> Result<(), Broken> {
    // Images alone make a post (LinkedIn's Posts API takes an empty `commentary` with media,
    // as Ayrshare and others document; F15); without media there is nothing to post.
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "a LinkedIn post needs commentary or images");
    }
    let length = text.chars().count();
    if length > MAX_CHARS {
        return Broken::err(
            "text_too_long",
            format!("LinkedIn commentary is {length} characters; the limit is {MAX_CHARS}"),
        );
    }
    if media.len() > MAX_IMAGES {
        return Broken::err("too_many_media", format!("LinkedIn takes at most {MAX_IMAGES} images"));
    }
    Ok(())
}
