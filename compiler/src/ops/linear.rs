//! `linear(out_features, bias=true)`: PyTorch's `nn.Linear` with `in_features` inferred from
//! the last dimension.

use super::{product, ArgValue, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::diagnostic::Code;
use crate::ir::Op;
use crate::shape::Shape;

pub static LINEAR: OpSpec = OpSpec {
    name: "linear",
    params: &[
        ParamSpec::required("out_features", Kind::Int),
        ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let Some(&in_features) = input.dims.last() else {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`linear` needs features to act on, but gets {input}"),
        ));
    };
    let out_features = args.positive_int("out_features")?;
    let bias = args.bool("bias");
    let weights = product("parameter count", &[in_features, out_features])?;
    let params = weights.checked_add(if bias { out_features } else { 0 }).ok_or_else(|| {
        OpError::new(Code::Arithmetic, "the parameter count of this layer overflows 64 bits")
    })?;
    // Applied to every position of the other dimensions.
    let positions = product("multiply-add count", &input.dims[..input.dims.len() - 1])?;
    // Counted as torchinfo counts them: one per weight use, plus one per bias add.
    let macs = product("multiply-add count", &[positions, params])?;
    let mut dims = input.dims.clone();
    *dims.last_mut().expect("non-empty") = out_features;
    Ok(Built {
        op: Op::Linear { in_features, out_features, bias },
        shape: input.with_dims(dims),
        params,
        macs,
    })
}
