//! From source text to the typed AST: pest does the matching, this module builds the tree,
//! turns pest's errors into readable ones, and recovers at the next top-level item so that one
//! run reports the syntax errors of every item.

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::*;

#[derive(pest_derive::Parser)]
#[grammar = "net.pest"]
struct NetParser;

/// How deep brackets may nest. pest descends about ten rules per bracket, and its recursion is
/// what this bounds.
pub const MAX_NESTING: usize = 32;

/// The stack the parser runs on. An unoptimised build of pest needs about 130 KiB per bracket
/// level (an optimised one under 2 KiB), so [`MAX_NESTING`] levels fit with room to spare; the
/// pages are only touched, and so only paid for, by deeply nested input.
const PARSER_STACK: usize = 16 << 20;

/// A syntax error: where, what was expected, and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
    /// A label for the span, shorter than the message.
    pub label: String,
    pub hint: Option<String>,
    /// A second place worth showing, such as the bracket that was never closed.
    pub related: Option<(Span, String)>,
}

/// Parses a whole file. Never fails: what could not be parsed is described in the errors, and
/// the file holds every item that could.
pub fn parse_file(src: &str) -> (File, Vec<SyntaxError>) {
    // Read as the lines an editor shows: a comment ends at a lone `\r` too.
    let src = crate::unify_line_ends(src);
    stacker::grow(PARSER_STACK, || parse_items(&src))
}

fn parse_items(src: &str) -> (File, Vec<SyntaxError>) {
    let mut file = File::default();
    let mut errors = Vec::new();
    if let Some(err) = check_nesting(src) {
        errors.push(err);
        return (file, errors);
    }
    let mut offset = 0;
    while offset < src.len() {
        let rest = &src[offset..];
        if skip_blanks(rest).is_empty() {
            break;
        }
        match parse_item(rest) {
            Ok(mut pairs) => {
                let item_at = pairs.next().expect("item_at matched");
                let end = item_at.as_span().end();
                let item = item_at.into_inner().next().expect("an item");
                // An item with a bad literal is reported and left out, so that its
                // stand-in value causes no second error.
                let before = errors.len();
                let builder = Builder { base: offset, errors: &mut errors };
                match item.as_rule() {
                    Rule::import => file.imports.push(builder.import(item)),
                    _ => {
                        let def = builder.definition(item);
                        if errors.len() == before {
                            file.definitions.push(def);
                        } else if def.kind == DefKind::Block {
                            file.broken_blocks.push(def.name.name);
                        }
                    }
                }
                offset += end;
            }
            Err(err) => {
                file.broken_blocks.extend(block_name(rest));
                let err = convert_error(*err, src, offset);
                let resume = next_item_start(src, err.span.end.max(offset + 1));
                errors.push(err);
                match resume {
                    Some(next) => offset = next,
                    None => break,
                }
            }
        }
    }
    (file, errors)
}

/// Parses one expression, as given on the command line (`--set size=96`).
pub fn parse_expr(src: &str) -> Result<Expr, Box<SyntaxError>> {
    stacker::grow(PARSER_STACK, || parse_one_expr(src))
}

fn parse_one_expr(src: &str) -> Result<Expr, Box<SyntaxError>> {
    if let Some(err) = check_nesting(src) {
        return Err(Box::new(err));
    }
    let mut pairs = NetParser::parse(Rule::expr_only, src).map_err(|e| Box::new(convert_error(e, src, 0)))?;
    let expr = pairs.next().expect("expr_only").into_inner().next().expect("an expression");
    let mut errors = Vec::new();
    let built = Builder { base: 0, errors: &mut errors }.expr(expr);
    match errors.into_iter().next() {
        Some(err) => Err(Box::new(err)),
        None => Ok(built),
    }
}

/// The characters of `src` that are code, each with its byte offset: comments (`#` to the end
/// of the line) and strings (to their closing quote, or the end of the line) left out, as the
/// grammar reads them. Scans that only count brackets (the nesting bound here, an editor's
/// open call) read these.
pub fn code_chars(src: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut chars = src.char_indices();
    std::iter::from_fn(move || loop {
        let (at, c) = chars.next()?;
        match c {
            '#' => {
                chars.by_ref().find(|&(_, c)| c == '\n');
            }
            '"' => {
                chars.by_ref().find(|&(_, c)| c == '"' || c == '\n');
            }
            _ => return Some((at, c)),
        }
    })
}

/// The error of an integer literal over 64 bits.
const TOO_LARGE: &str = "integer literal is too large";

/// Rejects bracket nesting deeper than [`MAX_NESTING`] before pest, whose descent is recursive,
/// ever sees it.
fn check_nesting(src: &str) -> Option<SyntaxError> {
    let mut depth = 0usize;
    for (at, c) in code_chars(src) {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(SyntaxError {
                        span: Span::new(at, at + 1),
                        message: format!("brackets nest deeper than the limit of {MAX_NESTING}"),
                        label: format!("bracket number {depth} opens here"),
                        hint: Some(
                            "name intermediate results or move parts into a `block` to flatten \
                             the expression"
                                .into(),
                        ),
                        related: None,
                    });
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// `rest` after its leading blanks and comments, as the grammar's `WHITESPACE` and `COMMENT`
/// define them. Checked by hand rather than by a pest rule because pest builds an error for
/// every failed parse, and finding the line of that error scans back from the end of the
/// input: once per item, that made checking a file quadratic in its number of items (20,000
/// networks took seconds).
fn skip_blanks(rest: &str) -> &str {
    let mut rest = rest;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        match rest.strip_prefix('#') {
            Some(comment) => rest = comment.find('\n').map_or("", |end| &comment[end..]),
            None => return rest,
        }
    }
}

/// Parses the item at the start of `rest` (after blanks), with the result pest would give on
/// the whole of `rest`, at a cost proportional to the item rather than to the rest of the file.
///
/// pest's error for a failed parse locates its line by scanning back from the end of the input,
/// so a syntax error per item would make a file quadratic to check. The parse therefore runs on
/// a window that ends where a later line starts an item, and the window widens to the next such
/// line only when the parse reached the window's end, the one place the cut can matter. A parse
/// that succeeds, or fails strictly inside the window, tried nothing beyond it, so it is the parse
/// of the whole rest: the window's end starts with `import`, `block`, `network` or `fn`, the
/// keywords that start an item. A line that starts with one as a label instead (`block: relu`)
/// only ends a window early, which then widens past it.
fn parse_item(rest: &str) -> Result<pest::iterators::Pairs<'_, Rule>, Box<pest::error::Error<Rule>>> {
    let first = rest.len() - skip_blanks(rest).len();
    let mut from = first + rest[first..].chars().next().map_or(1, char::len_utf8);
    loop {
        let end = next_item_start(rest, from).unwrap_or(rest.len());
        match NetParser::parse(Rule::item_at, &rest[..end]) {
            Err(err) if end < rest.len() && error_position(&err) >= end => from = end + 1,
            result => return result.map_err(Box::new),
        }
    }
}

