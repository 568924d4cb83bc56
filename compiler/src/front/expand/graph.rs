//! Building the graph and naming its layers: adding nodes, joining tensors (`a + b`, `cat`),
//! the dotted paths that become PyTorch parameter names, and the checks and notes that read
//! the graph built so far.

use nnc_grammar::ast::{Expr, ExprKind, Label, Stmt};
use nnc_grammar::Span;

use super::{Expander, Scope};
use crate::front::load::RESERVED;
use crate::front::messages::{op_diagnostic, with_first_input, Error};
use crate::front::value::Value;
use crate::ir::{Node, NodeId, Op};
use crate::ops::{self, arith, join, matmul, ArithOp, SizeOrigin};
use crate::shape::{Batch, DType, Shape};
use crate::source::Loc;

impl Expander<'_> {
    /// Layer names become parameter names, so they must be unique; and a layer that is a
    /// module cannot also be the parent of other layers' names (a PyTorch `nn.Linear` has no
    /// children), which joins, spelt as expressions, may be.
    pub(super) fn check_unique_names(&mut self) {
        let mut seen: foldhash::HashMap<&str, usize> = foldhash::HashMap::default();
        let mut dups = Vec::new();
        // A shared layer applied again has its first application's name, as it is that layer.
        for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.shares.is_none()) {
            if let Some(&first) = seen.get(node.name.as_str()) {
                dups.push((first, i));
            } else {
                seen.insert(&node.name, i);
            }
        }
        let mut parents = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let parent = node.name.match_indices('.').find_map(|(at, _)| {
                let &p = seen.get(&node.name[..at])?;
                // An input is no module (and has no inputs to write one with): `input x`, then
                // `x = relu -> relu`, names layers `x.0` and `x.1`, and `x` is already defined.
                if matches!(self.nodes[p].op, Op::Input(_)) {
                    return None;
                }
                let inputs: Vec<String> = self.nodes[p].inputs.iter().map(|x| x.0.to_string()).collect();
                let leaf = self.nodes[p].op.layer().pytorch(&inputs);
                matches!(leaf, ops::PyTorch::Module(_) | ops::PyTorch::Parameter(_)).then_some(p)
            });
            // One report per parent, naming its first child.
            if let Some(p) = parent.filter(|p| !parents.iter().any(|(q, _)| q == p)) {
                parents.push((p, i));
            }
        }
        for (first, second) in dups {
            let (a, b) = (&self.nodes[first], &self.nodes[second]);
            self.diags.push(Error::DuplicateLayer { name: &b.name, at: b.loc, first: a.loc }.into());
        }
        for (parent, child) in parents {
            let (a, b) = (&self.nodes[parent], &self.nodes[child]);
            let error = Error::LayerAsParent { name: &a.name, child: &b.name, at: a.loc, child_at: b.loc };
            self.diags.push(error.into());
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
        self.nodes.push(Node { name, op, inputs, shape, params, macs, shares: None, ties: Vec::new(), loc });
        Value::Tensor(NodeId(self.nodes.len() - 1))
    }

    /// How a spatial size came to be: the window layers that shaped it, oldest first, each
    /// with its arithmetic (`14 = (28 + 2·0 − 2) / 2 + 1`).
    pub(super) fn size_history(&self, mut id: NodeId, axis: usize) -> String {
        const MAX_STEPS: usize = 6;
        let spatial = self.nodes[id.0].shape.dims.len().saturating_sub(1);
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
                // Past the steps shown, a layer that shaped the size is left out, and the first
                // line says so.
                SizeOrigin::Window(_) | SizeOrigin::Set(_) if steps.len() == MAX_STEPS => {
                    steps.push("… (earlier layers)".into());
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
            if last {
                break;
            }
            id = node.inputs[0];
        }
        steps.reverse();
        let (axis_name, _) = ops::spatial_axis(spatial, axis);
        format!("how the {axis_name} got here:\n  {}", steps.join("\n  "))
    }

    /// The node that gave `id` its rank: the nearest one upstream whose rank differs from its
    /// (first) input's, such as a `flatten`, or else the network's input.
    pub(super) fn rank_origin(&self, mut id: NodeId) -> NodeId {
        loop {
            let node = &self.nodes[id.0];
            match node.inputs.first() {
                Some(&from) if self.nodes[from.0].shape.rank() == node.shape.rank() => id = from,
                _ => return id,
            }
        }
    }

    /// Whether `id` has a batch; a declared `param` has none, and is reported as the input of
    /// `what` (`layer `conv2d``), which needs one.
    pub(super) fn batched(&mut self, id: NodeId, what: impl FnOnce() -> String, at: Loc) -> bool {
        let shape = &self.nodes[id.0].shape;
        if shape.batch != Batch::None {
            return true;
        }
        let shape = shape.clone();
        self.error(Error::ParamAsInput { what: what(), shape: &shape, at });
        false
    }

    /// Whether `id` holds elements of type `takes`, as `what` (`layer `linear``) needs; the
    /// one check of element types, which every layer, join, slice and output goes through.
    pub(super) fn typed(&mut self, id: NodeId, takes: DType, what: impl FnOnce() -> String, at: Loc) -> bool {
        let node = &self.nodes[id.0];
        if node.shape.dtype == takes {
            return true;
        }
        let (shape, origin, name) = (node.shape.clone(), node.loc, node.name.clone());
        let is_input = matches!(node.op, Op::Input(_));
        let origin = (origin, name.as_str(), is_input);
        self.error(Error::ElementType { what: what(), takes, shape: &shape, at, origin });
        false
    }

    /// `a op b` (broadcast) or `cat(a, b, dim=1)`.
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
        // A `param` whose first size is 1 joins a `cat` repeated along the batch of the other
        // inputs, as ViT's class token is expanded (`class_token.expand(n, -1, -1)`); it
        // has the batched inputs' rank, its leading 1 standing for the batch.
        let batch = ids
            .iter()
            .map(|id| &self.nodes[id.0].shape)
            .find(|s| s.batch != Batch::None)
            .map(|s| s.batch.clone());
        let mut expand = vec![false; ids.len()];
        let mut expanded: Vec<Shape> = Vec::with_capacity(ids.len());
        for (k, (&id, (_, span))) in ids.iter().zip(&inputs).enumerate() {
            let shape = self.nodes[id.0].shape.clone();
            match (&join, &batch) {
                (Join::Concat(_), Some(batch))
                    if shape.batch == Batch::None && shape.dims.first() == Some(&1) =>
                {
                    expand[k] = true;
                    expanded.push(Shape {
                        batch: batch.clone(),
                        dims: shape.dims[1..].to_vec(),
                        dtype: shape.dtype,
                    });
                }
                _ => {
                    let what = if matches!(join, Join::Concat(_)) { "`cat`" } else { "`stack`" };
                    // Arithmetic and `matmul` take a `param`, broadcast.
                    if matches!(join, Join::Concat(_) | Join::Stack(_) | Join::Attention { .. })
                        && !self.batched(id, || what.to_string(), Loc::new(scope.file, *span))
                    {
                        return Value::Poison;
                    }
                    expanded.push(shape);
                }
            }
        }
        let what = match join {
            Join::Arith(_) => "arithmetic",
            Join::Concat(_) => "`cat`",
            Join::Stack(_) => "`stack`",
            Join::Matmul => "`matmul`",
            Join::Einsum(_) => "`einsum`",
            Join::Attention { .. } => "`scaled_dot_product_attention`",
        };
        for (k, (&id, (_, span))) in ids.iter().zip(&inputs).enumerate() {
            // Attention's fourth tensor is its mask, which is bool.
            let (takes, what) = match join {
                Join::Attention { masked: true, .. } if k == 3 => (DType::Bool, "an attention's `mask`"),
                _ => (DType::Float, what),
            };
            if !self.typed(id, takes, || what.to_string(), Loc::new(scope.file, *span)) {
                return Value::Poison;
            }
        }
        let shapes: Vec<&Shape> = expanded.iter().collect();
        let (result, name) = match join {
            Join::Arith(op) => (
                arith::broadcast(op, shapes[0], shapes[1])
                    .map(|shape| (shape, Op::Arith(ops::Arith { op }), 0))
                    .map_err(|err| (1, err)),
                op.name(),
            ),
            Join::Einsum(ref equation) => (
                matmul::einsum(equation, &shapes).map(|(shape, macs)| {
                    (shape, Op::Einsum(ops::Einsum { equation: equation.clone().into() }), macs)
                }),
                "einsum",
            ),
            Join::Matmul => (
                matmul::matmul(shapes[0], shapes[1])
                    .map(|(shape, macs)| (shape, Op::Matmul(ops::Matmul), macs)),
                "matmul",
            ),
            Join::Attention { is_causal, scale, masked } => (
                matmul::attention(shapes[0], shapes[1], shapes[2], shapes.get(3).copied()).map(
                    |(shape, macs)| (shape, Op::Attention(ops::Attention { is_causal, scale, masked }), macs),
                ),
                "attention",
            ),
            Join::Concat(dim) => (
                join::concat(&shapes, dim).map(|(shape, dim)| {
                    (shape, Op::Concat(ops::Concat { dim, expand: expand.clone().into() }), 0)
                }),
                "cat",
            ),
            Join::Stack(dim) => (
                join::stack(&shapes, dim).map(|(shape, dim)| (shape, Op::Stack(ops::Stack { dim }), 0)),
                "stack",
            ),
        };
        match result {
            Ok((shape, op, macs)) => {
                let name = if path.is_empty() { name.to_string() } else { path.to_string() };
                self.add_node(name, op, ids, shape, 0, macs, loc)
            }
            // The error blames input `i`, or the call where there is no such input (an
            // `einsum` equation's mistake).
            Err((i, err)) => {
                let at = inputs.get(i).map_or(loc, |(_, span)| Loc::new(scope.file, *span));
                let mut d = op_diagnostic(err, at, None);
                if i > 0 && i < inputs.len() {
                    let first = &self.nodes[ids[0].0].shape;
                    d = with_first_input(d, Loc::new(scope.file, inputs[0].1), first);
                }
                let d = self.show_free_sizes(d, &ids);
                self.error(d)
            }
        }
    }
}

