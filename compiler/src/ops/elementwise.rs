//! Layers that keep the shape and have no arguments: `relu`, `relu6`, `sigmoid`, `tanh`,
//! `silu`, `hardswish`, `hardsigmoid`, `mish`, `identity`. Each is a unit struct; `elementwise!` declares its signature and description
//! from its name and its `torch.nn` module.

use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};
use super::{attributes, Args, Built, Layer, Op, OpError, OpSpec, PyTorch, Ranks};
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

macro_rules! elementwise {
    ($spec:ident, $ty:ident, $name:literal, $summary:literal, $torch:literal) => {
        pub static $spec: OpSpec = OpSpec {
            name: $name,
            summary: $summary,
            torch: $torch,
            ranks: Ranks::AtLeast(1),
            takes: DType::Float,
            params: &[],
            apply: |_: &Args, input: &Shape| -> Result<Built, OpError> {
                Built::free(Op::$ty($ty), input.clone())
            },
        };

        attributes! {
            pub struct $ty;
        }

        impl Layer for $ty {
            fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
                super::free_same(xs)
            }

            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($name)
            }

            fn pytorch(&self, _: &[String]) -> PyTorch {
                PyTorch::Module(concat!($torch, "()").to_string())
            }

            fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
                Ok(onnx(g, $name, &xs[0]))
            }
        }
    };
}

elementwise!(RELU, Relu, "relu", "max(x, 0)", "nn.ReLU");
elementwise!(SIGMOID, Sigmoid, "sigmoid", "1 / (1 + exp(-x))", "nn.Sigmoid");
elementwise!(TANH, Tanh, "tanh", "the hyperbolic tangent", "nn.Tanh");
elementwise!(RELU6, Relu6, "relu6", "min(max(x, 0), 6)", "nn.ReLU6");
elementwise!(SILU, Silu, "silu", "x · sigmoid(x), also called swish", "nn.SiLU");
elementwise!(HARDSWISH, Hardswish, "hardswish", "x · relu6(x + 3) / 6", "nn.Hardswish");
elementwise!(HARDSIGMOID, Hardsigmoid, "hardsigmoid", "relu6(x + 3) / 6", "nn.Hardsigmoid");
elementwise!(MISH, Mish, "mish", "x · tanh(softplus(x))", "nn.Mish");
elementwise!(IDENTITY, Identity, "identity", "passes its input through", "nn.Identity");

/// The ONNX spelling of the elementwise op named `name` (its `OpSpec` name).
fn onnx(g: &mut Onnx, name: &str, x: &str) -> String {
    match name {
        "relu" => g.node("Relu", &[x], vec![]),
        "sigmoid" => g.node("Sigmoid", &[x], vec![]),
        "tanh" => g.node("Tanh", &[x], vec![]),
        "relu6" => {
            let (low, high) = (g.scalar("min", 0.0), g.scalar("max", 6.0));
            g.node("Clip", &[x, &low, &high], vec![])
        }
        "silu" => g.times_input(x, "Sigmoid"),
        "hardswish" => g.node("HardSwish", &[x], vec![]),
        "hardsigmoid" => {
            g.node("HardSigmoid", &[x], vec![("alpha", Attr::Float(1.0 / 6.0)), ("beta", Attr::Float(0.5))])
        }
        // ONNX's `Mish` is opset 18's: x · tanh(softplus(x)).
        "mish" => {
            let softplus = g.node("Softplus", &[x], vec![]);
            let tanh = g.node("Tanh", &[&softplus], vec![]);
            g.node("Mul", &[x, &tanh], vec![])
        }
        _ => x.to_string(),
    }
}
