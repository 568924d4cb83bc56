//! The IR as an ONNX model (opset [`OPSET`]), for `nnc emit --target onnx`: each layer's nodes
//! come from its own [`Layer::onnx`](crate::ops::Layer::onnx) spelling; this file only walks the
//! graph in evaluation mode (the outputs of training alone, and the layers only they read, are
//! left out; dropout is the identity), names the values, and writes ONNX's protobuf messages
//! (`proto`, generated from ONNX's own `onnx.proto` by prost-build and committed).
//!
//! Names are nnc's: the inputs are the network's (`input`, `tokens`), the outputs its outputs'
//! (`output`, `logits`), each layer's result its IR name (`b3.0.conv1`), and each tensor an
//! initialiser named as nnc's checkpoints name it (`b3.0.conv1.weight`), so that a checkpoint's
//! tensors fill them. The batch is the symbolic dimension the network declares (`N`).

// As prost-build writes it, so that the test that regenerates it can compare.
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto;

use std::fmt;

use prost::Message;

use crate::ir::Graph;
pub use crate::ops::onnx::OPSET;
use crate::ops::onnx::{Attr, ConstantData, Onnx, OnnxError};
use crate::ops::{InitRule, TensorSpec};
use crate::rng::SplitMix;
use crate::shape::{Batch, DType, Shape};

/// The IR version the model declares: 8, the one of opset 17 (ONNX 1.12), which runtimes of
/// that age and later read.
pub const IR_VERSION: i64 = 8;

