//! The convolutions over 1, 2 and 3 spatial axes, with the input channels inferred:
//!
//! - `conv1d/2d/3d(out_channels, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)`:
//!   PyTorch's `nn.Conv1d/2d/3d`; `padding` is an amount, or `"same"` or `"valid"` with
//!   PyTorch's meaning;
//! - `conv_transpose1d/2d/3d(out_channels, kernel, stride=1, padding=0, output_padding=0,
//!   groups=1, bias=true, dilation=1)`: PyTorch's `nn.ConvTranspose1d/2d/3d`, in its argument
//!   order.
//!
//! One shape rule serves every rank: `N` is the number of spatial axes, and every spatial
//! argument is an integer or a tuple of `N`.

use std::fmt;

use arrayvec::ArrayVec;

use super::onnx::{self as ox, Attr, Onnx, OnnxError};

use super::layer::{describe_sizes, describe_window, py_bool, py_tuple};
use super::{
    attributes, expect_spatial, product, spatial_axis, window_at, window_outputs, ArgValue, Args, Built,
    Family, InitRule, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks, SizeOrigin, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape, Window};
use crate::size::Size;

/// The convolution over `$n` spatial axes of an input laid out as `$layout`: its attribute
/// struct's name for that rank, and its signature.
macro_rules! conv {
    ($spec:ident, $variant:ident, $n:literal, $layout:literal) => {
        pub type $variant = Conv<$n>;
        pub static $spec: OpSpec = OpSpec {
            name: concat!("conv", $n, "d"),
            summary: concat!(
                $n,
                "-D convolution (cross-correlation) over ",
                $layout,
                "; the input channels are inferred"
            ),
            torch: concat!("nn.Conv", $n, "d"),
            ranks: Ranks::Exactly(&[$n + 2]),
            takes: DType::Float,
            params: &[
                ParamSpec::required("out_channels", Kind::Int),
                ParamSpec::required("kernel", Kind::Spatial($n)),
                ParamSpec::optional("stride", Kind::Spatial($n), ArgValue::Int(1)),
                ParamSpec::optional("padding", Kind::SpatialOr($n, &["same", "valid"]), ArgValue::Int(0)),
                ParamSpec::optional("dilation", Kind::Spatial($n), ArgValue::Int(1)),
                ParamSpec::optional("groups", Kind::Int, ArgValue::Int(1)),
                ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
            ],
            apply: |args, input| apply::<$n>(concat!("conv", $n, "d"), Op::$variant, args, input),
        };
    };
}

/// The transposed convolution over `$n` spatial axes, as [`conv!`] declares the convolution.
macro_rules! conv_transpose {
    ($spec:ident, $variant:ident, $n:literal, $layout:literal) => {
        pub type $variant = ConvTranspose<$n>;
        pub static $spec: OpSpec = OpSpec {
            name: concat!("conv_transpose", $n, "d"),
            summary: concat!(
                $n,
                "-D transposed convolution over ",
                $layout,
                " (upsamples by the stride); the input channels are inferred"
            ),
            torch: concat!("nn.ConvTranspose", $n, "d"),
            ranks: Ranks::Exactly(&[$n + 2]),
            takes: DType::Float,
            params: &[
                ParamSpec::required("out_channels", Kind::Int),
                ParamSpec::required("kernel", Kind::Spatial($n)),
                ParamSpec::optional("stride", Kind::Spatial($n), ArgValue::Int(1)),
                ParamSpec::optional("padding", Kind::Spatial($n), ArgValue::Int(0)),
                ParamSpec::optional("output_padding", Kind::Spatial($n), ArgValue::Int(0)),
                ParamSpec::optional("groups", Kind::Int, ArgValue::Int(1)),
                ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
                ParamSpec::optional("dilation", Kind::Spatial($n), ArgValue::Int(1)),
            ],
            apply: |args, input| {
                apply_transposed::<$n>(concat!("conv_transpose", $n, "d"), Op::$variant, args, input)
            },
        };
    };
}

conv!(CONV1D, Conv1d, 1, "[N, C, L]");
conv!(CONV2D, Conv2d, 2, "[N, C, H, W]");
conv!(CONV3D, Conv3d, 3, "[N, C, D, H, W]");
conv_transpose!(CONV_TRANSPOSE1D, ConvTranspose1d, 1, "[N, C, L]");
conv_transpose!(CONV_TRANSPOSE2D, ConvTranspose2d, 2, "[N, C, H, W]");
conv_transpose!(CONV_TRANSPOSE3D, ConvTranspose3d, 3, "[N, C, D, H, W]");

/// What both kinds of convolution take alike: channels, kernel, stride, dilation, groups and
/// bias, checked.
struct Common<const N: usize> {
    in_channels: u64,
    out_channels: u64,
    kernel: [u64; N],
    stride: [u64; N],
    dilation: [u64; N],
    groups: u64,
    bias: bool,
}

