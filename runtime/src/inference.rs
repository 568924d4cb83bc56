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
//! - **Prepacked convolution weights** (on the CPU): each 2-D convolution's weight is
//!   reordered into the layout oneDNN's kernel reads (`mkldnn_reorder_conv2d_weight`), once for
//!   each size of input the plan meets (the kernel depends on it), and
//!   the convolution runs on the plan's dense activations through the kernel `torch.compile`
//!   uses for frozen graphs ([`crate::shim`]), instead of reordering the weight at every call
//!   as libtorch's usual convolution does (ResNet-18 at 96×96, batch 1: about 1.9× the plan
//!   without it). The activations stay in libtorch's dense tensors, so every other op runs as
//!   in the interpreter; the kernel gives them channels-last, whatever its input's layout. In a
//!   bf16 plan the packed weights and biases are bf16 and the convolution casts its input to
//!   bf16, as autocast does, on CPUs where oneDNN has bf16 kernels.
//! - **Some convolutions contiguous**, where the caller measured that faster at its batch
//!   ([`Inference::measure_conv_layouts`]: `nnc run`, `eval` and `bench` do): oneDNN's
//!   channels-last kernel is slow on small maps of many channels (ResNet-18's 3×3 convolutions
//!   on 3×3 maps of 512 channels, batch 32, on an Intel Xeon with AMX: about 1.8× the time of
//!   the same convolution on contiguous activations), so such a convolution runs on contiguous
//!   activations through a context prepacked for contiguous inputs of that size
//!   ([`ConvContext`]), and gives a contiguous output (a sum fused into it is added to that
//!   output), which the layers after follow. Only fp32 plans of networks without free sizes
//!   are measured.
//! - **Residual sums fused** into the convolution before them (`fuse_sums`): a sum of an fp32
//!   prepacked convolution's value (through its folded batch norm) and a tensor of its shape
//!   that dies there is computed by the convolution, which writes over that tensor, oneDNN
//!   adding it as it writes the output (its "sum" post-op) instead of in a pass of its own
//!   (ResNet-18's eight sums; 0.03–0.8 ms each at batch 32). The sum is IEEE's, NaNs included;
//!   oneDNN's fused activations are not (its ReLU turns a NaN into 0), so the ReLU after stays
//!   an op of its own, computed in place.
//! - **In place**: an activation or a sum whose input nothing reads afterwards, through any
//!   name, overwrites it (`ops::apply_in_place`, the in-place twin of the op's forward)
//!   instead of allocating another tensor.
//!
//! - **bf16 weights made once**, for a model of [`Precision::Bf16`]: the weights and biases of
//!   the convolutions and linear layers, which libtorch's autocast would otherwise cast from
//!   fp32 at every forward, are cast once (after folding, in the plan's layout); autocast then
//!   finds them in bf16 and casts only the activations. Every other tensor stays as loaded.
//!
//! Every other node runs through [`ops::apply_outputs`], the one forward of each op (or its
//! in-place twin beside it), so the plan computes what the interpreter computes, to rounding (a test holds every model of
//! `models/` within 1e-5 relative of it). The plan holds derived tensors: a model whose
//! weights change afterwards (training) needs a new plan.

use std::sync::{Arc, Mutex};

use nnc_compiler::ir::{ArithOp, Graph, NodeId, Op};
use tch::{Device, Kind, TchError, Tensor};

use crate::conv_layout;
use crate::error::LayerError;
use crate::model::{first_device, node_inputs};
use crate::ops::{self, Params};
use crate::precision::Precision;
use crate::shim::{Conv2dGeometry, ConvContext};
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
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Contiguous => "contiguous layout",
            Layout::ChannelsLast => "channels-last layout",
        }
    }

    /// The layout for the graph, in training and in the inference plan, by a rule drawn from
    /// measurements (not measured per network): channels-last where 2-D convolutions of at least 16 input
    /// channels do most of the multiply-adds (ResNet-18 and MobileNetV2 at 96×96: 1.3–1.9× at
    /// batch 1, up to 1.9× at batch 32, on 1 and 2 threads of an AMD EPYC), contiguous
    /// otherwise (LeNet, whose convolutions take 1 and 6 channels: a few per cent slower in
    /// channels-last).
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
    /// A node an earlier node's step computes: a batch norm folded into the layer before it, or
    /// a sum fused into the convolution before it ([`PackedConv::add`]); that node's value.
    Folded(NodeId),
    /// The node's op, with the plan's tensors where they differ from the model's.
    Run(Option<Params>),
    /// A 2-D convolution through oneDNN, its weight prepacked.
    PackedConv(PackedConv),
}

