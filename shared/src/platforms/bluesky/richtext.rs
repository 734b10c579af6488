//! Bluesky's rich text: the mentions, links, hashtags and cashtags of a post as facets over UTF-8
//! byte ranges, and its length in graphemes.
//!
//! The rules are the official client's (`@atproto/api` 0.19.19, `rich-text/detection.ts` and
//! `util.ts`), carried over as scanners rather than regular expressions: each pattern there is a
//! leading boundary and a run of one character class, and the scanners say so directly (and need
//! no Unicode regex tables in the functions). `tests/it/bluesky.rs` holds them to that client
//! itself, run offline (`infra/pds/facets.mjs`). The PDS checks neither the ranges nor the
//! features, so what is sent must be right here: every range is on character boundaries, inside
//! the text, and in order.

use icu_properties::{CodePointMapData, props::GeneralCategory, props::GeneralCategoryGroup};
use unicode_segmentation::UnicodeSegmentation;

/// What a facet marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Feature {
    /// A handle, to be resolved to its DID before the post is made (a mention that does not
    /// resolve is left as text).
    Mention(String),
    Link(String),
    /// A hashtag without its `#`, or a cashtag with its `$` (`$AAPL`).
    Tag(String),
}

/// A feature over the bytes `start..end` of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Facet {
    pub start: usize,
    pub end: usize,
    pub feature: Feature,
}

/// The text's length as Bluesky counts it (extended grapheme clusters, as `Intl.Segmenter`).
pub(super) fn graphemes(text: &str) -> usize {
    text.graphemes(true).count()
}

/// JavaScript's `\s` (WhiteSpace and LineTerminator), which the client's patterns use.
fn js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}'
    )
}

/// Unicode's punctuation (`\p{P}`).
fn punctuation(c: char) -> bool {
    GeneralCategoryGroup::Punctuation.contains(CodePointMapData::<GeneralCategory>::new().get(c))
}

/// The top-level domains the client knows (the `tlds` package it depends on, 1.261.0).
const TLDS: &str = include_str!("tlds.txt");

/// The client's `isValidDomain`: ends in `.` and a known top-level domain, as written (lower
/// case).
fn valid_domain(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, tld)| TLDS.lines().any(|known| known == tld))
}

/// Where a pattern may start: at the text's start, or after one of `leading` (a whitespace or,
/// where allowed, `(`) that no earlier match of the same pattern took.
fn starts_at(text: &str, at: usize, taken: usize, paren: bool) -> bool {
    if at == 0 {
        return true;
    }
    let Some(before) = text[..at].chars().next_back() else { return false };
    at - before.len_utf8() >= taken && (js_space(before) || (paren && before == '('))
}

/// The run of characters from `at` that `keep` keeps: its end.
fn run(text: &str, at: usize, keep: impl Fn(char) -> bool) -> usize {
    text[at..].char_indices().find(|(_, c)| !keep(*c)).map_or(text.len(), |(i, _)| at + i)
}

/// Each position of `marker` in `text`, for a scan that skips what its last match took.
fn candidates<'a>(text: &'a str, marker: impl Fn(char) -> bool + 'a) -> impl Iterator<Item = usize> + 'a {
    text.char_indices().filter(move |(_, c)| marker(*c)).map(|(i, _)| i)
}

