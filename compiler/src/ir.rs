//! The IR: one flat, topologically ordered graph per network, whose nodes hold an [`Op`] with
//! every attribute evaluated. Every back end reads it: the report, the picture, the Rust and
//! PyTorch generators, and the libtorch runtime. The ops themselves, and all they know, live in
//! [`crate::ops`]; `Op` and the ops' attribute structs are re-exported here, so that generated
//! code names them `ir::Linear` (and `ir::Conv` for `ir::Conv2d`, a family generic in its rank).

use serde::Serialize;

pub use crate::ops::types::*;
// The families over 1, 2 and 3 spatial axes, which generated code spells by their generic
// name (`ir::Conv { kernel: [3, 3], .. }` is an `ir::Conv2d`).
pub use crate::ops::{
    AdaptiveAvgPool, AdaptiveMaxPool, ArithOp, AvgPool, Conv, ConvTranspose, InitRule, MaxPool, SliceItem,
    TensorSpec,
};
pub use crate::shape::{Batch, DType, Shape};
pub use crate::source::Loc;

/// Index of a node in [`Graph::nodes`]; inputs always have smaller ids than their users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct NodeId(pub usize);

/// A checked network.
#[derive(Clone, Debug)]
pub struct Graph {
    /// The network's name.
    pub name: String,
    /// The values of the network's parameters (`size = 224`), after `--set` overrides.
    pub params: Vec<(String, String)>,
    pub nodes: Vec<Node>,
    /// The inputs, at least one, in the order the network declares them: nodes of the op
    /// `Input`, each named as its declaration (`tokens`, or `input` for the unnamed `input
    /// [N, ...]`), with its element type in its shape (`[N, 16] int`). They share one batch.
    pub inputs: Vec<NodeId>,
    /// The outputs, at least one: the main one first (the one training's loss and accuracy
    /// read, and `forward` returns), then any others the network declares (`output logits,
    /// aux if training`).
    pub outputs: Vec<Output>,
    /// Named groups of nodes (block instances and repeats), for collapsing the report.
    pub groups: Vec<Group>,
    /// For a network with free sizes (`input [N, 3, H, W]`): each node's sizes as
    /// expressions of them, what the layers need, and the valid sizes. The shapes of `nodes`
    /// are then those of one probe (see `crate::free`).
    pub free: Option<Box<crate::free::FreeSizes>>,
}

impl Graph {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// The first input: the only one of most networks.
    pub fn input(&self) -> NodeId {
        self.inputs[0]
    }

    /// Whether node `i` is one of the inputs.
    pub fn is_input(&self, i: usize) -> bool {
        self.inputs.iter().any(|id| id.0 == i)
    }

    /// The ids an int input takes lie in `0..bound`: the smallest `num_embeddings` of the
    /// embeddings that read it directly, or 2 when none does (so that random ids fit any
    /// layer). Random inputs are drawn there (`nnc run`, the emitted module's own check).
    pub fn id_bound(&self, input: NodeId) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.inputs.contains(&input))
            .filter_map(|n| n.op.layer().id_bound())
            .min()
            .unwrap_or(2)
    }

    /// The main output.
    pub fn output(&self) -> NodeId {
        self.outputs[0].node
    }

    /// The outputs a forward pass gives in training mode (`train`) or in evaluation mode,
    /// which leaves out the outputs of training alone.
    pub fn outputs_in(&self, train: bool) -> impl Iterator<Item = &Output> {
        self.outputs.iter().filter(move |o| train || !o.training_only)
    }

    /// For each node, whether a forward pass in that mode computes it. Training computes every
    /// node; evaluation skips the layers that only outputs of training read (an auxiliary
    /// classifier), as PyTorch's modules skip them. A node no output reads (which W0001
    /// reports) is computed in both modes, as written.
    pub fn computed(&self, train: bool) -> Vec<bool> {
        let needed = |train: bool| {
            let mut needed = vec![false; self.nodes.len()];
            for output in self.outputs_in(train) {
                needed[output.node.0] = true;
            }
            for input in &self.inputs {
                needed[input.0] = true;
            }
            for i in (0..self.nodes.len()).rev() {
                if needed[i] {
                    for input in &self.nodes[i].inputs {
                        needed[input.0] = true;
                    }
                }
            }
            needed
        };
        let in_training = needed(true);
        match train {
            true => vec![true; self.nodes.len()],
            false => {
                needed(false).iter().zip(&in_training).map(|(&eval, &training)| eval || !training).collect()
            }
        }
    }

    /// For each node, the index of the last node that reads it (`usize::MAX` for the outputs,
    /// which outlive the graph): when each intermediate tensor may be freed.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for input in &node.inputs {
                last[input.0] = i;
            }
        }
        for output in &self.outputs {
            last[output.node.0] = usize::MAX;
        }
        last
    }

    /// A node's shape as the report shows it: with a network's free sizes, their
    /// expressions (`[N, 64, ⌊(H + 1)/2⌋, ⌊(W + 1)/2⌋]`).
    pub fn shape_text(&self, id: NodeId) -> String {
        crate::free::shape_text(&self.nodes[id.0].shape, self.free.as_deref(), id)
    }

    pub fn total_params(&self) -> u64 {
        self.nodes.iter().map(|n| n.params).sum()
    }

    pub fn total_macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.macs).sum()
    }
}

/// One operation and the tensor it produces.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    /// Hierarchical, PyTorch-style name (`b3.0.conv1`); parameters are `name.weight` etc.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    /// Learnable parameters (not buffers).
    pub params: u64,
    /// Multiply-accumulate operations per example, as torchinfo counts them: one per weight
    /// use and one per bias add of convolutions and linear layers, one per trained parameter of
    /// a normalisation.
    pub macs: u64,
    /// For a layer applied again (`shared`): the node that first applied it, whose tensors
    /// this one uses. It has the same name and op, and no parameters of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<NodeId>,
    /// This layer's tensors that are another layer's (`tie lm_head.weight = wte.weight`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ties: Vec<Tie>,
    #[serde(skip)]
    pub loc: Loc,
}

impl Node {
    /// The tensors this node creates: its op's, less those it takes from another node (all of
    /// them when it applies a shared layer again, the tied ones otherwise).
    pub fn own_tensors(&self) -> Vec<TensorSpec> {
        if self.shares.is_some() {
            return Vec::new();
        }
        let mut specs = self.op.layer().tensors();
        specs.retain(|spec| !self.ties.iter().any(|tie| tie.tensor == spec.name));
        specs
    }
}

/// A tensor of one layer that is another layer's, as PyTorch's weight tying makes it: both
/// names are in the `state_dict`, and the parameters count it once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tie {
    /// The tensor's name in this layer (`weight`).
    pub tensor: String,
    /// The layer whose tensor it is, and that tensor's name there.
    pub to: NodeId,
    pub to_tensor: String,
}

/// One output of a network.
#[derive(Clone, Debug, Serialize)]
pub struct Output {
    /// The tensor's name in the network (`logits`), or `output` for the last statement's.
    pub name: String,
    pub node: NodeId,
    /// An output in training mode only (`aux if training`), as torchvision's Inception-v3
    /// returns its auxiliary classifier's logits only in training.
    pub training_only: bool,
}

/// A name prefix that stands for a block instance or a repeat.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub name: String,
    /// `residual(128, stride=2)` or `repeat ×2`.
    pub label: String,
}
