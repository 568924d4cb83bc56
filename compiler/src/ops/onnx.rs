//! What an op's ONNX spelling ([`Layer::onnx`](super::Layer::onnx)) is written with: [`Onnx`],
//! the graph being built, which knows the layer being spelled (its name, its input and output
//! shapes, its tensors' names), adds nodes and constants, and records which of the layer's
//! tensors become initialisers. It holds plain data; `back::onnx` turns it into ONNX's protobuf
//! messages and fills the initialisers with weights.
//!
//! The spellings target ONNX opset [`OPSET`]: an op whose operands moved from attributes to
//! inputs in a later opset (`ReduceMean`'s axes) is written as opset 17 has it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::TensorSpec;
use crate::shape::Shape;

/// The ONNX opset the graphs declare: 17, the first with `LayerNormalization`.
pub const OPSET: i64 = 17;

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(String),
}

/// One ONNX node.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxNode {
    pub op_type: &'static str,
    /// Value names; an empty name is an optional input left out.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(&'static str, Attr)>,
    /// The nnc layer it computes (part of), by its IR name.
    pub layer: String,
}

/// A constant an op's spelling needs (a shape, a scalar), stored as an initialiser.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: ConstantData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConstantData {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

/// A layer's tensor that the ONNX graph reads, named as in nnc's checkpoints
/// (`b3.0.conv1.weight`), with its sizes; the back end fills it with weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Initializer {
    pub name: String,
    /// The layer's description of it: sizes and initialisation rule.
    pub spec: TensorSpec,
}

/// Why a graph has no ONNX spelling: the layer (by its IR name and its report text) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxError {
    pub layer: String,
    pub op: String,
    pub message: String,
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer `{}` ({}): {}", self.layer, self.op, self.message)
    }
}

impl std::error::Error for OnnxError {}

/// The layer being spelled.
#[derive(Default)]
struct Current {
    name: String,
    op: String,
    inputs: Vec<Shape>,
    output: Option<Shape>,
    /// Each tensor's name in the layer (`weight`), its name in the graph and its description.
    tensors: Vec<(String, String, TensorSpec)>,
}

/// The ONNX graph being built, one layer after another.
#[derive(Default)]
pub struct Onnx {
    pub nodes: Vec<OnnxNode>,
    pub constants: Vec<Constant>,
    pub initializers: Vec<Initializer>,
    used: HashSet<String>,
    /// For each base name given to [`Onnx::fresh`], the number its next try takes.
    next_suffix: HashMap<String, usize>,
    current: Current,
}

