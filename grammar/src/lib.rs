//! The `.net` language: its pest grammar (`net.pest`) and a typed syntax tree with a span on
//! every node. This crate knows nothing about shapes, layers or libtorch.

pub mod ast;
pub mod format;
mod lines;
mod parser;

pub use ast::Span;
pub use lines::{has_lone_cr, line_starts, unify_line_ends};
pub use parser::{code_chars, parse_expr, parse_file, SyntaxError, KEYWORDS, MAX_NESTING};
