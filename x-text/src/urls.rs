//! URLs as twitter-text extracts them, with or without a scheme (its `extractUrlsWithIndices`).
//!
//! The patterns are twitter-text's (js/src/regexp/*.js at the conformance copy's commit), written
//! out here: a URL is a preceding character that is not a letter, digit, `@`, `$` or `#`; an
//! optional `http://` or `https://`; a domain whose last label is a known top-level domain
//! (data/tlds.txt) or punycode; an optional port, path (balanced parentheses, no trailing
//! punctuation) and query. Without a scheme only the ASCII part of the domain counts, and never
//! after `-`, `_`, `.` or `/`. A domain label longer than 63 characters once punycoded is not a
//! domain, and a URL longer than 4096 is not a URL.

use std::sync::LazyLock;

use regex::Regex;

/// One URL in a text: its bytes and where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
}

const LATIN_ACCENTS: &str = r"\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{FF}\x{100}-\x{24F}\x{253}\x{254}\x{256}\x{257}\x{259}\x{25B}\x{263}\x{268}\x{26F}\x{272}\x{289}\x{28B}\x{2BB}\x{300}-\x{36F}\x{1E00}-\x{1EFF}";
const PUNCTUATION: &str = r"!'#%&()*+,\\\-./:;<=>?@\[\]\^_{|}~\$";
const SPACES: &str =
    r"\x{09}-\x{0D}\x{20}\x{85}\x{A0}\x{1680}\x{180E}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";
const INVALID: &str = r"\x{FFFE}\x{FEFF}\x{FFFF}";
const DIRECTIONAL: &str = r"\x{202A}-\x{202E}\x{61C}\x{200E}\x{200F}\x{2066}\x{2067}\x{2068}\x{2069}";
const CYRILLIC: &str = r"\x{400}-\x{4FF}";
const QUERY_CHAR: &str = r"[a-zA-Z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]";
const QUERY_END: &str = r"[a-zA-Z0-9\-_&=#/]";
/// A URL's length limit, scheme included (twitter-text `MAX_URL_LENGTH`).
const MAX_URL_LENGTH: usize = 4096;
/// A `t.co` slug's limit (twitter-text `MAX_TCO_SLUG_LENGTH`).
const MAX_TCO_SLUG: usize = 40;
const MAX_LABEL: usize = 63;

/// The top-level domains, country codes then generic (data/tlds.txt).
fn tlds(kind: &str) -> Vec<&'static str> {
    let mut list: Vec<&str> = include_str!("../data/tlds.txt")
        .lines()
        .skip_while(|line| *line != format!("[{kind}]"))
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .collect();
    // The longest first, so a name is never cut to a shorter one it starts with.
    list.sort_by_key(|tld| std::cmp::Reverse(tld.chars().count()));
    list
}

struct Patterns {
    url: Regex,
    tco: Regex,
}

/// twitter-text follows a top-level domain with the look-ahead `(?=[^0-9a-zA-Z@+-]|$)`, which
/// `regex` has no syntax for. A port, path or query starts with a character that passes it, so
/// the domain is followed either by one of those or by the end of the text or one passing
/// character, captured as `end` and not part of the URL; the next search starts before it, where
/// twitter-text's would.
const BOUNDARY: &str = r"(?:$|(?P<end>[^0-9a-zA-Z@+\-]))";

fn any_tld() -> String {
    // The text is matched lower-cased (ASCII only, so every byte offset holds): ASCII names are
    // matched as written, which compiles far faster than a case-insensitive list; names in other
    // scripts keep Unicode case-insensitivity, as twitter-text's `i` flag gives them.
    let alternatives = |kind, ascii: bool| {
        let names: Vec<String> =
            tlds(kind).iter().filter(|t| t.is_ascii() == ascii).map(|t| regex::escape(t)).collect();
        names.join("|")
    };
    format!(
        r"(?:{}|(?i:{})|{}|(?i:{})|(?:xn--[\-0-9a-z]+))",
        alternatives("generic", true),
        alternatives("generic", false),
        alternatives("country", true),
        alternatives("country", false)
    )
}

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("twitter-text's patterns compile")
}