/// A 2-D convolution of a plan on the CPU: oneDNN's kernel with the weight in the layout it
/// reads (`mkldnn_reorder_conv2d_weight`), reordered once for each size of input the plan
/// meets, and the (folded) bias, both of the plan's kind (fp32, or bf16 under
/// [`Precision::Bf16`]).
#[derive(Debug)]
struct PackedConv {
    kind: Kind,
    /// Run on contiguous activations, giving a contiguous output, where that was measured
    /// faster ([`Inference::measure_conv_layouts`]); else channels-last.
    contiguous: bool,
    /// The sum after the convolution that the plan fused into it (`fuse_sums`): the output is
    /// written over the sum's other operand, which dies there, and oneDNN adds that operand
    /// in the kernel on channels-last fp32 activations instead of in a pass of its own (a
    /// convolution that runs contiguous adds it to its own output after).
    add: Option<FusedSum>,
    /// The convolution prepacked for contiguous inputs of each size met ([`ConvContext`]), the
    /// latest last, for a convolution that runs contiguous.
    contexts: Mutex<Vec<(Vec<i64>, Arc<ConvContext>)>>,
    /// The weight laid out for each channels-last input size met, the latest last; never empty
    /// (the first is laid out for the graph's sizes at batch 1, or, where a size is free, for a
    /// size libtorch guesses: `None`). oneDNN chooses its kernel, and the layout that kernel
    /// reads, by the input's sizes and layout; `mkldnn_reorder_conv2d_weight` lays a weight
    /// out for channels-last inputs of the sizes given (contiguous inputs get [`ConvContext`]s,
    /// made from the latest of these). A weight laid out for another kernel is reordered at
    /// every call, by a slow generic reorder where oneDNN has no fast one (MobileNetV2's last
    /// 1×1 convolution at batch 1, on an Intel Xeon with AMX: 8.8 ms of a 12 ms forward).
    packed: Mutex<Vec<(Option<Vec<i64>>, Tensor)>>,
    bias: Option<Tensor>,
    geometry: Conv2dGeometry,
}

/// A sum fused into the convolution before it: `other`, the operand it adds to the
/// convolution's value, and `sum`, the sum's node, which takes the convolution's value.
#[derive(Debug, Clone, Copy)]
struct FusedSum {
    other: NodeId,
    sum: NodeId,
}

/// `weight` (oneDNN's tensor, in any layout) laid out by `mkldnn_reorder_conv2d_weight` for the
/// kernel oneDNN chooses for channels-last inputs of sizes `input`, or for a guessed size.
fn reorder(weight: &Tensor, g: &Conv2dGeometry, input: Option<&[i64]>) -> Result<Tensor, TchError> {
    weight.f_mkldnn_reorder_conv2d_weight(g.padding, g.stride, g.dilation, g.groups, input)
}

/// The size of a 2-D convolution's output for an input of sizes `input` (N×C×H×W) and a
/// weight of sizes `weight` (O×I×kH×kW), as libtorch computes it; none for other ranks.
fn output_size(input: &[i64], weight: &[i64], g: &Conv2dGeometry) -> Option<Vec<i64>> {
    let (&[n, _, h, w], &[out_channels, _, kh, kw]) = (input, weight) else { return None };
    let side = |size: i64, k: i64, a: usize| {
        (size + 2 * g.padding[a] - g.dilation[a] * (k - 1) - 1) / g.stride[a] + 1
    };
    Some(vec![n, out_channels, side(h, kh, 0), side(w, kw, 1)])
}

/// How many input sizes and layouts a prepacked convolution keeps a weight for: `nnc eval`
/// meets two sizes (its batches and the last one).
const PACKED_SIZES: usize = 3;

