//! The ops on libtorch: each layer's tensors created from its description, and each op's
//! forward, one arm per op in [`apply`]'s `match`, which has no wildcard, so that an op added
//! to the compiler's registry fails to compile here until it has a forward (libtorch's
//! functions; for 2×2 average pooling, and max pooling in evaluation, where it is the faster,
//! the shim's own kernels, [`crate::shim::tiled_avg_pool2d`] and
//! [`crate::shim::channels_last_max_pool2d`]). The interpreter
//! and generated code both call these, so the two cannot disagree. Beside it,
//! `apply_in_place` is the in-place twin of the activations and arithmetic that have one,
//! for the inference plan; any other op is refused there.

use std::borrow::Cow;

use nnc_compiler::ir::{
    ArithOp, AvgPool, Conv, ConvTranspose, MaxPool, MultiHeadAttention, Op, SliceItem, Upsample,
};
use nnc_compiler::ops::{Cell, InitRule, Recurrent, TensorSpec};
use tch::{nn, Kind, TchError, Tensor};

use crate::error::LayerError;
use crate::inference::{layout_of, Layout};
use crate::init::{self, Init};
use crate::RuntimeError;

/// The tensors of one layer, trained and buffers, by their `state_dict` names, in the order of
/// the op's [`TensorSpec`]s.
#[derive(Debug)]
pub struct Params {
    tensors: Vec<(Cow<'static, str>, Tensor)>,
}

impl Params {
    /// The tensors of a layer that has none.
    pub const NONE: Params = Params { tensors: Vec::new() };

    /// A layer's tensors given directly, by name (for tests that bring their own weights).
    pub fn new<N: Into<Cow<'static, str>>>(tensors: Vec<(N, Tensor)>) -> Self {
        Params { tensors: tensors.into_iter().map(|(name, t)| (name.into(), t)).collect() }
    }

    /// The same tensors, for a shared layer applied again: its gradients reach them.
    pub fn shared(&self) -> Params {
        Params { tensors: self.tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect() }
    }

    /// Makes this layer's tensor `name` be `owner`'s tensor `to` (`tie lm_head.weight =
    /// wte.weight`), registered under the layer's path too, untrained there, so that the
    /// `state_dict` holds both names, as PyTorch's does, while the optimiser steps it once.
    pub fn tie(
        &mut self,
        root: &nn::Path,
        layer: &str,
        name: &str,
        owner: &Params,
        to: &str,
    ) -> Result<(), RuntimeError> {
        let tensor = owner.get(to)?;
        let (path, last) = tensor_home(root, layer, name);
        let alias = path.add(last, tensor.shallow_clone(), false);
        self.tensors.push((Cow::Owned(name.to_string()), alias));
        Ok(())
    }

