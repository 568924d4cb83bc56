//! The built-in layers. Each file holds one layer (or one family): its signature and its shape
//! rule, which also counts parameters and multiply-adds. Adding a layer is adding a file here
//! and a line to [`ALL`].

mod adaptive_pool;
mod batchnorm;
mod conv2d;
mod dropout;
mod elementwise;
mod flatten;
pub mod join;
mod linear;
mod pool;
mod softmax;

use crate::diagnostic::Code;
use crate::ir::Op;
use crate::shape::{Shape, Window, WindowSize};

/// A built-in layer: its name, its parameters and its shape rule.
pub struct OpSpec {
    pub name: &'static str,
    pub params: &'static [ParamSpec],
    pub apply: fn(&Args, &Shape) -> Result<Built, OpError>,
}

/// Every built-in layer, in the order `nnc` lists them.
pub static ALL: &[&OpSpec] = &[
    &conv2d::CONV2D,
    &pool::MAXPOOL,
    &pool::AVGPOOL,
    &adaptive_pool::ADAPTIVE_AVGPOOL,
    &batchnorm::BATCHNORM,
    &elementwise::RELU,
    &elementwise::SIGMOID,
    &elementwise::TANH,
    &elementwise::GELU,
    &elementwise::IDENTITY,
    &softmax::SOFTMAX,
    &dropout::DROPOUT,
    &flatten::FLATTEN,
    &linear::LINEAR,
];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    ALL.iter().copied().find(|op| op.name == name)
}

pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// `None`: the argument is required.
    pub default: Option<ArgValue>,
}

impl ParamSpec {
    pub const fn required(name: &'static str, kind: Kind) -> Self {
        ParamSpec { name, kind, default: None }
    }

    pub const fn optional(name: &'static str, kind: Kind, default: ArgValue) -> Self {
        ParamSpec { name, kind, default: Some(default) }
    }
}

/// What an argument must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    /// An integer or a pair `(height, width)`.
    Pair,
    Float,
    Bool,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Pair => "an integer or a pair of integers",
            Kind::Float => "a number",
            Kind::Bool => "`true` or `false`",
        }
    }
}

/// An argument converted to its parameter's kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgValue {
    Int(i64),
    Pair([i64; 2]),
    Float(f64),
    Bool(bool),
    /// Optional and not given, with no fixed default (pooling's stride follows its kernel).
    Unset,
}

/// The arguments of one call, in the order of the op's parameters, each marked with whether
/// the caller gave it (errors about a given argument point at it, others at the call).
pub struct Args {
    pub values: Vec<(ArgValue, bool)>,
    pub params: &'static [ParamSpec],
}

impl Args {
    fn get(&self, name: &str) -> ArgValue {
        let i = self.params.iter().position(|p| p.name == name).expect("parameter of this op");
        self.values[i].0
    }

    pub fn bool(&self, name: &'static str) -> bool {
        matches!(self.get(name), ArgValue::Bool(true))
    }

    pub fn float(&self, name: &'static str) -> f64 {
        match self.get(name) {
            ArgValue::Float(v) => v,
            ArgValue::Int(v) => v as f64,
            _ => f64::NAN,
        }
    }

    pub fn is_set(&self, name: &'static str) -> bool {
        self.get(name) != ArgValue::Unset
    }

    /// An integer, or each element of a pair, checked against `min`.
    fn pair_at_least(&self, name: &'static str, min: i64) -> Result<[u64; 2], OpError> {
        let pair = match self.get(name) {
            ArgValue::Int(v) => [v, v],
            ArgValue::Pair(p) => p,
            _ => unreachable!("`{name}` is not an integer parameter"),
        };
        for v in pair {
            if v < min {
                let what = if min == 0 { "at least 0" } else { "at least 1" };
                return Err(OpError::new(Code::Value, format!("`{name}` must be {what}, but is {v}"))
                    .label(format!("`{name}` is {v}"))
                    .at(name));
            }
        }
        Ok(pair.map(|v| v as u64))
    }

    pub fn positive_pair(&self, name: &'static str) -> Result<[u64; 2], OpError> {
        self.pair_at_least(name, 1)
    }

