//! The JSON interface (`--format json`): what tools read, versioned by [`SCHEMA_VERSION`] and
//! described by the JSON Schemas in `docs/schema/`, which a test validates nnc's output
//! against. Shapes are arrays, the symbolic batch a string (`["N", 1, 28, 28]`), with the
//! element type beside them; an op is its kind with its attributes as structured values
//! (`{"kind": "conv2d", "out_channels": 6, "kernel": [5, 5], ...}`) and its text as the table
//! shows it; network parameters are typed values. The text table is the report's (`report.rs`).

use serde_json::{json, Map, Value};

use super::report::Report;
use crate::ir::{Graph, Node, NodeId};
use crate::shape::{Batch, DType, Shape};

/// The version of the JSON every command writes. It changes when a field changes meaning or
/// goes away; fields may be added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// A shape as an array: the batch first (its symbol, or its size), then the sizes; a declared
/// `param` has no batch.
pub fn shape(shape: &Shape) -> Value {
    let batch = match &shape.batch {
        Batch::Symbolic(name) => Some(json!(name)),
        Batch::Fixed(n) => Some(json!(n)),
        Batch::None => None,
    };
    Value::Array(batch.into_iter().chain(shape.dims.iter().map(|&d| json!(d))).collect())
}

/// An element type's name: `float`, `int` or `bool`, as the language writes them.
pub fn dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::Float => "float",
        DType::Int => "int",
        DType::Bool => "bool",
    }
}

/// A layer's op: `kind`, its attributes by name, and `text`, the table's words.
fn op(node: &Node, text: &str) -> Value {
    let mut attributes = match serde_json::to_value(&node.op) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let kind = attributes.remove("kind").unwrap_or(Value::Null);
    json!({ "kind": kind, "attributes": attributes, "text": text })
}

/// A network parameter's value as JSON: a number, a boolean, a string, or an array for a
/// tuple. The IR keeps each as the language prints it, which is JSON's spelling for the
/// first three, and Python's for tuples.
pub fn parameter(text: &str) -> Value {
    let spelled = match text.starts_with('(') {
        // A tuple of values (`(3, 5)`, `(3,)`, `((1, 2), 3)`): brackets for its parentheses,
        // those inside its strings left as they are.
        true => {
            let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
            for c in text.chars() {
                match (in_string, c) {
                    (false, '(') => out.push('['),
                    (false, ')') => {
                        if out.trim_end().ends_with(',') {
                            out.truncate(out.trim_end().len() - 1);
                        }
                        out.push(']');
                    }
                    (_, '"') if !escaped => {
                        in_string = !in_string;
                        out.push(c);
                    }
                    _ => out.push(c),
                }
                escaped = in_string && c == '\\' && !escaped;
            }
            out
        }
        false => text.to_string(),
    };
    serde_json::from_str(&spelled).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// One network's report, as `nnc check --format json` gives it.
pub fn network(graph: &Graph, report: &Report) -> Value {
    let parameters: Map<String, Value> =
        graph.params.iter().map(|(k, v)| (k.clone(), parameter(v))).collect();
    // With free sizes, each is its expression (`"⌊(H + 1)/2⌋"`) where it depends on them.
    let shape = |id: NodeId| match graph.free.as_ref().and_then(|f| f.dims.get(id.0)) {
        Some(dims) => {
            let sizes = dims.iter().map(|d| d.as_known().map_or_else(|| json!(d.to_string()), |v| json!(v)));
            let batch = graph.node(id).shape.batch_text().map(|b| match graph.node(id).shape.batch {
                Batch::Fixed(n) => json!(n),
                _ => json!(b),
            });
            Value::Array(batch.into_iter().chain(sizes).collect())
        }
        None => shape(&graph.node(id).shape),
    };
    let tensor = |id: NodeId| {
        let node = graph.node(id);
        json!({ "name": node.name, "shape": shape(id), "dtype": dtype(node.shape.dtype) })
    };
    let inputs: Vec<Value> = graph.inputs.iter().map(|&id| tensor(id)).collect();
    let outputs: Vec<Value> = graph
        .outputs
        .iter()
        .map(|o| {
            let node = graph.node(o.node);
            json!({
                "name": o.name,
                "shape": shape(o.node),
                "dtype": dtype(node.shape.dtype),
                "training_only": o.training_only,
            })
        })
        .collect();
    let layers: Vec<Value> = report
        .rows
        .iter()
        .map(|row| {
            let last = &graph.nodes[row.last];
            // A collapsed row (`--depth`) stands for a block instance or a prefix: its call.
            let op = match row.collapsed {
                true => json!({ "kind": "block", "attributes": {}, "text": row.op }),
                false => op(last, &row.op),
            };
            json!({
                "name": row.name,
                "op": op,
                "shape": shape(NodeId(row.last)),
                "dtype": dtype(last.shape.dtype),
                "params": row.params,
                "macs": if graph.free.is_some() { Value::Null } else { json!(row.macs) },
                "layers": row.layers,
            })
        })
        .collect();
    let mut out = json!({
        "name": graph.name,
        "parameters": parameters,
        "inputs": inputs,
        "outputs": outputs,
        "layers": layers,
        "totals": report.totals,
    });
    if let Some(memory) = &report.memory {
        out["memory"] = json!(memory);
    }
    // Counts that depend on free sizes are not given; each name's valid sizes are.
    if let Some(valid) = &report.free {
        for total in ["macs", "activations", "activation_bytes"] {
            out["totals"][total] = Value::Null;
        }
        out["free"] =
            valid.iter().map(|(name, set)| (name.clone(), json!(set))).collect::<Map<_, _>>().into();
        if !report.declared.is_empty() {
            out["declared"] = json!(report.declared);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_typed() {
        assert_eq!(parameter("10"), json!(10));
        assert_eq!(parameter("0.1"), json!(0.1));
        assert_eq!(parameter("1e-5"), json!(1e-5));
        assert_eq!(parameter("true"), json!(true));
        assert_eq!(parameter("\"gelu\""), json!("gelu"));
        assert_eq!(parameter("(3, 5)"), json!([3, 5]));
        assert_eq!(parameter("(3,)"), json!([3]));
        assert_eq!(parameter("((1, 2), 3)"), json!([[1, 2], 3]));
        assert_eq!(parameter("(\"a(b)\", 1)"), json!(["a(b)", 1]));
    }

    #[test]
    fn shapes_are_arrays() {
        let s = Shape::float(Batch::Symbolic("N".into()), vec![1, 28, 28]);
        assert_eq!(shape(&s), json!(["N", 1, 28, 28]));
        assert_eq!(shape(&Shape::float(Batch::None, vec![4, 1, 1])), json!([4, 1, 1]));
    }
}