fn common<const N: usize>(args: &Args, input: &Shape, name: &str) -> Result<(Common<N>, [u64; N]), OpError> {
    let (in_channels, sizes) = expect_spatial::<N>(name, input)?;
    let out_channels = args.positive_int("out_channels")?;
    let kernel = args.positive_sizes("kernel")?;
    let stride = args.positive_sizes("stride")?;
    let dilation = args.positive_sizes("dilation")?;
    let groups = args.positive_int("groups")?;
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
    let bias = args.bool("bias");
    Ok((Common { in_channels, out_channels, kernel, stride, dilation, groups, bias }, sizes))
}

/// Sizes as the language writes them: `2`, or `(2, 1)`.
fn sizes_text(v: &[u64]) -> String {
    match v {
        [a, rest @ ..] if rest.iter().all(|b| b == a) => a.to_string(),
        _ => format!("({})", v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// The built layer, with its multiply-adds counted as torchinfo counts a convolution's (any
/// module whose class name holds "Conv", transposed too): each trained tensor's elements once
/// per output position.
fn built<const N: usize>(op: Op, input: &Shape, out_channels: u64, out: [u64; N]) -> Result<Built, OpError> {
    let mut dims = vec![out_channels];
    dims.extend(out);
    let mut built = Built::free(op, input.with_dims(dims))?;
    // On the stack: a convolution is built thousands of times a check (N is at most 3).
    let factors: ArrayVec<u64, 4> = out.into_iter().chain([built.params]).collect();
    built.macs = product("multiply-add count", &factors)?;
    Ok(built)
}

fn apply<const N: usize>(
    name: &str,
    wrap: fn(Conv<N>) -> Op,
    args: &Args,
    input: &Shape,
) -> Result<Built, OpError> {
    let (c, sizes) = common::<N>(args, input, name)?;
    let same = args.chosen("padding") == Some("same");
    let padding = match args.chosen("padding") {
        // PyTorch's `_conv_forward`: d·(k − 1) in all per axis, the smaller half before.
        Some("same") => std::array::from_fn(|i| c.dilation[i].saturating_mul(c.kernel[i] - 1) / 2),
        // "valid" is PyTorch's name for no padding.
        Some(_) => [0; N],
        None => args.non_negative_sizes("padding")?,
    };
    if same && c.stride.iter().any(|&s| s != 1) {
        let (shown, amount) = (sizes_text(&c.stride), sizes_text(&padding));
        return Err(OpError::new(
            Code::Value,
            format!("`padding=\"same\"` needs `stride=1`, but the stride is {shown}"),
        )
        .label(format!("`stride` is {shown}"))
        .note("PyTorch refuses it too: padding='same' is not supported for strided convolutions")
        .hint(format!(
            "give the padding as an amount, such as `padding={amount}`; with an odd kernel, the output \
                 size is then the input size divided by the stride, rounded up"
        ))
        .at("stride"));
    }
    let conv = Conv {
        in_channels: c.in_channels,
        out_channels: c.out_channels,
        kernel: c.kernel,
        stride: c.stride,
        padding,
        same,
        dilation: c.dilation,
        groups: c.groups,
        bias: c.bias,
    };
    // "same" pads so that a stride-1 window keeps every size, whatever the kernel.
    let out =
        if same { sizes } else { window_outputs(name, input, sizes, |axis, size| conv.window(axis, size))? };
    built(wrap(conv), input, c.out_channels, out)
}

fn apply_transposed<const N: usize>(
    name: &str,
    wrap: fn(ConvTranspose<N>) -> Op,
    args: &Args,
    input: &Shape,
) -> Result<Built, OpError> {
    let (c, sizes) = common::<N>(args, input, name)?;
    let padding = args.non_negative_sizes("padding")?;
    let output_padding: [u64; N] = args.non_negative_sizes("output_padding")?;
    for i in 0..N {
        // PyTorch's rule (`_output_padding`, and ConvTranspose's constructor): the extra rows
        // must lie within one stride or one dilation, else they would be a window of their own.
        if output_padding[i] >= c.stride[i] && output_padding[i] >= c.dilation[i] {
            let (op, stride, dilation) = (output_padding[i], c.stride[i], c.dilation[i]);
            let along = if N == 1 { String::new() } else { format!(" along the {},", spatial_axis(N, i).0) };
            return Err(OpError::new(
                Code::Value,
                format!(
                    "`output_padding` must be smaller than the stride or the dilation, but{along} {op} ≥ stride {stride} and {op} ≥ dilation {dilation}"
                ),
            )
            .label(format!("`output_padding` is {}", sizes_text(&output_padding)))
            .note("PyTorch refuses it too: output padding must be smaller than either stride or dilation")
            .hint(format!("use `output_padding={}` or less, or a larger stride", stride.max(dilation) - 1))
            .at("output_padding"));
        }
    }
    let conv = ConvTranspose {
        in_channels: c.in_channels,
        out_channels: c.out_channels,
        kernel: c.kernel,
        stride: c.stride,
        padding,
        output_padding,
        dilation: c.dilation,
        groups: c.groups,
        bias: c.bias,
    };
    let out = window_outputs(name, input, sizes, |axis, size| conv.window(axis, size))?;
    built(wrap(conv), input, c.out_channels, out)
}

attributes! {
    pub struct Conv<const N: usize> {
        pub in_channels: u64,
        pub out_channels: u64,
        pub kernel: [u64; N],
        pub stride: [u64; N],
        /// Each side's padding; with `same`, the first side's (the last side gets one more
        /// where d·(k − 1) is odd, as PyTorch pads).
        pub padding: [u64; N],
        /// `padding="same"`, which the runtime and PyTorch compute themselves from the kernel.
        pub same: bool,
        pub dilation: [u64; N],
        pub groups: u64,
        pub bias: bool,
    }
}

attributes! {
    pub struct ConvTranspose<const N: usize> {
        pub in_channels: u64,
        pub out_channels: u64,
        pub kernel: [u64; N],
        pub stride: [u64; N],
        /// What is cropped from each side of the full output.
        pub padding: [u64; N],
        /// What is added to the last side of each axis, to reach sizes a stride leaves ambiguous.
        pub output_padding: [u64; N],
        pub dilation: [u64; N],
        pub groups: u64,
        pub bias: bool,
    }
}

impl<const N: usize> Conv<N> {
    /// The window along spatial axis `axis` over `input` elements.
    fn window(&self, axis: usize, input: u64) -> Window {
        window_at([&self.kernel, &self.stride, &self.padding, &self.dilation], axis, input)
    }
}

impl<const N: usize> ConvTranspose<N> {
    /// The window along spatial axis `axis`, run backwards from `input` elements.
    fn window(&self, axis: usize, input: u64) -> Window {
        let window = window_at([&self.kernel, &self.stride, &self.padding, &self.dilation], axis, input);
        Window { transposed: Some(self.output_padding[axis]), ..window }
    }
}

/// The report's text of either convolution: `conv2d 3→8, 3×3, stride 2`, up to its padding.
fn describe_head<const N: usize>(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    [in_channels, out_channels]: [u64; 2],
    kernel: &[u64; N],
    stride: &[u64; N],
) -> fmt::Result {
    write!(f, "{kind}{N}d {in_channels}→{out_channels}, ")?;
    describe_window(f, kernel)?;
    describe_sizes(f, "stride", stride, 1)
}

/// The rest of the report's text: `, dilation 2, groups 2, no bias`.
fn describe_tail<const N: usize>(
    f: &mut fmt::Formatter<'_>,
    dilation: &[u64; N],
    groups: u64,
    bias: bool,
) -> fmt::Result {
    describe_sizes(f, "dilation", dilation, 1)?;
    if groups != 1 {
        write!(f, ", groups {groups}")?;
    }
    if !bias {
        f.write_str(", no bias")?;
    }
    Ok(())
}

/// The weight `[first, second / groups, kernel...]` (output channels first for a convolution,
/// input channels first for a transposed one, as PyTorch lays them out), and the bias.
fn tensors<const N: usize>(
    [first, second]: [u64; 2],
    groups: u64,
    kernel: &[u64; N],
    out_channels: u64,
    bias: bool,
) -> Vec<TensorSpec> {
    // On the stack, as `built`'s factors (the kernel has at most 3 axes).
    let mut weight: ArrayVec<u64, 5> = [first, second / groups].into_iter().collect();
    weight.extend(kernel.iter().copied());
    // PyTorch's fan-in is the weight's second dimension times the kernel, for both kinds.
    // Saturating: tensors are described before the shape rule has checked the counts.
    let fan_in = weight[1..].iter().fold(1u64, |acc, &d| acc.saturating_mul(d));
    let mut tensors = Vec::with_capacity(2);
    tensors.push(TensorSpec::trained("weight", &weight, InitRule::Weight));
    if bias {
        tensors.push(TensorSpec::trained("bias", &[out_channels], InitRule::Bias { fan_in }));
    }
    tensors
}

impl<const N: usize> Layer for Conv<N> {
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_spatial(self, xs, out)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        // With `same`, `padding` is the first side's; the last gets the rest of d·(k − 1).
        let end: Vec<u64> = match self.same {
            true => (0..N).map(|i| self.dilation[i] * (self.kernel[i] - 1) - self.padding[i]).collect(),
            false => self.padding.to_vec(),
        };
        let (weight, bias) = (g.tensor("weight")?, if self.bias { Some(g.tensor("bias")?) } else { None });
        let mut inputs = vec![xs[0].as_str(), &weight];
        inputs.extend(bias.as_deref());
        let attributes = vec![
            ("kernel_shape", ox::ints(&self.kernel)),
            ("strides", ox::ints(&self.stride)),
            ("pads", ox::pads(&self.padding, &end)),
            ("dilations", ox::ints(&self.dilation)),
            ("group", Attr::Int(self.groups as i64)),
        ];
        Ok(g.node("Conv", &inputs, attributes))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe_head(f, "conv", [self.in_channels, self.out_channels], &self.kernel, &self.stride)?;
        if self.same {
            f.write_str(", padding same")?;
        } else {
            describe_sizes(f, "padding", &self.padding, 0)?;
        }
        describe_tail(f, &self.dilation, self.groups, self.bias)
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        tensors(
            [self.out_channels, self.in_channels],
            self.groups,
            &self.kernel,
            self.out_channels,
            self.bias,
        )
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let padding = if self.same { "'same'".to_string() } else { py_tuple(&self.padding) };
        PyTorch::Module(format!(
            "nn.Conv{N}d({}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={})",
            self.in_channels,
            self.out_channels,
            py_tuple(&self.kernel),
            py_tuple(&self.stride),
            padding,
            py_tuple(&self.dilation),
            self.groups,
            py_bool(self.bias)
        ))
    }

    fn size_origin(&self, axis: usize, input: u64) -> SizeOrigin {
        if self.same {
            SizeOrigin::Kept
        } else {
            SizeOrigin::Window(self.window(axis, input))
        }
    }

    fn family(&self) -> Family {
        Family::Convolution
    }
}

impl<const N: usize> Layer for ConvTranspose<N> {
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_spatial(self, xs, out)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let (weight, bias) = (g.tensor("weight")?, if self.bias { Some(g.tensor("bias")?) } else { None });
        // PyTorch crops `padding` from the start of the full output and `padding -
        // output_padding` from its end: ONNX's end pads. Where the output padding exceeds the
        // padding, the positions past the full output hold the bias alone: zeros padded on
        // (onnxruntime refuses an output padding at or above the stride), then the bias.
        let end: Vec<u64> = (0..N).map(|i| self.padding[i].saturating_sub(self.output_padding[i])).collect();
        let extra: Vec<u64> =
            (0..N).map(|i| self.output_padding[i].saturating_sub(self.padding[i])).collect();
        let padded = extra.iter().any(|&e| e > 0);
        let mut inputs = vec![xs[0].as_str(), &weight];
        if !padded {
            inputs.extend(bias.as_deref());
        }
        let attributes = vec![
            ("kernel_shape", ox::ints(&self.kernel)),
            ("strides", ox::ints(&self.stride)),
            ("pads", ox::pads(&self.padding, &end)),
            ("dilations", ox::ints(&self.dilation)),
            ("group", Attr::Int(self.groups as i64)),
        ];
        let y = g.node("ConvTranspose", &inputs, attributes);
        if !padded {
            return Ok(y);
        }
        let pads: Vec<i64> =
            std::iter::repeat_n(0, N + 2).chain([0, 0]).chain(extra.iter().map(|&e| e as i64)).collect();
        let pads = g.ints("pads", &pads);
        let y = g.node("Pad", &[&y, &pads], vec![]);
        match bias {
            Some(bias) => {
                let shape: Vec<i64> = std::iter::once(-1).chain(std::iter::repeat_n(1, N)).collect();
                let shape = g.ints("bias_shape", &shape);
                let bias = g.node("Reshape", &[&bias, &shape], vec![]);
                Ok(g.node("Add", &[&y, &bias], vec![]))
            }
            None => Ok(y),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe_head(
            f,
            "conv_transpose",
            [self.in_channels, self.out_channels],
            &self.kernel,
            &self.stride,
        )?;
        describe_sizes(f, "padding", &self.padding, 0)?;
        describe_sizes(f, "output_padding", &self.output_padding, 0)?;
        describe_tail(f, &self.dilation, self.groups, self.bias)
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        tensors(
            [self.in_channels, self.out_channels],
            self.groups,
            &self.kernel,
            self.out_channels,
            self.bias,
        )
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.ConvTranspose{N}d({}, {}, kernel_size={}, stride={}, padding={}, output_padding={}, groups={}, bias={}, dilation={})",
            self.in_channels,
            self.out_channels,
            py_tuple(&self.kernel),
            py_tuple(&self.stride),
            py_tuple(&self.padding),
            py_tuple(&self.output_padding),
            self.groups,
            py_bool(self.bias),
            py_tuple(&self.dilation)
        ))
    }

    fn size_origin(&self, axis: usize, input: u64) -> SizeOrigin {
        SizeOrigin::Window(self.window(axis, input))
    }

    fn family(&self) -> Family {
        Family::Convolution
    }
}
