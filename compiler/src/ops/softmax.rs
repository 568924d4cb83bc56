//! `softmax(dim=-1)` and `log_softmax(dim=-1)`: keep the shape; `dim` counts the batch as 0
//! and may be negative. nnc's default is -1 where PyTorch's modules default to `dim=None`, a
//! legacy implicit choice that warns; the modules are always emitted with the dimension.

use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};
use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

macro_rules! softmax {
    ($spec:ident, $ty:ident, $name:literal, $summary:literal, $torch:literal, $onnx:literal) => {
        pub static $spec: OpSpec = OpSpec {
            name: $name,
            summary: $summary,
            torch: $torch,
            ranks: Ranks::AtLeast(2),
            takes: DType::Float,
            params: &[ParamSpec::optional("dim", Kind::Int, ArgValue::Int(-1))],
            apply: |args: &Args, input: &Shape| -> Result<Built, OpError> {
                let dim = super::flatten::axis(args, "dim", input)?;
                Built::free(Op::$ty($ty { dim }), input.clone())
            },
        };

        attributes! {
            pub struct $ty {
                pub dim: usize,
            }
        }

        impl Layer for $ty {
            fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
                super::free_same(xs)
            }

            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, " dim {}"), self.dim)
            }

            fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
                Ok(g.node($onnx, &[&xs[0]], vec![("axis", Attr::Int(self.dim as i64))]))
            }

            fn pytorch(&self, _: &[String]) -> PyTorch {
                PyTorch::Module(format!(concat!($torch, "(dim={})"), self.dim))
            }
        }
    };
}

softmax!(
    SOFTMAX,
    Softmax,
    "softmax",
    "softmax along `dim` (the batch is dimension 0; negative counts from the end)",
    "nn.Softmax",
    "Softmax"
);
softmax!(
    LOG_SOFTMAX,
    LogSoftmax,
    "log_softmax",
    "log of the softmax along `dim`, computed stably (the batch is dimension 0; negative counts from the end)",
    "nn.LogSoftmax",
    "LogSoftmax"
);