impl Onnx {
    /// A graph whose value names will not be any of `reserved` (its inputs' and outputs').
    pub fn new<'a>(reserved: impl IntoIterator<Item = &'a str>) -> Onnx {
        Onnx { used: reserved.into_iter().map(str::to_string).collect(), ..Onnx::default() }
    }

    /// Starts spelling the layer `name` (`op` is its report text, for errors), whose inputs and
    /// output have these shapes and whose tensors are named in the graph as `tensors` says
    /// (its name in the layer, the graph's name, its description).
    pub fn begin(
        &mut self,
        name: &str,
        op: String,
        inputs: Vec<Shape>,
        output: Shape,
        tensors: Vec<(String, String, TensorSpec)>,
    ) {
        self.current = Current { name: name.to_string(), op, inputs, output: Some(output), tensors };
    }

    /// The shape of the layer's input `i`.
    pub fn input(&self, i: usize) -> &Shape {
        &self.current.inputs[i]
    }

    /// The shape of the layer's output.
    pub fn output(&self) -> &Shape {
        self.current.output.as_ref().expect("a layer is being spelled")
    }

    /// An error naming the layer being spelled.
    pub fn unsupported(&self, message: impl Into<String>) -> OnnxError {
        OnnxError { layer: self.current.name.clone(), op: self.current.op.clone(), message: message.into() }
    }

    /// The layer's tensor `name` (`weight`; `""` for a declared `param`) as a value of the
    /// graph: an initialiser named as nnc's checkpoints name it, or the tensor it is tied to.
    pub fn tensor(&mut self, name: &str) -> Result<String, OnnxError> {
        let Some((_, full, spec)) = self.current.tensors.iter().find(|(n, _, _)| n == name) else {
            return Err(self.unsupported(format!("it has no tensor `{name}`; please report this")));
        };
        let full = full.clone();
        if !self.initializers.iter().any(|i| i.name == full) {
            self.initializers.push(Initializer { name: full.clone(), spec: spec.clone() });
            self.used.insert(full.clone());
        }
        Ok(full)
    }

    /// A value name not yet used: `base`, else `base:1`, `base:2`, ...
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        if self.used.contains(&name) {
            // Counting on from the last number this base was given, not from 1: a layer of
            // thousands of pieces asks for the same base thousands of times.
            let next = self.next_suffix.entry(base.to_string()).or_insert(1);
            while self.used.contains(&name) {
                name = format!("{base}:{next}");
                *next += 1;
            }
        }
        self.used.insert(name.clone());
        name
    }

    /// Adds a node of one output and gives the output's name.
    pub fn node(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, Attr)>,
    ) -> String {
        self.node_n(op_type, inputs, attributes, 1).remove(0)
    }

    /// Adds a node of `n` outputs and gives their names.
    pub fn node_n(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, Attr)>,
        n: usize,
    ) -> Vec<String> {
        let base = format!("{}/{op_type}", self.current.name);
        let outputs: Vec<String> = (0..n).map(|_| self.fresh(&base)).collect();
        self.nodes.push(OnnxNode {
            op_type,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.clone(),
            attributes,
            layer: self.current.name.clone(),
        });
        outputs
    }

    fn constant(&mut self, what: &str, dims: Vec<i64>, data: ConstantData) -> String {
        let name = self.fresh(&format!("{}/{what}", self.current.name));
        self.constants.push(Constant { name: name.clone(), dims, data });
        name
    }

    /// A constant list of int64s (a shape, axes).
    pub fn ints(&mut self, what: &str, values: &[i64]) -> String {
        self.constant(what, vec![values.len() as i64], ConstantData::Int(values.to_vec()))
    }

    /// A constant float scalar.
    pub fn scalar(&mut self, what: &str, value: f32) -> String {
        self.constant(what, Vec::new(), ConstantData::Float(vec![value]))
    }

    /// A constant float tensor of sizes `dims`.
    pub fn floats(&mut self, what: &str, dims: &[i64], values: Vec<f32>) -> String {
        self.constant(what, dims.to_vec(), ConstantData::Float(values))
    }

    /// `x` reshaped to the layer's output shape, the batch kept (`Reshape` with 0 for it).
    pub fn reshape_to_output(&mut self, x: &str) -> String {
        let dims: Vec<i64> = self.output().dims.iter().map(|&d| d as i64).collect();
        self.reshape(x, &dims)
    }

    /// `x` reshaped to `[batch, dims...]`, the batch kept (one of `dims` may be -1).
    pub fn reshape(&mut self, x: &str, dims: &[i64]) -> String {
        let shape: Vec<i64> = std::iter::once(0).chain(dims.iter().copied()).collect();
        let shape = self.ints("shape", &shape);
        self.node("Reshape", &[x, &shape], vec![])
    }

    /// `x · w^T + b` over the last dimension (`nn.Linear`): `Gemm` on a matrix, `MatMul` and
    /// `Add` on more dimensions.
    pub fn linear(&mut self, x: &str, rank: usize, weight: &str, bias: Option<&str>) -> String {
        if rank == 2 {
            let mut inputs = vec![x, weight];
            inputs.extend(bias);
            return self.node("Gemm", &inputs, vec![("transB", Attr::Int(1))]);
        }
        let wt = self.node("Transpose", &[weight], vec![("perm", Attr::Ints(vec![1, 0]))]);
        let y = self.node("MatMul", &[x, &wt], vec![]);
        match bias {
            Some(b) => self.node("Add", &[&y, b], vec![]),
            None => y,
        }
    }

    /// `f(x) · x` for an elementwise `f` of one node (SiLU: `x · sigmoid(x)`).
    pub fn times_input(&mut self, x: &str, op_type: &'static str) -> String {
        let f = self.node(op_type, &[x], vec![]);
        self.node("Mul", &[x, &f], vec![])
    }

    /// `x` of the shape `[N, ...]` (dimension 0 the batch) transposed by `perm`.
    pub fn transpose(&mut self, x: &str, perm: &[usize]) -> String {
        self.node("Transpose", &[x], vec![("perm", Attr::Ints(perm.iter().map(|&p| p as i64).collect()))])
    }

    /// The shape `[batch of x, dims...]` as a value: for `Expand` and `Resize`, which take a
    /// whole shape where the batch is known only at run time.
    pub fn batch_and(&mut self, x: &str, dims: &[u64]) -> String {
        let shape = self.node("Shape", &[x], vec![("start", Attr::Int(0)), ("end", Attr::Int(1))]);
        let rest: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let rest = self.ints("sizes", &rest);
        self.node("Concat", &[&shape, &rest], vec![("axis", Attr::Int(0))])
    }

    /// Scaled dot-product attention of `q [.., L, E]`, `k [.., S, E]`, `v [.., S, Ev]`: the
    /// softmax of `q kᵀ · scale` (where `mask`, a bool tensor, is true, and on and below the
    /// diagonal when `causal`) times `v`, as `F.scaled_dot_product_attention` computes it.
    pub fn attention(&mut self, [q, k, v]: [&str; 3], how: &AttentionSpec<'_>) -> String {
        let AttentionSpec { rank, sizes: [l, s, e], mask, causal, scale } = *how;
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        let kt = self.transpose(k, &perm);
        let scores = self.node("MatMul", &[q, &kt], vec![]);
        let factor = scale.unwrap_or(1.0 / (e as f64).sqrt()) as f32;
        let factor = self.scalar("scale", factor);
        let mut scores = self.node("Mul", &[&scores, &factor], vec![]);
        if causal {
            // PyTorch's causal mask is the lower triangle, top-left aligned: 0 where a position
            // may attend, -inf where it may not.
            let mask: Vec<f32> = (0..l)
                .flat_map(|i| (0..s).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
                .collect();
            let mask = self.floats("causal_mask", &[l as i64, s as i64], mask);
            scores = self.node("Add", &[&scores, &mask], vec![]);
        }
        if let Some(mask) = mask {
            let minus_inf = self.scalar("minus_inf", f32::NEG_INFINITY);
            scores = self.node("Where", &[mask, &scores, &minus_inf], vec![]);
        }
        let weights = self.node("Softmax", &[&scores], vec![("axis", Attr::Int(-1))]);
        self.node("MatMul", &[&weights, v], vec![])
    }

    /// Renames the value `from`, which the nodes from `first` on produce and read, to `to`.
    pub fn rename(&mut self, first: usize, from: &str, to: &str) {
        for node in &mut self.nodes[first..] {
            for name in node.inputs.iter_mut().chain(node.outputs.iter_mut()) {
                if name == from {
                    *name = to.to_string();
                }
            }
        }
        self.used.insert(to.to_string());
    }

    /// Whether some node produces the value `name` (rather than an input or initialiser).
    pub fn produced_from(&self, first: usize, name: &str) -> bool {
        self.nodes[first..].iter().any(|n| n.outputs.iter().any(|o| o == name))
    }

    pub fn is_used(&self, name: &str) -> bool {
        self.used.contains(name)
    }
}

/// What [`Onnx::attention`] computes besides its three inputs.
#[derive(Clone, Copy)]
pub struct AttentionSpec<'a> {
    /// The queries' rank, batch included.
    pub rank: usize,
    /// `L`, `S` and `E`: the queries' and keys' lengths and the queries' features.
    pub sizes: [u64; 3],
    pub mask: Option<&'a str>,
    pub causal: bool,
    /// The scores' factor; 1/√E where absent.
    pub scale: Option<f64>,
}

/// `ints` as ONNX's int64 attribute list.
pub fn ints(v: &[u64]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// ONNX's `pads`: each axis's start, then each axis's end.
pub fn pads(begin: &[u64], end: &[u64]) -> Attr {
    Attr::Ints(begin.iter().chain(end).map(|&x| x as i64).collect())
}
