//! Expansion: evaluates a network's body (block calls, repeats, conditionals, arithmetic) and
//! infers every shape on the way, producing the IR graph.
//!
//! Every expression is evaluated with the tensor that flows into it: a layer or block call
//! applies to that tensor, a name refers to a value, and `a -> b` feeds `a`'s result to `b`.
//! Errors are collected, not thrown: a failed expression yields [`Value::Poison`], which
//! silences everything computed from it, so independent mistakes are all reported once.

use std::collections::HashMap;

use nnc_grammar::ast::{
    Access, Arg, BinaryOp, DefKind, Definition, Expr, ExprKind, Ident, RepeatCount, Stmt, UnaryOp,
};
use nnc_grammar::Span;

use super::load::{Program, RESERVED};
use super::value::Value;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::ir::{Graph, Group, Node, NodeId, Op};
use crate::ops::{self, join, ArgValue, Args, Kind, OpError, OpSpec};
use crate::shape::{Batch, Shape, Window};
use crate::source::{FileId, Loc};

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
        Limits { max_nodes: 100_000, max_repeat: 10_000, max_call_depth: 64, max_steps: 5_000_000 }
    }
}

/// Recursion in the evaluator follows bracket nesting and block calls, both bounded; the stack
/// is grown on demand so that the bound, not the thread's stack size, is what decides.
const RED_ZONE: usize = 128 << 10;
const STACK_GROWTH: usize = 4 << 20;

/// A level of expansion, for the "how did we get here" part of a diagnostic.
enum Frame {
    Call { block: String, instance: String, at: Loc },
    Repeat { iteration: u64, count: u64, index: Option<(String, i64)>, at: Loc },
}

/// The names visible in one block instance or network body.
struct Scope {
    file: FileId,
    vars: HashMap<String, (Value, Span)>,
    input: Option<Value>,
    /// The prefix that labels (`conv1: conv2d(...)`) are relative to.
    label_prefix: String,
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
}

