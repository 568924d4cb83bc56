//! The ops on libtorch: each layer's tensors created from its description, and each op's
//! forward, one arm per op in [`apply`]'s `match`, which has no wildcard, so that an op added
//! to the compiler's registry fails to compile here until it has a forward. The interpreter
//! and generated code both call these, so the two cannot disagree.

use nnc_compiler::ir::Op;
use nnc_compiler::ops::{InitRule, TensorSpec};
use tch::{nn, Kind, Tensor};

use crate::init::{self, Init};

/// The tensors of one layer, trained and buffers, by their `state_dict` names, in the order of
/// the op's [`TensorSpec`]s.
#[derive(Debug)]
pub struct Params {
    tensors: Vec<(&'static str, Tensor)>,
}

impl Params {
    /// The tensors of a layer that has none.
    pub const NONE: Params = Params { tensors: Vec::new() };

    /// A layer's tensors given directly, by name (for tests that bring their own weights).
    pub fn new(tensors: Vec<(&'static str, Tensor)>) -> Self {
        Params { tensors }
    }

    /// The tensor `name`, which the op's description declares.
    fn get(&self, name: &str) -> &Tensor {
        self.optional(name).unwrap_or_else(|| panic!("the op declares no tensor `{name}`"))
    }

    /// The tensor `name`, if this instance of the op has it (a bias can be switched off).
    fn optional(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }
}

/// The path of a layer's parameters: `b3.0.conv1` becomes `root / b3 / 0 / conv1`, so that
/// the variables are named `b3.0.conv1.weight`, as in a PyTorch `state_dict`.
pub fn layer_path<'a>(root: &nn::Path<'a>, name: &str) -> nn::Path<'a> {
    let mut segments = name.split('.');
    let first = root.sub(segments.next().unwrap_or_default());
    segments.fold(first, |path, segment| path.sub(segment))
}

/// Creates the tensors of the layer `name` doing `op` under `root`, as its description says.
pub fn create_params(root: &nn::Path, name: &str, op: &Op, init: Init) -> Params {
    let specs = op.layer().tensors();
    if specs.is_empty() {
        return Params::NONE;
    }
    let path = layer_path(root, name);
    let tensors = specs.iter().map(|spec| (spec.name, create(&path, spec, init))).collect();
    Params { tensors }
}

fn create(path: &nn::Path, spec: &TensorSpec, init: Init) -> Tensor {
    let dims: Vec<i64> = spec.dims.iter().map(|&d| d as i64).collect();
    if !spec.trained {
        let InitRule::Const(value) = spec.init else {
            unreachable!("buffers start constant, as PyTorch's do")
        };
        let buffer = path.zeros_no_train(spec.name, &dims);
        if value != 0.0 {
            let _ = tch::no_grad(|| buffer.shallow_clone().fill_(value));
        }
        return buffer;
    }
    match spec.init {
        InitRule::Weight => init::weight(path, spec.name, &dims, init),
        InitRule::Bias { fan_in } => init::uniform(path, spec.name, &dims, 1.0 / (fan_in as f64).sqrt()),
        InitRule::Const(value) => path.var(spec.name, &dims, nn::Init::Const(value)),
        InitRule::Normal { std } => path.var(spec.name, &dims, nn::Init::Randn { mean: 0.0, stdev: std }),
    }
}

fn ints<const N: usize>(v: [u64; N]) -> [i64; N] {
    v.map(|x| x as i64)
}

/// Applies `op` to its inputs with its tensors: each op's libtorch forward.
pub fn apply(op: &Op, params: &Params, inputs: &[&Tensor], train: bool) -> Tensor {
    let x = inputs[0];
    match op {
        Op::Input(_) | Op::Identity(_) => x.shallow_clone(),
        Op::Conv2d(c) => x.conv2d(
            params.get("weight"),
            params.optional("bias"),
            ints(c.stride),
            ints(c.padding),
            ints(c.dilation),
            c.groups as i64,
        ),
        Op::MaxPool2d(p) => {
            x.max_pool2d(ints(p.kernel), ints(p.stride), ints(p.padding), ints(p.dilation), p.ceil_mode)
        }
        Op::AvgPool2d(p) => x.avg_pool2d(
            ints(p.kernel),
            ints(p.stride),
            ints(p.padding),
            p.ceil_mode,
            p.count_include_pad,
            None,
        ),
        Op::AdaptiveAvgPool2d(p) => x.adaptive_avg_pool2d(ints(p.output)),
        Op::BatchNorm(b) => {
            if train {
                tch::no_grad(|| {
                    let _ = params.get("num_batches_tracked").shallow_clone().f_add_scalar_(1);
                });
            }
            x.batch_norm(
                Some(params.get("weight")),
                Some(params.get("bias")),
                Some(params.get("running_mean")),
                Some(params.get("running_var")),
                train,
                b.momentum,
                b.eps,
                true,
            )
        }
        Op::LayerNorm(l) => {
            let shape: Vec<i64> = l.normalized_shape.iter().map(|&d| d as i64).collect();
            x.layer_norm(shape.as_slice(), params.optional("weight"), params.optional("bias"), l.eps, true)
        }
        Op::Relu(_) => x.relu(),
        Op::Sigmoid(_) => x.sigmoid(),
        Op::Tanh(_) => x.tanh(),
        Op::Gelu(_) => x.gelu("none"),
        // tch binds `leaky_relu` without its slope; this is its kernel, `x > 0 ? x : x · slope`.
        Op::LeakyRelu(l) => x.where_self(&x.gt(0.0), &(x * l.negative_slope)),
        Op::Softmax(s) => x.softmax(s.dim as i64, Kind::Float),
        Op::Dropout(d) => x.dropout(d.p, train),
        Op::Flatten(f) => x.flatten(f.start as i64, f.end as i64),
        Op::Linear(_) => x.linear(params.get("weight"), params.optional("bias")),
        Op::Add(_) => inputs[1..].iter().fold(x.shallow_clone(), |acc, y| acc + *y),
        Op::Concat(c) => Tensor::cat(inputs, c.dim as i64),
    }
}
