//! `upsample(size=…, scale_factor=…, mode="nearest", align_corners=…)`: PyTorch's
//! `nn.Upsample` (`F.interpolate`) on `[N, C, L]`, `[N, C, H, W]` and `[N, C, D, H, W]`, to a
//! given size or by a scale, exactly one of the two.
//!
//! By a scale, PyTorch's size is `floor(input · scale_factor)` and its kernels map positions by
//! `1 / scale_factor`, not `input / output`. nnc refuses a scale that does not give a whole
//! size (7 × 1.5 = 10.5), which PyTorch floors silently, so that the sizes a model is written
//! for are the sizes it gets; `size=` says what is wanted where it does not divide.

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::layer::{py_bool, py_float};
use super::{
    attributes, wrong_rank, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch,
    Ranks, SizeOrigin,
};
use crate::diagnostic::Code;
use crate::shape::{DType, Shape};

/// The interpolating modes, which take `align_corners`, with the rank (batch included) each
/// needs, as `F.interpolate` dispatches them; `"nearest"` takes any of the three ranks.
const INTERPOLATING: &[(&str, usize)] = &[("linear", 3), ("bilinear", 4), ("bicubic", 4), ("trilinear", 5)];

pub static UPSAMPLE: OpSpec = OpSpec {
    name: "upsample",
    summary:
        "resizes the positions after the channels to `size` or by `scale_factor`: mode nearest, linear (rank 3), bilinear or bicubic (rank 4), trilinear (rank 5)",
    torch: "nn.Upsample",
    ranks: Ranks::Exactly(&[3, 4, 5]),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("size", Kind::Dims, ArgValue::Unset),
        ParamSpec::optional("scale_factor", Kind::Float, ArgValue::Unset),
        ParamSpec::optional(
            "mode",
            Kind::Choice(&["nearest", "linear", "bilinear", "bicubic", "trilinear"]),
            ArgValue::Choice("nearest"),
        ),
        ParamSpec::optional("align_corners", Kind::Bool, ArgValue::Unset),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let rank = input.rank();
    if !UPSAMPLE.ranks.accepts(rank) {
        let needs = "an input [N, C, L], [N, C, H, W] or [N, C, D, H, W]";
        return Err(wrong_rank("upsample", needs, 4, input));
    }
    let mode = args.choice("mode");
    let needed = INTERPOLATING.iter().find(|(m, _)| *m == mode).map(|&(_, r)| r);
    if let Some(needed) = needed.filter(|&r| r != rank) {
        let fitting: Vec<String> = INTERPOLATING
            .iter()
            .filter(|(_, r)| *r == rank)
            .map(|(m, _)| format!("`mode=\"{m}\"`"))
            .chain(std::iter::once("`mode=\"nearest\"`".to_string()))
            .collect();
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`upsample(mode=\"{mode}\")` needs an input of rank {needed}, but gets {input}"),
        )
        .label(format!("the input here is {input}"))
        .hint(format!("for an input of rank {rank}, use {}", fitting.join(" or ")))
        .at("mode"));
    }
    // PyTorch's own refusal: the nearest neighbour has no corners to align.
    if needed.is_none() && args.is_set("align_corners") {
        return Err(OpError::new(
            Code::Value,
            "`align_corners` applies only to the interpolating modes: linear, bilinear, bicubic, trilinear",
        )
        .label("`mode` is \"nearest\"")
        .hint("leave `align_corners` out")
        .at("align_corners"));
    }
    let spatial = &input.dims[1..];
    let (size, scale_factor) = match (args.is_set("size"), args.is_set("scale_factor")) {
        (true, true) => {
            return Err(OpError::new(Code::Value, "`upsample` takes `size` or `scale_factor`, not both")
                .label("`scale_factor` given with `size`")
                .at("scale_factor"))
        }
        (false, false) => {
            return Err(OpError::new(Code::Value, "`upsample` needs `size` or `scale_factor`")
                .label("neither is given")
                .hint("write `scale_factor=2` to double each size, or `size=...` for the sizes wanted"))
        }
        (true, false) => (given_size(args, input)?, None),
        (false, true) => {
            let scale = args.finite_float("scale_factor")?;
            (scaled_size(scale, spatial, input)?, Some(scale))
        }
    };
    let mut dims = vec![input.dims[0]];
    dims.extend_from_slice(&size);
    let op = Op::Upsample(Upsample {
        size: Cow::Owned(size),
        scale_factor,
        mode,
        align_corners: args.bool("align_corners"),
    });
    Built::free(op, input.with_dims(dims))
}

/// `size=`, one size for every spatial dimension or one each, as `F.interpolate` takes it.
fn given_size(args: &Args, input: &Shape) -> Result<Vec<u64>, OpError> {
    let n = input.dims.len() - 1;
    let size = args.positive_dims("size")?.unwrap_or_default();
    match size[..] {
        [one] => Ok(vec![one; n]),
        _ if size.len() == n => Ok(size),
        _ => Err(OpError::new(
            Code::ShapeMismatch,
            format!("`size` holds {} sizes, but the input {input} has {n} after its channels", size.len()),
        )
        .label(format!("the input here is {input}"))
        .hint(if n == 1 { "give one size".to_string() } else { format!("give one size, or {n}") })
        .at("size")),
    }
}

