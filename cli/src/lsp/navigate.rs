//! Going to definitions (blocks and functions, across files and into the standard library's
//! cached copies; imports; the names a body binds), finding a block's uses, and the
//! document's outline.

use lsp_types::{DocumentSymbol, Location, Position, Range, SymbolKind};
use nnc_compiler::{FileId, Loc};
use nnc_grammar::ast::{DefKind, ExprKind, ImportTarget, Stmt};
use nnc_grammar::Span;

use super::analysis::{Analysis, ROOT};
use super::syntax::{self, Visit};
use super::text::word_at;
use super::uri;
use super::View;

pub fn definition(own: &Analysis, offset: usize) -> Option<Location> {
    let source = &own.sources[ROOT.0];
    if let Some(import) = source.ast.imports.iter().find(|i| i.span.start <= offset && offset <= i.span.end) {
        let path = match &import.target {
            ImportTarget::Std(module) => uri::std_path(module)?,
            ImportTarget::File(rel) => {
                let dir = uri::to_path(source.uri.as_ref()?)?.parent()?.to_path_buf();
                std::fs::canonicalize(dir.join(rel)).ok()?
            }
        };
        return Some(Location::new(uri::from_path(&path)?, Range::default()));
    }
    let (word, _) = word_at(own.text(ROOT), offset)?;
    if let Some((file, def)) = own.block(word) {
        return own.location(Loc::new(file, def.name.span));
    }
    let span = binding(own, word, offset)?;
    own.location(Loc::new(ROOT, span))
}

/// Where `name`, read at `offset`, is bound: a parameter, a bound or declared name, an input's, a
/// repeat's index. A braced body (a repeat's, an `if` arm's) is a scope of its own, and a
/// repeat's index is seen in the repeat alone: the binding taken is the one of the innermost
/// scope around `offset`, the first made there before it (a second is an error, and the compiler
/// keeps the first), and not one whose own value `offset` reads in (`y = y -> relu` reads an
/// earlier `y`).
fn binding(own: &Analysis, name: &str, offset: usize) -> Option<Span> {
    let def = own.sources[ROOT.0]
        .ast
        .definitions
        .iter()
        .find(|d| d.span.start <= offset && offset <= d.span.end)?;
    let within = |span: Span| span.start <= offset && offset <= span.end;
    // The bodies first, to know each binding's scope; then the bindings.
    let mut bodies = vec![def.span];
    syntax::definition(def, &mut |v| {
        if let Visit::Expr(e) = v {
            if let ExprKind::Body(_) = e.kind {
                bodies.push(e.span);
            }
        }
    });
    let scope_of = |at: Span| {
        let around = bodies.iter().filter(|b| b.start <= at.start && at.end <= b.end);
        around.min_by_key(|b| b.end - b.start).copied().unwrap_or(def.span)
    };
    // (scope, where the name is bound), of each binding of `name` seen from `offset`.
    let mut seen: Vec<(Span, Span)> =
        def.params.iter().filter(|p| p.name.name == name).map(|p| (def.span, p.name.span)).collect();
    syntax::definition(def, &mut |v| {
        // A statement's names are bound once its value is computed: not inside that value.
        let statement = match v {
            Visit::Stmt(stmt) => Some(stmt.span()),
            Visit::Expr(_) => None,
        };
        let (names, scope): (Vec<&nnc_grammar::ast::Ident>, Option<Span>) = match v {
            Visit::Stmt(Stmt::Bind { name, .. } | Stmt::Param { name, .. } | Stmt::Shared { name, .. }) => {
                (vec![name], None)
            }
            Visit::Stmt(Stmt::Input { name: Some(name), .. }) => (vec![name], None),
            // A `_` there discards a piece: it binds no name, and is not the flow's `_`.
            Visit::Stmt(Stmt::Destructure { names, .. }) => {
                (names.iter().filter(|n| n.name != "_").collect(), None)
            }
            Visit::Expr(e) => match &e.kind {
                ExprKind::Repeat { index: Some(index), .. } => (vec![index], Some(e.span)),
                _ => (vec![], None),
            },
            Visit::Stmt(_) => (vec![], None),
        };
        let reading_its_value =
            |n: &nnc_grammar::ast::Ident| statement.is_some_and(|s| n.span.end < offset && offset <= s.end);
        for n in
            names.into_iter().filter(|n| n.name == name && n.span.start <= offset && !reading_its_value(n))
        {
            let scope = scope.unwrap_or_else(|| scope_of(n.span));
            if within(scope) {
                seen.push((scope, n.span));
            }
        }
    });
    // The innermost scope; in it, the first binding.
    seen.into_iter().min_by_key(|(scope, at)| (scope.end - scope.start, at.start)).map(|(_, at)| at)
}