impl PackedConv {
    /// `input`: the input's sizes, where known.
    fn new(op: &Op, params: &Params, kind: Kind, input: Option<Vec<i64>>) -> Result<PackedConv, TchError> {
        let Op::Conv2d(c) = op else {
            return Err(TchError::Shape("only a 2-D convolution is prepacked".to_string()));
        };
        let geometry = Conv2dGeometry {
            padding: c.padding.map(|p| p as i64),
            stride: c.stride.map(|s| s as i64),
            dilation: c.dilation.map(|d| d as i64),
            groups: c.groups as i64,
        };
        let weight = params.get("weight")?.f_detach()?.f_to_kind(kind)?.f_to_mkldnn(None)?;
        let weight = reorder(&weight, &geometry, input.as_deref())?;
        let bias = params.optional("bias").map(|b| b.f_detach()?.f_to_kind(kind)).transpose()?;
        let packed = Mutex::new(vec![(input, weight)]);
        let contexts = Mutex::new(Vec::new());
        Ok(PackedConv { kind, contiguous: false, add: None, contexts, packed, bias, geometry })
    }

    /// The weight laid out for a channels-last input of sizes `input`: kept, or laid out now
    /// (from the latest) and kept, instead of the oldest beyond [`PACKED_SIZES`].
    fn weight(&self, input: &[i64]) -> Result<Tensor, TchError> {
        // A panic elsewhere while the lock was held leaves the list whole: each change to it is
        // one push or one remove.
        let mut packed = self.packed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, weight)) = packed.iter().find(|(sizes, _)| sizes.as_deref() == Some(input)) {
            return Ok(weight.shallow_clone());
        }
        let latest = &packed.last().expect("a prepacked convolution keeps a weight").1;
        let weight = reorder(latest, &self.geometry, Some(input))?;
        if packed.len() == PACKED_SIZES {
            drop(packed.remove(0));
        }
        packed.push((Some(input.to_vec()), weight.shallow_clone()));
        Ok(weight)
    }

    /// The convolution prepacked for contiguous inputs of sizes `input`: kept, or made now
    /// (from the latest weight, laid out back to dense) and kept, instead of the oldest beyond
    /// [`PACKED_SIZES`].
    fn context(&self, input: &[i64]) -> Result<Arc<ConvContext>, TchError> {
        let mut contexts = self.contexts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, context)) = contexts.iter().find(|(sizes, _)| sizes.as_slice() == input) {
            return Ok(context.clone());
        }
        let &[n, c, h, w] = input else {
            return Err(TchError::Shape(format!("a 2-D convolution takes a batch of rank 4, not {input:?}")));
        };
        let latest = {
            let packed = self.packed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            packed.last().expect("a prepacked convolution keeps a weight").1.shallow_clone()
        };
        let weight = latest.f_to_dense(None, false)?;
        let context = Arc::new(ConvContext::new(&weight, self.bias.as_ref(), &self.geometry, [n, c, h, w])?);
        if contexts.len() == PACKED_SIZES {
            drop(contexts.remove(0));
        }
        contexts.push((input.to_vec(), context.clone()));
        Ok(context)
    }

    /// Drops what is laid out for the other layout than the one this convolution runs in: the
    /// contexts of a convolution that runs channels-last; the channels-last weights of one that
    /// runs contiguous, but the latest, which the next context is made from.
    fn keep_own_layout(&mut self) {
        let packed = self.packed.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.contiguous {
            let latest = packed.len() - 1;
            packed.drain(..latest);
            return;
        }
        self.contexts.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        if packed.iter().any(|(sizes, _)| sizes.is_some()) {
            packed.retain(|(sizes, _)| sizes.is_some());
        } else {
            let latest = packed.len() - 1;
            packed.drain(..latest);
        }
    }

    /// The convolution of `x` in the layout the plan chose for it; where the plan fused a sum
    /// into it, `add` is the sum's other operand ([`FusedSum`]): oneDNN's kernel adds it and
    /// writes the output over it, on channels-last fp32 tensors of the output's size, else
    /// libtorch's `add` adds it to the convolution's output after. The sum is IEEE's either
    /// way: `a + b` and `b + a` are the same number.
    fn run(&self, x: &Tensor, add: Option<&Tensor>) -> Result<Tensor, TchError> {
        let Some(other) = add else { return self.run_in(x, self.contiguous) };
        if !self.contiguous && self.kind == Kind::Float && other.kind() == Kind::Float {
            let size = x.size();
            let weight = self.weight(&size)?;
            // The graph's shapes are one probe's where sizes are free: the other operand may
            // broadcast at another size, which only libtorch's `add` does.
            if output_size(&size, &weight.size(), &self.geometry).as_deref() == Some(other.size().as_slice())
            {
                crate::shim::onednn_convolution_add_(other, x, &weight, self.bias.as_ref(), &self.geometry)?;
                return Ok(other.shallow_clone());
            }
        }
        // Into the fresh output, which keeps its layout (contiguous for a contiguous
        // convolution), not over `other`.
        let mut out = self.run_in(x, self.contiguous)?;
        match out.kind() == other.kind() && out.size() == other.size() {
            true => out.f_add_(other),
            false => out.f_add(other),
        }
    }

    /// The convolution of `x`, channels-last whatever its layout (the kernel's choice for a
    /// prepacked weight), or, with `contiguous`, contiguous, through a context prepacked for
    /// contiguous inputs of its size ([`ConvContext`]): oneDNN reorders the dense input into its
    /// own layout and the output back. A bf16 plan casts an fp32 input to bf16 first, as
    /// autocast does; any other input of another type than the weight's is refused by the
    /// kernel, as libtorch's convolution refuses it in the interpreter.
    fn run_in(&self, x: &Tensor, contiguous: bool) -> Result<Tensor, TchError> {
        let size = x.size();
        if contiguous {
            return self.context(&size)?.run(&x.f_contiguous()?);
        }
        let weight = self.weight(&size)?;
        let cast;
        let x = match (self.kind, x.kind()) {
            (Kind::BFloat16, Kind::Float) => {
                cast = x.f_to_kind(Kind::BFloat16)?;
                &cast
            }
            _ => x,
        };
        crate::shim::onednn_convolution(x, &weight, self.bias.as_ref(), &self.geometry)
    }
}

