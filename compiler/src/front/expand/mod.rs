//! Expansion: evaluates a network's body (block calls, repeats, conditionals, arithmetic) and
//! infers every shape on the way, producing the IR graph.
//!
//! Every expression is evaluated with the tensor that flows into it: a layer or block call
//! applies to that tensor, a name refers to a value, and `a -> b` feeds `a`'s result to `b`.
//! Errors are collected, not thrown: a failed expression yields [`Value::Poison`], which
//! silences everything computed from it, so independent mistakes are all reported once.
//!
//! This file is the driver: the expander's state, its entry points, and the walk over
//! statements, expressions, chains and repeats. One `impl Expander` is split by concern across
//! `eval` (plain values), `graph` (nodes and their names) and `call` (layers and blocks); the
//! words of every error are in `front::messages`.

mod call;
mod eval;
mod graph;
pub(crate) mod lints;
mod share;

use std::borrow::Cow;
use std::collections::HashMap;

use nnc_grammar::ast::{
    Access, Definition, ElemType, Expr, ExprKind, Ident, Label, LabelPart, OutputItem, RepeatCount, Stmt,
};
use nnc_grammar::Span;

use self::graph::{child, refers, Seq};
use super::load::Program;
use super::messages::{expanded_from, Error, Lint};
use super::value::Value;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::free::{FreeName, FreeSizes};
use crate::ir::{Graph, Group, Node, NodeId, Op, Output};
use crate::ops::{InitRule, MAX_TENSOR_RANK};
use crate::shape::{Batch, DType, Shape};
use crate::source::{FileId, Loc};
use crate::trace::{Expansion, Traced};

/// Bounds that keep hostile input from exhausting time or memory. Each error that hits one
/// names the limit.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Nodes in one expanded network.
    pub max_nodes: usize,
    /// Iterations of one `repeat`.
    pub max_repeat: u64,
    /// Block calls nested inside each other.
    pub max_call_depth: usize,
    /// Expressions evaluated for one network.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_nodes: crate::MAX_LAYERS, max_repeat: 10_000, max_call_depth: 64, max_steps: 5_000_000 }
    }
}

/// Recursion in the evaluator follows bracket nesting and block calls, both bounded; the stack
/// is grown on demand so that the bound, not the thread's stack size, is what decides.
const RED_ZONE: usize = 128 << 10;
const STACK_GROWTH: usize = 4 << 20;

/// A level of expansion, for the "how did we get here" part of a diagnostic.
pub(super) enum Frame {
    Call { block: String, instance: String, at: Loc },
    Repeat { iteration: u64, count: u64, index: Option<(String, i64)>, at: Loc },
}

/// Names that say "the batch" (`N` as nnc's examples write it, `B`, `batch`), which a size after
/// an input's first, a free size there, should not have (W0006).
const BATCH_NAMES: [&str; 4] = ["N", "B", "batch", "batch_size"];

/// The names visible in one block instance or network body.
#[derive(Clone)]
struct Scope {
    file: FileId,
    vars: foldhash::HashMap<String, (Value, Span)>,
    /// A block's parameters and whether the body has read each, for the unused-parameter
    /// lint; a short list, searched only after a name was found in `vars`.
    params_read: Vec<(String, bool)>,
    input: Option<Value>,
    /// The tensor flowing into the stage being evaluated, which `_` names.
    stage_input: Option<Value>,
    /// The prefix that labels (`conv1: conv2d(...)`) are relative to: the path of the
    /// statement they are written in, so a label nests under its statement's name.
    label_prefix: String,
}

impl Scope {
    /// The value of a name in scope, noting that the body read it if it is a parameter (for
    /// the unused-parameter lint).
    fn read(&mut self, name: &str) -> Option<Value> {
        let (value, _) = self.vars.get(name)?;
        if let Some(param) = self.params_read.iter_mut().find(|(p, _)| p == name) {
            param.1 = true;
        }
        Some(value.clone())
    }

    fn new(file: FileId, label_prefix: &str) -> Scope {
        Scope {
            file,
            vars: foldhash::HashMap::default(),
            params_read: Vec::new(),
            input: None,
            stage_input: None,
            label_prefix: label_prefix.into(),
        }
    }
}

/// What a body of statements belongs to: where `input` is allowed, and how its unbound
/// statements are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    Network,
    Block,
    /// The body of an `if` arm or a `repeat` that holds bindings or several statements.
    Nested,
    /// A function's body, which computes a value.
    Function,
}

pub struct Expander<'p> {
    program: &'p Program,
    limits: Limits,
    pub diags: Vec<Diagnostic>,
    nodes: Vec<Node>,
    groups: Vec<Group>,
    frames: Vec<Frame>,
    steps: u64,
    /// Set when a limit is exhausted: evaluation stops, reporting nothing more.
    halted: bool,
    /// The outputs an `output` statement declared (empty if one of them failed).
    declared_outputs: Option<Vec<Output>>,
    /// The inputs declared so far, in order.
    inputs: Vec<NodeId>,
    /// Where the unnamed input (`input [N, ...]`) was declared, if it was.
    unnamed_input: Option<Loc>,
    /// What the lints gather on the way (see `lints.rs`).
    lints: lints::Gathered,
    /// The `shared` layers declared so far, which `Value::Shared` indexes.
    shared: Vec<share::SharedLayer>,
    /// Each tied tensor (its layer and name) and where it was tied.
    tie_locs: Vec<(NodeId, String, Loc)>,
    /// With tracing on (for an editor), what each expression that gave a tensor gave.
    values: Option<Vec<Traced>>,
    /// The size a free name of an input declaration (`H` in `input [N, 3, H, W]`) takes:
    /// its `--set` value, or else `probe` (see `crate::free`).
    free_values: HashMap<String, u64>,
    probe: u64,
    /// The free names the inputs declared, unset, so far.
    free: Vec<FreeName>,
    /// The sizes the network read into values (`in.height`), for the free-size analysis.
    size_reads: Vec<crate::free::SizeRead>,
    /// The sizes of the nodes made so far as expressions of the free sizes, computed as far as
    /// an error has needed them (`free::shown_shape`), so that errors repeated over a long
    /// network compute each node's once.
    shown_sizes: std::cell::RefCell<Vec<Option<Vec<crate::size::Size>>>>,
    /// The paths whose expression failed (poison): layers under them may never have been made,
    /// so a `tie` that names one says nothing more.
    poisoned: Vec<String>,
}

