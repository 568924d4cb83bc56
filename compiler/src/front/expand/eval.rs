//! The scalar interpreter: integers, numbers, booleans and tuples, with Python's arithmetic,
//! comparisons and logic, every integer operation checked; the properties of tensors
//! (`x.channels`); and the type errors of all of these.

use std::borrow::Cow;

use nnc_grammar::ast::{Access, BinaryOp, Expr, ExprKind, Subscript, UnaryOp};
use nnc_grammar::Span;

use super::graph::{child, refers, Join};
use super::{Expander, Scope};
use crate::diagnostic::Diagnostic;
use crate::front::messages::{op_diagnostic, Error, Found};
use crate::front::value::Value;
use crate::ir::{NodeId, Op};
use crate::ops::slice::Position;
use crate::ops::{self, ArithOp};
use crate::shape::DType;
use crate::source::Loc;

impl Expander<'_> {
    /// Evaluates an expression that must be an integer; reports otherwise.
    pub(super) fn eval_int(&mut self, e: &Expr, scope: &mut Scope) -> Option<i64> {
        match self.eval(e, scope, None, "") {
            Value::Int(v) => Some(v),
            Value::Poison => None,
            other => {
                let found = self.found(&other);
                self.error(Error::NotInteger { found, at: Loc::new(scope.file, e.span) });
                None
            }
        }
    }

    /// Applies prefix operators, innermost (rightmost) first.
    pub(super) fn unary(
        &mut self,
        ops: &[UnaryOp],
        operand: &Expr,
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        // Named as a binary operation's operand: the negation is `path`.
        let mut value = self.eval(operand, scope, flow, &operand_path(0, operand, scope, path));
        // `-x` of a tensor is `-1 * x`, which flips every sign as `torch.neg` does; `- -x` is
        // `x`, one node or none. An operator outside the negations (`not -x`) then meets the
        // tensor, and says what it cannot take.
        let negations = ops.iter().rev().take_while(|op| **op == UnaryOp::Neg).count();
        let mut ops = ops;
        if matches!(value, Value::Tensor(_)) && negations > 0 {
            if negations % 2 == 1 {
                let minus_one = (Value::Int(-1), operand.span);
                value = self.arith(ArithOp::Mul, minus_one, (value, operand.span), loc, scope, path);
            }
            ops = &ops[..ops.len() - negations];
        }
        for op in ops.iter().rev() {
            value = match (op, value) {
                (_, Value::Poison) => return Value::Poison,
                (UnaryOp::Neg, Value::Int(v)) => match v.checked_neg() {
                    Some(n) => Value::Int(n),
                    None => return self.error(Error::NegationOverflow { value: v, at: loc }),
                },
                (UnaryOp::Neg, Value::Float(v)) => Value::Float(-v),
                (UnaryOp::Not, Value::Bool(v)) => Value::Bool(!v),
                (op, other) => {
                    let found = self.found(&other);
                    return self.error(Error::UnaryOperand { op: *op, found, at: loc });
                }
            };
        }
        value
    }

    /// A value of the wrong type, as its error shows it: with its shape if it is a tensor.
    pub(super) fn found(&self, value: &Value) -> Found {
        let shape = match value {
            Value::Tensor(id) => Some(self.shown_shape(*id)),
            _ => None,
        };
        Found::new(value, shape)
    }

    /// Node `id`'s shape as an error shows it: where sizes are left free, with the free names
    /// (`[N, T, 8]`) where every layer on the way has a rule for them, not the probe's sizes
    /// the node has (`[N, 20160, 8]`); else as it is.
    pub(super) fn shown_shape(&self, id: NodeId) -> String {
        let named = self.has_free_sizes().then(|| {
            let known = &mut self.shown_sizes.borrow_mut();
            crate::free::shown_shape(&self.nodes, &self.free, id, self.probe, known)
        });
        named.flatten().unwrap_or_else(|| self.nodes[id.0].shape.to_string())
    }

    /// A shape rule's error about `inputs`, with each input's shape shown with the free names
    /// wherever its text shows the probe's; a size the rule derived from them stays the
    /// probe's, which the error's note on free sizes explains.
    pub(super) fn show_free_sizes(&self, mut d: Diagnostic, inputs: &[NodeId]) -> Diagnostic {
        // Every free name is probed at one size, so two tensors can have one probe text
        // ([N, 20160, 16] for [N, T, 16] and for [N, S, 16]): such a text is left as it is,
        // true of both, rather than named after one of them.
        let mut named: Vec<(String, Option<String>)> = Vec::new();
        for &id in inputs {
            let (probe, shown) = (self.nodes[id.0].shape.to_string(), self.shown_shape(id));
            match named.iter_mut().find(|(p, _)| *p == probe) {
                Some((_, other)) if other.as_ref() != Some(&shown) => *other = None,
                Some(_) => {}
                None => named.push((probe, Some(shown))),
            }
        }
        for (probe, shown) in named {
            let Some(shown) = shown.filter(|shown| *shown != probe) else { continue };
            let labels = d.labels.iter_mut().map(|l| &mut l.message);
            for text in std::iter::once(&mut d.message).chain(labels).chain(&mut d.notes).chain(&mut d.hint) {
                if text.contains(&probe) {
                    *text = text.replace(&probe, &shown);
                }
            }
        }
        d
    }

    /// `value.field` or `value[...]`; a slice of a tensor is a node named `path`.
    pub(super) fn access(&mut self, value: Value, access: &Access, scope: &mut Scope, path: &str) -> Value {
        match (access, value) {
            (_, Value::Poison) => Value::Poison,
            (Access::Index(index), Value::Tensor(id)) => {
                self.slice(id, &[Subscript::Index(index.clone())], index.span, scope, path)
            }
            (Access::Slice { items, span }, Value::Tensor(id)) => self.slice(id, items, *span, scope, path),
            (Access::Field(field), Value::Tensor(id)) => {
                let shape = self.nodes[id.0].shape.clone();
                let dims = &shape.dims;
                // With free sizes, a size read into a value is checked once they are known:
                // a layer's arguments must not depend on one.
                if self.has_free_sizes() {
                    let axes: Vec<usize> = match field.name.as_str() {
                        "channels" => vec![0],
                        "height" => vec![1],
                        "width" => vec![2],
                        "features" => dims.len().checked_sub(1).into_iter().collect(),
                        "shape" => (0..dims.len()).collect(),
                        _ => Vec::new(),
                    };
                    self.note_size_read(id, axes, Loc::new(scope.file, field.span));
                }
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
                    let at = Loc::new(scope.file, field.span);
                    self.error(Error::NoTensorField { field: &field.name, shape: shape.to_string(), at })
                })
            }
            (Access::Index(index), Value::Tuple(items)) => {
                let Some(i) = self.index_int(index, scope) else { return Value::Poison };
                let len = items.len() as i64;
                let at = if i < 0 { i.checked_add(len) } else { Some(i) };
                match at.filter(|a| (0..len).contains(a)) {
                    Some(a) => items[a as usize].clone(),
                    None => self.error(Error::IndexOutOfRange {
                        index: i,
                        len,
                        at: Loc::new(scope.file, index.span),
                    }),
                }
            }
            (access, other) => {
                let (field, span) = match access {
                    Access::Field(f) => (Some(f.name.as_str()), f.span),
                    Access::Index(i) => (None, i.span),
                    Access::Slice { span, .. } => (None, *span),
                };
                let found = self.found(&other);
                self.error(Error::NoAccess { field, found, at: Loc::new(scope.file, span) })
            }
        }
    }

    /// `x[items]` on the tensor `id`: a slice node named `path` (or `slice` at the top).
    fn slice(&mut self, id: NodeId, items: &[Subscript], span: Span, scope: &mut Scope, path: &str) -> Value {
        let mut positions = Vec::with_capacity(items.len());
        let mut spans = Vec::with_capacity(items.len());
        for item in items {
            let (position, at) = match item {
                Subscript::Ellipsis(at) => (Some(Position::Ellipsis), *at),
                Subscript::Index(e) => (self.index_int(e, scope).map(Position::Index), e.span),
                Subscript::Range { start, end, step, span } => {
                    let start = self.range_part(start.as_ref(), scope);
                    let end = self.range_part(end.as_ref(), scope);
                    let step = self.range_part(step.as_ref(), scope);
                    let range = match (start, end, step) {
                        (Some(start), Some(end), Some(step)) => Some(Position::Range { start, end, step }),
                        _ => None,
                    };
                    (range, *span)
                }
            };
            let Some(position) = position else { return Value::Poison };
            positions.push(position);
            spans.push(at);
        }
        let at = Loc::new(scope.file, span);
        if !self.batched(id, || "slicing".to_string(), at)
            || !self.typed(id, DType::Float, || "slicing".to_string(), at)
        {
            return Value::Poison;
        }
        let shape = &self.nodes[id.0].shape;
        match ops::slice::slice(shape, &positions) {
            Ok((shape, op)) => {
                let name = if path.is_empty() { "slice".to_string() } else { path.to_string() };
                self.add_node(name, Op::Slice(op), vec![id], shape, 0, 0, Loc::new(scope.file, span))
            }
            Err((i, err)) => self.error(op_diagnostic(err, Loc::new(scope.file, spans[i]), None)),
        }
    }

    /// A bound or step of a slice: `Some(None)` when left out, `None` when it is no integer
    /// (reported).
    fn range_part(&mut self, e: Option<&Expr>, scope: &mut Scope) -> Option<Option<i64>> {
        match e {
            None => Some(None),
            Some(e) => self.index_int(e, scope).map(Some),
        }
    }

    /// An index, which must be an integer; `None` (reported) otherwise.
    fn index_int(&mut self, e: &Expr, scope: &mut Scope) -> Option<i64> {
        match self.eval(e, scope, None, "") {
            Value::Int(i) => Some(i),
            Value::Poison => None,
            other => {
                let found = self.found(&other);
                self.error(Error::IndexNotInteger { found, at: Loc::new(scope.file, e.span) });
                None
            }
        }
    }

    pub(super) fn binary(
        &mut self,
        head: &Expr,
        rest: &[(BinaryOp, Expr)],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let mut acc = self.eval(head, scope, flow, &operand_path(0, head, scope, path));
        let mut acc_span = head.span;
        for (i, (op, e)) in rest.iter().enumerate() {
            if acc == Value::Poison {
                return Value::Poison;
            }
            // `and` and `or` short-circuit, as in Python.
            match (op, &acc) {
                (BinaryOp::And, Value::Bool(false)) | (BinaryOp::Or, Value::Bool(true)) => continue,
                _ => {}
            }
            let rhs = self.eval(e, scope, flow, &operand_path(i + 1, e, scope, path));
            let tensor_op = match op {
                BinaryOp::Add => Some(ArithOp::Add),
                BinaryOp::Sub => Some(ArithOp::Sub),
                BinaryOp::Mul => Some(ArithOp::Mul),
                BinaryOp::Div => Some(ArithOp::Div),
                _ => None,
            };
            let tensors = matches!(acc, Value::Tensor(_)) || matches!(rhs, Value::Tensor(_));
            if let (true, Some(arith), false) = (tensors, tensor_op, rhs == Value::Poison) {
                // The last operation takes the expression's name; any before it are named
                // after their operator and position (`y.mul1`), as PyTorch spells all of them
                // in `forward`, not as modules.
                let name = if i + 1 == rest.len() {
                    path.to_string()
                } else {
                    child(path, format_args!("{}{}", arith.name(), i + 1))
                };
                acc = self.arith(arith, (acc, acc_span), (rhs, e.span), loc, scope, &name);
                acc_span = acc_span.to(e.span);
                continue;
            }
            let (a, op, b, at) = (&acc, *op, &rhs, loc);
            let error = match scalar(op, a, b) {
                Ok(v) => {
                    acc = v;
                    acc_span = acc_span.to(e.span);
                    continue;
                }
                Err(ScalarError::Poison) => return Value::Poison,
                Err(ScalarError::Overflow) => Error::Overflow { a, op, b, at },
                Err(ScalarError::DivideByZero) => Error::DivideByZero { a, op, b, at },
                Err(ScalarError::Operands) => Error::BinaryOperands { a, op, b, at },
                Err(ScalarError::NotBooleans) => Error::NotBooleans { a, op, b, at },
            };
            return self.error(error);
        }
        acc
    }

    /// `a op b` where at least one side is a tensor: two tensors broadcast, or a tensor and
    /// a number.
    fn arith(
        &mut self,
        op: ArithOp,
        (a, a_span): (Value, Span),
        (b, b_span): (Value, Span),
        loc: Loc,
        scope: &mut Scope,
        path: &str,
    ) -> Value {
        let (tensor, number, reversed) = match (&a, &b) {
            (Value::Tensor(_), Value::Tensor(_)) => {
                return self.join(Join::Arith(op), vec![(a, a_span), (b, b_span)], loc, scope, path)
            }
            (Value::Tensor(id), other) => (*id, other, false),
            (other, Value::Tensor(id)) => (*id, other, true),
            _ => unreachable!("one side is a tensor"),
        };
        let value = match number {
            Value::Int(v) => *v as f64,
            Value::Float(v) => *v,
            _ => return self.error(Error::BinaryOperands { a: &a, op: written(op), b: &b, at: loc }),
        };
        if (op == ArithOp::Div && value == 0.0 && !reversed) || !value.is_finite() {
            return self.error(Error::TensorByNumber { value, at: loc });
        }
        let at = Loc::new(scope.file, if reversed { b_span } else { a_span });
        if !self.typed(tensor, DType::Float, || "arithmetic".to_string(), at) {
            return Value::Poison;
        }
        let shape = self.nodes[tensor.0].shape.clone();
        let name = if path.is_empty() { op.name().to_string() } else { path.to_string() };
        let attributes = ops::ArithScalar { op, value, reversed };
        self.add_node(name, Op::ArithScalar(attributes), vec![tensor], shape, 0, 0, loc)
    }
}

