//! Rendering diagnostics: rustc-style text (with or without colour) through
//! codespan-reporting, and JSON for tools. What a file holds reaches a terminal only through
//! [`printable`]: its control characters are shown as codes, never sent.

use std::borrow::Cow;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel, LabelStyle};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor::Ansi, Config, Styles, StylesWriter};
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::SourceMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Color,
}

/// Whether a character would act on a terminal rather than show: control characters (an
/// escape sequence can retitle or clear the terminal; a carriage return not ending a line sends
/// the cursor back over what was shown), line and paragraph separators, and the bidirectional
/// overrides that make code read otherwise than it runs. Tabs and line ends show. `next` is the
/// character after `c`.
fn acts(c: char, next: Option<char>) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        || (c == '\r' && next != Some('\n'))
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each character that would act on a terminal replaced by `shown(c)`.
fn replaced(text: &str, shown: impl Fn(char) -> String) -> Cow<'_, str> {
    let mut chars = text.chars().peekable();
    let mut out: Option<String> = None;
    let mut at = 0;
    while let Some(c) = chars.next() {
        if acts(c, chars.peek().copied()) {
            out.get_or_insert_with(|| text[..at].to_string()).push_str(&shown(c));
        } else if let Some(out) = &mut out {
            out.push(c);
        }
        at += c.len_utf8();
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

/// Text as a terminal may print it: each character that would act on it written as its code
/// (`\u{1b}`).
pub fn printable(text: &str) -> Cow<'_, str> {
    replaced(text, |c| format!("\\u{{{:x}}}", c as u32))
}

/// A source's text for showing its lines: each character that would act on a terminal made
/// `?`s of its length in bytes, so that every span still falls where it did.
fn shown_source(text: &str) -> Cow<'_, str> {
    replaced(text, |c| "?".repeat(c.len_utf8()))
}

/// How many errors are shown, and how many diagnostics in all once warnings are counted in;
/// the rest are counted. A file of one mistake repeated thousands of times would otherwise print
/// megabytes. Errors are never hidden behind warnings: a warning is shown only while fewer than
/// this many diagnostics were.
pub const MAX_SHOWN: usize = 50;

/// The longest line shown in a snippet, in bytes; a label on a longer one is written as its
/// place and words, without the line (a file of one long line printed it whole per label).
const MAX_SHOWN_LINE: usize = 400;

