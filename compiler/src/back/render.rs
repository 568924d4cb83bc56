//! Rendering diagnostics: rustc-style text (with or without colour) through
//! codespan-reporting, and JSON for tools.

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

fn files(sources: &SourceMap) -> SimpleFiles<&str, &str> {
    let mut files = SimpleFiles::new();
    for (_, file) in sources.files() {
        files.add(file.name.as_str(), file.text.as_str());
    }
    files
}

fn convert(d: &Diagnostic) -> CsDiagnostic<usize> {
    let labels = d
        .labels
        .iter()
        .map(|l| {
            let style = if l.primary { LabelStyle::Primary } else { LabelStyle::Secondary };
            CsLabel::new(style, l.loc.file.0, l.loc.span.start..l.loc.span.end).with_message(&l.message)
        })
        .collect();
    let mut notes = d.notes.clone();
    if let Some(hint) = &d.hint {
        notes.push(format!("help: {hint}"));
    }
    let cs = if d.is_error() { CsDiagnostic::error() } else { CsDiagnostic::warning() };
    cs.with_code(d.code.as_str()).with_message(&d.message).with_labels(labels).with_notes(notes)
}

/// Renders diagnostics as rustc does, one after another.
pub fn render(diagnostics: &[Diagnostic], sources: &SourceMap, style: Style) -> String {
    let files = files(sources);
    let config = Config::default();
    let mut out = String::new();
    for d in diagnostics {
        let cs = convert(d);
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
            format!("{severity}[{}]: {}\n", d.code.as_str(), d.message)
        }));
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
