//! `conv2d(out_channels, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)`:
//! PyTorch's `nn.Conv2d` with the input channels inferred. `padding` is an amount, or
//! `"same"` or `"valid"` with PyTorch's meaning.

use std::fmt;

use super::layer::{describe_pair, py_bool, py_pair};
use super::{
    attributes, expect_image, product, window_output, ArgValue, Args, Built, Family, InitRule, Kind, Layer,
    Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks, SizeOrigin, TensorSpec,
};
use crate::diagnostic::Code;
use crate::shape::{Shape, Window};

pub static CONV2D: OpSpec = OpSpec {
    name: "conv2d",
    summary: "2-D convolution (cross-correlation) over [N, C, H, W]; the input channels are inferred",
    torch: "nn.Conv2d",
    ranks: Ranks::Exactly(&[4]),
    params: &[
        ParamSpec::required("out_channels", Kind::Int),
        ParamSpec::required("kernel", Kind::Pair),
        ParamSpec::optional("stride", Kind::Pair, ArgValue::Int(1)),
        ParamSpec::optional("padding", Kind::PairOr(&["same", "valid"]), ArgValue::Int(0)),
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
    let dilation = args.positive_pair("dilation")?;
    let same = args.chosen("padding") == Some("same");
    let padding = match args.chosen("padding") {
        // PyTorch's `_conv_forward`: d·(k − 1) in all per axis, the smaller half before.
        Some("same") => [0, 1].map(|i| dilation[i].saturating_mul(kernel[i] - 1) / 2),
        // "valid" is PyTorch's name for no padding.
        Some(_) => [0, 0],
        None => args.non_negative_pair("padding")?,
    };
    if same && stride != [1, 1] {
        // As the language writes a pair: `2`, or `(2, 1)`.
        let text = |[a, b]: [u64; 2]| if a == b { a.to_string() } else { format!("({a}, {b})") };
        let (shown, amount) = (text(stride), text(padding));
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
    let conv = Conv2d { in_channels, out_channels, kernel, stride, padding, same, dilation, groups, bias };
    // "same" pads so that a stride-1 window keeps every size, whatever the kernel.
    let (out_h, out_w) = if same {
        (height, width)
    } else {
        (
            window_output("conv2d", "height", conv.window(0, height), input)?,
            window_output("conv2d", "width", conv.window(1, width), input)?,
        )
    };
    let mut built = Built::free(Op::Conv2d(conv), input.with_dims(vec![out_channels, out_h, out_w]))?;
    let per_output = product("multiply-add count", &[in_channels / groups, kernel[0], kernel[1]])?;
    // Counted as torchinfo counts them: one per weight use, plus one per bias add.
    built.macs = product("multiply-add count", &[out_channels, out_h, out_w, per_output + u64::from(bias)])?;
    Ok(built)
}

attributes! {
    pub struct Conv2d {
        pub in_channels: u64,
        pub out_channels: u64,
        pub kernel: [u64; 2],
        pub stride: [u64; 2],
        /// Each side's padding; with `same`, the top and left ones (the bottom and right get
        /// one more where d·(k − 1) is odd, as PyTorch pads).
        pub padding: [u64; 2],
        /// `padding="same"`, which the runtime and PyTorch compute themselves from the kernel.
        pub same: bool,
        pub dilation: [u64; 2],
        pub groups: u64,
        pub bias: bool,
    }
}

impl Conv2d {
    /// The window along spatial axis `axis` (0 height, 1 width) over `input` elements.
    fn window(&self, axis: usize, input: u64) -> Window {
        Window {
            input,
            kernel: self.kernel[axis],
            stride: self.stride[axis],
            padding: self.padding[axis],
            dilation: self.dilation[axis],
            ceil_mode: false,
        }
    }
}

impl Layer for Conv2d {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conv2d {}→{}, {}×{}",
            self.in_channels, self.out_channels, self.kernel[0], self.kernel[1]
        )?;
        describe_pair(f, "stride", self.stride, 1)?;
        if self.same {
            f.write_str(", padding same")?;
        } else {
            describe_pair(f, "padding", self.padding, 0)?;
        }
        describe_pair(f, "dilation", self.dilation, 1)?;
        if self.groups != 1 {
            write!(f, ", groups {}", self.groups)?;
        }
        if !self.bias {
            f.write_str(", no bias")?;
        }
        Ok(())
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        let weight = [self.out_channels, self.in_channels / self.groups, self.kernel[0], self.kernel[1]];
        // Saturating: tensors are described before the shape rule has checked the counts.
        let fan_in = weight[1..].iter().fold(1u64, |acc, &d| acc.saturating_mul(d));
        let mut tensors = vec![TensorSpec::trained("weight", &weight, InitRule::Weight)];
        if self.bias {
            tensors.push(TensorSpec::trained("bias", &[self.out_channels], InitRule::Bias { fan_in }));
        }
        tensors
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let padding = if self.same { "'same'".to_string() } else { py_pair(self.padding) };
        PyTorch::Module(format!(
            "nn.Conv2d({}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={})",
            self.in_channels,
            self.out_channels,
            py_pair(self.kernel),
            py_pair(self.stride),
            padding,
            py_pair(self.dilation),
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
