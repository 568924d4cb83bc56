//! `softmax(dim=-1)`: keeps the shape; `dim` counts the batch as 0 and may be negative.

use std::fmt;

use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::shape::Shape;

pub static SOFTMAX: OpSpec = OpSpec {
    name: "softmax",
    summary: "softmax along `dim` (the batch is dimension 0; negative counts from the end)",
    torch: "nn.Softmax",
    ranks: Ranks::AtLeast(2),
    params: &[ParamSpec::optional("dim", Kind::Int, ArgValue::Int(-1))],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let dim = super::flatten::axis(args, "dim", input)?;
    Built::free(Op::Softmax(Softmax { dim }), input.clone())
}

attributes! {
    pub struct Softmax {
        pub dim: usize,
    }
}

impl Layer for Softmax {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "softmax dim {}", self.dim)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.Softmax(dim={})", self.dim))
    }
}