    pub fn non_negative_pair(&self, name: &'static str) -> Result<[u64; 2], OpError> {
        self.pair_at_least(name, 0)
    }

    pub fn positive_int(&self, name: &'static str) -> Result<u64, OpError> {
        self.pair_at_least(name, 1).map(|p| p[0])
    }

    pub fn int(&self, name: &'static str) -> i64 {
        match self.get(name) {
            ArgValue::Int(v) => v,
            _ => unreachable!("`{name}` is not an integer parameter"),
        }
    }
}

/// What a layer produces.
pub struct Built {
    pub op: Op,
    pub shape: Shape,
    pub params: u64,
    pub macs: u64,
}

impl Built {
    /// A layer without parameters or multiply-adds.
    pub fn free(op: Op, shape: Shape) -> Result<Built, OpError> {
        Ok(Built { op, shape, params: 0, macs: 0 })
    }
}

/// Why a layer cannot be applied. The evaluator adds the location and the expansion context.
#[derive(Debug)]
pub struct OpError {
    pub code: Code,
    pub message: String,
    pub label: String,
    pub notes: Vec<String>,
    pub hint: Option<String>,
    /// The argument to point at, when the caller gave it.
    pub arg: Option<&'static str>,
    /// For a size that shrinks to nothing: the spatial axis (0 height, 1 width).
    pub axis: Option<usize>,
}

impl OpError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
            label: String::new(),
            notes: Vec::new(),
            hint: None,
            arg: None,
            axis: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at(mut self, arg: &'static str) -> Self {
        self.arg = Some(arg);
        self
    }
}

/// The product of `factors`, or an error naming what overflowed.
pub fn product(what: &str, factors: &[u64]) -> Result<u64, OpError> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f)).ok_or_else(|| {
        OpError::new(Code::Arithmetic, format!("the {what} of this layer overflows 64 bits"))
            .label(format!("{what}: {}", factors.iter().map(u64::to_string).collect::<Vec<_>>().join(" × ")))
    })
}

/// `[C, H, W]` of a 4-D input, or an error saying what `op` needs.
pub fn expect_image(op: &str, input: &Shape) -> Result<[u64; 3], OpError> {
    match input.dims[..] {
        [c, h, w] => Ok([c, h, w]),
        _ => {
            let mut err = OpError::new(
                Code::ShapeMismatch,
                format!("`{op}` needs a 4-D input [N, C, H, W], but gets {input}"),
            )
            .label(format!("the input here is {input}"));
            if input.rank() < 4 {
                err = err
                    .hint("image layers must come before `flatten`; move this layer up, or `flatten` down");
            }
            Err(err)
        }
    }
}

/// The output size of one spatial axis, or an error that shows how it was derived and what
/// would fix it.
pub fn window_output(op: &str, axis: &str, window: Window, input: &Shape) -> Result<u64, OpError> {
    match window.output() {
        WindowSize::Ok(out) => Ok(out),
        WindowSize::Overflow => {
            Err(OpError::new(Code::Arithmetic, format!("the output {axis} of this `{op}` overflows 64 bits"))
                .note(format!("{axis}: {}", window.derivation())))
        }
        WindowSize::TooSmall { padded, effective_kernel } => {
            let mut err = OpError::new(
                Code::SizeTooSmall,
                format!(
                    "the {axis} shrinks to nothing: this `{op}`'s {effective_kernel}-wide window does not fit in {padded} (padded) rows",
                ),
            )
            .label(format!("input {input} is too small for this window"))
            .note(format!("{axis}: {}", window.derivation()));
            let padding = window.padding_needed();
            let mut fixes = vec![format!("a kernel of at most {padded}")];
            if padding > window.padding && padding * 2 <= effective_kernel as u64 {
                fixes.insert(0, format!("`padding={padding}`"));
            }
            fixes.push("fewer downsampling layers before this one".into());
            fixes.push("a larger input".into());
            err = err.hint(format!("use {}", join_or(&fixes)));
            err.axis = Some(if axis == "width" { 1 } else { 0 });
            err.axis = Some(if axis == "width" { 1 } else { 0 });
            if axis == "width" {
                err.message = err.message.replace("rows", "columns");
            }
            Err(err)
        }
    }
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
    }
}