/// The ASCII part of a domain (a URL without a scheme keeps only that); compiled at the first
/// such URL.
static ASCII_DOMAIN: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!(r"(?:(?:[\-a-zA-Z0-9{LATIN_ACCENTS}]+)\.)+{}{BOUNDARY}", any_tld())));

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let any_tld = any_tld();
    let dc = format!("[^{PUNCTUATION}{SPACES}{INVALID}{DIRECTIONAL}]");
    let subdomain = format!(r"(?:(?:{dc}(?:[_\-]|{dc})*)?{dc}\.)");
    let domain_name = format!(r"(?:(?:{dc}(?:\-|{dc})*)?{dc}\.)");
    let domain = format!("(?:{subdomain}*{domain_name}{any_tld})");
    let preceding = format!("(?:[^A-Za-z0-9@＠$#＃{INVALID}]|[{DIRECTIONAL}]|^)");
    let pc = format!(r"[a-zA-Z{CYRILLIC}0-9!*';:=+,.$/%#\[\]\-\x{{2013}}_~&|@{LATIN_ACCENTS}]");
    let balanced = format!(r"\((?:{pc}+|(?:{pc}*\({pc}+\){pc}*))\)");
    let path_end = format!(r"(?:[+\-a-zA-Z{CYRILLIC}0-9=_#/{LATIN_ACCENTS}]|(?:{balanced}))");
    let path = format!(r"(?:(?:{pc}*(?:{balanced}{pc}*)*{path_end})|(?:@{pc}+/))");
    let query = format!(r"\?{QUERY_CHAR}*{QUERY_END}");
    // twitter-text: domain, then optional port, path and query, each greedy.
    let rest = format!(
        r"(?::(?P<port>[0-9]+)(?P<path>/{path}*)?(?:{query})?|(?P<path2>/{path}*)(?:{query})?|(?:{query})|{BOUNDARY})"
    );
    let url = format!(r"(?P<before>{preceding})(?P<url>(?P<scheme>https?://)?(?P<domain>{domain}){rest})");
    Patterns { url: compile(&url), tco: compile(&format!(r"^https?://t\.co/([a-z0-9]+)(?:{query})?")) }
});

/// Matches from `at`: the captures and where the match ends without its boundary character.
fn find_at<'h>(re: &Regex, haystack: &'h str, at: usize) -> Option<(regex::Captures<'h>, usize)> {
    let found = re.captures_at(haystack, at)?;
    let end = found.name("end").map_or_else(|| found.get(0).map_or(at, |m| m.end()), |m| m.start());
    Some((found, end))
}

/// Compiles the patterns now rather than in the first call (about a millisecond in a release build).
pub fn warm() {
    LazyLock::force(&PATTERNS);
    LazyLock::force(&ASCII_DOMAIN);
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// twitter-text's `isValidUrl`: every label of the domain is 1 to 63 characters once punycoded, a
/// punycoded domain is ASCII, and the URL with its scheme fits 4096.
fn valid(url: &str, scheme: &str, domain: &str) -> bool {
    if domain.starts_with("xn--") && !ASCII_DOMAIN.is_match(domain) {
        return false;
    }
    let labels_fit = domain.split('.').all(|label| {
        let ascii_len = if label.is_ascii() {
            label.len()
        } else {
            idna::punycode::encode_str(label).map_or(usize::MAX, |p| "xn--".len() + p.len())
        };
        (1..=MAX_LABEL).contains(&ascii_len)
    });
    labels_fit && utf16(scheme) + utf16(url) <= MAX_URL_LENGTH
}

/// The URLs in `text`, in order.
pub fn extract_urls(text: &str) -> Vec<Url<'_>> {
    let mut urls = Vec::new();
    if !text.contains('.') {
        return urls;
    }
    let patterns = &*PATTERNS;
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some((found, end)) = find_at(&patterns.url, &lower, at) {
        at = end;
        let (Some(before), Some(url), Some(domain)) = (found.name("before"), found.name("url"), found.name("domain"))
        else {
            break;
        };
        let url_text = &lower[url.start()..end];
        let scheme = found.name("scheme").map(|m| m.as_str());
        if !valid(url_text, scheme.unwrap_or("https://"), domain.as_str()) {
            continue;
        }
        if scheme.is_none() {
            if ["-", "_", ".", "/"].iter().any(|c| before.as_str().ends_with(c)) {
                continue;
            }
            let mut last = None;
            let mut from = 0;
            while let Some((ascii, ascii_end)) = find_at(&ASCII_DOMAIN, domain.as_str(), from) {
                let Some(whole) = ascii.get(0) else { break };
                let (start, stop) = (domain.start() + whole.start(), domain.start() + ascii_end);
                urls.push(Url { text: &text[start..stop], start, end: stop });
                last = Some(urls.len() - 1);
                from = ascii_end.max(whole.start() + 1);
            }
            // The path, if any, belongs to the last ASCII domain (twitter-text).
            if let (Some(last), true) = (last, found.name("path").or(found.name("path2")).is_some()) {
                let start = urls[last].start;
                urls[last] = Url { text: &text[start..end], start, end };
            }
        } else if let Some(tco) = patterns.tco.captures(url_text) {
            if tco.get(1).is_some_and(|slug| slug.as_str().len() > MAX_TCO_SLUG) {
                continue;
            }
            let stop = url.start() + tco.get(0).map_or(0, |m| m.end());
            urls.push(Url { text: &text[url.start()..stop], start: url.start(), end: stop });
        } else {
            urls.push(Url { text: &text[url.start()..end], start: url.start(), end });
        }
    }
    urls
}
