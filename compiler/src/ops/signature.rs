//! A layer's signature (its parameters, their kinds and defaults), the arguments of one call
//! bound to it, and what its shape rule produces.

use super::{product, OpError, TensorSpec};
use crate::diagnostic::Code;
use crate::ir::Op;
use crate::shape::{DType, Shape};

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
    /// An integer, or a tuple of this many integers, one per spatial axis (`(height, width)`
    /// for 2-D layers), as PyTorch's `_single`, `_pair` and `_triple` take them.
    Spatial(usize),
    /// An integer or a tuple of integers of any length: sizes such as `normalized_shape`.
    Dims,
    /// An integer or a tuple of integers, kept apart as PyTorch keeps them (`split(16)` cuts
    /// pieces of 16, `split((16, 48))` pieces of those sizes). A layer whose only parameter is
    /// of this kind also takes the integers one by one, as PyTorch's `x.reshape(4, -1)` and
    /// `x.permute(0, 2, 3, 1)` do: `reshape(4, -1)` is `reshape((4, -1))`.
    Ints,
    Float,
    Bool,
    /// One of a fixed set of strings, as PyTorch spells them (`approximate="tanh"`).
    Choice(&'static [&'static str]),
    /// A [`Kind::Spatial`] or one of these strings, as a convolution's `padding` is an amount,
    /// `"same"` or `"valid"`.
    SpatialOr(usize, &'static [&'static str]),
    /// A tensor of this element type, which becomes one more input of the layer's node, after
    /// the tensor flowing into it (a recurrent layer's initial state `h0`, an attention's
    /// memory and key padding mask), or `false` for none, so that a block passes an optional
    /// tensor on. Always optional: its default is none.
    Tensor(DType),
}

impl Kind {
    pub fn describe(self) -> String {
        match self {
            Kind::Int => "an integer".into(),
            Kind::Spatial(n) => format!("an integer or {}", tuple_of(n)),
            Kind::Dims | Kind::Ints => "an integer or a tuple of integers".into(),
            Kind::Float => "a number".into(),
            Kind::Bool => "`true` or `false`".into(),
            Kind::Choice(choices) => format!("one of {}", quoted(choices)),
            Kind::SpatialOr(n, choices) => {
                format!("an integer, {}, or one of {}", tuple_of(n), quoted(choices))
            }
            Kind::Tensor(DType::Float) => "a tensor, or `false` for none".into(),
            Kind::Tensor(dtype) => format!("a {dtype} tensor, or `false` for none"),
        }
    }
}

/// `a pair of integers`, as the spatial arguments of a layer of `n` spatial axes are written.
fn tuple_of(n: usize) -> String {
    match n {
        1 => "a tuple of 1 integer".into(),
        2 => "a pair of integers".into(),
        n => format!("a tuple of {n} integers"),
    }
}

/// `"same", "valid"`
fn quoted(choices: &[&str]) -> String {
    choices.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
}

/// An argument converted to its parameter's kind.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Int(i64),
    /// A tuple of integers: a [`Kind::Dims`], or a [`Kind::Spatial`] of the right length.
    Dims(Vec<i64>),
    Float(f64),
    Bool(bool),
    /// One of a [`Kind::Choice`]'s strings.
    Choice(&'static str),
    /// A [`Kind::Tensor`] argument: the shape of the tensor given, which the layer's node
    /// reads as an input after the flowing one.
    Tensor(Shape),
    /// Optional and not given, with no fixed default (pooling's stride follows its kernel).
    Unset,
}

impl std::fmt::Display for ArgValue {
    /// As the language writes it (`(3, 3)`, `"tanh"`); an unset value is `…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgValue::Int(v) => write!(f, "{v}"),
            ArgValue::Float(v) => write!(f, "{v:?}"),
            ArgValue::Bool(v) => write!(f, "{v}"),
            ArgValue::Dims(dims) => {
                let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
                write!(f, "({})", dims.join(", "))
            }
            ArgValue::Choice(v) => write!(f, "{v:?}"),
            ArgValue::Tensor(shape) => write!(f, "{shape}"),
            ArgValue::Unset => f.write_str("…"),
        }
    }
}

/// The arguments of one call, in the order of the op's parameters, each marked with whether
/// the caller gave it (errors about a given argument point at it, others at the call).
pub struct Args {
    pub values: Vec<(ArgValue, bool)>,
    pub params: &'static [ParamSpec],
}

impl Args {
    fn get(&self, name: &str) -> &ArgValue {
        let i = self.params.iter().position(|p| p.name == name).expect("parameter of this op");
        &self.values[i].0
    }

    pub fn bool(&self, name: &'static str) -> bool {
        matches!(self.get(name), ArgValue::Bool(true))
    }

    pub fn float(&self, name: &'static str) -> f64 {
        match self.get(name) {
            ArgValue::Float(v) => *v,
            ArgValue::Int(v) => *v as f64,
            _ => f64::NAN,
        }
    }

    /// A number that must be finite: PyTorch would compute with an infinity or NaN, but the
    /// emitted Python could not spell it (`inf` is no literal), and no such slope or bound is
    /// meant.
    pub fn finite_float(&self, name: &'static str) -> Result<f64, OpError> {
        let v = self.float(name);
        if !v.is_finite() {
            return Err(
                OpError::new(Code::Value, format!("`{name}` must be a finite number, but is {v}")).at(name)
            );
        }
        Ok(v)
    }

