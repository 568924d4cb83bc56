//! The op implementations on libtorch, one function per IR op, and the creation of each
//! layer's parameters under its PyTorch-style name. The interpreter calls these, and so will
//! generated code, so the two cannot disagree.

use nnc_compiler::ir::{Activation, Conv2d, Op, Pool2d};
use tch::{nn, Kind, Tensor};

use crate::init::{self, Init};

/// The learnable parameters (and buffers) of one layer.
#[derive(Debug)]
pub enum Params {
    None,
    Conv2d {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    Linear {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    /// Weight and bias are trained; the running statistics and the count of training batches
    /// are buffers, as in PyTorch's `state_dict`.
    BatchNorm {
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        batches_tracked: Tensor,
    },
}

/// The path of a layer's parameters: `b3.0.conv1` becomes `root / b3 / 0 / conv1`, so that
/// the variables are named `b3.0.conv1.weight`, as in a PyTorch `state_dict`.
pub fn layer_path<'a>(root: &nn::Path<'a>, name: &str) -> nn::Path<'a> {
    let mut segments = name.split('.');
    let first = root.sub(segments.next().unwrap_or_default());
    segments.fold(first, |path, segment| path.sub(segment))
}

/// Creates the parameters of the layer `name` doing `op` under `root`.
pub fn create_params(root: &nn::Path, name: &str, op: &Op, init: Init) -> Params {
    let i = |v: u64| v as i64;
    match op {
        Op::Conv2d(c) => {
            let path = layer_path(root, name);
            let dims = [i(c.out_channels), i(c.in_channels / c.groups), i(c.kernel[0]), i(c.kernel[1])];
            let weight = init::weight(&path, &dims, init);
            let fan_in = dims[1] * dims[2] * dims[3];
            let bias = c.bias.then(|| init::bias(&path, dims[0], fan_in));
            Params::Conv2d { weight, bias }
        }
        Op::Linear { in_features, out_features, bias } => {
            let path = layer_path(root, name);
            let weight = init::weight(&path, &[i(*out_features), i(*in_features)], init);
            let bias = bias.then(|| init::bias(&path, i(*out_features), i(*in_features)));
            Params::Linear { weight, bias }
        }
        Op::BatchNorm { features, .. } => {
            let path = layer_path(root, name);
            let n = [i(*features)];
            Params::BatchNorm {
                weight: path.var("weight", &n, nn::Init::Const(1.0)),
                bias: path.var("bias", &n, nn::Init::Const(0.0)),
                running_mean: path.zeros_no_train("running_mean", &n),
                running_var: path.ones_no_train("running_var", &n),
                batches_tracked: path.zeros_no_train("num_batches_tracked", &[]),
            }
        }
        _ => Params::None,
    }
}

fn ints<const N: usize>(v: [u64; N]) -> [i64; N] {
    v.map(|x| x as i64)
}

pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, c: &Conv2d) -> Tensor {
    x.conv2d(weight, bias, ints(c.stride), ints(c.padding), ints(c.dilation), c.groups as i64)
}

pub fn max_pool2d(x: &Tensor, p: &Pool2d) -> Tensor {
    x.max_pool2d(ints(p.kernel), ints(p.stride), ints(p.padding), ints(p.dilation), p.ceil_mode)
}

pub fn avg_pool2d(x: &Tensor, p: &Pool2d) -> Tensor {
    x.avg_pool2d(ints(p.kernel), ints(p.stride), ints(p.padding), p.ceil_mode, p.count_include_pad, None)
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    train: bool,
    momentum: f64,
    eps: f64,
) -> Tensor {
    x.batch_norm(Some(weight), Some(bias), Some(running_mean), Some(running_var), train, momentum, eps, true)
}

pub fn activation(x: &Tensor, function: Activation) -> Tensor {
    match function {
        Activation::Relu => x.relu(),
        Activation::Sigmoid => x.sigmoid(),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => x.gelu("none"),
    }
}

/// The element-wise sum of all inputs.
pub fn add(inputs: &[&Tensor]) -> Tensor {
    inputs[1..].iter().fold(inputs[0].shallow_clone(), |acc, x| acc + *x)
}

/// Applies `op` to its inputs with its parameters.
pub fn apply(op: &Op, params: &Params, inputs: &[&Tensor], train: bool) -> Tensor {
    let x = inputs[0];
    match (op, params) {
        (Op::Input | Op::Identity, _) => x.shallow_clone(),
        (Op::Conv2d(c), Params::Conv2d { weight, bias }) => conv2d(x, weight, bias.as_ref(), c),
        (Op::MaxPool2d(p), _) => max_pool2d(x, p),
        (Op::AvgPool2d(p), _) => avg_pool2d(x, p),
        (Op::AdaptiveAvgPool2d { output }, _) => x.adaptive_avg_pool2d(ints(*output)),
        (
            Op::BatchNorm { eps, momentum, .. },
            Params::BatchNorm { weight, bias, running_mean, running_var, batches_tracked },
        ) => {
            if train {
                tch::no_grad(|| {
                    let _ = batches_tracked.shallow_clone().f_add_scalar_(1);
                });
            }
            batch_norm(x, weight, bias, running_mean, running_var, train, *momentum, *eps)
        }
        (Op::Activation { function }, _) => activation(x, *function),
        (Op::Softmax { dim }, _) => x.softmax(*dim as i64, Kind::Float),
        (Op::Dropout { p }, _) => x.dropout(*p, train),
        (Op::Flatten { start, end }, _) => x.flatten(*start as i64, *end as i64),
        (Op::Linear { .. }, Params::Linear { weight, bias }) => x.linear(weight, bias.as_ref()),
        (Op::Add, _) => add(inputs),
        (Op::Concat { dim }, _) => Tensor::cat(inputs, *dim as i64),
        (op, params) => unreachable!("op {op} was given parameters {params:?}"),
    }
}
