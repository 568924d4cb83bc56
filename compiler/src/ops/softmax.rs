//! `softmax(dim=-1)`: keeps the shape; `dim` counts the batch as 0 and may be negative.

use super::{ArgValue, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::ir::Op;
use crate::shape::Shape;

pub static SOFTMAX: OpSpec =
    OpSpec { name: "softmax", params: &[ParamSpec::optional("dim", Kind::Int, ArgValue::Int(-1))], apply };

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let dim = super::flatten::axis(args, "dim", input)?;
    Built::free(Op::Softmax { dim }, input.clone())
}