impl<'p> Expander<'p> {
    pub fn new(program: &'p Program, limits: Limits) -> Self {
        Expander {
            program,
            limits,
            diags: Vec::new(),
            nodes: Vec::new(),
            groups: Vec::new(),
            frames: Vec::new(),
            steps: 0,
            halted: false,
            declared_outputs: None,
            inputs: Vec::new(),
            unnamed_input: None,
            lints: lints::Gathered::default(),
            shared: Vec::new(),
            tie_locs: Vec::new(),
            values: None,
            free_values: HashMap::new(),
            probe: crate::free::PROBES[0],
            free: Vec::new(),
            size_reads: Vec::new(),
            shown_sizes: Default::default(),
            poisoned: Vec::new(),
        }
    }

    /// Whether an input declared a free size, unset.
    fn has_free_sizes(&self) -> bool {
        !self.free.is_empty()
    }

    /// Notes that the value at `at` reads sizes `axes` of node `id`.
    fn note_size_read(&mut self, node: NodeId, axes: Vec<usize>, at: Loc) {
        self.size_reads.push(crate::free::SizeRead { node, axes, at });
    }

    /// Gives the free names of the inputs these sizes (`--set H=64`), and the others `probe`.
    pub fn free_sizes(mut self, values: HashMap<String, u64>, probe: u64) -> Self {
        self.free_values = values;
        self.probe = probe;
        self
    }

    /// Keeps what each expression evaluates to, for [`Expansion`]'s hovers and hints.
    pub fn traced(mut self, on: bool) -> Self {
        self.values = on.then(Vec::new);
        self
    }

    /// Notes that `loc` gave `value` from `input`, making the nodes from `before` on.
    fn trace(&mut self, loc: Loc, input: Option<&Value>, value: &Value, before: usize) {
        if let (Some(values), Value::Tensor(output)) = (&mut self.values, value) {
            let input = match input {
                Some(Value::Tensor(id)) => Some(*id),
                _ => None,
            };
            values.push(Traced { loc, input, output: *output, made: before..self.nodes.len() });
        }
    }

    /// Expands one network with its parameters' values. Returns the graph if the network
    /// checked without error, and, when traced, the network as far as it expanded. The same
    /// mistake met again in another block instance or repeat iteration is reported once,
    /// saying how often it happened.
    pub fn network(
        mut self,
        file: FileId,
        def: &Definition,
        overrides: &HashMap<&str, Value>,
    ) -> (Option<Graph>, Vec<Diagnostic>, Option<Expansion>) {
        let graph = self.expand_network(file, def, overrides);
        let expansion = self.values.take().map(|values| Expansion {
            network: def.name.name.clone(),
            loc: Loc::new(file, def.name.span),
            nodes: std::mem::take(&mut self.nodes),
            groups: std::mem::take(&mut self.groups),
            values,
            free: None,
        });
        (graph, lints::group_repeated(self.diags), expansion)
    }

    fn expand_network(
        &mut self,
        file: FileId,
        def: &Definition,
        overrides: &HashMap<&str, Value>,
    ) -> Option<Graph> {
        let mut scope = Scope::new(file, "");
        let mut params = Vec::new();
        for param in &def.params {
            let value = match (overrides.get(param.name.name.as_str()), &param.default) {
                (Some(v), _) => v.clone(),
                (None, Some(default)) => self.eval(default, &mut scope, None, ""),
                (None, None) => self.error(Error::NoParamValue {
                    name: &param.name.name,
                    at: Loc::new(file, param.name.span),
                }),
            };
            params.push((param.name.name.clone(), value.clone()));
            scope.vars.insert(param.name.name.clone(), (value, param.name.span));
        }
        if self.failed() {
            return None;
        }
        let output = self.body(&def.body, &mut scope, "", BodyKind::Network, None);
        let loc = Loc::new(file, def.name.span);
        let Some(Value::Tensor(_)) = scope.input else {
            if !self.halted && scope.input.is_none() {
                self.diags.push(Error::NoInput { network: &def.name.name, at: loc }.into());
            }
            return None;
        };
        let outputs = match self.declared_outputs.take() {
            Some(outputs) => outputs,
            None => match output {
                Some(Value::Tensor(id)) => {
                    let at = def.body.last().map_or(loc, |s| Loc::new(file, s.span()));
                    if !self.batched(id, || "the network's output".to_string(), at)
                        || !self.typed(id, DType::Float, || "the network's output".to_string(), at)
                    {
                        return None;
                    }
                    vec![Output { name: "output".to_string(), node: id, training_only: false }]
                }
                Some(Value::Poison) => return None,
                other => {
                    let found = other.map(|v| v.type_name());
                    let at = def.body.last().map_or(loc, |s| Loc::new(file, s.span()));
                    self.diags.push(Error::NetworkOutput { network: &def.name.name, found, at }.into());
                    return None;
                }
            },
        };
        if outputs.is_empty() {
            return None;
        }
        self.check_unique_names();
        if let Some(what) = overflowing_total(&self.nodes) {
            self.diags.push(Error::TotalsOverflow { network: &def.name.name, what, at: loc }.into());
        }
        if self.failed() {
            return None;
        }
        self.lint(&outputs);
        let params = params.into_iter().map(|(n, v)| (n, v.to_string())).collect();
        // A traced expansion keeps the nodes too.
        let (nodes, groups) = match self.values {
            Some(_) => (self.nodes.clone(), self.groups.clone()),
            None => (std::mem::take(&mut self.nodes), std::mem::take(&mut self.groups)),
        };
        let graph = Graph {
            name: def.name.name.clone(),
            params,
            nodes,
            inputs: std::mem::take(&mut self.inputs),
            outputs,
            groups,
            free: (!self.free.is_empty()).then(|| {
                let (names, reads) = (std::mem::take(&mut self.free), std::mem::take(&mut self.size_reads));
                Box::new(FreeSizes { names, reads, ..FreeSizes::default() })
            }),
        };
        Some(graph)
    }

