//! Parameters used in more than one place: `shared` layers, applied wherever their name is a
//! stage, and `tie`, which makes one layer's tensor another's.
//!
//! A shared layer is a module called several times in PyTorch: each application is a node of
//! its own (the graph is a data-flow graph), named as the first, whose tensors it uses
//! (`Node::shares`). Its declaration is evaluated again at each application, in the scope it
//! was declared in, so that sizes are inferred from the tensor it is applied to; an
//! application that would build other layers, or the same ones with other sizes, is an error.

use nnc_grammar::ast::{Expr, Ident};

use super::graph::child;
use super::{Expander, Scope};
use crate::diagnostic::did_you_mean;
use crate::front::messages::{Applied, Error};
use crate::front::value::Value;
use crate::ir::{NodeId, Tie};
use crate::source::Loc;

/// A `shared name = value` declaration.
pub(super) struct SharedLayer {
    value: Expr,
    /// The names visible where it was declared, in which every application evaluates it.
    scope: Scope,
    /// Where its layers are named: the declaration's name under its body's path.
    path: String,
    /// The declared name, where each application is traced too, so that the editor's hover
    /// on it shows what the layer was applied to and gave.
    name_at: Loc,
    /// The first application: the nodes it made, the tensor it was applied to, and where.
    first: Option<(Vec<NodeId>, NodeId, Loc)>,
}