/// For each node, the last node that reads its value, and whether it is computed in place
/// ([`in_place_nodes`]). A folded batch norm's value, and a fused sum's, is its layer's: that
/// value lives until the last reader of any of them.
fn lifetimes(graph: &Graph, steps: &[Step]) -> (Vec<usize>, Vec<bool>) {
    let mut last_use = graph.last_uses();
    for (i, step) in steps.iter().enumerate() {
        if let Step::Folded(layer) = step {
            last_use[layer.0] = last_use[layer.0].max(last_use[i]);
        }
    }
    let in_place = in_place_nodes(graph, steps, &last_use);
    (last_use, in_place)
}

/// Which nodes the plan computes in place ([`ops::apply_in_place`]): an op libtorch has an
/// in-place function for, of the output's shape and layout, whose first input's storage the
/// plan allocated (never a graph input or a weight) and nothing reads after this node, through
/// any name: each node's value is traced to the storage it lives in (a view, a dropout in
/// evaluation mode, a folded batch norm or an in-place op gives its input's; an op that may
/// give its input or a view of it counts as one), and the storage must die here, read by no
/// other input of this node (checked against the interpreter, in each layout, by
/// `runtime/tests/inference.rs`, aliases included). For a convolution a sum is fused into,
/// whether it may write over the sum's other operand instead.
fn in_place_nodes(graph: &Graph, steps: &[Step], last_use: &[usize]) -> Vec<bool> {
    let n = graph.nodes.len();
    // For each node, the node whose allocation its value lives in; for each storage, whether
    // the plan made it and the last node that reads it through any of its names.
    let mut storage: Vec<usize> = (0..n).collect();
    let mut fresh = vec![false; n];
    let mut read_until = vec![0; n];
    let mut in_place = vec![false; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        let own = match &steps[i] {
            Step::Skip | Step::Input(_) | Step::Folded(_) => false,
            Step::PackedConv(_) => true,
            Step::Run(_) => allocates(&node.op),
        };
        if let Step::Folded(layer) = steps[i] {
            storage[i] = storage[layer.0];
        } else if let (Step::PackedConv(PackedConv { add: Some(sum), .. }), Some(&first)) =
            (&steps[i], node.inputs.first())
        {
            // A fused sum's convolution writes over the other operand's storage: the plan's,
            // not the convolution's input, and read by no node but the sum from here on (a node
            // between them that read it would see the output instead).
            let s = storage[sum.other.0];
            let between = &graph.nodes[i + 1..sum.sum.0];
            in_place[i] = fresh[s]
                && read_until[s] == sum.sum.0
                && storage[first.0] != s
                && between.iter().all(|n| n.inputs.iter().all(|id| id.0 > i || storage[id.0] != s));
            if in_place[i] {
                storage[i] = s;
            }
        } else if let Some(&first) = node.inputs.first() {
            let s = storage[first.0];
            in_place[i] = matches!(steps[i], Step::Run(_))
                && ops::has_in_place(&node.op)
                && fresh[s]
                && read_until[s] == i
                && !node.inputs[1..].iter().any(|id| storage[id.0] == s)
                && graph.node(first).shape == node.shape;
            if in_place[i] || !own {
                storage[i] = s;
            }
        }
        let s = storage[i];
        if s == i {
            fresh[i] = own;
        }
        read_until[s] = read_until[s].max(last_use[i]);
    }
    in_place
}