/// `path.segment`, or `segment` at the top.
fn child(path: &str, segment: impl std::fmt::Display) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}.{segment}")
    }
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
        }
    }

    /// Expands one network with its parameters' values. Returns the graph if the network
    /// checked without error.
    pub fn network(
        mut self,
        file: FileId,
        def: &Definition,
        overrides: &HashMap<&str, Value>,
    ) -> (Option<Graph>, Vec<Diagnostic>) {
        let mut scope = Scope { file, vars: HashMap::new(), input: None, label_prefix: String::new() };
        let mut params = Vec::new();
        for param in &def.params {
            let value = match (overrides.get(param.name.name.as_str()), &param.default) {
                (Some(v), _) => v.clone(),
                (None, Some(default)) => self.eval(default, &mut scope, None, ""),
                (None, None) => {
                    let d = Diagnostic::error(
                        Code::Structure,
                        format!("network parameter `{}` has no value", param.name.name),
                    )
                    .primary(Loc::new(file, param.name.span), "no default")
                    .hint(format!(
                        "give it a default (`{} = ...`) or a value with `--set {}=...`",
                        param.name.name, param.name.name
                    ));
                    self.error(d)
                }
            };
            params.push((param.name.name.clone(), value.clone()));
            scope.vars.insert(param.name.name.clone(), (value, param.name.span));
        }
        if !self.diags.is_empty() {
            return (None, self.diags);
        }
        let output = self.body(&def.body, &mut scope, "", DefKind::Network);
        let loc = Loc::new(file, def.name.span);
        let Some(Value::Tensor(input)) = scope.input else {
            if !self.halted && scope.input.is_none() {
                let d =
                    Diagnostic::error(Code::Structure, format!("network `{}` has no input", def.name.name))
                        .primary(loc, "declared here")
                        .hint("declare the input shape first, e.g. `input [N, 1, 28, 28]`");
                self.diags.push(d);
            }
            return (None, self.diags);
        };
        let output = match output {
            Some(Value::Tensor(id)) => id,
            Some(Value::Poison) => return (None, self.diags),
            other => {
                let what = other.map_or("nothing", |v| v.type_name());
                let at = def.body.last().map_or(loc, |s| Loc::new(file, s.span()));
                self.diags.push(
                    Diagnostic::error(
                        Code::Structure,
                        format!("network `{}` must end with a tensor", def.name.name),
                    )
                    .primary(at, format!("the last statement gives {what}"))
                    .hint("a network's output is its last statement"),
                );
                return (None, self.diags);
            }
        };
        self.check_unique_names();
        let totals = |f: fn(&Node) -> u64| self.nodes.iter().try_fold(0u64, |acc, n| acc.checked_add(f(n)));
        if totals(|n| n.params).is_none() || totals(|n| n.macs).is_none() {
            let d = Diagnostic::error(
                Code::Arithmetic,
                format!("the totals of network `{}` overflow 64 bits", def.name.name),
            )
            .primary(loc, "this network is too large to count")
            .note("every layer's own count fits, but their sum does not");
            self.diags.push(d);
        }
        if !self.diags.is_empty() {
            return (None, self.diags);
        }
        let params = params.into_iter().map(|(n, v)| (n, v.to_string())).collect();
        let graph = Graph {
            name: def.name.name.clone(),
            params,
            nodes: self.nodes,
            input: NodeId(input.0),
            output,
            groups: self.groups,
        };
        (Some(graph), self.diags)
    }

    /// Evaluates a constant expression (no names, no input), as `--set` values are.
    pub fn constant(mut self, file: FileId, e: &Expr) -> Result<Value, Vec<Diagnostic>> {
        let mut scope = Scope { file, vars: HashMap::new(), input: None, label_prefix: String::new() };
        let value = self.eval(e, &mut scope, None, "");
        match value {
            Value::Tensor(_) | Value::Poison => {
                if self.diags.is_empty() {
                    let d = Diagnostic::error(Code::Type, "a parameter value must be a constant")
                        .primary(Loc::new(file, e.span), "not a constant");
                    self.diags.push(d);
                }
                Err(self.diags)
            }
            v => Ok(v),
        }
    }

    /// Layer names become parameter names, so they must be unique.
    fn check_unique_names(&mut self) {
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
            let d = Diagnostic::error(Code::Duplicate, format!("two layers are named `{}`", b.name))
                .primary(b.loc, "this layer takes the name again")
                .secondary(a.loc, "first layer with this name")
                .hint("layer names become parameter names and must be unique: bind the statements to different names or give the layers distinct labels (`name: layer`)");
            self.diags.push(d);
        }
    }

    /// Evaluates a body; its value is that of its last statement.
    fn body(&mut self, body: &[Stmt], scope: &mut Scope, path: &str, kind: DefKind) -> Option<Value> {
        let mut flow = scope.input.clone();
        let mut last = None;
        for stmt in body {
            if self.halted {
                return Some(Value::Poison);
            }
            let value = match stmt {
                Stmt::Input { dims, span } => self.input(dims, *span, scope, kind),
                Stmt::Bind { name, value } => {
                    let v = self.eval(value, scope, flow.as_ref(), &child(path, &name.name));
                    self.bind(scope, name, v.clone());
                    v
                }
                Stmt::Expr(e) => self.eval(e, scope, flow.as_ref(), path),
            };
            if matches!(value, Value::Tensor(_) | Value::Poison) {
                flow = Some(value.clone());
            }
            last = Some(value);
        }
        last
    }

    fn bind(&mut self, scope: &mut Scope, name: &Ident, value: Value) {
        if let Some((_, first)) = scope.vars.get(&name.name) {
            let d = Diagnostic::error(Code::Duplicate, format!("`{}` is already defined", name.name))
                .primary(Loc::new(scope.file, name.span), "defined again here")
                .secondary(Loc::new(scope.file, *first), "first defined here")
                .hint("every name in a block or network is bound once; pick another name");
            self.error(d);
            return;
        }
        scope.vars.insert(name.name.clone(), (value, name.span));
    }

    fn input(&mut self, dims: &[Expr], span: Span, scope: &mut Scope, kind: DefKind) -> Value {
        let loc = Loc::new(scope.file, span);
        if kind == DefKind::Block {
            let d = Diagnostic::error(Code::Structure, "`input` belongs in a network")
                .primary(loc, "not allowed in a block")
                .hint("inside a block, `in` is the tensor the block is applied to");
            return self.error(d);
        }
        if scope.input.is_some() {
            let d = Diagnostic::error(Code::Structure, "the network declares its input twice")
                .primary(loc, "second input");
            return self.error(d);
        }
        if dims.len() < 2 {
            let d =
                Diagnostic::error(Code::Structure, "the input needs a batch and at least one more dimension")
                    .primary(loc, "too few dimensions")
                    .hint("e.g. `input [N, 1, 28, 28]` for grey 28×28 images");
            return self.error(d);
        }
        let batch = match &dims[0].kind {
            ExprKind::Name(n) if !scope.vars.contains_key(n) => Batch::Symbolic(n.clone()),
            _ => match self.eval_int(&dims[0], scope) {
                Some(v) if v >= 1 => Batch::Fixed(v as u64),
                Some(v) => return self.error(dim_error(Loc::new(scope.file, dims[0].span), v)),
                None => return Value::Poison,
            },
        };
        let mut sizes = Vec::new();
        for dim in &dims[1..] {
            match self.eval_int(dim, scope) {
                Some(v) if v >= 1 => sizes.push(v as u64),
                Some(v) => return self.error(dim_error(Loc::new(scope.file, dim.span), v)),
                None => return Value::Poison,
            }
        }
        let shape = Shape { batch, dims: sizes };
        let tensor = self.add_node("input".into(), Op::Input, vec![], shape, 0, 0, loc);
        scope.input = Some(tensor.clone());
        tensor
    }

    /// Evaluates an expression that must be an integer; reports otherwise.
    fn eval_int(&mut self, e: &Expr, scope: &mut Scope) -> Option<i64> {
        match self.eval(e, scope, None, "") {
            Value::Int(v) => Some(v),
            Value::Poison => None,
            other => {
                let hint = matches!(e.kind, ExprKind::Name(_))
                    .then(|| "only the first dimension, the batch, may be a free name like `N`".to_string());
                let d = Diagnostic::error(
                    Code::Type,
                    format!("expected an integer, found {}", other.type_name()),
                )
                .primary(Loc::new(scope.file, e.span), format!("this is {}", other.type_name()))
                .maybe_hint(hint);
                self.error(d);
                None
            }
        }
    }

    /// Reports a diagnostic with the expansion context attached; returns the poison value.
    fn error(&mut self, mut d: Diagnostic) -> Value {
        let mut chain = Vec::new();
        for frame in self.frames.iter().rev() {
            match frame {
                Frame::Call { block, instance, at } if instance.is_empty() => {
                    d = d.secondary(*at, format!("in this `{block}` block"));
                    chain.push(format!("`{block}`"));
                }
                Frame::Call { block, instance, at } => {
                    d = d.secondary(*at, format!("in `{instance}`, a `{block}` block called here"));
                    chain.push(format!("`{instance}` ({block})"));
                }
                Frame::Repeat { iteration, count, index, at } => {
                    // Iterations are counted from 1 for people; the index shows the value.
                    let index = index.as_ref().map_or(String::new(), |(n, v)| format!(", with {n} = {v}"));
                    let nth = iteration + 1;
                    d = d.secondary(*at, format!("in iteration {nth} of {count} of this repeat{index}"));
                    chain.push(format!("repeat iteration {nth}{index}"));
                }
            }
        }
        if chain.len() > 1 {
            chain.reverse();
            d = d.note(format!("expanded from {}", chain.join(" → ")));
        }
        self.diags.push(d);
        Value::Poison
    }

    fn limit(&mut self, loc: Loc, message: String, label: &str) -> Value {
        let d = Diagnostic::error(Code::Limit, message)
            .primary(loc, label)
            .note("nnc bounds expansion so that no input can exhaust time or memory");
        self.error(d);
        self.halted = true;
        Value::Poison
    }

    #[allow(clippy::too_many_arguments)]
    fn add_node(
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
            let msg = format!("the network expands to more than {} layers, the limit", self.limits.max_nodes);
            return self.limit(loc, msg, "while adding this layer");
        }
        self.nodes.push(Node { name, op, inputs, shape, params, macs, loc });
        Value::Tensor(NodeId(self.nodes.len() - 1))
    }

    fn eval(&mut self, e: &Expr, scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        if self.halted {
            return Value::Poison;
        }
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            let msg = format!("expansion takes more than {} steps, the limit", self.limits.max_steps);
            return self.limit(Loc::new(scope.file, e.span), msg, "still expanding here");
        }
        stacker::maybe_grow(RED_ZONE, STACK_GROWTH, || self.eval_kind(e, scope, flow, path))
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
                None => {
                    let d = Diagnostic::error(Code::Structure, "`in` has no value yet")
                        .primary(loc, "used before the input is declared")
                        .hint("declare `input [N, ...]` first");
                    self.error(d)
                }
            },
            ExprKind::Name(name) => self.name(name, loc, scope, flow, path),
            ExprKind::Tuple(items) => {
                let values: Vec<Value> = items.iter().map(|i| self.eval(i, scope, None, path)).collect();
                if values.contains(&Value::Poison) {
                    Value::Poison
                } else {
                    Value::Tuple(values)
                }
            }
            ExprKind::Chain(stages) => {
                let stages: Vec<(Option<&Ident>, &Expr)> =
                    stages.iter().map(|s| (s.label.as_ref(), &s.expr)).collect();
                let mut seq = Seq::new(path, &stages, scope);
                self.stages(&stages, scope, flow, &mut seq)
            }
            ExprKind::Unary { ops, operand } => {
                let mut value = self.eval(operand, scope, None, path);
                for op in ops.iter().rev() {
                    value = match (op, value) {
                        (_, Value::Poison) => return Value::Poison,
                        (UnaryOp::Neg, Value::Int(v)) => match v.checked_neg() {
                            Some(n) => Value::Int(n),
                            None => return self.arithmetic(loc, format!("-({v}) overflows")),
                        },
                        (UnaryOp::Neg, Value::Float(v)) => Value::Float(-v),
                        (UnaryOp::Not, Value::Bool(v)) => Value::Bool(!v),
                        (op, other) => {
                            let what = if *op == UnaryOp::Neg { "negate" } else { "apply `not` to" };
                            let d =
                                Diagnostic::error(Code::Type, format!("cannot {what} {}", other.type_name()))
                                    .primary(loc, format!("this is {}", self.show(&other)));
                            return self.error(d);
                        }
                    };
                }
                value
            }
            ExprKind::Binary { head, rest } => self.binary(head, rest, loc, scope, flow, path),
            ExprKind::Postfix { base, accesses } => {
                let mut value = self.eval(base, scope, flow, path);
                for access in accesses {
                    value = self.access(value, access, scope);
                }
                value
            }
            ExprKind::Call { callee, args } => self.call(callee, args, loc, scope, flow, path),
            ExprKind::If { arms, otherwise } => {
                for (cond, body) in arms {
                    match self.eval(cond, scope, None, path) {
                        Value::Bool(true) => return self.eval(body, scope, flow, path),
                        Value::Bool(false) => {}
                        Value::Poison => return Value::Poison,
                        other => {
                            let d = Diagnostic::error(
                                Code::Type,
                                format!("a condition must be a boolean, not {}", other.type_name()),
                            )
                            .primary(
                                Loc::new(scope.file, cond.span),
                                format!("this is {}", self.show(&other)),
                            )
                            .hint("compare it, e.g. `stride != 1`");
                            return self.error(d);
                        }
                    }
                }
                match (otherwise, flow) {
                    (Some(body), _) => self.eval(body, scope, flow, path),
                    // Without `else`, a false condition passes the incoming tensor through.
                    (None, Some(tensor)) => tensor.clone(),
                    (None, None) => {
                        let d = Diagnostic::error(
                            Code::Structure,
                            "this `if` has no value when its condition is false",
                        )
                        .primary(loc, "no `else`")
                        .hint("add an `else { ... }`");
                        self.error(d)
                    }
                }
            }
            ExprKind::Repeat { index, count, body } => {
                let mut seq = Seq { path: path.to_string(), next: 0, indexed: true };
                self.repeat(index.as_ref(), count, body, loc, scope, flow, &mut seq)
            }
        }
    }

    /// How a spatial size came to be: the window layers that shaped it, oldest first, each
    /// with its arithmetic (`14 = (28 + 2·0 − 2) / 2 + 1`).
    fn size_history(&self, mut id: NodeId, axis: usize) -> String {
        const MAX_STEPS: usize = 6;
        let mut steps = Vec::new();
        loop {
            let node = &self.nodes[id.0];
            let size = node.shape.dims.get(1 + axis).copied().unwrap_or(0);
            let window =
                |kernel: [u64; 2], stride: [u64; 2], padding: [u64; 2], dilation: [u64; 2], ceil_mode| {
                    let input = self.nodes[node.inputs[0].0].shape.dims.get(1 + axis).copied().unwrap_or(0);
                    Window {
                        input,
                        kernel: kernel[axis],
                        stride: stride[axis],
                        padding: padding[axis],
                        dilation: dilation[axis],
                        ceil_mode,
                    }
                };
            let step = match &node.op {
                Op::Input => {
                    steps.push(format!("{size} at the input"));
                    break;
                }
                Op::Conv2d(c) => window(c.kernel, c.stride, c.padding, c.dilation, false).derivation(),
                Op::MaxPool2d(p) | Op::AvgPool2d(p) => {
                    window(p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode).derivation()
                }
                Op::AdaptiveAvgPool2d { .. } => format!("{size} from adaptive pooling"),
                Op::Flatten { .. } | Op::Linear { .. } => break,
                _ => {
                    id = node.inputs[0];
                    continue;
                }
            };
            steps.push(format!("{step}  (layer `{}`)", node.name));
            if steps.len() == MAX_STEPS || matches!(node.op, Op::AdaptiveAvgPool2d { .. }) {
                break;
            }
            id = node.inputs[0];
        }
        steps.reverse();
        let axis_name = if axis == 0 { "height" } else { "width" };
        format!("how the {axis_name} got here:\n  {}", steps.join("\n  "))
    }

    /// Reports a value of the wrong type where it stands; returns the poison value.
    fn type_error(&mut self, message: String, value: &Value, at: Loc) -> Value {
        let d = Diagnostic::error(Code::Type, message).primary(at, format!("this is {}", self.show(value)));
        self.error(d)
    }

    /// A value as error messages show it: tensors by their shape.
    fn show(&self, value: &Value) -> String {
        match value {
            Value::Tensor(id) => format!("a tensor {}", self.nodes[id.0].shape),
            other => other.to_string(),
        }
    }

    fn arithmetic(&mut self, loc: Loc, message: String) -> Value {
        let d = Diagnostic::error(Code::Arithmetic, message)
            .primary(loc, "in this expression")
            .note("integers are 64-bit and every operation is checked");
        self.error(d)
    }

    fn name(&mut self, name: &str, loc: Loc, scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        if let Some((value, _)) = scope.vars.get(name) {
            return value.clone();
        }
        if let Some(spec) = ops::lookup(name) {
            return self.apply_op(spec, &[], loc, loc, scope, flow, path);
        }
        if let Some(&block) = self.program.blocks.get(name) {
            return self.call_block(name, block, &[], loc, scope, flow, path);
        }
        let candidates: Vec<&str> = scope
            .vars
            .keys()
            .map(String::as_str)
            .chain(ops::ALL.iter().map(|o| o.name))
            .chain(self.program.blocks.keys().map(String::as_str))
            .collect();
        let d = Diagnostic::error(Code::UnknownName, format!("unknown name `{name}`"))
            .primary(loc, "not a parameter, tensor, layer or block")
            .maybe_hint(did_you_mean(name, candidates));
        self.error(d)
    }

    fn access(&mut self, value: Value, access: &Access, scope: &mut Scope) -> Value {
        match (access, value) {
            (_, Value::Poison) => Value::Poison,
            (Access::Field(field), Value::Tensor(id)) => {
                let shape = self.nodes[id.0].shape.clone();
                let dims = &shape.dims;
                let got = match field.name.as_str() {
                    "channels" if dims.len() >= 2 => Some(Value::Int(dims[0] as i64)),
                    "height" if dims.len() >= 2 => Some(Value::Int(dims[1] as i64)),
                    "width" if dims.len() >= 3 => Some(Value::Int(dims[2] as i64)),
                    "features" => dims.last().map(|d| Value::Int(*d as i64)),
                    "rank" => Some(Value::Int(shape.rank() as i64)),
                    "shape" => Some(Value::Tuple(dims.iter().map(|d| Value::Int(*d as i64)).collect())),
                    _ => None,
                };
                got.unwrap_or_else(|| {
                    const FIELDS: [&str; 6] = ["channels", "height", "width", "features", "rank", "shape"];
                    let shape = shape.to_string();
                    let message = if FIELDS.contains(&field.name.as_str()) {
                        format!("a tensor of shape {shape} has no `{}`", field.name)
                    } else {
                        format!("tensors have no field `{}`", field.name)
                    };
                    let d = Diagnostic::error(Code::UnknownName, message)
                        .primary(Loc::new(scope.file, field.span), format!("the tensor is {shape}"))
                        .maybe_hint(did_you_mean(&field.name, FIELDS))
                        .note(format!("tensors have {}", FIELDS.join(", ")));
                    self.error(d)
                })
            }
            (Access::Index(index), Value::Tuple(items)) => {
                let i = match self.eval(index, scope, None, "") {
                    Value::Int(i) => i,
                    Value::Poison => return Value::Poison,
                    other => {
                        return self.type_error(
                            format!("a tuple index must be an integer, not {}", other.type_name()),
                            &other,
                            Loc::new(scope.file, index.span),
                        );
                    }
                };
                let len = items.len() as i64;
                let at = if i < 0 { i.checked_add(len) } else { Some(i) };
                match at.filter(|a| (0..len).contains(a)) {
                    Some(a) => items[a as usize].clone(),
                    None => {
                        let d = Diagnostic::error(
                            Code::Value,
                            format!("index {i} is out of range for a tuple of {len}"),
                        )
                        .primary(Loc::new(scope.file, index.span), format!("valid indices are 0..{len}"));
                        self.error(d)
                    }
                }
            }
            (access, other) => {
                let (what, span) = match access {
                    Access::Field(f) => (format!("field `{}`", f.name), f.span),
                    Access::Index(i) => ("index".to_string(), i.span),
                };
                let d = Diagnostic::error(Code::Type, format!("{} has no {what}", other.type_name()))
                    .primary(Loc::new(scope.file, span), format!("the value is {}", self.show(&other)));
                self.error(d)
            }
        }
    }

    fn binary(
        &mut self,
        head: &Expr,
        rest: &[(BinaryOp, Expr)],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let operand_path = |i: usize, e: &Expr, scope: &Scope| {
            if refers(e, scope) {
                path.to_string()
            } else {
                child(path, i)
            }
        };
        let first = self.eval(head, scope, flow, &operand_path(0, head, scope));
        if matches!(first, Value::Tensor(_)) && rest.iter().all(|(op, _)| *op == BinaryOp::Add) {
            let mut tensors = vec![(first, head.span)];
            for (i, (_, e)) in rest.iter().enumerate() {
                let operand = operand_path(i + 1, e, scope);
                tensors.push((self.eval(e, scope, flow, &operand), e.span));
            }
            return self.join(Join::Add, tensors, 1, loc, scope, path);
        }
        let mut acc = first;
        for (op, e) in rest {
            if acc == Value::Poison {
                return Value::Poison;
            }
            // `and` and `or` short-circuit, as in Python.
            match (op, &acc) {
                (BinaryOp::And, Value::Bool(false)) | (BinaryOp::Or, Value::Bool(true)) => continue,
                _ => {}
            }
            let rhs = self.eval(e, scope, flow, path);
            acc = match scalar(*op, &acc, &rhs) {
                Ok(v) => v,
                Err(ScalarError::Poison) => return Value::Poison,
                Err(ScalarError::Arithmetic(m)) => return self.arithmetic(loc, m),
                Err(ScalarError::Type(m, hint)) => {
                    let d = Diagnostic::error(Code::Type, m)
                        .primary(loc, format!("{} {op} {}", acc.type_name(), rhs.type_name()))
                        .maybe_hint(hint);
                    return self.error(d);
                }
            };
        }
        acc
    }

    /// `a + b` (all shapes equal) or `cat(a, b, dim=1)`.
    fn join(
        &mut self,
        join: Join,
        inputs: Vec<(Value, Span)>,
        dim: usize,
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
                    return self.type_error(
                        format!("expected a tensor, found {}", other.type_name()),
                        other,
                        Loc::new(scope.file, *span),
                    );
                }
            }
        }
        let shapes: Vec<&Shape> = ids.iter().map(|id| &self.nodes[id.0].shape).collect();
        let (result, op, name) = match join {
            Join::Add => (join::add(&shapes), Op::Add, "add"),
            Join::Concat => (join::concat(&shapes, dim), Op::Concat { dim }, "cat"),
        };
        match result {
            Ok(shape) => {
                let name = if path.is_empty() { name.to_string() } else { path.to_string() };
                self.add_node(name, op, ids, shape, 0, 0, loc)
            }
            Err((i, err)) => {
                let at = Loc::new(scope.file, inputs[i].1);
                let mut d = op_diagnostic(err, at, None);
                if i > 0 {
                    let first = &self.nodes[ids[0].0].shape;
                    d = d.secondary(Loc::new(scope.file, inputs[0].1), format!("this is {first}"));
                }
                self.error(d)
            }
        }
    }

    fn call(
        &mut self,
        callee: &Ident,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let name = callee.name.as_str();
        let callee_loc = Loc::new(scope.file, callee.span);
        if name == "cat" {
            return self.cat(args, loc, scope, flow, path);
        }
        if let Some(spec) = ops::lookup(name) {
            return self.apply_op(spec, args, loc, callee_loc, scope, flow, path);
        }
        if let Some(&block) = self.program.blocks.get(name) {
            return self.call_block(name, block, args, loc, scope, flow, path);
        }
        let message = if scope.vars.contains_key(name) {
            format!("`{name}` is a value, not a layer or block, and cannot be called")
        } else {
            format!("unknown layer or block `{name}`")
        };
        let candidates = ops::ALL
            .iter()
            .map(|o| o.name)
            .chain(RESERVED.iter().copied())
            .chain(self.program.blocks.keys().map(String::as_str));
        let d = Diagnostic::error(Code::UnknownName, message)
            .primary(callee_loc, "not a built-in layer or a block in scope")
            .maybe_hint(
                did_you_mean(name, candidates)
                    .or_else(|| Some("blocks from other files need an `import`".into())),
            );
        self.error(d)
    }

    fn cat(&mut self, args: &[Arg], loc: Loc, scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        let mut tensors = Vec::new();
        let mut dim = 1i64;
        for (i, arg) in args.iter().enumerate() {
            match &arg.name {
                None => {
                    let arg_path = if refers(&arg.value, scope) { path.to_string() } else { child(path, i) };
                    tensors.push((self.eval(&arg.value, scope, flow, &arg_path), arg.value.span));
                }
                Some(n) if n.name == "dim" => match self.eval(&arg.value, scope, None, path) {
                    Value::Int(d) => dim = d,
                    Value::Poison => return Value::Poison,
                    other => {
                        return self.type_error(
                            format!("`dim` must be an integer, not {}", other.type_name()),
                            &other,
                            Loc::new(scope.file, arg.value.span),
                        );
                    }
                },
                Some(n) => {
                    let d = Diagnostic::error(
                        Code::UnknownArgument,
                        format!("`cat` has no argument `{}`", n.name),
                    )
                    .primary(Loc::new(scope.file, n.span), "unknown argument")
                    .hint("`cat(a, b, ..., dim=1)` takes tensors and an optional `dim`");
                    return self.error(d);
                }
            }
        }
        if tensors.is_empty() {
            let d = Diagnostic::error(Code::ArgumentCount, "`cat` needs at least one tensor")
                .primary(loc, "nothing to concatenate")
                .hint("e.g. `cat(a, b)` joins a and b along the channels");
            return self.error(d);
        }
        let rank = tensors.iter().find_map(|(v, _)| match v {
            Value::Tensor(id) => Some(self.nodes[id.0].shape.rank() as i64),
            _ => None,
        });
        let resolved = match rank {
            Some(r) if dim < 0 => dim + r,
            _ => dim,
        };
        // Out-of-range values become an error in the shape rule; clamp only to keep usize.
        self.join(Join::Concat, tensors, resolved.clamp(0, i64::from(u32::MAX)) as usize, loc, scope, path)
    }

    /// Applies a built-in layer to the incoming tensor.
    #[allow(clippy::too_many_arguments)]
    fn apply_op(
        &mut self,
        spec: &'static OpSpec,
        args: &[Arg],
        loc: Loc,
        callee: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let Some(bound) = self.bind_op_args(spec, args, loc, scope) else {
            return Value::Poison;
        };
        let input = match flow {
            Some(Value::Tensor(id)) => *id,
            Some(Value::Poison) => return Value::Poison,
            _ => {
                let d = Diagnostic::error(Code::Type, format!("`{}` is a layer and needs an input tensor here", spec.name))
                    .primary(callee, "nothing flows into this layer")
                    .hint("layers stand in chains (`x -> conv2d(...)`) or statements; arguments and conditions take values");
                return self.error(d);
            }
        };
        let name = if path.is_empty() { spec.name.to_string() } else { path.to_string() };
        let shape = self.nodes[input.0].shape.clone();
        match (spec.apply)(&bound.args, &shape) {
            Ok(built) => {
                self.add_node(name, built.op, vec![input], built.shape, built.params, built.macs, loc)
            }
            Err(err) => {
                let at = err.arg.and_then(|a| bound.locs.get(a).copied()).unwrap_or(loc);
                let history = err.axis.map(|axis| self.size_history(input, axis));
                let mut d = op_diagnostic(err, at, Some(&name));
                d.notes.extend(history);
                self.error(d)
            }
        }
    }

    /// Matches a call's arguments to its parameters: positional ones in order, then keywords by
    /// name. Reports extra, unknown and repeated arguments; returns the argument of each
    /// parameter (if given), or `None` when an error was reported.
    fn match_args<'a>(
        &mut self,
        callee: &Callee,
        args: &'a [Arg],
        file: FileId,
    ) -> Option<Vec<Option<&'a Arg>>> {
        let mut slots: Vec<Option<&Arg>> = vec![None; callee.params.len()];
        let mut ok = true;
        let mut positional = 0;
        for arg in args {
            let slot = match &arg.name {
                None if positional >= callee.params.len() => {
                    let message = format!(
                        "{} takes at most {} arguments, but gets {}",
                        callee.what,
                        callee.params.len(),
                        args.len()
                    );
                    let d = callee
                        .context(Diagnostic::error(Code::ArgumentCount, message))
                        .primary(Loc::new(file, arg.value.span), "extra argument");
                    self.error(d);
                    return None;
                }
                None => {
                    positional += 1;
                    positional - 1
                }
                Some(n) => match callee.params.iter().position(|p| *p == n.name) {
                    Some(i) => i,
                    None => {
                        let message = format!("{} has no argument `{}`", callee.what, n.name);
                        let d = callee
                            .context(Diagnostic::error(Code::UnknownArgument, message))
                            .primary(Loc::new(file, n.span), "unknown argument")
                            .maybe_hint(did_you_mean(&n.name, callee.params.iter().copied()));
                        self.error(d);
                        ok = false;
                        continue;
                    }
                },
            };
            if slots[slot].is_some() {
                let message = format!("argument `{}` is given twice", callee.params[slot]);
                let d = Diagnostic::error(Code::ArgumentCount, message)
                    .primary(Loc::new(file, arg.value.span), "given again here");
                self.error(d);
                ok = false;
                continue;
            }
            slots[slot] = Some(arg);
        }
        ok.then_some(slots)
    }

    fn bind_op_args(
        &mut self,
        spec: &'static OpSpec,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
    ) -> Option<BoundOp> {
        let names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
        let callee = Callee {
            what: format!("`{}`", spec.name),
            params: &names,
            defined: None,
            signature: Some(signature(spec)),
        };
        let slots = self.match_args(&callee, args, scope.file)?;
        let mut values: Vec<Option<(ArgValue, Loc)>> = vec![None; spec.params.len()];
        let mut ok = true;
        for (slot, arg) in slots.iter().enumerate().filter_map(|(i, a)| Some((i, (*a)?))) {
            let param = &spec.params[slot];
            let arg_loc = Loc::new(scope.file, arg.value.span);
            let value = self.eval(&arg.value, scope, None, "");
            match convert(&value, param.kind) {
                Some(v) => values[slot] = Some((v, arg_loc)),
                None if value == Value::Poison => ok = false,
                None => {
                    let hint = match (&value, param.kind) {
                        (Value::Float(_), Kind::Int | Kind::Pair) => {
                            Some("use `//` for integer division".to_string())
                        }
                        _ => None,
                    };
                    let d = Diagnostic::error(
                        Code::Type,
                        format!(
                            "`{}` must be {}, but is {}",
                            param.name,
                            param.kind.describe(),
                            value.type_name()
                        ),
                    )
                    .primary(arg_loc, format!("this is {}", self.show(&value)))
                    .maybe_hint(hint);
                    self.error(d);
                    ok = false;
                }
            }
        }
        let mut locs = HashMap::new();
        let mut bound = Vec::new();
        for (param, value) in spec.params.iter().zip(values) {
            match (value, param.default) {
                (Some((v, at)), _) => {
                    locs.insert(param.name, at);
                    bound.push((v, true));
                }
                (None, Some(default)) => bound.push((default, false)),
                (None, None) => {
                    if ok {
                        let d = Diagnostic::error(
                            Code::ArgumentCount,
                            format!("`{}` needs the argument `{}`", spec.name, param.name),
                        )
                        .primary(loc, format!("`{}` is missing", param.name))
                        .hint(format!("the signature is {}", signature(spec)));
                        self.error(d);
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(BoundOp { args: Args { values: bound, params: spec.params }, locs })
    }

    /// Calls a block on the incoming tensor.
    #[allow(clippy::too_many_arguments)]
    fn call_block(
        &mut self,
        name: &str,
        block: (FileId, usize),
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let def = self.program.definition(block);
        if let Some(pos) =
            self.frames.iter().position(|f| matches!(f, Frame::Call { block: b, .. } if b == name))
        {
            let mut d = Diagnostic::error(Code::Recursion, format!("block `{name}` calls itself"))
                .primary(loc, "this call would expand forever");
            for frame in &self.frames[pos + 1..] {
                if let Frame::Call { block, at, .. } = frame {
                    d = d.secondary(*at, format!("`{block}` is called here"));
                }
            }
            // Context frames are added by `error`; the chain above is the cycle itself.
            let d = d.hint("blocks cannot be recursive; build deep networks with `repeat`");
            self.diags.push(d);
            return Value::Poison;
        }
        let depth = self.frames.iter().filter(|f| matches!(f, Frame::Call { .. })).count();
        if depth >= self.limits.max_call_depth {
            let msg = format!("block calls nest deeper than the limit of {}", self.limits.max_call_depth);
            return self.limit(loc, msg, "this call is too deep");
        }
        let mut inner =
            Scope { file: block.0, vars: HashMap::new(), input: None, label_prefix: path.to_string() };
        // Arguments are evaluated in the caller's scope, defaults in the block's, in order, so
        // that a default may use the parameters before it (`mid = c // 4`).
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let callee = Callee {
            what: format!("block `{name}`"),
            params: &names,
            defined: Some(Loc::new(block.0, def.name.span)),
            signature: None,
        };
        let Some(slots) = self.match_args(&callee, args, scope.file) else {
            return Value::Poison;
        };
        let mut ok = true;
        let mut given: Vec<Option<Value>> = vec![None; def.params.len()];
        for (slot, arg) in slots.iter().enumerate() {
            if let Some(arg) = arg {
                let value = self.eval(&arg.value, scope, None, "");
                ok &= value != Value::Poison;
                given[slot] = Some(value);
            }
        }
        if !ok {
            return Value::Poison;
        }
        let mut shown = Vec::new();
        for (param, value) in def.params.iter().zip(given) {
            let value = match (value, &param.default) {
                (Some(v), _) => v,
                (None, Some(default)) => match self.eval(default, &mut inner, None, "") {
                    Value::Poison => return Value::Poison,
                    v => v,
                },
                (None, None) => {
                    let d = Diagnostic::error(
                        Code::ArgumentCount,
                        format!("block `{name}` needs the argument `{}`", param.name.name),
                    )
                    .primary(loc, format!("`{}` is missing", param.name.name))
                    .secondary(Loc::new(block.0, param.name.span), "parameter without a default");
                    return self.error(d);
                }
            };
            shown.push(format!("{}={value}", param.name.name));
            inner.vars.insert(param.name.name.clone(), (value, param.name.span));
        }
        match flow {
            Some(Value::Tensor(_)) => {}
            Some(Value::Poison) => return Value::Poison,
            _ => {
                let d = Diagnostic::error(Code::Type, format!("block `{name}` needs an input tensor here"))
                    .primary(loc, "nothing flows into this block")
                    .hint("blocks stand in chains (`x -> block(...)`) or statements");
                return self.error(d);
            }
        }
        inner.input = flow.cloned();
        self.groups.push(Group { name: path.to_string(), label: format!("{name}({})", shown.join(", ")) });
        self.frames.push(Frame::Call { block: name.to_string(), instance: path.to_string(), at: loc });
        let result = self.body(&def.body, &mut inner, path, DefKind::Block);
        self.frames.pop();
        match result {
            Some(v @ (Value::Tensor(_) | Value::Poison)) => v,
            other => {
                let what = other.map_or("nothing".to_string(), |v| v.type_name().to_string());
                let at =
                    def.body.last().map_or(Loc::new(block.0, def.name.span), |s| Loc::new(block.0, s.span()));
                let d = Diagnostic::error(Code::Structure, format!("block `{name}` must end with a tensor"))
                    .primary(at, format!("the last statement gives {what}"))
                    .secondary(loc, "called here")
                    .hint("a block's output is its last statement");
                self.diags.push(d);
                Value::Poison
            }
        }
    }

    /// Evaluates the stages of a chain in order, each fed by the one before, naming their
    /// layers from `seq`.
    fn stages(
        &mut self,
        stages: &[(Option<&Ident>, &Expr)],
        scope: &mut Scope,
        flow: Option<&Value>,
        seq: &mut Seq,
    ) -> Value {
        let mut current = flow.cloned();
        for &(label, expr) in stages {
            let value = match (&expr.kind, label) {
                (ExprKind::Repeat { index, count, body }, None) => {
                    let loc = Loc::new(scope.file, expr.span);
                    self.repeat(index.as_ref(), count, body, loc, scope, current.as_ref(), seq)
                }
                _ => {
                    let is_reference = refers(expr, scope);
                    let stage_path = match label {
                        Some(label) => child(&scope.label_prefix, &label.name),
                        None if is_reference || !seq.indexed => seq.path.clone(),
                        None => child(&seq.path, seq.next),
                    };
                    if !is_reference {
                        seq.next += 1;
                    }
                    self.eval(expr, scope, current.as_ref(), &stage_path)
                }
            };
            match value {
                Value::Tensor(_) | Value::Poison => current = Some(value),
                other => {
                    return self.type_error(
                        format!("a chain stage must give a tensor, not {}", other.type_name()),
                        &other,
                        Loc::new(scope.file, expr.span),
                    );
                }
            }
        }
        current.unwrap_or(Value::Poison)
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
                    let d = Diagnostic::error(
                        Code::Value,
                        format!("a repeat count must be at least 0, but is {n}"),
                    )
                    .primary(Loc::new(scope.file, count_span(count)), format!("this is {n}"));
                    return self.error(d);
                }
                None => return Value::Poison,
            },
            RepeatCount::Range(lo, hi) => {
                let (Some(lo), Some(hi)) = (self.eval_int(lo, scope), self.eval_int(hi, scope)) else {
                    return Value::Poison;
                };
                if hi < lo {
                    let d =
                        Diagnostic::error(Code::Value, format!("the range {lo}..{hi} ends before it starts"))
                            .primary(Loc::new(scope.file, count_span(count)), "empty or reversed range");
                    return self.error(d);
                }
                (lo, (hi as i128 - lo as i128) as u64)
            }
        };
        if n > self.limits.max_repeat {
            let msg = format!("repeat count {n} exceeds the limit of {} iterations", self.limits.max_repeat);
            return self.limit(Loc::new(scope.file, count_span(count)), msg, "too many iterations");
        }
        let mut current = match flow {
            Some(v @ (Value::Tensor(_) | Value::Poison)) => v.clone(),
            _ => {
                let d = Diagnostic::error(Code::Type, "`repeat` needs an input tensor here")
                    .primary(loc, "nothing flows into this repeat")
                    .hint("a repeat applies its body again and again to a tensor: use it in a chain or a statement");
                return self.error(d);
            }
        };
        let body_stages: Vec<(Option<&Ident>, &Expr)> = match &body.kind {
            ExprKind::Chain(stages) => stages.iter().map(|s| (s.label.as_ref(), &s.expr)).collect(),
            _ => vec![(None, body)],
        };
        let shadowed = index.and_then(|i| scope.vars.remove(&i.name));
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
            current = self.stages(&body_stages, scope, Some(&current), seq);
            self.frames.pop();
        }
        if let Some(index) = index {
            scope.vars.remove(&index.name);
            if let Some(old) = shadowed {
                scope.vars.insert(index.name.clone(), old);
            }
        }
        current
    }
}