    /// Whether an error (not a warning) was reported.
    fn failed(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// Evaluates a `where` condition with these names bound (the network's free sizes): its
    /// value, or the evaluator's first error, or that it gave no boolean.
    pub fn condition(mut self, file: FileId, e: &Expr, vars: &[(String, Value)]) -> Result<bool, String> {
        let mut scope = Scope::new(file, "");
        for (name, value) in vars {
            scope.vars.insert(name.clone(), (value.clone(), e.span));
        }
        let value = self.eval(e, &mut scope, None, "");
        if let Some(d) = self.diags.first() {
            return Err(d.message.clone());
        }
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(format!("it is {}, not a boolean", other.type_name())),
        }
    }

    /// Evaluates a constant expression (no names, no input), as `--set` values are.
    pub fn constant(mut self, file: FileId, e: &Expr) -> Result<Value, Vec<Diagnostic>> {
        let mut scope = Scope::new(file, "");
        let value = self.eval(e, &mut scope, None, "");
        match value {
            Value::Tensor(_) | Value::Poison => {
                if self.diags.is_empty() {
                    self.diags.push(Error::NotConstant { at: Loc::new(file, e.span) }.into());
                }
                Err(self.diags)
            }
            v => Ok(v),
        }
    }

    /// Evaluates a body; its value is that of its last statement. Each statement is fed the
    /// tensor of the one before (the first, `flow`). Unbound statements share one sequence,
    /// so their layers are numbered on from one statement to the next, as an `nn.Sequential`
    /// built from them would number them; a bound statement's layers are named under its
    /// name, and so are its labels.
    fn body(
        &mut self,
        body: &[Stmt],
        scope: &mut Scope,
        path: &str,
        kind: BodyKind,
        flow: Option<Value>,
    ) -> Option<Value> {
        let mut flow = flow.or_else(|| scope.input.clone());
        let mut last = None;
        let mut seq = Seq::body(path, body, scope, kind == BodyKind::Network);
        for (i, stmt) in body.iter().enumerate() {
            if self.halted {
                return Some(Value::Poison);
            }
            scope.stage_input = flow.clone();
            // A declaration feeds nothing and is no statement's value: the statement after it
            // gets the tensor before it, and so does the body.
            let mut declaration = matches!(
                stmt,
                Stmt::Param { .. } | Stmt::Shared { .. } | Stmt::Tie { .. } | Stmt::Where { .. }
            );
            let value = match stmt {
                Stmt::Input { name, dims, dtype, span } => {
                    let before = self.nodes.len();
                    let first = scope.input.is_none();
                    let value = self.input(name.as_ref(), dims, *dtype, *span, scope, kind);
                    self.trace(Loc::new(scope.file, *span), None, &value, before);
                    if let Some(name) = name {
                        self.trace(Loc::new(scope.file, name.span), None, &value, before);
                    }
                    // Only the first input, `in`, flows into the statement after the inputs;
                    // a later one is read by its name, as a declaration is. A broken one flows
                    // on, so that what follows is not reported again.
                    declaration = !first && value != Value::Poison;
                    value
                }
                Stmt::Output { items, span } => {
                    let at = Loc::new(scope.file, *span);
                    self.declare_outputs(items, at, scope, kind, i + 1 == body.len())
                }
                Stmt::Param { name, dims, init, span } => {
                    let v =
                        self.param(dims, init, Loc::new(scope.file, *span), scope, &child(path, &name.name));
                    self.bind(scope, name, v);
                    Value::Tuple(Vec::new())
                }
                Stmt::Shared { name, value, .. } => {
                    self.declare_shared(name, value, scope, path);
                    Value::Tuple(Vec::new())
                }
                Stmt::Tie { tensor, to, .. } => {
                    self.tie(tensor, to, scope, path);
                    Value::Tuple(Vec::new())
                }
                // What a network's `where` says of its free sizes is checked once the network
                // has expanded (`crate::free`); elsewhere it has nothing to speak of.
                Stmt::Where { span, .. } => match kind {
                    BodyKind::Network => Value::Tuple(Vec::new()),
                    _ => self.error(Error::WhereOutsideNetwork { at: Loc::new(scope.file, *span) }),
                },
                Stmt::Bind { name, value } => {
                    let path = child(path, &name.name);
                    scope.label_prefix = path.clone();
                    let before = self.nodes.len();
                    let v = self.eval(value, scope, flow.as_ref(), &path);
                    self.trace(Loc::new(scope.file, name.span), flow.as_ref(), &v, before);
                    self.bind(scope, name, v.clone());
                    v
                }
                Stmt::Destructure { names, value } => {
                    // A failed one is the body's value (poison: its end is not reported again),
                    // but the tensor before it still flows on.
                    if !self.destructure(names, value, scope, flow.as_ref(), path) {
                        last = Some(Value::Poison);
                        continue;
                    }
                    Value::Tuple(Vec::new())
                }
                Stmt::Expr(e) => {
                    scope.label_prefix = path.to_string();
                    let stages = stages_of(e);
                    self.stages(&stages, scope, flow.as_ref(), &mut seq, false)
                }
            };
            if declaration {
                continue;
            }
            if matches!(value, Value::Tensor(_) | Value::Poison) {
                flow = Some(value.clone());
            }
            last = Some(value);
        }
        last
    }

    /// A braced body with bindings or several statements, as one module at `path`: its
    /// bindings are its own (each `repeat` iteration has fresh ones); it sees the names
    /// around it, and reads of block parameters count as reads.
    fn nested_body(&mut self, body: &[Stmt], scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        let mut inner = Scope {
            file: scope.file,
            vars: scope.vars.clone(),
            params_read: std::mem::take(&mut scope.params_read),
            input: scope.input.clone(),
            stage_input: None,
            label_prefix: path.to_string(),
        };
        let flow = flow.cloned().or_else(|| scope.stage_input.clone());
        let value = self.body(body, &mut inner, path, BodyKind::Nested, flow);
        scope.params_read = inner.params_read;
        value.unwrap_or(Value::Poison)
    }

