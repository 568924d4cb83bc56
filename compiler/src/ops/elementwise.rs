//! Layers that keep the shape and have no arguments: `relu`, `sigmoid`, `tanh`, `gelu`,
//! `identity`. Each is a unit struct; `elementwise!` declares its signature and description
//! from its name, its `torch.nn` module and its PyTorch function.

use std::fmt;

use super::{attributes, Args, Built, Layer, Op, OpError, OpSpec, PyTorch, Ranks};
use crate::shape::Shape;

macro_rules! elementwise {
    ($spec:ident, $ty:ident, $name:literal, $summary:literal, $torch:literal, $call:literal) => {
        pub static $spec: OpSpec = OpSpec {
            name: $name,
            summary: $summary,
            torch: $torch,
            ranks: Ranks::AtLeast(1),
            params: &[],
            apply: |_: &Args, input: &Shape| -> Result<Built, OpError> {
                Built::free(Op::$ty($ty), input.clone())
            },
        };

        attributes! {
            pub struct $ty;
        }

        impl Layer for $ty {
            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($name)
            }

            fn pytorch(&self, xs: &[String]) -> PyTorch {
                PyTorch::Expr(format!($call, x = xs[0]))
            }
        }
    };
}

elementwise!(RELU, Relu, "relu", "max(x, 0)", "nn.ReLU", "F.relu({x})");
elementwise!(SIGMOID, Sigmoid, "sigmoid", "1 / (1 + exp(-x))", "nn.Sigmoid", "torch.sigmoid({x})");
elementwise!(TANH, Tanh, "tanh", "the hyperbolic tangent", "nn.Tanh", "torch.tanh({x})");
elementwise!(GELU, Gelu, "gelu", "x · Φ(x), the exact (erf) GELU", "nn.GELU", "F.gelu({x})");
elementwise!(IDENTITY, Identity, "identity", "passes its input through", "nn.Identity", "{x}");
