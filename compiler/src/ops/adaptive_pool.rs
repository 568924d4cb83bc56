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
use crate::shape::{DType, Shape};

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
    ($ty:ident, $kind:literal, $torch:literal, $global:literal, $window:literal) => {
        impl<const N: usize> Layer for $ty<N> {
            /// The global pooling where every output size is 1; else a fixed window, where each
            /// output size divides the input's (then PyTorch's windows are that window).
            fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
                if self.output.iter().all(|&o| o == 1) {
                    return Ok(g.node($global, &[&xs[0]], vec![]));
                }
                let dims = &g.input(0).dims;
                let spatial = &dims[dims.len() - N..];
                if spatial.iter().zip(&self.output).any(|(&i, &o)| i % o != 0) {
                    let sizes: Vec<String> = spatial.iter().map(u64::to_string).collect();
                    return Err(g.unsupported(format!(
                        "ONNX has no adaptive pooling, and the output sizes do not divide the input's {} (nnc writes a fixed window where they do)",
                        sizes.join("×")
                    )));
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

adaptive_layer!(AdaptiveAvgPool, "avg", "AdaptiveAvgPool", "GlobalAveragePool", "AveragePool");
adaptive_layer!(AdaptiveMaxPool, "max", "AdaptiveMaxPool", "GlobalMaxPool", "MaxPool");
