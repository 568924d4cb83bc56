//! Positions: nnc counts bytes, the protocol counts lines and UTF-16 code units. Every
//! conversion clamps, so that a position past a line's end or the text's is the nearest one
//! inside, as the protocol asks, and no offset ever falls inside a character.

use lsp_types::{Position, Range};
use nnc_grammar::Span;

/// The byte offsets where the lines of one text start.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        // A line ends at `\n`, `\r\n` or a lone `\r`, as the protocol counts them.
        LineIndex { starts: nnc_grammar::line_starts(text) }
    }

    /// The position of a byte offset (clamped to the text, and back to a character's start).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_boundary(text, offset);
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let column = text[start..offset].encode_utf16().count();
        Position::new(line as u32, column as u32)
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(self.position(text, span.start), self.position(text, span.end.max(span.start)))
    }

    /// The byte offset of a position: past the last line, the text's end; past a line's end,
    /// that line's end (before its `\r\n`, `\n` or `\r`).
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else {
            return text.len();
        };
        let end = self.starts.get(position.line as usize + 1).map_or(text.len(), |&next| next - 1);
        let line = &text[start..end];
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut units = 0;
        for (i, c) in line.char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        start + line.len()
    }
}

/// Whether `compiled`, a file's text as the compiler read it, is the text `shown` in the
/// editor: the compiler reads each lone `\r` as a `\n` ([`nnc_grammar::unify_line_ends`]).
pub fn is_shown(compiled: &str, shown: &str) -> bool {
    compiled == &*nnc_grammar::unify_line_ends(shown)
}

/// The largest character boundary at or before `offset`, within the text.
pub fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The identifier (letters, digits, `_`) at or just before a byte offset, with its span.
pub fn word_at(text: &str, offset: usize) -> Option<(&str, Span)> {
    let offset = floor_boundary(text, offset);
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_word(c))
        .last()
        .map_or(offset, |(i, _)| i);
    let end =
        text[offset..].char_indices().find(|&(_, c)| !is_word(c)).map_or(text.len(), |(i, _)| offset + i);
    let word = &text[start..end];
    let starts_well = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well.then_some((word, Span::new(start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns() {
        let text = "a→b 😀c\nsecond\r\nthird";
        let index = LineIndex::new(text);
        let c = text.find('c').unwrap();
        // → is one UTF-16 unit, 😀 two.
        assert_eq!(index.position(text, c), Position::new(0, 6));
        assert_eq!(index.offset(text, Position::new(0, 6)), c);
        // Inside a character: its start.
        assert_eq!(index.position(text, text.find('→').unwrap() + 1), Position::new(0, 1));
        // Past a line's end: before its line break; past the text: its end.
        assert_eq!(index.offset(text, Position::new(1, 99)), text.find("\r\n").unwrap());
        assert_eq!(index.offset(text, Position::new(9, 0)), text.len());
        assert_eq!(index.position(text, 10_000), Position::new(2, 5));
    }

    /// A lone `\r` ends a line, as the protocol counts lines.
    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        let text = "ab\rcd\r\nef";
        let index = LineIndex::new(text);
        assert_eq!(index.position(text, 3), Position::new(1, 0));
        assert_eq!(index.position(text, 7), Position::new(2, 0));
        assert_eq!(index.offset(text, Position::new(0, 99)), 2);
        assert_eq!(index.offset(text, Position::new(1, 99)), 5);
    }

    #[test]
    fn words() {
        assert_eq!(word_at("b3 = x", 1).map(|w| w.0), Some("b3"));
        assert_eq!(word_at("b3 = x", 2).map(|w| w.0), Some("b3"));
        assert_eq!(word_at("b3 = x", 3), None);
        assert_eq!(word_at("f(12)", 3), None);
    }
}
