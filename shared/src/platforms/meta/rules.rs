//! What Facebook Pages and Instagram take in a post.

use crate::domain::post::{Broken, Media};

/// Instagram captions: 2,200 characters, 30 hashtags, 20 mentions; carousels 2–10 items.
const INSTAGRAM_MAX_CHARS: usize = 2200;
const INSTAGRAM_MAX_HASHTAGS: usize = 30;
const INSTAGRAM_MAX_MENTIONS: usize = 20;
const INSTAGRAM_MAX_ITEMS: usize = 10;
/// "JPEG is the only image format supported."
pub(super) const INSTAGRAM_MEDIA_TYPES: &[&str] = &["jpg", "jpeg"];
/// Facebook: the Graph limit on a post message, and photos per multi-photo post.
const FACEBOOK_MAX_CHARS: usize = 63_206;
const FACEBOOK_MAX_PHOTOS: usize = 10;
pub(super) const FACEBOOK_MEDIA_TYPES: &[&str] = &["jpg", "jpeg", "png", "gif", "bmp", "tiff"];

pub(super) fn instagram(text: &str, media: &[Media]) -> Result<(), Broken> {
    if media.is_empty() {
        return Broken::err("media_required", "an Instagram post needs at least one image");
    }
    if media.len() > INSTAGRAM_MAX_ITEMS {
        return Broken::err(
            "too_many_media",
            format!("an Instagram carousel takes at most {INSTAGRAM_MAX_ITEMS} items"),
        );
    }
    let length = text.chars().count();
    if length > INSTAGRAM_MAX_CHARS {
        return Broken::err(
            "text_too_long",
            format!("the caption is {length} characters; the limit is {INSTAGRAM_MAX_CHARS}"),
        );
    }
    if text.matches('#').count() > INSTAGRAM_MAX_HASHTAGS {
        return Broken::err(
            "too_many_hashtags",
            format!("Instagram captions take at most {INSTAGRAM_MAX_HASHTAGS} hashtags"),
        );
    }
    if text.matches('@').count() > INSTAGRAM_MAX_MENTIONS {
        return Broken::err(
            "too_many_mentions",
            format!("Instagram captions take at most {INSTAGRAM_MAX_MENTIONS} mentions"),
        );
    }
    Ok(())
}

pub(super) fn facebook(text: &str, media: &[Media]) -> Result<(), Broken> {
    if text.trim().is_empty() && media.is_empty() {
        return Broken::err("text_required", "a Facebook post needs a message or photos");
    }
    let length = text.chars().count();
    if length > FACEBOOK_MAX_CHARS {
        return Broken::err(
            "text_too_long",
            format!("the message is {length} characters; the limit is {FACEBOOK_MAX_CHARS}"),
        );
    }
    if media.len() > FACEBOOK_MAX_PHOTOS {
        return Broken::err("too_many_media", format!("a Facebook post takes at most {FACEBOOK_MAX_PHOTOS} photos"));
    }
    Ok(())
}
