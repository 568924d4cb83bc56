//! `maxpool(kernel, stride=kernel, padding=0, dilation=1, ceil_mode=false)` and
//! `avgpool(kernel, stride=kernel, padding=0, ceil_mode=false, count_include_pad=true)`.

use std::fmt;

use super::layer::{describe_pair, py_bool, py_pair};
use super::{
    attributes, expect_image, window_output, ArgValue, Args, Built, Family, Kind, Layer, Op, OpError, OpSpec,
    ParamSpec, PyTorch, Ranks, SizeOrigin,
};
use crate::diagnostic::Code;
use crate::shape::{Shape, Window};

pub static MAXPOOL: OpSpec = OpSpec {
    name: "maxpool",
    summary: "2-D max pooling; the stride defaults to the kernel",
    torch: "nn.MaxPool2d",
    ranks: Ranks::Exactly(&[4]),
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
    summary: "2-D average pooling; the stride defaults to the kernel",
    torch: "nn.AvgPool2d",
    ranks: Ranks::Exactly(&[4]),
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
    let windows = [kernel, stride, padding, dilation];
    let out_h = window_output(name, "height", window(windows, ceil_mode, 0, height), input)?;
    let out_w = window_output(name, "width", window(windows, ceil_mode, 1, width), input)?;
    let op = if is_max {
        Op::MaxPool2d(MaxPool2d { kernel, stride, padding, dilation, ceil_mode })
    } else {
        let count_include_pad = args.bool("count_include_pad");
        Op::AvgPool2d(AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad })
    };
    Built::free(op, input.with_dims(vec![channels, out_h, out_w]))
}

attributes! {
    pub struct MaxPool2d {
        pub kernel: [u64; 2],
        pub stride: [u64; 2],
        pub padding: [u64; 2],
        pub dilation: [u64; 2],
        pub ceil_mode: bool,
    }
}

attributes! {
    pub struct AvgPool2d {
        pub kernel: [u64; 2],
        pub stride: [u64; 2],
        pub padding: [u64; 2],
        pub ceil_mode: bool,
        /// Whether zero padding counts in the average.
        pub count_include_pad: bool,
    }
}

/// The window of spatial axis `axis` over `input` elements, from the pooling's kernel, stride,
/// padding and dilation.
fn window(
    [kernel, stride, padding, dilation]: [[u64; 2]; 4],
    ceil_mode: bool,
    axis: usize,
    input: u64,
) -> Window {
    Window {
        input,
        kernel: kernel[axis],
        stride: stride[axis],
        padding: padding[axis],
        dilation: dilation[axis],
        ceil_mode,
    }
}

/// `maxpool 3×3, stride 2, padding 1`: what both poolings show.
fn describe_window(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    [kernel, stride, padding, dilation]: [[u64; 2]; 4],
    ceil_mode: bool,
) -> fmt::Result {
    write!(f, "{kind} {}×{}", kernel[0], kernel[1])?;
    if stride != kernel {
        describe_pair(f, "stride", stride, 0)?;
    }
    describe_pair(f, "padding", padding, 0)?;
    describe_pair(f, "dilation", dilation, 1)?;
    if ceil_mode {
        f.write_str(", ceil")?;
    }
    Ok(())
}

impl Layer for MaxPool2d {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe_window(f, "maxpool", [self.kernel, self.stride, self.padding, self.dilation], self.ceil_mode)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.MaxPool2d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
            py_pair(self.kernel),
            py_pair(self.stride),
            py_pair(self.padding),
            py_pair(self.dilation),
            py_bool(self.ceil_mode)
        ))
    }

    fn size_origin(&self, axis: usize, input: u64) -> SizeOrigin {
        let windows = [self.kernel, self.stride, self.padding, self.dilation];
        SizeOrigin::Window(window(windows, self.ceil_mode, axis, input))
    }

    fn family(&self) -> Family {
        Family::Pooling
    }
}

impl Layer for AvgPool2d {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe_window(f, "avgpool", [self.kernel, self.stride, self.padding, [1, 1]], self.ceil_mode)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.AvgPool2d(kernel_size={}, stride={}, padding={}, ceil_mode={}, count_include_pad={})",
            py_pair(self.kernel),
            py_pair(self.stride),
            py_pair(self.padding),
            py_bool(self.ceil_mode),
            py_bool(self.count_include_pad)
        ))
    }

    fn size_origin(&self, axis: usize, input: u64) -> SizeOrigin {
        let windows = [self.kernel, self.stride, self.padding, [1, 1]];
        SizeOrigin::Window(window(windows, self.ceil_mode, axis, input))
    }

    fn family(&self) -> Family {
        Family::Pooling
    }
}