/// How the layers of a chain are named: `path` alone for a single layer, else `path.0`,
/// `path.1`, ... in order, as `nn.Sequential` numbers its children.
struct Seq {
    path: String,
    next: usize,
    indexed: bool,
}

impl Seq {
    fn new(path: &str, stages: &[(Option<&Ident>, &Expr)], scope: &Scope) -> Seq {
        let layers = stages.iter().filter(|(_, e)| !refers(e, scope)).count();
        let repeats = stages.iter().any(|(_, e)| matches!(e.kind, ExprKind::Repeat { .. }));
        Seq { path: path.to_string(), next: 0, indexed: layers > 1 || repeats }
    }
}

/// What is being called, as argument errors describe it.
struct Callee<'p> {
    /// "`conv2d`" or "block `residual`".
    what: String,
    params: &'p [&'p str],
    /// Where a block is defined.
    defined: Option<Loc>,
    /// A built-in layer's signature.
    signature: Option<String>,
}

impl Callee<'_> {
    /// Adds where the callee is defined, or its signature.
    fn context(&self, mut d: Diagnostic) -> Diagnostic {
        if let Some(at) = self.defined {
            d = d.secondary(at, "block defined here");
        }
        if let Some(signature) = &self.signature {
            d = d.note(format!("the signature is {signature}"));
        }
        d
    }
}

