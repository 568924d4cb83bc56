//! The IR: one flat, topologically ordered graph per network. Every back end reads it: the
//! checker's report, and later the interpreter and the code generators.

use std::fmt;

use serde::Serialize;

use crate::shape::Shape;
use crate::source::Loc;

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
    pub input: NodeId,
    pub output: NodeId,
    /// Named groups of nodes (block instances and repeats), for collapsing the report.
    pub groups: Vec<Group>,
}

impl Graph {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// For each node, the index of the last node that reads it (`usize::MAX` for the output,
    /// which outlives the graph): when each intermediate tensor may be freed.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for input in &node.inputs {
                last[input.0] = i;
            }
        }
        last[self.output.0] = usize::MAX;
        last
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
    /// Multiply-accumulate operations per example: one per weight use and one per bias add of
    /// convolutions and linear layers (torchinfo's count).
    pub macs: u64,
    #[serde(skip)]
    pub loc: Loc,
}

/// A name prefix that stands for a block instance or a repeat.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub name: String,
    /// `residual(128, stride=2)` or `repeat ×2`.
    pub label: String,
}

/// An operation with every attribute evaluated.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    Input,
    Conv2d(Conv2d),
    MaxPool2d(Pool2d),
    AvgPool2d(Pool2d),
    AdaptiveAvgPool2d {
        output: [u64; 2],
    },
    /// Batch normalisation over dimension 1: `BatchNorm1d` on rank 2 or 3, `BatchNorm2d` on
    /// rank 4.
    BatchNorm {
        features: u64,
        eps: f64,
        momentum: f64,
        rank: usize,
    },
    Activation {
        function: Activation,
    },
    Softmax {
        dim: usize,
    },
    Dropout {
        p: f64,
    },
    Flatten {
        start: usize,
        end: usize,
    },
    Linear {
        in_features: u64,
        out_features: u64,
        bias: bool,
    },
    Identity,
    /// Element-wise sum of all inputs.
    Add,
    /// Concatenation along `dim`.
    Concat {
        dim: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conv2d {
    pub in_channels: u64,
    pub out_channels: u64,
    pub kernel: [u64; 2],
    pub stride: [u64; 2],
    pub padding: [u64; 2],
    pub dilation: [u64; 2],
    pub groups: u64,
    pub bias: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool2d {
    pub kernel: [u64; 2],
    pub stride: [u64; 2],
    pub padding: [u64; 2],
    pub dilation: [u64; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether zero padding counts in the average.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    Gelu,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
        }
    }
}

fn pair(f: &mut fmt::Formatter<'_>, sep: &str, what: &str, v: [u64; 2], default: u64) -> fmt::Result {
    match v {
        [a, b] if a == b && a == default => Ok(()),
        [a, b] if a == b => write!(f, "{sep}{what} {a}"),
        [a, b] => write!(f, "{sep}{what} ({a}, {b})"),
    }
}

/// The short description used in the report's `op` column.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Input => f.write_str("input"),
            Op::Conv2d(c) => {
                write!(f, "conv2d {}→{}, {}×{}", c.in_channels, c.out_channels, c.kernel[0], c.kernel[1])?;
                pair(f, ", ", "stride", c.stride, 1)?;
                pair(f, ", ", "padding", c.padding, 0)?;
                pair(f, ", ", "dilation", c.dilation, 1)?;
                if c.groups != 1 {
                    write!(f, ", groups {}", c.groups)?;
                }
                if !c.bias {
                    f.write_str(", no bias")?;
                }
                Ok(())
            }
            Op::MaxPool2d(p) | Op::AvgPool2d(p) => {
                let kind = if matches!(self, Op::MaxPool2d(_)) { "maxpool" } else { "avgpool" };
                write!(f, "{kind} {}×{}", p.kernel[0], p.kernel[1])?;
                if p.stride != p.kernel {
                    pair(f, ", ", "stride", p.stride, 0)?;
                }
                pair(f, ", ", "padding", p.padding, 0)?;
                pair(f, ", ", "dilation", p.dilation, 1)?;
                if p.ceil_mode {
                    f.write_str(", ceil")?;
                }
                Ok(())
            }
            Op::AdaptiveAvgPool2d { output } => {
                write!(f, "adaptive_avgpool {}×{}", output[0], output[1])
            }
            Op::BatchNorm { features, rank, .. } => {
                write!(f, "batchnorm{} {features}", if *rank == 4 { "2d" } else { "1d" })
            }
            Op::Activation { function } => f.write_str(function.name()),
            Op::Softmax { dim } => write!(f, "softmax dim {dim}"),
            Op::Dropout { p } => write!(f, "dropout {p}"),
            Op::Flatten { start, end } => write!(f, "flatten {start}..={end}"),
            Op::Linear { in_features, out_features, bias } => {
                write!(f, "linear {in_features}→{out_features}{}", if *bias { "" } else { ", no bias" })
            }
            Op::Identity => f.write_str("identity"),
            Op::Add => f.write_str("add"),
            Op::Concat { dim } => write!(f, "cat dim {dim}"),
        }
    }
}
