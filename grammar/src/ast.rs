//! The typed syntax tree of a `.net` file: a plain tree, a span on every node, names unresolved.
//!
//! Left-associative operators, chains and postfix accesses are stored flat (a head and a list),
//! so the depth of the tree is bounded by the bracket nesting of the source, which the parser
//! limits. Walking or dropping a tree therefore never overflows the stack.

use std::fmt;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub imports: Vec<Import>,
    pub definitions: Vec<Definition>,
    /// The names of blocks whose definitions had syntax errors and were left out: calls of
    /// them are not "unknown" (the syntax error already says what is wrong).
    pub broken_blocks: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub target: ImportTarget,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ImportTarget {
    /// `import "path/to/file.net"`, relative to the importing file.
    File(String),
    /// `import std.resnet`: a module of the standard library.
    Std(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Block,
    Network,
    /// `fn name(params) { ... }`: a pure function of values, such as `make_divisible`.
    Function,
}

/// A `block` or a `network`: parameters and a body of statements.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub kind: DefKind,
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

impl Definition {
    /// `block name(a, b = 2)`, with the defaults as written in `text`, the definition's file.
    pub fn signature(&self, text: &str) -> String {
        let keyword = match self.kind {
            DefKind::Block => "block",
            DefKind::Network => "network",
            DefKind::Function => "fn",
        };
        let params: Vec<String> = (self.params.iter())
            .map(|p| match &p.default {
                Some(d) => format!("{} = {}", p.name.name, text.get(d.span.start..d.span.end).unwrap_or("…")),
                None => p.name.name.clone(),
            })
            .collect();
        format!("{keyword} {}({})", self.name.name, params.join(", "))
    }

    /// The comment lines right above the definition in `text`, without their `#`: what it
    /// is, as the language server's hover and `nnc layers` show it.
    pub fn doc_comment(&self, text: &str) -> String {
        let before = text.get(..self.span.start).unwrap_or("");
        let mut lines: Vec<&str> = (before.lines().rev())
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.trim_start().starts_with('#'))
            .map(|line| line.trim_start().trim_start_matches('#').trim())
            .collect();
        lines.reverse();
        lines.join("\n")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `input [N, 1, 28, 28]`, or a named input with its element type, `input tokens [N, T]
    /// int`; several named inputs make a network of several inputs.
    Input { name: Option<Ident>, dims: Vec<Expr>, dtype: Option<(ElemType, Span)>, span: Span },
    /// `param name [dims] = init`: a learnable tensor.
    Param { name: Ident, dims: Vec<Expr>, init: Expr, span: Span },
    /// `output a, b if training`: the network's outputs, in order.
    Output { items: Vec<OutputItem>, span: Span },
    /// `shared name = expr`: a layer (block, chain) applied, with the same parameters,
    /// wherever `name` is a stage.
    Shared { name: Ident, value: Expr, span: Span },
    /// `tie a.weight = b.weight`: the tensor on the left is the one on the right.
    Tie { tensor: Ident, to: Ident, span: Span },
    /// `where H % 32 == 0`: the free input sizes the network is meant for.
    Where { condition: Expr, span: Span },
    /// `name = expr`
    Bind { name: Ident, value: Expr },
    /// `a, b = expr`: each name bound to one item of the tuple `expr` gives, in order.
    Destructure { names: Vec<Ident>, value: Expr },
    /// A bare expression; as the last statement it is the output.
    Expr(Expr),
}

impl Stmt {
    pub fn span(&self) -> Span {
        match self {
            Stmt::Input { span, .. }
            | Stmt::Param { span, .. }
            | Stmt::Output { span, .. }
            | Stmt::Shared { span, .. }
            | Stmt::Tie { span, .. }
            | Stmt::Where { span, .. } => *span,
            Stmt::Bind { name, value } => name.span.to(value.span),
            Stmt::Destructure { names, value } => names[0].span.to(value.span),
            Stmt::Expr(e) => e.span,
        }
    }
}

/// The element type written after an input's dimensions (`float` when none is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    Float,
    Int,
    Bool,
}

/// One output of a network: a tensor's name (`_` for the tensor flowing into the statement),
/// and whether it is an output in training mode only.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputItem {
    pub name: Ident,
    pub training_only: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A reference to a parameter, a tensor, a repeat index, or a layer or block without
    /// arguments (`relu`).
    Name(String),
    /// `in`: the input of the enclosing block or network (inside a `repeat`, the input of
    /// the iteration).
    Input,
    /// `_`: the tensor flowing into the stage where it is written.
    Flow,
    Tuple(Vec<Expr>),
    /// `a -> b -> c`, at least two stages.
    Chain(Vec<Stage>),
    /// `-x`, `not x`; operators in source order, the first applied last.
    Unary {
        ops: Vec<UnaryOp>,
        operand: Box<Expr>,
    },
    /// `a + b - c`: a head and the operations that follow it, left to right.
    Binary {
        head: Box<Expr>,
        rest: Vec<(BinaryOp, Expr)>,
    },
    /// `x.channels.foo[0]`
    Postfix {
        base: Box<Expr>,
        accesses: Vec<Access>,
    },
    /// `conv2d(64, 3, padding=1)`
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    /// `if a { .. } else if b { .. } else { .. }`
    If {
        arms: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// The braced body of an `if` arm or a `repeat` when it holds more than one expression
    /// (bindings, several statements); a body of one expression is that expression.
    Body(Vec<Stmt>),
    /// `repeat n { .. }` or `repeat i in lo..hi { .. }`
    Repeat {
        index: Option<Ident>,
        count: RepeatCount,
        body: Box<Expr>,
    },
}

/// A stage's label: `conv1:`, `denselayer{j}:` or `"block{i}-{j}":`, whose `{name}`s stand
/// for the values of integers.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub parts: Vec<LabelPart>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LabelPart {
    Text(String),
    Value(Ident),
}

/// One stage of a chain, optionally labelled (`conv1: conv2d(64, 3)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub label: Option<Label>,
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RepeatCount {
    Times(Box<Expr>),
    Range(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    Field(Ident),
    /// `x[i]`: one expression in brackets.
    Index(Expr),
    /// `x[:, 0]`, `x[..., 1:]`: brackets holding a slice, an ellipsis or a comma; the span
    /// covers the brackets.
    Slice {
        items: Vec<Subscript>,
        span: Span,
    },
}

/// One position of a [`Access::Slice`].
#[derive(Clone, Debug, PartialEq)]
pub enum Subscript {
    /// An integer: selects one index, removing the dimension.
    Index(Expr),
    /// `start:end:step`, each part optional, as in Python.
    Range { start: Option<Expr>, end: Option<Expr>, step: Option<Expr>, span: Span },
    /// `...`: as many `:` as the dimensions that the other positions leave.
    Ellipsis(Span),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::FloorDiv => "//",
            BinaryOp::Rem => "%",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        })
    }
}
