//! LinkedIn's "little" text format, which the Posts API reads `commentary` in: mentions
//! (`@[Name](urn:li:…)`), hashtags (`#word`) and templates are written with reserved characters,
//! and "characters reserved for little elements must be escaped to be treated as plaintext"
//! (learn.microsoft.com/linkedin/marketing/community-management/shares/little-text-format). The
//! reserved set, `\ | { } @ [ ] ( ) < > # * _ ~`, is the one LinkedIn's Text reference lists and
//! clients that fixed the truncation escape (crossposter 1.1.5, linkedctl #194, Postiz's
//! `fixText`). Unescaped, LinkedIn answers 201 and cuts the post at the first one (F1).
//!
//! Herald's text is plain, so every reserved character is escaped with a backslash, except two
//! things that should stay live, as crossposter keeps them: a URL (from `http://` or `https://`
//! to the next whitespace, untouched, so it still links) and a hashtag's `#` (before a letter or
//! digit). Whether LinkedIn also links a URL whose reserved characters are escaped is not
//! documented; leaving URLs whole is the reading a shipped client's users confirmed.

/// The characters the little format reserves.
const RESERVED: [char; 15] = ['\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~'];

/// `text` as little-format commentary that LinkedIn shows as `text`.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut in_url = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            in_url = false;
        } else if !in_url && (text[i..].starts_with("https://") || text[i..].starts_with("http://")) {
            in_url = true;
        }
        let hashtag = c == '#' && chars.peek().is_some_and(|(_, next)| next.is_alphanumeric());
        if !in_url && !hashtag && RESERVED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What LinkedIn shows for `commentary` (little text, as the Posts API answers it): each escaped
/// character as itself. Herald's own posts hold no mentions or templates, so reading them back
/// needs only this.
pub(super) fn shown(commentary: &str) -> String {
    let mut out = String::with_capacity(commentary.len());
    let mut chars = commentary.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, shown};

    #[test]
    fn what_is_escaped_reads_back_as_written() {
        for text in ["plain", "a (b) [c] @d #tag *e* _f_ ~g~ <h> {i} |j| \\k", "https://example.com/a_(b) x_y"] {
            assert_eq!(shown(&escape(text)), text);
        }
    }

    #[test]
    fn reserved_characters_are_escaped_and_urls_and_hashtags_stay_live() {
        let rows = [
            ("plain text, nothing reserved.", "plain text, nothing reserved."),
            ("Launch (beta)", r"Launch \(beta\)"),
            ("snake_case *bold* ~x~ a|b {c} [d] <e>", r"snake\_case \*bold\* \~x\~ a\|b \{c\} \[d\] \<e\>"),
            (r"a \ backslash", r"a \\ backslash"),
            ("mail me @home", r"mail me \@home"),
            ("#rust and # alone and C#", r"#rust and \# alone and C\#"),
            (
                "see https://en.wikipedia.org/wiki/Rust_(language) now",
                "see https://en.wikipedia.org/wiki/Rust_(language) now",
            ),
            ("(http://a.co/x_y)", r"\(http://a.co/x_y)"),
            ("café ☕ (ok)", r"café ☕ \(ok\)"),
            ("", ""),
        ];
        for (text, want) in rows {
            assert_eq!(escape(text), want, "{text}");
        }
    }
}
