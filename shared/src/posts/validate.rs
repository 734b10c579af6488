//! The rules a post must keep, checked before anything is stored or sent: those every platform
//! shares (here) and each platform's own (its adapter's). Each broken rule is a stable code
//! (docs/errors.md) and a sentence naming the limit.

use time::OffsetDateTime;

use super::Media;
use crate::domain::{AccountKind, Platform};

pub use crate::domain::post::Broken;

/// Scheduling: at least a minute ahead, at most a year.
const SCHEDULE_MIN_LEAD: time::Duration = time::Duration::minutes(1);
const SCHEDULE_MAX_LEAD: time::Duration = time::Duration::days(365);
const ALT_TEXT_MAX: usize = 1000;

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
                return Broken::err(
                    "media_url_not_https",
                    format!("media[{i}] must be an https URL the platforms can fetch"),
                );
            }
            Err(refusal) => {
                return Broken::err("media_url_not_allowed", format!("media[{i}] is not a public URL: {refusal}"));
            }
        }
        if item.alt_text.as_ref().is_some_and(|a| a.chars().count() > ALT_TEXT_MAX) {
            return Broken::err(
                "alt_text_too_long",
                format!("media[{i}].alt_text is longer than {ALT_TEXT_MAX} characters"),
            );
        }
    }
    scheduled_at.map_or(Ok(()), |at| schedule(at, now))
}

/// A post's time, scheduled at `now`: at least a minute ahead, at most a year.
pub fn schedule(at: OffsetDateTime, now: OffsetDateTime) -> Result<(), Broken> {
    if at < now + SCHEDULE_MIN_LEAD {
        return Broken::err("scheduled_at_in_past", "scheduled_at must be at least a minute in the future");
    }
    if at > now + SCHEDULE_MAX_LEAD {
        return Broken::err("scheduled_at_too_far", "scheduled_at must be within a year");
    }
    Ok(())
}

/// The rules of one platform (and account kind) for this post: its adapter's
/// ([`crate::platforms::rules::check`]).
pub fn for_platform(platform: Platform, kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
    crate::platforms::rules::check(platform, kind, text, media)
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
