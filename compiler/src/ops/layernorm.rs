//! `layernorm(normalized_shape, eps=1e-5, elementwise_affine=true)`: PyTorch's `nn.LayerNorm`,
//! normalising each example over its last dimensions. `normalized_shape` may be left out, for
//! the last dimension alone (as ViT and ConvNeXt use it); when given, it must equal the
//! input's trailing sizes, as PyTorch requires.
//!
//! `layernorm2d(eps=1e-5)`: torchvision's `LayerNorm2d` (ConvNeXt's downsampling and head),
//! the same over the channels of each position of an image, `[N, C, H, W]`: a layer norm of
//! the channels-last tensor, permuted back, with a weight and bias of `C`.

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::layer::{py_bool, py_float};
use super::{
    attributes, expect_spatial, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec,
    ParamSpec, PyTorch, Ranks, TensorSpec, MAX_TENSOR_RANK,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static LAYERNORM: OpSpec = OpSpec {
    name: "layernorm",
    summary:
        "normalises each example over its last dimensions (by default the last one), then scales and shifts",
    torch: "nn.LayerNorm",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("normalized_shape", Kind::Dims, ArgValue::Unset),
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("elementwise_affine", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply,
};

pub static LAYERNORM2D: OpSpec = OpSpec {
    name: "layernorm2d",
    summary: "normalises the channels at each position of an image, then scales and shifts (ConvNeXt's)",
    torch: "torchvision LayerNorm2d",
    ranks: Ranks::Exactly(&[4]),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("elementwise_affine", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply: apply_2d,
};

fn apply_2d(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let eps = super::batchnorm::eps(args)?;
    let elementwise_affine = args.bool("elementwise_affine");
    let (channels, _) = expect_spatial::<2>("layernorm2d", input)?;
    Built::per_parameter(Op::LayerNorm2d(LayerNorm2d { channels, eps, elementwise_affine }), input.clone())
}

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let last = input.dims.last().map(|&d| vec![d]).unwrap_or_default();
    let normalized_shape = args.positive_dims("normalized_shape")?.unwrap_or(last);
    let n = normalized_shape.len();
    if n > MAX_TENSOR_RANK {
        return Err(OpError::new(
            Code::Value,
            format!("`normalized_shape` may hold at most {MAX_TENSOR_RANK} sizes, but holds {n}"),
        )
        .at("normalized_shape"));
    }
    let trailing = input.dims.get(input.dims.len().saturating_sub(n)..).filter(|_| n <= input.dims.len());
    if trailing != Some(&normalized_shape[..]) {
        let shown = dims_text(&normalized_shape);
        let mut err = OpError::new(
            Code::ShapeMismatch,
            format!("`layernorm` normalises over the last {n} sizes {shown}, but the input is {input}"),
        )
        .label(format!("the input here is {input}"))
        .note("PyTorch's LayerNorm needs `normalized_shape` to equal the input's trailing sizes");
        if let Some(trailing) = trailing {
            err = err.hint(format!(
                "write `normalized_shape={}`, or leave it out to normalise over the last dimension",
                dims_text(trailing)
            ));
        }
        return Err(err.at("normalized_shape"));
    }
    let eps = super::batchnorm::eps(args)?;
    let elementwise_affine = args.bool("elementwise_affine");
    let op =
        Op::LayerNorm(LayerNorm { normalized_shape: Cow::Owned(normalized_shape), eps, elementwise_affine });
    Built::per_parameter(op, input.clone())
}

/// `6` or `(3, 4)`, as the argument is written.
fn dims_text(dims: &[u64]) -> String {
    match dims {
        [one] => one.to_string(),
        _ => format!("({})", dims.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// With `elementwise_affine`, a trained weight (ones) and bias (zeros) of the normalised
/// shape, as `nn.LayerNorm` holds them.
fn affine(dims: &[u64], elementwise_affine: bool) -> Vec<TensorSpec> {
    if !elementwise_affine {
        return Vec::new();
    }
    vec![
        TensorSpec::trained("weight", dims, InitRule::Const(1.0)),
        TensorSpec::trained("bias", dims, InitRule::Const(0.0)),
    ]
}

/// The report's note of a norm without its scale and shift.
fn no_affine(elementwise_affine: bool) -> &'static str {
    if elementwise_affine {
        ""
    } else {
        ", no affine"
    }
}

attributes! {
    pub struct LayerNorm {
        pub normalized_shape: Cow<'static, [u64]>,
        pub eps: f64,
        pub elementwise_affine: bool,
    }
}

impl Layer for LayerNorm {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let (scale, bias) = affine_onnx(g, &self.normalized_shape, self.elementwise_affine)?;
        let axis = -(self.normalized_shape.len() as i64);
        let attributes = vec![("axis", Attr::Int(axis)), ("epsilon", Attr::Float(self.eps as f32))];
        Ok(g.node("LayerNormalization", &[&xs[0], &scale, &bias], attributes))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layernorm {}{}", dims_text(&self.normalized_shape), no_affine(self.elementwise_affine))
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        affine(&self.normalized_shape, self.elementwise_affine)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let dims: Vec<String> = self.normalized_shape.iter().map(u64::to_string).collect();
        PyTorch::Module(format!(
            "nn.LayerNorm([{}], eps={}, elementwise_affine={})",
            dims.join(", "),
            py_float(self.eps),
            py_bool(self.elementwise_affine)
        ))
    }

    fn family(&self) -> Family {
        Family::Normalisation
    }
}

attributes! {
    pub struct LayerNorm2d {
        pub channels: u64,
        pub eps: f64,
        pub elementwise_affine: bool,
    }
}

/// torchvision's `LayerNorm2d`, which `torch.nn` lacks, for the emitted module.
const LAYERNORM2D_CLASS: &str = r#"class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d: a layer norm over the channels of each position."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)"#;

impl Layer for LayerNorm2d {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// Over the channels: moved last, normalised, moved back.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let (scale, bias) = affine_onnx(g, &[self.channels], self.elementwise_affine)?;
        let last = g.transpose(&xs[0], &[0, 2, 3, 1]);
        let attributes = vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(self.eps as f32))];
        let y = g.node("LayerNormalization", &[&last, &scale, &bias], attributes);
        Ok(g.transpose(&y, &[0, 3, 1, 2]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layernorm2d {}{}", self.channels, no_affine(self.elementwise_affine))
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        affine(&[self.channels], self.elementwise_affine)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "LayerNorm2d({}, eps={}, elementwise_affine={})",
            self.channels,
            py_float(self.eps),
            py_bool(self.elementwise_affine)
        ))
    }

    fn pytorch_class(&self) -> Option<&'static str> {
        Some(LAYERNORM2D_CLASS)
    }

    fn family(&self) -> Family {
        Family::Normalisation
    }
}

/// The scale and bias ONNX's `LayerNormalization` takes: the layer's, or ones and zeros.
fn affine_onnx(g: &mut Onnx, shape: &[u64], affine: bool) -> Result<(String, String), OnnxError> {
    if affine {
        return Ok((g.tensor("weight")?, g.tensor("bias")?));
    }
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let n = shape.iter().product::<u64>() as usize;
    Ok((g.floats("ones", &dims, vec![1.0; n]), g.floats("zeros", &dims, vec![0.0; n])))
}