    /// The string chosen for a [`Kind::Choice`] parameter.
    pub fn choice(&self, name: &'static str) -> &'static str {
        match self.get(name) {
            ArgValue::Choice(v) => v,
            _ => unreachable!("`{name}` is not a choice parameter"),
        }
    }

    /// The string given for a [`Kind::SpatialOr`] parameter, or `None` when it holds sizes.
    pub fn chosen(&self, name: &'static str) -> Option<&'static str> {
        match self.get(name) {
            ArgValue::Choice(v) => Some(v),
            _ => None,
        }
    }

    /// The shape of the tensor a [`Kind::Tensor`] parameter was given, or `None`.
    pub fn tensor(&self, name: &'static str) -> Option<&Shape> {
        match self.get(name) {
            ArgValue::Tensor(shape) => Some(shape),
            _ => None,
        }
    }

    pub fn is_set(&self, name: &'static str) -> bool {
        *self.get(name) != ArgValue::Unset
    }

    /// A [`Kind::Spatial`] argument, one size per spatial axis (an integer stands for all
    /// of them), each checked against `min`.
    fn spatial_at_least<const N: usize>(&self, name: &'static str, min: i64) -> Result<[u64; N], OpError> {
        let sizes: [i64; N] = match self.get(name) {
            ArgValue::Int(v) => [*v; N],
            // The binding checked the tuple's length against the parameter's kind.
            ArgValue::Dims(d) => d.as_slice().try_into().expect("a tuple of the parameter's length"),
            _ => unreachable!("`{name}` is not an integer parameter"),
        };
        for v in sizes {
            if v < min {
                let what = if min == 0 { "at least 0" } else { "at least 1" };
                return Err(OpError::new(Code::Value, format!("`{name}` must be {what}, but is {v}"))
                    .label(format!("`{name}` is {v}"))
                    .at(name));
            }
        }
        Ok(sizes.map(|v| v as u64))
    }

    pub fn positive_sizes<const N: usize>(&self, name: &'static str) -> Result<[u64; N], OpError> {
        self.spatial_at_least(name, 1)
    }

    pub fn non_negative_sizes<const N: usize>(&self, name: &'static str) -> Result<[u64; N], OpError> {
        self.spatial_at_least(name, 0)
    }

    pub fn positive_int(&self, name: &'static str) -> Result<u64, OpError> {
        self.spatial_at_least::<1>(name, 1).map(|[v]| v)
    }

    pub fn int(&self, name: &'static str) -> i64 {
        match self.get(name) {
            ArgValue::Int(v) => *v,
            _ => unreachable!("`{name}` is not an integer parameter"),
        }
    }

    /// The integers of a [`Kind::Ints`] or [`Kind::Dims`] parameter, and whether they were
    /// given as a tuple.
    pub fn ints(&self, name: &'static str) -> (Vec<i64>, bool) {
        match self.get(name) {
            ArgValue::Int(v) => (vec![*v], false),
            ArgValue::Dims(d) => (d.clone(), true),
            _ => unreachable!("`{name}` is not an integers parameter"),
        }
    }

    /// Sizes given as an integer or a tuple, each checked to be at least 1; `None` if unset.
    pub fn positive_dims(&self, name: &'static str) -> Result<Option<Vec<u64>>, OpError> {
        let dims = match self.get(name) {
            ArgValue::Unset => return Ok(None),
            ArgValue::Int(v) => vec![*v],
            ArgValue::Dims(d) => d.clone(),
            _ => unreachable!("`{name}` is not a sizes parameter"),
        };
        if dims.is_empty() {
            return Err(OpError::new(Code::Value, format!("`{name}` must hold at least one size")).at(name));
        }
        if let Some(v) = dims.iter().find(|&&v| v < 1) {
            return Err(OpError::new(Code::Value, format!("`{name}` must be at least 1, but holds {v}"))
                .label(format!("`{name}` holds {v}"))
                .at(name));
        }
        Ok(Some(dims.into_iter().map(|v| v as u64).collect()))
    }
}

/// What a layer produces. Its parameter count is derived from the op's tensors, so that the
/// layout of a layer's parameters is spelled once, in its [`Layer::tensors`](super::Layer).
pub struct Built {
    pub op: Op,
    pub shape: Shape,
    /// Trained parameters (buffers are not counted, as in PyTorch's `parameters()`).
    pub params: u64,
    pub macs: u64,
}

impl Built {
    /// A layer with `macs` multiply-adds per example.
    pub fn new(op: Op, shape: Shape, macs: u64) -> Result<Built, OpError> {
        let params = param_count(&op.layer().tensors())?;
        Ok(Built { op, shape, params, macs })
    }

    /// A layer without multiply-adds.
    pub fn free(op: Op, shape: Shape) -> Result<Built, OpError> {
        Built::new(op, shape, 0)
    }

    /// A layer whose multiply-adds torchinfo counts as one per trained parameter, once per
    /// example, whatever the input's size (its rule for a `weight` or `bias` of a module other
    /// than a convolution): batch and layer norm's scale and shift, PReLU's slopes. nnc
    /// follows it.
    pub fn per_parameter(op: Op, shape: Shape) -> Result<Built, OpError> {
        let mut built = Built::free(op, shape)?;
        built.macs = built.params;
        Ok(built)
    }
}

/// The elements of the trained tensors, or an error naming the sizes that overflow.
pub fn param_count(tensors: &[TensorSpec]) -> Result<u64, OpError> {
    tensors.iter().filter(|t| t.trained).try_fold(0u64, |acc, t| {
        acc.checked_add(product("parameter count", &t.dims)?).ok_or_else(|| {
            OpError::new(Code::Arithmetic, "the parameter count of this layer overflows 64 bits")
        })
    })
}
