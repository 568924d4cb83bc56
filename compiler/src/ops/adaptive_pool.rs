//! `adaptive_avgpool1d/2d/3d(output)` and `adaptive_maxpool1d/2d/3d(output)`: pooling to a
//! requested size along each spatial axis, whatever the input's: PyTorch's
//! `nn.AdaptiveAvgPool1d/2d/3d` and `nn.AdaptiveMaxPool1d/2d/3d` (without `return_indices`,
//! and without `None` for a size kept as it is).

use std::fmt;

use super::onnx::{self as ox, Onnx, OnnxError};

use super::layer::{describe_window, py_tuple};
use super::{
    attributes, expect_spatial, Args, Built, Family, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch,
    Ranks, SizeOrigin,
};
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

/// An adaptive pooling over `$n` spatial axes: its attribute struct's name for that rank, and
/// its signature.
macro_rules! adaptive {
    ($spec:ident, $variant:ident = $ty:ident<$n:literal>, $name:literal, $torch:literal, $kind:literal) => {
        pub type $variant = $ty<$n>;
        pub static $spec: OpSpec = OpSpec {
            name: concat!($name, $n, "d"),
            summary: concat!($n, "-D ", $kind, " pooling to a requested size, whatever the input's"),
            torch: concat!("nn.", $torch, $n, "d"),
            ranks: Ranks::Exactly(&[$n + 2]),
            takes: DType::Float,
            params: &[ParamSpec::required("output", Kind::Spatial($n))],
            apply: |args, input| {
                let (output, shape) = apply::<$n>(concat!($name, $n, "d"), args, input)?;
                Built::free(Op::$variant($ty { output }), shape)
            },
        };
    };
}

adaptive!(ADAPTIVE_AVGPOOL1D, AdaptiveAvgPool1d = AdaptiveAvgPool<1>, "adaptive_avgpool", "AdaptiveAvgPool", "average");
adaptive!(ADAPTIVE_AVGPOOL2D, AdaptiveAvgPool2d = AdaptiveAvgPool<2>, "adaptive_avgpool", "AdaptiveAvgPool", "average");
adaptive!(ADAPTIVE_AVGPOOL3D, AdaptiveAvgPool3d = AdaptiveAvgPool<3>, "adaptive_avgpool", "AdaptiveAvgPool", "average");
adaptive!(ADAPTIVE_MAXPOOL1D, AdaptiveMaxPool1d = AdaptiveMaxPool<1>, "adaptive_maxpool", "AdaptiveMaxPool", "max");
adaptive!(ADAPTIVE_MAXPOOL2D, AdaptiveMaxPool2d = AdaptiveMaxPool<2>, "adaptive_maxpool", "AdaptiveMaxPool", "max");
adaptive!(ADAPTIVE_MAXPOOL3D, AdaptiveMaxPool3d = AdaptiveMaxPool<3>, "adaptive_maxpool", "AdaptiveMaxPool", "max");

fn apply<const N: usize>(name: &str, args: &Args, input: &Shape) -> Result<([u64; N], Shape), OpError> {
    let (channels, _) = expect_spatial::<N>(name, input)?;
    let output = args.positive_sizes("output")?;
    let mut dims = vec![channels];
    dims.extend(output);
    Ok((output, input.with_dims(dims)))
}

attributes! {
    pub struct AdaptiveAvgPool<const N: usize> {
        pub output: [u64; N],
    }
}

attributes! {
    pub struct AdaptiveMaxPool<const N: usize> {
        pub output: [u64; N],
    }
}

/// The description of an adaptive pooling, `adaptive_avgpool2d 2×3` and
/// `nn.AdaptiveAvgPool2d((2, 3))`, for both kinds.
macro_rules! adaptive_layer {
    ($ty:ident, $kind:literal, $torch:literal, $global:literal, $window:literal, $reduce:literal) => {
        impl<const N: usize> Layer for $ty<N> {
            fn free_sizes(&self, xs: &[&[Size]], out: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
                super::free_spatial(self, xs, out)
            }

            /// The global pooling where every output size is 1; a fixed window where each output
            /// size divides the input's (then PyTorch's windows are that window); else each
            /// axis pooled window by window, as the windows are boxes.
            fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
                if self.output.iter().all(|&o| o == 1) {
                    return Ok(g.node($global, &[&xs[0]], vec![]));
                }
                let dims = &g.input(0).dims;
                let spatial = &dims[dims.len() - N..];
                if spatial.iter().zip(&self.output).any(|(&i, &o)| i % o != 0) {
                    let (rank, spatial) = (dims.len() + 1, spatial.to_vec());
                    return Ok(by_windows(g, &xs[0], $reduce, rank, &spatial, &self.output));
                }
                let window: Vec<u64> = spatial.iter().zip(&self.output).map(|(&i, &o)| i / o).collect();
                let attributes = vec![("kernel_shape", ox::ints(&window)), ("strides", ox::ints(&window))];
                Ok(g.node($window, &[&xs[0]], attributes))
            }

            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!("adaptive_", $kind, "pool{}d "), N)?;
                describe_window(f, &self.output)
            }

            fn pytorch(&self, _: &[String]) -> PyTorch {
                PyTorch::Module(format!(concat!("nn.", $torch, "{}d({})"), N, py_tuple(&self.output)))
            }

            fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
                SizeOrigin::Set("from adaptive pooling")
            }

            fn family(&self) -> Family {
                Family::Pooling
            }
        }
    };
}

adaptive_layer!(AdaptiveAvgPool, "avg", "AdaptiveAvgPool", "GlobalAveragePool", "AveragePool", "ReduceMean");
adaptive_layer!(AdaptiveMaxPool, "max", "AdaptiveMaxPool", "GlobalMaxPool", "MaxPool", "ReduceMax");

/// Adaptive pooling of `x` (rank `rank`, its last axes of sizes `spatial`) to `output`, axis by
/// axis: output `i` of an axis of `n` reduces positions ⌊i·n/o⌋ to ⌈(i+1)·n/o⌉, PyTorch's
/// windows, one `Slice` and one `reduce` each, joined by a `Concat`.
fn by_windows(
    g: &mut Onnx,
    x: &str,
    reduce: &'static str,
    rank: usize,
    spatial: &[u64],
    output: &[u64],
) -> String {
    use super::onnx::Attr;
    let mut y = x.to_string();
    for (k, (&n, &o)) in spatial.iter().zip(output).enumerate() {
        let axis = (rank - spatial.len() + k) as i64;
        if n == o {
            continue;
        }
        let mut windows = Vec::new();
        for i in 0..o {
            let (start, end) = (i * n / o, ((i + 1) * n).div_ceil(o));
            let inputs =
                [g.ints("starts", &[start as i64]), g.ints("ends", &[end as i64]), g.ints("axes", &[axis])];
            let window = g.node("Slice", &[&y, &inputs[0], &inputs[1], &inputs[2]], vec![]);
            let keep = vec![("axes", Attr::Ints(vec![axis])), ("keepdims", Attr::Int(1))];
            windows.push(g.node(reduce, &[&window], keep));
        }
        let windows: Vec<&str> = windows.iter().map(String::as_str).collect();
        y = g.node("Concat", &windows, vec![("axis", Attr::Int(axis))]);
    }
    y
}