/// Whether an op's forward gives a new tensor, never its input, a view of it or a weight (an
/// in-place forward gives its input, itself such a tensor).
fn allocates(op: &Op) -> bool {
    ops::has_in_place(op)
        || ops::is_weighted_layer(op)
        || matches!(
            op,
            Op::MaxPool1d(_)
                | Op::MaxPool2d(_)
                | Op::MaxPool3d(_)
                | Op::AvgPool1d(_)
                | Op::AvgPool2d(_)
                | Op::AvgPool3d(_)
                | Op::AdaptiveAvgPool1d(_)
                | Op::AdaptiveAvgPool2d(_)
                | Op::AdaptiveAvgPool3d(_)
        )
}

/// The model a plan runs: the caller's, or its own (a `model!` type's plan, made over the
/// type's tensors).
#[derive(Debug)]
enum Held<'m> {
    Borrowed(&'m Model),
    Owned(Box<Model>),
}

impl std::ops::Deref for Held<'_> {
    type Target = Model;

    fn deref(&self) -> &Model {
        match self {
            Held::Borrowed(model) => model,
            Held::Owned(model) => model,
        }
    }
}

/// A model compiled for inference: see the module's documentation.
#[derive(Debug)]
pub struct Inference<'m> {
    model: Held<'m>,
    steps: Vec<Step>,
    /// For each node, the last node that reads its value (through a folded batch norm too).
    last_use: Vec<usize>,
    /// For each node, whether it is computed in place on its first input, which nothing reads
    /// after it: activations and arithmetic write over a tensor that would be freed anyway,
    /// instead of allocating another (ResNet-18's ReLUs); for a convolution a sum is fused
    /// into, whether it may write over the sum's other operand (every one the plan keeps
    /// fused).
    in_place: Vec<bool>,
    layout: Layout,
    folded: usize,
    /// How many sums the plan fused into the convolution before them.
    fused: usize,
}

