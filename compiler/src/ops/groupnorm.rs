//! `groupnorm(num_groups, eps=1e-5, affine=true)`: PyTorch's `nn.GroupNorm`, normalising each
//! example over groups of its channels (dimension 1, inferred) and everything after them. It
//! keeps no running statistics, so it computes the same in training and evaluation.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::batchnorm::norm_tensors;
use super::layer::{py_bool, py_float};
use super::{
    attributes, wrong_rank, ArgValue, Args, Built, Family, Kind, Layer, Op, OpError, OpSpec, ParamSpec,
    PyTorch, Ranks, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static GROUPNORM: OpSpec = OpSpec {
    name: "groupnorm",
    summary:
        "normalises each example over groups of channels (dimension 1), then scales and shifts each channel",
    torch: "nn.GroupNorm",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[
        ParamSpec::required("num_groups", Kind::Int),
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("affine", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let num_groups = args.positive_int("num_groups")?;
    let Some(&num_channels) = input.dims.first() else {
        return Err(wrong_rank("groupnorm", "an input of rank 2 or more ([N, C, ...])", 2, input));
    };
    // nn.GroupNorm refuses this when it is built, libtorch's group_norm when it runs.
    if num_channels % num_groups != 0 {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`groupnorm` splits {num_channels} channels into {num_groups} groups, which does not divide them"),
        )
        .label(format!("{num_groups} groups; the input here is {input}"))
        .note("PyTorch's GroupNorm needs the channels (dimension 1) to be a multiple of `num_groups`")
        .hint(format!(
            "use a number of groups that divides {num_channels}, such as {}",
            gcd(num_channels, num_groups)
        ))
        .at("num_groups"));
    }
    let eps = super::batchnorm::eps(args)?;
    let affine = args.bool("affine");
    let op = Op::GroupNorm(GroupNorm { num_groups, num_channels, eps, affine });
    // torchinfo counts one multiply-add per scale and shift, whatever the input's size.
    Built::per_parameter(op, input.clone())
}

/// The greatest common divisor, for the hint: a number of groups that divides the channels,
/// no more than the groups asked for, found in a few steps whatever the sizes.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

attributes! {
    pub struct GroupNorm {
        pub num_groups: u64,
        pub num_channels: u64,
        pub eps: f64,
        pub affine: bool,
    }
}

impl Layer for GroupNorm {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// As PyTorch computes it: each group's elements normalised by their mean and (biased)
    /// variance, then the per-channel affine.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let grouped = g.reshape(&xs[0], &[self.num_groups as i64, -1]);
        let y = normalise_last(g, &grouped, self.eps);
        let y = g.reshape_to_output(&y);
        channel_affine(g, &y, self.affine)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "groupnorm {} groups of {}", self.num_groups, self.num_channels / self.num_groups)?;
        if !self.affine {
            f.write_str(", no affine")?;
        }
        Ok(())
    }

    /// With `affine`, a trained weight (ones) and bias (zeros) per channel, as `nn.GroupNorm`
    /// holds them (`_NormBase`'s affine tensors, without running statistics).
    fn tensors(&self) -> Vec<TensorSpec> {
        norm_tensors(self.num_channels, self.affine, false)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.GroupNorm({}, {}, eps={}, affine={})",
            self.num_groups,
            self.num_channels,
            py_float(self.eps),
            py_bool(self.affine)
        ))
    }

    fn family(&self) -> Family {
        Family::Normalisation
    }
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension of `x` (opset 17's `ReduceMean`,
/// axes an attribute).
pub(super) fn normalise_last(g: &mut Onnx, x: &str, eps: f64) -> String {
    use super::onnx::Attr;
    let axes = || vec![("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))];
    let mean = g.node("ReduceMean", &[x], axes());
    let centred = g.node("Sub", &[x, &mean], vec![]);
    let square = g.node("Mul", &[&centred, &centred], vec![]);
    let var = g.node("ReduceMean", &[&square], axes());
    let eps = g.scalar("eps", eps as f32);
    let var = g.node("Add", &[&var, &eps], vec![]);
    let std = g.node("Sqrt", &[&var], vec![]);
    g.node("Div", &[&centred, &std], vec![])
}

/// `x · weight + bias` per channel (dimension 1) where the layer is affine, else `x`.
pub(super) fn channel_affine(g: &mut Onnx, x: &str, affine: bool) -> Result<String, OnnxError> {
    if !affine {
        return Ok(x.to_string());
    }
    let trailing = g.output().dims.len() - 1;
    let shape: Vec<i64> = std::iter::once(-1).chain(std::iter::repeat_n(1, trailing)).collect();
    let shape = g.ints("channel_shape", &shape);
    let (w, b) = (g.tensor("weight")?, g.tensor("bias")?);
    let w = g.node("Reshape", &[&w, &shape], vec![]);
    let b = g.node("Reshape", &[&b, &shape], vec![]);
    let y = g.node("Mul", &[x, &w], vec![]);
    Ok(g.node("Add", &[&y, &b], vec![]))
}