fn ascii_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `(^|\s|\()(@)([a-zA-Z0-9.-]+)(\b)`, kept where the handle is a valid domain or ends `.test`.
fn mentions(text: &str, out: &mut Vec<Facet>) {
    let mut taken = 0;
    for at in candidates(text, |c| c == '@') {
        if at < taken || !starts_at(text, at, taken, true) {
            continue;
        }
        let name = at + 1;
        let longest = run(text, name, |c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        // `\b` after the greedy run: the longest prefix that ends between a word and a non-word
        // character (ASCII, as JavaScript's `\b` without the `u` flag).
        let boundary = |end: usize| {
            let before = text[..end].chars().next_back().is_some_and(ascii_word);
            let after = text[end..].chars().next().is_some_and(ascii_word);
            before != after
        };
        let Some(end) = (name + 1..=longest).rev().find(|end| boundary(*end)) else { continue };
        taken = end;
        let handle = &text[name..end];
        if valid_domain(handle) || handle.ends_with(".test") {
            out.push(Facet { start: at, end, feature: Feature::Mention(handle.to_owned()) });
        }
    }
}

/// `(^|\s|\()((https?:\/\/[\S]+)|((?<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[\S]*))` (case-blind),
/// then one trailing `.,;:!?` and an unmatched `)` left out; a bare domain is a link only with a
/// known top-level domain, and gets `https://`.
fn links(text: &str, out: &mut Vec<Facet>) {
    let mut taken = 0;
    for (at, _) in text.char_indices() {
        if at < taken || !starts_at(text, at, taken, true) {
            continue;
        }
        let rest = &text[at..];
        let lower = |n: usize| rest.get(..n).map(str::to_ascii_lowercase);
        let scheme = [8, 7].into_iter().find(|n| matches!(lower(*n).as_deref(), Some("https://" | "http://")));
        let (end, domain) = match scheme {
            Some(n) if rest[n..].chars().next().is_some_and(|c| !js_space(c)) => {
                let end = run(text, at + n, |c| !js_space(c));
                // The client tests `startsWith('http')` as written: `HTTPS://…` is matched, then
                // dropped as a bare domain without one.
                if !rest.starts_with("http") {
                    taken = end;
                    continue;
                }
                (end, None)
            }
            _ => {
                let Some(domain) = bare_domain(rest) else { continue };
                (run(text, at + domain, |c| !js_space(c)), Some(&rest[..domain]))
            }
        };
        taken = end;
        let mut uri = text[at..end].to_owned();
        if let Some(domain) = domain {
            if !valid_domain(domain) {
                continue;
            }
            uri.insert_str(0, "https://");
        }
        let mut end = end;
        if uri.ends_with(['.', ',', ';', ':', '!', '?']) {
            uri.pop();
            end -= 1;
        }
        if uri.ends_with(')') && !uri.contains('(') {
            uri.pop();
            end -= 1;
        }
        out.push(Facet { start: at, end, feature: Feature::Link(uri) });
    }
}

/// `[a-z][a-z0-9]*(\.[a-z0-9]+)+` (case-blind) at the start of `text`, greedy: its length.
fn bare_domain(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let label = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
    let mut end = 1 + label(1);
    let mut labels = 0;
    while bytes.get(end) == Some(&b'.') && label(end + 1) > 0 {
        end += 1 + label(end + 1);
        labels += 1;
    }
    (labels > 0).then_some(end)
}

/// Characters a hashtag never holds: whitespace and the zero-width ones the client lists.
fn tag_breaks(c: char) -> bool {
    js_space(c) || matches!(c, '\u{AD}' | '\u{2060}' | '\u{200A}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{20E2}')
}

/// `(^|\s)[#＃]((?!\ufe0f)[^\s…]*[^\d\s\p{P}…]+[^\s…]*)?`: the run after the `#`, where it
/// holds something other than digits and punctuation; trailing punctuation left out; at most
/// 64 UTF-16 units.
fn hashtags(text: &str, out: &mut Vec<Facet>) {
    let mut taken = 0;
    for at in candidates(text, |c| c == '#' || c == '＃') {
        if at < taken || !starts_at(text, at, taken, false) {
            continue;
        }
        let body = at + text[at..].chars().next().map_or(1, char::len_utf8);
        let end = run(text, body, |c| !tag_breaks(c));
        let tag = &text[body..end];
        let worded = tag.chars().any(|c| !c.is_ascii_digit() && !punctuation(c));
        if tag.is_empty() || tag.starts_with('\u{FE0F}') || !worded {
            taken = body;
            continue;
        }
        taken = end;
        let tag = tag.trim_end_matches(punctuation);
        if tag.is_empty() || tag.encode_utf16().count() > 64 {
            continue;
        }
        out.push(Facet { start: at, end: body + tag.len(), feature: Feature::Tag(tag.to_owned()) });
    }
}

/// `(^|\s|\()\$([A-Za-z][A-Za-z0-9]{0,4})(?=\s|$|[.,;:!?)"'’])`, as a tag `$` + upper case.
fn cashtags(text: &str, out: &mut Vec<Facet>) {
    let mut taken = 0;
    for at in candidates(text, |c| c == '$') {
        if at < taken || !starts_at(text, at, taken, true) {
            continue;
        }
        let name = at + 1;
        let end = run(text, name, |c| c.is_ascii_alphanumeric());
        let ticker = &text[name..end];
        let first_letter = ticker.starts_with(|c: char| c.is_ascii_alphabetic());
        let closed = text[end..].chars().next().is_none_or(|c| js_space(c) || ".,;:!?)\"'\u{2019}".contains(c));
        if !first_letter || ticker.len() > 5 || !closed {
            continue;
        }
        taken = end;
        out.push(Facet { start: at, end, feature: Feature::Tag(format!("${}", ticker.to_ascii_uppercase())) });
    }
}

/// The text's facets in the order of their ranges (mentions, links, tags and cashtags as the
/// client detects them; a range two of them share is kept once, the first found).
pub(super) fn detect(text: &str) -> Vec<Facet> {
    let mut found = Vec::new();
    mentions(text, &mut found);
    links(text, &mut found);
    hashtags(text, &mut found);
    cashtags(text, &mut found);
    found.sort_by_key(|f| (f.start, f.end));
    let mut kept: Vec<Facet> = Vec::with_capacity(found.len());
    for facet in found {
        if kept.last().is_none_or(|last| last.end <= facet.start) {
            kept.push(facet);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> Vec<(usize, usize, String)> {
        detect(text)
            .into_iter()
            .map(|f| {
                let what = match f.feature {
                    Feature::Mention(h) => format!("@{h}"),
                    Feature::Link(u) => u,
                    Feature::Tag(t) => format!("#{t}"),
                };
                (f.start, f.end, what)
            })
            .collect()
    }

    /// Rows checked against the client (`infra/pds/facets.mjs`); the suite in tests/it runs many
    /// more through it.
    #[test]
    fn facets_are_found_as_the_client_finds_them() {
        assert_eq!(
            shown("hi @alice.test see https://example.com/x. and #tag! $AAPL ok"),
            [
                (3, 14, "@alice.test".to_owned()),
                (19, 40, "https://example.com/x".to_owned()),
                (46, 50, "#tag".to_owned()),
                (52, 57, "#$AAPL".to_owned())
            ]
        );
        assert_eq!(shown("👨‍👩‍👧 café example.com)"), [(25, 36, "https://example.com".to_owned())]);
        assert_eq!(shown("no facets: a@b.com #123 $TOOLONG example.notatld"), []);
        assert_eq!(graphemes("👨‍👩‍👧 café example.com)"), 19);
    }
}