    /// `a, b = value`: each name bound to one item of the tuple `value` gives. Its layers are
    /// named under the names joined (`a_b.0`), and pieces it cuts (`chunk`, `split`) after
    /// the names they are bound to, so that `a` is the node `a`.
    fn destructure(
        &mut self,
        names: &[Ident],
        value: &Expr,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> bool {
        // Named after the names it binds (`y, h = gru(8)` is `y_h`), not the pieces it discards.
        let joined: Vec<&str> = names.iter().map(|n| n.name.as_str()).filter(|n| *n != "_").collect();
        let own = child(path, joined.join("_"));
        scope.label_prefix = own.clone();
        let before = self.nodes.len();
        let v = self.eval(value, scope, flow, &own);
        let names_at = Loc::new(scope.file, names[0].span.to(names[names.len() - 1].span));
        let v = match v {
            Value::Tensor(id) if id.0 >= before && ends_in_layer(value, scope) => {
                self.with_states(id, names, names_at, Loc::new(scope.file, value.span), path)
            }
            v => v,
        };
        let ok = matches!(&v, Value::Tuple(items) if items.len() == names.len());
        let items = match v {
            Value::Tuple(items) if items.len() == names.len() => items,
            Value::Tuple(items) => {
                let at = Loc::new(scope.file, value.span);
                self.error(Error::DestructureCount {
                    names: names.len(),
                    items: items.len(),
                    at: names_at,
                    value: at,
                });
                vec![Value::Poison; names.len()]
            }
            Value::Poison => vec![Value::Poison; names.len()],
            other => {
                let found = self.found(&other);
                self.error(Error::DestructureNotTuple { found, at: Loc::new(scope.file, value.span) });
                vec![Value::Poison; names.len()]
            }
        };
        let binds = joined.len();
        for (name, item) in names.iter().zip(items) {
            if name.name == "_" {
                // Discarded on purpose: not a dead tensor to warn about, unless nothing is bound.
                if let (Value::Tensor(id), true) = (&item, binds > 0) {
                    self.lints.discarded(id.0);
                }
                continue;
            }
            // A slice holds no parameters, so its name is free to follow the binding.
            if let Value::Tensor(id) = item {
                if id.0 >= before && matches!(self.nodes[id.0].op, Op::Slice(_)) {
                    self.nodes[id.0].name = child(path, &name.name);
                }
            }
            self.trace(Loc::new(scope.file, name.span), flow, &item, before);
            self.bind(scope, name, item);
        }
        ok
    }

    /// The output of the layer `id` that a destructuring's value calls, with the layer's
    /// states (a recurrent layer's final `h_n`, ...), each a node that reads the layer's and
    /// is named after the name it is bound to; the output alone for a layer without states.
    fn with_states(&mut self, id: NodeId, names: &[Ident], at: Loc, value: Loc, path: &str) -> Value {
        let node = &self.nodes[id.0];
        let states = node.op.layer().states();
        if states.is_empty() {
            return Value::Tensor(id);
        }
        let (shape, loc) = (node.shape.clone(), node.loc);
        if states.len() + 1 != names.len() {
            let layer = node.op.spec().map_or("the layer", |s| s.name);
            let states: Vec<String> = states.iter().map(|(op, _)| op.to_string()).collect();
            return self.error(Error::DestructureStates {
                layer,
                states: &states,
                names: names.len(),
                at,
                value,
            });
        }
        // With its output and all its states but one discarded (`_, h = gru(32)`, as Python's
        // `_, h = self.gru(x)`), the layer would be named after that state, as the state is:
        // it takes its op's name under it (`h.gru`), as the label `_, h = gru: gru(32)` names it.
        if names[1..].iter().any(|n| n.name != "_" && self.nodes[id.0].name == child(path, &n.name)) {
            let op = self.nodes[id.0].op.spec().map_or("layer", |s| s.name);
            self.nodes[id.0].name = child(&self.nodes[id.0].name, op);
        }
        let mut items = vec![Value::Tensor(id)];
        for ((op, sizes), name) in states.into_iter().zip(&names[1..]) {
            // A state discarded with `_` is not read from the layer at all.
            if name.name == "_" {
                items.push(Value::Tuple(Vec::new()));
                continue;
            }
            items.push(self.add_node(
                child(path, &name.name),
                op,
                vec![id],
                shape.with_dims(sizes),
                0,
                0,
                loc,
            ));
        }
        if items.contains(&Value::Poison) {
            return Value::Poison;
        }
        Value::Tuple(items)
    }

    fn bind(&mut self, scope: &mut Scope, name: &Ident, value: Value) {
        if let Some((_, first)) = scope.vars.get(&name.name) {
            let at = Loc::new(scope.file, name.span);
            self.error(Error::Redefined { name: &name.name, at, first: Loc::new(scope.file, *first) });
            return;
        }
        scope.vars.insert(name.name.clone(), (value, name.span));
    }

    /// `input [N, ...]` or `input name [N, ...] int`: a tensor the network is given. The first
    /// input declared is `in` and flows into the statement after it; a named one also binds its
    /// name. Every input shares the first one's batch.
    fn input(
        &mut self,
        name: Option<&Ident>,
        dims: &[Expr],
        dtype: Option<(ElemType, Span)>,
        span: Span,
        scope: &mut Scope,
        kind: BodyKind,
    ) -> Value {
        let loc = Loc::new(scope.file, span);
        match kind {
            BodyKind::Network => {}
            BodyKind::Block | BodyKind::Function => return self.error(Error::InputInBlock { at: loc }),
            BodyKind::Nested => return self.error(Error::InputInBody { at: loc }),
        }
        if name.is_none() {
            if let Some(first) = self.unnamed_input {
                return self.error(Error::InputTwice { at: loc, first });
            }
            self.unnamed_input = Some(loc);
        }
        // A declaration reported as broken still declares the input: no second error says
        // the network has none, and a use of its name is poison, not unknown.
        let first = scope.input.is_none();
        if first {
            scope.input = Some(Value::Poison);
        }
        let value = self.input_tensor(name, dims, dtype, loc, scope);
        if first {
            scope.input = Some(value.clone());
        }
        if let Some(name) = name {
            self.bind(scope, name, value.clone());
        }
        value
    }

    /// The node of an input declaration, named as the input (`input` when unnamed).
    fn input_tensor(
        &mut self,
        name: Option<&Ident>,
        dims: &[Expr],
        dtype: Option<(ElemType, Span)>,
        loc: Loc,
        scope: &mut Scope,
    ) -> Value {
        if dims.len() < 2 {
            let size = match dims.first().map(|d| &d.kind) {
                Some(ExprKind::Int(v)) => Some(*v),
                _ => None,
            };
            return self.error(Error::InputTooFewDims { size, at: loc });
        }
        let batch = match &dims[0].kind {
            ExprKind::Name(n) if !scope.vars.contains_key(n) => Batch::Symbolic(n.clone()),
            _ => match self.eval_int(&dims[0], scope) {
                Some(v) if v >= 1 => Batch::Fixed(v as u64),
                Some(v) => {
                    return self
                        .error(Error::BadDimension { value: v, at: Loc::new(scope.file, dims[0].span) })
                }
                None => return Value::Poison,
            },
        };
        let mut sizes = Vec::new();
        let mut free = Vec::new();
        for dim in &dims[1..] {
            // A name bound to nothing is a free size: the network is checked for every value.
            if let ExprKind::Name(n) = &dim.kind {
                if batch == Batch::Symbolic(n.clone()) {
                    return self.error(Error::FreeIsBatch { name: n, at: Loc::new(scope.file, dim.span) });
                }
                if !scope.vars.contains_key(n) {
                    // `input x [T, N, 16]`, written as a sequence-first PyTorch model lays it out.
                    if BATCH_NAMES.contains(&n.as_str()) {
                        let batch = batch.text().unwrap_or_default();
                        self.warn(Lint::BatchNamedFree {
                            name: n,
                            batch,
                            at: Loc::new(scope.file, dim.span),
                        });
                    }
                    match self.free_values.get(n) {
                        Some(&v) => sizes.push(v),
                        None => {
                            free.push((n.clone(), sizes.len()));
                            sizes.push(self.probe);
                        }
                    }
                    continue;
                }
            }
            match self.eval_int(dim, scope) {
                Some(v) if v >= 1 => sizes.push(v as u64),
                Some(v) => {
                    return self.error(Error::BadDimension { value: v, at: Loc::new(scope.file, dim.span) })
                }
                None => return Value::Poison,
            }
        }
        let name = name.map_or("input", |n| n.name.as_str());
        if let Some(&first) = self.inputs.first() {
            let first = &self.nodes[first.0];
            if first.shape.batch != batch {
                let (first_name, first_batch, first_at) =
                    (first.name.clone(), first.shape.batch.text().unwrap_or_default(), first.loc);
                return self.error(Error::InputBatch {
                    name,
                    batch: batch.text().unwrap_or_default(),
                    first: &first_name,
                    first_batch,
                    at: Loc::new(scope.file, dims[0].span),
                    first_at,
                });
            }
        }
        let dtype = match dtype {
            None | Some((ElemType::Float, _)) => DType::Float,
            Some((ElemType::Int, _)) => DType::Int,
            Some((ElemType::Bool, _)) => DType::Bool,
        };
        let shape = Shape { batch, dims: sizes, dtype };
        let tensor = self.add_node(name.into(), Op::Input(crate::ops::Input), vec![], shape, 0, 0, loc);
        if let Value::Tensor(id) = tensor {
            self.inputs.push(id);
            self.free.extend(free.into_iter().map(|(name, axis)| FreeName { name, input: id, axis }));
        }
        tensor
    }

    /// `output a, b if training`: the network's outputs, which end its body. Each is a
    /// batched tensor the body named, the first an output in every mode.
    fn declare_outputs(
        &mut self,
        items: &[OutputItem],
        at: Loc,
        scope: &mut Scope,
        kind: BodyKind,
        last: bool,
    ) -> Value {
        if kind != BodyKind::Network {
            return self.error(Error::OutputInBlock { at });
        }
        if !last {
            return self.error(Error::OutputNotLast { at });
        }
        let mut outputs = Vec::new();
        let mut failed = false;
        for (k, item) in items.iter().enumerate() {
            let name = &item.name.name;
            let name_at = Loc::new(scope.file, item.name.span);
            if let Some(first) = items[..k].iter().find(|other| other.name.name == *name) {
                let first = Loc::new(scope.file, first.name.span);
                self.error(Error::Redefined { name, at: name_at, first });
                failed = true;
                continue;
            }
            if k == 0 && item.training_only {
                self.error(Error::MainOutputInTraining { name, at: name_at });
                failed = true;
            }
            let value = match name.as_str() {
                "_" if scope.stage_input.is_none() => {
                    self.error(Error::FlowWithoutTensor { at: name_at });
                    failed = true;
                    continue;
                }
                "_" => scope.stage_input.clone(),
                _ => scope.read(name),
            };
            match value {
                Some(Value::Tensor(id)) => {
                    if self.batched(id, || format!("the output `{name}`"), name_at)
                        && self.typed(id, DType::Float, || format!("the output `{name}`"), name_at)
                    {
                        let shown = if name == "_" { "output".to_string() } else { name.clone() };
                        let output = Output { name: shown, node: id, training_only: item.training_only };
                        outputs.push(output);
                    } else {
                        failed = true;
                    }
                }
                Some(Value::Poison) => failed = true,
                Some(other) => {
                    let found = self.found(&other);
                    self.error(Error::NotTensor { found, at: name_at });
                    failed = true;
                }
                None => {
                    let candidates: Vec<&str> = scope.vars.keys().map(String::as_str).collect();
                    let hint = did_you_mean(name, candidates);
                    self.error(Error::UnknownName { name, at: name_at, hint });
                    failed = true;
                }
            }
        }
        self.declared_outputs = Some(if failed { Vec::new() } else { outputs });
        Value::Tuple(Vec::new())
    }

    /// `param name [dims] = init`: a node with no input whose tensor is the parameter, named
    /// `path` (its statement's name), of exactly `dims`, without a batch.
    fn param(&mut self, dims: &[Expr], init: &Expr, loc: Loc, scope: &mut Scope, path: &str) -> Value {
        if dims.len() > MAX_TENSOR_RANK {
            return self.error(Error::ParamRank { rank: dims.len(), max: MAX_TENSOR_RANK, at: loc });
        }
        let mut sizes = Vec::with_capacity(dims.len());
        for dim in dims {
            match self.eval_int(dim, scope) {
                Some(v) if v >= 1 => sizes.push(v as u64),
                Some(v) => {
                    return self.error(Error::BadDimension { value: v, at: Loc::new(scope.file, dim.span) })
                }
                None => return Value::Poison,
            }
        }
        let Some(init) = self.param_init(init, scope) else {
            return Value::Poison;
        };
        let op = Op::Param(crate::ops::Param { dims: sizes.clone().into(), init });
        let params = match crate::ops::param_count(&op.layer().tensors()) {
            Ok(n) => n,
            Err(_) => {
                let shape = Shape::float(Batch::None, sizes);
                return self.error(Error::TensorTooLarge { shape: &shape, at: loc });
            }
        };
        self.add_node(path.to_string(), op, vec![], Shape::float(Batch::None, sizes), params, 0, loc)
    }

    /// A `param`'s initial value: a number (every element), or `normal(std=s)`, whose
    /// standard deviation may also be given by position.
    fn param_init(&mut self, init: &Expr, scope: &mut Scope) -> Option<InitRule> {
        let at = Loc::new(scope.file, init.span);
        let number = |v: &Value| match *v {
            Value::Int(v) => Some(v as f64),
            Value::Float(v) if v.is_finite() => Some(v),
            _ => None,
        };
        if let ExprKind::Call { callee, args } = &init.kind {
            if callee.name == "normal" {
                let std = match &args[..] {
                    [arg] if arg.name.as_ref().is_none_or(|n| n.name == "std") => {
                        let v = self.eval(&arg.value, scope, None, "");
                        if matches!(v, Value::Poison) {
                            return None;
                        }
                        number(&v).filter(|s| *s >= 0.0)
                    }
                    _ => None,
                };
                return match std {
                    Some(std) => Some(InitRule::Normal { std }),
                    None => {
                        self.error(Error::ParamInit { found: None, at });
                        None
                    }
                };
            }
        }
        let v = self.eval(init, scope, None, "");
        match number(&v) {
            Some(value) => Some(InitRule::Const(value)),
            None if matches!(v, Value::Poison) => None,
            None => {
                let found = Some(self.found(&v));
                self.error(Error::ParamInit { found, at });
                None
            }
        }
    }

    /// Reports an error, or a diagnostic worded elsewhere, with the expansion context
    /// attached; returns the poison value.
    fn error(&mut self, error: impl Into<Diagnostic>) -> Value {
        let d = expanded_from(error.into(), &self.frames);
        self.diags.push(d);
        Value::Poison
    }

    /// Reports an exhausted limit, which halts expansion.
    fn limit(&mut self, error: Error) -> Value {
        self.error(error);
        self.halted = true;
        Value::Poison
    }

    fn eval(&mut self, e: &Expr, scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        if self.halted {
            return Value::Poison;
        }
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            let at = Loc::new(scope.file, e.span);
            return self.limit(Error::TooManySteps { max: self.limits.max_steps, at });
        }
        let before = self.nodes.len();
        let value = stacker::maybe_grow(RED_ZONE, STACK_GROWTH, || self.eval_kind(e, scope, flow, path));
        // A tuple cost as much as its items to make (a name read copies it): its size counts
        // against the limit, or `a = (b, b)` repeated would double the memory at each step.
        if let Value::Tuple(_) = value {
            self.steps += value.weight() - 1;
            if self.steps > self.limits.max_steps {
                let at = Loc::new(scope.file, e.span);
                return self.limit(Error::TooManySteps { max: self.limits.max_steps, at });
            }
        }
        if self.values.is_some() {
            self.trace(Loc::new(scope.file, e.span), flow, &value, before);
        }
        if value == Value::Poison && !path.is_empty() && self.poisoned.last().is_none_or(|p| p != path) {
            self.poisoned.push(path.to_string());
        }
        value
    }

