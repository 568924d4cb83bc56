//! `flatten(start=1, end=-1)`: merges dimensions `start..=end`; the batch always stays.

use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::{
    attributes, product, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks,
    SizeOrigin,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static FLATTEN: OpSpec = OpSpec {
    name: "flatten",
    summary: "merges dimensions start..=end into one; the batch always stays",
    torch: "nn.Flatten",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("start", Kind::Int, ArgValue::Int(1)),
        ParamSpec::optional("end", Kind::Int, ArgValue::Int(-1)),
    ],
    apply,
};

/// Resolves the axis argument `name` of `input` to 1..rank; axis 0, the batch, is refused.
pub fn axis(args: &Args, name: &'static str, input: &Shape) -> Result<usize, OpError> {
    super::axis(name, args.int(name), input)
}

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let start = axis(args, "start", input)?;
    let end = axis(args, "end", input)?;
    if end < start {
        return Err(
            OpError::new(Code::Value, format!("`end` ({end}) comes before `start` ({start})")).at("end")
        );
    }
    let (before, rest) = input.dims.split_at(start - 1);
    let (merged, after) = rest.split_at(end - start + 1);
    let mut dims = before.to_vec();
    dims.push(product("flattened size", merged)?);
    dims.extend_from_slice(after);
    Built::free(Op::Flatten(Flatten { start, end }), input.with_dims(dims))
}

attributes! {
    pub struct Flatten {
        pub start: usize,
        pub end: usize,
    }
}

impl Layer for Flatten {
    /// The product of the merged sizes (free sizes come only with a batch, which `start`
    /// and `end` count).
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], needs: &mut Needs) -> Option<Vec<Size>> {
        if let Some(known) = super::free_known(xs, out) {
            return Some(known);
        }
        let x = xs.first()?;
        let merged = x.get(self.start - 1..self.end)?.iter().try_fold(Size::known(1), |acc, d| acc.mul(d))?;
        // A product of sizes each at least 1.
        needs.implied(&merged);
        let mut dims = x[..self.start - 1].to_vec();
        dims.push(merged);
        dims.extend_from_slice(&x[self.end..]);
        Some(dims)
    }

    /// ONNX's `Flatten` where it flattens everything after the batch, else a `Reshape`.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        if self.start == 1 && self.end + 1 == g.input(0).rank() {
            return Ok(g.node("Flatten", &[&xs[0]], vec![("axis", Attr::Int(1))]));
        }
        Ok(g.reshape_to_output(&xs[0]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flatten {}..={}", self.start, self.end)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.Flatten({}, {})", self.start, self.end))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Lost
    }
}
