//! Walks over a syntax tree, for the requests that look for names: every expression and every
//! statement, outermost first. The tree is as deep as the source's brackets, which the parser
//! bounds, so the recursion is too.

use nnc_grammar::ast::{Access, Definition, Expr, ExprKind, RepeatCount, Stmt, Subscript};

/// What the walk meets.
pub enum Visit<'a> {
    Stmt(&'a Stmt),
    Expr(&'a Expr),
}

pub fn definition<'a>(def: &'a Definition, f: &mut impl FnMut(Visit<'a>)) {
    for param in &def.params {
        if let Some(default) = &param.default {
            expr(default, f);
        }
    }
    body(&def.body, f);
}

pub fn body<'a>(stmts: &'a [Stmt], f: &mut impl FnMut(Visit<'a>)) {
    for s in stmts {
        stmt(s, f);
    }
}

fn stmt<'a>(s: &'a Stmt, f: &mut impl FnMut(Visit<'a>)) {
    f(Visit::Stmt(s));
    match s {
        Stmt::Input { dims, .. } => dims.iter().for_each(|d| expr(d, f)),
        Stmt::Param { dims, init, .. } => {
            dims.iter().for_each(|d| expr(d, f));
            expr(init, f);
        }
        Stmt::Output { .. } | Stmt::Tie { .. } => {}
        Stmt::Shared { value, .. }
        | Stmt::Bind { value, .. }
        | Stmt::Destructure { value, .. }
        | Stmt::Where { condition: value, .. } => expr(value, f),
        Stmt::Expr(e) => expr(e, f),
    }
}

pub fn expr<'a>(e: &'a Expr, f: &mut impl FnMut(Visit<'a>)) {
    f(Visit::Expr(e));
    match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Input
        | ExprKind::Flow => {}
        ExprKind::Tuple(items) => items.iter().for_each(|i| expr(i, f)),
        ExprKind::Chain(stages) => stages.iter().for_each(|s| expr(&s.expr, f)),
        ExprKind::Unary { operand, .. } => expr(operand, f),
        ExprKind::Binary { head, rest } => {
            expr(head, f);
            rest.iter().for_each(|(_, e)| expr(e, f));
        }
        ExprKind::Postfix { base, accesses } => {
            expr(base, f);
            for access in accesses {
                match access {
                    Access::Field(_) => {}
                    Access::Index(e) => expr(e, f),
                    Access::Slice { items, .. } => {
                        for item in items {
                            match item {
                                Subscript::Index(e) => expr(e, f),
                                Subscript::Range { start, end, step, .. } => {
                                    [start, end, step].into_iter().flatten().for_each(|e| expr(e, f))
                                }
                                Subscript::Ellipsis(_) => {}
                            }
                        }
                    }
                }
            }
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| expr(&a.value, f)),
        ExprKind::If { arms, otherwise } => {
            for (cond, body) in arms {
                expr(cond, f);
                expr(body, f);
            }
            if let Some(e) = otherwise {
                expr(e, f);
            }
        }
        ExprKind::Body(stmts) => body(stmts, f),
        ExprKind::Repeat { count, body, .. } => {
            match count {
                RepeatCount::Times(n) => expr(n, f),
                RepeatCount::Range(lo, hi) => {
                    expr(lo, f);
                    expr(hi, f);
                }
            }
            expr(body, f);
        }
    }
}

/// The stages of a statement's chain, or the expression as one stage.
pub fn stages(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Chain(stages) => stages.iter().map(|s| &s.expr).collect(),
        _ => vec![e],
    }
}

/// The span of a name where a block or function is used: a call's callee, or a bare name.
pub fn uses_of(def: &Definition, name: &str, out: &mut Vec<nnc_grammar::Span>) {
    definition(def, &mut |v| {
        if let Visit::Expr(e) = v {
            match &e.kind {
                ExprKind::Call { callee, .. } if callee.name == name => out.push(callee.span),
                ExprKind::Name(n) if n == name => out.push(e.span),
                _ => {}
            }
        }
    });
}
