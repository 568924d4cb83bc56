//! The PyTorch back end: an IR graph as a self-contained `nn.Module` source file whose
//! `state_dict` keys and shapes are nnc's parameter names, so that an nnc checkpoint loads
//! into it with `load_state_dict(strict=True)` and computes the same outputs.

use std::fmt::Write;

use crate::ir::{Activation, Graph, Op};
use crate::shape::Batch;

fn pair(v: [u64; 2]) -> String {
    format!("({}, {})", v[0], v[1])
}

/// A Python float literal.
fn float(v: f64) -> String {
    format!("{v:?}")
}

fn py_bool(v: bool) -> &'static str {
    if v {
        "True"
    } else {
        "False"
    }
}

/// The `nn.Module` that holds a layer's parameters, for the layers that have some.
fn module(op: &Op) -> Option<String> {
    match op {
        Op::Conv2d(c) => Some(format!(
            "nn.Conv2d({}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={})",
            c.in_channels,
            c.out_channels,
            pair(c.kernel),
            pair(c.stride),
            pair(c.padding),
            pair(c.dilation),
            c.groups,
            py_bool(c.bias)
        )),
        Op::Linear { in_features, out_features, bias } => {
            Some(format!("nn.Linear({in_features}, {out_features}, bias={})", py_bool(*bias)))
        }
        Op::BatchNorm { features, eps, momentum, rank } => {
            let kind = if *rank == 4 { "BatchNorm2d" } else { "BatchNorm1d" };
            Some(format!("nn.{kind}({features}, eps={}, momentum={})", float(*eps), float(*momentum)))
        }
        _ => None,
    }
}

/// The expression computing a node from its inputs `xs`.
fn expression(op: &Op, name: &str, xs: &[String]) -> String {
    let x = xs.first().cloned().unwrap_or_default();
    match op {
        Op::Input => x,
        Op::Conv2d(_) | Op::Linear { .. } | Op::BatchNorm { .. } => format!("self.layers_[{name:?}]({x})"),
        Op::MaxPool2d(p) => format!(
            "F.max_pool2d({x}, {}, {}, {}, {}, {})",
            pair(p.kernel),
            pair(p.stride),
            pair(p.padding),
            pair(p.dilation),
            py_bool(p.ceil_mode)
        ),
        Op::AvgPool2d(p) => format!(
            "F.avg_pool2d({x}, {}, {}, {}, {}, {})",
            pair(p.kernel),
            pair(p.stride),
            pair(p.padding),
            py_bool(p.ceil_mode),
            py_bool(p.count_include_pad)
        ),
        Op::AdaptiveAvgPool2d { output } => format!("F.adaptive_avg_pool2d({x}, {})", pair(*output)),
        Op::Activation { function: Activation::Relu } => format!("F.relu({x})"),
        Op::Activation { function: Activation::Sigmoid } => format!("torch.sigmoid({x})"),
        Op::Activation { function: Activation::Tanh } => format!("torch.tanh({x})"),
        Op::Activation { function: Activation::Gelu } => format!("F.gelu({x})"),
        Op::Softmax { dim } => format!("F.softmax({x}, dim={dim})"),
        Op::Dropout { p } => format!("F.dropout({x}, {}, self.training)", float(*p)),
        Op::Flatten { start, end } => format!("torch.flatten({x}, {start}, {end})"),
        Op::Identity => x,
        Op::Add => xs.join(" + "),
        Op::Concat { dim } => format!("torch.cat([{}], dim={dim})", xs.join(", ")),
    }
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
        # The layers with parameters, by nnc name; a plain dict, so they are registered once,
        # by _attach, under their own names.
        self.layers_ = {{}}"#,
        graph.name,
        params.join(", "),
        dims.join(", "),
        graph.total_params()
    );
    for node in &graph.nodes {
        if let Some(m) = module(&node.op) {
            let _ =
                writeln!(w, "        self.layers_[{:?}] = _attach(self, {:?}, {m})", node.name, node.name);
        }
    }
    let _ = writeln!(w, "\n    def forward(self, x0):");
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let xs: Vec<String> = node.inputs.iter().map(|id| format!("x{}", id.0)).collect();
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
