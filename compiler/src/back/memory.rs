//! The memory a network needs at a batch size, estimated from the IR before any of it is
//! allocated: the one home of the estimate that `nnc check --batch` prints and that the
//! runtime checks against the memory available before `run`, `bench` and `train`.
//!
//! The estimate counts what must exist at once: the parameters (with their gradients and the
//! optimiser's state when training) and the layers' outputs alive at the same time at the
//! batch size (when training, with the inputs autograd keeps for the backward pass), in 32-bit
//! floats. libtorch's working space inside a layer (a convolution's unfolded input, say) comes
//! on top and cannot be predicted from the IR, so the estimate is meant as a floor: a command
//! it refuses cannot fit, and one it lets through may still fail in a layer. (A view, such as
//! `flatten`'s output, is counted as a copy; it is small beside the convolutions' outputs.)
//!
//! [`for_batch`] also gives torchinfo's own figures ("Input size", "Forward/backward pass
//! size", "Params size", "Estimated Total Size"), computed by its rules, so that a reader can
//! compare nnc's report with the `torchinfo.summary` of the emitted PyTorch module.

use serde::Serialize;

use crate::ir::Graph;
use crate::shape::Batch;

/// How a command runs the model, which decides what is alive at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One forward pass keeping every layer's output (`nnc run`, which shows them all).
    KeepAll,
    /// Forward passes without gradients, each intermediate freed after its last use
    /// (evaluation, prediction).
    Inference,
    /// Training steps: autograd keeps the inputs of the layers with trained tensors for the
    /// backward pass; each trained parameter has a gradient from the backward pass to the
    /// optimiser's step (set to none before the next, as PyTorch's `zero_grad` does), and
    /// `optimizer_states` tensors of its size (1 for momentum SGD, 2 for Adam).
    Training { optimizer_states: u32 },
}

/// The memory a workload needs at one batch size, in bytes. Sums saturate: a count too large
/// for a `u128` does not fit any machine either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// The parameters and buffers, with gradients and optimiser state when training.
    pub parameters: u128,
    /// The layers' outputs alive at once (when training, with the inputs kept for the backward pass).
    pub activations: u128,
}

impl Estimate {
    pub fn total(&self) -> u128 {
        self.parameters.saturating_add(self.activations)
    }
}

/// The bytes of one node's output at batch `batch` (a fixed batch in the IR stays fixed). A
/// declared `param`, which has no batch, is its own output: counted with the parameters.
fn output_bytes(graph: &Graph, node: usize, batch: u64) -> u128 {
    let shape = &graph.nodes[node].shape;
    let examples = match shape.batch {
        Batch::Symbolic(_) => batch,
        Batch::Fixed(n) => n,
        Batch::None => return 0,
    };
    let element = u128::from(shape.dtype.bytes());
    match shape.elements_per_example() {
        Some(elements) => u128::from(elements).saturating_mul(u128::from(examples)).saturating_mul(element),
        None => u128::MAX,
    }
}

/// The bytes of the trained tensors and of the buffers.
fn tensor_bytes(graph: &Graph) -> (u128, u128) {
    let (mut trained, mut buffers) = (0u128, 0u128);
    for spec in graph.nodes.iter().flat_map(|n| n.own_tensors()) {
        // Parameters and buffers are f32 (a batch norm's int64 counter, one element, aside).
        let bytes = spec.elements().map_or(u128::MAX, |e| u128::from(e).saturating_mul(4));
        let sum = if spec.trained { &mut trained } else { &mut buffers };
        *sum = sum.saturating_add(bytes);
    }
    (trained, buffers)
}

/// Estimates the memory `graph` needs for `workload` at batch `batch`.
pub fn estimate(graph: &Graph, workload: Workload, batch: u64) -> Estimate {
    let (trained, buffers) = tensor_bytes(graph);
    // A trained tensor gets a gradient, and the optimiser's state, when training.
    let copies = match workload {
        Workload::Training { optimizer_states } => 2 + u128::from(optimizer_states),
        _ => 1,
    };
    let parameters = trained.saturating_mul(copies).saturating_add(buffers);
    let outputs: Vec<u128> = (0..graph.nodes.len()).map(|i| output_bytes(graph, i, batch)).collect();
    let activations = match workload {
        Workload::KeepAll => outputs.iter().fold(0u128, |a, &b| a.saturating_add(b)),
        Workload::Inference => peak(graph, &outputs, false),
        Workload::Training { .. } => peak(graph, &outputs, true),
    };
    Estimate { parameters, activations }
}

