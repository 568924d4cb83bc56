//! nnc's diagnostics as the protocol's: each at its primary label, in the file that label is
//! in (an imported file's URI for a mistake there), with its code (`E0202`), the primary
//! label's words, notes and hint in the message, and the secondary labels as related
//! information. A diagnostic without a place (a file that cannot be read) goes at the
//! document's start. A mistake inside a block of another file that a call in the document
//! made (wrong arguments to `std.resnet`'s block) is shown at that call too, the outermost one
//! in the document; an error of an imported file that no call led to (a syntax error there, an
//! import cycle) at the document's import that loaded it. So the document, not only a file the
//! editor may not have open, says something is wrong.

use std::collections::HashMap;

use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Position, Range,
    Uri,
};
use nnc_compiler::Severity;

use super::analysis::{Analysis, ROOT};

/// The diagnostics of an analysis by the URI of the file each is in; the document's own URI is
/// always there, with an empty list when it has none.
pub fn by_file(analysis: &Analysis) -> HashMap<Uri, Vec<Diagnostic>> {
    let mut out: HashMap<Uri, Vec<Diagnostic>> = HashMap::new();
    let root = analysis.sources[ROOT.0].uri.clone().expect("the document has its URI");
    out.insert(root.clone(), Vec::new());
    for d in &analysis.compilation.diagnostics {
        let primary = d.labels.iter().find(|l| l.primary);
        let place = primary.and_then(|l| analysis.location(l.loc));
        let (uri, range) = match place {
            Some(place) => (place.uri, place.range),
            None => (root.clone(), Range::new(Position::new(0, 0), Position::new(0, 0))),
        };
        let mut message = d.message.clone();
        if let Some(label) = primary.filter(|l| !l.message.is_empty()) {
            message += &format!("\n{}", label.message);
        }
        for note in &d.notes {
            message += &format!("\nnote: {note}");
        }
        if let Some(hint) = &d.hint {
            message += &format!("\nhelp: {hint}");
        }
        let related: Vec<DiagnosticRelatedInformation> = d
            .labels
            .iter()
            .filter(|l| primary.is_none_or(|p| !std::ptr::eq(*l, p)))
            .filter_map(|l| {
                let message = if l.message.is_empty() { d.message.clone() } else { l.message.clone() };
                Some(DiagnosticRelatedInformation { location: analysis.location(l.loc)?, message })
            })
            .collect();
        let severity = match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        };
        let diagnostic = Diagnostic {
            range,
            severity: Some(severity),
            code: Some(NumberOrString::String(d.code.as_str().to_string())),
            source: Some("nnc".to_string()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..Diagnostic::default()
        };
        // Where the document shows a mistake of another file: at the outermost call of the
        // document that led to it, else (an error alone) at the import that loaded the file.
        let call = d.labels.iter().rev().find(|l| !l.primary && l.loc.file == ROOT).map(|l| (l.loc, None));
        let import = || {
            let file = primary?.loc.file;
            let at = analysis.compilation.sources.import_in(ROOT, file)?;
            (d.severity == Severity::Error).then(|| (at, Some(analysis.file_name(file))))
        };
        if let (true, Some((loc, imported))) = (uri != root, call.or_else(import)) {
            let at = Location::new(uri.clone(), range);
            let mut here = diagnostic.clone();
            here.range = analysis.location(loc).map_or(here.range, |l| l.range);
            if let Some(file) = imported {
                here.message = format!("in `{file}`, which this imports: {}", here.message);
            }
            let mut related = vec![DiagnosticRelatedInformation { location: at, message: d.message.clone() }];
            related.extend(here.related_information.take().unwrap_or_default());
            here.related_information = Some(related);
            let list = out.entry(root.clone()).or_default();
            // The same mistake at several places of one call is one diagnostic there.
            let same = |d: &&mut Diagnostic| {
                d.range == here.range && d.message == here.message && d.code == here.code
            };
            match list.iter_mut().find(same) {
                Some(first) => {
                    let related = first.related_information.get_or_insert_with(Vec::new);
                    for info in here.related_information.unwrap_or_default() {
                        if !related.contains(&info) {
                            related.push(info);
                        }
                    }
                }
                None => list.push(here),
            }
        }
        out.entry(uri).or_default().push(diagnostic);
    }
    out
}