/// Every use of the block or function named at `offset`, in each analysis's files, and its
/// definition if asked; each place once.
pub fn references(own: &Analysis, views: &[View<'_>], offset: usize, declaration: bool) -> Vec<Location> {
    let Some((word, _)) = word_at(own.text(ROOT), offset) else {
        return Vec::new();
    };
    let Some((file, def)) = own.block(word) else {
        return Vec::new();
    };
    let mut out: Vec<Location> = Vec::new();
    if declaration {
        out.extend(own.location(Loc::new(file, def.name.span)));
    }
    let analyses = std::iter::once(own).chain(views.iter().map(|&(a, _)| a));
    for analysis in analyses {
        for (i, source) in analysis.sources.iter().enumerate() {
            let mut spans = Vec::new();
            for def in &source.ast.definitions {
                syntax::uses_of(def, word, &mut spans);
            }
            for span in spans {
                if let Some(location) = analysis.location(Loc::new(FileId(i), span)) {
                    if !out.contains(&location) {
                        out.push(location);
                    }
                }
            }
        }
    }
    out
}

/// The outline: each network, block and function, with its statements (the names they bind,
/// the inputs, the unbound ones by their first stage), each with the shape it gives.
#[allow(deprecated)] // `DocumentSymbol::deprecated`, which the protocol keeps for old clients.
pub fn symbols(own: &Analysis) -> Vec<DocumentSymbol> {
    let (text, source) = (own.text(ROOT), &own.sources[ROOT.0]);
    let range = |span: Span| source.lines.range(text, span);
    let shape = |span: Span| {
        let mut shapes: Vec<String> = Vec::new();
        for (expansion, traced) in own.values_at(ROOT, span) {
            let shape = expansion.shape_text(traced.output);
            if !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
        (!shapes.is_empty()).then(|| shapes.join(" | "))
    };
    let symbol =
        |name: String, detail: Option<String>, kind, span: Span, selection: Span, children| DocumentSymbol {
            name,
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: range(span),
            selection_range: range(selection),
            children,
        };
    let mut out = Vec::new();
    for def in &source.ast.definitions {
        let mut children = Vec::new();
        for stmt in &def.body {
            let span = stmt.span();
            let (names, kind): (Vec<(String, Span)>, _) = match stmt {
                Stmt::Bind { name, .. } | Stmt::Shared { name, .. } => {
                    (vec![(name.name.clone(), name.span)], SymbolKind::VARIABLE)
                }
                Stmt::Param { name, .. } => (vec![(name.name.clone(), name.span)], SymbolKind::FIELD),
                Stmt::Destructure { names, .. } => (
                    names.iter().filter(|n| n.name != "_").map(|n| (n.name.clone(), n.span)).collect(),
                    SymbolKind::VARIABLE,
                ),
                Stmt::Input { name, .. } => {
                    let shown = name.as_ref().map_or("input".to_string(), |n| format!("input {}", n.name));
                    (vec![(shown, span)], SymbolKind::VARIABLE)
                }
                Stmt::Expr(e) => {
                    let first = syntax::stages(e)[0];
                    let mut shown: String =
                        text.get(first.span.start..first.span.end).unwrap_or("").to_string();
                    if shown.chars().count() > 40 || shown.contains('\n') {
                        shown = shown.lines().next().unwrap_or("").chars().take(40).collect::<String>() + "…";
                    }
                    if syntax::stages(e).len() > 1 {
                        shown += " -> …";
                    }
                    (vec![(shown, first.span)], SymbolKind::OBJECT)
                }
                Stmt::Output { .. } | Stmt::Tie { .. } | Stmt::Where { .. } => continue,
            };
            for (name, selection) in names {
                let detail = match stmt {
                    Stmt::Expr(e) => shape(e.span).or_else(|| shape(syntax::stages(e).last()?.span)),
                    _ => shape(selection),
                };
                children.push(symbol(name, detail, kind, span, selection, None));
            }
        }
        let kind = match def.kind {
            DefKind::Network => SymbolKind::MODULE,
            DefKind::Block => SymbolKind::CLASS,
            DefKind::Function => SymbolKind::FUNCTION,
        };
        let detail = Some(def.signature(text));
        out.push(symbol(def.name.name.clone(), detail, kind, def.span, def.name.span, Some(children)));
    }
    out
}

/// The whole of a text, as one range (for a formatting edit).
pub fn whole(own: &Analysis) -> Range {
    let text = own.text(ROOT);
    Range::new(Position::new(0, 0), own.sources[ROOT.0].lines.position(text, text.len()))
}