struct BoundOp {
    args: Args,
    /// Where each given argument was written.
    locs: HashMap<&'static str, Loc>,
}

enum Join {
    Add,
    Concat,
}

/// Whether `e` only names an existing value (`in`, a bound tensor), creating no layer; layer
/// numbering in chains skips such stages. A bare layer name (`relu`) is not a reference.
fn refers(e: &Expr, scope: &Scope) -> bool {
    match &e.kind {
        ExprKind::Input => true,
        ExprKind::Name(n) => scope.vars.contains_key(n),
        _ => false,
    }
}

fn count_span(count: &RepeatCount) -> Span {
    match count {
        RepeatCount::Times(n) => n.span,
        RepeatCount::Range(lo, hi) => lo.span.to(hi.span),
    }
}

fn dim_error(loc: Loc, v: i64) -> Diagnostic {
    Diagnostic::error(Code::Value, format!("a dimension must be at least 1, but is {v}"))
        .primary(loc, format!("this is {v}"))
}

fn op_diagnostic(err: OpError, at: Loc, layer: Option<&str>) -> Diagnostic {
    let label = match (layer, err.label.is_empty()) {
        (Some(name), true) => format!("in layer `{name}`"),
        (Some(name), false) => format!("{} (layer `{name}`)", err.label),
        (None, _) => err.label,
    };
    let mut d = Diagnostic::error(err.code, err.message).primary(at, label).maybe_hint(err.hint);
    d.notes = err.notes;
    d
}

