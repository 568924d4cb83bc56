//! `dropout(p=0.5)`: keeps the shape.

use super::{ArgValue, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::diagnostic::Code;
use crate::ir::Op;
use crate::shape::Shape;

pub static DROPOUT: OpSpec =
    OpSpec { name: "dropout", params: &[ParamSpec::optional("p", Kind::Float, ArgValue::Float(0.5))], apply };

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let p = args.float("p");
    if !(0.0..=1.0).contains(&p) {
        return Err(OpError::new(
            Code::Value,
            format!("`p` is a probability and must lie in [0, 1], but is {p}"),
        )
        .label(format!("p = {p}"))
        .at("p"));
    }
    Built::free(Op::Dropout { p }, input.clone())
}
