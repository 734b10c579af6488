//! The rules each platform enforces, checked before anything is stored or sent. Each broken rule
//! is a stable code (docs/errors.md) and a sentence naming the limit.

use time::OffsetDateTime;

use super::Media;
use crate::domain::{AccountKind, Platform};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub code: &'static str,
    pub detail: String,
}

fn broken(code: &'static str, detail: impl Into<String>) -> Result<(), Broken> {
    Err(Broken { code, detail: detail.into() })
}

/// X: twitter-text's weighted length (URLs count 23; code points outside the light ranges 2).
const X_MAX_WEIGHTED: usize = 280;
const X_MAX_IMAGES: usize = 4;
/// LinkedIn `commentary`.
const LINKEDIN_MAX_CHARS: usize = 3000;
const LINKEDIN_MAX_IMAGES: usize = 20;
/// Instagram captions: 2,200 characters, 30 hashtags, 20 mentions; carousels 2–10 items.
const INSTAGRAM_MAX_CHARS: usize = 2200;
const INSTAGRAM_MAX_HASHTAGS: usize = 30;
const INSTAGRAM_MAX_MENTIONS: usize = 20;
const INSTAGRAM_MAX_ITEMS: usize = 10;
/// Facebook: the Graph limit on a post message, and photos per multi-photo post.
const FACEBOOK_MAX_CHARS: usize = 63_206;
const FACEBOOK_MAX_PHOTOS: usize = 10;
/// Scheduling: at least a minute ahead, at most a year.
const SCHEDULE_MIN_LEAD: time::Duration = time::Duration::minutes(1);
const SCHEDULE_MAX_LEAD: time::Duration = time::Duration::days(365);
const ALT_TEXT_MAX: usize = 1000;

/// twitter-text v3: weight 1 for these code point ranges, 2 otherwise; URLs weigh 23.
pub fn x_weighted_length(text: &str) -> usize {
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

/// The media types each platform takes, by file extension of the URL's path.
fn allowed_extensions(platform: Platform) -> &'static [&'static str] {
    match platform {
        Platform::X => &["jpg", "jpeg", "png", "gif", "webp"],
        // "JPEG is the only image format supported."
        Platform::Instagram => &["jpg", "jpeg"],
        Platform::Facebook => &["jpg", "jpeg", "png", "gif", "bmp", "tiff"],
        Platform::Linkedin => &["jpg", "jpeg", "png", "gif"],
    }
}