fn error_position(err: &pest::error::Error<Rule>) -> usize {
    match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
}

/// The start of the next line, at or after `from`, that begins a top-level item.
fn next_item_start(src: &str, from: usize) -> Option<usize> {
    let mut line_start = src[..from.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
    loop {
        let line_end = src[line_start..].find('\n').map(|i| line_start + i);
        let line = &src[line_start..line_end.unwrap_or(src.len())];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if line_start + indent >= from && starts_item(trimmed) {
            return Some(line_start + indent);
        }
        line_start = line_end? + 1;
    }
}

fn starts_item(line: &str) -> bool {
    ["block", "network", "fn", "import"].iter().any(|kw| {
        line.strip_prefix(kw)
            .is_some_and(|rest| rest.starts_with(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
    })
}

fn convert_error(err: pest::error::Error<Rule>, src: &str, base: usize) -> SyntaxError {
    let at = base + error_position(&err);
    if let Some(err) = power_operator(src, at).or_else(|| keyword_bound(src, base, at)) {
        return err;
    }
    let found_end = token_end(src, at);
    let found = &src[at..found_end];
    let mut expected: Vec<&str> = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.iter().map(|r| describe(*r)).collect(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.sort_unstable();
    expected.dedup();
    // Inside brackets, what matters is how to go on or close them; the operators that could
    // also follow are noise.
    const CLOSERS: [&str; 4] = ["`)`", "`]`", "`}`", "`,`"];
    if expected.iter().any(|e| CLOSERS.contains(e)) {
        expected.retain(|e| CLOSERS.contains(e));
    }
    let closes = |c: char| expected.iter().any(|e| e.contains(c));
    let related = unclosed_bracket(src, base, at)
        .filter(|&(_, open)| closes(closing(open)))
        .map(|(pos, open)| (Span::new(pos, pos + 1), format!("this `{open}` is not closed")));
    let expected = join_alternatives(&expected);
    let (message, label) = if found.is_empty() {
        (format!("unexpected end of file, expected {expected}"), format!("expected {expected}"))
    } else {
        (format!("expected {expected}, found `{found}`"), format!("unexpected `{found}`"))
    };
    let hint = hint_for(found);
    SyntaxError { span: Span::new(at, found_end), message, label, hint, related }
}

/// `x ** 2` parses as `x *` followed by a missing operand, which pest reports at the second
/// `*` as "expected an expression". Said that way, the reader is not told that the operator
/// they wrote does not exist, so the pair is named and a product suggested instead.
fn power_operator(src: &str, at: usize) -> Option<SyntaxError> {
    let start = if src[at..].starts_with("**") {
        at
    } else if src[at..].starts_with('*') && src[..at].ends_with('*') {
        at - 1
    } else {
        return None;
    };
    let word = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_');
    let before = src[..start].trim_end();
    let base = &before[before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1)..];
    let after = src[start + 2..].trim_start();
    let exponent = &after[..after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len())];
    let hint = match exponent.parse::<usize>() {
        Ok(n @ 2..=4) if word(base) => format!("write the product out: `{}`", vec![base; n].join(" * ")),
        _ => "write the power out as a product, e.g. `c * c` for the square of `c`".into(),
    };
    Some(SyntaxError {
        span: Span::new(start, start + 2),
        message: "`**` is not an operator: nnc has no power operator".into(),
        label: "no power operator".into(),
        hint: Some(hint),
        related: None,
    })
}

/// The language's keywords (`net.pest`'s `keyword`, but `_`): no name can be one.
pub const KEYWORDS: [&str; 19] = [
    "import", "block", "network", "fn", "input", "param", "output", "shared", "tie", "where", "repeat", "in",
    "if", "else", "and", "or", "not", "true", "false",
];

/// `block = relu`: pest reports the `=` after a keyword as "expected `:` or `{`", which does
/// not tell the reader that the name they bound is a keyword, so the keyword is named. (`base`
/// is where the item being parsed starts.)
fn keyword_bound(src: &str, base: usize, at: usize) -> Option<SyntaxError> {
    let rest = &src[at..];
    if !rest.starts_with('=') || rest.starts_with("==") {
        return None;
    }
    let before = src[..at].trim_end();
    let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
    let word = &before[start..];
    if !KEYWORDS.contains(&word) {
        return None;
    }
    // A statement's name may give way to a label; a keyword argument's (`f(in=3)`) may not.
    let argument = matches!(unclosed_bracket(src, base, start), Some((_, '(')));
    let hint = (!argument).then(|| {
        format!("use another name; a label may be a keyword (`{word}: ...` names the layer `{word}`) where nothing reads the name")
    });
    Some(SyntaxError {
        span: Span::new(start, before.len()),
        message: format!("`{word}` is a keyword, so it cannot be a name"),
        label: "a keyword".into(),
        hint,
        related: None,
    })
}

fn closing(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

/// The innermost bracket opened in `src[from..to]` and not closed there.
fn unclosed_bracket(src: &str, from: usize, to: usize) -> Option<(usize, char)> {
    let mut stack = Vec::new();
    let mut chars = src[from..to].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                chars.by_ref().find(|&(_, c)| c == '\n');
            }
            '"' => {
                chars.by_ref().find(|&(_, c)| c == '"' || c == '\n');
            }
            '(' | '[' | '{' => stack.push((from + i, c)),
            ')' | ']' | '}' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

/// The end of the token that starts at `at`: a whole word, or one character.
fn token_end(src: &str, at: usize) -> usize {
    let rest = &src[at..];
    let word = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    if word > 0 {
        at + word
    } else {
        at + rest.chars().next().map_or(0, char::len_utf8)
    }
}

fn hint_for(found: &str) -> Option<String> {
    match found {
        "def" | "fn" | "class" | "module" => Some("definitions start with `block` or `network`".into()),
        "let" => Some("bind a name with `name = expression`, without `let`".into()),
        "&&" | "&" => Some("use `and`".into()),
        "||" | "|" => Some("use `or`".into()),
        "!" => Some("use `not`, or `!=` for inequality".into()),
        ";" => Some("statements end at the end of the line; no `;` is needed".into()),
        _ => None,
    }
}

fn join_alternatives(words: &[&str]) -> String {
    match words {
        [] => "something else".into(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// The phrase for a rule in "expected ..." messages.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::item_at
        | Rule::definition
        | Rule::def_kind
        | Rule::kw_block
        | Rule::kw_network
        | Rule::kw_fn => "`block`, `network` or `fn`",
        Rule::import | Rule::kw_import => "`import`",
        Rule::module_path => "a module name",
        Rule::ident | Rule::callee | Rule::name | Rule::param | Rule::label | Rule::label_name => "a name",
        Rule::int => "an integer",
        Rule::float => "a number",
        Rule::string => "a string",
        Rule::boolean | Rule::kw_true | Rule::kw_false => "`true` or `false`",
        Rule::open_paren | Rule::params | Rule::parens => "`(`",
        Rule::close_paren => "`)`",
        Rule::open_brace | Rule::body | Rule::braced => "`{`",
        Rule::close_brace => "`}`",
        Rule::open_bracket | Rule::index => "`[`",
        Rule::close_bracket => "`]`",
        Rule::comma => "`,`",
        Rule::assign => "`=`",
        Rule::arrow => "`->`",
        Rule::colon => "`:`",
        Rule::range_dots => "`..`",
        Rule::ellipsis => "`...`",
        Rule::subscript | Rule::slice_tail => "an index or a slice",
        Rule::field => "`.`",
        Rule::cmp_op => "a comparison",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::kw_and | Rule::kw_or => "`and` or `or`",
        Rule::kw_in => "`in`",
        Rule::kw_else => "`else`",
        Rule::input_decl | Rule::kw_input => "`input`",
        Rule::elem_type => "an element type (`float`, `int` or `bool`)",
        Rule::param_decl | Rule::kw_param => "`param`",
        Rule::output_decl | Rule::kw_output => "`output`",
        Rule::output_item => "an output's name",
        Rule::shared_decl | Rule::kw_shared => "`shared`",
        Rule::tie_decl | Rule::kw_tie => "`tie`",
        Rule::where_decl | Rule::kw_where => "`where`",
        Rule::tensor_path => "a layer's tensor (`wte.weight`)",
        Rule::training_flag => "`training`",
        Rule::binding | Rule::expr_stmt => "a statement",
        _ => "an expression",
    }
}

/// Builds AST nodes from pest pairs, shifting spans by `base` (the offset of the parsed slice
/// in the file).
struct Builder<'e> {
    base: usize,
    errors: &'e mut Vec<SyntaxError>,
}

impl Builder<'_> {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.base + s.start(), self.base + s.end())
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn import(self, pair: Pair<Rule>) -> Import {
        let span = self.span(&pair);
        let target = pair.into_inner().find(|p| p.as_rule() != Rule::kw_import).expect("target");
        let target = match target.as_rule() {
            Rule::string => ImportTarget::File(unquote(target.as_str())),
            _ => ImportTarget::Std(target.as_str().to_string()),
        };
        Import { target, span }
    }

    fn definition(mut self, pair: Pair<Rule>) -> Definition {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let kind = match inner.next().expect("def_kind").as_str() {
            "block" => DefKind::Block,
            "fn" => DefKind::Function,
            _ => DefKind::Network,
        };
        let name = self.ident(inner.next().expect("name"));
        let mut params = Vec::new();
        let mut body = Vec::new();
        for part in inner {
            match part.as_rule() {
                Rule::params => {
                    for p in part.into_inner().filter(|p| p.as_rule() == Rule::param) {
                        let mut pi = p.into_inner();
                        let name = self.ident(pi.next().expect("param name"));
                        let default = pi.find(|p| p.as_rule() == Rule::expr).map(|e| self.expr(e));
                        params.push(Param { name, default });
                    }
                }
                Rule::body => {
                    for stmt in part.into_inner() {
                        match stmt.as_rule() {
                            Rule::open_brace | Rule::close_brace => {}
                            _ => body.push(self.statement(stmt)),
                        }
                    }
                }
                _ => {}
            }
        }
        Definition { kind, name, params, body, span }
    }

    fn statement(&mut self, pair: Pair<Rule>) -> Stmt {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::input_decl => {
                let mut name = None;
                let mut dims = Vec::new();
                let mut dtype = None;
                // The declaration ends at its last part (not the blanks after it).
                let mut end = span.end;
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::ident => name = Some(self.ident(part)),
                        Rule::expr => dims.push(self.expr(part)),
                        Rule::close_bracket => end = self.span(&part).end,
                        Rule::elem_type => {
                            let at = self.span(&part);
                            end = at.end;
                            let ty = match part.as_str() {
                                "int" => ElemType::Int,
                                "bool" => ElemType::Bool,
                                _ => ElemType::Float,
                            };
                            dtype = Some((ty, at));
                        }
                        _ => {}
                    }
                }
                Stmt::Input { name, dims, dtype, span: Span::new(span.start, end) }
            }
            Rule::output_decl => {
                let mut items = Vec::new();
                let mut end = span.end;
                for item in pair.into_inner().filter(|p| p.as_rule() == Rule::output_item) {
                    let mut inner = item.into_inner();
                    // `_` is kept as a name, which the expander reads as the flowing tensor.
                    let name = self.ident(inner.next().expect("the output's name"));
                    // The last part written ends the statement (not the blanks after it).
                    end = name.span.end;
                    let flag = inner.find(|p| p.as_rule() == Rule::training_flag);
                    if let Some(flag) = &flag {
                        end = self.span(flag).end;
                    }
                    items.push(OutputItem { name, training_only: flag.is_some() });
                }
                Stmt::Output { items, span: Span::new(span.start, end) }
            }
            Rule::param_decl => {
                let mut inner = pair.into_inner();
                let name = self.ident(inner.find(|p| p.as_rule() == Rule::ident).expect("name"));
                let mut exprs: Vec<Expr> =
                    inner.filter(|p| p.as_rule() == Rule::expr).map(|p| self.expr(p)).collect();
                let init = exprs.pop().expect("the initial value");
                let span = Span::new(span.start, init.span.end);
                Stmt::Param { name, dims: exprs, init, span }
            }
            Rule::shared_decl => {
                let mut inner = pair.into_inner();
                let name = self.ident(inner.find(|p| p.as_rule() == Rule::ident).expect("name"));
                let value = self.expr(inner.find(|p| p.as_rule() == Rule::expr).expect("value"));
                let span = Span::new(span.start, value.span.end);
                Stmt::Shared { name, value, span }
            }
            Rule::tie_decl => {
                let mut paths =
                    pair.into_inner().filter(|p| p.as_rule() == Rule::tensor_path).map(|p| self.ident(p));
                let tensor = paths.next().expect("the tied tensor");
                let to = paths.next().expect("the tensor it is tied to");
                let span = Span::new(span.start, to.span.end);
                Stmt::Tie { tensor, to, span }
            }
            Rule::where_decl => {
                let condition =
                    self.expr(pair.into_inner().find(|p| p.as_rule() == Rule::expr).expect("the condition"));
                let span = Span::new(span.start, condition.span.end);
                Stmt::Where { condition, span }
            }
            Rule::binding => {
                let mut names = Vec::new();
                let mut value = None;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        // `_` discards its piece: a name nothing can read.
                        Rule::ident | Rule::kw_flow => names.push(self.ident(p)),
                        Rule::expr => value = Some(self.expr(p)),
                        _ => {}
                    }
                }
                let value = value.expect("value");
                match <[Ident; 1]>::try_from(names) {
                    Ok([name]) => Stmt::Bind { name, value },
                    Err(names) => Stmt::Destructure { names, value },
                }
            }
            _ => Stmt::Expr(self.expr(pair.into_inner().next().expect("expression"))),
        }
    }

    /// The expressions directly inside `pair`, ignoring punctuation.
    fn exprs(&mut self, pair: Pair<Rule>) -> Vec<Expr> {
        pair.into_inner().filter(|p| p.as_rule() == Rule::expr).map(|p| self.expr(p)).collect()
    }

    /// An expression of `pair`. A rule that ends in an optional repetition (`a (op b)*`) ends,
    /// in pest, after the blanks and comments it skipped looking for one more repetition, so
    /// the span of a composite expression ends where its last part does, not where its pair
    /// does (which would run on to the next token: the `}` after `a - b`).
    fn expr(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr => {
                let mut stages: Vec<Stage> = pair
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::chain_elem)
                    .map(|p| self.stage(p))
                    .collect();
                if stages.len() == 1 && stages[0].label.is_none() {
                    stages.pop().expect("one stage").expr
                } else {
                    let span = Span::new(span.start, stages.last().map_or(span.end, |s| s.expr.span.end));
                    Expr { kind: ExprKind::Chain(stages), span }
                }
            }
            Rule::disjunction | Rule::conjunction | Rule::comparison | Rule::sum | Rule::product => {
                let mut inner = pair.into_inner();
                let head = self.expr(inner.next().expect("operand"));
                let mut rest = Vec::new();
                while let Some(op) = inner.next() {
                    let op = binary_op(op.as_str());
                    rest.push((op, self.expr(inner.next().expect("operand"))));
                }
                if rest.is_empty() {
                    head
                } else {
                    let span = Span::new(span.start, rest.last().map_or(span.end, |(_, e)| e.span.end));
                    Expr { kind: ExprKind::Binary { head: Box::new(head), rest }, span }
                }
            }
            Rule::unary => {
                let mut ops = Vec::new();
                let mut operand = None;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::unary_op if p.as_str() == "-" => ops.push(UnaryOp::Neg),
                        Rule::unary_op => ops.push(UnaryOp::Not),
                        _ => operand = Some(self.expr(p)),
                    }
                }
                let operand = operand.expect("unary operand");
                let span = Span::new(span.start, operand.span.end);
                match operand.kind {
                    _ if ops.is_empty() => operand,
                    // `-5` is a literal, so that i64::MIN can be written: 2⁶³, too large alone,
                    // is taken back from the errors when it is negated.
                    ExprKind::Int(v) if ops == [UnaryOp::Neg] => {
                        let too_large = |e: &SyntaxError| e.span == operand.span && e.message == TOO_LARGE;
                        if v == i64::MIN && self.errors.last().is_some_and(too_large) {
                            self.errors.pop();
                        }
                        Expr { kind: ExprKind::Int(v.wrapping_neg()), span }
                    }
                    _ => Expr { kind: ExprKind::Unary { ops, operand: Box::new(operand) }, span },
                }
            }
            Rule::postfix => {
                let mut inner = pair.into_inner();
                let base = self.expr(inner.next().expect("primary"));
                let mut end = base.span;
                let accesses: Vec<Access> = inner
                    .map(|p| {
                        end = self.span(&p);
                        self.access(p)
                    })
                    .collect();
                if accesses.is_empty() {
                    base
                } else {
                    Expr {
                        kind: ExprKind::Postfix { base: Box::new(base), accesses },
                        span: Span::new(span.start, end.end),
                    }
                }
            }
            Rule::int => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                // Literals are read as u64 so that `-9223372036854775808` can be negated: 2⁶³ is
                // i64::MIN here, and an error unless the unary minus around it takes it back.
                let value = digits.parse::<u64>().ok().filter(|&v| v <= i64::MAX as u64 + 1);
                if value.is_none_or(|v| v > i64::MAX as u64) {
                    self.errors.push(SyntaxError {
                        span,
                        message: TOO_LARGE.into(),
                        label: "does not fit in 64 bits".into(),
                        hint: Some(format!("integers range up to {}", i64::MAX)),
                        related: None,
                    });
                }
                let value = value.map_or(0, |v| v as i64);
                Expr { kind: ExprKind::Int(value), span }
            }
            Rule::float => {
                let value = pair.as_str().parse::<f64>().unwrap_or(f64::INFINITY);
                Expr { kind: ExprKind::Float(value), span }
            }
            Rule::boolean => Expr { kind: ExprKind::Bool(pair.as_str() == "true"), span },
            Rule::string => Expr { kind: ExprKind::Str(unquote(pair.as_str())), span },
            Rule::input_ref => Expr { kind: ExprKind::Input, span },
            Rule::flow_ref => Expr { kind: ExprKind::Flow, span },
            Rule::name => Expr { kind: ExprKind::Name(pair.as_str().to_string()), span },
            Rule::parens => {
                let has_comma = pair.clone().into_inner().any(|p| p.as_rule() == Rule::comma);
                let mut items = self.exprs(pair);
                if has_comma {
                    Expr { kind: ExprKind::Tuple(items), span }
                } else {
                    let inner = items.pop().expect("parenthesised expression");
                    Expr { kind: inner.kind, span }
                }
            }
            Rule::call => {
                let mut inner = pair.into_inner();
                let callee = self.ident(inner.next().expect("callee"));
                let args = inner
                    .filter(|p| p.as_rule() == Rule::arg)
                    .map(|a| {
                        let mut ai = a.into_inner();
                        let first = ai.next().expect("arg");
                        if first.as_rule() == Rule::ident {
                            let name = Some(self.ident(first));
                            let value = self.expr(ai.find(|p| p.as_rule() == Rule::expr).expect("value"));
                            Arg { name, value }
                        } else {
                            Arg { name: None, value: self.expr(first) }
                        }
                    })
                    .collect();
                Expr { kind: ExprKind::Call { callee, args }, span }
            }
            Rule::if_expr => {
                let mut conds = Vec::new();
                let mut bodies = Vec::new();
                // pest's pair ends after the whitespace it skipped looking for another `else`:
                // the expression ends with its last body.
                let mut end = span.end;
                for p in pair.into_inner() {
                    end = self.span(&p).end;
                    match p.as_rule() {
                        Rule::expr => conds.push(self.expr(p)),
                        Rule::braced => bodies.push(self.braced(p)),
                        _ => {}
                    }
                }
                let otherwise = (bodies.len() > conds.len()).then(|| Box::new(bodies.pop().expect("else")));
                let arms = conds.into_iter().zip(bodies).collect();
                Expr { kind: ExprKind::If { arms, otherwise }, span: Span::new(span.start, end) }
            }
            Rule::repeat_expr => {
                let mut index = None;
                let mut bounds = Vec::new();
                let mut body = None;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::ident => index = Some(self.ident(p)),
                        Rule::sum | Rule::expr => bounds.push(self.expr(p)),
                        Rule::braced => body = Some(self.braced(p)),
                        _ => {}
                    }
                }
                let mut bounds = bounds.into_iter().map(Box::new);
                let first = bounds.next().expect("repeat count");
                let count = match bounds.next() {
                    Some(hi) => RepeatCount::Range(first, hi),
                    None => RepeatCount::Times(first),
                };
                let body = Box::new(body.expect("repeat body"));
                Expr { kind: ExprKind::Repeat { index, count, body }, span }
            }
            rule => unreachable!("unexpected rule {rule:?} in an expression"),
        }
    }

    /// `.field`, `[i]`, or brackets of several positions or slices.
    fn access(&mut self, pair: Pair<Rule>) -> Access {
        let span = self.span(&pair);
        if pair.as_rule() == Rule::field {
            return Access::Field(self.ident(pair.into_inner().next().expect("field name")));
        }
        let has_comma = pair.clone().into_inner().any(|p| p.as_rule() == Rule::comma);
        let mut items: Vec<Subscript> =
            pair.into_inner().filter(|p| p.as_rule() == Rule::subscript).map(|p| self.subscript(p)).collect();
        match items.as_slice() {
            [Subscript::Index(_)] if !has_comma => match items.pop() {
                Some(Subscript::Index(e)) => Access::Index(e),
                _ => unreachable!("one index"),
            },
            _ => Access::Slice { items, span },
        }
    }

    fn subscript(&mut self, pair: Pair<Rule>) -> Subscript {
        let span = self.span(&pair);
        let mut start = None;
        let mut tail = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ellipsis => return Subscript::Ellipsis(span),
                Rule::slice_tail => tail = Some(p),
                _ => start = Some(self.expr(p)),
            }
        }
        let Some(tail) = tail else {
            return Subscript::Index(start.expect("an index"));
        };
        // The parts after each colon: `end` after the first, `step` after the second. The span
        // ends at the last colon or part, not at the blanks pest's pair runs on to.
        let (mut end, mut step, mut colons) = (None, None, 0);
        let mut last = start.as_ref().map_or(span.start, |e| e.span.end);
        for p in tail.into_inner() {
            if p.as_rule() == Rule::colon {
                colons += 1;
                last = last.max(self.span(&p).end);
                continue;
            }
            let part = self.expr(p);
            last = last.max(part.span.end);
            match colons {
                1 => end = Some(part),
                _ => step = Some(part),
            }
        }
        let span = Span::new(span.start, last);
        Subscript::Range { start, end, step, span }
    }

    fn stage(&mut self, pair: Pair<Rule>) -> Stage {
        let mut label = None;
        let mut expr = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::label => label = Some(self.label(p)),
                _ => expr = Some(self.expr(p)),
            }
        }
        Stage { label, expr: expr.expect("stage expression") }
    }

    fn label(&mut self, pair: Pair<Rule>) -> Label {
        let span = self.span(&pair);
        let mut parts = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::label_name => parts.push(LabelPart::Text(p.as_str().to_string())),
                Rule::ident => parts.push(LabelPart::Value(self.ident(p))),
                Rule::string => parts.extend(self.label_text(&p)),
                _ => {}
            }
        }
        Label { parts, span }
    }

    /// The parts of a quoted label: text, and `{name}`s, each a name between braces.
    fn label_text(&mut self, pair: &Pair<Rule>) -> Vec<LabelPart> {
        let text = pair.as_str();
        let start = self.span(pair).start + 1;
        let body = &text[1..text.len() - 1];
        let mut parts = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(LabelPart::Text(rest[..open].to_string()));
            }
            let offset = start + (body.len() - rest.len()) + open;
            let after = &rest[open + 1..];
            let close = after.find('}');
            let name = close.map(|c| &after[..c]).filter(|n| is_name(n));
            let (Some(close), Some(name)) = (close, name) else {
                let end = offset + close.map_or(1, |c| c + 2);
                self.errors.push(SyntaxError {
                    span: Span::new(offset, end),
                    message: "in a label, braces hold the name of an integer (`{i}`)".into(),
                    label: "not a `{name}`".into(),
                    hint: None,
                    related: None,
                });
                return parts;
            };
            parts.push(LabelPart::Value(Ident {
                name: name.to_string(),
                span: Span::new(offset + 1, offset + 1 + name.len()),
            }));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(LabelPart::Text(rest.to_string()));
        }
        parts
    }

    fn braced(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut stmts: Vec<Stmt> = pair
            .into_inner()
            .filter(|p| !matches!(p.as_rule(), Rule::open_brace | Rule::close_brace))
            .map(|p| self.statement(p))
            .collect();
        match stmts.as_slice() {
            [Stmt::Expr(_)] => match stmts.pop() {
                Some(Stmt::Expr(e)) => e,
                _ => unreachable!("one expression statement"),
            },
            _ => Expr { kind: ExprKind::Body(stmts), span },
        }
    }
}