/// The bytes of the line `loc` starts on; 0 for a place in no file, which codespan-reporting
/// then refuses without a panic, as before.
fn line_length(sources: &SourceMap, loc: crate::Loc) -> usize {
    let Some((_, file)) = sources.files().nth(loc.file.0) else { return 0 };
    let text = file.text.as_bytes();
    let at = loc.span.start.min(text.len());
    let start = text[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = text[at..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| at + i);
    end - start
}

fn convert(d: &Diagnostic, sources: &SourceMap) -> CsDiagnostic<usize> {
    let long = d.labels.iter().map(|l| line_length(sources, l.loc)).max().filter(|&n| n > MAX_SHOWN_LINE);
    let labels = match long {
        Some(_) => Vec::new(),
        None => d
            .labels
            .iter()
            .map(|l| {
                let style = if l.primary { LabelStyle::Primary } else { LabelStyle::Secondary };
                CsLabel::new(style, l.loc.file.0, l.loc.span.start..l.loc.span.end)
                    .with_message(printable(&l.message))
            })
            .collect(),
    };
    let mut notes: Vec<String> = Vec::new();
    if let Some(bytes) = long {
        for l in &d.labels {
            notes.push(format!("at {}: {}", printable(&sources.describe(l.loc)), printable(&l.message)));
        }
        notes.push(format!("the line is {bytes} bytes long, too long to show"));
    }
    notes.extend(d.notes.iter().map(|n| printable(n).into_owned()));
    if let Some(hint) = &d.hint {
        notes.push(format!("help: {}", printable(hint)));
    }
    let cs = if d.is_error() { CsDiagnostic::error() } else { CsDiagnostic::warning() };
    cs.with_code(d.code.as_str()).with_message(printable(&d.message)).with_labels(labels).with_notes(notes)
}

/// Renders diagnostics as rustc does, one after another.
pub fn render(diagnostics: &[Diagnostic], sources: &SourceMap, style: Style) -> String {
    let shown: Vec<(Cow<str>, Cow<str>)> =
        sources.files().map(|(_, f)| (printable(&f.name), shown_source(&f.text))).collect();
    let mut files = SimpleFiles::new();
    for (name, text) in &shown {
        files.add(name.as_ref(), text.as_ref());
    }
    let config = Config::default();
    let mut out = String::new();
    let (mut shown, mut errors, mut hidden_errors, mut hidden_warnings) = (0, 0, 0, 0);
    for d in diagnostics {
        match d.is_error() {
            true if errors < MAX_SHOWN => errors += 1,
            false if shown < MAX_SHOWN => {}
            true => {
                hidden_errors += 1;
                continue;
            }
            false => {
                hidden_warnings += 1;
                continue;
            }
        }
        shown += 1;
        let cs = convert(d, sources);
        let rendered = match style {
            Style::Plain => term::emit_into_string(&config, &files, &cs),
            Style::Color => {
                let styles = Styles::default();
                let mut ansi = Ansi::new(Vec::new());
                let result = term::emit_to_write_style(
                    &mut StylesWriter::new(&mut ansi, &styles),
                    &config,
                    &files,
                    &cs,
                );
                result.map(|()| String::from_utf8_lossy(&ansi.into_inner()).into_owned())
            }
        };
        // Spans are checked to lie in their files, so rendering cannot fail; if it did, the
        // message alone is still worth showing.
        out.push_str(&rendered.unwrap_or_else(|_| {
            let severity = if d.is_error() { "error" } else { "warning" };
            format!("{severity}[{}]: {}\n", d.code.as_str(), printable(&d.message))
        }));
    }
    let count = |n: usize, what: &str| match n {
        0 => None,
        1 => Some(format!("1 more {what}")),
        n => Some(format!("{n} more {what}s")),
    };
    let hidden: Vec<String> =
        [count(hidden_errors, "error"), count(hidden_warnings, "warning")].into_iter().flatten().collect();
    if !hidden.is_empty() {
        out.push_str(&format!("note: {} not shown\n\n", hidden.join(" and ")));
    }
    out
}

#[derive(Serialize)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<JsonLabel>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

#[derive(Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub start: usize,
    pub end: usize,
    pub message: String,
    pub primary: bool,
}

