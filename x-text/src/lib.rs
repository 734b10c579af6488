//! X's post text rules as twitter-text states them, for Herald's validator and the sandbox's X.
//!
//! X counts a post's length with twitter-text's *weighted length* (docs.x.com "Counting
//! characters"): the text is NFC-normalized; every URL twitter-text extracts, with or without a
//! scheme, weighs the transformed `t.co` length; every emoji sequence weighs the default weight
//! once; every other code point weighs its range's weight. The rules and their data come from
//! twitter/twitter-text (Apache-2.0): `config/v3.json` ([`V3`]), its URL patterns and top-level
//! domain list ([`urls`]), and it is judged by that project's conformance suite, copied into
//! `conformance/` and run by `tests/conformance.rs`.
//!
//! Written here rather than taken from the `twitter-text` crate (0.2.0): judged by the same suite
//! that crate fails URL extraction (89/91) and the TLD cases (1563/1574) and links `idna` 0.1.5
//! (RUSTSEC-2024-0421). See docs/decisions.md, "X's text rules".

mod cashtags;
mod emoji;
pub mod urls;

pub use cashtags::{cashtags, cashtags_with_indices};
pub use urls::{Url, extract_urls};

/// One weighted-length configuration (twitter-text `config/*.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub version: u8,
    pub max_weighted_length: usize,
    pub scale: usize,
    pub default_weight: usize,
    pub transformed_url_length: usize,
    pub emoji_parsing: bool,
    /// Inclusive code point ranges and their weight; anything else weighs `default_weight`.
    pub ranges: &'static [(u32, u32, usize)],
}

const LIGHT: &[(u32, u32, usize)] = &[(0, 4351, 100), (8192, 8205, 100), (8208, 8223, 100), (8242, 8247, 100)];

/// The configuration X uses today (twitter-text `config/v3.json`, checked against the copy in
/// `conformance/v3.json` by the conformance test).
pub const V3: Config = Config {
    version: 3,
    max_weighted_length: 280,
    scale: 100,
    default_weight: 200,
    transformed_url_length: 23,
    emoji_parsing: true,
    ranges: LIGHT,
};

/// v2: as v3 but every code point of an emoji sequence weighs on its own (the suite's
/// `WeightedTweetsCounterTest`).
pub const V2: Config = Config { version: 2, emoji_parsing: false, ..V3 };

/// v1: 140 code points, URLs 23 (the suite's `tweets` validity cases).
pub const V1: Config = Config {
    version: 1,
    max_weighted_length: 140,
    scale: 1,
    default_weight: 1,
    transformed_url_length: 23,
    emoji_parsing: false,
    ranges: &[],
};

/// What twitter-text's `parseTweet` answers. Ranges are in UTF-16 code units of the text as given
/// (twitter-text's own unit), inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub weighted_length: usize,
    pub valid: bool,
    pub permillage: usize,
    pub display_range: (usize, usize),
    pub valid_range: (usize, usize),
}

/// Characters that make a post invalid wherever they appear (twitter-text `invalidChars`).
const INVALID_CHARACTERS: [char; 3] = ['\u{FFFE}', '\u{FEFF}', '\u{FFFF}'];

/// twitter-text's `parseTweet`: the weighted length of `text` under `config`, and whether X takes
/// it. Empty or blank text is not a valid post.
pub fn parse(text: &str, config: &Config) -> Parsed {
    if text.trim().is_empty() {
        return Parsed { weighted_length: 0, valid: false, permillage: 0, display_range: (0, 0), valid_range: (0, 0) };
    }
    let normalized = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(text);
    let utf16 = |s: &str| s.encode_utf16().count();
    let text16 = utf16(text);
    let urls = extract_urls(&normalized);
    let mut urls = urls.iter().peekable();
    let scaled_max = config.max_weighted_length * config.scale;
    let (mut weighted, mut at, mut valid_end, mut valid) = (0usize, 0usize, 0usize, true);
    // The UTF-16 position of `at` (twitter-text's ranges are in UTF-16 units).
    let mut at16 = 0usize;
    while at < normalized.len() {
        let rest = &normalized[at..];
        let (len, weight) = if let Some(url) = urls.next_if(|u| u.start == at) {
            (url.end - url.start, config.transformed_url_length * config.scale)
        } else if let Some(len) = config.emoji_parsing.then(|| emoji::sequence_len(rest)).flatten() {
            (len, config.default_weight)
        } else {
            let c = rest.chars().next().unwrap_or_default();
            let weight = config
                .ranges
                .iter()
                .find(|(lo, hi, _)| (*lo..=*hi).contains(&(c as u32)))
                .map_or(config.default_weight, |r| r.2);
            valid &= !INVALID_CHARACTERS.contains(&c);
            (c.len_utf8(), weight)
        };
        weighted += weight;
        let len16 = utf16(&rest[..len]);
        if valid && weighted <= scaled_max {
            valid_end = at16 + len16 - 1;
        }
        at += len;
        at16 += len16;
    }
    let weighted_length = weighted / config.scale;
    // NFC can shorten the text or lengthen it (composition exclusions decompose); `at16` is now
    // the normalized text's length.
    let offset = text16 as isize - at16 as isize;
    Parsed {
        weighted_length,
        valid: valid && weighted_length <= config.max_weighted_length,
        permillage: weighted_length * 1000 / config.max_weighted_length,
        display_range: (0, text16 - 1),
        valid_range: (0, valid_end.saturating_add_signed(offset)),
    }
}

/// The weighted length X gives `text` today ([`V3`]).
pub fn weighted_length(text: &str) -> usize {
    parse(text, &V3).weighted_length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_scheme_weighs_as_a_link() {
        assert_eq!(weighted_length("hello"), 5);
        assert_eq!(weighted_length("see example.com/a/very/long/path/indeed"), 4 + 23);
        assert_eq!(weighted_length("(https://example.com/a/very/long/path)"), 2 + 23);
        assert_eq!(weighted_length("👨‍👩‍👧‍👦"), 2);
        assert_eq!(parse("e\u{301}", &V3).weighted_length, 1, "NFC first");
    }

    #[test]
    fn urls_are_found_in_any_ascii_case_and_sliced_from_the_text_as_given() {
        let text = "Read HTTPS://Example.COM/Path and WWW.EXAMPLE.ORG then ftp.example.COMX";
        let found: Vec<&str> = extract_urls(text).iter().map(|u| u.text).collect();
        assert_eq!(found, ["HTTPS://Example.COM/Path", "WWW.EXAMPLE.ORG"]);
    }
}
