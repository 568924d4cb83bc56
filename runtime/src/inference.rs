//! The inference compilation of a model: a plan derived once from its IR graph and its loaded
//! tensors, for evaluation-mode forwards (`nnc run`, `eval`, `predict`, `bench`).
//!
//! - **Batch norm folded** into the convolution or linear layer before it: in evaluation mode
//!   a batch norm is an affine map per channel, `y = (x − mean) · γ / √(var + ε) + β`, which
//!   the layer before it can apply itself with a new weight `W · s` and bias
//!   `(b − mean) · s + β` (`s = γ / √(var + ε)`), computed once, in double precision, from
//!   the trained tensors. The graph's names stay as they are (the weights load by name before
//!   the plan is made); the batch norm's node then passes its layer's value on.
//! - **Channels-last** (NHWC) activations and convolution weights, where the caller asks for
//!   it ([`Layout`]): oneDNN's convolutions run on that layout without reordering, and the
//!   values are the same. The outputs are given back in the usual (contiguous) layout.
//!
//! - **bf16 weights made once**, for a model of [`Precision::Bf16`]: the weights and biases of
//!   the convolutions and linear layers, which libtorch's autocast would otherwise cast from
//!   fp32 at every forward, are cast once (after folding, in the plan's layout); autocast then
//!   finds them in bf16 and casts only the activations. Every other tensor stays as loaded.
//!
//! Every other node runs through [`ops::apply_outputs`], the one forward of each op, so the
//! plan computes what the interpreter computes, to rounding (a test holds every model of
//! `models/` within 1e-5 relative of it). The plan holds derived tensors: a model whose
//! weights change afterwards (training) needs a new plan.

use nnc_compiler::ir::{Graph, NodeId, Op};
use tch::{Kind, TchError, Tensor};

use crate::error::LayerError;
use crate::model::{first_device, node_inputs};
use crate::ops::{self, Params};
use crate::precision::Precision;
use crate::{Model, RuntimeError};

/// The memory layout of a plan's 4-D activations and convolution weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// libtorch's default, NCHW contiguous.
    #[default]
    Contiguous,
    /// NHWC in memory (PyTorch's `torch.channels_last`), the same logical shape.
    ChannelsLast,
}

impl Layout {
    /// The layout measured faster for the graph: channels-last where 2-D convolutions of at
    /// least 16 input channels do most of the multiply-adds (ResNet-18 and MobileNetV2 at
    /// 96×96: 1.3–1.9× at batch 1, up to 1.9× at batch 32, on 1 and 2 threads of an AMD EPYC),
    /// contiguous otherwise (LeNet, whose convolutions take 1 and 6 channels: a few per cent
    /// slower in channels-last).
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Contiguous => "contiguous layout",
            Layout::ChannelsLast => "channels-last layout",
        }
    }

    pub fn for_graph(graph: &Graph) -> Layout {
        let wide: u64 = graph
            .nodes
            .iter()
            .filter(|n| matches!(&n.op, Op::Conv2d(c) if c.in_channels >= 16))
            .map(|n| n.macs)
            .sum();
        match wide > graph.total_macs() / 2 {
            true => Layout::ChannelsLast,
            false => Layout::Contiguous,
        }
    }
}

/// What the plan does at one node.
#[derive(Debug)]
enum Step {
    /// Not computed in evaluation mode (a layer of training's outputs only).
    Skip,
    /// The graph's `k`th input.
    Input(usize),
    /// A batch norm folded into the layer before it: that layer's value.
    Folded(NodeId),
    /// The node's op, with the plan's tensors where they differ from the model's.
    Run(Option<Params>),
}

/// A model compiled for inference: see the module's documentation.
#[derive(Debug)]
pub struct Inference<'m> {
    model: &'m Model,
    steps: Vec<Step>,
    /// For each node, the last node that reads its value (through a folded batch norm too).
    last_use: Vec<usize>,
    layout: Layout,
    folded: usize,
}