/// Diagnostics as data for tools, with 1-based lines and columns.
pub fn to_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> Vec<JsonDiagnostic> {
    diagnostics
        .iter()
        .map(|d| JsonDiagnostic {
            severity: d.severity,
            code: d.code.as_str(),
            message: d.message.clone(),
            labels: d
                .labels
                .iter()
                .map(|l| {
                    let file = sources.get(l.loc.file);
                    let (line, column) = file.line_col(l.loc.span.start);
                    JsonLabel {
                        file: file.name.clone(),
                        line,
                        column,
                        start: l.loc.span.start,
                        end: l.loc.span.end,
                        message: l.message.clone(),
                        primary: l.primary,
                    }
                })
                .collect(),
            notes: d.notes.clone(),
            hint: d.hint.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Options, Root};

    /// A file's escape sequences (`\x1b]0;…\x07` retitles a terminal, `\x1b[2J` clears it) reach
    /// neither the message, nor the source line shown, nor the table of a network labelled so.
    #[test]
    fn nothing_of_a_file_acts_on_the_terminal() {
        let text = "network t {\n    input [N, 4]\n    relu \x1b]0;pwned\x07\x1b[2J\n}\n";
        let c = compile(Root::Text { name: "t.net", text, dir: None }, &Options::default());
        let shown = render(&c.diagnostics, &c.sources, Style::Plain);
        assert!(shown.contains("found `\\u{1b}`") && shown.contains("relu ?]0;pwned??[2J"), "{shown}");
        assert!(!shown.contains(['\x1b', '\x07']), "{shown}");
        let text = "network t {\n    input [N, 4]\n    \"\x1b[2J\u{202e}\": linear(4)\n}\n";
        let c = compile(Root::Text { name: "t.net", text, dir: None }, &Options::default());
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        let table = crate::back::report::render_table(&crate::back::report::report(&c.graphs[0], None));
        assert!(table.contains("\\u{1b}[2J\\u{202e}") && !table.contains(['\x1b', '\u{202e}']), "{table}");
        // Tabs, line ends and any other text show as they are.
        assert_eq!(printable("a\tb\r\n→ é"), "a\tb\r\n→ é");
        // A carriage return alone sends the cursor back over the line: it is a code too.
        assert_eq!(printable("evil(4)\r  relu"), "evil(4)\\u{d}  relu");
        assert_eq!(shown_source("a\rb\r\n"), "a?b\r\n");
        assert_eq!(shown_source("x\u{2028}y").len(), "x\u{2028}y".len());
    }

    /// A file whose lines end in a lone `\r` (classic Mac OS) has the lines an editor shows: a
    /// comment ends at its line instead of hiding the rest of the file, and an error points at
    /// its line, with the source shown as in the same file with `\n`s.
    #[test]
    fn lone_carriage_returns_end_lines() {
        let lf = "# the model\nnetwork t {\n    input [N, 4]\n    linear(2) -> evil\n}\n";
        let shown = |text: &str| {
            let c = compile(Root::Text { name: "t.net", text, dir: None }, &Options::default());
            (c.graphs.len(), render(&c.diagnostics, &c.sources, Style::Plain))
        };
        let (graphs, errors) = shown(lf);
        assert!(graphs == 0 && errors.contains("t.net:4:18") && errors.contains("evil"), "{errors}");
        assert_eq!(shown(&lf.replace('\n', "\r")), (graphs, errors));
        let fixed = lf.replace(" -> evil", "").replace('\n', "\r");
        let (graphs, errors) = shown(&fixed);
        assert_eq!((graphs, errors.as_str()), (1, ""));
    }

    /// A file of one long line with a warning per statement: each shown without its line, and
    /// only the first `MAX_SHOWN` (1,000 statements printed 27 MB).
    #[test]
    fn long_lines_and_many_diagnostics_stay_short() {
        let statements: String = (0..1000).map(|i| format!("x{i} = in -> relu ")).collect();
        let text = format!("network t {{ input [N, 4] {statements}relu }}\n");
        let c = compile(Root::Text { name: "t.net", text: &text, dir: None }, &Options::default());
        assert!(c.diagnostics.len() >= 999, "{:?}", c.diagnostics.first());
        let shown = render(&c.diagnostics, &c.sources, Style::Plain);
        assert!(shown.len() < 20_000, "{} bytes", shown.len());
        let more = format!("note: {} more warnings not shown", c.diagnostics.len() - 50);
        assert!(shown.contains(&more), "{shown}");
        // An error after them all is shown all the same.
        let text = format!("{text}\nnetwork u {{\n    input [N, 4]\n    evil(4)\n}}\n");
        let c = compile(Root::Text { name: "t.net", text: &text, dir: None }, &Options::default());
        let shown = render(&c.diagnostics, &c.sources, Style::Plain);
        let end = &shown[shown.len() - 600..];
        assert!(shown.contains("error[E0102]: unknown layer or block `evil`"), "{end}");
        let more = format!("note: {} more warnings not shown", c.diagnostics.len() - 51);
        assert!(shown.contains(&more), "{end}");
        assert!(shown.contains("= at t.net:1:37: computed here, then used by nothing"), "{shown}");
        assert!(shown.contains("bytes long, too long to show"), "{shown}");
        // A label in no file (none should be) is the message alone, not a panic.
        let lost = Diagnostic::error(crate::Code::Value, "lost").primary(crate::Loc::NOWHERE, "nowhere");
        assert_eq!(render(&[lost], &c.sources, Style::Plain), "error[E0106]: lost\n");
    }
}
