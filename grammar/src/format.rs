//! The canonical layout of a `.net` file, which `nnc fmt` writes.
//!
//! The text is printed again from its syntax tree, with the comments, which the tree has not,
//! taken from the source: a comment on the line of a statement stays at its end, any other
//! keeps a line of its own before what follows it. The layout:
//!
//! - four spaces per level of nesting; one statement per line; one blank line at most between
//!   statements, and one between top-level items (imports may stay together);
//! - spaces around `->`, `=` and the binary operators, after commas and labels' colons, none
//!   inside brackets; keyword arguments (`padding=1`) and slices (`x[:, 1:]`) without spaces;
//! - a chain longer than [`WIDTH`] is broken before a `->`, which leads its line, one level
//!   deeper than the line the chain starts on (an arithmetic expression before an operator, the
//!   same way); an argument list (or tuple, or list of sizes)
//!   longer than that is broken after a comma, the same way (definitions' parameters two levels,
//!   so that they stand apart from the body).
//!
//! The author's own line breaks between stages and between arguments are kept, as are the
//! braced bodies written over several lines and the brackets written around an expression;
//! brackets are added only where the meaning needs them. Everything the layout decides depends
//! on the tree, on those kept breaks and on the width, so formatting a formatted file changes
//! nothing. Before returning, the result is parsed again: a layout whose tree differs from the
//! original's (spans aside), or that lost a comment, is refused as [`FormatError::Internal`]
//! rather than returned.

use std::collections::HashMap;

use crate::ast::*;
use crate::parser::{parse_file, SyntaxError};

/// The width lines are kept within where a break is allowed (the width of the Rust code).
pub const WIDTH: usize = 110;
/// Spaces per level of nesting.
pub const INDENT: usize = 4;

/// Why a file was not formatted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not parse; it is left as it is.
    Syntax(Vec<SyntaxError>),
    /// The layout would have changed the file's syntax tree or lost a comment: a bug of the
    /// formatter, reported instead of written.
    Internal(String),
}

/// The canonical layout of `src`, its lines ended as its first line is (`\r\n`, `\n` or a lone
/// `\r`, as rustfmt's `newline_style = "Auto"`), so that a file kept in CRLF stays so. Never
/// panics.
pub fn format(src: &str) -> Result<String, FormatError> {
    let line_end = match src.find(['\r', '\n']).map(|i| &src[i..]) {
        Some(end) if end.starts_with("\r\n") => "\r\n",
        Some(end) if end.starts_with('\r') => "\r",
        _ => "\n",
    };
    let src = &crate::unify_line_ends(src);
    let (file, errors) = parse_file(src);
    if !errors.is_empty() {
        return Err(FormatError::Syntax(errors));
    }
    let out = stacker::grow(16 << 20, || Printer::new(src).file(&file));
    verify(src, &file, &out)?;
    Ok(if line_end == "\n" { out } else { out.replace('\n', line_end) })
}

/// The formatted text must mean what the source meant: the same tree, spans aside, and the
/// same comments in the same order.
fn verify(src: &str, file: &File, out: &str) -> Result<(), FormatError> {
    let (again, errors) = parse_file(out);
    if let Some(e) = errors.first() {
        return Err(FormatError::Internal(format!("the formatted text does not parse: {}", e.message)));
    }
    let same = stacker::grow(16 << 20, || {
        without_spans(&format!("{file:?}")) == without_spans(&format!("{again:?}"))
    });
    if !same {
        return Err(FormatError::Internal("the formatted text would have a different syntax tree".into()));
    }
    let texts = |text: &str| -> Vec<String> {
        let lexed = Lexed::new(text);
        lexed.comments.iter().map(|&(s, e)| text[s..e].trim_end().to_string()).collect()
    };
    if texts(src) != texts(out) {
        return Err(FormatError::Internal("the formatted text would lose or move a comment".into()));
    }
    Ok(())
}

/// A tree's `Debug` text with every `Span { start: .., end: .. }` removed.
fn without_spans(debug: &str) -> String {
    const OPEN: &str = "Span { start: ";
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = rest.find('}').map_or("", |close| &rest[close + 1..]);
    }
    out.push_str(rest);
    out
}

/// What the printer needs of the source beyond the tree: where its comments are, and which
/// `(` closes at which `)`.
struct Lexed {
    /// Each comment's byte range, from `#` to the end of its line (without the line break).
    comments: Vec<(usize, usize)>,
    /// The offset of the `)` matching each `(`.
    closes: HashMap<usize, usize>,
}

impl Lexed {
    fn new(src: &str) -> Lexed {
        let mut comments = Vec::new();
        let mut closes = HashMap::new();
        let mut open = Vec::new();
        let mut chars = src.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '#' => {
                    let mut end = src.len();
                    while let Some(&(i, c)) = chars.peek() {
                        if c == '\n' {
                            end = i;
                            break;
                        }
                        chars.next();
                    }
                    comments.push((at, end));
                }
                '"' => {
                    for (_, c) in chars.by_ref() {
                        if c == '"' || c == '\n' {
                            break;
                        }
                    }
                }
                '(' => open.push(at),
                ')' => {
                    if let Some(start) = open.pop() {
                        closes.insert(start, at);
                    }
                }
                _ => {}
            }
        }
        Lexed { comments, closes }
    }
}

/// Where an expression stands, which decides whether it needs brackets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prec {
    /// Anywhere an `expr` may stand: a statement, an argument, a tuple's item, a condition.
    Any,
    /// A chain's stage or a slice's part: a disjunction, so a chain needs brackets.
    Stage,
    /// A bound of `repeat i in lo..hi`: a sum.
    Sum,
    /// An operand of a binary operator of this level (see [`level`]).
    Binary(u8),
    /// The operand of `-` or `not`.
    Unary,
    /// What `.field` or `[index]` follows.
    Postfix,
}