/// `conv2d(out_channels, kernel, stride=1, ...)`
fn signature(spec: &OpSpec) -> String {
    let params: Vec<String> = spec
        .params
        .iter()
        .map(|p| match p.default {
            None => p.name.to_string(),
            Some(ArgValue::Int(v)) => format!("{}={v}", p.name),
            Some(ArgValue::Float(v)) => format!("{}={v}", p.name),
            Some(ArgValue::Bool(v)) => format!("{}={v}", p.name),
            Some(ArgValue::Pair([a, b])) => format!("{}=({a}, {b})", p.name),
            Some(ArgValue::Unset) => format!("{}=…", p.name),
        })
        .collect();
    format!("`{}({})`", spec.name, params.join(", "))
}

/// Converts a value to a parameter's kind, or `None` if it is not of that kind.
fn convert(value: &Value, kind: Kind) -> Option<ArgValue> {
    match (kind, value) {
        (Kind::Int, Value::Int(v)) | (Kind::Pair, Value::Int(v)) => {
            Some(if kind == Kind::Int { ArgValue::Int(*v) } else { ArgValue::Pair([*v, *v]) })
        }
        (Kind::Pair, Value::Tuple(items)) => match items[..] {
            [Value::Int(a), Value::Int(b)] => Some(ArgValue::Pair([a, b])),
            _ => None,
        },
        (Kind::Float, Value::Float(v)) => Some(ArgValue::Float(*v)),
        (Kind::Float, Value::Int(v)) => Some(ArgValue::Float(*v as f64)),
        (Kind::Bool, Value::Bool(v)) => Some(ArgValue::Bool(*v)),
        _ => None,
    }
}