    fn eval_kind(&mut self, e: &Expr, scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        let loc = Loc::new(scope.file, e.span);
        match &e.kind {
            ExprKind::Int(v) => Value::Int(*v),
            ExprKind::Float(v) => Value::Float(*v),
            ExprKind::Bool(v) => Value::Bool(*v),
            ExprKind::Str(v) => Value::Str(v.clone()),
            ExprKind::Input => match &scope.input {
                Some(v) => v.clone(),
                None => self.error(Error::InBeforeInput { at: loc }),
            },
            ExprKind::Flow => match &scope.stage_input {
                Some(v) => v.clone(),
                None => self.error(Error::FlowWithoutTensor { at: loc }),
            },
            ExprKind::Body(stmts) => self.nested_body(stmts, scope, flow, path),
            ExprKind::Name(name) => self.name(name, loc, scope, flow, path),
            ExprKind::Tuple(items) => {
                let values: Vec<Value> = items.iter().map(|i| self.eval(i, scope, None, path)).collect();
                if values.contains(&Value::Poison) {
                    Value::Poison
                } else {
                    Value::Tuple(values)
                }
            }
            ExprKind::Chain(_) => {
                let stages = stages_of(e);
                let mut seq = Seq::new(path, &stages, scope);
                self.stages(&stages, scope, flow, &mut seq, false)
            }
            ExprKind::Unary { ops, operand } => self.unary(ops, operand, loc, scope, flow, path),
            ExprKind::Binary { head, rest } => self.binary(head, rest, loc, scope, flow, path),
            ExprKind::Postfix { base, accesses } => {
                // Brackets may slice a tensor the base makes, so the base, if it makes layers,
                // is named apart from the slice, which takes the expression's name; a slice
                // before the last access is named after its position (`y.slice1`).
                let brackets = accesses.iter().any(|a| !matches!(a, Access::Field(_)));
                // Borrowed where it is the expression's own path (`in.channels`, met in every
                // residual block), not copied.
                let base_path: Cow<'_, str> = match brackets && !refers(base, scope) {
                    true => Cow::Owned(child(path, 0)),
                    false => Cow::Borrowed(path),
                };
                let mut value = self.eval(base, scope, flow, &base_path);
                for (i, access) in accesses.iter().enumerate() {
                    let name: Cow<'_, str> = match i + 1 == accesses.len() {
                        true => Cow::Borrowed(path),
                        false => Cow::Owned(child(path, format_args!("slice{}", i + 1))),
                    };
                    value = self.access(value, access, scope, &name);
                }
                value
            }
            ExprKind::Call { callee, args } => self.call(callee, args, loc, scope, flow, path),
            ExprKind::If { arms, otherwise } => match self.arm(arms, otherwise.as_deref(), scope) {
                Ok(Some(body)) => self.eval(body, scope, flow, path),
                // Without `else`, a false condition passes the incoming tensor through.
                Ok(None) => match flow {
                    Some(tensor) => tensor.clone(),
                    None => self.error(Error::NoElse { at: loc }),
                },
                Err(poison) => poison,
            },
            ExprKind::Repeat { index, count, body } => {
                let mut seq = Seq { path: path.to_string(), next: 0, indexed: true };
                self.repeat(index.as_ref(), count, body, loc, scope, flow, &mut seq)
            }
        }
    }

    /// The body of the first arm of an `if` whose condition holds, the `else` body, or `None`
    /// when no arm is taken; an error (poison) if a condition is not a boolean.
    fn arm<'e>(
        &mut self,
        arms: &'e [(Expr, Expr)],
        otherwise: Option<&'e Expr>,
        scope: &mut Scope,
    ) -> Result<Option<&'e Expr>, Value> {
        for (cond, body) in arms {
            match self.eval(cond, scope, None, "") {
                Value::Bool(true) => return Ok(Some(body)),
                Value::Bool(false) => {}
                Value::Poison => return Err(Value::Poison),
                other => {
                    let found = self.found(&other);
                    return Err(
                        self.error(Error::NotCondition { found, at: Loc::new(scope.file, cond.span) })
                    );
                }
            }
        }
        Ok(otherwise)
    }

    /// Evaluates the stages of a chain in order, each fed by the one before, naming their
    /// layers from `seq`. A stage after an arrow that does not use the tensor flowing into it
    /// gets a warning; with `check_first` (a repeat's body, fed by the iteration before), so
    /// does the first.
    fn stages(
        &mut self,
        stages: &[(Option<&Label>, &Expr)],
        scope: &mut Scope,
        flow: Option<&Value>,
        seq: &mut Seq,
        check_first: bool,
    ) -> Value {
        let mut current = flow.cloned();
        let outer_stage_input = scope.stage_input.take();
        for (k, &(label, expr)) in stages.iter().enumerate() {
            let fed = current.clone().filter(|_| k > 0 || check_first);
            scope.stage_input = current.clone();
            let loc = Loc::new(scope.file, expr.span);
            let before = self.nodes.len();
            let value = match (&expr.kind, label) {
                (ExprKind::Repeat { index, count, body }, None) => {
                    let value = self.repeat(index.as_ref(), count, body, loc, scope, current.as_ref(), seq);
                    self.trace(loc, current.as_ref(), &value, before);
                    value
                }
                // In a numbered sequence, the arm taken adds its layers to it, and a false
                // `if` adds none, as a Python `if` appending to an `nn.Sequential` would.
                (ExprKind::If { arms, otherwise }, None) if seq.indexed => {
                    let value = match self.arm(arms, otherwise.as_deref(), scope) {
                        Ok(Some(body)) => {
                            let body_stages = stages_of(body);
                            self.stages(&body_stages, scope, current.as_ref(), seq, false)
                        }
                        Ok(None) => current.clone().unwrap_or_else(|| self.error(Error::NoElse { at: loc })),
                        Err(poison) => poison,
                    };
                    self.trace(loc, current.as_ref(), &value, before);
                    value
                }
                _ => {
                    let is_reference = refers(expr, scope);
                    let stage_path = match label {
                        Some(label) => match self.label(label, scope) {
                            Some(name) => child(&scope.label_prefix, name),
                            None => {
                                scope.stage_input = outer_stage_input;
                                return Value::Poison;
                            }
                        },
                        None if is_reference || !seq.indexed => seq.path.clone(),
                        None => child(&seq.path, seq.next),
                    };
                    let before = self.nodes.len();
                    // Labels inside a labelled stage (`f: (a: conv2d(...) -> ...)`) nest under
                    // its label, as they nest under a statement's name.
                    let outer_prefix =
                        label.map(|_| std::mem::replace(&mut scope.label_prefix, stage_path.clone()));
                    let value = self.eval(expr, scope, current.as_ref(), &stage_path);
                    if let Some(prefix) = outer_prefix {
                        scope.label_prefix = prefix;
                    }
                    // A stage takes a position only if it made a layer.
                    if !is_reference && self.nodes.len() > before {
                        seq.next += 1;
                    }
                    value
                }
            };
            if let (Some(Value::Tensor(from)), Value::Tensor(to)) = (&fed, &value) {
                self.check_stage_uses_input(*from, *to, loc);
            }
            match value {
                Value::Tensor(_) | Value::Poison => current = Some(value),
                // A statement of one stage may be any value (a block's last statement is
                // checked by its caller); a stage of a chain or a repeat must be a tensor,
                // except that a chain may end in the pieces of `chunk` or `split`.
                other @ Value::Tuple(_) if k + 1 == stages.len() && !check_first => {
                    scope.stage_input = outer_stage_input;
                    return other;
                }
                other if stages.len() == 1 && !check_first => {
                    scope.stage_input = outer_stage_input;
                    return other;
                }
                other => {
                    scope.stage_input = outer_stage_input;
                    let found = self.found(&other);
                    return self.error(Error::StageNotTensor { found, at: loc });
                }
            }
        }
        scope.stage_input = outer_stage_input;
        current.unwrap_or(Value::Poison)
    }

    /// A label's name: `conv1`, or `denselayer{j}` with the integer value of `j` appended.
    fn label<'l>(&mut self, label: &'l Label, scope: &mut Scope) -> Option<Cow<'l, str>> {
        // Most labels are plain text (`conv1`), met once per block instance: borrowed, not
        // copied.
        if let [LabelPart::Text(text)] = &label.parts[..] {
            if !text.is_empty() && !text.contains('.') {
                return Some(Cow::Borrowed(text));
            }
        }
        let mut text = String::new();
        for part in &label.parts {
            let index = match part {
                LabelPart::Text(t) => {
                    text += t;
                    continue;
                }
                LabelPart::Value(index) => index,
            };
            let at = Loc::new(scope.file, index.span);
            // Only a value: a layer's name here would apply the layer.
            match scope.read(&index.name) {
                Some(Value::Int(v)) => text += &v.to_string(),
                Some(Value::Poison) => return None,
                None => {
                    self.error(Error::UnknownName { name: &index.name, at, hint: None });
                    return None;
                }
                Some(other) => {
                    let found = self.found(&other);
                    self.error(Error::LabelIndex { found, at });
                    return None;
                }
            }
        }
        // A dot would make a level of the hierarchy that no module holds.
        if text.is_empty() || text.contains('.') {
            self.error(Error::LabelText { text: &text, at: Loc::new(scope.file, label.span) });
            return None;
        }
        Some(Cow::Owned(text))
    }

    /// Unrolls a repeat into the enclosing sequence: each layer of each iteration takes the
    /// sequence's next position, as a Python loop appending to an `nn.Sequential` would.
    #[allow(clippy::too_many_arguments)]
    fn repeat(
        &mut self,
        index: Option<&Ident>,
        count: &RepeatCount,
        body: &Expr,
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        seq: &mut Seq,
    ) -> Value {
        let (start, n) = match count {
            RepeatCount::Times(n) => match self.eval_int(n, scope) {
                Some(n) if n >= 0 => (0, n as u64),
                Some(n) => {
                    let at = Loc::new(scope.file, count_span(count));
                    return self.error(Error::NegativeRepeat { count: n, at });
                }
                None => return Value::Poison,
            },
            RepeatCount::Range(lo, hi) => {
                let (Some(lo), Some(hi)) = (self.eval_int(lo, scope), self.eval_int(hi, scope)) else {
                    return Value::Poison;
                };
                if hi < lo {
                    let at = Loc::new(scope.file, count_span(count));
                    return self.error(Error::ReversedRange { lo, hi, at });
                }
                (lo, (hi as i128 - lo as i128) as u64)
            }
        };
        if n > self.limits.max_repeat {
            let at = Loc::new(scope.file, count_span(count));
            return self.limit(Error::TooManyIterations { count: n, max: self.limits.max_repeat, at });
        }
        let mut current = match flow {
            Some(v @ (Value::Tensor(_) | Value::Poison)) => v.clone(),
            _ => return self.error(Error::RepeatNeedsInput { at: loc }),
        };
        let body_stages = stages_of(body);
        let shadowed = index.and_then(|i| scope.vars.remove(&i.name));
        if let (Some(index), Some((_, first))) = (index, &shadowed) {
            let (at, first) = (Loc::new(scope.file, index.span), Loc::new(scope.file, *first));
            self.warn(Lint::ShadowedIndex { name: &index.name, at, first });
        }
        // Inside the body, `in` is the tensor that flows into this iteration, as a reader of
        // `repeat n { cat(in, in -> conv_block(c)) }` expects.
        let outer_input = scope.input.clone();
        for i in 0..n {
            if current == Value::Poison || self.halted {
                break;
            }
            let value = start + i as i64;
            if let Some(index) = index {
                scope.vars.insert(index.name.clone(), (Value::Int(value), index.span));
            }
            self.frames.push(Frame::Repeat {
                iteration: i,
                count: n,
                index: index.map(|x| (x.name.clone(), value)),
                at: loc,
            });
            scope.input = Some(current.clone());
            current = self.stages(&body_stages, scope, Some(&current), seq, true);
            self.frames.pop();
        }
        scope.input = outer_input;
        if let Some(index) = index {
            scope.vars.remove(&index.name);
            if let Some(old) = shadowed {
                scope.vars.insert(index.name.clone(), old);
            }
        }
        current
    }
}