/// `path.segment`, or `segment` at the top.
pub(super) fn child(path: &str, segment: impl std::fmt::Display) -> String {
    use std::fmt::Write;
    // Made for every layer and statement: one allocation, sized for a short segment, rather
    // than `format!`'s estimate and growth.
    let mut out = String::with_capacity(path.len() + 16);
    if !path.is_empty() {
        out.push_str(path);
        out.push('.');
    }
    let _ = write!(out, "{segment}");
    out
}

/// How the layers of a chain are named: `path` alone for a single layer, else `path.0`,
/// `path.1`, ... in order, as `nn.Sequential` numbers its children.
pub(super) struct Seq {
    pub(super) path: String,
    pub(super) next: usize,
    pub(super) indexed: bool,
}

impl Seq {
    pub(super) fn new(path: &str, stages: &[(Option<&Label>, &Expr)], scope: &Scope) -> Seq {
        let layers = stages.iter().filter(|(_, e)| !refers(e, scope)).count();
        let repeats = stages.iter().any(|(_, e)| matches!(e.kind, ExprKind::Repeat { .. }));
        Seq { path: path.to_string(), next: 0, indexed: layers > 1 || repeats }
    }

    /// The sequence the unbound statements of a body share: numbered if they make more than
    /// one layer, or repeat. Otherwise the lone layer takes the body's name (the block's, or
    /// at a network's top its op's, `conv2d`), except where that would clash: a network's
    /// lone block call is numbered (`0.conv1`) rather than spilling the block's names into
    /// the top level, and a block with bindings numbers it, as they may make layers of their
    /// own, under the name the lone layer would take.
    pub(super) fn body(path: &str, body: &[Stmt], scope: &Scope, network: bool) -> Seq {
        let bound: foldhash::HashSet<&str> = body
            .iter()
            .flat_map(|s| match s {
                Stmt::Bind { name, .. } | Stmt::Param { name, .. } | Stmt::Input { name: Some(name), .. } => {
                    std::slice::from_ref(name)
                }
                Stmt::Destructure { names, .. } => &names[..],
                Stmt::Shared { name, .. } => std::slice::from_ref(name),
                _ => &[],
            })
            .map(|name| name.name.as_str())
            .collect();
        let is_layer = |e: &Expr| match &e.kind {
            ExprKind::Name(n) => !bound.contains(n.as_str()) && !refers(e, scope),
            _ => !refers(e, scope),
        };
        let calls_block = |e: &Expr| match &e.kind {
            ExprKind::Call { callee, .. } => {
                ops::lookup(&callee.name).is_none() && !RESERVED.contains(&callee.name.as_str())
            }
            ExprKind::Name(n) => is_layer(e) && ops::lookup(n).is_none(),
            _ => false,
        };
        let (mut layers, mut repeats, mut blocks) = (0, false, false);
        for stmt in body {
            if let Stmt::Expr(e) = stmt {
                let stages: Vec<&Expr> = match &e.kind {
                    ExprKind::Chain(stages) => stages.iter().map(|s| &s.expr).collect(),
                    _ => vec![e],
                };
                layers += stages.iter().filter(|e| is_layer(e)).count();
                repeats |= stages.iter().any(|e| matches!(e.kind, ExprKind::Repeat { .. }));
                blocks |= stages.iter().any(|e| calls_block(e));
            }
        }
        let clash = if network { blocks } else { !bound.is_empty() };
        Seq { path: path.to_string(), next: 0, indexed: layers > 1 || repeats || clash }
    }
}

/// How `join` combines its tensors.
pub(super) enum Join {
    /// Two tensors, broadcast.
    Arith(ArithOp),
    /// Along `dim` as written: negative counts from the end, and the shape rule checks it.
    Concat(i64),
    /// Along a new dimension `dim`, as written.
    Stack(i64),
    /// `matmul(a, b)`.
    Matmul,
    /// `einsum(equation, operands...)`.
    Einsum(String),
    /// `scaled_dot_product_attention(q, k, v)`, with a fourth tensor, a bool mask, if `masked`.
    Attention { is_causal: bool, scale: Option<f64>, masked: bool },
}

/// Whether `e` only names an existing value (`in`, a bound tensor), creating no layer; layer
/// numbering in chains skips such stages. A bare layer name (`relu`) is not a reference.
pub(super) fn refers(e: &Expr, scope: &Scope) -> bool {
    match &e.kind {
        ExprKind::Input | ExprKind::Flow => true,
        ExprKind::Name(n) => scope.vars.contains_key(n),
        _ => false,
    }
}
