//! `leaky_relu(negative_slope=0.01)`: `x` where positive, `negative_slope · x` elsewhere.

use std::fmt;

use super::layer::py_float;
use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::shape::Shape;

pub static LEAKY_RELU: OpSpec = OpSpec {
    name: "leaky_relu",
    summary: "x where x > 0, negative_slope · x elsewhere",
    torch: "nn.LeakyReLU",
    ranks: Ranks::AtLeast(1),
    params: &[ParamSpec::optional("negative_slope", Kind::Float, ArgValue::Float(0.01))],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let negative_slope = args.finite_float("negative_slope")?;
    Built::free(Op::LeakyRelu(LeakyRelu { negative_slope }), input.clone())
}

attributes! {
    pub struct LeakyRelu {
        pub negative_slope: f64,
    }
}

impl Layer for LeakyRelu {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leaky_relu {}", self.negative_slope)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.LeakyReLU(negative_slope={})", py_float(self.negative_slope)))
    }
}
