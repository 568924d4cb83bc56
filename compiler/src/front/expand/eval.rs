//! The scalar interpreter: integers, numbers, booleans and tuples, with Python's arithmetic,
//! comparisons and logic, every integer operation checked; the properties of tensors
//! (`x.channels`); and the type errors of all of these.

use nnc_grammar::ast::{Access, BinaryOp, Expr, ExprKind, UnaryOp};

use super::graph::{child, refers, Join};
use super::{Expander, Scope};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::front::value::Value;
use crate::source::Loc;

impl Expander<'_> {
    /// Evaluates an expression that must be an integer; reports otherwise.
    pub(super) fn eval_int(&mut self, e: &Expr, scope: &mut Scope) -> Option<i64> {
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

    /// Applies prefix operators, innermost (rightmost) first.
    pub(super) fn unary(
        &mut self,
        ops: &[UnaryOp],
        operand: &Expr,
        loc: Loc,
        scope: &mut Scope,
        path: &str,
    ) -> Value {
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
                    let d = Diagnostic::error(Code::Type, format!("cannot {what} {}", other.type_name()))
                        .primary(loc, format!("this is {}", self.show(&other)));
                    return self.error(d);
                }
            };
        }
        value
    }

    /// Reports a value of the wrong type where it stands; returns the poison value.
    pub(super) fn type_error(&mut self, message: String, value: &Value, at: Loc) -> Value {
        let d = Diagnostic::error(Code::Type, message).primary(at, format!("this is {}", self.show(value)));
        self.error(d)
    }

    /// A value as error messages show it: tensors by their shape.
    pub(super) fn show(&self, value: &Value) -> String {
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

    pub(super) fn access(&mut self, value: Value, access: &Access, scope: &mut Scope) -> Value {
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

    pub(super) fn binary(
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