/// The path of operand `i` of an operation whose result is `path`: made for every operand,
/// most of them scalars (`stride != 1 or in.channels != c` in every residual block), a literal
/// makes no layer and a reference none of its own, so neither needs a path of its own; an
/// expression that makes layers names them under `path.i`.
fn operand_path<'p>(i: usize, e: &Expr, scope: &Scope, path: &'p str) -> Cow<'p, str> {
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) => Cow::Borrowed(""),
        _ if refers(e, scope) => Cow::Borrowed(path),
        _ => Cow::Owned(child(path, i)),
    }
}

/// The operator as the source wrote it, for the messages `scalar`'s errors share.
fn written(op: ArithOp) -> BinaryOp {
    match op {
        ArithOp::Add => BinaryOp::Add,
        ArithOp::Sub => BinaryOp::Sub,
        ArithOp::Mul => BinaryOp::Mul,
        ArithOp::Div => BinaryOp::Div,
    }
}

/// Why [`scalar`] gave no value. The caller, which knows where the operation stands, words
/// the error.
enum ScalarError {
    /// An operand is poison: its error was already reported.
    Poison,
    Overflow,
    DivideByZero,
    /// Operands that are not numbers, for arithmetic or comparison.
    Operands,
    /// Operands of `and` or `or` that are not booleans.
    NotBooleans,
}

