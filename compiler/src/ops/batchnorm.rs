//! `batchnorm(eps=1e-5, momentum=0.1)`: `BatchNorm1d` on `[N, C]` and `[N, C, L]`,
//! `BatchNorm2d` on `[N, C, H, W]`; the number of features is inferred.

use super::{ArgValue, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::diagnostic::Code;
use crate::ir::Op;
use crate::shape::Shape;

pub static BATCHNORM: OpSpec = OpSpec {
    name: "batchnorm",
    params: &[
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("momentum", Kind::Float, ArgValue::Float(0.1)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let rank = input.rank();
    if !(2..=4).contains(&rank) {
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
    // A weight and a bias per feature; the running mean and variance are buffers.
    let params = features.checked_mul(2).ok_or_else(|| {
        OpError::new(Code::Arithmetic, "the parameter count of this layer overflows 64 bits")
    })?;
    let op = Op::BatchNorm { features, eps, momentum, rank };
    Ok(Built { op, shape: input.clone(), params, macs: 0 })
}
