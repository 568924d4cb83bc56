//! Element-wise arithmetic: `a + b`, `a - b`, `a * b`, `a / b` between two tensors, broadcast
//! as PyTorch broadcasts them, and between a tensor and a number (`x * 0.5`, `1 - x`). The
//! language spells them with its operators rather than as layers, so they have shape rules but
//! no signature; their errors carry a hint computed from the shapes.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::layer::py_float;
use super::{attributes, Family, Layer, OpError, PyTorch, ToRust};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{Batch, Shape};
use crate::size::Size;

/// One of the four operators, as PyTorch's tensor operators spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    /// The ONNX op.
    pub fn onnx(self) -> &'static str {
        match self {
            ArithOp::Add => "Add",
            ArithOp::Sub => "Sub",
            ArithOp::Mul => "Mul",
            ArithOp::Div => "Div",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }

    /// The verb error messages use.
    pub fn verb(self) -> &'static str {
        match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "subtract",
            ArithOp::Mul => "multiply",
            ArithOp::Div => "divide",
        }
    }

    /// The short name the report shows and unnamed nodes take (`mul`).
    pub fn name(self) -> &'static str {
        match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "sub",
            ArithOp::Mul => "mul",
            ArithOp::Div => "div",
        }
    }
}

impl ToRust for ArithOp {
    fn to_rust(&self, ir: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        match self {
            ArithOp::Add => quote::quote! { #ir::ArithOp::Add },
            ArithOp::Sub => quote::quote! { #ir::ArithOp::Sub },
            ArithOp::Mul => quote::quote! { #ir::ArithOp::Mul },
            ArithOp::Div => quote::quote! { #ir::ArithOp::Div },
        }
    }
}

attributes! {
    /// `a op b` between two tensors of the same rank, broadcast.
    pub struct Arith {
        pub op: ArithOp,
    }
}

attributes! {
    /// `x op value`, or `value op x` when `reversed`.
    pub struct ArithScalar {
        pub op: ArithOp,
        pub value: f64,
        pub reversed: bool,
    }
}

impl Layer for Arith {
    /// PyTorch's broadcasting, from the last dimension: a free size meets an equal one, a 1,
    /// or a known size, which it must equal or be 1. Two different free sizes are refused:
    /// which one the output takes would depend on which is 1.
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], needs: &mut Needs) -> Option<Vec<Size>> {
        let [a, b] = xs else { return None };
        let one = Size::known(1);
        let aligned = |x: &[Size]| -> Vec<Size> {
            let mut x: Vec<Size> = x.iter().rev().take(out.len()).rev().cloned().collect();
            while x.len() < out.len() {
                x.insert(0, one.clone());
            }
            x
        };
        aligned(a)
            .iter()
            .zip(&aligned(b))
            .map(|(x, y)| match (x.as_known(), y.as_known()) {
                _ if x == y => Some(x.clone()),
                (_, Some(1)) => Some(x.clone()),
                (Some(1), _) => Some(y.clone()),
                (None, Some(_)) => {
                    needs.broadcast(x, y);
                    Some(y.clone())
                }
                (Some(_), None) => {
                    needs.broadcast(y, x);
                    Some(x.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        Ok(g.node(self.op.onnx(), &[&xs[0], &xs[1]], vec![]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.name())
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("{} {} {}", xs[0], self.op.symbol(), xs[1]))
    }

    fn family(&self) -> Family {
        Family::Join
    }
}

impl Layer for ArithScalar {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let value = g.scalar("value", self.value as f32);
        Ok(match self.reversed {
            false => g.node(self.op.onnx(), &[&xs[0], &value], vec![]),
            true => g.node(self.op.onnx(), &[&value, &xs[0]], vec![]),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = py_float(self.value);
        match self.reversed {
            false => write!(f, "x {} {value}", self.op.symbol()),
            true => write!(f, "{value} {} x", self.op.symbol()),
        }
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        let value = py_float(self.value);
        PyTorch::Expr(match self.reversed {
            false => format!("{} {} {value}", xs[0], self.op.symbol()),
            true => format!("{value} {} {}", self.op.symbol(), xs[0]),
        })
    }

    fn family(&self) -> Family {
        Family::Other
    }
}

/// The shape of `a op b`: equal ranks, the same batch, and each other dimension equal or 1
/// in one of them (PyTorch's broadcasting, with the batch kept as dimension 0). A declared
/// `param`, which has no batch, lines up with the other side from its last dimension, as in
/// PyTorch; where it has as many dimensions as a batched tensor, its first meets the batch and
/// must be 1. The error blames `b`.
pub fn broadcast(op: ArithOp, a: &Shape, b: &Shape) -> Result<Shape, OpError> {
    let verb = op.verb();
    let mismatch = |detail: String| {
        OpError::new(Code::AddMismatch, format!("cannot {verb} tensors of shapes {a} and {b}"))
            .label(format!("this is {b}"))
            .note(detail)
    };
    // The batch of the result, and each side's sizes after it, padded with leading 1s.
    let (batch, left, right) = match (&a.batch, &b.batch) {
        (Batch::None, Batch::None) => {
            let rank = a.dims.len().max(b.dims.len());
            (Batch::None, padded(&a.dims, rank), padded(&b.dims, rank))
        }
        (Batch::None, _) | (_, Batch::None) => {
            let param_left = a.batch == Batch::None;
            let (batched, param, side) = if param_left { (b, a, "left") } else { (a, b, "right") };
            if param.rank() > batched.rank() {
                return Err(mismatch(format!(
                    "the parameter on the {side} has {} dimensions, more than the {} of the tensor it \
                     meets, whose batch must stay first",
                    param.rank(),
                    batched.rank()
                )));
            }
            let example = if param.rank() == batched.rank() {
                if param.dims[0] != 1 {
                    return Err(mismatch(format!(
                        "the parameter on the {side} has as many dimensions as the batched tensor, so \
                         its first, {}, meets the batch and must be 1",
                        param.dims[0]
                    )));
                }
                &param.dims[1..]
            } else {
                &param.dims[..]
            };
            let example = padded(example, batched.dims.len());
            match param_left {
                true => (batched.batch.clone(), example, batched.dims.clone()),
                false => (batched.batch.clone(), batched.dims.clone(), example),
            }
        }
        _ => {
            if a.rank() != b.rank() {
                return Err(mismatch(format!(
                    "the left side has {} dimensions and the right side {}; nnc broadcasts tensors of \
                     equal rank, whose every dimension but the batch is equal or 1 in one of them",
                    a.rank(),
                    b.rank()
                ))
                .hint("give the smaller tensor size-1 dimensions where the other has more (`adaptive_avgpool(1)` keeps [C, 1, 1])"));
            }
            if a.batch != b.batch {
                let batch = |s: &Shape| match &s.batch {
                    Batch::Symbolic(name) => name.clone(),
                    Batch::Fixed(n) => n.to_string(),
                    Batch::None => String::new(),
                };
                return Err(mismatch(format!("their batches differ: {} and {}", batch(a), batch(b))));
            }
            (a.batch.clone(), a.dims.clone(), b.dims.clone())
        }
    };
    // Dimensions are numbered as PyTorch numbers them, the batch (if any) being 0.
    let first = usize::from(batch != Batch::None);
    let mut dims = Vec::with_capacity(left.len());
    for (axis, (&x, &y)) in left.iter().zip(&right).enumerate() {
        dims.push(match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => {
                let mut err = mismatch(format!(
                    "dimension {} is {x} on the left and {y} on the right; each dimension must be \
                     equal, or 1 on one side",
                    axis + first
                ));
                if op == ArithOp::Add {
                    if let Some(fix) = projection_hint(a, b) {
                        err = err.hint(fix);
                    }
                }
                return Err(err);
            }
        });
    }
    Ok(Shape { batch, dims, dtype: a.dtype })
}

/// `dims` with leading 1s up to `rank` sizes.
fn padded(dims: &[u64], rank: usize) -> Vec<u64> {
    std::iter::repeat_n(1, rank.saturating_sub(dims.len())).chain(dims.iter().copied()).collect()
}

/// A 1×1 convolution that maps `from` onto `to`, as a residual block's skip path would use.
fn projection_hint(to: &Shape, from: &Shape) -> Option<String> {
    let [c_to, h_to, w_to]: [u64; 3] = to.dims[..].try_into().ok()?;
    let [c_from, h_from, w_from]: [u64; 3] = from.dims[..].try_into().ok()?;
    let stride =
        (1..=h_from.max(1)).find(|s| (h_from - 1) / s + 1 == h_to && (w_from - 1) / s + 1 == w_to)?;
    let stride_arg = if stride == 1 { String::new() } else { format!(", stride={stride}") };
    Some(format!(
        "project the right side with a 1×1 convolution, `conv2d({c_to}, 1{stride_arg})`, which maps \
         [{c_from}, {h_from}, {w_from}] to [{c_to}, {h_to}, {w_to}]"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(dims: &[u64]) -> Shape {
        Shape::float(Batch::Symbolic("N".into()), dims.to_vec())
    }

    #[test]
    fn broadcasting_keeps_the_larger_of_each_dimension() {
        assert_eq!(broadcast(ArithOp::Add, &s(&[64, 8, 8]), &s(&[64, 8, 8])).unwrap(), s(&[64, 8, 8]));
        assert_eq!(broadcast(ArithOp::Mul, &s(&[64, 8, 8]), &s(&[64, 1, 1])).unwrap(), s(&[64, 8, 8]));
        assert_eq!(broadcast(ArithOp::Div, &s(&[1, 8, 1]), &s(&[3, 1, 5])).unwrap(), s(&[3, 8, 5]));
    }

    /// A declared `param` (no batch) lines up from its last dimension, as in PyTorch.
    #[test]
    fn a_param_broadcasts_from_its_last_dimension() {
        let p = |dims: &[u64]| Shape::float(Batch::None, dims.to_vec());
        assert_eq!(broadcast(ArithOp::Mul, &p(&[64, 1, 1]), &s(&[64, 8, 8])).unwrap(), s(&[64, 8, 8]));
        assert_eq!(broadcast(ArithOp::Add, &s(&[16, 64]), &p(&[1, 16, 64])).unwrap(), s(&[16, 64]));
        assert_eq!(broadcast(ArithOp::Add, &s(&[3, 1, 5]), &p(&[4, 1])).unwrap(), s(&[3, 4, 5]));
        assert_eq!(broadcast(ArithOp::Mul, &p(&[5]), &p(&[2, 1])).unwrap(), p(&[2, 5]));
        // Its first dimension would meet the batch; more dimensions would move the batch.
        let err = broadcast(ArithOp::Add, &s(&[16, 64]), &p(&[2, 16, 64])).unwrap_err();
        assert!(err.notes[0].contains("its first, 2, meets the batch"), "{:?}", err.notes);
        assert!(broadcast(ArithOp::Add, &s(&[64]), &p(&[1, 1, 64])).is_err());
        let err = broadcast(ArithOp::Mul, &p(&[3, 1, 1]), &s(&[4, 8, 8])).unwrap_err();
        assert!(err.notes[0].contains("dimension 1 is 3 on the left and 4 on the right"), "{:?}", err.notes);
    }

    #[test]
    fn a_mismatch_names_the_axis_and_suggests_a_projection() {
        let err = broadcast(ArithOp::Add, &s(&[128, 28, 28]), &s(&[64, 56, 56])).unwrap_err();
        assert_eq!(err.code, Code::AddMismatch);
        assert!(err.notes[0].contains("dimension 1 is 128 on the left and 64 on the right"));
        assert!(err.hint.unwrap().contains("`conv2d(128, 1, stride=2)`"));
        let err = broadcast(ArithOp::Mul, &s(&[64, 8, 8]), &s(&[64])).unwrap_err();
        assert!(err.message.contains("cannot multiply tensors of shapes [N, 64, 8, 8] and [N, 64]"));
    }
}
