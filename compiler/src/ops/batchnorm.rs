//! `batchnorm(eps=1e-5, momentum=0.1)`: `BatchNorm1d` on `[N, C]` and `[N, C, L]`,
//! `BatchNorm2d` on `[N, C, H, W]`; the number of features is inferred.

use std::fmt;

use super::layer::py_float;
use super::{
    attributes, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec, ParamSpec,
    PyTorch, Ranks, TensorSpec,
};
use crate::diagnostic::Code;
use crate::shape::Shape;

pub static BATCHNORM: OpSpec = OpSpec {
    name: "batchnorm",
    summary:
        "batch normalisation over dimension 1 (1d on rank 2 or 3, 2d on rank 4); the features are inferred",
    torch: "nn.BatchNorm1d, nn.BatchNorm2d",
    ranks: Ranks::Exactly(&[2, 3, 4]),
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
            format!("`batchnorm` needs an input of rank 2, 3 or 4, but gets {input}"),
        )
        .label(format!("the input here is {input}")));
    }
    let eps = args.float("eps");
    if eps.is_nan() || eps <= 0.0 {
        return Err(OpError::new(Code::Value, format!("`eps` must be positive, but is {eps}")).at("eps"));
    }
    let momentum = args.float("momentum");
    if !(0.0..=1.0).contains(&momentum) {
        return Err(OpError::new(Code::Value, format!("`momentum` must lie in [0, 1], but is {momentum}"))
            .at("momentum"));
    }
    let features = input.dims[0];
    Built::per_parameter(Op::BatchNorm(BatchNorm { features, eps, momentum, rank }), input.clone())
}

attributes! {
    /// Batch normalisation over dimension 1: `BatchNorm1d` on rank 2 or 3, `BatchNorm2d` on
    /// rank 4.
    pub struct BatchNorm {
        pub features: u64,
        pub eps: f64,
        pub momentum: f64,
        pub rank: usize,
    }
}

impl Layer for BatchNorm {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batchnorm{} {}", if self.rank == 4 { "2d" } else { "1d" }, self.features)
    }

    /// A trained weight and bias per feature; the running statistics and the count of
    /// training batches are buffers, as in PyTorch's `state_dict`.
    fn tensors(&self) -> Vec<TensorSpec> {
        let n = &[self.features];
        vec![
            TensorSpec::trained("weight", n, InitRule::Const(1.0)),
            TensorSpec::trained("bias", n, InitRule::Const(0.0)),
            TensorSpec::buffer("running_mean", n, InitRule::Const(0.0)),
            TensorSpec::buffer("running_var", n, InitRule::Const(1.0)),
            TensorSpec::buffer("num_batches_tracked", &[], InitRule::Count),
        ]
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let kind = if self.rank == 4 { "BatchNorm2d" } else { "BatchNorm1d" };
        PyTorch::Module(format!(
            "nn.{kind}({}, eps={}, momentum={})",
            self.features,
            py_float(self.eps),
            py_float(self.momentum)
        ))
    }

    fn family(&self) -> Family {
        Family::Normalisation
    }
}
