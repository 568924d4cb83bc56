//! The PyTorch back end: an IR graph as a self-contained `nn.Module` source file whose
//! `state_dict` keys and shapes are nnc's parameter names, so that an nnc checkpoint loads
//! into it with `load_state_dict(strict=True)` and computes the same outputs.

use std::fmt::Write;

use crate::ir::{Graph, Node, Op};
use crate::ops::PyTorch;
use crate::shape::Batch;

/// The expression computing a node from its inputs `xs`: the op's own spelling, or a call of
/// the module registered under the node's name.
fn expression(op: &Op, name: &str, xs: &[String]) -> String {
    match op.layer().pytorch(xs) {
        PyTorch::Expr(expr) => expr,
        PyTorch::Module(_) => format!("self.layers_[{name:?}]({})", xs[0]),
    }
}

/// The Python names of a node's inputs in `forward`.
fn inputs(node: &Node) -> Vec<String> {
    node.inputs.iter().map(|id| format!("x{}", id.0)).collect()
}

/// A Python class name from a network's name (`resnet18` → `Resnet18`).
fn class_name(network: &str) -> String {
    super::codegen::type_name(network).to_string()
}

/// The Python source of the module.
pub fn emit(graph: &Graph, source: &str) -> String {
    let class = class_name(&graph.name);
    let input = graph.node(graph.input);
    let batch = match input.shape.batch {
        Batch::Symbolic(_) => "-1".to_string(),
        Batch::Fixed(n) => n.to_string(),
    };
    let dims: Vec<String> =
        std::iter::once(batch).chain(input.shape.dims.iter().map(u64::to_string)).collect();
    let params: Vec<String> = graph.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut py = String::new();
    let w = &mut py;
    let _ = writeln!(
        w,
        r#""""The network `{}` ({}) from {source}, as a PyTorch module.

Written by `nnc emit --target pytorch`. Its state_dict keys and shapes are nnc's parameter
names, so a checkpoint of `nnc train` loads with `load_nnc_checkpoint`, and the
`save_file(model.state_dict(), ...)` of a model trained here loads into nnc (`--weights`).
"""

import torch
from torch import nn
from torch.nn import functional as F

INPUT_SHAPE = ({})  # -1 is the batch
PARAMETERS = {}


def _attach(root, path, module):
    """Registers `module` at a dotted path (`b3.0.conv1`), creating containers on the way,
    so that its parameters get exactly that name in the state_dict."""
    *parents, last = path.split(".")
    for name in parents:
        if name not in root._modules:
            root.add_module(name, nn.Module())
        root = root._modules[name]
    root.add_module(last, module)
    return module


class {class}(nn.Module):
    def __init__(self):
        super().__init__()
        # The layers that are modules, by nnc name; a plain dict, so they are registered once,
        # by _attach, under their own names.
        self.layers_ = {{}}"#,
        graph.name,
        params.join(", "),
        dims.join(", "),
        graph.total_params()
    );
    for node in graph.nodes.iter().skip(1) {
        if let PyTorch::Module(m) = node.op.layer().pytorch(&inputs(node)) {
            let _ =
                writeln!(w, "        self.layers_[{:?}] = _attach(self, {:?}, {m})", node.name, node.name);
        }
    }
    let _ = writeln!(w, "\n    def forward(self, x0):");
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let xs = inputs(node);
        let _ = writeln!(
            w,
            "        x{i} = {}  # {}: {}, {}",
            expression(&node.op, &node.name, &xs),
            node.name,
            node.op,
            node.shape
        );
    }
    let _ = writeln!(
        w,
        r#"        return x{}


def load_nnc_checkpoint(model, path):
    """Loads weights or a training checkpoint written by nnc (safetensors), strictly."""
    from safetensors.torch import load_file

    state = {{k: v for k, v in load_file(path).items() if not k.startswith(("optim.", "nnc."))}}
    model.load_state_dict(state, strict=True)
    return model


if __name__ == "__main__":
    net = {class}()
    count = sum(p.numel() for p in net.parameters())
    assert count == PARAMETERS, f"{{count}} parameters, nnc counted {{PARAMETERS}}"
    x = torch.randn(2, *INPUT_SHAPE[1:])
    print(f"{class}: {{count}} parameters, output {{tuple(net.eval()(x).shape)}} for input {{tuple(x.shape)}}")"#,
        graph.output.0
    );
    py
}
