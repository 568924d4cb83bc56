//! `adaptive_avgpool(output)`: average pooling to a requested height and width.

use super::{expect_image, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::ir::Op;
use crate::shape::Shape;

pub static ADAPTIVE_AVGPOOL: OpSpec =
    OpSpec { name: "adaptive_avgpool", params: &[ParamSpec::required("output", Kind::Pair)], apply };

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let [channels, _, _] = expect_image("adaptive_avgpool", input)?;
    let output = args.positive_pair("output")?;
    Built::free(Op::AdaptiveAvgPool2d { output }, input.with_dims(vec![channels, output[0], output[1]]))
}
