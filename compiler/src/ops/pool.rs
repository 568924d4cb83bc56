//! Pooling over 1, 2 and 3 spatial axes, with PyTorch's arguments and defaults:
//!
//! - `maxpool1d/2d/3d(kernel, stride=kernel, padding=0, dilation=1, ceil_mode=false)`:
//!   `nn.MaxPool1d/2d/3d` (without `return_indices`);
//! - `avgpool1d/2d/3d(kernel, stride=kernel, padding=0, ceil_mode=false,
//!   count_include_pad=true)`: `nn.AvgPool1d/2d/3d` (without the 2-D and 3-D modules'
//!   `divisor_override`, which no network of the zoo sets).
//!
//! One shape rule serves every rank: `N` is the number of spatial axes, and every spatial
//! argument is an integer or a tuple of `N`.

use std::fmt;

use super::onnx::{self as ox, Attr, Onnx, OnnxError};

use super::layer::{describe_sizes, describe_window, py_bool, py_tuple};
use super::{
    attributes, expect_spatial, spatial_axis, window_at, window_outputs, ArgValue, Args, Built, Family, Kind,
    Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks, SizeOrigin,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape, Window};
use crate::size::Size;

/// A pooling over `$n` spatial axes: its attribute struct's name for that rank, and its
/// signature. Max pooling has a dilation, average pooling `count_include_pad` instead.
macro_rules! pool {
    (max, $spec:ident, $variant:ident, $n:literal) => {
        pool!(@spec $spec, $variant = MaxPool<$n>, "maxpool", "MaxPool", "max",
            ParamSpec::optional("dilation", Kind::Spatial($n), ArgValue::Int(1)),
            ParamSpec::optional("ceil_mode", Kind::Bool, ArgValue::Bool(false)));
    };
    (avg, $spec:ident, $variant:ident, $n:literal) => {
        pool!(@spec $spec, $variant = AvgPool<$n>, "avgpool", "AvgPool", "average",
            ParamSpec::optional("ceil_mode", Kind::Bool, ArgValue::Bool(false)),
            ParamSpec::optional("count_include_pad", Kind::Bool, ArgValue::Bool(true)));
    };
    (@spec $spec:ident, $variant:ident = $ty:ident<$n:literal>, $name:literal, $torch:literal, $kind:literal, $($last:expr),*) => {
        pub type $variant = $ty<$n>;
        pub static $spec: OpSpec = OpSpec {
            name: concat!($name, $n, "d"),
            summary: concat!($n, "-D ", $kind, " pooling; the stride defaults to the kernel"),
            torch: concat!("nn.", $torch, $n, "d"),
            ranks: Ranks::Exactly(&[$n + 2]),
            takes: DType::Float,
            params: &[
                ParamSpec::required("kernel", Kind::Spatial($n)),
                ParamSpec::optional("stride", Kind::Spatial($n), ArgValue::Unset),
                ParamSpec::optional("padding", Kind::Spatial($n), ArgValue::Int(0)),
                $($last,)*
            ],
            apply: |args, input| {
                let (pool, shape) = apply::<$n>(concat!($name, $n, "d"), args, input)?;
                Built::free(Op::$variant(pool.into()), shape)
            },
        };
    };
}

pool!(max, MAXPOOL1D, MaxPool1d, 1);
pool!(max, MAXPOOL2D, MaxPool2d, 2);
pool!(max, MAXPOOL3D, MaxPool3d, 3);
pool!(avg, AVGPOOL1D, AvgPool1d, 1);
pool!(avg, AVGPOOL2D, AvgPool2d, 2);
pool!(avg, AVGPOOL3D, AvgPool3d, 3);

/// What both poolings share: the window and its rounding, with the dilation of max pooling
/// (1 for average pooling, which has none).
struct Pool<const N: usize> {
    kernel: [u64; N],
    stride: [u64; N],
    padding: [u64; N],
    dilation: [u64; N],
    ceil_mode: bool,
    count_include_pad: bool,
}

impl<const N: usize> From<Pool<N>> for MaxPool<N> {
    fn from(p: Pool<N>) -> Self {
        MaxPool {
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            ceil_mode: p.ceil_mode,
        }
    }
}

impl<const N: usize> From<Pool<N>> for AvgPool<N> {
    fn from(p: Pool<N>) -> Self {
        AvgPool {
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            ceil_mode: p.ceil_mode,
            count_include_pad: p.count_include_pad,
        }
    }
}