/// Why no model was written.
#[derive(Debug)]
pub enum Error {
    /// A layer nnc cannot spell in ONNX.
    Layer(OnnxError),
    /// A tensor the weights did not give (missing, of other sizes), by its name.
    Weights(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Layer(e) => write!(f, "cannot write ONNX: {e}"),
            Error::Weights(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

/// The values of the tensor named `name` (as nnc's checkpoints name it) that `spec` describes,
/// as f32 in row-major order, or why there are none.
pub type Weights<'a> = dyn FnMut(&str, &TensorSpec) -> Result<Vec<f32>, String> + 'a;

/// The graph's nodes, constants and the tensors it reads, without their values.
pub fn build(graph: &Graph) -> Result<Onnx, OnnxError> {
    let computed = graph.computed(false);
    let outputs: Vec<_> = graph.outputs_in(false).collect();
    let reserved = graph.inputs.iter().map(|&id| graph.node(id).name.as_str());
    let mut g = Onnx::new(reserved.chain(outputs.iter().map(|o| o.name.as_str())));
    let mut values: Vec<String> = vec![String::new(); graph.nodes.len()];
    for &id in &graph.inputs {
        values[id.0] = graph.node(id).name.clone();
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        if graph.is_input(i) || !computed[i] {
            continue;
        }
        let xs: Vec<String> = node.inputs.iter().map(|id| values[id.0].clone()).collect();
        let shapes: Vec<Shape> = node.inputs.iter().map(|id| graph.node(*id).shape.clone()).collect();
        let tensors = node
            .op
            .layer()
            .tensors()
            .into_iter()
            .map(|spec| {
                let full = match node.ties.iter().find(|t| t.tensor == spec.name) {
                    Some(tie) => tensor_name(&graph.node(tie.to).name, &tie.to_tensor),
                    None => tensor_name(&node.name, &spec.name),
                };
                (spec.name.to_string(), full, spec)
            })
            .collect();
        g.begin(&node.name, node.op.to_string(), shapes, node.shape.clone(), tensors);
        let first = g.nodes.len();
        let mut y = node.op.layer().onnx(&mut g, &xs)?;
        if g.produced_from(first, &y) && !g.is_used(&node.name) {
            g.rename(first, &y, &node.name);
            y = node.name.clone();
        }
        values[i] = y;
    }
    // Each output's value takes the output's name, or is copied to it where it is an input,
    // a tensor, or another output's.
    let mut named: Vec<String> = Vec::new();
    for output in &outputs {
        let value = values[output.node.0].clone();
        if value == output.name {
            named.push(value);
            continue;
        }
        if g.produced_from(0, &value) && !named.contains(&value) {
            g.rename(0, &value, &output.name);
            for v in &mut values {
                if *v == value {
                    v.clone_from(&output.name);
                }
            }
        } else {
            g.begin(&output.name, "output".into(), vec![], graph.node(output.node).shape.clone(), vec![]);
            let copy = g.node("Identity", &[&value], vec![]);
            let first = g.nodes.len() - 1;
            g.rename(first, &copy, &output.name);
        }
        named.push(output.name.clone());
    }
    Ok(g)
}

/// `layer.tensor`, or the layer's own name for a declared `param`'s tensor.
fn tensor_name(layer: &str, tensor: &str) -> String {
    match tensor {
        "" => layer.to_string(),
        t => format!("{layer}.{t}"),
    }
}

/// The ONNX model of `graph`, its initialisers filled by `weights`.
pub fn model(graph: &Graph, weights: &mut Weights<'_>) -> Result<proto::ModelProto, Error> {
    let g = build(graph).map_err(Error::Layer)?;
    // A protobuf message over 2 GiB cannot be read back; ONNX keeps larger weights in
    // external files, which nnc does not write.
    let bytes: u64 =
        g.initializers.iter().map(|i| i.spec.elements().unwrap_or(u64::MAX).saturating_mul(4)).sum();
    if bytes > i32::MAX as u64 {
        return Err(Error::Weights(format!(
            "the weights take {bytes} bytes, over the 2 GiB a protobuf message can hold; nnc does not write ONNX's external data"
        )));
    }
    let mut initializer = Vec::new();
    for init in &g.initializers {
        let values = weights(&init.name, &init.spec).map_err(Error::Weights)?;
        let expected = init.spec.elements().unwrap_or(u64::MAX);
        if values.len() as u64 != expected {
            return Err(Error::Weights(format!(
                "`{}` has {} values, but its sizes {:?} hold {expected}",
                init.name,
                values.len(),
                &init.spec.dims[..]
            )));
        }
        initializer.push(proto::TensorProto {
            name: Some(init.name.clone()),
            dims: init.spec.dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(proto::tensor_proto::DataType::Float as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
    }
    for c in &g.constants {
        let (data_type, raw_data) = match &c.data {
            ConstantData::Float(v) => {
                (proto::tensor_proto::DataType::Float, v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
            ConstantData::Int(v) => {
                (proto::tensor_proto::DataType::Int64, v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
        };
        initializer.push(proto::TensorProto {
            name: Some(c.name.clone()),
            dims: c.dims.clone(),
            data_type: Some(data_type as i32),
            raw_data: Some(raw_data),
            ..Default::default()
        });
    }
    let node = g
        .nodes
        .iter()
        .map(|n| proto::NodeProto {
            name: Some(n.outputs[0].clone()),
            op_type: Some(n.op_type.to_string()),
            input: n.inputs.clone(),
            output: n.outputs.clone(),
            attribute: n.attributes.iter().map(|(name, value)| attribute(name, value)).collect(),
            ..Default::default()
        })
        .collect();
    let input =
        graph.inputs.iter().map(|&id| value_info(&graph.node(id).name, &graph.node(id).shape)).collect();
    let output = graph.outputs_in(false).map(|o| value_info(&o.name, &graph.node(o.node).shape)).collect();
    Ok(proto::ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("nnc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        graph: Some(proto::GraphProto {
            name: Some(graph.name.clone()),
            node,
            initializer,
            input,
            output,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The bytes of the ONNX file of `graph`, its initialisers filled by `weights`.
pub fn emit(graph: &Graph, weights: &mut Weights<'_>) -> Result<Vec<u8>, Error> {
    Ok(model(graph, weights)?.encode_to_vec())
}

fn attribute(name: &str, value: &Attr) -> proto::AttributeProto {
    use proto::attribute_proto::AttributeType;
    let mut a = proto::AttributeProto { name: Some(name.to_string()), ..Default::default() };
    let kind = match value {
        Attr::Int(v) => {
            a.i = Some(*v);
            AttributeType::Int
        }
        Attr::Ints(v) => {
            a.ints.clone_from(v);
            AttributeType::Ints
        }
        Attr::Float(v) => {
            a.f = Some(*v);
            AttributeType::Float
        }
        Attr::Str(v) => {
            a.s = Some(v.as_bytes().to_vec());
            AttributeType::String
        }
    };
    a.r#type = Some(kind as i32);
    a
}

/// A graph input's or output's name and type: its element type, the batch as the network's
/// symbolic dimension (`N`) or its fixed size, then its sizes.
fn value_info(name: &str, shape: &Shape) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension::Value, Dimension};
    let elem_type = match shape.dtype {
        DType::Float => proto::tensor_proto::DataType::Float,
        DType::Int => proto::tensor_proto::DataType::Int64,
        DType::Bool => proto::tensor_proto::DataType::Bool,
    };
    let batch = match &shape.batch {
        Batch::Symbolic(n) => Some(Value::DimParam(n.clone())),
        Batch::Fixed(n) => Some(Value::DimValue(*n as i64)),
        Batch::None => None,
    };
    let dim = batch
        .into_iter()
        .chain(shape.dims.iter().map(|&d| Value::DimValue(d as i64)))
        .map(|v| Dimension { value: Some(v), ..Default::default() })
        .collect();
    proto::ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
                elem_type: Some(elem_type as i32),
                shape: Some(proto::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Weights drawn as PyTorch's layers initialise them (the same distributions, not the same
/// numbers), from `seed` and each tensor's name, so that a tensor's values do not depend on the
/// others: for a file that runs and has the right structure when no trained weights are given.
pub fn initial_weights(seed: u64) -> impl FnMut(&str, &TensorSpec) -> Result<Vec<f32>, String> {
    move |name, spec| {
        let n = spec.elements().ok_or_else(|| format!("`{name}` has too many elements"))? as usize;
        let mut rng = SplitMix(
            seed ^ name
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)),
        );
        let dims = &spec.dims;
        let receptive: u64 = dims.iter().skip(2).product();
        let fan_in = dims.get(1).copied().unwrap_or(1) * receptive;
        let fan_out = dims.first().copied().unwrap_or(1) * receptive;
        let uniform = |rng: &mut SplitMix, bound: f64| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32;
        Ok(match spec.init {
            InitRule::Weight => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                (0..n).map(|_| uniform(&mut rng, bound)).collect()
            }
            InitRule::Bias { fan_in } => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                (0..n).map(|_| uniform(&mut rng, bound)).collect()
            }
            InitRule::XavierUniform => {
                let bound = (6.0 / ((fan_in + fan_out).max(1) as f64)).sqrt();
                (0..n).map(|_| uniform(&mut rng, bound)).collect()
            }
            InitRule::Const(v) => vec![v as f32; n],
            InitRule::Count | InitRule::ZeroedBias { .. } => vec![0.0; n],
            InitRule::Normal { std } => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
            InitRule::Embedding { padding_idx } => {
                let mut v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
                let width = dims.get(1).copied().unwrap_or(1) as usize;
                let start = padding_idx.and_then(|row| (row as usize).checked_mul(width));
                if let Some(padding) = start.and_then(|s| v.get_mut(s..s.saturating_add(width))) {
                    padding.fill(0.0);
                }
                v
            }
        })
    }
}