    /// The same tensors with `name` (added if absent) holding `tensor` instead: the derived
    /// tensors of an inference plan (a convolution with a batch norm folded in).
    pub(crate) fn with(&self, name: &'static str, tensor: Tensor) -> Params {
        let mut out = self.shared();
        match out.tensors.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t = tensor,
            None => out.tensors.push((Cow::Borrowed(name), tensor)),
        }
        out
    }

    /// The same tensors, the floating-point ones cast to `kind` (an inference plan's bf16
    /// weights), detached from the model's: a plan is never trained.
    pub(crate) fn to_kind(&self, kind: Kind) -> Result<Params, TchError> {
        let tensors = self
            .tensors
            .iter()
            .map(|(n, t)| {
                let cast = match t.is_floating_point() {
                    true => t.f_detach()?.f_to_kind(kind)?,
                    false => t.shallow_clone(),
                };
                Ok((n.clone(), cast))
            })
            .collect::<Result<_, TchError>>()?;
        Ok(Params { tensors })
    }

    /// The tensor `name`, which the op's description declares; an error, not a panic, for
    /// tensors given with [`Params::new`] that lack it.
    pub(crate) fn get(&self, name: &str) -> Result<&Tensor, TchError> {
        self.optional(name).ok_or_else(|| TchError::Shape(format!("the layer has no tensor `{name}`")))
    }

    /// The tensor `name`, if this instance of the op has it (a bias can be switched off).
    pub(crate) fn optional(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
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
/// Panics if libtorch cannot allocate them, as generated constructors cannot return an error;
/// [`try_create_params`] returns it instead.
pub fn create_params(root: &nn::Path, name: &str, op: &Op, init: Init) -> Params {
    try_create_params(root, name, op, init).unwrap_or_else(|e| panic!("{e}"))
}

/// Creates the tensors of the layer `name` doing `op` under `root`, as its description says;
/// an allocation libtorch refuses (the sizes come from the model) is an error naming the
/// layer and the tensor.
/// Creates the tensors of the layer `name` doing `op`, except the `tied` ones, which
/// [`Params::tie`] then takes from another layer; panics as [`create_params`] does.
pub fn create_untied(root: &nn::Path, name: &str, op: &Op, init: Init, tied: &[&str]) -> Params {
    try_create_untied(root, name, op, init, tied).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_create_params(root: &nn::Path, name: &str, op: &Op, init: Init) -> Result<Params, RuntimeError> {
    try_create_untied(root, name, op, init, &[])
}

/// Creates the tensors of the layer `name` doing `op`, except the `tied` ones, which
/// [`Params::tie`] then takes from another layer.
pub fn try_create_untied(
    root: &nn::Path,
    name: &str,
    op: &Op,
    init: Init,
    tied: &[&str],
) -> Result<Params, RuntimeError> {
    let layer = op.layer();
    let specs = layer.tensors();
    if specs.is_empty() {
        return Ok(Params::NONE);
    }
    // Created, and so drawn, in PyTorch's order (a stable sort: the rest keep theirs).
    let first = layer.created_first();
    let rank = |spec: &TensorSpec| first.iter().position(|f| *f == spec.name).unwrap_or(first.len());
    let mut order: Vec<&TensorSpec> =
        specs.iter().filter(|spec| !tied.contains(&spec.name.as_ref())).collect();
    order.sort_by_key(|spec| rank(spec));
    let mut tensors = Vec::with_capacity(order.len());
    for spec in order {
        let dims: Vec<i64> = spec.dims.iter().map(|&d| d as i64).collect();
        let (path, last) = tensor_home(root, name, &spec.name);
        let created = create(&path, last, spec, &dims, init).map_err(|e| {
            let during = format!("creating its tensor `{}` {dims:?}", spec.name);
            let help = "the layer's sizes are too large for the memory; make it smaller";
            RuntimeError::Layer(Box::new(LayerError::new(name, op, during, &e, help)))
        })?;
        tensors.push((spec.name.clone(), created));
    }
    // Kept in the `state_dict`'s order.
    tensors.sort_by_key(|(tensor, _)| specs.iter().position(|spec| spec.name == *tensor));
    Ok(Params { tensors })
}

/// The path a layer's tensor is created under, and its last name there: `b3.0.conv1`'s
/// `weight` is `weight` under `b3 / 0 / conv1`; a submodule's tensor (`out_proj.weight`) lies
/// under the submodule's path; a tensor without a name of its own is the layer (a declared
/// `param`): `features.0.scale` is `scale` under `features / 0`.
fn tensor_home<'a, 'n>(root: &nn::Path<'a>, layer: &'n str, tensor: &'n str) -> (nn::Path<'a>, &'n str) {
    if tensor.is_empty() {
        return match layer.rsplit_once('.') {
            Some((parent, own)) => (layer_path(root, parent), own),
            None => (root.clone(), layer),
        };
    }
    let path = layer_path(root, layer);
    match tensor.rsplit_once('.') {
        Some((sub, last)) => (layer_path(&path, sub), last),
        None => (path, tensor),
    }
}

/// Creates the tensor `spec` describes as the variable `name` under `path`.
fn create(
    path: &nn::Path,
    name: &str,
    spec: &TensorSpec,
    dims: &[i64],
    init: Init,
) -> Result<Tensor, TchError> {
    if !spec.trained {
        let value = match spec.init {
            InitRule::Const(value) => value,
            InitRule::Count => {
                let counter = Tensor::f_zeros(dims, (Kind::Int64, path.device()))?;
                return Ok(path.add(name, counter, false));
            }
            InitRule::Weight
            | InitRule::XavierUniform
            | InitRule::Bias { .. }
            | InitRule::ZeroedBias { .. }
            | InitRule::Normal { .. }
            | InitRule::Embedding { .. } => {
                unreachable!("buffers start constant, as PyTorch's do")
            }
        };
        let buffer = path.f_zeros_no_train(name, dims)?;
        if value != 0.0 {
            let _filled = tch::no_grad(|| buffer.shallow_clone().f_fill_(value))?;
        }
        return Ok(buffer);
    }
    match spec.init {
        InitRule::Weight => init::weight(path, name, dims, init),
        InitRule::XavierUniform => init::weight(path, name, dims, Init::XavierUniform),
        InitRule::Bias { fan_in } => init::uniform(path, name, dims, 1.0 / (fan_in as f64).sqrt()),
        InitRule::ZeroedBias { fan_in } => {
            let bias = init::uniform(path, name, dims, 1.0 / (fan_in as f64).sqrt())?;
            let _zeroed = tch::no_grad(|| bias.shallow_clone().f_zero_())?;
            Ok(bias)
        }
        InitRule::Const(value) => path.f_var(name, dims, nn::Init::Const(value)),
        InitRule::Normal { std } => path.f_var(name, dims, nn::Init::Randn { mean: 0.0, stdev: std }),
        // As `nn.Embedding.reset_parameters`: normal(0, 1), then the padding row zeroed.
        InitRule::Embedding { padding_idx } => {
            let table = path.f_var(name, dims, nn::Init::Randn { mean: 0.0, stdev: 1.0 })?;
            if let Some(row) = padding_idx {
                let _zeroed = tch::no_grad(|| table.f_select(0, row as i64)?.f_fill_(0.0))?;
            }
            Ok(table)
        }
        InitRule::Count => unreachable!("a counter is a buffer, never trained"),
    }
}

fn ints<const N: usize>(v: [u64; N]) -> [i64; N] {
    v.map(|x| x as i64)
}

/// Attention as `nn.MultiheadAttention(batch_first=True)` computes it (its general path,
/// `F.multi_head_attention_forward`): the sequence `inputs[0]` is the query, and the key and
/// value are the memory `inputs[1]` (cross-attention) or the sequence itself; the packed
/// projection (split into the query's rows and the key's and value's, for cross-attention, as
/// PyTorch splits it), split into heads; the masks as one float mask added to the scores, as
/// PyTorch merges them: -inf at the keys the bool key padding mask (the last input) leaves
/// out, and above the diagonal where causal; scaled dot-product attention (with dropout on its
/// weights in training), the heads joined and projected.
fn multi_head_attention(
    inputs: &[&Tensor],
    params: &Params,
    a: &MultiHeadAttention,
    train: bool,
) -> Result<Tensor, TchError> {
    let x = inputs[0];
    let (n, t, e) = x.size3()?;
    let heads = a.num_heads as i64;
    let (weight, bias) = (params.get("in_proj_weight")?, params.optional("in_proj_bias"));
    // [N, L, parts·E] into `parts` tensors [N, heads, L, E / heads].
    let split = |packed: Tensor, parts: i64| -> Result<Vec<Tensor>, TchError> {
        packed
            .f_chunk(parts, -1)?
            .iter()
            .map(|part| part.f_reshape([n, -1, heads, e / heads])?.f_transpose(1, 2))
            .collect()
    };
    let (q, k, v) = match a.cross {
        false => {
            let mut qkv = split(x.f_linear(weight, bias)?, 3)?.into_iter();
            let mut next = || qkv.next().ok_or_else(|| TchError::Shape("three projections".into()));
            (next()?, next()?, next()?)
        }
        true => {
            let memory = inputs.get(1).ok_or_else(|| TchError::Shape("no memory".into()))?;
            let (w_q, w_kv) = (weight.f_narrow(0, 0, e)?, weight.f_narrow(0, e, 2 * e)?);
            let (b_q, b_kv) = match bias {
                Some(b) => (Some(b.f_narrow(0, 0, e)?), Some(b.f_narrow(0, e, 2 * e)?)),
                None => (None, None),
            };
            let q = split(x.f_linear(&w_q, b_q.as_ref())?, 1)?.remove(0);
            let mut kv = split(memory.f_linear(&w_kv, b_kv.as_ref())?, 2)?.into_iter();
            let mut next = || kv.next().ok_or_else(|| TchError::Shape("two projections".into()));
            (q, next()?, next()?)
        }
    };
    let s = k.size()[2];
    // The float mask [N, 1, T or 1, S], where PyTorch's merging makes one.
    let mut mask: Option<Tensor> = None;
    if a.key_padding_mask {
        let padding = inputs[inputs.len() - 1];
        let additive = Tensor::f_zeros([n, s], (x.kind(), x.device()))?
            .f_masked_fill(padding, f64::NEG_INFINITY)?
            .f_reshape([n, 1, 1, s])?;
        mask = Some(additive);
    }
    let causal = match (a.is_causal, mask) {
        (true, Some(padding)) => {
            let above = Tensor::f_ones([t, t], (tch::Kind::Bool, x.device()))?.f_triu(1)?;
            let causal =
                Tensor::f_zeros([t, t], (x.kind(), x.device()))?.f_masked_fill(&above, f64::NEG_INFINITY)?;
            mask = Some(causal.f_add(&padding)?);
            false
        }
        (is_causal, padding) => {
            mask = padding;
            is_causal
        }
    };
    let dropout = if train { a.dropout } else { 0.0 };
    let attended = Tensor::f_scaled_dot_product_attention(&q, &k, &v, mask, dropout, causal, None, false)?;
    let (out_weight, out_bias) = (params.get("out_proj.weight")?, params.optional("out_proj.bias"));
    if !train {
        return attended.f_transpose(1, 2)?.f_reshape([n, t, e])?.f_linear(out_weight, out_bias);
    }
    // In training, PyTorch's module projects the heads laid out [T, N, E] and returns that
    // transposed (strides E, N·E, 1). A dropout after draws its mask in memory order, so
    // only this layout draws PyTorch's mask. Evaluation has no dropout, so there the values
    // alone must agree, and the batch-first layout above spares the copy (PyTorch's fast
    // path, self-attention without gradients, gives that layout too).
    attended.f_permute([2, 0, 1, 3])?.f_reshape([t, n, e])?.f_linear(out_weight, out_bias)?.f_transpose(0, 1)
}

/// A convolution over any number of spatial axes, as `nn.Conv1d/2d/3d` computes it: through
/// the rank's own function (`conv2d`, ...), as PyTorch's module calls it, because libtorch's
/// CPU autocast has kernels for those and not for the general `convolution` they call, which
/// under `--precision bf16` would be given a bf16 input and an fp32 weight.
fn conv<const N: usize>(x: &Tensor, params: &Params, c: &Conv<N>) -> Result<Tensor, TchError> {
    let (weight, bias) = (params.get("weight")?, params.optional("bias"));
    let (stride, dilation, groups) = (ints(c.stride), ints(c.dilation), c.groups as i64);
    // A 2-D convolution runs in its weight's layout: libtorch would run one of contiguous
    // weights channels-last on a channels-last input, and a model that trains channels-last
    // keeps the weights contiguous where that was measured faster ([`crate::conv_layout`]).
    let contiguous;
    let x = match layout_of(weight) {
        Some(Layout::Contiguous) if N == 2 => {
            contiguous = x.f_contiguous()?;
            &contiguous
        }
        _ => x,
    };
    // libtorch pads "same" itself, unevenly where d·(k − 1) is odd, as PyTorch does.
    match (N, c.same) {
        (1, true) => x.f_conv1d_padding(weight, bias, stride, "same", dilation, groups),
        (2, true) => x.f_conv2d_padding(weight, bias, stride, "same", dilation, groups),
        (_, true) => x.f_conv3d_padding(weight, bias, stride, "same", dilation, groups),
        (1, false) => x.f_conv1d(weight, bias, stride, ints(c.padding), dilation, groups),
        (2, false) => x.f_conv2d(weight, bias, stride, ints(c.padding), dilation, groups),
        (_, false) => x.f_conv3d(weight, bias, stride, ints(c.padding), dilation, groups),
    }
}

/// Refuses a batch that gives each channel one value, as PyTorch's `F.batch_norm` does in
/// training: its variance has no unbiased estimate, and libtorch's kernel alone writes NaN into
/// the running variance, which spoils every later evaluation.
fn one_value_per_channel(x: &Tensor) -> Result<(), TchError> {
    let size = x.size();
    let per_channel: i64 = size.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, d)| d).product();
    match per_channel {
        1 => Err(TchError::Shape(format!(
            "batch norm in training needs more than 1 value per channel, got input size {size:?}"
        ))),
        _ => Ok(()),
    }
}

