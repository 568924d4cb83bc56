//! Inlay hints: the shape each stage of a statement gives, at its end, so that a file reads
//! like its table. In a block, whose instances may give different shapes, each different one
//! is listed (three at most).

use lsp_types::{InlayHint, InlayHintKind, InlayHintLabel};
use nnc_grammar::ast::Stmt;
use nnc_grammar::Span;

use super::analysis::{Analysis, ROOT};
use super::syntax;
use super::View;

/// How many different shapes one hint lists.
const SHOWN: usize = 3;

/// The hints of the document's definitions that overlap the bytes `within`.
pub fn hints(own: &Analysis, views: &[View<'_>], within: Span) -> Vec<InlayHint> {
    let (text, source) = (own.text(ROOT), &own.sources[ROOT.0]);
    let mut out = Vec::new();
    let mut hint = |span: Span| {
        if span.end < within.start || span.end > within.end {
            return;
        }
        let mut shapes: Vec<String> = Vec::new();
        for &(analysis, file) in views {
            for (expansion, traced) in analysis.values_at(file, span) {
                let shape = expansion.shape_text(traced.output);
                if !shapes.contains(&shape) {
                    shapes.push(shape);
                }
            }
        }
        if shapes.is_empty() {
            return;
        }
        let mut label = shapes.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(" | ");
        if shapes.len() > SHOWN {
            label += " | …";
        }
        out.push(InlayHint {
            position: source.lines.position(text, span.end),
            label: InlayHintLabel::String(label),
            kind: Some(InlayHintKind::TYPE),
            text_edits: None,
            tooltip: None,
            padding_left: Some(true),
            padding_right: None,
            data: None,
        });
    };
    for def in &source.ast.definitions {
        if def.span.end < within.start || def.span.start > within.end {
            continue;
        }
        for stmt in &def.body {
            match stmt {
                Stmt::Input { span, .. } => hint(*span),
                Stmt::Bind { value, .. } | Stmt::Expr(value) => {
                    syntax::stages(value).into_iter().for_each(|stage| hint(stage.span))
                }
                Stmt::Destructure { names, .. } => names.iter().for_each(|name| hint(name.span)),
                Stmt::Param { .. }
                | Stmt::Output { .. }
                | Stmt::Shared { .. }
                | Stmt::Tie { .. }
                | Stmt::Where { .. } => {}
            }
        }
    }
    out
}