/// The most bytes of outputs alive at once in a forward pass that frees each output after its
/// last reader, as the interpreter and generated code do. A node's output is allocated while
/// its inputs are alive; the inputs are never freed, as the caller holds them. With `training`,
/// autograd also keeps the input of every layer with trained tensors until the backward
/// pass, which needs it for their gradients (a convolution's, a linear layer's, a norm's).
/// What other layers keep (an activation's output, a pooling's indices) is not counted, so
/// that the figure stays a floor without knowing each op.
fn peak(graph: &Graph, outputs: &[u128], training: bool) -> u128 {
    let last_use = graph.last_uses();
    let mut kept = vec![false; graph.nodes.len()];
    let (mut alive, mut peak) = (0u128, 0u128);
    for (i, node) in graph.nodes.iter().enumerate() {
        alive = alive.saturating_add(outputs[i]);
        peak = peak.max(alive);
        let trained = training && node.op.layer().tensors().iter().any(|t| t.trained);
        let mut inputs: Vec<usize> = node.inputs.iter().map(|id| id.0).collect();
        inputs.sort_unstable();
        inputs.dedup();
        for id in inputs {
            kept[id] |= trained;
            if last_use[id] == i && !kept[id] && !graph.is_input(id) {
                alive = alive.saturating_sub(outputs[id]);
            }
        }
    }
    peak
}

/// The memory of training one batch, as `nnc check --batch` reports it, in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchMemory {
    pub batch: u64,
    /// torchinfo's figures, by its rules: the inputs; twice the output of every layer with
    /// parameters ("x2 for gradients"); the parameters; and their sum. Buffers, optimiser
    /// state and the outputs of layers without parameters are not in them.
    pub torchinfo: TorchinfoMemory,
    /// nnc's own estimate of a training step, the one the runtime checks before `train`.
    pub training: TrainingMemory,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TorchinfoMemory {
    #[serde(serialize_with = "bytes_json")]
    pub input_bytes: u128,
    #[serde(serialize_with = "bytes_json")]
    pub forward_backward_bytes: u128,
    #[serde(serialize_with = "bytes_json")]
    pub params_bytes: u128,
    #[serde(serialize_with = "bytes_json")]
    pub total_bytes: u128,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrainingMemory {
    /// The optimiser assumed, in words (`Adam: 2 copies of the parameters`).
    pub optimizer: String,
    #[serde(serialize_with = "bytes_json")]
    pub params_bytes: u128,
    #[serde(serialize_with = "bytes_json")]
    pub gradient_bytes: u128,
    #[serde(serialize_with = "bytes_json")]
    pub optimizer_bytes: u128,
    /// Running statistics and batch counters.
    #[serde(serialize_with = "bytes_json")]
    pub buffer_bytes: u128,
    /// The most layer outputs alive at once, the input and those kept for the backward pass
    /// included.
    #[serde(serialize_with = "bytes_json")]
    pub activation_bytes: u128,
    #[serde(serialize_with = "bytes_json")]
    pub total_bytes: u128,
}

/// The optimisers whose state the training estimate can assume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Plain SGD (nnc train's default): a gradient, no state.
    Sgd,
    /// SGD with momentum: one buffer per parameter.
    Momentum,
    /// Adam: the first and second moments, two per parameter.
    Adam,
}

impl Optimizer {
    pub fn states(self) -> u32 {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum => 1,
            Optimizer::Adam => 2,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Optimizer::Sgd => "SGD without momentum: no state",
            Optimizer::Momentum => "SGD with momentum: 1 copy of the parameters",
            Optimizer::Adam => "Adam: 2 copies of the parameters",
        }
    }
}

/// A byte count as JSON holds it: an integer where it fits 64 bits, as serde_json's numbers
/// must, and a float beyond (only a batch no machine holds gets there: `--batch 10^15`),
/// rather than the panic of a number out of range.
fn bytes_json<S: serde::Serializer>(bytes: &u128, s: S) -> Result<S::Ok, S::Error> {
    match u64::try_from(*bytes) {
        Ok(b) => s.serialize_u64(b),
        Err(_) => s.serialize_f64(*bytes as f64),
    }
}

