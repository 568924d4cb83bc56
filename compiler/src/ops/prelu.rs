//! `prelu(num_parameters=1, init=0.25)`: PyTorch's `nn.PReLU`, `x` where positive and `a · x`
//! elsewhere, with trained slopes `a`: one shared by every channel, or one per channel
//! (dimension 1), each starting at `init`.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::layer::py_float;
use super::{
    attributes, ArgValue, Args, Built, InitRule, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks,
    TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static PRELU: OpSpec = OpSpec {
    name: "prelu",
    summary: "x where x > 0, a · x elsewhere, with trained slopes a (one, or one per channel)",
    torch: "nn.PReLU",
    ranks: Ranks::AtLeast(1),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("num_parameters", Kind::Int, ArgValue::Int(1)),
        ParamSpec::optional("init", Kind::Float, ArgValue::Float(0.25)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let num_parameters = args.positive_int("num_parameters")?;
    let init = args.finite_float("init")?;
    // libtorch's prelu takes dimension 1 as the channels, and an input of the batch alone as
    // one channel; it refuses other slope counts only when run, so nnc refuses them here.
    let channels = input.dims.first().copied().unwrap_or(1);
    if num_parameters != 1 && num_parameters != channels {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`prelu` has {num_parameters} slopes, but its input {input} has {channels} channels"),
        )
        .label(format!("`num_parameters` is {num_parameters}; the input here is {input}"))
        .note("PyTorch's PReLU needs one slope shared by all channels, or one per channel (dimension 1)")
        .hint(format!("write `num_parameters={channels}`, or leave it out for one shared slope"))
        .at("num_parameters"));
    }
    // torchinfo counts one multiply-add per slope, whatever the input's size.
    Built::per_parameter(Op::Prelu(Prelu { num_parameters, init }), input.clone())
}

attributes! {
    pub struct Prelu {
        pub num_parameters: u64,
        pub init: f64,
    }
}

impl Layer for Prelu {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// The slope per channel (dimension 1), shaped to broadcast as ONNX aligns from the end.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let weight = g.tensor("weight")?;
        let trailing = g.input(0).dims.len().saturating_sub(1);
        if self.num_parameters == 1 || trailing == 0 {
            return Ok(g.node("PRelu", &[&xs[0], &weight], vec![]));
        }
        let shape: Vec<i64> = std::iter::once(-1).chain(std::iter::repeat_n(1, trailing)).collect();
        let shape = g.ints("slope_shape", &shape);
        let slope = g.node("Reshape", &[&weight, &shape], vec![]);
        Ok(g.node("PRelu", &[&xs[0], &slope], vec![]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.num_parameters == 1 { "" } else { "s" };
        write!(f, "prelu {} slope{plural}, init {}", self.num_parameters, self.init)
    }

    /// The slopes, `weight` as `nn.PReLU` names it, each starting at `init`.
    fn tensors(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::trained("weight", &[self.num_parameters], InitRule::Const(self.init))]
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.PReLU(num_parameters={}, init={})",
            self.num_parameters,
            py_float(self.init)
        ))
    }
}
