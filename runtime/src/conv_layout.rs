//! Which 2-D convolutions of a channels-last model run contiguous instead: the choice training
//! measures, and the timing of two layouts in turns that the inference plan's choice
//! ([`crate::Inference::measure_conv_layouts`]) shares.
//!
//! oneDNN's convolutions are not faster channels-last everywhere. For ResNet-18 at 96×96, batch
//! 32, on 2 threads of an Intel Xeon with AMX, the forward and backward of a 3×3 convolution
//! took (in ms, contiguous against channels-last): 27.7 against 22.3 on 24×24 maps of 64
//! channels, but 17.8 against 20.8 on 6×6 maps of 256 and 19.7 against 32.3 on 3×3 maps of
//! 512. One layout for the whole network leaves that difference on the table: PyTorch's
//! channels-last route runs every layer channels-last, as `--channels-last` makes nnc do.
//!
//! So, once per run, before the first step, each 2-D convolution's forward and backward is
//! timed at the run's batch in both layouts, on the machine and device that train, and those
//! measured clearly faster contiguous (by [`MARGIN`]) keep contiguous weights; everything else
//! stays channels-last. [`crate::ops`] runs a convolution in its weight's layout, so the
//! activation entering such a convolution is made contiguous, and the layers after it follow
//! their input, as libtorch's do. The values are the same, to rounding.
//!
//! A convolution whose weight is laid out the same either way (a 1×1 kernel, or one input
//! channel per group, as a depthwise convolution or a stem on grey images) is not measured:
//! its weight has channels-last strides in a channels-last model, and libtorch runs it
//! channels-last whatever its input. Neither is a network with free sizes, whose shapes
//! differ per batch. Each convolution is timed alone: the copies where two layouts meet (an
//! activation made contiguous, a sum of one of each) are not in its time, which the margin
//! only partly covers; the training step as a whole is what `bench/compare.py` measures.

use std::collections::BTreeMap;
use std::time::Instant;

use nnc_compiler::ir::{Conv, Graph, NodeId, Op};
use tch::{Device, Kind, TchError, Tensor};

use crate::inference::{channels_last, layout_of, Layout};
use crate::ops::{self, Params};
use crate::{Model, RuntimeError};

/// How much faster contiguous must be measured, as a fraction of the channels-last time, for a
/// convolution to leave channels-last: timings of the same call vary by a few per cent.
pub const MARGIN: f64 = 0.05;

/// Timed calls per layout, after one untimed; the fastest counts.
const RUNS: usize = 5;

/// The 2-D convolutions whose weight has a layout of its own, which are measured: not those
/// of a 1×1 kernel or of one input channel per group, and none of a network with free sizes.
pub fn measurable(graph: &Graph) -> Vec<NodeId> {
    if graph.free.is_some() {
        return Vec::new();
    }
    let own_layout = |c: &Conv<2>| c.kernel != [1, 1] && c.in_channels / c.groups.max(1) > 1;
    (0..graph.nodes.len())
        .map(NodeId)
        .filter(|&id| matches!(&graph.node(id).op, Op::Conv2d(c) if own_layout(c)))
        .collect()
}

/// The names of the [`measurable`] convolutions of `model` measured faster contiguous than
/// channels-last at batch `batch` on `device`, in the model's precision, in graph order.
pub fn measure(model: &Model, batch: i64, device: Device) -> Result<Vec<String>, RuntimeError> {
    choose(model.graph(), batch, |id, size| faster_contiguous(model, id, size, device))
}

/// The names of the [`measurable`] convolutions of `graph` for which `faster` (given the node
/// and its input's sizes at batch `batch`) says contiguous is faster, in graph order: the one
/// choice of training ([`measure`]) and of the inference plan
/// ([`crate::Inference::measure_conv_layouts`]). Convolutions of the same settings on the same
/// input (ResNet's repeats) are asked once.
pub(crate) fn choose(
    graph: &Graph,
    batch: i64,
    mut faster: impl FnMut(NodeId, &[i64]) -> Result<bool, RuntimeError>,
) -> Result<Vec<String>, RuntimeError> {
    let mut asked: BTreeMap<String, bool> = BTreeMap::new();
    let mut contiguous = Vec::new();
    for id in measurable(graph) {
        let (node, Some(size)) = (graph.node(id), input_sizes(graph, id.0, batch)) else { continue };
        // A convolution of a graph's input computes no input gradient: another measurement.
        let of_input = matches!(graph.node(node.inputs[0]).op, Op::Input(_));
        let key = format!("{:?} {size:?} {of_input}", node.op);
        let is_faster = match asked.get(&key) {
            Some(&is_faster) => is_faster,
            None => {
                let is_faster = faster(id, &size)?;
                asked.insert(key, is_faster);
                is_faster
            }
        };
        // A shared layer applied again has its first application's name and weight: it runs
        // contiguous if any application measured faster so.
        if is_faster && !contiguous.contains(&node.name) {
            contiguous.push(node.name.clone());
        }
    }
    Ok(contiguous)
}