impl<'m> Inference<'m> {
    /// The plan of `model` with its current tensors: call it after loading the weights.
    pub fn new(model: &'m Model, layout: Layout) -> Result<Inference<'m>, RuntimeError> {
        let graph = model.graph();
        let computed = model.computed_in(false);
        let params = model.node_params();
        let readers = readers(graph);
        let mut steps: Vec<Step> = Vec::with_capacity(graph.nodes.len());
        let mut folded = 0;
        for (i, node) in graph.nodes.iter().enumerate() {
            let step = if !computed[i] {
                Step::Skip
            } else if let Some(k) = graph.inputs.iter().position(|id| id.0 == i) {
                Step::Input(k)
            } else if let Some(layer) = foldable(graph, &readers, computed, i) {
                let (weight, bias) = fold(&params[layer.0], &params[i], &node.op)
                    .map_err(|e| plan_error(&graph.nodes[layer.0].name, &graph.nodes[layer.0].op, &e))?;
                let derived = params[layer.0].with("weight", weight).with("bias", bias);
                steps[layer.0] = Step::Run(Some(derived));
                folded += 1;
                Step::Folded(layer)
            } else {
                Step::Run(None)
            };
            steps.push(step);
        }
        if layout == Layout::ChannelsLast {
            for (i, node) in graph.nodes.iter().enumerate() {
                if !matches!(node.op, Op::Conv2d(_)) || matches!(steps[i], Step::Skip) {
                    continue;
                }
                let own = match &steps[i] {
                    Step::Run(Some(p)) => p.shared(),
                    _ => params[i].shared(),
                };
                let weight = own
                    .get("weight")
                    .and_then(channels_last)
                    .map_err(|e| plan_error(&node.name, &node.op, &e))?;
                steps[i] = Step::Run(Some(own.with("weight", weight)));
            }
        }
        if model.precision() == Precision::Bf16 {
            for (i, node) in graph.nodes.iter().enumerate() {
                if !lower_precision(&node.op) || matches!(steps[i], Step::Skip) {
                    continue;
                }
                let own = match &steps[i] {
                    Step::Run(Some(p)) => p.shared(),
                    _ => params[i].shared(),
                };
                let cast = own.to_kind(Kind::BFloat16).map_err(|e| plan_error(&node.name, &node.op, &e))?;
                steps[i] = Step::Run(Some(cast));
            }
        }
        // A folded batch norm's value is its layer's: that value lives until the batch
        // norm's own last reader.
        let mut last_use = graph.last_uses();
        for (i, step) in steps.iter().enumerate() {
            if let Step::Folded(layer) = step {
                last_use[layer.0] = last_use[i];
            }
        }
        Ok(Inference { model, steps, last_use, layout, folded })
    }

    /// How many batch norms the plan folded into the layer before them.
    pub fn folded(&self) -> usize {
        self.folded
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The main output in evaluation mode, after checking the input, for a model of one input.
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor, RuntimeError> {
        self.try_forward_inputs(&[x])
    }

    /// The main output in evaluation mode of a model given its inputs, each checked.
    pub fn try_forward_inputs(&self, xs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
        let mut outputs = self.try_forward_outputs_inputs(xs)?;
        Ok(outputs.swap_remove(0))
    }

    /// The outputs of evaluation mode, in the network's order, as the interpreter's
    /// [`Model::try_forward_outputs_inputs`] gives them.
    pub fn try_forward_outputs_inputs(&self, xs: &[&Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        self.model.check_inputs(xs)?;
        let precision = self.model.precision();
        let _autocast = precision.enter(first_device(xs))?;
        let graph = self.model.graph();
        let params = self.model.node_params();
        let mut values: Vec<Option<Vec<Tensor>>> = Vec::with_capacity(graph.nodes.len());
        for (i, node) in graph.nodes.iter().enumerate() {
            let value = match &self.steps[i] {
                Step::Skip => None,
                Step::Input(k) => {
                    Some(vec![self.arrange(xs[*k]).map_err(|e| plan_error(&node.name, &node.op, &e))?])
                }
                Step::Folded(layer) => {
                    values[layer.0].as_ref().map(|v| v.iter().map(Tensor::shallow_clone).collect())
                }
                Step::Run(derived) => {
                    let inputs = node_inputs(node, &values);
                    let own = derived.as_ref().unwrap_or(&params[i]);
                    Some(ops::apply_outputs(&node.name, &node.op, own, &inputs, false)?)
                }
            };
            values.push(value);
            for input in &node.inputs {
                if self.last_use[input.0] == i {
                    values[input.0] = None;
                }
            }
        }
        graph
            .outputs_in(false)
            .map(|o| {
                let value = values[o.node.0].as_ref().expect("the outputs are kept");
                let node = graph.node(o.node);
                contiguous(&value[0])
                    .and_then(|t| precision.output(&t))
                    .map_err(|e| plan_error(&node.name, &node.op, &e))
            })
            .collect()
    }

    /// A float input of rank 4 in the plan's layout; others as they are.
    fn arrange(&self, x: &Tensor) -> Result<Tensor, TchError> {
        match self.layout {
            Layout::ChannelsLast if x.dim() == 4 && x.is_floating_point() => channels_last(x),
            _ => Ok(x.shallow_clone()),
        }
    }
}

/// Whether libtorch's autocast computes the op in bf16 on the CPU and on CUDA (the ops whose
/// functions are on both devices' lower-precision lists; see `precision.rs`), so that its
/// tensors can be bf16 from the start. Tensors of other ops stay fp32, as autocast leaves them.
fn lower_precision(op: &Op) -> bool {
    matches!(
        op,
        Op::Linear(_)
            | Op::Conv1d(_)
            | Op::Conv2d(_)
            | Op::Conv3d(_)
            | Op::ConvTranspose1d(_)
            | Op::ConvTranspose2d(_)
            | Op::ConvTranspose3d(_)
    )
}

/// For each node, how many nodes read it.
fn readers(graph: &Graph) -> Vec<usize> {
    let mut count = vec![0; graph.nodes.len()];
    for node in &graph.nodes {
        for input in &node.inputs {
            count[input.0] += 1;
        }
    }
    count
}

/// The layer a batch norm at `i` folds into: a convolution (not transposed), or a linear layer
/// giving `[N, C]`, whose value only this batch norm reads and which is no output.
fn foldable(graph: &Graph, readers: &[usize], computed: &[bool], i: usize) -> Option<NodeId> {
    let node = &graph.nodes[i];
    if !matches!(node.op, Op::BatchNorm(_)) {
        return None;
    }
    let &[layer] = node.inputs.as_slice() else { return None };
    let before = graph.node(layer);
    let foldable_op = match &before.op {
        Op::Conv1d(_) | Op::Conv2d(_) | Op::Conv3d(_) => true,
        Op::Linear(_) => before.shape.rank() == 2,
        _ => false,
    };
    let is_output = graph.outputs.iter().any(|o| o.node == layer);
    (foldable_op && readers[layer.0] == 1 && !is_output && computed[layer.0]).then_some(layer)
}

/// The weight and bias of `layer` with the batch norm `norm` after it folded in, computed in
/// double precision and given back in the weight's kind.
fn fold(layer: &Params, norm: &Params, op: &Op) -> Result<(Tensor, Tensor), TchError> {
    let Op::BatchNorm(b) = op else {
        return Err(TchError::Shape("only a batch norm folds".to_string()));
    };
    let weight = layer.get("weight")?;
    let kind = weight.kind();
    let double = |t: &Tensor| t.f_detach()?.f_to_kind(Kind::Double);
    let scale = double(norm.get("weight")?)?
        .f_div(&double(norm.get("running_var")?)?.f_add_scalar(b.eps)?.f_sqrt()?)?;
    let mean = double(norm.get("running_mean")?)?;
    let mut per_row = vec![-1i64];
    per_row.resize(weight.dim(), 1);
    let new_weight = double(weight)?.f_mul(&scale.f_reshape(per_row.as_slice())?)?.f_to_kind(kind)?;
    let bias = match layer.optional("bias") {
        Some(b) => double(b)?,
        None => mean.f_zeros_like()?,
    };
    let new_bias = bias.f_sub(&mean)?.f_mul(&scale)?.f_add(&double(norm.get("bias")?)?)?.f_to_kind(kind)?;
    Ok((new_weight, new_bias))
}

/// The same values, NHWC in memory (PyTorch's `torch.channels_last`), for a tensor of rank 4.
pub fn channels_last(t: &Tensor) -> Result<Tensor, TchError> {
    t.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])
}

/// The usual layout, copying only where the tensor is in another.
fn contiguous(t: &Tensor) -> Result<Tensor, TchError> {
    match t.is_contiguous() {
        true => Ok(t.shallow_clone()),
        false => t.f_contiguous(),
    }
}

fn plan_error(layer: &str, op: &Op, e: &TchError) -> RuntimeError {
    let help = "the plan's tensors are too large for the memory; run without the inference plan";
    RuntimeError::Layer(Box::new(LayerError::new(layer, op, "compiling for inference".to_string(), e, help)))
}
