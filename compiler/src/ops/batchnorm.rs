//! `batchnorm(eps=1e-5, momentum=0.1)`: `BatchNorm1d` on `[N, C]` and `[N, C, L]`,
//! `BatchNorm2d` on `[N, C, H, W]`, `BatchNorm3d` on `[N, C, D, H, W]`; the number of features
//! is inferred. Also what the normalisations over dimension 1 share: the checks of `eps` and
//! `momentum`, and `_NormBase`'s tensors.

use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::layer::py_float;
use super::{
    attributes, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec, ParamSpec,
    PyTorch, Ranks, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static BATCHNORM: OpSpec = OpSpec {
    name: "batchnorm",
    summary:
        "batch normalisation over dimension 1 (1d on rank 2 or 3, 2d on rank 4, 3d on rank 5); the features are inferred",
    torch: "nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d",
    ranks: Ranks::Exactly(&[2, 3, 4, 5]),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("momentum", Kind::Float, ArgValue::Float(0.1)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let rank = input.rank();
    if !BATCHNORM.ranks.accepts(rank) {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`batchnorm` needs an input of rank 2, 3, 4 or 5, but gets {input}"),
        )
        .label(format!("the input here is {input}")));
    }
    let (eps, momentum) = (eps(args)?, momentum(args)?);
    let features = input.dims[0];
    Built::per_parameter(Op::BatchNorm(BatchNorm { features, eps, momentum, rank }), input.clone())
}

/// The `eps` every normalisation adds to the variance: positive, or the division by the
/// standard deviation of a constant input is a division by zero.
pub(super) fn eps(args: &Args) -> Result<f64, OpError> {
    let eps = args.float("eps");
    if eps.is_nan() || eps <= 0.0 {
        return Err(OpError::new(Code::Value, format!("`eps` must be positive, but is {eps}")).at("eps"));
    }
    Ok(eps)
}

/// The weight of the new batch's statistics in the running ones.
pub(super) fn momentum(args: &Args) -> Result<f64, OpError> {
    let momentum = args.float("momentum");
    if !(0.0..=1.0).contains(&momentum) {
        return Err(OpError::new(Code::Value, format!("`momentum` must lie in [0, 1], but is {momentum}"))
            .at("momentum"));
    }
    Ok(momentum)
}

/// The tensors of PyTorch's `_NormBase` (batch and instance norm) over `features` channels, in
/// its `state_dict` order: with `affine`, a trained weight (ones) and bias (zeros); with
/// `track_running_stats`, the running statistics and the count of training batches, buffers.
pub(super) fn norm_tensors(features: u64, affine: bool, track_running_stats: bool) -> Vec<TensorSpec> {
    let n = &[features];
    let mut tensors = Vec::with_capacity(5);
    if affine {
        tensors.push(TensorSpec::trained("weight", n, InitRule::Const(1.0)));
        tensors.push(TensorSpec::trained("bias", n, InitRule::Const(0.0)));
    }
    if track_running_stats {
        tensors.push(TensorSpec::buffer("running_mean", n, InitRule::Const(0.0)));
        tensors.push(TensorSpec::buffer("running_var", n, InitRule::Const(1.0)));
        tensors.push(TensorSpec::buffer("num_batches_tracked", &[], InitRule::Count));
    }
    tensors
}

/// `1d`, `2d` or `3d`: the PyTorch module a normalisation over dimension 1 is, chosen by the
/// input's rank (batch included) as the module's `_check_input_dim` accepts it.
pub(super) fn spatial_suffix(rank: usize) -> &'static str {
    match rank {
        5 => "3d",
        4 => "2d",
        _ => "1d",
    }
}

attributes! {
    /// Batch normalisation over dimension 1: `BatchNorm1d` on rank 2 or 3, `BatchNorm2d` on
    /// rank 4, `BatchNorm3d` on rank 5.
    pub struct BatchNorm {
        pub features: u64,
        pub eps: f64,
        pub momentum: f64,
        pub rank: usize,
    }
}

impl Layer for BatchNorm {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// In evaluation, with the running statistics.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let names = ["weight", "bias", "running_mean", "running_var"].map(|t| g.tensor(t));
        let [w, b, m, v] = names;
        let (w, b, m, v) = (w?, b?, m?, v?);
        Ok(g.node(
            "BatchNormalization",
            &[&xs[0], &w, &b, &m, &v],
            vec![("epsilon", Attr::Float(self.eps as f32))],
        ))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batchnorm{} {}", spatial_suffix(self.rank), self.features)
    }

    /// A trained weight and bias per feature; the running statistics and the count of
    /// training batches are buffers, as in PyTorch's `state_dict`.
    fn tensors(&self) -> Vec<TensorSpec> {
        norm_tensors(self.features, true, true)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.BatchNorm{}({}, eps={}, momentum={})",
            spatial_suffix(self.rank),
            self.features,
            py_float(self.eps),
            py_float(self.momentum)
        ))
    }

    fn family(&self) -> Family {
        Family::Normalisation
    }
}