/// Arithmetic, comparison and logic on plain values, with Python's semantics (`/` gives a
/// number, `//` floors, `%` takes the divisor's sign) and every integer operation checked.
fn scalar(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, ScalarError> {
    use BinaryOp::*;
    use Value::{Bool, Float, Int};
    if *a == Value::Poison || *b == Value::Poison {
        return Err(ScalarError::Poison);
    }
    let overflow = || ScalarError::Overflow;
    let as_float = |v: &Value| match v {
        Int(i) => Some(*i as f64),
        Float(f) => Some(*f),
        _ => None,
    };
    match (op, a, b) {
        (Add, Int(x), Int(y)) => x.checked_add(*y).map(Int).ok_or_else(overflow),
        (Sub, Int(x), Int(y)) => x.checked_sub(*y).map(Int).ok_or_else(overflow),
        (Mul, Int(x), Int(y)) => x.checked_mul(*y).map(Int).ok_or_else(overflow),
        (FloorDiv | Rem, Int(_), Int(0)) => Err(ScalarError::DivideByZero),
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
                return Err(ScalarError::Operands);
            };
            match op {
                Lt => Ok(Bool(x < y)),
                Le => Ok(Bool(x <= y)),
                Gt => Ok(Bool(x > y)),
                Ge => Ok(Bool(x >= y)),
                Div if y == 0.0 => Err(ScalarError::DivideByZero),
                Div => Ok(Float(x / y)),
                Add => Ok(Float(x + y)),
                Sub => Ok(Float(x - y)),
                Mul => Ok(Float(x * y)),
                FloorDiv if y == 0.0 => Err(ScalarError::DivideByZero),
                FloorDiv => Ok(Float((x / y).floor())),
                Rem if y == 0.0 => Err(ScalarError::DivideByZero),
                _ => Ok(Float(x - y * (x / y).floor())),
            }
        }
        (And | Or, _, _) => Err(ScalarError::NotBooleans),
    }
}