/// The name of the block an item that failed to parse defines, if it starts `block NAME`.
fn block_name(item: &str) -> Option<String> {
    let rest = skip_blanks(item).strip_prefix("block")?;
    let rest = rest.strip_prefix(|c: char| c.is_whitespace())?.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|name| is_name(name)).map(String::from)
}

/// Whether `text` is a name of the language: a letter or `_`, then letters, digits and `_`.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn binary_op(text: &str) -> BinaryOp {
    match text {
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        "/" => BinaryOp::Div,
        "//" => BinaryOp::FloorDiv,
        "%" => BinaryOp::Rem,
        "==" => BinaryOp::Eq,
        "!=" => BinaryOp::Ne,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Le,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Ge,
        "and" => BinaryOp::And,
        _ => BinaryOp::Or,
    }
}

fn unquote(s: &str) -> String {
    s.trim_start_matches('"').trim_end_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> File {
        let (file, errors) = parse_file(src);
        assert!(errors.is_empty(), "{errors:?}");
        file
    }

    #[test]
    fn parses_every_construct() {
        let file = parse_ok(
            r#"
            import "blocks.net"
            import std.resnet
            # a residual block
            block residual(c, stride = 1) {
                y = conv1: conv2d(c, 3, padding=1, stride=stride) -> batchnorm -> relu
                    -> conv2d(c, (3, 5), padding=(1, 2), bias=false)
                skip = if stride != 1 or in.channels != c { in -> conv2d(c, 1, stride=stride) } else { in }
                y + skip -> relu
            }
            network net(classes = 10, size = 224) {
                input [N, 1, size, size]
                a = repeat i in 0..4 { conv2d(8 * 2 // 4 - i % 2, 3) }
                b = repeat 2 { residual(64) } -> cat(a, in, dim=1)
                flatten -> linear(classes) -> dropout(0.5, inplace=not true) -> softmax(dim=-1)
            }
            "#,
        );
        assert_eq!(file.imports.len(), 2);
        assert_eq!(file.definitions.len(), 2);
        assert_eq!(file.definitions[0].params[1].name.name, "stride");
        assert_eq!(file.definitions[1].body.len(), 4);
    }

    #[test]
    fn chains_are_flat_and_keep_labels() {
        let file = parse_ok("network n { input [N, 1, 4, 4]\n x: relu -> relu -> y: relu }");
        let Stmt::Expr(e) = &file.definitions[0].body[1] else { panic!("expression") };
        let ExprKind::Chain(stages) = &e.kind else { panic!("chain") };
        assert_eq!(stages.len(), 3);
        assert_eq!(
            stages[0].label.as_ref().map(|l| l.parts.clone()),
            Some(vec![LabelPart::Text("x".into())])
        );
        assert_eq!(stages[1].label, None);
    }

    #[test]
    fn inputs_take_a_name_and_an_element_type() {
        let src = "network n(len = 8) {\n  input tokens [N, len] int\n  input mask [N, len] bool\n  input [N, 3]\n  input x [N, 2] float\n  relu\n}";
        let file = parse_ok(src);
        let inputs: Vec<(Option<String>, Option<ElemType>, &str)> = file.definitions[0].body[..4]
            .iter()
            .map(|stmt| match stmt {
                Stmt::Input { name, dtype, span, .. } => {
                    (name.as_ref().map(|n| n.name.clone()), dtype.map(|d| d.0), &src[span.start..span.end])
                }
                other => panic!("not an input: {other:?}"),
            })
            .collect();
        assert_eq!(
            inputs,
            [
                (Some("tokens".into()), Some(ElemType::Int), "input tokens [N, len] int"),
                (Some("mask".into()), Some(ElemType::Bool), "input mask [N, len] bool"),
                (None, None, "input [N, 3]"),
                (Some("x".into()), Some(ElemType::Float), "input x [N, 2] float"),
            ]
        );
        // A statement that starts with `int`, `float` or `bool` as a name is no element type.
        for next in
            ["int(3.5)", "bool_mask = relu", "int = 3", "float: relu", "int, b = chunk(2)", "int -> relu"]
        {
            let file = parse_ok(&format!("network n {{\n  input [N, 3]\n  {next}\n}}"));
            let body = &file.definitions[0].body;
            assert!(matches!(body[0], Stmt::Input { dtype: None, .. }), "{next}: {body:?}");
            assert_eq!(body.len(), 2, "{next}");
        }
    }

    #[test]
    fn spans_cover_the_source_text() {
        let src = "block b(c) {\n  conv2d(c, 3)\n}";
        let file = parse_ok(src);
        let Stmt::Expr(e) = &file.definitions[0].body[0] else { panic!("expression") };
        assert_eq!(&src[e.span.start..e.span.end], "conv2d(c, 3)");
        assert_eq!(&src[file.definitions[0].span.start..file.definitions[0].span.end], src);
        // An `if` without `else` ends at its body, not after the whitespace that follows it
        // (which made `nnc fmt` join a chain broken after it on its second pass).
        let src = "block b(c) {\n  if c > 1 { relu }  # why\n    -> relu\n}";
        let Stmt::Expr(e) = &parse_ok(src).definitions[0].body[0] else { panic!("expression") };
        let ExprKind::Chain(stages) = &e.kind else { panic!("a chain") };
        assert_eq!(&src[stages[0].expr.span.start..stages[0].expr.span.end], "if c > 1 { relu }");
    }

    #[test]
    fn operators_keep_their_meaning() {
        let ops = |src: &str| match parse_expr(src).unwrap().kind {
            ExprKind::Binary { rest, .. } => rest.into_iter().map(|(op, _)| op).collect::<Vec<_>>(),
            other => panic!("not binary: {other:?}"),
        };
        assert_eq!(ops("8 - 3 + 1"), [BinaryOp::Sub, BinaryOp::Add]);
        assert_eq!(
            ops("8 // 3 * 2 / 1 % 5"),
            [BinaryOp::FloorDiv, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Rem]
        );
        assert_eq!(ops("a or b"), [BinaryOp::Or]);
        let ExprKind::Unary { ops, .. } = parse_expr("- - not x").unwrap().kind else { panic!("unary") };
        assert_eq!(ops, [UnaryOp::Neg, UnaryOp::Neg, UnaryOp::Not]);
    }

    #[test]
    fn power_is_named_and_a_product_suggested() {
        for (src, at) in [("c ** 2", 2), ("conv2d(c**3, 3)", 8)] {
            let err = parse_expr(src).unwrap_err();
            assert_eq!(err.span, Span::new(at, at + 2), "{src}");
            assert!(err.message.contains("no power operator"), "{}", err.message);
        }
        assert_eq!(parse_expr("c ** 2").unwrap_err().hint.as_deref(), Some("write the product out: `c * c`"));
        assert!(parse_expr("2 ** n").unwrap_err().hint.unwrap().contains("e.g. `c * c`"));
    }

    /// Every keyword of the grammar is in `KEYWORDS`, and bound as a name it is named as one;
    /// a word that only starts with one is a name.
    #[test]
    fn a_keyword_bound_as_a_name_is_named() {
        let body = |word: &str| format!("network n {{\n    input [N, 4]\n    {word} = linear(4)\n}}\n");
        for word in KEYWORDS {
            let src = body(word);
            let errors = parse_file(&src).1;
            let [err] = errors.as_slice() else { panic!("{word}: {errors:?}") };
            assert_eq!(err.message, format!("`{word}` is a keyword, so it cannot be a name"));
            assert_eq!(&src[err.span.start..err.span.end], word);
        }
        for word in ["blocks", "input_", "inside", "_x"] {
            assert!(parse_file(&body(word)).1.is_empty(), "{word} is a name");
        }
        // The grammar's keywords are these: a word out of the list binds.
        for word in ["def", "let", "return", "for", "while"] {
            assert!(parse_file(&body(word)).1.is_empty(), "{word} is no keyword");
        }
        // An equality after a keyword is no binding.
        assert!(!parse_expr("not == 1").unwrap_err().message.contains("keyword"));
        // A keyword argument is named too, without the label a statement could take instead.
        let (_, errors) = parse_file("network n {\n    input [N, 4]\n    linear(4, in=3) -> relu\n}\n");
        let [err] = errors.as_slice() else { panic!("{errors:?}") };
        assert_eq!(
            (err.message.as_str(), err.hint.as_ref()),
            ("`in` is a keyword, so it cannot be a name", None)
        );
        assert!(parse_file(&body("in")).1[0].hint.as_ref().is_some_and(|h| h.contains("`in: ...`")));
        // The list is the grammar's: every `kw_` rule of net.pest but `_`'s.
        let grammar: Vec<&str> = include_str!("../net.pest")
            .lines()
            .filter_map(|l| l.strip_prefix("kw_")?.split_once("@{ \"")?.1.split_once('"'))
            .map(|(word, _)| word)
            .filter(|w| *w != "_")
            .collect();
        assert_eq!(grammar, KEYWORDS);
    }

    /// pest ends a pair after the blanks and comments its last, failed repetition skipped; an
    /// expression's span ends at its last token.
    #[test]
    fn composite_spans_end_at_their_last_token() {
        let src = "network n {\n  input [N, 4]\n  a = in\n  b = in\n  x = a -> relu  # why\n  in.shape[1] - 1  \n  a - b  # comment\n}";
        let file = parse_ok(src);
        let body = &file.definitions[0].body;
        let text = |e: &Expr| &src[e.span.start..e.span.end];
        let Stmt::Bind { value, .. } = &body[3] else { panic!("binding") };
        assert_eq!(text(value), "a -> relu");
        let Stmt::Expr(e) = &body[4] else { panic!("expression") };
        assert_eq!(text(e), "in.shape[1] - 1");
        let ExprKind::Binary { head, .. } = &e.kind else { panic!("binary") };
        assert_eq!(text(head), "in.shape[1]");
        let Stmt::Expr(e) = &body[5] else { panic!("expression") };
        assert_eq!(text(e), "a - b");
        let e = parse_expr("- x  ").unwrap();
        assert_eq!(e.span, Span::new(0, 3));
    }

    #[test]
    fn brackets_hold_an_index_or_slices() {
        let accesses = |src: &str| match parse_expr(src).unwrap().kind {
            ExprKind::Postfix { accesses, .. } => accesses,
            other => panic!("not postfix: {other:?}"),
        };
        assert!(matches!(accesses("x[0]")[..], [Access::Index(_)]));
        let [Access::Slice { items, span }] = &accesses("x[:, 0, 1:, ::2, ..., a:b:c]")[..] else {
            panic!("one slice")
        };
        assert_eq!(*span, Span::new(1, 28));
        assert!(
            matches!(items[0], Subscript::Range { start: None, end: None, step: None, span } if span == Span::new(2, 3))
        );
        assert!(matches!(items[1], Subscript::Index(_)));
        assert!(matches!(items[2], Subscript::Range { start: Some(_), end: None, step: None, .. }));
        assert!(matches!(items[3], Subscript::Range { start: None, end: None, step: Some(_), .. }));
        assert!(matches!(items[4], Subscript::Ellipsis(_)));
        assert!(matches!(items[5], Subscript::Range { start: Some(_), end: Some(_), step: Some(_), .. }));
        // A trailing comma makes a one-position slice, as a tuple index does in Python.
        assert!(matches!(accesses("x[0,]")[..], [Access::Slice { .. }]));
        // `n:` is a slice's start, never a label.
        assert!(matches!(accesses("x[n:]")[..], [Access::Slice { .. }]));
        assert!(parse_expr("x[]").is_err());
    }

    #[test]
    fn several_names_bind_the_pieces_of_a_tuple() {
        let file = parse_ok("network n { input [N, 4]\n a, b = chunk(2, dim=1)\n c = a\n b }");
        let Stmt::Destructure { names, .. } = &file.definitions[0].body[1] else { panic!("destructuring") };
        let names: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(matches!(file.definitions[0].body[2], Stmt::Bind { .. }));
        assert!(matches!(file.definitions[0].body[3], Stmt::Expr(_)));
    }

    #[test]
    fn tuple_needs_a_comma() {
        let e = parse_expr("(3)").unwrap();
        assert_eq!(e.kind, ExprKind::Int(3));
        let e = parse_expr("(3,)").unwrap();
        assert!(matches!(e.kind, ExprKind::Tuple(ref v) if v.len() == 1));
        let e = parse_expr("(3, 5)").unwrap();
        assert!(matches!(e.kind, ExprKind::Tuple(ref v) if v.len() == 2));
    }

    #[test]
    fn reports_expected_tokens() {
        let (_, errors) = parse_file("network n {\n  input [N, 1, 28, 28]\n  conv2d(6, 5\n}\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("expected"), "{}", errors[0].message);
        assert!(errors[0].message.contains("`)`"), "{}", errors[0].message);
    }

    #[test]
    fn recovers_at_the_next_item() {
        let src = "block a( { }\nblock b() { relu }\nnetwork c { input [N] ) }\nblock d() { relu }\n";
        let (file, errors) = parse_file(src);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let names: Vec<_> = file.definitions.iter().map(|d| d.name.name.as_str()).collect();
        assert_eq!(names, ["b", "d"]);
    }

    #[test]
    fn deep_nesting_is_refused_before_pest() {
        let src = format!("network n {{ input [N, 1] {}1{} }}", "(".repeat(10_000), ")".repeat(10_000));
        let (_, errors) = parse_file(&src);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("nest deeper"));
    }

    #[test]
    fn nesting_at_the_limit_parses() {
        let depth = MAX_NESTING - 2; // the body's `{` and the call's `(` count too
        let src = format!("network n {{ relu({}1{}) }}", "(".repeat(depth - 1), ")".repeat(depth - 1));
        parse_ok(&src);
    }

    #[test]
    fn huge_integer_is_an_error_not_a_panic() {
        let err = parse_expr("99999999999999999999999").unwrap_err();
        assert!(err.message.contains("too large"));
        assert_eq!(parse_expr("-9223372036854775808").unwrap().kind, ExprKind::Int(i64::MIN));
        // 2⁶³ itself is too large: it was read as i64::MIN.
        for text in ["9223372036854775808", "9223372036854775808 // 2", "--9223372036854775808"] {
            assert!(parse_expr(text).unwrap_err().message.contains("too large"), "{text}");
        }
    }

    #[test]
    fn long_flat_expressions_do_not_recurse() {
        let src = format!("1{}", " + 1".repeat(100_000));
        let e = parse_expr(&src).unwrap();
        assert!(matches!(e.kind, ExprKind::Binary { ref rest, .. } if rest.len() == 100_000));
    }

    /// The windowed parse of one item gives exactly pest's parse of the whole rest: the same
    /// tree, or the same error, whatever the damage to the item.
    #[test]
    fn an_item_parses_in_its_window_as_in_the_whole_rest() {
        let src = "# a comment\nimport std.resnet\nblock b(c) {\n    conv2d(c, 3) -> relu\n}\n\n\
                   network n(size = 28) {\n    input [N, 1, size, size]\n    y = b(4)\n    cat(y, y) -> flatten\n}\n\
                   import \"other.net\"\nnetwork m {\n    input [N, 2]\n    linear(3)\n}\n";
        let same = |text: &str| {
            let whole = NetParser::parse(Rule::item_at, text);
            let windowed = parse_item(text);
            match (&whole, &windowed) {
                (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text:?}"),
                (Err(a), Err(b)) => assert_eq!(a, b.as_ref(), "{text:?}"),
                _ => panic!("{text:?}: {whole:?} but windowed {windowed:?}"),
            }
        };
        // Every item as the first of the rest, then damage: each character deleted, and
        // tokens that open, close or cut items inserted everywhere.
        for (start, _) in src.match_indices('\n') {
            same(&src[start + 1..]);
        }
        for (i, _) in src.char_indices() {
            same(&format!("{}{}", &src[..i], &src[i + 1..]));
            for token in ["{", "}", "(", "\n", "network x {\n", "block", "é", "#"] {
                same(&format!("{}{token}{}", &src[..i], &src[i..]));
            }
        }
    }
}
