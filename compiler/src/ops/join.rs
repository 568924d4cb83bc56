//! Joins: `cat(a, b, dim=1)` (equal shapes except along `dim`) and `stack(a, b, dim=1)`
//! (equal shapes, joined along a new dimension `dim`). The language spells it itself
//! rather than as a layer, so it has a shape rule but no signature; its error carries a hint
//! computed from the shapes. (`a + b` and the other operators are in `arith.rs`.)

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::{attributes, Family, Layer, OpError, PyTorch};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::Shape;
use crate::size::Size;

attributes! {
    /// Concatenation along `dim`.
    pub struct Concat {
        pub dim: usize,
        /// For each input, whether it is a `param` (no batch, its first size 1) repeated
        /// along the batch of the others.
        pub expand: Cow<'static, [bool]>,
    }
}

impl Concat {
    /// The input that gives the batch size the expanded ones take.
    pub fn batched_input(&self) -> usize {
        self.expand.iter().position(|e| !e).unwrap_or(0)
    }
}

impl Layer for Concat {
    /// The sizes along `dim` add up; every other size must be equal. Only batched tensors
    /// have free sizes, so `dim` counts the batch, and an expanded `param`'s first size,
    /// which meets the batch, is left out.
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], needs: &mut Needs) -> Option<Vec<Size>> {
        if let Some(known) = super::free_known(xs, out) {
            return Some(known);
        }
        let axis = self.dim.checked_sub(1)?;
        let parts: Vec<&[Size]> =
            xs.iter().zip(self.expand.iter()).map(|(x, &expand)| if expand { &x[1..] } else { x }).collect();
        let first = parts.first()?;
        let mut dims = first.to_vec();
        for part in &parts[1..] {
            if part.len() != first.len() {
                return None;
            }
            for (i, (size, total)) in part.iter().zip(dims.iter_mut()).enumerate() {
                match i == axis {
                    true => *total = total.add(size)?,
                    false => needs.equal(total, size),
                }
            }
        }
        Some(dims)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let batched = &xs[self.batched_input()];
        let mut parts = Vec::new();
        for (i, (x, &expand)) in xs.iter().zip(self.expand.iter()).enumerate() {
            parts.push(match expand {
                true => {
                    let rest = g.input(i).dims[1..].to_vec();
                    let shape = g.batch_and(batched, &rest);
                    g.node("Expand", &[x, &shape], vec![])
                }
                false => x.clone(),
            });
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(g.node("Concat", &parts, vec![("axis", Attr::Int(self.dim as i64))]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cat dim {}", self.dim)
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        let batched = &xs[self.batched_input()];
        let parts: Vec<String> = xs
            .iter()
            .zip(self.expand.iter())
            .map(|(x, &expand)| match expand {
                true => format!("{x}.expand({batched}.shape[0], *{x}.shape[1:])"),
                false => x.clone(),
            })
            .collect();
        PyTorch::Expr(format!("torch.cat([{}], dim={})", parts.join(", "), self.dim))
    }

    fn family(&self) -> Family {
        Family::Join
    }
}

/// The shape of a concatenation along `dim` as written (the batch is 0, negative counts from
/// the end), and the dimension it resolves to.
pub fn concat(shapes: &[&Shape], dim: i64) -> Result<(Shape, usize), (usize, OpError)> {
    let first = shapes[0];
    let dim = super::axis("dim", dim, first).map_err(|err| (0, err))?;
    let mut dims = first.dims.clone();
    for (i, shape) in shapes.iter().enumerate().skip(1) {
        let differs_elsewhere = shape.rank() != first.rank()
            || shape.dims.iter().zip(&first.dims).enumerate().any(|(j, (a, b))| j + 1 != dim && a != b);
        if differs_elsewhere {
            let mut err = OpError::new(
                Code::ConcatMismatch,
                format!("cannot concatenate {first} and {shape} along dimension {dim}"),
            )
            .label(format!("input {} is {shape}", i + 1))
            .note(format!("input 1 is {first}; all inputs must agree on every dimension but {dim}"));
            if shape.rank() == 4 && first.rank() == 4 && dim == 1 {
                err = err.hint(
                    "branches must keep the same height and width: a k×k convolution keeps them with \
                     `padding=(k - 1) // 2` and stride 1",
                );
            }
            return Err((i, err));
        }
        let joined = dims[dim - 1]
            .checked_add(shape.dims[dim - 1])
            .ok_or_else(|| (i, OpError::new(Code::Arithmetic, "the concatenated size overflows 64 bits")))?;
        dims[dim - 1] = joined;
    }
    Ok((first.with_dims(dims), dim))
}

attributes! {
    /// Stacking along a new dimension `dim`.
    pub struct Stack {
        pub dim: usize,
    }
}

impl Layer for Stack {
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let axes = g.ints("axes", &[self.dim as i64]);
        let parts: Vec<String> = xs.iter().map(|x| g.node("Unsqueeze", &[x, &axes], vec![])).collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(g.node("Concat", &parts, vec![("axis", Attr::Int(self.dim as i64))]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stack dim {}", self.dim)
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("torch.stack([{}], dim={})", xs.join(", "), self.dim))
    }

    fn family(&self) -> Family {
        Family::Join
    }
}

/// The shape of `stack(..., dim)`: equal shapes, with a new dimension, the number of inputs,
/// at `dim` as written (1..=rank, or negative from the end of the output, as PyTorch counts
/// it), and the dimension it resolves to.
pub fn stack(shapes: &[&Shape], dim: i64) -> Result<(Shape, usize), (usize, OpError)> {
    let first = shapes[0];
    // The output has one dimension more than each input. `dim + rank` cannot overflow where
    // `dim` is negative.
    let rank = first.rank() as i64 + 1;
    let resolved = if dim < 0 { dim + rank } else { dim };
    if resolved < 1 || resolved >= rank {
        let msg = match resolved {
            0 => format!("`dim={dim}` is the batch dimension, which layers keep as it is"),
            _ => {
                format!("`dim={dim}` is out of range for stacking {first}: the result has {rank} dimensions")
            }
        };
        let err = OpError::new(Code::Value, msg)
            .label(format!("must lie in 1..{rank}, or be negative from the end"));
        return Err((0, err));
    }
    let dim = resolved as usize;
    if let Some(i) = shapes.iter().position(|s| *s != first) {
        let shape = shapes[i];
        let err = OpError::new(Code::ConcatMismatch, format!("cannot stack {first} and {shape}"))
            .label(format!("input {} is {shape}", i + 1))
            .note(format!("input 1 is {first}; `stack` needs equal shapes"));
        return Err((i, err));
    }
    let mut dims = first.dims.clone();
    dims.insert(dim - 1, shapes.len() as u64);
    Ok((first.with_dims(dims), dim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Batch;

    fn s(dims: &[u64]) -> Shape {
        Shape::float(Batch::Symbolic("N".into()), dims.to_vec())
    }

    #[test]
    fn stack_adds_a_dimension() {
        let a = s(&[64, 12]);
        assert_eq!(stack(&[&a, &a, &a], 1).unwrap(), (s(&[3, 64, 12]), 1));
        assert_eq!(stack(&[&a, &a], -1).unwrap(), (s(&[64, 12, 2]), 3));
        assert_eq!(stack(&[&a, &a], 3).unwrap(), (s(&[64, 12, 2]), 3));
        assert!(stack(&[&a, &a], 0).is_err());
        assert!(stack(&[&a, &a], 4).is_err());
        assert_eq!(stack(&[&a, &s(&[64, 13])], 1).unwrap_err().0, 1);
    }

    #[test]
    fn concat_sums_the_joined_axis() {
        let shapes = [s(&[64, 12, 12]), s(&[128, 12, 12]), s(&[32, 12, 12]), s(&[32, 12, 12])];
        let refs: Vec<&Shape> = shapes.iter().collect();
        assert_eq!(concat(&refs, 1).unwrap(), (s(&[256, 12, 12]), 1));
        assert_eq!(concat(&[&s(&[64, 12, 12]), &s(&[64, 12, 12])], -1).unwrap(), (s(&[64, 12, 24]), 3));
        let (at, err) = concat(&[&s(&[64, 12, 12]), &s(&[64, 13, 12])], 1).unwrap_err();
        assert_eq!((at, err.code), (1, Code::ConcatMismatch));
        assert!(concat(&[&s(&[4]), &s(&[4])], 0).is_err());
        // The dimension is shown as written, however far out of range.
        let (_, err) = concat(&[&s(&[4]), &s(&[4])], i64::MAX).unwrap_err();
        assert_eq!(
            err.message,
            "`dim=9223372036854775807` is out of range for [N, 4], which has 2 dimensions"
        );
        let (_, err) = concat(&[&s(&[4]), &s(&[4])], i64::MIN).unwrap_err();
        assert_eq!(
            err.message,
            "`dim=-9223372036854775808` is out of range for [N, 4], which has 2 dimensions"
        );
    }
}