/// The language's functions of numbers, as Python's: `min` and `max` (of several arguments or
/// of one tuple), `abs`, `round` (to the even neighbour on a tie), `int` (toward zero), and
/// `math.floor` and `math.ceil`, which give integers, and `math.sqrt`, which gives a float.
pub(super) const BUILTINS: &[&str] = &["min", "max", "abs", "round", "int", "floor", "ceil", "sqrt"];

impl Expander<'_> {
    pub(super) fn builtin(
        &mut self,
        name: &'static str,
        args: &[nnc_grammar::ast::Arg],
        loc: Loc,
        scope: &mut Scope,
    ) -> Value {
        let mut values = Vec::new();
        for arg in args {
            if arg.name.is_some() {
                let takes = if matches!(name, "min" | "max") { "numbers" } else { "one number" };
                return self.error(Error::BuiltinArgs {
                    function: name,
                    takes,
                    found: "a keyword argument".into(),
                    at: loc,
                });
            }
            match self.eval(&arg.value, scope, None, "") {
                Value::Poison => return Value::Poison,
                v => values.push(v),
            }
        }
        let result = match name {
            "min" | "max" => extreme(name == "max", values),
            _ => match values.as_slice() {
                [v] if name == "sqrt" => square_root(v),
                [v] => rounded(name, v),
                _ => Err(format!("{} arguments", values.len())),
            },
        };
        result.unwrap_or_else(|found| {
            let takes =
                if matches!(name, "min" | "max") { "numbers, or one tuple of them" } else { "one number" };
            self.error(Error::BuiltinArgs { function: name, takes, found, at: loc })
        })
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Python's `max` (or `min`) of the arguments, or of the items of one tuple: the first
/// extreme value itself, so that integers stay integers.
fn extreme(max: bool, mut values: Vec<Value>) -> Result<Value, String> {
    if let [Value::Tuple(items)] = values.as_slice() {
        values = items.clone();
    }
    let mut best: Option<(f64, Value)> = None;
    for v in values {
        let x = number(&v).ok_or_else(|| v.type_name().to_string())?;
        let better = match &best {
            None => true,
            Some((b, _)) => (max && x > *b) || (!max && x < *b),
        };
        if better {
            best = Some((x, v));
        }
    }
    best.map(|(_, v)| v).ok_or_else(|| "nothing".to_string())
}

/// Python's `math.sqrt` of one number: a float (`sqrt(64)` is 8.0, an attention's scale
/// `1 / sqrt(head_dim)`), and none of a negative one.
fn square_root(v: &Value) -> Result<Value, String> {
    match (v, number(v)) {
        (_, Some(x)) if x >= 0.0 => Ok(Value::Float(x.sqrt())),
        (Value::Int(i), _) => Err(format!("{i}, which has no real square root")),
        (Value::Float(f), _) => Err(format!("{f:?}, which has no real square root")),
        _ => Err(v.type_name().to_string()),
    }
}

/// `round`, `int`, `floor`, `ceil` or `abs` of one number.
fn rounded(name: &str, v: &Value) -> Result<Value, String> {
    match (name, v) {
        ("abs", Value::Int(i)) => {
            i.checked_abs().map(Value::Int).ok_or_else(|| format!("{i}, whose absolute value overflows"))
        }
        ("abs", Value::Float(f)) => Ok(Value::Float(f.abs())),
        (_, Value::Int(i)) => Ok(Value::Int(*i)),
        (_, Value::Float(f)) => {
            let r = match name {
                "round" => f.round_ties_even(),
                "int" => f.trunc(),
                "floor" => f.floor(),
                _ => f.ceil(),
            };
            // i64's range, as f64: beyond it (or NaN, infinity) there is no integer to give.
            if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                Ok(Value::Int(r as i64))
            } else {
                Err(format!("{f:?}, which has no 64-bit integer"))
            }
        }
        (_, other) => Err(other.type_name().to_string()),
    }
}