fn extension(media: &Media) -> Option<String> {
    let last = media.url.path_segments()?.next_back()?;
    let (_, ext) = last.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

/// Rules every platform shares: reachable media URLs, sane alt text, the schedule window.
pub fn common(
    media: &[Media],
    scheduled_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    egress: &crate::egress::Policy,
) -> Result<(), Broken> {
    for (i, item) in media.iter().enumerate() {
        // Names are checked again when they are resolved, at download time.
        match egress.url(&item.url) {
            Ok(()) => {}
            Err(crate::egress::Refusal::Scheme(_)) => {
                return broken(
                    "media_url_not_https",
                    format!("media[{i}] must be an https URL the platforms can fetch"),
                );
            }
            Err(refusal) => {
                return broken("media_url_not_allowed", format!("media[{i}] is not a public URL: {refusal}"));
            }
        }
        if item.alt_text.as_ref().is_some_and(|a| a.chars().count() > ALT_TEXT_MAX) {
            return broken(
                "alt_text_too_long",
                format!("media[{i}].alt_text is longer than {ALT_TEXT_MAX} characters"),
            );
        }
    }
    if let Some(at) = scheduled_at {
        if at < now + SCHEDULE_MIN_LEAD {
            return broken("scheduled_at_in_past", "scheduled_at must be at least a minute in the future");
        }
        if at > now + SCHEDULE_MAX_LEAD {
            return broken("scheduled_at_too_far", "scheduled_at must be within a year");
        }
    }
    Ok(())
}

/// The rules of one platform (and account kind) for this post.
pub fn for_platform(platform: Platform, kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
    let _ = kind;
    for (i, item) in media.iter().enumerate() {
        let ext = extension(item);
        if !ext.as_deref().is_some_and(|e| allowed_extensions(platform).contains(&e)) {
            return broken(
                "media_type_not_allowed",
                format!("media[{i}] must be one of {} for {platform}", allowed_extensions(platform).join(", ")),
            );
        }
    }
    match platform {
        Platform::X => {
            if text.trim().is_empty() && media.is_empty() {
                return broken("text_required", "an X post needs text or media");
            }
            let length = x_weighted_length(text);
            if length > X_MAX_WEIGHTED {
                return broken(
                    "text_too_long",
                    format!("X counts this text as {length}; the limit is {X_MAX_WEIGHTED}"),
                );
            }
            if media.len() > X_MAX_IMAGES {
                return broken("too_many_media", format!("X takes at most {X_MAX_IMAGES} images"));
            }
        }
        Platform::Linkedin => {
            if text.trim().is_empty() {
                return broken("text_required", "a LinkedIn post needs commentary");
            }
            let length = text.chars().count();
            if length > LINKEDIN_MAX_CHARS {
                return broken(
                    "text_too_long",
                    format!("LinkedIn commentary is {length} characters; the limit is {LINKEDIN_MAX_CHARS}"),
                );
            }
            if media.len() > LINKEDIN_MAX_IMAGES {
                return broken("too_many_media", format!("LinkedIn takes at most {LINKEDIN_MAX_IMAGES} images"));
            }
        }
        Platform::Instagram => {
            if media.is_empty() {
                return broken("media_required", "an Instagram post needs at least one image");
            }
            if media.len() > INSTAGRAM_MAX_ITEMS {
                return broken(
                    "too_many_media",
                    format!("an Instagram carousel takes at most {INSTAGRAM_MAX_ITEMS} items"),
                );
            }
            let length = text.chars().count();
            if length > INSTAGRAM_MAX_CHARS {
                return broken(
                    "text_too_long",
                    format!("the caption is {length} characters; the limit is {INSTAGRAM_MAX_CHARS}"),
                );
            }
            if text.matches('#').count() > INSTAGRAM_MAX_HASHTAGS {
                return broken(
                    "too_many_hashtags",
                    format!("Instagram captions take at most {INSTAGRAM_MAX_HASHTAGS} hashtags"),
                );
            }
            if text.matches('@').count() > INSTAGRAM_MAX_MENTIONS {
                return broken(
                    "too_many_mentions",
                    format!("Instagram captions take at most {INSTAGRAM_MAX_MENTIONS} mentions"),
                );
            }
        }
        Platform::Facebook => {
            if text.trim().is_empty() && media.is_empty() {
                return broken("text_required", "a Facebook post needs a message or photos");
            }
            let length = text.chars().count();
            if length > FACEBOOK_MAX_CHARS {
                return broken(
                    "text_too_long",
                    format!("the message is {length} characters; the limit is {FACEBOOK_MAX_CHARS}"),
                );
            }
            if media.len() > FACEBOOK_MAX_PHOTOS {
                return broken("too_many_media", format!("a Facebook post takes at most {FACEBOOK_MAX_PHOTOS} photos"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(url: &str) -> Media {
        Media { url: url.parse().unwrap(), alt_text: None }
    }

    fn code(result: Result<(), Broken>) -> &'static str {
        result.err().map(|b| b.code).unwrap_or("ok")
    }

    #[test]
    fn x_weighting_matches_twitter_text() {
        assert_eq!(x_weighted_length("hello"), 5);
        assert_eq!(x_weighted_length("日本語"), 6);
        assert_eq!(x_weighted_length("read https://example.com/a/long/path/indeed"), 5 + 23);
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, &"a".repeat(280), &[])), "ok");
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, &"a".repeat(281), &[])), "text_too_long");
        assert_eq!(code(for_platform(Platform::X, AccountKind::Member, &"日".repeat(141), &[])), "text_too_long");
    }

    #[test]
    fn each_platform_rule() {
        let jpg = media("https://cdn.example/a.jpg");
        let png = media("https://cdn.example/a.png");
        let m = AccountKind::Member;
        assert_eq!(code(for_platform(Platform::X, m, "", &[])), "text_required");
        assert_eq!(code(for_platform(Platform::X, m, "x", &vec![jpg.clone(); 5])), "too_many_media");
        assert_eq!(
            code(for_platform(Platform::X, m, "x", &[media("https://cdn.example/a.exe")])),
            "media_type_not_allowed"
        );
        assert_eq!(code(for_platform(Platform::Linkedin, m, &"a".repeat(3001), &[])), "text_too_long");
        assert_eq!(code(for_platform(Platform::Linkedin, m, " ", &[])), "text_required");
        let p = AccountKind::ProfessionalAccount;
        assert_eq!(code(for_platform(Platform::Instagram, p, "caption", &[])), "media_required");
        assert_eq!(code(for_platform(Platform::Instagram, p, "caption", &[png])), "media_type_not_allowed");
        assert_eq!(code(for_platform(Platform::Instagram, p, "caption", &vec![jpg.clone(); 11])), "too_many_media");
        assert_eq!(
            code(for_platform(Platform::Instagram, p, &"#t ".repeat(31), std::slice::from_ref(&jpg))),
            "too_many_hashtags"
        );
        assert_eq!(
            code(for_platform(Platform::Instagram, p, &"@u ".repeat(21), std::slice::from_ref(&jpg))),
            "too_many_mentions"
        );
        assert_eq!(
            code(for_platform(Platform::Instagram, p, &"a".repeat(2201), std::slice::from_ref(&jpg))),
            "text_too_long"
        );
        assert_eq!(code(for_platform(Platform::Facebook, AccountKind::Page, "", &[])), "text_required");
        assert_eq!(
            code(for_platform(Platform::Facebook, AccountKind::Page, "x", &vec![jpg.clone(); 11])),
            "too_many_media"
        );
        assert_eq!(code(for_platform(Platform::Instagram, p, "caption", &[jpg])), "ok");
    }

    #[test]
    fn common_rules() {
        let now = OffsetDateTime::now_utc();
        let (deployed, local) = (&crate::egress::Policy::new(false), &crate::egress::Policy::new(true));
        assert_eq!(code(common(&[media("http://cdn.example/a.jpg")], None, now, deployed)), "media_url_not_https");
        assert_eq!(code(common(&[media("http://127.0.0.1:4000/a.jpg")], None, now, deployed)), "media_url_not_allowed");
        assert_eq!(code(common(&[media("https://169.254.169.254/a.jpg")], None, now, local)), "media_url_not_allowed");
        assert_eq!(code(common(&[media("http://127.0.0.1:4000/a.jpg")], None, now, local)), "ok");
        assert_eq!(code(common(&[], Some(now), now, deployed)), "scheduled_at_in_past");
        assert_eq!(code(common(&[], Some(now + time::Duration::days(400)), now, deployed)), "scheduled_at_too_far");
        assert_eq!(code(common(&[], Some(now + time::Duration::hours(1)), now, deployed)), "ok");
    }
}