/// `input · scale_factor` on each spatial dimension, computed in `f64` as libtorch computes it,
/// each a whole number.
fn scaled_size(scale: f64, spatial: &[u64], input: &Shape) -> Result<Vec<u64>, OpError> {
    if scale <= 0.0 {
        return Err(OpError::new(Code::Value, format!("`scale_factor` must be positive, but is {scale}"))
            .at("scale_factor"));
    }
    let exact: Vec<f64> = spatial.iter().map(|&d| d as f64 * scale).collect();
    if let Some(i) = exact.iter().position(|v| v.fract() != 0.0) {
        let floored: Vec<String> = exact.iter().map(|v| v.floor().to_string()).collect();
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!(
                "`upsample` by {scale} makes a size of {} × {scale} = {}, which is not a whole number",
                spatial[i], exact[i]
            ),
        )
        .label(format!("the input here is {input}"))
        .note(format!("PyTorch would round it down to {} without a word", exact[i].floor()))
        .hint(format!(
            "give the sizes wanted, such as `size=({})`, or a scale that gives whole sizes",
            floored.join(", ")
        ))
        .at("scale_factor"));
    }
    // u64's range, well above any size a tensor may hold (which the graph checks next).
    if exact.iter().any(|&v| v >= u64::MAX as f64) {
        return Err(OpError::new(Code::Arithmetic, "the output size of this `upsample` overflows 64 bits")
            .at("scale_factor"));
    }
    Ok(exact.into_iter().map(|v| v as u64).collect())
}

attributes! {
    pub struct Upsample {
        /// The output's sizes after the channels, computed whether given or scaled.
        pub size: Cow<'static, [u64]>,
        /// The scale, when given: libtorch's kernels map positions by its inverse, as PyTorch
        /// passes it on.
        pub scale_factor: Option<f64>,
        /// PyTorch's spelling: `"nearest"`, `"linear"`, `"bilinear"`, `"bicubic"`, `"trilinear"`.
        pub mode: &'static str,
        /// Always false for `"nearest"`, which has no such option.
        pub align_corners: bool,
    }
}

impl Upsample {
    fn interpolating(&self) -> bool {
        self.mode != "nearest"
    }
}

impl Layer for Upsample {
    /// `Resize`, mapping positions as PyTorch does: by the inverse of a given scale, else by
    /// the sizes' ratio; nearest as PyTorch's legacy `nearest` (floor of the asymmetric map).
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let (mode, transform) = match (self.mode, self.align_corners) {
            ("nearest", _) => ("nearest", "asymmetric"),
            ("bicubic", true) => ("cubic", "align_corners"),
            ("bicubic", false) => ("cubic", "pytorch_half_pixel"),
            (_, true) => ("linear", "align_corners"),
            (_, false) => ("linear", "pytorch_half_pixel"),
        };
        let mut attributes = vec![
            ("mode", Attr::Str(mode.into())),
            ("coordinate_transformation_mode", Attr::Str(transform.into())),
        ];
        match mode {
            "nearest" => attributes.push(("nearest_mode", Attr::Str("floor".into()))),
            "cubic" => attributes.push(("cubic_coeff_a", Attr::Float(-0.75))),
            _ => {}
        }
        let rank = g.input(0).dims.len() + 1;
        match self.scale_factor {
            Some(scale) => {
                let scales: Vec<f32> = (0..rank).map(|i| if i < 2 { 1.0 } else { scale as f32 }).collect();
                let scales = g.floats("scales", &[rank as i64], scales);
                Ok(g.node("Resize", &[&xs[0], "", &scales], attributes))
            }
            None => {
                let sizes: Vec<u64> =
                    std::iter::once(g.input(0).dims[0]).chain(self.size.iter().copied()).collect();
                let sizes = g.batch_and(&xs[0], &sizes);
                Ok(g.node("Resize", &[&xs[0], "", "", &sizes], attributes))
            }
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scale_factor {
            Some(scale) => write!(f, "upsample ×{scale}")?,
            None => {
                let sizes: Vec<String> = self.size.iter().map(u64::to_string).collect();
                write!(f, "upsample to {}", sizes.join("×"))?
            }
        }
        write!(f, ", {}", self.mode)?;
        if self.align_corners {
            f.write_str(", align corners")?;
        }
        Ok(())
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let resize = match self.scale_factor {
            Some(scale) => format!("scale_factor={}", py_float(scale)),
            // A tuple, `(14,)` for one size, as the sizes were resolved to one per dimension.
            None => match &self.size[..] {
                [one] => format!("size=({one},)"),
                sizes => {
                    format!("size=({})", sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
                }
            },
        };
        let corners = if self.interpolating() {
            format!(", align_corners={}", py_bool(self.align_corners))
        } else {
            String::new()
        };
        PyTorch::Module(format!("nn.Upsample({resize}, mode='{}'{corners})", self.mode))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Set("from upsampling")
    }
}
