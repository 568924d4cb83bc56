//! `maxpool(kernel, stride=kernel, padding=0, dilation=1, ceil_mode=false)` and
//! `avgpool(kernel, stride=kernel, padding=0, ceil_mode=false, count_include_pad=true)`.

use super::{expect_image, window_output, ArgValue, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::diagnostic::Code;
use crate::ir::{Op, Pool2d};
use crate::shape::{Shape, Window};

pub static MAXPOOL: OpSpec = OpSpec {
    name: "maxpool",
    params: &[
        ParamSpec::required("kernel", Kind::Pair),
        ParamSpec::optional("stride", Kind::Pair, ArgValue::Unset),
        ParamSpec::optional("padding", Kind::Pair, ArgValue::Int(0)),
        ParamSpec::optional("dilation", Kind::Pair, ArgValue::Int(1)),
        ParamSpec::optional("ceil_mode", Kind::Bool, ArgValue::Bool(false)),
    ],
    apply: |args, input| apply("maxpool", args, input),
};

pub static AVGPOOL: OpSpec = OpSpec {
    name: "avgpool",
    params: &[
        ParamSpec::required("kernel", Kind::Pair),
        ParamSpec::optional("stride", Kind::Pair, ArgValue::Unset),
        ParamSpec::optional("padding", Kind::Pair, ArgValue::Int(0)),
        ParamSpec::optional("ceil_mode", Kind::Bool, ArgValue::Bool(false)),
        ParamSpec::optional("count_include_pad", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply: |args, input| apply("avgpool", args, input),
};

fn apply(name: &str, args: &Args, input: &Shape) -> Result<Built, OpError> {
    let [channels, height, width] = expect_image(name, input)?;
    let kernel = args.positive_pair("kernel")?;
    // PyTorch: the stride defaults to the kernel size.
    let stride = if args.is_set("stride") { args.positive_pair("stride")? } else { kernel };
    let padding = args.non_negative_pair("padding")?;
    let is_max = name == "maxpool";
    let dilation = if is_max { args.positive_pair("dilation")? } else { [1, 1] };
    let ceil_mode = args.bool("ceil_mode");
    // PyTorch's rule (`pool2d_shape_check`): padding at most half the kernel, rounded down,
    // whatever the dilation.
    for i in 0..2 {
        if padding[i] > kernel[i] / 2 {
            return Err(OpError::new(
                Code::Value,
                format!("`padding` must be at most half the kernel, but {} > {} / 2", padding[i], kernel[i]),
            )
            .label("PyTorch rejects this padding")
            .hint(format!("use `padding={}` or less", kernel[i] / 2))
            .at("padding"));
        }
    }
    let axis = |i: usize, size| Window {
        input: size,
        kernel: kernel[i],
        stride: stride[i],
        padding: padding[i],
        dilation: dilation[i],
        ceil_mode,
    };
    let out_h = window_output(name, "height", axis(0, height), input)?;
    let out_w = window_output(name, "width", axis(1, width), input)?;
    let pool = Pool2d {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
        count_include_pad: !is_max && args.bool("count_include_pad"),
    };
    let op = if is_max { Op::MaxPool2d(pool) } else { Op::AvgPool2d(pool) };
    Built::free(op, input.with_dims(vec![channels, out_h, out_w]))
}
