//! `permute(0, 2, 3, 1)` and `transpose(a, b)`: the dimensions reordered, as PyTorch's
//! `Tensor.permute` and `Tensor.transpose` reorder them. Dimensions count the batch as 0 and
//! may be negative; the batch must stay first.

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::{attributes, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static PERMUTE: OpSpec = OpSpec {
    name: "permute",
    summary: "reorders the dimensions (`permute(0, 2, 3, 1)`); the batch, dimension 0, stays first",
    torch: "Tensor.permute",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[ParamSpec::required("dims", Kind::Ints)],
    apply: permute,
};

pub static TRANSPOSE: OpSpec = OpSpec {
    name: "transpose",
    summary: "swaps dimensions `dim0` and `dim1` (not the batch)",
    torch: "Tensor.transpose",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[ParamSpec::required("dim0", Kind::Int), ParamSpec::required("dim1", Kind::Int)],
    apply: transpose,
};

fn permute(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let (written, _) = args.ints("dims");
    let rank = input.rank();
    let shown = format!("({})", written.iter().map(i64::to_string).collect::<Vec<_>>().join(", "));
    let bad = |message: String, label: String| OpError::new(Code::Value, message).label(label).at("dims");
    if written.len() != rank {
        return Err(bad(
            format!(
                "the permutation {shown} has {} dimensions, but the input {input} has {rank}",
                written.len()
            ),
            format!("must name each of the {rank} dimensions once"),
        ));
    }
    let mut dims = Vec::with_capacity(rank);
    for &d in &written {
        // As PyTorch resolves them: negative counts from the end. `d + rank` cannot overflow
        // where `d` is negative.
        let resolved = if d < 0 { d + rank as i64 } else { d };
        if !(0..rank as i64).contains(&resolved) {
            return Err(bad(
                format!("dimension {d} of the permutation {shown} is out of range for {input}"),
                format!("must lie in 0..{rank}, or be negative from the end"),
            ));
        }
        let resolved = resolved as usize;
        if dims.contains(&resolved) {
            return Err(bad(
                format!("the permutation {shown} names dimension {resolved} twice"),
                format!("each of 0..{rank} must appear once"),
            ));
        }
        dims.push(resolved);
    }
    if dims[0] != 0 {
        let moved = dims.iter().position(|&d| d == 0).unwrap_or(0);
        return Err(bad(
            format!("the permutation {shown} moves the batch, dimension 0, to position {moved}"),
            "the batch must stay first".into(),
        )
        .hint("layers keep the batch as dimension 0; permute the other dimensions only"));
    }
    let sizes = dims[1..].iter().map(|&d| input.dims[d - 1]).collect();
    Built::free(Op::Permute(Permute { dims: Cow::Owned(dims) }), input.with_dims(sizes))
}

fn transpose(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let dim0 = super::flatten::axis(args, "dim0", input)?;
    let dim1 = super::flatten::axis(args, "dim1", input)?;
    let mut dims = input.dims.clone();
    dims.swap(dim0 - 1, dim1 - 1);
    Built::free(Op::Transpose(Transpose { dim0, dim1 }), input.with_dims(dims))
}

attributes! {
    /// Every dimension, the batch (0) first.
    pub struct Permute {
        pub dims: Cow<'static, [usize]>,
    }
}

attributes! {
    pub struct Transpose {
        pub dim0: usize,
        pub dim1: usize,
    }
}

impl Layer for Permute {
    /// The sizes in the new order (free sizes come only with a batch, which stays first).
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        let x = xs.first()?;
        self.dims.get(1..)?.iter().map(|&d| x.get(d.checked_sub(1)?).cloned()).collect()
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        Ok(g.transpose(&xs[0], &self.dims))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "permute {:?}", self.dims)
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        let dims: Vec<String> = self.dims.iter().map(usize::to_string).collect();
        PyTorch::Expr(format!("{}.permute({})", xs[0], dims.join(", ")))
    }
}

impl Layer for Transpose {
    /// The sizes with two swapped.
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        let mut dims = xs.first()?.to_vec();
        let (a, b) = (self.dim0.checked_sub(1)?, self.dim1.checked_sub(1)?);
        if a.max(b) >= dims.len() {
            return None;
        }
        dims.swap(a, b);
        Some(dims)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let mut perm: Vec<usize> = (0..g.input(0).rank()).collect();
        perm.swap(self.dim0, self.dim1);
        Ok(g.transpose(&xs[0], &perm))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transpose {} and {}", self.dim0, self.dim1)
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("{}.transpose({}, {})", xs[0], self.dim0, self.dim1))
    }
}
