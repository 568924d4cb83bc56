//! `adaptive_avgpool(output)`: average pooling to a requested height and width.

use std::fmt;

use super::layer::py_pair;
use super::{
    attributes, expect_image, Args, Built, Family, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch,
    Ranks, SizeOrigin,
};
use crate::shape::Shape;

pub static ADAPTIVE_AVGPOOL: OpSpec = OpSpec {
    name: "adaptive_avgpool",
    summary: "average pooling to a requested height and width, whatever the input's",
    torch: "nn.AdaptiveAvgPool2d",
    ranks: Ranks::Exactly(&[4]),
    params: &[ParamSpec::required("output", Kind::Pair)],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let [channels, _, _] = expect_image("adaptive_avgpool", input)?;
    let output = args.positive_pair("output")?;
    let op = Op::AdaptiveAvgPool2d(AdaptiveAvgPool2d { output });
    Built::free(op, input.with_dims(vec![channels, output[0], output[1]]))
}

attributes! {
    pub struct AdaptiveAvgPool2d {
        pub output: [u64; 2],
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "adaptive_avgpool {}×{}", self.output[0], self.output[1])
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.AdaptiveAvgPool2d({})", py_pair(self.output)))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Set("from adaptive pooling")
    }

    fn family(&self) -> Family {
        Family::Pooling
    }
}
