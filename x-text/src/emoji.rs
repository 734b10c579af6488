//! Emoji sequences, which twitter-text v3 weighs once each however many code points they hold.
//!
//! twitter-text finds them with twemoji-parser's generated pattern. This follows the grammar that
//! pattern is generated from (UTS #51 ED-14 to ED-17: keycap, flag, modifier, tag, presentation
//! and ZWJ sequences) over Unicode's emoji properties (ICU4X data), so a newer emoji needs no table
//! update. Where twemoji's versions disagree (a text-presentation character without U+FE0F, such as
//! `©`), a character counts as emoji only in a sequence that asks for emoji presentation.

use icu_properties::{
    CodePointSetData, CodePointSetDataBorrowed,
    props::{Emoji, EmojiModifier, EmojiPresentation, RegionalIndicator},
};

const ZWJ: char = '\u{200D}';
const VS16: char = '\u{FE0F}';
const KEYCAP: char = '\u{20E3}';
const TAG_END: char = '\u{E007F}';

fn set<P: icu_properties::props::BinaryProperty>() -> CodePointSetDataBorrowed<'static> {
    CodePointSetData::new::<P>()
}

/// One element of a ZWJ sequence and whether it stands as emoji on its own.
fn element(text: &str) -> Option<(usize, bool)> {
    let mut chars = text.char_indices().peekable();
    let (_, first) = chars.next()?;
    let next = |chars: &mut std::iter::Peekable<std::str::CharIndices>, want: &dyn Fn(char) -> bool| {
        chars.next_if(|(_, c)| want(*c)).map(|(i, c)| i + c.len_utf8())
    };
    if matches!(first, '0'..='9' | '#' | '*') {
        next(&mut chars, &|c| c == VS16);
        return next(&mut chars, &|c| c == KEYCAP).map(|end| (end, true));
    }
    if set::<RegionalIndicator>().contains(first) {
        return next(&mut chars, &|c| set::<RegionalIndicator>().contains(c)).map(|end| (end, true));
    }
    if !set::<Emoji>().contains(first) {
        return None;
    }
    let mut end = first.len_utf8();
    let mut asks_emoji = set::<EmojiPresentation>().contains(first);
    if let Some(after) = next(&mut chars, &|c| c == VS16 || set::<EmojiModifier>().contains(c)) {
        (end, asks_emoji) = (after, true);
    }
    // A tag sequence: tag characters (U+E0020..U+E007E) then the cancel tag.
    let mut tags = 0;
    while let Some(after) = next(&mut chars, &|c| ('\u{E0020}'..='\u{E007E}').contains(&c)) {
        (end, tags) = (after, tags + 1);
    }
    if tags > 0 {
        end = next(&mut chars, &|c| c == TAG_END)?;
        asks_emoji = true;
    }
    Some((end, asks_emoji))
}

/// The byte length of the emoji sequence `text` starts with, if it starts with one.
pub(crate) fn sequence_len(text: &str) -> Option<usize> {
    let (mut end, mut emoji) = element(text)?;
    while let Some(rest) = text[end..].strip_prefix(ZWJ) {
        let Some((len, _)) = element(rest) else { break };
        end += ZWJ.len_utf8() + len;
        emoji = true;
    }
    emoji.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::sequence_len;

    #[test]
    fn sequences_are_found_whole() {
        for (text, len) in [
            ("👨‍👩‍👧‍👦!", "👨‍👩‍👧‍👦".len()),
            ("🙋🏽x", "🙋🏽".len()),
            ("1⃣", "1⃣".len()),
            ("#️⃣", "#️⃣".len()),
            ("🇯🇵🇯🇵", "🇯🇵".len()),
            ("🏴󠁧󠁢󠁥󠁮󠁧󠁿", "🏴󠁧󠁢󠁥󠁮󠁧󠁿".len()),
            ("©️", "©️".len()),
        ] {
            assert_eq!(sequence_len(text), Some(len), "{text}");
        }
        for text in ["a", "1", "©", "☺", "\u{200D}", "é"] {
            assert_eq!(sequence_len(text), None, "{text}");
        }
    }
}
