//! `dropout(p=0.5)`: keeps the shape.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::layer::py_float;
use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static DROPOUT: OpSpec = OpSpec {
    name: "dropout",
    summary: "zeroes each element with probability p in training, scaling the rest by 1/(1-p)",
    torch: "nn.Dropout",
    ranks: Ranks::AtLeast(1),
    takes: DType::Float,
    params: &[ParamSpec::optional("p", Kind::Float, ArgValue::Float(0.5))],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let p = args.float("p");
    if !(0.0..=1.0).contains(&p) {
        return Err(OpError::new(
            Code::Value,
            format!("`p` is a probability and must lie in [0, 1], but is {p}"),
        )
        .label(format!("p = {p}"))
        .at("p"));
    }
    Built::free(Op::Dropout(Dropout { p }), input.clone())
}

attributes! {
    pub struct Dropout {
        pub p: f64,
    }
}

impl Layer for Dropout {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// The identity: the graph is the evaluation's.
    fn onnx(&self, _: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        Ok(xs[0].clone())
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dropout {}", self.p)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.Dropout(p={})", py_float(self.p)))
    }
}