/// Max pooling over `N` spatial axes: libtorch has a function per rank, and the shim one for
/// channels-last batches in evaluation ([`shim_max_pools`]).
fn max_pool<const N: usize>(x: &Tensor, p: &MaxPool<N>) -> Result<Tensor, TchError> {
    let (kernel, stride, padding, dilation) =
        (ints(p.kernel), ints(p.stride), ints(p.padding), ints(p.dilation));
    if let (true, [k0, k1], [s0, s1], [p0, p1]) =
        (shim_max_pools(x, p), kernel.as_slice(), stride.as_slice(), padding.as_slice())
    {
        return crate::shim::channels_last_max_pool2d(x, [*k0, *k1], [*s0, *s1], [*p0, *p1]);
    }
    match N {
        1 => x.f_max_pool1d(kernel, stride, padding, dilation, p.ceil_mode),
        2 => x.f_max_pool2d(kernel, stride, padding, dilation, p.ceil_mode),
        _ => x.f_max_pool3d(kernel, stride, padding, dilation, p.ceil_mode),
    }
}

/// Whether the shim's max pooling ([`crate::shim::channels_last_max_pool2d`]) computes `p` on
/// `x`: a 2-D pooling in floor mode without dilation of a channels-last batch on the CPU, fp32
/// or bf16, that no gradient flows to (evaluation). It gives libtorch's result without the
/// index of each maximum, which libtorch's CPU kernel computes for a backward pass.
fn shim_max_pools<const N: usize>(x: &Tensor, p: &MaxPool<N>) -> bool {
    N == 2
        && !p.ceil_mode
        && p.dilation.iter().all(|&d| d == 1)
        && x.device() == tch::Device::Cpu
        && matches!(x.kind(), Kind::Float | Kind::BFloat16)
        && !x.requires_grad()
        && layout_of(x) == Some(Layout::ChannelsLast)
}

/// Average pooling over `N` spatial axes, without a divisor override (nnc's average pooling
/// divides as PyTorch's does by default; the 1-D function has no such argument).
fn avg_pool<const N: usize>(x: &Tensor, p: &AvgPool<N>) -> Result<Tensor, TchError> {
    let (kernel, stride, padding) = (ints(p.kernel), ints(p.stride), ints(p.padding));
    let (ceil, count_pad) = (p.ceil_mode, p.count_include_pad);
    if N == 2 && shim_pools(x, p) {
        return crate::shim::tiled_avg_pool2d(x);
    }
    match N {
        1 => x.f_avg_pool1d(kernel, stride, padding, ceil, count_pad),
        2 => x.f_avg_pool2d(kernel, stride, padding, ceil, count_pad, None),
        _ => x.f_avg_pool3d(kernel, stride, padding, ceil, count_pad, None),
    }
}

/// Whether the shim's 2×2 pooling computes `p` on `x`, where it is faster than libtorch's:
/// windows of 2×2 at a stride of 2, no padding (and in ceil mode, which would add a partial
/// window, even sizes), a batch of rank 4 on the CPU, fp32 or bf16, contiguous, or channels-last
/// of fewer than 8 channels. libtorch's NCHW kernel is 1.3–7× slower forward and backward,
/// fp32 and bf16, at 6–16 channels; its channels-last one vectorises over the channels: at 6
/// the slower (32×6×28×28: 97 µs against 41 forward in fp32, 226 against 136 backward in bf16),
/// from 8 on the faster in bf16's backward (102 against 178), at 128 in fp32 too (139 against
/// 223 forward).
fn shim_pools<const N: usize>(x: &Tensor, p: &AvgPool<N>) -> bool {
    let size = x.size();
    let &[_, c, h, w] = size.as_slice() else { return false };
    let plain = x.device() == tch::Device::Cpu
        && matches!(x.kind(), Kind::Float | Kind::BFloat16)
        && !x.is_sparse()
        && !x.is_mkldnn();
    // The strides only of a dense tensor (tch's `stride` panics on others).
    plain
        && p.kernel.iter().chain(&p.stride).all(|&k| k == 2)
        && p.padding.iter().all(|&q| q == 0)
        && c > 0
        && h >= 2
        && w >= 2
        && (!p.ceil_mode || (h % 2 == 0 && w % 2 == 0))
        && (x.is_contiguous() || (c < 8 && x.stride() == crate::inference::channels_last_strides(c, h, w)))
}

/// Adaptive average or max pooling to `output` over `N` spatial axes; the indices of the
/// maxima, which only `return_indices` would return, are dropped.
fn adaptive_pool<const N: usize>(x: &Tensor, output: [u64; N], max: bool) -> Result<Tensor, TchError> {
    let size = ints(output);
    Ok(match (N, max) {
        (1, false) => x.f_adaptive_avg_pool1d(size)?,
        (2, false) => x.f_adaptive_avg_pool2d(size)?,
        (_, false) => x.f_adaptive_avg_pool3d(size)?,
        (1, true) => x.f_adaptive_max_pool1d(size)?.0,
        (2, true) => x.f_adaptive_max_pool2d(size)?.0,
        (_, true) => x.f_adaptive_max_pool3d(size)?.0,
    })
}

