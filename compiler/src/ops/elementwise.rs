//! Layers that keep the shape and have no arguments: `relu`, `sigmoid`, `tanh`, `gelu`,
//! `identity`.

use super::{Args, Built, OpError, OpSpec};
use crate::ir::{Activation, Op};
use crate::shape::Shape;

pub static RELU: OpSpec = OpSpec { name: "relu", params: &[], apply: |_, s| activation(Activation::Relu, s) };
pub static SIGMOID: OpSpec =
    OpSpec { name: "sigmoid", params: &[], apply: |_, s| activation(Activation::Sigmoid, s) };
pub static TANH: OpSpec = OpSpec { name: "tanh", params: &[], apply: |_, s| activation(Activation::Tanh, s) };
pub static GELU: OpSpec = OpSpec { name: "gelu", params: &[], apply: |_, s| activation(Activation::Gelu, s) };
pub static IDENTITY: OpSpec = OpSpec { name: "identity", params: &[], apply: identity };

fn activation(function: Activation, input: &Shape) -> Result<Built, OpError> {
    Built::free(Op::Activation { function }, input.clone())
}

fn identity(_: &Args, input: &Shape) -> Result<Built, OpError> {
    Built::free(Op::Identity, input.clone())
}