/// The memory of one training step of `graph` at batch `batch` with `optimizer`.
pub fn for_batch(graph: &Graph, batch: u64, optimizer: Optimizer) -> BatchMemory {
    let (params_bytes, buffer_bytes) = tensor_bytes(graph);
    let input_bytes =
        graph.inputs.iter().map(|id| output_bytes(graph, id.0, batch)).fold(0u128, u128::saturating_add);
    // torchinfo adds twice the output of each leaf module with parameters; nnc's layers with
    // parameters are the emitted module's leaves (the joins, which have none, are functions).
    let forward_backward_bytes = (0..graph.nodes.len())
        .filter(|&i| graph.nodes[i].params > 0)
        .map(|i| output_bytes(graph, i, batch).saturating_mul(2))
        .fold(0u128, u128::saturating_add);
    let torchinfo = TorchinfoMemory {
        input_bytes,
        forward_backward_bytes,
        params_bytes,
        total_bytes: input_bytes.saturating_add(forward_backward_bytes).saturating_add(params_bytes),
    };
    let states = optimizer.states();
    let estimate = estimate(graph, Workload::Training { optimizer_states: states }, batch);
    let training = TrainingMemory {
        optimizer: optimizer.describe().to_string(),
        params_bytes,
        gradient_bytes: params_bytes,
        optimizer_bytes: params_bytes.saturating_mul(u128::from(states)),
        buffer_bytes,
        activation_bytes: estimate.activations,
        total_bytes: estimate.total(),
    };
    BatchMemory { batch, torchinfo, training }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Options, Root};

    fn graph(text: &str) -> Graph {
        let compiled = compile(Root::Text { name: "test.net", text, dir: None }, &Options::default());
        assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
        compiled.graphs.into_iter().next().unwrap()
    }

    const LENET: &str = "network lenet {
        input [N, 1, 28, 28]
        conv2d(6, 5, padding=2) -> sigmoid -> avgpool2d(2)
        -> conv2d(16, 5) -> sigmoid -> avgpool2d(2)
        -> flatten -> linear(120) -> sigmoid -> linear(84) -> sigmoid -> linear(10)
    }";

    #[test]
    fn the_estimate_counts_parameters_and_outputs() {
        let g = graph(LENET);
        // Floats per example of each output, in graph order.
        let outputs: [u128; 13] = [784, 4704, 4704, 1176, 1600, 1600, 400, 400, 120, 120, 84, 84, 10];
        let parameters = u128::from(g.total_params()) * 4;
        let keep_all = estimate(&g, Workload::KeepAll, 3);
        assert_eq!(keep_all, Estimate { parameters, activations: outputs.iter().sum::<u128>() * 3 * 4 });
        // Freeing as it goes, at most an input, a layer's input and its output are alive: the
        // input and the first convolution's output and the sigmoid's.
        let inference = estimate(&g, Workload::Inference, 3);
        assert_eq!(inference, Estimate { parameters, activations: (784 + 4704 + 4704) * 3 * 4 });
        // Here training's peak is inference's too: the first convolution's, before any layer's
        // input is kept; Adam adds two tensors per parameter to its gradient.
        let training = estimate(&g, Workload::Training { optimizer_states: 2 }, 3);
        assert_eq!(training, Estimate { parameters: parameters * 4, activations: inference.activations });
    }

    #[test]
    fn training_keeps_the_inputs_of_layers_with_weights() {
        let g = graph(
            "network mlp {\n input [N, 100]\n linear(100) -> relu -> linear(100) -> relu -> linear(100)\n}",
        );
        // Without gradients, at most an input, a layer's input and its output are alive.
        assert_eq!(estimate(&g, Workload::Inference, 1).activations, 300 * 4);
        // Training keeps the input and both relus' outputs, which the linear layers read, and
        // plain SGD has nothing but a gradient per parameter.
        let training = estimate(&g, Workload::Training { optimizer_states: 0 }, 1);
        assert_eq!(training.activations, 400 * 4);
        assert_eq!(training.parameters, u128::from(g.total_params()) * 4 * 2);
    }

    /// Each input counts in its element type (8 bytes an int64 id, 1 a bool), and no input is
    /// ever freed; the layers' outputs are floats.
    #[test]
    fn inputs_count_in_their_element_types() {
        let g = graph(
            "network two {\n input tokens [N, 16] int\n input x [N, 4]\n \
             e = tokens -> embedding(100, 4) -> mean(1)\n e + (x -> linear(4))\n}",
        );
        let m = for_batch(&g, 2, Optimizer::Sgd);
        assert_eq!(m.torchinfo.input_bytes, (16 * 8 + 4 * 4) * 2);
        // Without gradients: both inputs, held by the caller, and at most the embedding's
        // output and the mean's alive with them.
        let inference = estimate(&g, Workload::Inference, 1);
        assert_eq!(inference.activations, 16 * 8 + 4 * 4 + 64 * 4 + 4 * 4);
    }

    /// torchinfo's rows for LeNet at batch 2, as `torchinfo.summary(Lenet(), (2, 1, 28, 28))`
    /// computes them: twice the outputs of the five layers with weights.
    #[test]
    fn torchinfo_rows_follow_its_rules() {
        let m = for_batch(&graph(LENET), 2, Optimizer::Adam);
        assert_eq!(m.torchinfo.input_bytes, 784 * 2 * 4);
        assert_eq!(m.torchinfo.forward_backward_bytes, (4704 + 1600 + 120 + 84 + 10) * 2 * 2 * 4);
        assert_eq!(m.torchinfo.params_bytes, 61_706 * 4);
        assert_eq!(m.training.optimizer_bytes, 61_706 * 4 * 2);
        assert_eq!(
            m.training.total_bytes,
            estimate(&graph(LENET), Workload::Training { optimizer_states: 2 }, 2).total()
        );
    }
}