impl Expander<'_> {
    /// `shared name = value`: binds `name` to the layer, which is built where first applied.
    pub(super) fn declare_shared(&mut self, name: &Ident, value: &Expr, scope: &mut Scope, path: &str) {
        let path = child(path, &name.name);
        let mut captured = scope.clone();
        captured.stage_input = None;
        captured.label_prefix = path.clone();
        let name_at = Loc::new(scope.file, name.span);
        self.shared.push(SharedLayer { value: value.clone(), scope: captured, path, name_at, first: None });
        let index = self.shared.len() - 1;
        self.bind(scope, name, Value::Shared(name.name.clone(), index));
    }

    /// Applies the shared layer `index` to the tensor `flow`: builds it, the first time, and
    /// after that checks that it builds the same layers, which then use the first's tensors.
    pub(super) fn apply_shared(
        &mut self,
        name: &str,
        index: usize,
        loc: Loc,
        scope: &mut Scope,
        flow: &Value,
    ) -> Value {
        let input = match flow {
            Value::Tensor(id) => *id,
            Value::Poison => return Value::Poison,
            _ => return self.error(Error::LayerNeedsInput { layer: name, at: loc }),
        };
        let decl = &self.shared[index];
        let (value, path, name_at) = (decl.value.clone(), decl.path.clone(), decl.name_at);
        let mut inner = decl.scope.clone();
        inner.stage_input = Some(flow.clone());
        let before = self.nodes.len();
        let result = self.eval(&value, &mut inner, Some(flow), &path);
        // Reads of the declaring block's parameters count where the layer is applied, which is
        // inside that block.
        for (param, read) in inner.params_read.iter().filter(|(_, read)| *read) {
            if let Some(entry) = scope.params_read.iter_mut().find(|(p, _)| p == param) {
                entry.1 = *read;
            }
        }
        self.trace(name_at, Some(flow), &result, before);
        let made: Vec<NodeId> = (before..self.nodes.len()).map(NodeId).collect();
        if matches!(result, Value::Poison) {
            return result;
        }
        let Some((first, first_input, first_at)) = self.shared[index].first.clone() else {
            self.shared[index].first = Some((made, input, loc));
            return result;
        };
        // The same declaration builds its layers in the same order each time, so the k-th
        // layer made here is the first application's k-th, whose tensors it takes: those of
        // the node that layer itself shares, if it applies another shared layer again.
        let root = |e: &Self, id: NodeId| e.nodes[id.0].shares.unwrap_or(id);
        // A refused application's layers still point at the first's, where there is one, so
        // that their names are not reported again as duplicates.
        let refuse = |e: &mut Self, error: Error| {
            for (k, id) in made.iter().enumerate() {
                let same_name = || first.iter().find(|f| e.nodes[f.0].name == e.nodes[id.0].name);
                e.nodes[id.0].shares = first.get(k).or_else(same_name).map(|&f| root(e, f));
            }
            e.error(error)
        };
        for k in 0..made.len().max(first.len()) {
            let (Some(&id), Some(&owner)) = (made.get(k), first.get(k)) else {
                // One application built more layers than the other.
                let extra = made.get(k).or(first.get(k)).expect("one of them is longer");
                let layer = self.nodes[extra.0].name.clone();
                return refuse(
                    self,
                    Error::SharedStructure { name, layer: &layer, at: loc, first: first_at },
                );
            };
            let (node, first_node) = (&self.nodes[id.0], &self.nodes[owner.0]);
            if node.name != first_node.name {
                let layer = node.name.clone();
                return refuse(
                    self,
                    Error::SharedStructure { name, layer: &layer, at: loc, first: first_at },
                );
            }
            if first_node.op != node.op {
                let (layer, op, first_op) =
                    (node.name.clone(), node.op.to_string(), first_node.op.to_string());
                let input = self.nodes[input.0].shape.clone();
                let first_input = self.nodes[first_input.0].shape.clone();
                let here = Applied { op, input: &input, at: loc };
                let first = Applied { op: first_op, input: &first_input, at: first_at };
                return refuse(self, Error::SharedMismatch { name, layer: &layer, here, first });
            }
        }
        for (&id, &owner) in made.iter().zip(&first) {
            let owner = root(self, owner);
            let node = &mut self.nodes[id.0];
            node.shares = Some(owner);
            node.params = 0;
        }
        result
    }

    /// `tie a.weight = b.weight`: the layer `a`'s tensor becomes `b`'s, both named relative to
    /// the body at `path`.
    pub(super) fn tie(&mut self, tensor: &Ident, to: &Ident, scope: &Scope, path: &str) {
        let Some((node, spec)) = self.tied_tensor(tensor, scope, path) else { return };
        let Some((owner, owner_spec)) = self.tied_tensor(to, scope, path) else { return };
        let at = Loc::new(scope.file, tensor.span);
        let already = self.tie_locs.iter().find(|(n, t, _)| *n == node && *t == spec).map(|(_, _, at)| *at);
        // A tie to a tensor that is itself tied is a tie to the tensor it stands for.
        let (owner, owner_spec) = match self.nodes[owner.0].ties.iter().find(|t| t.tensor == owner_spec) {
            Some(t) => (t.to, t.to_tensor.clone()),
            None => (owner, owner_spec),
        };
        if already.is_some() || (node == owner && spec == owner_spec) {
            self.error(Error::TieAgain { tensor: &tensor.name, at, first: already });
            return;
        }
        let dims = |e: &Self, id: NodeId, name: &str| {
            e.nodes[id.0].op.layer().tensors().into_iter().find(|t| t.name == name).map(|t| t.dims.to_vec())
        };
        let (a, b) = (dims(self, node, &spec), dims(self, owner, &owner_spec));
        if a != b {
            let show = |d: Option<Vec<u64>>| format!("{:?}", d.unwrap_or_default());
            let (dims, to_dims) = (show(a), show(b));
            self.error(Error::TieShape { tensor: &tensor.name, dims, to: &to.name, to_dims, at });
            return;
        }
        let elements: u64 = a.unwrap_or_default().iter().product();
        // Ties made before to this tensor now go to the one it stands for, so that every tie
        // names a tensor that is created (`tie a.weight = b.weight`, then `tie b.weight =
        // c.weight`: `a`'s is `c`'s).
        for other in &mut self.nodes {
            for earlier in other.ties.iter_mut().filter(|t| t.to == node && t.to_tensor == spec) {
                (earlier.to, earlier.to_tensor) = (owner, owner_spec.clone());
            }
        }
        let node_id = node;
        let node = &mut self.nodes[node.0];
        node.params = node.params.saturating_sub(elements);
        node.ties.push(Tie { tensor: spec.clone(), to: owner, to_tensor: owner_spec });
        self.tie_locs.push((node_id, spec, at));
    }

    /// The layer and trained tensor that `layer.tensor` names under `path` (a submodule's
    /// tensor is `layer.out_proj.weight`), or an error.
    fn tied_tensor(&mut self, written: &Ident, scope: &Scope, path: &str) -> Option<(NodeId, String)> {
        let at = Loc::new(scope.file, written.span);
        let full = child(path, &written.name);
        // The longest prefix that is a layer's name: the rest names its tensor.
        let found = full.match_indices('.').rev().find_map(|(dot, _)| {
            let layer = &full[..dot];
            let id = self.nodes.iter().position(|n| n.name == layer && n.shares.is_none())?;
            Some((NodeId(id), full[dot + 1..].to_string()))
        });
        let Some((id, tensor)) = found else {
            // A layer under a statement that failed was never made: that error says it.
            let unmade = |p: &String| full.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('.'));
            if self.poisoned.iter().any(unmade) {
                return None;
            }
            let layer = written.name.rsplit_once('.').map_or(written.name.as_str(), |(l, _)| l);
            let prefix = child(path, "");
            let names = self.nodes.iter().filter_map(|n| n.name.strip_prefix(prefix.as_str()));
            let hint = did_you_mean(layer, names);
            self.error(Error::TieUnknownLayer { layer, at, hint });
            return None;
        };
        let node = &self.nodes[id.0];
        let trained: Vec<String> =
            node.op.layer().tensors().into_iter().filter(|t| t.trained).map(|t| t.name.to_string()).collect();
        if !trained.contains(&tensor) {
            let layer = node.name.clone();
            let op = node.op.to_string();
            let has = trained.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
            self.error(Error::TieUnknownTensor { layer: &layer, tensor: &tensor, op, has, at });
            return None;
        }
        Some((id, tensor))
    }
}