/// Whether `e` ends in a call of a built-in layer (`lstm(64)`, `x -> gru(32)`), whose states
/// a destructuring may bind; a block's call, which gives one tensor, does not.
fn ends_in_layer(e: &Expr, scope: &Scope) -> bool {
    let last = stages_of(e).last().map(|&(_, e)| e);
    match last.map(|e| &e.kind) {
        Some(ExprKind::Call { callee, .. }) => crate::ops::lookup(&callee.name).is_some(),
        Some(ExprKind::Name(name)) => !scope.vars.contains_key(name) && crate::ops::lookup(name).is_some(),
        _ => false,
    }
}

/// The stages of a chain with their labels, or an expression as a chain of one stage.
fn stages_of(e: &Expr) -> Vec<(Option<&Label>, &Expr)> {
    match &e.kind {
        ExprKind::Chain(stages) => stages.iter().map(|s| (s.label.as_ref(), &s.expr)).collect(),
        _ => vec![(None, e)],
    }
}

fn count_span(count: &RepeatCount) -> Span {
    match count {
        RepeatCount::Times(n) => n.span,
        RepeatCount::Range(lo, hi) => lo.span.to(hi.span),
    }
}

/// The first of a network's totals that the report shows and that does not fit in 64 bits,
/// if any: the report then never shows a saturated number. Each layer's own counts fit (their
/// rules check them), but sums over many layers, and their bytes as f32, may not.
fn overflowing_total(nodes: &[Node]) -> Option<&'static str> {
    let sum = |f: &dyn Fn(&Node) -> Option<u64>| {
        nodes.iter().try_fold(0u64, |total, node| f(node).and_then(|n| total.checked_add(n)))
    };
    let params = sum(&|n| Some(n.params));
    let macs = sum(&|n| Some(n.macs));
    // As the report counts them: every layer's output, the input aside.
    let activations =
        sum(&|n| if matches!(n.op, Op::Input(_)) { Some(0) } else { n.shape.elements_per_example() });
    let f32_bytes = |n: Option<u64>| n.and_then(|n| n.checked_mul(4));
    [
        ("parameter count", params),
        ("multiply-adds per example", macs),
        ("activations per example", activations),
        ("parameter memory as f32", f32_bytes(params)),
        ("activation memory as f32", f32_bytes(activations)),
    ]
    .into_iter()
    .find_map(|(what, total)| total.is_none().then_some(what))
}
