//! `conv2d(out_channels, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)`:
//! PyTorch's `nn.Conv2d` with the input channels inferred.

use super::{expect_image, product, window_output, ArgValue, Args, Built, Kind, OpError, OpSpec, ParamSpec};
use crate::diagnostic::Code;
use crate::ir::{Conv2d, Op};
use crate::shape::{Shape, Window};

pub static CONV2D: OpSpec = OpSpec {
    name: "conv2d",
    params: &[
        ParamSpec::required("out_channels", Kind::Int),
        ParamSpec::required("kernel", Kind::Pair),
        ParamSpec::optional("stride", Kind::Pair, ArgValue::Int(1)),
        ParamSpec::optional("padding", Kind::Pair, ArgValue::Int(0)),
        ParamSpec::optional("dilation", Kind::Pair, ArgValue::Int(1)),
        ParamSpec::optional("groups", Kind::Int, ArgValue::Int(1)),
        ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let [in_channels, height, width] = expect_image("conv2d", input)?;
    let out_channels = args.positive_int("out_channels")?;
    let kernel = args.positive_pair("kernel")?;
    let stride = args.positive_pair("stride")?;
    let padding = args.non_negative_pair("padding")?;
    let dilation = args.positive_pair("dilation")?;
    let groups = args.positive_int("groups")?;
    let bias = args.bool("bias");
    for (what, channels) in [("input", in_channels), ("output", out_channels)] {
        if channels % groups != 0 {
            return Err(OpError::new(
                Code::Value,
                format!("`groups={groups}` must divide the {what} channels, {channels}"),
            )
            .label(format!("{channels} {what} channels cannot be split into {groups} groups"))
            .at("groups"));
        }
    }
    let axis = |i: usize, input_size| Window {
        input: input_size,
        kernel: kernel[i],
        stride: stride[i],
        padding: padding[i],
        dilation: dilation[i],
        ceil_mode: false,
    };
    let out_h = window_output("conv2d", "height", axis(0, height), input)?;
    let out_w = window_output("conv2d", "width", axis(1, width), input)?;
    let per_output = product("multiply-add count", &[in_channels / groups, kernel[0], kernel[1]])?;
    let weights = product("parameter count", &[out_channels, per_output])?;
    let params = weights.checked_add(if bias { out_channels } else { 0 }).ok_or_else(|| {
        OpError::new(Code::Arithmetic, "the parameter count of this layer overflows 64 bits")
    })?;
    // Counted as torchinfo counts them: one per weight use, plus one per bias add.
    let macs = product("multiply-add count", &[out_channels, out_h, out_w, per_output + u64::from(bias)])?;
    let op =
        Op::Conv2d(Conv2d { in_channels, out_channels, kernel, stride, padding, dilation, groups, bias });
    Ok(Built { op, shape: input.with_dims(vec![out_channels, out_h, out_w]), params, macs })
}