/// A transposed convolution over any number of spatial axes, as `nn.ConvTranspose1d/2d/3d`
/// computes it, through the rank's own function, for autocast (see [`conv`]).
fn conv_transpose<const N: usize>(
    x: &Tensor,
    params: &Params,
    c: &ConvTranspose<N>,
) -> Result<Tensor, TchError> {
    let (weight, bias) = (params.get("weight")?, params.optional("bias"));
    let (stride, padding, output_padding) = (ints(c.stride), ints(c.padding), ints(c.output_padding));
    let (groups, dilation) = (c.groups as i64, ints(c.dilation));
    match N {
        1 => x.f_conv_transpose1d(weight, bias, stride, padding, output_padding, groups, dilation),
        2 => x.f_conv_transpose2d(weight, bias, stride, padding, output_padding, groups, dilation),
        _ => x.f_conv_transpose3d(weight, bias, stride, padding, output_padding, groups, dilation),
    }
}

/// Applies `op` to its inputs with its tensors: each op's libtorch forward. `layer`, the
/// node's IR name, is only for the error: every libtorch call here is the fallible (`f_`)
/// one, because the sizes, and so the memory, come from the user's model and batch; a refusal
/// comes back as [`RuntimeError::Layer`], naming the layer, the op and the input shapes.
pub fn apply(
    layer: &str,
    op: &Op,
    params: &Params,
    inputs: &[&Tensor],
    train: bool,
) -> Result<Tensor, RuntimeError> {
    let mut outputs = apply_outputs(layer, op, params, inputs, train)?;
    Ok(outputs.swap_remove(0))
}

/// Every tensor `op` computes, as [`apply`] does: its output, then its states, as many as its
/// description's `states` (a recurrent layer's final `h_n`, and an LSTM's `c_n`, each in
/// libtorch's layout, `[D·num_layers, N, H]`, which the op `FinalState` that reads it makes
/// batch first). The interpreter keeps them for the nodes that read them.
pub fn apply_outputs(
    layer: &str,
    op: &Op,
    params: &Params,
    inputs: &[&Tensor],
    train: bool,
) -> Result<Vec<Tensor>, RuntimeError> {
    let mut outputs = Vec::with_capacity(1);
    forward(op, params, inputs, train, &mut outputs).map_err(|e| layer_error(layer, op, inputs, &e))?;
    Ok(outputs)
}

/// Whether libtorch has a function that computes `op`'s forward in place on its first input,
/// as [`apply_in_place`] calls it: the activations with such a function and the arithmetic of
/// two tensors.
pub(crate) fn has_in_place(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu(_)
            | Op::Relu6(_)
            | Op::Sigmoid(_)
            | Op::Tanh(_)
            | Op::Gelu(_)
            | Op::Silu(_)
            | Op::Hardswish(_)
            | Op::Hardsigmoid(_)
            | Op::Mish(_)
            | Op::Arith(_)
    )
}

/// Whether a training forward may compute `op` in place on its first input
/// ([`apply_in_place`]) as far as its own backward goes: its in-place twin's backward reads only
/// its result (ReLU, sigmoid, tanh) or nothing (a sum or a difference). The others of
/// [`has_in_place`] read their input (ReLU6, which is libtorch's `hardtanh_`, GELU, SiLU,
/// hardswish, a product), which autograd would copy first, as PyTorch's in-place ops keep an
/// `original_self`, for nothing gained.
pub(crate) fn trains_in_place(op: &Op) -> bool {
    match op {
        Op::Relu(_) | Op::Sigmoid(_) | Op::Tanh(_) => true,
        Op::Arith(a) => matches!(a.op, ArithOp::Add | ArithOp::Sub),
        _ => false,
    }
}

/// Whether `op`'s forward gives a new tensor that its backward never reads, so that the next op
/// may overwrite it in training (as torchvision's `ReLU(inplace=True)` overwrites a batch
/// norm's output): a layer of weights ([`is_weighted_layer`]: its backward reads its input and
/// weights), or a sum or difference (its backward reads nothing).
pub(crate) fn backward_ignores_output(op: &Op) -> bool {
    is_weighted_layer(op) || matches!(op, Op::Arith(a) if matches!(a.op, ArithOp::Add | ArithOp::Sub))
}

/// Whether `op` is a convolution, a linear layer or a normalisation: a new tensor computed from
/// its input and its weights, which are what its backward reads.
pub(crate) fn is_weighted_layer(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv1d(_)
            | Op::Conv2d(_)
            | Op::Conv3d(_)
            | Op::ConvTranspose1d(_)
            | Op::ConvTranspose2d(_)
            | Op::ConvTranspose3d(_)
            | Op::Linear(_)
            | Op::BatchNorm(_)
            | Op::LayerNorm(_)
            | Op::GroupNorm(_)
    )
}

/// Whether an in-place forward computes what the out-of-place one does on these tensors: the
/// second operand of arithmetic, if any, of the first's type and broadcasting to its shape
/// (what the graph's shapes say before free sizes are known, checked again here).
pub(crate) fn fits_in_place(inputs: &[&Tensor]) -> bool {
    let Some(y) = inputs.get(1) else { return true };
    let (x, y) = (inputs[0], y);
    let (xs, ys) = (x.size(), y.size());
    x.kind() == y.kind()
        && ys.len() <= xs.len()
        && ys.iter().rev().zip(xs.iter().rev()).all(|(&b, &a)| b == a || b == 1)
}

/// `op`'s forward (one of [`has_in_place`]'s) computed in place on `inputs[0]`, with the
/// in-place twin of the function [`forward`] calls: the same values, without a new tensor. For
/// an inference plan, where nothing reads that input afterwards and its shape and type are the
/// output's, and for a training forward where autograd allows it too ([`trains_in_place`],
/// [`backward_ignores_output`]): an in-place op may overwrite what a backward needs.
pub(crate) fn apply_in_place(layer: &str, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    let mut x = inputs[0].shallow_clone();
    let result = match op {
        Op::Relu(_) => x.f_relu_(),
        Op::Relu6(_) => x.f_relu6_(),
        Op::Sigmoid(_) => x.f_sigmoid_(),
        Op::Tanh(_) => x.f_tanh_(),
        Op::Gelu(g) => x.f_gelu_(g.approximate),
        Op::Silu(_) => x.f_silu_(),
        Op::Hardswish(_) => x.f_hardswish_(),
        Op::Hardsigmoid(_) => x.f_hardsigmoid_(),
        Op::Mish(_) => x.f_mish_(),
        Op::Arith(a) => match a.op {
            ArithOp::Add => x.f_add_(inputs[1]),
            ArithOp::Sub => x.f_sub_(inputs[1]),
            ArithOp::Mul => x.f_mul_(inputs[1]),
            ArithOp::Div => x.f_div_(inputs[1]),
        },
        _ => Err(TchError::Shape("the op has no in-place forward".to_string())),
    };
    result.map_err(|e| layer_error(layer, op, inputs, &e))
}