impl<'m> Inference<'m> {
    /// The plan of `model` with its current tensors: call it after loading the weights.
    pub fn new(model: &'m Model, layout: Layout) -> Result<Inference<'m>, RuntimeError> {
        Inference::plan(Held::Borrowed(model), layout)
    }

    /// The plan `nnc run`, `eval` and `bench` run: in the layout [`Layout::for_graph`] chooses
    /// for the graph, each convolution in the layout measured faster at batch `batch`
    /// ([`Inference::measure_conv_layouts`]).
    pub fn measured(model: &'m Model, batch: i64) -> Result<Inference<'m>, RuntimeError> {
        let mut plan = Inference::new(model, Layout::for_graph(model.graph()))?;
        plan.measure_conv_layouts(batch)?;
        Ok(plan)
    }

    /// The plan of a model it keeps: a `model!` type's `for_inference`, over that type's
    /// tensors ([`Model::from_params`]).
    pub fn owning(model: Model, layout: Layout) -> Result<Inference<'static>, RuntimeError> {
        Inference::plan(Held::Owned(Box::new(model)), layout)
    }

    fn plan(model: Held<'m>, layout: Layout) -> Result<Inference<'m>, RuntimeError> {
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
        let packs = packs(&model);
        if let Some(kind) = packs {
            derive_steps(graph, params, &mut steps, &|i, _| packable(graph, i), &|i, op, own| {
                PackedConv::new(op, own, kind, conv_layout::input_sizes(graph, i, 1)).map(Step::PackedConv)
            })?;
        }
        let fused = match packs {
            Some(Kind::Float) => fuse_sums(graph, &readers, computed, &mut steps),
            _ => 0,
        };
        // The weights left to libtorch's convolution (all of them, where nothing is packed).
        if layout == Layout::ChannelsLast {
            derive_steps(graph, params, &mut steps, &|_, op| matches!(op, Op::Conv2d(_)), &|_, _, own| {
                let weight = own.get("weight").and_then(channels_last)?;
                Ok(Step::Run(Some(own.with("weight", weight))))
            })?;
        }
        if model.precision() == Precision::Bf16 {
            derive_steps(graph, params, &mut steps, &|_, op| lower_precision(op), &|_, _, own| {
                Ok(Step::Run(Some(own.to_kind(Kind::BFloat16)?)))
            })?;
        }
        let (mut last_use, mut in_place) = lifetimes(graph, &steps);
        // A sum whose other operand cannot be written over is computed on its own again.
        let mut unfused = 0;
        for i in 0..steps.len() {
            let Step::PackedConv(conv) = &mut steps[i] else { continue };
            if let (Some(sum), false) = (conv.add, in_place[i]) {
                conv.add = None;
                steps[sum.sum.0] = Step::Run(None);
                unfused += 1;
            }
        }
        if unfused > 0 {
            (last_use, in_place) = lifetimes(graph, &steps);
        }
        // Un-fusing a sum only frees storage: no fusion kept loses its licence.
        debug_assert!(steps
            .iter()
            .enumerate()
            .all(|(i, s)| !matches!(s, Step::PackedConv(PackedConv { add: Some(_), .. })) || in_place[i]));
        let fused = fused - unfused;
        Ok(Inference { model, steps, last_use, in_place, layout, folded, fused })
    }

    /// Times each prepacked fp32 convolution of [`conv_layout::measurable`] at batch `batch`
    /// on channels-last and on contiguous activations, and runs those measured faster
    /// contiguous (by [`conv_layout::MARGIN`]) so; their names, in graph order. ResNet-18's 3×3
    /// convolutions on maps of 6×6 and smaller, at batch 32, are 1.1–1.8× faster contiguous on
    /// an Intel Xeon with AMX, where oneDNN's channels-last kernel is slow on small maps.
    pub fn measure_conv_layouts(&mut self, batch: i64) -> Result<Vec<String>, RuntimeError> {
        let graph = self.model.graph();
        let contiguous = conv_layout::choose(graph, batch, |id, size| {
            let node = graph.node(id);
            let Step::PackedConv(conv) = &self.steps[id.0] else { return Ok(false) };
            if conv.kind != Kind::Float {
                return Ok(false);
            }
            let fail = |e: TchError| plan_error(&node.name, &node.op, &e);
            // Ones: libtorch's generator is left as the caller seeded it.
            let x = Tensor::f_ones(size, (Kind::Float, Device::Cpu)).map_err(fail)?;
            let arranged = channels_last(&x).map_err(fail)?;
            conv_layout::faster_first(
                Device::Cpu,
                || Ok(tch::no_grad(|| conv.run_in(&x, true).map(drop))?),
                || Ok(tch::no_grad(|| conv.run_in(&arranged, false).map(drop))?),
            )
        })?;
        self.run_contiguous(&contiguous);
        Ok(contiguous)
    }

    /// Runs the prepacked fp32 convolutions named in `names` on contiguous activations, the
    /// others channels-last; how many run contiguous.
    pub fn run_contiguous(&mut self, names: &[String]) -> usize {
        let graph = self.model.graph();
        for (node, step) in graph.nodes.iter().zip(&mut self.steps) {
            if let Step::PackedConv(conv) = step {
                conv.contiguous = conv.kind == Kind::Float && names.contains(&node.name);
                conv.keep_own_layout();
            }
        }
        self.contiguous()
    }

    /// How many prepacked convolutions run on contiguous activations.
    pub fn contiguous(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::PackedConv(c) if c.contiguous)).count()
    }

    /// How many batch norms the plan folded into the layer before them.
    pub fn folded(&self) -> usize {
        self.folded
    }

    /// How many sums the plan fused into the convolution before them.
    pub fn fused(&self) -> usize {
        self.fused
    }

    /// What the plan does, for messages: "17 batch norms folded into the layer before them, 20
    /// convolution weights prepacked, 8 sums fused into the convolution before them, 17 layers
    /// computed in place, channels-last layout".
    pub fn describe(&self) -> String {
        let contiguous = match self.contiguous() {
            0 => String::new(),
            1 => ", 1 convolution on contiguous activations (measured faster)".to_string(),
            n => format!(", {n} convolutions on contiguous activations (measured faster)"),
        };
        let fused = match self.fused {
            0 => String::new(),
            1 => "1 sum fused into the convolution before it, ".to_string(),
            n => format!("{n} sums fused into the convolution before them, "),
        };
        format!(
            "{} batch norms folded into the layer before them, {} convolution weights prepacked, \
             {fused}{} layers computed in place, {}{contiguous}",
            self.folded,
            self.packed(),
            self.in_place(),
            self.layout.describe()
        )
    }

