//! `layernorm(normalized_shape, eps=1e-5, elementwise_affine=true)`: PyTorch's `nn.LayerNorm`,
//! normalising each example over its last dimensions. `normalized_shape` may be left out, for
//! the last dimension alone (as ViT and ConvNeXt use it); when given, it must equal the
//! input's trailing sizes, as PyTorch requires.

use std::borrow::Cow;
use std::fmt;

use super::layer::{py_bool, py_float};
use super::{
    attributes, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec, ParamSpec,
    PyTorch, Ranks, TensorSpec, MAX_TENSOR_RANK,
};
use crate::diagnostic::Code;
use crate::shape::Shape;

pub static LAYERNORM: OpSpec = OpSpec {
    name: "layernorm",
    summary:
        "normalises each example over its last dimensions (by default the last one), then scales and shifts",
    torch: "nn.LayerNorm",
    ranks: Ranks::AtLeast(2),
    params: &[
        ParamSpec::optional("normalized_shape", Kind::Dims, ArgValue::Unset),
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("elementwise_affine", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply,
};

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

attributes! {
    pub struct LayerNorm {
        pub normalized_shape: Cow<'static, [u64]>,
        pub eps: f64,
        pub elementwise_affine: bool,
    }
}

impl Layer for LayerNorm {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layernorm {}", dims_text(&self.normalized_shape))?;
        if !self.elementwise_affine {
            f.write_str(", no affine")?;
        }
        Ok(())
    }

    /// With `elementwise_affine`, a trained weight (ones) and bias (zeros) of the normalised
    /// shape, as `nn.LayerNorm` holds them.
    fn tensors(&self) -> Vec<TensorSpec> {
        if !self.elementwise_affine {
            return Vec::new();
        }
        let dims = &self.normalized_shape;
        vec![
            TensorSpec::trained("weight", dims, InitRule::Const(1.0)),
            TensorSpec::trained("bias", dims, InitRule::Const(0.0)),
        ]
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
