//! `gelu(approximate="none")`: PyTorch's `nn.GELU`, `x · Φ(x)` with the normal distribution's
//! CDF computed exactly (through erf), or by its tanh approximation for `approximate="tanh"`,
//! as GPT-2 and BERT's original code compute it.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

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
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// Opset 17 has no `Gelu`: x · Φ(x) as PyTorch writes it, with erf, or its tanh
    /// approximation.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let x = xs[0].as_str();
        let phi = match self.approximate {
            "tanh" => {
                // 0.5 · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
                let cube = g.scalar("three", 3.0);
                let cube = g.node("Pow", &[x, &cube], vec![]);
                let c = g.scalar("c", 0.044715);
                let cube = g.node("Mul", &[&cube, &c], vec![]);
                let inner = g.node("Add", &[x, &cube], vec![]);
                let k = g.scalar("sqrt_2_over_pi", (2.0 / std::f64::consts::PI).sqrt() as f32);
                let inner = g.node("Mul", &[&inner, &k], vec![]);
                g.node("Tanh", &[&inner], vec![])
            }
            _ => {
                // 0.5 · (1 + erf(x / √2))
                let root = g.scalar("sqrt_2", std::f32::consts::SQRT_2);
                let scaled = g.node("Div", &[x, &root], vec![]);
                g.node("Erf", &[&scaled], vec![])
            }
        };
        let one = g.scalar("one", 1.0);
        let phi = g.node("Add", &[&phi, &one], vec![]);
        let half = g.scalar("half", 0.5);
        let phi = g.node("Mul", &[&phi, &half], vec![]);
        Ok(g.node("Mul", &[x, &phi], vec![]))
    }

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
