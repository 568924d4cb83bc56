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
//! `eval` (plain values), `graph` (nodes and their names) and `call` (layers and blocks).

mod call;
mod eval;
mod graph;

use std::collections::HashMap;

use nnc_grammar::ast::{DefKind, Definition, Expr, ExprKind, Ident, RepeatCount, Stmt};
use nnc_grammar::Span;

use self::graph::{child, refers, Seq};
use super::load::Program;
use super::value::Value;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Graph, Group, Node, NodeId, Op};
use crate::shape::{Batch, Shape};
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
            ExprKind::Unary { ops, operand } => self.unary(ops, operand, loc, scope, path),
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