/// How tightly a binary operator binds: `or`, `and`, comparisons, sums, products.
fn level(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 0,
        BinaryOp::And => 1,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 2,
        BinaryOp::Add | BinaryOp::Sub => 3,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::FloorDiv | BinaryOp::Rem => 4,
    }
}

fn binary_level(rest: &[(BinaryOp, Expr)]) -> u8 {
    rest.first().map_or(0, |(op, _)| level(*op))
}

/// Whether `gap` (text between two tokens) holds an empty line.
fn blank_in(gap: &str) -> bool {
    let lines: Vec<&str> = gap.split('\n').collect();
    lines.len() > 2 && lines[1..lines.len() - 1].iter().any(|l| l.trim().is_empty())
}

fn elem_type(t: ElemType) -> &'static str {
    match t {
        ElemType::Float => "float",
        ElemType::Int => "int",
        ElemType::Bool => "bool",
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// The width of the first line of a flat rendering (see [`Printer::flat`]).
fn first_width(text: &str) -> usize {
    width(text.split('\n').next().unwrap_or(""))
}

/// How many layout trials may nest (see [`Printer::chain`]): each may print its content twice.
const MAX_TRIALS: usize = 6;

/// The printer's state, to print something again another way.
struct Mark {
    len: usize,
    line: usize,
    pending: Option<usize>,
    fresh: bool,
    blank_due: bool,
    last: usize,
    next: usize,
}

/// One element of a bracketed list.
#[derive(Clone, Copy)]
enum Item<'a> {
    Expr(&'a Expr),
    Arg(&'a Arg),
    Param(&'a Param),
}

impl Item<'_> {
    fn start(&self) -> usize {
        match self {
            Item::Expr(e) => e.span.start,
            Item::Arg(a) => a.name.as_ref().map_or(a.value.span.start, |n| n.span.start),
            Item::Param(p) => p.name.span.start,
        }
    }

    fn end(&self) -> usize {
        match self {
            Item::Expr(e) => e.span.end,
            Item::Arg(a) => a.value.span.end,
            Item::Param(p) => p.default.as_ref().map_or(p.name.span.end, |d| d.span.end),
        }
    }
}

/// A bracketed list: its brackets, where they are in the source, and how deep its lines hang.
struct List<'a> {
    open: &'static str,
    close: &'static str,
    items: Vec<Item<'a>>,
    /// Where the search for the opening bracket starts in the source.
    from: usize,
    /// The extra indentation of its continuation lines.
    hang: usize,
    /// A tuple of one item, which keeps its comma: `(a,)`.
    one_tuple: bool,
}

fn stage_start(s: &Stage) -> usize {
    s.label.as_ref().map_or(s.expr.span.start, |l| l.span.start)
}

enum TopItem<'a> {
    Import(&'a Import),
    Definition(&'a Definition),
}

struct Printer<'s> {
    src: &'s str,
    lexed: Lexed,
    /// The next comment to print.
    next: usize,
    out: String,
    /// The width of the current line so far.
    line: usize,
    /// At the start of a line: the indentation it will have, written with its first text.
    pending: Option<usize>,
    /// Just after an opening brace: no blank line may follow.
    fresh: bool,
    /// A blank line is due before the next line of its own (between top-level items).
    blank_due: bool,
    /// The end of the last source text printed.
    last: usize,
    /// How many layout trials enclose what is being printed.
    trials: usize,
}

impl<'s> Printer<'s> {
    fn new(src: &'s str) -> Self {
        Printer {
            src,
            lexed: Lexed::new(src),
            next: 0,
            out: String::with_capacity(src.len() + src.len() / 8),
            line: 0,
            pending: Some(0),
            fresh: true,
            blank_due: false,
            last: 0,
            trials: 0,
        }
    }

    // ---- writing ---------------------------------------------------------------------------

    fn text(&mut self, text: &str) {
        let mut text = text;
        if let Some(indent) = self.pending.take() {
            text = text.trim_start_matches(' ');
            self.out.extend(std::iter::repeat_n(' ', indent));
            self.line = indent;
        }
        self.out.push_str(text);
        self.line += width(text);
        self.fresh = false;
    }

    fn newline(&mut self, indent: usize) {
        if self.pending.is_none() {
            self.out.push('\n');
            self.line = 0;
        }
        self.pending = Some(indent);
    }

    fn blank_line(&mut self) {
        if self.pending.is_some() && !self.fresh && self.out.ends_with('\n') && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            line: self.line,
            pending: self.pending,
            fresh: self.fresh,
            blank_due: self.blank_due,
            last: self.last,
            next: self.next,
        }
    }

    fn reset(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.line = mark.line;
        self.pending = mark.pending;
        self.fresh = mark.fresh;
        self.blank_due = mark.blank_due;
        self.last = mark.last;
        self.next = mark.next;
    }

    fn col(&self) -> usize {
        self.pending.unwrap_or(self.line)
    }

    fn gap(&self, from: usize, to: usize) -> &'s str {
        self.src.get(from.min(to)..to).unwrap_or("")
    }

    fn newline_between(&self, from: usize, to: usize) -> bool {
        self.gap(from, to).contains('\n')
    }

    fn seen(&mut self, end: usize) {
        self.last = self.last.max(end);
    }

    /// Prints the comments that start before `pos`: one on the line of the text before it
    /// stays at that line's end; any other gets a line of its own at `indent`.
    fn comments(&mut self, pos: usize, indent: usize) {
        while let Some(&(start, end)) = self.lexed.comments.get(self.next) {
            if start >= pos {
                break;
            }
            self.next += 1;
            let gap = self.gap(self.last, start);
            if self.pending.is_none() && !self.own_line(start) {
                self.text("  ");
            } else {
                self.newline(indent);
                let due = std::mem::take(&mut self.blank_due);
                if blank_in(gap) || due {
                    self.blank_line();
                }
            }
            let text = self.src.get(start..end).unwrap_or("#").trim_end();
            self.text(text);
            self.newline(indent);
            self.seen(end);
        }
    }

    /// Whether the comment at `start` has a line of its own in the source (else it ends the line
    /// of the text before it, and is printed at the end of a line, wherever that text went).
    fn own_line(&self, start: usize) -> bool {
        let before = self.src.get(..start).unwrap_or("").trim_end_matches([' ', '\t', '\r']);
        before.is_empty() || before.ends_with('\n')
    }

    /// The comment that ends the current line, if one starts before `pos`.
    fn trailing(&mut self, pos: usize, indent: usize) {
        if let Some(&(start, _)) = self.lexed.comments.get(self.next) {
            if start < pos && self.pending.is_none() && !self.own_line(start) {
                self.comments(start + 1, indent);
            }
        }
    }

    /// The position of the last `ch` in `from..to`, outside comments; `from` if none.
    fn last_char(&self, from: usize, to: usize, ch: char) -> usize {
        let mut found = from;
        let mut in_comment = false;
        for (i, c) in self.gap(from, to).char_indices() {
            match c {
                '#' => in_comment = true,
                '\n' => in_comment = false,
                c if c == ch && !in_comment => found = from + i,
                _ => {}
            }
        }
        found
    }

    /// The position of the first `ch` at or after `from`, outside comments.
    fn next_char(&self, from: usize, ch: char) -> usize {
        let mut in_comment = false;
        for (i, c) in self.gap(from, self.src.len()).char_indices() {
            match c {
                '#' => in_comment = true,
                '\n' => in_comment = false,
                c if c == ch && !in_comment => return from + i,
                _ => {}
            }
        }
        self.src.len()
    }

    // ---- decisions -------------------------------------------------------------------------

    /// Brackets the author wrote around the whole expression (a tuple's own are not these).
    fn grouped(&self, e: &Expr) -> bool {
        !matches!(e.kind, ExprKind::Tuple(_))
            && e.span.end > e.span.start
            && self.lexed.closes.get(&e.span.start) == Some(&(e.span.end - 1))
    }

    fn needs_brackets(&self, e: &Expr, prec: Prec) -> bool {
        if self.grouped(e) {
            return true;
        }
        match (&e.kind, prec) {
            (ExprKind::Chain(_), Prec::Any) => false,
            (ExprKind::Chain(_), _) => true,
            (ExprKind::Binary { rest, .. }, Prec::Sum) => binary_level(rest) < 3,
            (ExprKind::Binary { rest, .. }, Prec::Binary(outer)) => binary_level(rest) <= outer,
            (ExprKind::Binary { .. } | ExprKind::Unary { .. }, Prec::Unary | Prec::Postfix) => true,
            (ExprKind::Postfix { .. }, Prec::Postfix) => true,
            (ExprKind::Int(v), Prec::Unary | Prec::Postfix) => *v < 0,
            _ => false,
        }
    }

    /// A braced body of one expression is laid over several lines when its author did so
    /// (a line break after its `{`); a body of several statements always is.
    fn multiline(&self, after: usize, body: &Expr) -> bool {
        match &body.kind {
            ExprKind::Body(_) => !self.grouped(body),
            _ => {
                let open = self.last_char(after, body.span.start, '{');
                self.newline_between(open, body.span.start)
            }
        }
    }

    /// A list the author opened with a line break: one item per line or more, a comma after
    /// the last, its closing bracket on a line of its own.
    fn list_opener(&self, list: &List) -> (usize, bool) {
        match list.items.first() {
            Some(first) => {
                let open = self.last_char(list.from, first.start(), list.open.chars().next().unwrap_or('('));
                (open, self.newline_between(open, first.start()))
            }
            None => (list.from, false),
        }
    }

    /// The text of a literal: as written where the value agrees (`1_000`, `1e-5`), else its
    /// value.
    fn literal(&self, e: &Expr) -> String {
        let mut text = self.gap(e.span.start, e.span.end).trim();
        let mut at = e.span.start
            + (self.gap(e.span.start, e.span.end).len()
                - self.gap(e.span.start, e.span.end).trim_start().len());
        while text.starts_with('(')
            && text.ends_with(')')
            && self.lexed.closes.get(&at) == Some(&(at + text.len() - 1))
        {
            let inner = &text[1..text.len() - 1];
            at += 1 + (inner.len() - inner.trim_start().len());
            text = inner.trim();
        }
        let clean = !text.contains('#');
        match &e.kind {
            ExprKind::Int(v) => {
                let digits: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '_').collect();
                let plain: String = digits.chars().filter(|c| *c != '_').collect();
                let digits = if clean && plain.parse::<u64>().ok() == Some(v.unsigned_abs()) {
                    digits
                } else {
                    v.unsigned_abs().to_string()
                };
                if *v < 0 {
                    format!("-{digits}")
                } else {
                    digits
                }
            }
            ExprKind::Float(v) => {
                let shaped = text.starts_with(|c: char| c.is_ascii_digit())
                    && text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
                match text.parse::<f64>() {
                    Ok(parsed) if clean && shaped && parsed.to_bits() == v.to_bits() => text.to_string(),
                    _ => format!("{v:?}"),
                }
            }
            ExprKind::Str(s) => {
                if clean
                    && text.len() >= 2
                    && text.starts_with('"')
                    && text.ends_with('"')
                    && &text[1..text.len() - 1] == s
                {
                    text.to_string()
                } else {
                    format!("\"{s}\"")
                }
            }
            ExprKind::Bool(b) => b.to_string(),
            _ => String::new(),
        }
    }

    fn label(&self, l: &Label) -> String {
        let quoted = self.gap(l.span.start, l.span.end).starts_with('"');
        let mut text = String::new();
        for part in &l.parts {
            match part {
                LabelPart::Text(t) => text.push_str(t),
                LabelPart::Value(name) => {
                    text.push('{');
                    text.push_str(&name.name);
                    text.push('}');
                }
            }
        }
        if quoted {
            format!("\"{text}\":")
        } else {
            format!("{text}:")
        }
    }

    // ---- the text an expression would take on one line --------------------------------------
    //
    // With a line break (`\n`) wherever one is kept whatever the width: where the author broke
    // a chain, a list, an `if` before `else`, or opened a body or list with one. Its first line
    // is what decides whether something fits. Comments do not count. Formatting adds line
    // breaks only where something would not fit, and keeps them the next time, so a second
    // formatting finds every first line as short or shorter, and decides the same.

    fn flat(&self, e: &Expr, prec: Prec) -> String {
        let inner = self.flat_kind(e);
        if self.needs_brackets(e, prec) {
            format!("({inner})")
        } else {
            inner
        }
    }

    fn flat_kind(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => self.literal(e),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Input => "in".into(),
            ExprKind::Flow => "_".into(),
            ExprKind::Tuple(items) => {
                let list = self.tuple_list(e, items);
                self.flat_list(&list)
            }
            ExprKind::Chain(stages) => {
                let mut text = String::new();
                for (i, stage) in stages.iter().enumerate() {
                    if i > 0 {
                        let kept = self.newline_between(stages[i - 1].expr.span.end, stage_start(stage));
                        text.push_str(if kept { "\n-> " } else { " -> " });
                    }
                    text.push_str(&self.flat_stage(stage));
                }
                text
            }
            ExprKind::Unary { ops, operand } => {
                let mut text: String = ops
                    .iter()
                    .map(|op| match op {
                        UnaryOp::Neg => "-",
                        UnaryOp::Not => "not ",
                    })
                    .collect();
                text.push_str(&self.flat(operand, Prec::Unary));
                text
            }
            ExprKind::Binary { head, rest } => {
                let prec = Prec::Binary(binary_level(rest));
                let mut text = self.flat(head, prec);
                let mut before = head.span.end;
                for (op, operand) in rest {
                    let kept = self.newline_between(before, operand.span.start);
                    text.push_str(&format!(
                        "{}{op} {}",
                        if kept { "\n" } else { " " },
                        self.flat(operand, prec)
                    ));
                    before = operand.span.end;
                }
                text
            }
            ExprKind::Postfix { base, accesses } => {
                let mut text = self.flat(base, Prec::Postfix);
                for access in accesses {
                    text.push_str(&self.flat_access(access));
                }
                text
            }
            ExprKind::Call { callee, args } => {
                let list = self.call_list(callee, args);
                format!("{}{}", callee.name, self.flat_list(&list))
            }
            ExprKind::If { arms, otherwise } => {
                let mut text = String::new();
                for (i, (cond, body)) in arms.iter().enumerate() {
                    if i > 0 {
                        text.push_str(self.else_gap(&arms[i - 1].1, cond.span.start));
                    }
                    text.push_str(&format!(
                        "if {} {}",
                        self.flat(cond, Prec::Any),
                        self.flat_braced(cond.span.end, body)
                    ));
                }
                if let (Some(body), Some((_, last))) = (otherwise, arms.last()) {
                    text.push_str(self.else_gap(last, body.span.start));
                    text.push_str(&self.flat_braced(last.span.end, body));
                }
                text
            }
            ExprKind::Body(_) => "{\n}".into(),
            ExprKind::Repeat { index, count, body } => {
                let (head, after) = match count {
                    RepeatCount::Times(n) => (self.flat(n, Prec::Any), n.span.end),
                    RepeatCount::Range(lo, hi) => {
                        let index = index.as_ref().map_or("", |i| i.name.as_str());
                        (
                            format!("{index} in {}..{}", self.flat(lo, Prec::Sum), self.flat(hi, Prec::Sum)),
                            hi.span.end,
                        )
                    }
                };
                format!("repeat {head} {}", self.flat_braced(after, body))
            }
        }
    }

    fn flat_braced(&self, after: usize, body: &Expr) -> String {
        if self.multiline(after, body) {
            "{\n}".into()
        } else {
            format!("{{ {} }}", self.flat(body, Prec::Any))
        }
    }

    fn flat_stage(&self, s: &Stage) -> String {
        let label = s.label.as_ref().map(|l| self.label(l) + " ").unwrap_or_default();
        label + &self.flat(&s.expr, Prec::Stage)
    }

    fn flat_access(&self, access: &Access) -> String {
        match access {
            Access::Field(name) => format!(".{}", name.name),
            Access::Index(e) => format!("[{}]", self.flat(e, Prec::Any)),
            Access::Slice { items, .. } => {
                let parts: Vec<String> = items.iter().map(|s| self.subscript(s)).collect();
                let comma =
                    if items.len() == 1 && matches!(items[0], Subscript::Index(_)) { "," } else { "" };
                format!("[{}{comma}]", parts.join(", "))
            }
        }
    }

    fn subscript(&self, s: &Subscript) -> String {
        match s {
            Subscript::Index(e) => self.flat(e, Prec::Stage),
            Subscript::Range { start, end, step, .. } => {
                let part =
                    |e: &Option<Expr>| e.as_ref().map(|e| self.flat(e, Prec::Stage)).unwrap_or_default();
                let mut text = format!("{}:{}", part(start), part(end));
                if step.is_some() {
                    text.push(':');
                    text.push_str(&part(step));
                }
                text
            }
            Subscript::Ellipsis(_) => "...".into(),
        }
    }

    fn flat_item(&self, item: Item) -> String {
        match item {
            Item::Expr(e) => self.flat(e, Prec::Any),
            Item::Arg(a) => match &a.name {
                Some(name) => format!("{}={}", name.name, self.flat(&a.value, Prec::Any)),
                None => self.flat(&a.value, Prec::Any),
            },
            Item::Param(p) => match &p.default {
                Some(d) => format!("{} = {}", p.name.name, self.flat(d, Prec::Any)),
                None => p.name.name.clone(),
            },
        }
    }

    fn flat_list(&self, list: &List) -> String {
        if self.list_opener(list).1 {
            return format!("{}\n{}", list.open, list.close);
        }
        let mut text = list.open.to_string();
        for (i, item) in list.items.iter().enumerate() {
            if i > 0 {
                let kept = self.newline_between(list.items[i - 1].end(), item.start());
                text.push_str(if kept { ",\n" } else { ", " });
            }
            text.push_str(&self.flat_item(*item));
        }
        if list.one_tuple {
            text.push(',');
        }
        text.push_str(list.close);
        text
    }

    /// Where the `}` that closes a braced body is.
    fn body_close(&self, body: &Expr) -> usize {
        match body.kind {
            ExprKind::Body(_) if !self.grouped(body) => body.span.end.saturating_sub(1),
            _ => self.next_char(body.span.end, '}'),
        }
    }

    /// Whether the author put the `else` after `body` on a line of its own.
    fn else_kept(&self, body: &Expr, next: usize) -> bool {
        let close = self.body_close(body);
        let gap = self.gap(close, next);
        gap.find("else").is_some_and(|at| gap[..at].contains('\n'))
    }

    fn else_gap(&self, body: &Expr, next: usize) -> &'static str {
        if self.else_kept(body, next) {
            "\nelse "
        } else {
            " else "
        }
    }

    fn tuple_list<'a>(&self, e: &Expr, items: &'a [Expr]) -> List<'a> {
        List {
            open: "(",
            close: ")",
            items: items.iter().map(Item::Expr).collect(),
            from: e.span.start,
            hang: INDENT,
            one_tuple: items.len() == 1,
        }
    }

    fn call_list<'a>(&self, callee: &Ident, args: &'a [Arg]) -> List<'a> {
        List {
            open: "(",
            close: ")",
            items: args.iter().map(Item::Arg).collect(),
            from: callee.span.end,
            hang: INDENT,
            one_tuple: false,
        }
    }

    fn dims_list<'a>(&self, from: usize, dims: &'a [Expr]) -> List<'a> {
        List {
            open: "[",
            close: "]",
            items: dims.iter().map(Item::Expr).collect(),
            from,
            hang: INDENT,
            one_tuple: false,
        }
    }

    // ---- printing --------------------------------------------------------------------------

    fn file(mut self, file: &File) -> String {
        let mut items: Vec<(usize, usize, TopItem)> = file
            .imports
            .iter()
            .map(|i| (i.span.start, i.span.end, TopItem::Import(i)))
            .chain(file.definitions.iter().map(|d| (d.span.start, d.span.end, TopItem::Definition(d))))
            .collect();
        items.sort_by_key(|(start, ..)| *start);
        let mut previous_import = None;
        for (start, end, item) in &items {
            let is_import = matches!(item, TopItem::Import(_));
            // Imports may stay together; every other pair of items has a blank line between.
            self.blank_due = previous_import.is_some_and(|p| !(p && is_import));
            self.comments(*start, 0);
            self.newline(0);
            let due = std::mem::take(&mut self.blank_due);
            if blank_in(self.gap(self.last, *start)) || due {
                self.blank_line();
            }
            match item {
                TopItem::Import(import) => {
                    self.text("import ");
                    match &import.target {
                        ImportTarget::File(path) => self.text(&format!("\"{path}\"")),
                        ImportTarget::Std(module) => self.text(module),
                    }
                }
                TopItem::Definition(d) => self.definition(d),
            }
            self.seen(*end);
            previous_import = Some(is_import);
        }
        self.blank_due = false;
        self.comments(self.src.len() + 1, 0);
        let mut out = self.out;
        out.truncate(out.trim_end().len());
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    fn definition(&mut self, d: &Definition) {
        self.text(match d.kind {
            DefKind::Block => "block ",
            DefKind::Network => "network ",
            DefKind::Function => "fn ",
        });
        self.ident(&d.name, INDENT);
        if !d.params.is_empty() {
            let list = List {
                open: "(",
                close: ")",
                items: d.params.iter().map(Item::Param).collect(),
                from: d.name.span.end,
                hang: 2 * INDENT,
                one_tuple: false,
            };
            self.list(&list, 0);
        }
        let close = d.span.end.saturating_sub(1);
        self.body(&d.body, close, 0);
    }

    /// ` {`, the statements a level deeper, and `}` (a line of its own).
    fn body(&mut self, stmts: &[Stmt], close: usize, indent: usize) {
        let has_comments = self.lexed.comments.get(self.next).is_some_and(|&(start, _)| start < close);
        if stmts.is_empty() && !has_comments {
            self.text(" {}");
            self.seen(close + 1);
            return;
        }
        self.text(" {");
        self.fresh = true;
        self.statements(stmts, indent + INDENT, close);
        self.newline(indent);
        self.text("}");
        self.seen(close + 1);
    }

    fn statements(&mut self, stmts: &[Stmt], indent: usize, close: usize) {
        for stmt in stmts {
            let start = stmt.span().start;
            self.comments(start, indent);
            self.newline(indent);
            if blank_in(self.gap(self.last, start)) {
                self.blank_line();
            }
            self.statement(stmt, indent);
            self.seen(stmt.span().end);
        }
        self.comments(close, indent);
    }

    fn ident(&mut self, name: &Ident, indent: usize) {
        self.comments(name.span.start, indent);
        self.text(&name.name);
        self.seen(name.span.end);
    }

    fn statement(&mut self, stmt: &Stmt, indent: usize) {
        let deeper = indent + INDENT;
        match stmt {
            Stmt::Input { name, dims, dtype, span } => {
                self.text("input");
                let mut from = span.start;
                if let Some(name) = name {
                    self.text(" ");
                    self.ident(name, deeper);
                    from = name.span.end;
                }
                self.text(" ");
                self.list(&self.dims_list(from, dims), indent);
                if let Some((ty, at)) = dtype {
                    self.text(" ");
                    self.text(elem_type(*ty));
                    self.seen(at.end);
                }
            }
            Stmt::Param { name, dims, init, .. } => {
                self.text("param ");
                self.ident(name, deeper);
                self.text(" ");
                self.list(&self.dims_list(name.span.end, dims), indent);
                self.text(" = ");
                self.expr(init, indent, Prec::Any);
            }
            Stmt::Output { items, .. } => {
                self.text("output ");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.text(", ");
                    }
                    self.ident(&item.name, deeper);
                    if item.training_only {
                        self.text(" if training");
                    }
                }
            }
            Stmt::Shared { name, value, .. } => {
                self.text("shared ");
                self.ident(name, deeper);
                self.text(" = ");
                self.expr(value, indent, Prec::Any);
            }
            Stmt::Where { condition, .. } => {
                self.text("where ");
                self.expr(condition, indent, Prec::Any);
            }
            Stmt::Tie { tensor, to, .. } => {
                self.text("tie ");
                self.ident(tensor, deeper);
                self.text(" = ");
                self.ident(to, deeper);
            }
            Stmt::Bind { name, value } => {
                self.ident(name, deeper);
                self.text(" = ");
                self.expr(value, indent, Prec::Any);
            }
            Stmt::Destructure { names, value } => {
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        self.text(", ");
                    }
                    self.ident(name, deeper);
                }
                self.text(" = ");
                self.expr(value, indent, Prec::Any);
            }
            Stmt::Expr(e) => self.expr(e, indent, Prec::Any),
        }
    }

    /// An expression whose continuation lines are indented from `ctx`.
    fn expr(&mut self, e: &Expr, ctx: usize, prec: Prec) {
        self.comments(e.span.start, ctx + INDENT);
        if self.needs_brackets(e, prec) {
            self.text("(");
            self.seen(e.span.start + 1);
            self.kind(e, ctx);
            if self.grouped(e) {
                self.comments(e.span.end - 1, ctx + INDENT);
            }
            self.text(")");
        } else {
            self.kind(e, ctx);
        }
        self.seen(e.span.end);
    }

    fn kind(&mut self, e: &Expr, ctx: usize) {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {
                let text = self.literal(e);
                self.text(&text);
            }
            ExprKind::Name(n) => self.text(n),
            ExprKind::Input => self.text("in"),
            ExprKind::Flow => self.text("_"),
            ExprKind::Tuple(items) => {
                let list = self.tuple_list(e, items);
                self.list(&list, ctx);
            }
            ExprKind::Chain(stages) => self.chain(stages, ctx),
            ExprKind::Unary { ops, operand } => {
                for op in ops {
                    self.text(match op {
                        UnaryOp::Neg => "-",
                        UnaryOp::Not => "not ",
                    });
                }
                self.expr(operand, ctx, Prec::Unary);
            }
            ExprKind::Binary { head, rest } => {
                // Broken before an operator, which leads the next line a level deeper, where the
                // author broke it or where the next operand would pass the width.
                let prec = Prec::Binary(binary_level(rest));
                self.expr(head, ctx, prec);
                let mut before = head.span.end;
                for (op, operand) in rest {
                    let start = operand.span.start;
                    self.trailing(start, ctx + INDENT);
                    let op = op.to_string();
                    let needed = width(&op) + 1 + first_width(&self.flat(operand, prec));
                    if self.pending.is_some()
                        || self.newline_between(before, start)
                        || self.col() + 1 + needed > WIDTH
                    {
                        self.comments(start, ctx + INDENT);
                        self.newline(ctx + INDENT);
                        self.text(&format!("{op} "));
                    } else {
                        self.text(&format!(" {op} "));
                    }
                    self.expr(operand, ctx, prec);
                    before = operand.span.end;
                }
            }
            ExprKind::Postfix { base, accesses } => {
                self.expr(base, ctx, Prec::Postfix);
                for access in accesses {
                    match access {
                        Access::Field(name) => {
                            self.text(".");
                            self.ident(name, ctx + INDENT);
                        }
                        Access::Index(index) => {
                            self.text("[");
                            self.expr(index, ctx, Prec::Any);
                            self.text("]");
                        }
                        Access::Slice { span, .. } => {
                            self.comments(span.start, ctx + INDENT);
                            let text = self.flat_access(access);
                            self.text(&text);
                            self.seen(span.end);
                        }
                    }
                }
            }
            ExprKind::Call { callee, args } => {
                self.ident(callee, ctx + INDENT);
                let list = self.call_list(callee, args);
                self.list(&list, ctx);
            }
            ExprKind::If { arms, otherwise } => {
                for (i, (cond, body)) in arms.iter().enumerate() {
                    if i > 0 {
                        let arm = format!(
                            "if {} {}",
                            self.flat(cond, Prec::Any),
                            self.flat_braced(cond.span.end, body)
                        );
                        self.else_keyword(&arms[i - 1].1, cond.span.start, &arm, ctx);
                    }
                    self.text("if ");
                    self.expr(cond, ctx, Prec::Any);
                    self.text(" ");
                    self.braced(cond.span.end, body, ctx);
                }
                if let (Some(body), Some((_, last))) = (otherwise, arms.last()) {
                    let arm = self.flat_braced(last.span.end, body);
                    self.else_keyword(last, body.span.start, &arm, ctx);
                    self.braced(last.span.end, body, ctx);
                }
            }
            ExprKind::Body(stmts) => {
                let close = e.span.end.saturating_sub(1);
                self.text("{");
                self.fresh = true;
                self.statements(stmts, ctx + INDENT, close);
                self.newline(ctx);
                self.text("}");
            }
            ExprKind::Repeat { index, count, body } => {
                self.text("repeat ");
                let after = match count {
                    RepeatCount::Times(n) => {
                        self.expr(n, ctx, Prec::Any);
                        n.span.end
                    }
                    RepeatCount::Range(lo, hi) => {
                        if let Some(index) = index {
                            self.ident(index, ctx + INDENT);
                        }
                        self.text(" in ");
                        self.expr(lo, ctx, Prec::Sum);
                        self.text("..");
                        self.expr(hi, ctx, Prec::Sum);
                        hi.span.end
                    }
                };
                self.text(" ");
                self.braced(after, body, ctx);
            }
        }
    }

    /// `else` after an arm's body: on a line of its own, a level deeper, where its author put
    /// it there or where the next arm (`arm`) would pass the width.
    fn else_keyword(&mut self, body: &Expr, next: usize, arm: &str, ctx: usize) {
        let close = self.body_close(body);
        let at = self.gap(close, next).find("else").map_or(next, |at| close + at);
        self.comments(at, ctx + INDENT);
        let kept = self.else_kept(body, next);
        if self.pending.is_some() || kept || self.col() + 6 + first_width(arm) > WIDTH {
            self.newline(ctx + INDENT);
            self.text("else ");
        } else {
            self.text(" else ");
        }
    }

    /// The body of an `if` arm or a `repeat`, whose `{` follows `after`.
    fn braced(&mut self, after: usize, body: &Expr, ctx: usize) {
        if let ExprKind::Body(_) = &body.kind {
            if !self.grouped(body) {
                self.comments(body.span.start, ctx + INDENT);
                self.expr(body, ctx, Prec::Any);
                return;
            }
        }
        let close = self.next_char(body.span.end, '}');
        let fits = self.col() + 4 + first_width(&self.flat(body, Prec::Any)) <= WIDTH;
        if self.multiline(after, body) || !fits {
            self.text("{");
            self.fresh = true;
            self.comments(body.span.start, ctx + INDENT);
            self.newline(ctx + INDENT);
            self.expr(body, ctx + INDENT, Prec::Any);
            self.comments(close, ctx + INDENT);
            self.newline(ctx);
            self.text("}");
        } else {
            self.text("{ ");
            self.expr(body, ctx, Prec::Any);
            self.comments(close, ctx + INDENT);
            self.text(" }");
        }
        self.seen(close + 1);
    }

    /// A chain: on one line if it fits, else broken before a `->` wherever the next stage would
    /// pass the width, or where its author broke it; its stages then lay their own lines (a
    /// body's, a list's) one level deeper. Whether it breaks is known by printing it: if it
    /// breaks, it is printed again with the stages a level deeper.
    fn chain(&mut self, stages: &[Stage], ctx: usize) {
        let kept = stages.windows(2).any(|w| self.newline_between(w[0].expr.span.end, stage_start(&w[1])));
        let flat = self.flat_kind_chain(stages);
        self.twice(kept, &flat, ctx, INDENT, |p, inner| p.chain_at(stages, inner));
    }

    fn flat_kind_chain(&self, stages: &[Stage]) -> String {
        let mut text = String::new();
        for stage in stages {
            text.push_str(&self.flat_stage(stage));
            text.push_str(" -> ");
        }
        text
    }

    /// Prints with `print` at `ctx`, and again at `ctx + deeper` if that broke a line; directly
    /// at `ctx + deeper` where the author broke it (`kept`). Deep inside other trials, where
    /// printing twice at each level would add up, the flat width decides instead.
    fn twice(
        &mut self,
        kept: bool,
        flat: &str,
        ctx: usize,
        deeper: usize,
        print: impl Fn(&mut Self, usize) -> bool,
    ) {
        if kept {
            print(self, ctx + deeper);
            return;
        }
        if self.trials >= MAX_TRIALS {
            let inner = if self.col() + first_width(flat) > WIDTH { ctx + deeper } else { ctx };
            print(self, inner);
            return;
        }
        self.trials += 1;
        let mark = self.mark();
        if print(self, ctx) {
            self.reset(mark);
            print(self, ctx + deeper);
        }
        self.trials -= 1;
    }

    /// The chain's stages, their continuation lines at `inner`; whether a `->` began a line.
    fn chain_at(&mut self, stages: &[Stage], inner: usize) -> bool {
        let mut broke = false;
        for (i, stage) in stages.iter().enumerate() {
            let start = stage_start(stage);
            if i > 0 {
                self.trailing(start, inner);
                let fits = self.col() + 4 + first_width(&self.flat_stage(stage)) <= WIDTH;
                let before = stages[i - 1].expr.span.end;
                if self.pending.is_some() || self.newline_between(before, start) || !fits {
                    self.comments(start, inner);
                    self.newline(inner);
                    self.text("-> ");
                    broke = true;
                } else {
                    self.text(" -> ");
                }
            }
            if let Some(label) = &stage.label {
                self.comments(label.span.start, inner + INDENT);
                let text = self.label(label);
                self.text(&text);
                self.text(" ");
                self.seen(label.span.end);
            }
            self.expr(&stage.expr, inner, Prec::Stage);
        }
        broke
    }

    /// A bracketed list: on one line if it fits, else filled, broken after a comma wherever
    /// the next item would pass the width or where its author broke it, its items then laying
    /// their own lines deeper, as a chain's stages do.
    fn list(&mut self, list: &List, ctx: usize) {
        let (_, block) = self.list_opener(list);
        let kept = list.items.windows(2).any(|w| self.newline_between(w[0].end(), w[1].start()));
        let flat = self.flat_list(list);
        self.twice(block || kept, &flat, ctx, list.hang, |p, inner| p.list_at(list, ctx, inner));
    }

    /// The list's items, its continuation lines at `inner`; whether an item began a line.
    fn list_at(&mut self, list: &List, ctx: usize, inner: usize) -> bool {
        let (open, block) = self.list_opener(list);
        let items = &list.items;
        let mut broke = block;
        self.text(list.open);
        self.seen(open + 1);
        if block {
            if let Some(first) = items.first() {
                self.trailing(first.start(), inner);
                self.comments(first.start(), inner);
            }
            self.newline(inner);
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.text(",");
                self.trailing(item.start(), inner);
                let flat = self.flat_item(*item);
                let last = i + 1 == items.len() && !block && !flat.contains('\n');
                let needed = first_width(&flat) + if last { list.close.len() } else { 1 };
                let before = items[i - 1].end();
                if self.pending.is_some()
                    || self.newline_between(before, item.start())
                    || self.col() + 1 + needed > WIDTH
                {
                    self.comments(item.start(), inner);
                    self.newline(inner);
                    broke = true;
                } else {
                    self.text(" ");
                }
            }
            self.item(*item, inner);
        }
        if block || list.one_tuple {
            self.text(",");
        }
        let close = self
            .next_char(items.last().map_or(open + 1, |i| i.end()), list.close.chars().next().unwrap_or(')'));
        self.comments(close, inner);
        if block {
            self.newline(ctx);
        }
        self.text(list.close);
        self.seen(close + 1);
        broke
    }

    fn item(&mut self, item: Item, ctx: usize) {
        match item {
            Item::Expr(e) => self.expr(e, ctx, Prec::Any),
            Item::Arg(a) => {
                if let Some(name) = &a.name {
                    self.ident(name, ctx + INDENT);
                    self.text("=");
                }
                self.expr(&a.value, ctx, Prec::Any);
            }
            Item::Param(p) => {
                self.ident(&p.name, ctx + INDENT);
                if let Some(default) = &p.default {
                    self.text(" = ");
                    self.expr(default, ctx, Prec::Any);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(src: &str) -> String {
        match format(src) {
            Ok(out) => out,
            Err(e) => panic!("{e:?}\n{src}"),
        }
    }

    #[test]
    fn spaces_and_indentation_are_canonical() {
        let src = "block  b( c,s=1 ){\n  y=conv2d( c,3,padding = 1 )->relu\n\n\n   y+in}\n";
        assert_eq!(
            fmt(src),
            "block b(c, s = 1) {\n    y = conv2d(c, 3, padding=1) -> relu\n\n    y + in\n}\n"
        );
    }

    /// A file in CRLF stays in CRLF (and a formatted one is left as it is); one in LF, in LF.
    #[test]
    fn line_endings_follow_the_first_line() {
        let src = "block  b {  # opening\r\n  relu\r\n}\r\n";
        let formatted = "block b {  # opening\r\n    relu\r\n}\r\n";
        assert_eq!(fmt(src), formatted);
        assert_eq!(fmt(formatted), formatted);
        assert_eq!(fmt(&src.replace("\r\n", "\n")), formatted.replace("\r\n", "\n"));
        // Lone `\r`s (classic Mac OS) end lines too, and stay: the comment ends at its own.
        assert_eq!(fmt(&src.replace("\r\n", "\r")), formatted.replace("\r\n", "\r"));
    }

    #[test]
    fn comments_are_kept() {
        let src = "# head\n\nblock b {  # opening\n    # own line\n    relu  # trailing\n    # before the end\n}\n# tail\n";
        assert_eq!(fmt(src), src);
    }

    #[test]
    fn long_chains_break_with_a_leading_arrow() {
        let stage = "conv2d(64, 3, padding=1)";
        let src = format!("network n {{\n    input [N, 3, 8, 8]\n    {}\n}}\n", [stage; 6].join(" -> "));
        let out = fmt(&src);
        assert!(out.lines().all(|l| l.len() <= WIDTH), "{out}");
        assert!(out.contains("\n        -> conv2d"), "{out}");
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn brackets_are_kept_where_written_and_added_where_needed() {
        let src = "network n {\n    input [N, 4]\n    x = (relu)\n    y = f: (linear(4) -> relu) -> (if a { b } else { c })\n    z = (a - b) - c * (d + e) + -(-5) + (-5).x + not (a == b)\n}\n";
        // `-(-5)` is the literal 5, as the parser folds it.
        assert_eq!(fmt(src), src.replace("-(-5)", "5"));
    }

    #[test]
    fn every_construct_round_trips() {
        let src = r#"import std.resnet
import "other.net"

fn make_divisible(v, divisor = 8) {
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v { rounded + divisor } else { rounded }
}

network n(len = 16, vocab = 1_000) {
    input tokens [N, len] int
    input mask [N, len] bool
    param scale [1, 1, 32] = 1e-6
    shared cell = linear(32) -> relu
    a, b = tokens -> embedding(vocab, 64) -> chunk(2, dim=-1)
    c = repeat i in 0..len - 1 {
        "block{i}-x": cell
        denselayer{i}: cell
    }
    d = a[:, ::2, ...] + b[0,] + b[..., 1:-1:2] + (1,)[0]
    tie cell.weight = c.weight
    output d, c if training
}
"#;
        assert_eq!(fmt(src), src);
    }

    #[test]
    fn arithmetic_breaks_before_an_operator() {
        let src = "network n {\n    input [N, 4]\n    x = linear(4) +\n        linear(4) * 2 - relu\n}\n";
        let out = fmt(src);
        assert_eq!(
            out,
            "network n {\n    input [N, 4]\n    x = linear(4)\n        + linear(4) * 2 - relu\n}\n"
        );
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn syntax_errors_are_returned() {
        assert!(matches!(format("network n { -> }"), Err(FormatError::Syntax(_))));
    }

    #[test]
    fn hostile_text_never_panics() {
        for src in
            ["", "#", "\n\n", "network n {}", "network n { input [N, 1]\n relu # c", "((((", "\u{feff}"]
        {
            let _ = format(src);
        }
        let deep = format!("network n {{ input [N, 1]\n conv2d({}1{}, 3) }}", "(".repeat(30), ")".repeat(30));
        let out = fmt(&deep);
        assert_eq!(fmt(&out), out);
        let long = format!("network n {{ input [N, 1]\n conv2d(1{}, 3) }}", " + 0".repeat(10_000));
        let out = fmt(&long);
        assert_eq!(fmt(&out), out);
    }
}