/// The error of `layer` computing `op` on `inputs`, as a forward reports it: the inputs'
/// shapes, libtorch's message.
pub(crate) fn layer_error(layer: &str, op: &Op, inputs: &[&Tensor], e: &TchError) -> RuntimeError {
    let shapes: Vec<String> = inputs.iter().map(|t| format!("{:?}", t.size())).collect();
    let during = match shapes.len() {
        1 => format!("on input {}", shapes[0]),
        _ => format!("on inputs {}", shapes.join(", ")),
    };
    RuntimeError::Layer(Box::new(LayerError::new(layer, op, during, e, "try a smaller batch or input size")))
}

/// The `N` tensors `op` computes, its output and its states, as [`apply_outputs`] gives them:
/// what generated code calls for a layer with states, whose number it knows.
pub fn apply_all<const N: usize>(
    layer: &str,
    op: &Op,
    params: &Params,
    inputs: &[&Tensor],
    train: bool,
) -> Result<[Tensor; N], RuntimeError> {
    let outputs = apply_outputs(layer, op, params, inputs, train)?;
    let count = outputs.len();
    outputs.try_into().map_err(|_| {
        let e = TchError::Shape(format!("the layer computes {count} tensors, not {N}"));
        RuntimeError::Layer(Box::new(LayerError::new(layer, op, String::new(), &e, "")))
    })
}

/// Pushes onto `outputs` the op's output, then its states (see [`apply_outputs`]).
fn forward(
    op: &Op,
    params: &Params,
    inputs: &[&Tensor],
    train: bool,
    outputs: &mut Vec<Tensor>,
) -> Result<(), TchError> {
    let output = output(op, params, inputs, train, outputs)?;
    outputs.insert(0, output);
    Ok(())
}

