//! `linear(out_features, bias=true)`: PyTorch's `nn.Linear` with `in_features` inferred from
//! the last dimension.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::layer::py_bool;
use super::{
    attributes, product, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec,
    ParamSpec, PyTorch, Ranks, SizeOrigin, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static LINEAR: OpSpec = OpSpec {
    name: "linear",
    summary: "a fully connected layer on the last dimension; the input features are inferred",
    torch: "nn.Linear",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[
        ParamSpec::required("out_features", Kind::Int),
        ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let Some(&in_features) = input.dims.last() else {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`linear` needs features to act on, but gets {input}"),
        ));
    };
    let out_features = args.positive_int("out_features")?;
    let bias = args.bool("bias");
    let weights = product("parameter count", &[in_features, out_features])?;
    let per_position = weights.checked_add(if bias { out_features } else { 0 }).ok_or_else(|| {
        OpError::new(Code::Arithmetic, "the parameter count of this layer overflows 64 bits")
    })?;
    // Applied to every position of the other dimensions.
    let positions = product("multiply-add count", &input.dims[..input.dims.len() - 1])?;
    // One per weight use, plus one per bias add, at every position: the work done. torchinfo
    // counts a linear layer once per example, whatever its positions (its rule reads the
    // output's first size only), so the two agree on [N, features] inputs alone.
    let macs = product("multiply-add count", &[positions, per_position])?;
    let mut dims = input.dims.clone();
    *dims.last_mut().expect("non-empty") = out_features;
    Built::new(Op::Linear(Linear { in_features, out_features, bias }), input.with_dims(dims), macs)
}

attributes! {
    pub struct Linear {
        pub in_features: u64,
        pub out_features: u64,
        pub bias: bool,
    }
}

impl Layer for Linear {
    /// The input's sizes, with the features it makes last (its input features are an
    /// attribute, so a free size there is refused before this is asked).
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        let mut dims = xs.first()?.to_vec();
        *dims.last_mut()? = Size::from(self.out_features);
        Some(dims)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let weight = g.tensor("weight")?;
        let bias = if self.bias { Some(g.tensor("bias")?) } else { None };
        let rank = g.input(0).rank();
        Ok(g.linear(&xs[0], rank, &weight, bias.as_deref()))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bias = if self.bias { "" } else { ", no bias" };
        write!(f, "linear {}→{}{bias}", self.in_features, self.out_features)
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        let mut tensors =
            vec![TensorSpec::trained("weight", &[self.out_features, self.in_features], InitRule::Weight)];
        if self.bias {
            let init = InitRule::Bias { fan_in: self.in_features };
            tensors.push(TensorSpec::trained("bias", &[self.out_features], init));
        }
        tensors
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.Linear({}, {}, bias={})",
            self.in_features,
            self.out_features,
            py_bool(self.bias)
        ))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Lost
    }

    fn family(&self) -> Family {
        Family::Linear
    }
}