fn apply<const N: usize>(name: &str, args: &Args, input: &Shape) -> Result<(Pool<N>, Shape), OpError> {
    let (channels, sizes) = expect_spatial::<N>(name, input)?;
    let kernel = args.positive_sizes("kernel")?;
    // PyTorch: the stride defaults to the kernel size.
    let stride = if args.is_set("stride") { args.positive_sizes("stride")? } else { kernel };
    let padding = args.non_negative_sizes("padding")?;
    let has = |param| args.params.iter().any(|p| p.name == param);
    let dilation = if has("dilation") { args.positive_sizes("dilation")? } else { [1; N] };
    let count_include_pad = has("count_include_pad") && args.bool("count_include_pad");
    // PyTorch's rule (`pool2d_shape_check` and its 1-D and 3-D kin): padding at most half the
    // kernel, rounded down, whatever the dilation.
    for i in 0..N {
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
    // PyTorch's avg_pool3d alone (`pool3d_shape_check` with `check_input_size`) also needs each
    // size before padding to hold the kernel; its 1-D and 2-D kin pad first.
    let is_avg = has("count_include_pad");
    if let Some(axis) = (0..N).find(|&i| is_avg && N == 3 && sizes[i] < kernel[i]) {
        let (size, k) = (sizes[axis], kernel[axis]);
        let (axis_name, _) = spatial_axis(N, axis);
        let mut err = OpError::new(
            Code::SizeTooSmall,
            format!("the {axis_name} is smaller than this `{name}`'s kernel: {size} < {k}"),
        )
        .label(format!("input {input} is too small for this window"))
        .note("PyTorch's avg_pool3d needs every size, before padding, to hold the kernel")
        .hint(format!("use a kernel of at most {size} along the {axis_name}, or a larger input"));
        err.axis = Some(axis);
        return Err(err);
    }
    let pool =
        Pool { kernel, stride, padding, dilation, ceil_mode: args.bool("ceil_mode"), count_include_pad };
    let out = window_outputs(name, input, sizes, |axis, size| pool.window(axis, size))?;
    let mut dims = vec![channels];
    dims.extend(out);
    Ok((pool, input.with_dims(dims)))
}

impl<const N: usize> Pool<N> {
    fn window(&self, axis: usize, input: u64) -> Window {
        let window = window_at([&self.kernel, &self.stride, &self.padding, &self.dilation], axis, input);
        Window { ceil_mode: self.ceil_mode, ..window }
    }

    /// `maxpool2d 3×3, stride 2, padding 1`: what both poolings show.
    fn describe(&self, f: &mut fmt::Formatter<'_>, kind: &str) -> fmt::Result {
        write!(f, "{kind}{N}d ")?;
        describe_window(f, &self.kernel)?;
        if self.stride != self.kernel {
            describe_sizes(f, "stride", &self.stride, 0)?;
        }
        describe_sizes(f, "padding", &self.padding, 0)?;
        describe_sizes(f, "dilation", &self.dilation, 1)?;
        if self.ceil_mode {
            f.write_str(", ceil")?;
        }
        // Only an average over padded windows counts the padding or not.
        if kind == "avgpool" && !self.count_include_pad && self.padding.iter().any(|&p| p > 0) {
            f.write_str(", padding not counted")?;
        }
        Ok(())
    }
}

attributes! {
    pub struct MaxPool<const N: usize> {
        pub kernel: [u64; N],
        pub stride: [u64; N],
        pub padding: [u64; N],
        pub dilation: [u64; N],
        pub ceil_mode: bool,
    }
}

attributes! {
    pub struct AvgPool<const N: usize> {
        pub kernel: [u64; N],
        pub stride: [u64; N],
        pub padding: [u64; N],
        pub ceil_mode: bool,
        /// Whether zero padding counts in the average.
        pub count_include_pad: bool,
    }
}

impl<const N: usize> MaxPool<N> {
    fn pool(&self) -> Pool<N> {
        let (kernel, stride, padding, dilation) = (self.kernel, self.stride, self.padding, self.dilation);
        Pool { kernel, stride, padding, dilation, ceil_mode: self.ceil_mode, count_include_pad: false }
    }
}

impl<const N: usize> AvgPool<N> {
    fn pool(&self) -> Pool<N> {
        let (kernel, stride, padding, ceil_mode) = (self.kernel, self.stride, self.padding, self.ceil_mode);
        Pool {
            kernel,
            stride,
            padding,
            dilation: [1; N],
            ceil_mode,
            count_include_pad: self.count_include_pad,
        }
    }
}

impl<const N: usize> Layer for MaxPool<N> {
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_spatial(self, xs, out)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let attributes = vec![
            ("kernel_shape", ox::ints(&self.kernel)),
            ("strides", ox::ints(&self.stride)),
            ("pads", ox::pads(&self.padding, &self.padding)),
            ("dilations", ox::ints(&self.dilation)),
            ("ceil_mode", Attr::Int(self.ceil_mode.into())),
        ];
        Ok(g.node("MaxPool", &[&xs[0]], attributes))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pool().describe(f, "maxpool")
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.MaxPool{N}d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
            py_tuple(&self.kernel),
            py_tuple(&self.stride),
            py_tuple(&self.padding),
            py_tuple(&self.dilation),
            py_bool(self.ceil_mode)
        ))
    }

    fn size_origin(&self, axis: usize, input: u64) -> SizeOrigin {
        SizeOrigin::Window(self.pool().window(axis, input))
    }

    fn family(&self) -> Family {
        Family::Pooling
    }
}

impl<const N: usize> Layer for AvgPool<N> {
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], needs: &mut Needs) -> Option<Vec<Size>> {
        // PyTorch's avg_pool3d also needs each size, before padding, to hold the kernel (as
        // `apply` checks at a known size).
        if N == 3 {
            for (size, &kernel) in xs.first()?.get(1..)?.iter().zip(&self.kernel) {
                needs.positive(&size.add_known(1 - i64::try_from(kernel).ok()?)?);
            }
        }
        super::free_spatial(self, xs, out)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let attributes = vec![
            ("kernel_shape", ox::ints(&self.kernel)),
            ("strides", ox::ints(&self.stride)),
            ("pads", ox::pads(&self.padding, &self.padding)),
            ("ceil_mode", Attr::Int(self.ceil_mode.into())),
            ("count_include_pad", Attr::Int(self.count_include_pad.into())),
        ];
        Ok(g.node("AveragePool", &[&xs[0]], attributes))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pool().describe(f, "avgpool")
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.AvgPool{N}d(kernel_size={}, stride={}, padding={}, ceil_mode={}, count_include_pad={})",
            py_tuple(&self.kernel),
            py_tuple(&self.stride),
            py_tuple(&self.padding),
            py_bool(self.ceil_mode),
            py_bool(self.count_include_pad)
        ))
    }

    fn size_origin(&self, axis: usize, input: u64) -> SizeOrigin {
        SizeOrigin::Window(self.pool().window(axis, input))
    }

    fn family(&self) -> Family {
        Family::Pooling
    }
}
