//! Building the graph and naming its layers: adding nodes, joining tensors (`a + b`, `cat`),
//! the dotted paths that become PyTorch parameter names, and the checks and notes that read
//! the graph built so far.

use std::collections::HashMap;

use nnc_grammar::ast::{Expr, ExprKind, Ident};
use nnc_grammar::Span;

use super::{Expander, Scope};
use crate::front::messages::{op_diagnostic, with_first_input, Error};
use crate::front::value::Value;
use crate::ir::{Node, NodeId, Op};
use crate::ops::{self, join, SizeOrigin};
use crate::shape::Shape;
use crate::source::Loc;

impl Expander<'_> {
    /// Layer names become parameter names, so they must be unique.
    pub(super) fn check_unique_names(&mut self) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut dups = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(&first) = seen.get(node.name.as_str()) {
                dups.push((first, i));
            } else {
                seen.insert(&node.name, i);
            }
        }
        for (first, second) in dups {
            let (a, b) = (&self.nodes[first], &self.nodes[second]);
            self.diags.push(Error::DuplicateLayer { name: &b.name, at: b.loc, first: a.loc }.into());
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_node(
        &mut self,
        name: String,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Shape,
        params: u64,
        macs: u64,
        loc: Loc,
    ) -> Value {
        if self.nodes.len() >= self.limits.max_nodes {
            return self.limit(Error::TooManyNodes { max: self.limits.max_nodes, at: loc });
        }
        // Refused here, where the layer is, rather than saturated or wrapped later in the
        // report's totals or in the runtime's i64 sizes.
        if !shape.fits() {
            return self.error(Error::TensorTooLarge { shape: &shape, at: loc });
        }
        self.nodes.push(Node { name, op, inputs, shape, params, macs, loc });
        Value::Tensor(NodeId(self.nodes.len() - 1))
    }

    /// How a spatial size came to be: the window layers that shaped it, oldest first, each
    /// with its arithmetic (`14 = (28 + 2·0 − 2) / 2 + 1`).
    pub(super) fn size_history(&self, mut id: NodeId, axis: usize) -> String {
        const MAX_STEPS: usize = 6;
        let mut steps = Vec::new();
        loop {
            let node = &self.nodes[id.0];
            let size = node.shape.dims.get(1 + axis).copied().unwrap_or(0);
            let input = node.inputs.first().map(|i| &self.nodes[i.0].shape);
            let input_size = input.and_then(|s| s.dims.get(1 + axis).copied()).unwrap_or(0);
            let (step, last) = match node.op.layer().size_origin(axis, input_size) {
                SizeOrigin::Input => {
                    steps.push(format!("{size} at the input"));
                    break;
                }
                SizeOrigin::Window(window) => (window.derivation(), false),
                SizeOrigin::Set(how) => (format!("{size} {how}"), true),
                SizeOrigin::Lost => break,
                SizeOrigin::Kept => {
                    id = node.inputs[0];
                    continue;
                }
            };
            steps.push(format!("{step}  (layer `{}`)", node.name));
            if steps.len() == MAX_STEPS || last {
                break;
            }
            id = node.inputs[0];
        }
        steps.reverse();
        let axis_name = if axis == 0 { "height" } else { "width" };
        format!("how the {axis_name} got here:\n  {}", steps.join("\n  "))
    }

    /// The node that gave `id` its rank: the nearest one upstream whose rank differs from its
    /// (first) input's, such as a `flatten`, or else the network's input.
    pub(super) fn rank_origin(&self, mut id: NodeId) -> &Node {
        loop {
            let node = &self.nodes[id.0];
            match node.inputs.first() {
                Some(&from) if self.nodes[from.0].shape.rank() == node.shape.rank() => id = from,
                _ => return node,
            }
        }
    }

    /// `a + b` (all shapes equal) or `cat(a, b, dim=1)`.
    pub(super) fn join(
        &mut self,
        join: Join,
        inputs: Vec<(Value, Span)>,
        loc: Loc,
        scope: &Scope,
        path: &str,
    ) -> Value {
        let mut ids = Vec::new();
        for (value, span) in &inputs {
            match value {
                Value::Tensor(id) => ids.push(*id),
                Value::Poison => return Value::Poison,
                other => {
                    let found = self.found(other);
                    return self.error(Error::NotTensor { found, at: Loc::new(scope.file, *span) });
                }
            }
        }
        let shapes: Vec<&Shape> = ids.iter().map(|id| &self.nodes[id.0].shape).collect();
        let (result, name) = match join {
            Join::Add => (join::add(&shapes).map(|shape| (shape, Op::Add(ops::Add))), "add"),
            Join::Concat(dim) => (
                join::concat(&shapes, dim).map(|(shape, dim)| (shape, Op::Concat(ops::Concat { dim }))),
                "cat",
            ),
        };
        match result {
            Ok((shape, op)) => {
                let name = if path.is_empty() { name.to_string() } else { path.to_string() };
                self.add_node(name, op, ids, shape, 0, 0, loc)
            }
            Err((i, err)) => {
                let at = Loc::new(scope.file, inputs[i].1);
                let mut d = op_diagnostic(err, at, None);
                if i > 0 {
                    let first = &self.nodes[ids[0].0].shape;
                    d = with_first_input(d, Loc::new(scope.file, inputs[0].1), first);
                }
                self.error(d)
            }
        }
    }
}

/// `path.segment`, or `segment` at the top.
pub(super) fn child(path: &str, segment: impl std::fmt::Display) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}.{segment}")
    }
}

/// How the layers of a chain are named: `path` alone for a single layer, else `path.0`,
/// `path.1`, ... in order, as `nn.Sequential` numbers its children.
pub(super) struct Seq {
    pub(super) path: String,
    pub(super) next: usize,
    pub(super) indexed: bool,
}

impl Seq {
    pub(super) fn new(path: &str, stages: &[(Option<&Ident>, &Expr)], scope: &Scope) -> Seq {
        let layers = stages.iter().filter(|(_, e)| !refers(e, scope)).count();
        let repeats = stages.iter().any(|(_, e)| matches!(e.kind, ExprKind::Repeat { .. }));
        Seq { path: path.to_string(), next: 0, indexed: layers > 1 || repeats }
    }
}

/// How `join` combines its tensors.
pub(super) enum Join {
    Add,
    /// Along `dim` as written: negative counts from the end, and the shape rule checks it.
    Concat(i64),
}

/// Whether `e` only names an existing value (`in`, a bound tensor), creating no layer; layer
/// numbering in chains skips such stages. A bare layer name (`relu`) is not a reference.
pub(super) fn refers(e: &Expr, scope: &Scope) -> bool {
    match &e.kind {
        ExprKind::Input => true,
        ExprKind::Name(n) => scope.vars.contains_key(n),
        _ => false,
    }
}
