//! Cashtags as twitter-text extracts them (its `cashtags` conformance cases).

/// The cashtags in `text`, without their `$`: `$` or `＄` at the start or after whitespace, 1 to 6
/// ASCII letters, optionally `.` or `_` and 1 or 2 letters more, then the end, whitespace or ASCII
/// punctuation.
pub fn cashtags(text: &str) -> Vec<&str> {
    cashtags_with_indices(text).into_iter().map(|(tag, _)| tag).collect()
}

/// As [`cashtags`], with each one's byte range in `text`, `$` included.
pub fn cashtags_with_indices(text: &str) -> Vec<(&str, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        let at_boundary = previous.is_none_or(char::is_whitespace);
        previous = Some(c);
        if !(at_boundary && (c == '$' || c == '＄')) {
            continue;
        }
        let start = i + c.len_utf8();
        let rest = &text[start..];
        let letters = |s: &str| s.bytes().take_while(u8::is_ascii_alphabetic).count();
        let head = letters(rest);
        if !(1..=6).contains(&head) {
            continue;
        }
        let mut end = head;
        let after = &rest[head..];
        if let Some(sep) = after.chars().next().filter(|c| *c == '.' || *c == '_') {
            let tail = letters(&after[sep.len_utf8()..]);
            if (1..=2).contains(&tail) {
                end += 1 + tail;
            }
        }
        let terminated =
            rest[end..].chars().next().is_none_or(|next| next.is_whitespace() || next.is_ascii_punctuation());
        if terminated {
            found.push((&rest[..end], i..start + end));
        }
    }
    found
}
