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

/// Extensions that name a file format: a URL ending in one of these says what it holds, and is
/// refused at once where the platform does not take it. One without (a CDN's `/img/8f3a…`, a
/// `.php` script) says nothing, and is judged by its bytes at publish ([`sniff`]; the audit's
/// F15), as is a named one that turns out to hold something else.
const KNOWN_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "heif", "avif", "svg", "ico", "mp4",
    "mov", "m4v", "webm", "avi", "mkv", "mp3", "wav", "pdf", "zip", "exe", "txt", "html", "htm",
];

/// The image format `bytes` start with, by their signature, named as the platforms' type lists
/// name them: `jpeg`, `png`, `gif`, `webp`, `bmp`, `tiff`.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let kind = match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "jpeg",
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => "png",
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => "gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "webp",
        [b'B', b'M', ..] => "bmp",
        [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => "tiff",
        _ => return None,
    };
    Some(kind)
}

/// How many leading bytes [`sniff`] needs.
pub const SNIFF_BYTES: usize = 12;

/// The MIME type of a sniffed format.
pub fn mime(kind: &str) -> String {
    format!("image/{kind}")
}

/// Whether the platform takes a file of format `kind` (as [`sniff`] names it).
pub fn takes(platform: Platform, kind: &str) -> bool {
    let types = adapter(platform).media_types();
    types.contains(&kind) || (kind == "jpeg" && types.contains(&"jpg"))
}

/// The rules of `platform` (and account kind) for this post.
pub fn check(platform: Platform, kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken> {
    let adapter = adapter(platform);
    let types = adapter.media_types();
    for (i, item) in media.iter().enumerate() {
        let named = extension(item).filter(|e| KNOWN_EXTENSIONS.contains(&e.as_str()));
        if named.as_deref().is_some_and(|e| !types.contains(&e)) {
            return Broken::err(
                "media_type_not_allowed",
                format!("media[{i}] must be one of {} for {platform}", types.join(", ")),
            );
        }
    }
    adapter.check(kind, text, media)
}
