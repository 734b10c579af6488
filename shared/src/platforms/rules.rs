//! The rules a platform enforces on a post, checked before anything is stored or sent: the media
//! types it takes, then its own rules (each platform's are in its folder's `rules.rs`). Each
//! broken rule is a stable code (docs/errors.md) and a sentence naming the limit.

use super::adapter::adapter;
use crate::domain::post::{Broken, Media};
use crate::domain::{AccountKind, Platform};

/// The lower-cased extension of the media URL's last path segment.
pub(super) fn extension(media: &Media) -> Option<String> {
    let last = media.url.path_segments()?.next_back()?;
    let (_, ext) = last.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

/// The rules of `platform` (and account kind) for this post.
pub fn check(platform: Platform, kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
    let adapter = adapter(platform);
    let types = adapter.media_types();
    for (i, item) in media.iter().enumerate() {
        if !extension(item).as_deref().is_some_and(|e| types.contains(&e)) {
            return Broken::err(
                "media_type_not_allowed",
                format!("media[{i}] must be one of {} for {platform}", types.join(", ")),
            );
        }
    }
    adapter.check(kind, text, media)
}
