//! Hovers: the tensor an expression or a name gives, going in and out (once per block instance
//! or iteration that gave a different one), with the parameters and multiply-adds of what it
//! made; on a layer's name, the layer's reference (`nnc layers NAME`); on a block's, its
//! signature, where it is defined and the comment above it.

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};
use nnc_compiler::back::report::thousands;
use nnc_compiler::{ops, FileId};
use nnc_grammar::ast::{Definition, ExprKind};
use nnc_grammar::Span;

use super::analysis::{Analysis, ROOT};
use super::syntax::{self, Visit};
use super::text::word_at;
use super::View;

/// How many different values a hover lists before it says how many more there are.
const SHOWN: usize = 6;

pub fn hover(own: &Analysis, views: &[View<'_>], offset: usize) -> Option<Hover> {
    let mut sections = Vec::new();
    let mut range = None;
    if let Some((analysis, file, span)) =
        views.iter().find_map(|&(a, file)| Some((a, file, a.covering(file, offset)?)))
    {
        sections.push(values(analysis, file, span));
        range = Some(span);
    }
    if let Some((word, span)) = word_at(own.text(ROOT), offset) {
        if let Some(section) = named(own, word, span) {
            sections.push(section);
            range = range.or(Some(span));
        }
    }
    if sections.is_empty() {
        return None;
    }
    let range = range.map(|span| own.sources[ROOT.0].lines.range(own.text(ROOT), span));
    let contents = MarkupContent { kind: MarkupKind::Markdown, value: sections.join("\n\n---\n\n") };
    Some(Hover { contents: HoverContents::Markup(contents), range })
}

/// What the expression at `span` gave: `[N, 64, 56, 56]` → `[N, 128, 28, 28]`, with the
/// totals of the layers it made, each different outcome once with how often it came.
fn values(analysis: &Analysis, file: FileId, span: Span) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (expansion, traced) in analysis.values_at(file, span) {
        let output = format!("`{}`", expansion.shape_text(traced.output));
        let mut line = match traced.input {
            Some(input) if !traced.made.is_empty() => format!("`{}` → {output}", expansion.shape_text(input)),
            _ => output,
        };
        let (params, macs) = expansion.totals(traced);
        // With free sizes, the multiply-adds depend on them.
        match expansion.free {
            Some(_) if params > 0 => line += &format!(" · {} parameters", thousands(params)),
            None if params > 0 || macs > 0 => {
                line += &format!(" · {} parameters · {} multiply-adds", thousands(params), thousands(macs))
            }
            _ => {}
        }
        match seen.iter_mut().find(|(l, _)| *l == line) {
            Some((_, count)) => *count += 1,
            None => seen.push((line, 1)),
        }
    }
    let mut lines: Vec<String> = seen
        .iter()
        .take(SHOWN)
        .map(|(line, count)| if *count > 1 { format!("{line} (×{count})") } else { line.clone() })
        .collect();
    if seen.len() > SHOWN {
        lines.push(format!("… and {} more", seen.len() - SHOWN));
    }
    lines.join("  \n")
}

/// The reference of the layer or block a name written at `span` calls or defines.
fn named(own: &Analysis, word: &str, span: Span) -> Option<String> {
    let ast = &own.sources[ROOT.0].ast;
    let defines = ast.definitions.iter().any(|d| d.name.span == span);
    let mut calls = false;
    for def in &ast.definitions {
        syntax::definition(def, &mut |v| {
            if let Visit::Expr(e) = v {
                calls |= match &e.kind {
                    ExprKind::Call { callee, .. } => callee.span == span,
                    ExprKind::Name(_) => e.span == span,
                    _ => false,
                };
            }
        });
    }
    if !defines && !calls {
        return None;
    }
    if let Some((file, def)) = own.block(word) {
        return Some(block(own, file, def));
    }
    let op = ops::lookup(word).filter(|_| calls)?;
    Some(format!("```text\n{}```", crate::layer_detail(op)))
}

fn block(own: &Analysis, file: FileId, def: &Definition) -> String {
    let text = own.text(file);
    let mut out = format!("```nnc\n{}\n```", def.signature(text));
    let doc = def.doc_comment(text);
    if !doc.is_empty() {
        out += &format!("\n\n{doc}");
    }
    out + &format!("\n\ndefined in `{}`", own.file_name(file))
}