    /// How many convolutions run through oneDNN with their weights prepacked.
    pub fn packed(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::PackedConv(_))).count()
    }

    /// How many nodes the plan computes in place on their first input (activations and sums;
    /// the convolutions that write over a fused sum's operand are counted by [`Self::fused`]).
    pub fn in_place(&self) -> usize {
        self.in_place.iter().zip(&self.steps).filter(|&(&b, step)| b && matches!(step, Step::Run(_))).count()
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn model(&self) -> &Model {
        &self.model
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
                    match self.in_place[i] && ops::fits_in_place(&inputs) {
                        true => Some(vec![ops::apply_in_place(&node.name, &node.op, &inputs)?]),
                        false => Some(ops::apply_outputs(&node.name, &node.op, own, &inputs, false)?),
                    }
                }
                Step::PackedConv(conv) => {
                    let inputs = node_inputs(node, &values);
                    let add = conv.add.map(|sum| {
                        &values[sum.other.0]
                            .as_ref()
                            .expect("a fused sum's other operand lives until the sum")[0]
                    });
                    let out = conv
                        .run(inputs[0], add)
                        .map_err(|e| ops::layer_error(&node.name, &node.op, &inputs, &e))?;
                    Some(vec![out])
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
                dense(&value[0])
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

/// One pass of the plan: the step of each computed node for which `applies` holds becomes
/// what `derive` makes of the node's op and its current tensors (the model's, or those an
/// earlier pass derived: a folded batch norm's, channels-last weights). A prepacked
/// convolution is final: it holds its tensors in the form its kernel reads.
fn derive_steps(
    graph: &Graph,
    params: &[Params],
    steps: &mut [Step],
    applies: &dyn Fn(usize, &Op) -> bool,
    derive: &dyn Fn(usize, &Op, &Params) -> Result<Step, TchError>,
) -> Result<(), RuntimeError> {
    for (i, node) in graph.nodes.iter().enumerate() {
        if !applies(i, &node.op) || matches!(steps[i], Step::Skip | Step::PackedConv(_)) {
            continue;
        }
        let own = match &steps[i] {
            Step::Run(Some(p)) => p,
            _ => &params[i],
        };
        steps[i] = derive(i, &node.op, own).map_err(|e| plan_error(&node.name, &node.op, &e))?;
    }
    Ok(())
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

/// Fuses each sum of two tensors of one shape, one of them the value of an fp32 prepacked
/// convolution (through its folded batch norm) that nothing else reads and that is no output,
/// into that convolution ([`PackedConv::add`]), where the other operand is computed before the
/// convolution runs: ResNet's residual sums, into the block's last convolution or into its
/// projecting shortcut. The sum's node then takes the convolution's value. How many it fused.
fn fuse_sums(graph: &Graph, readers: &[usize], computed: &[bool], steps: &mut [Step]) -> usize {
    let mut fused = 0;
    for (i, node) in graph.nodes.iter().enumerate() {
        let (Op::Arith(a), &[x, y]) = (&node.op, node.inputs.as_slice()) else { continue };
        let same_shape = graph.node(x).shape == node.shape && graph.node(y).shape == node.shape;
        if a.op != ArithOp::Add
            || !computed[i]
            || x == y
            || !same_shape
            || !matches!(steps[i], Step::Run(None))
        {
            continue;
        }
        let conv_of = |v: NodeId| {
            let layer = match steps[v.0] {
                Step::Folded(layer) => layer,
                _ => v,
            };
            let is_output = graph.outputs.iter().any(|o| o.node == v || o.node == layer);
            let only_reader = readers[v.0] == 1 && !is_output;
            matches!(&steps[layer.0], Step::PackedConv(c) if c.add.is_none() && only_reader).then_some(layer)
        };
        let Some((layer, other)) = [(x, y), (y, x)]
            .into_iter()
            .find_map(|(v, other)| conv_of(v).filter(|layer| other.0 < layer.0).map(|layer| (layer, other)))
        else {
            continue;
        };
        if let Step::PackedConv(conv) = &mut steps[layer.0] {
            conv.add = Some(FusedSum { other, sum: NodeId(i) });
            steps[i] = Step::Folded(layer);
            fused += 1;
        }
    }
    fused
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

/// The same values, NHWC in memory (PyTorch's `torch.channels_last`), for a tensor of rank 4: a
/// copy into the strides `.to(memory_format=torch.channels_last)` gives, the channels' stride 1
/// even where there is one channel. (A permuted `contiguous` copy leaves a tensor of one
/// channel, which is at once contiguous and channels-last, with its NCHW strides; libtorch then
/// runs a convolution that reads it, ResNet's stem, in NCHW and reorders its whole output to
/// channels-last, and back in the backward pass.)
pub fn channels_last(t: &Tensor) -> Result<Tensor, TchError> {
    let size = t.size();
    let &[_, c, h, w] = size.as_slice() else {
        return Err(TchError::Shape(format!("channels-last needs a tensor of rank 4, not {size:?}")));
    };
    let mut arranged =
        Tensor::f_empty_strided(&size, channels_last_strides(c, h, w), (t.kind(), t.device()))?;
    arranged.f_copy_(t)?;
    Ok(arranged)
}

/// The layout a tensor of rank 4 is dense in, where it is dense in exactly one: sizes that make
/// the two the same memory (one channel, or 1×1 maps) give none, as do other strides.
pub(crate) fn layout_of(t: &Tensor) -> Option<Layout> {
    let (size, stride) = (t.size(), t.stride());
    let &[_, c, h, w] = size.as_slice() else { return None };
    // A stride of a size-1 axis is never used to address memory, so it does not count.
    let dense =
        |expected: [i64; 4]| size.iter().zip(&stride).zip(expected).all(|((&n, &s), e)| n == 1 || s == e);
    match (dense([c * h * w, h * w, w, 1]), dense(channels_last_strides(c, h, w))) {
        (true, false) => Some(Layout::Contiguous),
        (false, true) => Some(Layout::ChannelsLast),
        _ => None,
    }
}

/// The strides [`channels_last`] gives an N×`c`×`h`×`w` tensor.
pub(crate) fn channels_last_strides(c: i64, h: i64, w: i64) -> [i64; 4] {
    [c * h * w, 1, w * c, c]
}

/// The usual layout, copying only where the tensor is in another (channels-last).
fn dense(t: &Tensor) -> Result<Tensor, TchError> {
    match t.is_contiguous() {
        true => Ok(t.shallow_clone()),
        false => t.f_contiguous(),
    }
}

/// The kind in which the plan prepacks the model's convolution weights ([`PackedConv`]), if it
/// does: fp32 weights on the CPU, in a libtorch built with oneDNN; fp32, or bf16 for a model
/// of [`Precision::Bf16`] where oneDNN has bf16 kernels for this CPU (autocast's otherwise).
fn packs(model: &Model) -> Option<Kind> {
    let fp32_on_cpu = model.graph().nodes.iter().zip(model.node_params()).all(|(node, p)| {
        let float = |t: &Tensor| t.device() == tch::Device::Cpu && t.kind() == Kind::Float;
        !matches!(node.op, Op::Conv2d(_))
            || (p.get("weight").is_ok_and(float) && p.optional("bias").is_none_or(float))
    });
    let kind = match model.precision() {
        Precision::Fp32 => Kind::Float,
        Precision::Bf16 if crate::shim::onednn_bf16_supported() => Kind::BFloat16,
        Precision::Bf16 => return None,
    };
    (fp32_on_cpu && tch::utils::has_mkldnn()).then_some(kind)
}

/// Whether the node is a convolution that runs prepacked: a 2-D one of a batch (rank 4) whose
/// padding is symmetric, as oneDNN's kernel takes it (every one but a `same` convolution of an
/// even window, which libtorch pads unevenly itself).
fn packable(graph: &Graph, i: usize) -> bool {
    let node = &graph.nodes[i];
    match &node.op {
        Op::Conv2d(c) => {
            let symmetric = !c.same || (0..2).all(|a| c.dilation[a] * (c.kernel[a] - 1) % 2 == 0);
            symmetric && node.inputs.iter().all(|id| graph.node(*id).shape.rank() == 4)
        }
        _ => false,
    }
}

fn plan_error(layer: &str, op: &Op, e: &TchError) -> RuntimeError {
    let help = "the plan's tensors are too large for the memory; run without the inference plan";
    RuntimeError::Layer(Box::new(LayerError::new(layer, op, "compiling for inference".to_string(), e, help)))
}