/// The op's output; a layer with states pushes them onto `states`.
fn output(
    op: &Op,
    params: &Params,
    inputs: &[&Tensor],
    train: bool,
    states: &mut Vec<Tensor>,
) -> Result<Tensor, TchError> {
    // A declared `param` has no input: its value is its tensor, through which gradients flow.
    let param = || Ok::<_, TchError>(params.get("")?.shallow_clone());
    if let Op::Param(_) = op {
        return param();
    }
    let Some(&x) = inputs.first() else {
        return Err(TchError::Shape("the layer was given no input".to_string()));
    };
    Ok(match op {
        Op::Input(_) | Op::Identity(_) => x.shallow_clone(),
        Op::Conv1d(c) => conv(x, params, c)?,
        Op::Conv2d(c) => conv(x, params, c)?,
        Op::Conv3d(c) => conv(x, params, c)?,
        Op::ConvTranspose1d(c) => conv_transpose(x, params, c)?,
        Op::ConvTranspose2d(c) => conv_transpose(x, params, c)?,
        Op::ConvTranspose3d(c) => conv_transpose(x, params, c)?,
        Op::MaxPool1d(p) => max_pool(x, p)?,
        Op::MaxPool2d(p) => max_pool(x, p)?,
        Op::MaxPool3d(p) => max_pool(x, p)?,
        Op::AvgPool1d(p) => avg_pool(x, p)?,
        Op::AvgPool2d(p) => avg_pool(x, p)?,
        Op::AvgPool3d(p) => avg_pool(x, p)?,
        Op::AdaptiveAvgPool1d(p) => adaptive_pool(x, p.output, false)?,
        Op::AdaptiveAvgPool2d(p) => adaptive_pool(x, p.output, false)?,
        Op::AdaptiveAvgPool3d(p) => adaptive_pool(x, p.output, false)?,
        Op::AdaptiveMaxPool1d(p) => adaptive_pool(x, p.output, true)?,
        Op::AdaptiveMaxPool2d(p) => adaptive_pool(x, p.output, true)?,
        Op::AdaptiveMaxPool3d(p) => adaptive_pool(x, p.output, true)?,
        Op::BatchNorm(b) => {
            if train {
                one_value_per_channel(x)?;
                let _counted =
                    tch::no_grad(|| params.get("num_batches_tracked")?.shallow_clone().f_add_scalar_(1))?;
            }
            x.f_batch_norm(
                Some(params.get("weight")?),
                Some(params.get("bias")?),
                Some(params.get("running_mean")?),
                Some(params.get("running_var")?),
                train,
                b.momentum,
                b.eps,
                true,
            )?
        }
        Op::LayerNorm(l) => {
            let shape: Vec<i64> = l.normalized_shape.iter().map(|&d| d as i64).collect();
            x.f_layer_norm(shape.as_slice(), params.optional("weight"), params.optional("bias"), l.eps, true)?
        }
        // torchvision's LayerNorm2d: channels last, normalised, and back.
        Op::LayerNorm2d(l) => x
            .f_permute([0, 2, 3, 1])?
            .f_layer_norm(
                [l.channels as i64],
                params.optional("weight"),
                params.optional("bias"),
                l.eps,
                true,
            )?
            .f_permute([0, 3, 1, 2])?,
        Op::Relu(_) => x.f_relu()?,
        Op::Relu6(_) => x.f_relu6()?,
        Op::Sigmoid(_) => x.f_sigmoid()?,
        Op::Tanh(_) => x.f_tanh()?,
        Op::Gelu(g) => x.f_gelu(g.approximate)?,
        Op::Silu(_) => x.f_silu()?,
        Op::Hardswish(_) => x.f_hardswish()?,
        Op::Hardsigmoid(_) => x.f_hardsigmoid()?,
        Op::Mish(_) => x.f_mish()?,
        // tch binds `leaky_relu`, `elu`, `softplus` and `hardtanh` without their numbers, so
        // these arms are libtorch's CPU kernels written out, with the same gradients (checked by
        // runtime/tests/conformance.rs). Where a branch overflows on the inputs the other branch
        // takes (`exp` of a large x), its input is clamped to where it is taken: the values are
        // the same, and the gradient through the unused branch is 0, not 0 · ∞ = NaN.
        // `x > 0 ? x : x · slope`
        Op::LeakyRelu(l) => x.f_where_self(&x.f_gt(0.0)?, &x.f_mul_scalar(l.negative_slope)?)?,
        Op::Prelu(_) => x.f_prelu(params.get("weight")?)?,
        // `x > 0 ? x : expm1(x) · alpha`
        Op::Elu(e) => {
            x.f_where_self(&x.f_gt(0.0)?, &x.f_clamp_max(0.0)?.f_expm1()?.f_mul_scalar(e.alpha)?)?
        }
        // `x · beta > threshold ? x : log1p(exp(x · beta)) / beta`
        Op::Softplus(s) => {
            let scaled = x.f_mul_scalar(s.beta)?;
            let soft = scaled.f_clamp_max(s.threshold)?.f_exp()?.f_log1p()?.f_div_scalar(s.beta)?;
            x.f_where_self(&scaled.f_gt(s.threshold)?, &soft)?
        }
        // `clamp(x, min_val, max_val)`, with hardtanh's gradient: none at the bounds themselves,
        // where clamp's own passes it, so the clamped values are detached.
        Op::Hardtanh(h) => {
            let inside = x.f_gt(h.min_val)?.f_logical_and(&x.f_lt(h.max_val)?)?;
            x.f_where_self(&inside, &x.f_clamp(h.min_val, h.max_val)?.f_detach()?)?
        }
        Op::Softmax(s) => x.f_softmax(s.dim as i64, Kind::Float)?,
        Op::LogSoftmax(s) => x.f_log_softmax(s.dim as i64, Kind::Float)?,
        Op::Dropout(d) => x.f_dropout(d.p, train)?,
        Op::Flatten(f) => x.f_flatten(f.start as i64, f.end as i64)?,
        Op::Linear(_) => x.f_linear(params.get("weight")?, params.optional("bias"))?,
        Op::MultiHeadAttention(a) => multi_head_attention(inputs, params, a, train)?,
        Op::Lstm(l) => recurrent(inputs, op, params, l.recurrent(), train, states)?,
        Op::Gru(g) => recurrent(inputs, op, params, g.recurrent(), train, states)?,
        Op::Rnn(r) => recurrent(inputs, op, params, r.recurrent(), train, states)?,
        // The state, [D·num_layers, N, H] as libtorch gives it, batch first.
        Op::FinalState(_) => x.f_transpose(0, 1)?,
        // As `F.embedding`: the padding row (-1 for none) only keeps its gradient at zero.
        Op::Embedding(e) => Tensor::f_embedding(
            params.get("weight")?,
            x,
            e.padding_idx.map_or(-1, |row| row as i64),
            false,
            false,
        )?,
        Op::Arith(a) => {
            let y = &inputs[1];
            match a.op {
                ArithOp::Add => x.f_add(y)?,
                ArithOp::Sub => x.f_sub(y)?,
                ArithOp::Mul => x.f_mul(y)?,
                ArithOp::Div => x.f_div(y)?,
            }
        }
        // As PyTorch's `Tensor.__rsub__` and `__rtruediv__` compute `c - x` and `c / x`
        // (`rsub`, and `reciprocal(x) * c`), so that results agree to the bit.
        Op::ArithScalar(s) => match (s.op, s.reversed) {
            (ArithOp::Add, _) => x.f_add_scalar(s.value)?,
            (ArithOp::Mul, _) => x.f_mul_scalar(s.value)?,
            (ArithOp::Sub, false) => x.f_sub_scalar(s.value)?,
            (ArithOp::Sub, true) => x.f_rsub_scalar(s.value)?,
            (ArithOp::Div, false) => x.f_div_scalar(s.value)?,
            (ArithOp::Div, true) => x.f_reciprocal()?.f_mul_scalar(s.value)?,
        },
        Op::Concat(c) => {
            // A `param` joins repeated along the batch of the batched inputs.
            let n = inputs[c.batched_input()].size()[0];
            let parts = inputs
                .iter()
                .zip(c.expand.iter())
                .map(|(&x, &expand)| match expand {
                    true => {
                        let mut sizes = x.size();
                        sizes[0] = n;
                        x.f_expand(sizes, false)
                    }
                    false => Ok(x.shallow_clone()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Tensor::f_cat(&parts, c.dim as i64)?
        }
        // The batch is the input's own, so that any batch size runs.
        Op::Reshape(r) => {
            let sizes: Vec<i64> =
                x.size().into_iter().take(1).chain(r.shape.iter().map(|&d| d as i64)).collect();
            x.f_reshape(sizes)?
        }
        Op::Permute(p) => x.f_permute(p.dims.iter().map(|&d| d as i64).collect::<Vec<_>>())?,
        Op::Transpose(t) => x.f_transpose(t.dim0 as i64, t.dim1 as i64)?,
        Op::Unflatten(u) => {
            x.f_unflatten(u.dim as i64, u.sizes.iter().map(|&d| d as i64).collect::<Vec<_>>())?
        }
        Op::Mean(r) => x.f_mean_dim(Some(dims(&r.dims).as_slice()), r.keepdim, None::<Kind>)?,
        Op::Sum(r) => x.f_sum_dim_intlist(Some(dims(&r.dims).as_slice()), r.keepdim, None::<Kind>)?,
        Op::Amax(r) => x.f_amax(dims(&r.dims), r.keepdim)?,
        Op::Slice(s) => slice(x, &s.items)?,
        Op::Stack(s) => Tensor::f_stack(inputs, s.dim as i64)?,
        Op::Param(_) => param()?,
        Op::Matmul(_) => x.f_matmul(inputs[1])?,
        Op::Einsum(e) => Tensor::f_einsum(&e.equation, inputs, None::<&[i64]>)?,
        Op::Attention(a) => {
            // The mask, [N, S] or [N, L, S], given 1s for the dimensions between.
            let mask = match inputs.get(3).filter(|_| a.masked) {
                Some(m) => {
                    let mut sizes = m.size();
                    let between = inputs[1].dim().saturating_sub(sizes.len());
                    sizes.splice(1..1, std::iter::repeat_n(1, between));
                    Some(m.f_reshape(sizes)?)
                }
                None => None,
            };
            Tensor::f_scaled_dot_product_attention(
                x,
                inputs[1],
                inputs[2],
                mask,
                0.0,
                a.is_causal,
                a.scale,
                false,
            )?
        }
        Op::GroupNorm(g) => x.f_group_norm(
            g.num_groups as i64,
            params.optional("weight"),
            params.optional("bias"),
            g.eps,
            true,
        )?,
        // As `_InstanceNorm.forward`: the input's own statistics in training or without running
        // ones, which that call then updates; the running ones in evaluation. Unlike batch norm,
        // it never counts `num_batches_tracked`.
        Op::InstanceNorm(n) => x.f_instance_norm(
            params.optional("weight"),
            params.optional("bias"),
            params.optional("running_mean"),
            params.optional("running_var"),
            train || !n.track_running_stats,
            n.momentum,
            n.eps,
            true,
        )?,
        Op::Upsample(u) => upsample(x, u)?,
        Op::PixelShuffle(p) => x.f_pixel_shuffle(p.upscale_factor as i64)?,
        Op::PixelUnshuffle(p) => x.f_pixel_unshuffle(p.downscale_factor as i64)?,
    })
}

/// A recurrent layer on a sequence `inputs[0]` [N, T, F], batch first, from its initial states
/// (`inputs[1..]`, batch first, [N, D·num_layers, H]) or zero ones: every step's hidden state
/// of the last layer, [N, T, D·H], with the final states pushed onto `states` in libtorch's
/// layout. libtorch takes the tensors as one list in PyTorch's `state_dict` order, which the
/// op's description gives; they are looked up by name, so that tensors given with
/// [`Params::new`] in another order still line up. `dropout` acts between layers in training
/// only.
fn recurrent(
    inputs: &[&Tensor],
    op: &Op,
    params: &Params,
    r: Recurrent,
    train: bool,
    states: &mut Vec<Tensor>,
) -> Result<Tensor, TchError> {
    let x = inputs[0];
    let specs = op.layer().tensors();
    let weights = specs.iter().map(|spec| params.get(&spec.name)).collect::<Result<Vec<_>, _>>()?;
    let batch = x.size().first().copied().unwrap_or(0);
    let count = (r.num_layers * r.directions()) as i64;
    // libtorch only reads the initial states: zero, or those given, with the batch second, as
    // PyTorch's module passes them (contiguous, as cuDNN needs them).
    let zeros = || Tensor::f_zeros([count, batch, r.hidden_size as i64], (x.f_kind()?, x.device()));
    let initial = |k: usize| match inputs.get(k).filter(|_| r.initial) {
        Some(h) => h.f_transpose(0, 1)?.f_contiguous(),
        None => zeros(),
    };
    let h0 = initial(1)?;
    let (layers, bidirectional, batch_first) = (r.num_layers as i64, r.bidirectional, true);
    let (output, h_n) = match r.cell {
        Cell::Lstm => {
            let c0 = initial(2)?;
            let (output, h_n, c_n) = x.f_lstm(
                &[&h0, &c0],
                &weights,
                r.bias,
                layers,
                r.dropout,
                train,
                bidirectional,
                batch_first,
            )?;
            states.push(h_n);
            states.push(c_n);
            return Ok(output);
        }
        Cell::Gru => x.f_gru(&h0, &weights, r.bias, layers, r.dropout, train, bidirectional, batch_first)?,
        Cell::RnnTanh => {
            x.f_rnn_tanh(&h0, &weights, r.bias, layers, r.dropout, train, bidirectional, batch_first)?
        }
        Cell::RnnRelu => {
            x.f_rnn_relu(&h0, &weights, r.bias, layers, r.dropout, train, bidirectional, batch_first)?
        }
    };
    states.push(h_n);
    Ok(output)
}

fn dims(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

/// `x[:, items...]`: each item applies to the next dimension; an index removes its dimension,
/// so the next item applies to the same position.
fn slice(x: &Tensor, items: &[SliceItem]) -> Result<Tensor, TchError> {
    let mut out = x.shallow_clone();
    let mut dim = 1;
    for item in items {
        match *item {
            SliceItem::All => dim += 1,
            SliceItem::Range { start, end, step } => {
                out = out.f_slice(dim, start as i64, end as i64, step as i64)?;
                dim += 1;
            }
            SliceItem::Index(i) => out = out.f_select(dim, i as i64)?,
        }
    }
    Ok(out)
}

/// `F.interpolate` as PyTorch 2.13 dispatches it: the kernel of the mode and rank, given the
/// output's size and, when the layer was given a scale, that scale for every dimension, which
/// the kernels map positions by (PyTorch passes it on rather than recomputing it).
fn upsample(x: &Tensor, u: &Upsample) -> Result<Tensor, TchError> {
    let size: Vec<i64> = u.size.iter().map(|&d| d as i64).collect();
    let (s, corners) = (u.scale_factor, u.align_corners);
    match (u.mode, size.len()) {
        ("nearest", 1) => x.f_upsample_nearest1d(&size, s),
        ("nearest", 2) => x.f_upsample_nearest2d(&size, s, s),
        ("nearest", 3) => x.f_upsample_nearest3d(&size, s, s, s),
        ("linear", 1) => x.f_upsample_linear1d(&size, corners, s),
        ("bilinear", 2) => x.f_upsample_bilinear2d(&size, corners, s, s),
        ("bicubic", 2) => x.f_upsample_bicubic2d(&size, corners, s, s),
        ("trilinear", 3) => x.f_upsample_trilinear3d(&size, corners, s, s, s),
        // The shape rule refuses these; an IR built by hand could still hold one.
        (mode, n) => {
            Err(TchError::Shape(format!("upsample mode {mode:?} has no kernel for {n} spatial dimensions")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn pool(kernel: u64, stride: u64, padding: u64, ceil_mode: bool) -> AvgPool<2> {
        AvgPool {
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 2],
            ceil_mode,
            count_include_pad: true,
        }
    }

    fn libtorch(x: &Tensor, p: &AvgPool<2>) -> Tensor {
        x.avg_pool2d(ints(p.kernel), ints(p.stride), ints(p.padding), p.ceil_mode, p.count_include_pad, None)
    }

    /// The input's gradient of `f(x) · grad`.
    fn input_grad(x: &Tensor, f: impl Fn(&Tensor) -> Tensor, grad: &Tensor) -> Tensor {
        let x = x.detach().set_requires_grad(true);
        Tensor::run_backward(&[(f(&x) * grad).sum(Kind::Float)], &[&x], false, false).remove(0)
    }

    /// A tensor's bits, so that equality sees the sign of a zero and a NaN's payload.
    fn bits(t: &Tensor) -> Tensor {
        let kind = if t.kind() == Kind::Float { Kind::Int } else { Kind::Int16 };
        t.contiguous().view_dtype(kind)
    }

    /// Standard normal values of `dims` in `kind` and layout, with a 2×2 window of three zeros
    /// and the negative number nearest zero of the kind (its average rounds to -0), and a -0 as
    /// the first image's last element.
    fn awkward(dims: [i64; 4], kind: Kind, channels_last: bool) -> Tensor {
        let x = Tensor::randn(dims, (Kind::Float, Device::Cpu));
        let nearest_zero = match kind {
            Kind::Float => f32::from_bits(0x8000_0001),
            _ => f32::from_bits(0x8001_0000),
        };
        let first = x.get(0).get(0);
        if dims[2] >= 2 && dims[3] >= 2 {
            let _ = first.narrow(0, 0, 2).narrow(1, 0, 2).fill_(0.0);
            let _ = first.get(0).get(0).fill_(f64::from(nearest_zero));
        }
        let _ = first.get(dims[2] - 1).get(dims[3] - 1).fill_(-0.0);
        let x = x.to_kind(kind);
        match channels_last {
            true => crate::inference::channels_last(&x).unwrap(),
            false => x,
        }
    }

    /// The shim's 2×2 pooling gives libtorch's outputs and gradients bit for bit, in their
    /// layouts, for both layouts, fp32 and bf16, averages and gradients that round to -0
    /// (libtorch's NCHW forward and both backwards add to zero, giving +0), odd sizes (a row
    /// and a column dropped), ceil mode on even sizes, one image of one 2×2 window, and LeNet's
    /// first pooling, which `parallel_for` splits between threads.
    #[test]
    fn the_shims_pooling_is_libtorchs_bit_for_bit() {
        tch::manual_seed(7);
        for dims in [[32, 6, 28, 28], [3, 5, 7, 9], [1, 1, 2, 2], [2, 7, 10, 12]] {
            for kind in [Kind::Float, Kind::BFloat16] {
                for channels_last in [false, true] {
                    for ceil_mode in [false, true] {
                        let p = pool(2, 2, 0, ceil_mode);
                        let x = awkward(dims, kind, channels_last);
                        let case =
                            format!("{dims:?} {kind:?} channels-last {channels_last} ceil {ceil_mode}");
                        let odd = dims[2] % 2 == 1 || dims[3] % 2 == 1;
                        assert_eq!(shim_pools(&x, &p), !(ceil_mode && odd), "{case}");
                        let (ours, theirs) = (avg_pool(&x, &p).unwrap(), libtorch(&x, &p));
                        assert!(bits(&ours).equal(&bits(&theirs)), "{case}: outputs differ");
                        assert_eq!(ours.stride(), theirs.stride(), "{case}");
                        let grad = awkward(theirs.size().try_into().unwrap(), kind, false);
                        let ours = input_grad(&x, |x| avg_pool(x, &p).unwrap(), &grad);
                        let theirs = input_grad(&x, |x| libtorch(x, &p), &grad);
                        assert!(bits(&ours).equal(&bits(&theirs)), "{case}: gradients differ");
                        assert_eq!(ours.stride(), theirs.stride(), "{case}");
                    }
                }
            }
        }
    }

    /// A gradient taken with `create_graph` can itself be differentiated, as libtorch's can: the
    /// gradient of `sum(g²)`, `g` the pooling's input gradient for `v`, with respect to `v`, in
    /// both layouts.
    #[test]
    fn the_shims_pooling_differentiates_twice() {
        for channels_last in [false, true] {
            tch::manual_seed(8);
            let x = awkward([2, 3, 6, 6], Kind::Float, channels_last).set_requires_grad(true);
            let p = pool(2, 2, 0, false);
            assert!(shim_pools(&x, &p));
            let second = |f: &dyn Fn(&Tensor) -> Tensor| {
                let v = Tensor::randn([2, 3, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
                let y = (f(&x) * &v).sum(Kind::Float);
                let g = Tensor::run_backward(&[y], &[&x], true, true).remove(0);
                let z = (&g * &g).sum(Kind::Float);
                (Tensor::run_backward(&[z], &[&v], false, false).remove(0), v.detach(), g.stride())
            };
            tch::manual_seed(9);
            let (ours, v, our_strides) = second(&|x| avg_pool(x, &p).unwrap());
            tch::manual_seed(9);
            let (theirs, same_v, their_strides) = second(&|x| libtorch(x, &p));
            assert!(v.equal(&same_v));
            assert!(bits(&ours).equal(&bits(&theirs)), "channels-last {channels_last}");
            assert_eq!(our_strides, their_strides, "channels-last {channels_last}");
            // d sum(g²) / dv = 2 P Pᵀ v: each window's value, spread over 4 inputs of a quarter each.
            assert!(ours.allclose(&(&v * 0.5), 1e-6, 1e-6, false));
        }
    }

    fn max_pool2d(kernel: [u64; 2], stride: [u64; 2], padding: [u64; 2]) -> MaxPool<2> {
        MaxPool { kernel, stride, padding, dilation: [1, 1], ceil_mode: false }
    }

    /// The shim's channels-last max pooling gives libtorch's `max_pool2d` bit for bit, in its
    /// layout, fp32 and bf16, with NaNs (which win; their payload aside), infinities and zeros
    /// of both signs in the windows: ResNet's stem pool (3, stride 2, padding 1) at its size,
    /// uneven windows, strides and paddings, a 5×5 window on a 5×5 image padded by 2, one image
    /// of one window.
    #[test]
    fn the_shims_max_pooling_is_libtorchs_bit_for_bit() {
        tch::manual_seed(11);
        let cases = [
            ([2, 64, 48, 48], max_pool2d([3, 3], [2, 2], [1, 1])),
            ([3, 5, 7, 9], max_pool2d([2, 3], [1, 2], [1, 0])),
            ([2, 8, 5, 5], max_pool2d([5, 5], [1, 1], [2, 2])),
            ([2, 17, 6, 6], max_pool2d([2, 2], [2, 2], [0, 0])),
            ([1, 3, 2, 2], max_pool2d([2, 2], [2, 2], [0, 0])),
        ];
        for (dims, p) in cases {
            for kind in [Kind::Float, Kind::BFloat16] {
                let x = awkward(dims, kind, true);
                let first = x.get(0).get(1);
                let _ = first.get(0).get(0).fill_(f64::NAN);
                let _ = first.get(1).get(1).fill_(f64::NEG_INFINITY);
                let _ = x.get(dims[0] - 1).get(2).get(1).get(0).fill_(f64::INFINITY);
                let case = format!("{dims:?} {kind:?} {p:?}");
                assert!(shim_max_pools(&x, &p), "{case}");
                let ours = max_pool(&x, &p).unwrap();
                let theirs = x.max_pool2d(ints(p.kernel), ints(p.stride), ints(p.padding), [1, 1], false);
                assert!(ours.isnan().any().int64_value(&[]) == 1, "{case}: a NaN wins its windows");
                assert!(ours.isnan().equal(&theirs.isnan()), "{case}: NaNs differ");
                // A NaN's payload aside (libtorch's vectorised bf16 path gives 0xFFFF, a copy of
                // the input's 0x7FC0 elsewhere), the same bits: the sign of each zero too.
                let (ours, theirs) = (ours.nan_to_num(0.0, None, None), theirs.nan_to_num(0.0, None, None));
                assert!(bits(&ours).equal(&bits(&theirs)), "{case}: outputs differ");
                assert_eq!(ours.stride(), theirs.stride(), "{case}");
            }
        }
    }

    /// libtorch's max pooling wherever the shim's does not apply: a gradient to compute, another
    /// layout, ceil mode, dilation, another type, 1-D.
    #[test]
    fn other_max_poolings_stay_libtorchs() {
        let x = || {
            crate::inference::channels_last(&Tensor::zeros([2, 8, 9, 9], (Kind::Float, Device::Cpu))).unwrap()
        };
        let p = max_pool2d([3, 3], [2, 2], [1, 1]);
        assert!(shim_max_pools(&x(), &p));
        assert!(!shim_max_pools(&x().set_requires_grad(true), &p));
        assert!(!shim_max_pools(&x().contiguous(), &p));
        assert!(!shim_max_pools(&x(), &MaxPool { ceil_mode: true, ..p.clone() }));
        assert!(!shim_max_pools(&x(), &MaxPool { dilation: [2, 1], ..p.clone() }));
        assert!(!shim_max_pools(&x().to_kind(Kind::Double), &p));
        let one_d = MaxPool { kernel: [3], stride: [2], padding: [1], dilation: [1], ceil_mode: false };
        assert!(!shim_max_pools(&Tensor::zeros([2, 8, 9], (Kind::Float, Device::Cpu)), &one_d));
    }

    /// libtorch's own kernel where the shim's is not faster or does not apply.
    #[test]
    fn other_poolings_stay_libtorchs() {
        let x = |dims: [i64; 4]| Tensor::zeros(dims, (Kind::Float, Device::Cpu));
        let p = pool(2, 2, 0, false);
        assert!(shim_pools(&x([2, 8, 8, 8]), &p));
        assert!(!shim_pools(&crate::inference::channels_last(&x([2, 8, 8, 8])).unwrap(), &p));
        assert!(shim_pools(&crate::inference::channels_last(&x([2, 7, 8, 8])).unwrap(), &p));
        assert!(!shim_pools(&x([2, 3, 8, 8]), &pool(3, 3, 0, false)));
        assert!(!shim_pools(&x([2, 3, 8, 8]), &pool(2, 1, 0, false)));
        assert!(!shim_pools(&x([2, 3, 8, 8]), &pool(2, 2, 1, false)));
        assert!(!shim_pools(&x([2, 3, 7, 8]), &pool(2, 2, 0, true)));
        assert!(!shim_pools(&x([1, 3, 8, 8]).squeeze_dim(0), &p));
        assert!(!shim_pools(&x([2, 3, 8, 8]).to_kind(Kind::Double), &p));
        assert!(!shim_pools(&x([2, 3, 8, 16]).slice(3, 0, 16, 2), &p));
        assert!(!shim_pools(&x([2, 0, 8, 8]), &p));
        assert!(!shim_pools(&x([2, 3, 8, 8]).to_mkldnn(), &p));
    }
}