enum ScalarError {
    Poison,
    Arithmetic(String),
    Type(String, Option<String>),
}

/// Arithmetic, comparison and logic on plain values, with Python's semantics (`/` gives a
/// number, `//` floors, `%` takes the divisor's sign) and every integer operation checked.
fn scalar(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, ScalarError> {
    use BinaryOp::*;
    use Value::{Bool, Float, Int};
    if *a == Value::Poison || *b == Value::Poison {
        return Err(ScalarError::Poison);
    }
    let overflow = || ScalarError::Arithmetic(format!("{a} {op} {b} overflows 64-bit integers"));
    let as_float = |v: &Value| match v {
        Int(i) => Some(*i as f64),
        Float(f) => Some(*f),
        _ => None,
    };
    match (op, a, b) {
        (Add, Int(x), Int(y)) => x.checked_add(*y).map(Int).ok_or_else(overflow),
        (Sub, Int(x), Int(y)) => x.checked_sub(*y).map(Int).ok_or_else(overflow),
        (Mul, Int(x), Int(y)) => x.checked_mul(*y).map(Int).ok_or_else(overflow),
        (FloorDiv | Rem, Int(_), Int(0)) => {
            Err(ScalarError::Arithmetic(format!("{a} {op} 0 divides by zero")))
        }
        (FloorDiv, Int(x), Int(y)) => {
            let q = x.checked_div(*y).ok_or_else(overflow)?;
            Ok(Int(if (x % y != 0) && ((*x < 0) != (*y < 0)) { q - 1 } else { q }))
        }
        (Rem, Int(x), Int(y)) => {
            let r = x.checked_rem(*y).ok_or_else(overflow)?;
            Ok(Int(if r != 0 && ((r < 0) != (*y < 0)) { r + y } else { r }))
        }
        (Eq, _, _) => Ok(Bool(a == b || as_float(a).is_some_and(|x| Some(x) == as_float(b)))),
        (Ne, _, _) => Ok(Bool(!(a == b || as_float(a).is_some_and(|x| Some(x) == as_float(b))))),
        (And, Bool(x), Bool(y)) => Ok(Bool(*x && *y)),
        (Or, Bool(x), Bool(y)) => Ok(Bool(*x || *y)),
        (Lt | Le | Gt | Ge | Add | Sub | Mul | Div | FloorDiv | Rem, _, _) => {
            let (Some(x), Some(y)) = (as_float(a), as_float(b)) else {
                let hint = matches!((a, b), (Value::Tensor(_), _) | (_, Value::Tensor(_)))
                    .then(|| "tensors can only be added to tensors (`a + b`)".to_string());
                return Err(ScalarError::Type(
                    format!("cannot apply `{op}` to {} and {}", a.type_name(), b.type_name()),
                    hint,
                ));
            };
            match op {
                Lt => Ok(Bool(x < y)),
                Le => Ok(Bool(x <= y)),
                Gt => Ok(Bool(x > y)),
                Ge => Ok(Bool(x >= y)),
                Div if y == 0.0 => Err(ScalarError::Arithmetic(format!("{a} / {b} divides by zero"))),
                Div => Ok(Float(x / y)),
                Add => Ok(Float(x + y)),
                Sub => Ok(Float(x - y)),
                Mul => Ok(Float(x * y)),
                FloorDiv if y == 0.0 => Err(ScalarError::Arithmetic(format!("{a} // {b} divides by zero"))),
                FloorDiv => Ok(Float((x / y).floor())),
                Rem if y == 0.0 => Err(ScalarError::Arithmetic(format!("{a} % {b} divides by zero"))),
                _ => Ok(Float(x - y * (x / y).floor())),
            }
        }
        (And | Or, _, _) => Err(ScalarError::Type(
            format!("`{op}` needs booleans, not {} and {}", a.type_name(), b.type_name()),
            None,
        )),
    }
}
