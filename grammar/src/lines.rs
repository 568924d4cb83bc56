//! Line ends. A text may end its lines with `\n`, `\r\n` or a lone `\r` (classic Mac OS), and
//! editors, as the Language Server Protocol, count each as one. The grammar and the tools
//! that scan a text by hand (comments run to the end of their line, error recovery resumes at
//! a line's start, the formatter keeps the author's line breaks) look for `\n` alone, so a
//! text is read with its lone `\r`s made `\n`s first ([`unify_line_ends`]): one byte for one,
//! so that every span of the unified text is a span of the original.

use std::borrow::Cow;

/// `text` with each `\r` that no `\n` follows made a `\n`: the same length, the same offsets.
pub fn unify_line_ends(text: &str) -> Cow<'_, str> {
    if !has_lone_cr(text) {
        return Cow::Borrowed(text);
    }
    let mut bytes = text.as_bytes().to_vec();
    for i in 0..bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
            bytes[i] = b'\n';
        }
    }
    // ASCII for ASCII: a `\r` is never part of a longer UTF-8 sequence.
    Cow::Owned(String::from_utf8(bytes).expect("one ASCII byte replaced by another"))
}

/// Whether `text` ends a line with a lone `\r`.
pub fn has_lone_cr(text: &str) -> bool {
    text.match_indices('\r').any(|(i, _)| text.as_bytes().get(i + 1) != Some(&b'\n'))
}

/// The byte offsets where the lines of `text` start, a line ending at `\n`, `\r\n` or a lone
/// `\r`: 0, then the offset after each line end.
pub fn line_starts(text: &str) -> Vec<usize> {
    let unified = unify_line_ends(text);
    std::iter::once(0).chain(unified.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_end_counts_once() {
        assert_eq!(unify_line_ends("a\rb\r\nc\nd\r"), "a\nb\r\nc\nd\n");
        assert!(matches!(unify_line_ends("a\r\nb\n"), Cow::Borrowed(_)));
        assert_eq!(line_starts("a\rb\r\nc\nd"), [0, 2, 5, 7]);
        assert_eq!(line_starts("é\r"), [0, 3]);
        assert_eq!(line_starts(""), [0]);
    }
}
