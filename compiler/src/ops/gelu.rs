//! `gelu(approximate="none")`: PyTorch's `nn.GELU`, `x · Φ(x)` with the normal distribution's
//! CDF computed exactly (through erf), or by its tanh approximation for `approximate="tanh"`,
//! as GPT-2 and BERT's original code compute it.

use std::fmt;

use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::shape::{DType, Shape};

pub static GELU: OpSpec = OpSpec {
    name: "gelu",
    summary: "x · Φ(x): exact (erf), or its tanh approximation with approximate=\"tanh\"",
    torch: "nn.GELU",
    ranks: Ranks::AtLeast(1),
    takes: DType::Float,
    params: &[ParamSpec::optional("approximate", Kind::Choice(&["none", "tanh"]), ArgValue::Choice("none"))],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    Built::free(Op::Gelu(Gelu { approximate: args.choice("approximate") }), input.clone())
}

attributes! {
    pub struct Gelu {
        /// `"none"` or `"tanh"`, PyTorch's own spelling, which libtorch's `gelu` takes as it is.
        pub approximate: &'static str,
    }
}

impl Layer for Gelu {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.approximate {
            "none" => f.write_str("gelu"),
            other => write!(f, "gelu {other}"),
        }
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.GELU(approximate='{}')", self.approximate))
    }
}