/// The sizes of node `i`'s input at batch `batch`, where the graph knows them (not where a size
/// is free).
pub(crate) fn input_sizes(graph: &Graph, i: usize, batch: i64) -> Option<Vec<i64>> {
    let input = graph.node(*graph.nodes[i].inputs.first()?);
    let known = graph.free.is_none();
    known.then(|| std::iter::once(batch).chain(input.shape.dims.iter().map(|&d| d as i64)).collect())
}

/// Whether node `id`'s forward and backward on an input of `size` is faster by [`MARGIN`]
/// contiguous than channels-last.
fn faster_contiguous(model: &Model, id: NodeId, size: &[i64], device: Device) -> Result<bool, RuntimeError> {
    let node = model.graph().node(id);
    // A graph's input needs no gradient, so its convolution's backward computes none.
    let needs_grad = !matches!(model.graph().node(node.inputs[0]).op, Op::Input(_));
    let params = &model.node_params()[id.0];
    let arranged = |layout: Layout| -> Result<(Tensor, Params), RuntimeError> {
        let arrange = |t: &Tensor| -> Result<Tensor, TchError> {
            match layout {
                Layout::Contiguous => t.f_contiguous(),
                Layout::ChannelsLast => channels_last(t),
            }
        };
        // Ones, not random values: the speed is the same, and libtorch's generator is left as
        // the run seeded it.
        let x = arrange(&Tensor::f_ones(size, (Kind::Float, device))?)?.f_requires_grad_(needs_grad)?;
        let mut tensors =
            vec![("weight", arrange(&params.get("weight")?.f_detach()?)?.f_requires_grad_(true)?)];
        if let Some(bias) = params.optional("bias") {
            tensors.push(("bias", bias.f_detach()?.f_requires_grad_(true)?));
        }
        Ok((x, Params::new(tensors)))
    };
    let step = |(x, params): &(Tensor, Params)| -> Result<(), RuntimeError> {
        let _autocast = model.precision().enter(device)?;
        let y = ops::apply_outputs(&node.name, &node.op, params, &[x], true)?;
        Ok(y[0].f_sum(Kind::Float)?.f_backward()?)
    };
    let (contiguous, channels_last) = (arranged(Layout::Contiguous)?, arranged(Layout::ChannelsLast)?);
    faster_first(device, || step(&contiguous), || step(&channels_last))
}

/// Whether `contiguous` is faster than `channels_last` by [`MARGIN`]: each called once untimed,
/// then [`RUNS`] times each, in turns, so that a busy spell of the machine slows both alike; the
/// fastest call of each counts. A CUDA device is synchronised after each call.
pub(crate) fn faster_first(
    device: Device,
    mut contiguous: impl FnMut() -> Result<(), RuntimeError>,
    mut channels_last: impl FnMut() -> Result<(), RuntimeError>,
) -> Result<bool, RuntimeError> {
    let mut best = [f64::INFINITY; 2];
    for run in 0..=RUNS {
        for (k, call) in
            [&mut contiguous as &mut dyn FnMut() -> _, &mut channels_last].into_iter().enumerate()
        {
            let start = Instant::now();
            call()?;
            if let Device::Cuda(n) = device {
                tch::Cuda::synchronize(n as i64);
            }
            if run > 0 {
                best[k] = best[k].min(start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(best[0] < (1.0 - MARGIN) * best[1])
}

/// Lays out each 2-D convolution's weight channels-last, but those named in `contiguous`
/// contiguous, in place: the model, the optimiser and the variable store share the tensors.
pub fn arrange(model: &Model, contiguous: &[String]) -> Result<(), RuntimeError> {
    for (node, params) in model.graph().nodes.iter().zip(model.node_params()) {
        if !matches!(node.op, Op::Conv2d(_)) {
            continue;
        }
        let mut weight = params.get("weight")?.shallow_clone();
        let wanted = match contiguous.contains(&node.name) {
            true => Layout::Contiguous,
            false => Layout::ChannelsLast,
        };
        if weight.dim() == 4 && layout_of(&weight) != Some(wanted) {
            let arranged = match wanted {
                Layout::Contiguous => weight.f_contiguous()?,
                Layout::ChannelsLast => channels_last(&weight)?,
            };
            tch::no_grad(|| weight.f_set_data(&arranged))?;
        }
    }
    Ok(())
}
