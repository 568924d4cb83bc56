//! Contractions between tensors: `matmul(a, b)`, PyTorch's `torch.matmul` on matrices in the
//! last two dimensions, the dimensions before them broadcast, and
//! `scaled_dot_product_attention(q, k, v, mask=…, is_causal=false, scale=…)`, PyTorch's
//! functional attention, and `einsum("nqd,nkd->nqk", q, k)`, `torch.einsum` with an explicit
//! output, each operand's batch its first subscript; the attention's bool `mask` ([N, S], a key padding mask, or [N, L, S]; true
//! where a query may attend) is broadcast over the heads. The language spells them as calls of several tensors, as `cat`, so they have
//! shape rules but no signature. Either side of `matmul` may be a `param` (a weight matrix
//! `[k, m]`), broadcast as PyTorch broadcasts it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use super::onnx::{AttentionSpec, Attr, Onnx, OnnxError};

use super::arith::{broadcast, ArithOp};
use super::layer::py_float;
use super::{attributes, product, Family, Layer, OpError, PyTorch};
use crate::diagnostic::Code;
use crate::shape::{Batch, Shape};

attributes! {
    /// `torch.matmul(a, b)`.
    pub struct Matmul;
}

impl Layer for Matmul {
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        Ok(g.node("MatMul", &[&xs[0], &xs[1]], vec![]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("matmul")
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("torch.matmul({}, {})", xs[0], xs[1]))
    }

    fn family(&self) -> Family {
        Family::Join
    }
}

attributes! {
    /// `torch.einsum(equation, *operands)`.
    pub struct Einsum {
        pub equation: Cow<'static, str>,
    }
}

impl Layer for Einsum {
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        // ONNX's Einsum broadcasts only under an ellipsis: an operand whose size 1 broadcasts
        // against another's is expanded to the full size first, each subscript's size as the
        // shape rule found it.
        let shapes: Vec<Shape> = (0..xs.len()).map(|i| g.input(i).clone()).collect();
        let (_, _, full) = einsum_sizes(&self.equation, &shapes.iter().collect::<Vec<_>>())
            .map_err(|(_, e)| g.unsupported(e.message))?;
        let terms = self.equation.split_once("->").map_or("", |(terms, _)| terms);
        let terms: Vec<Vec<char>> = terms.split(',').map(|t| t.trim().chars().collect()).collect();
        let mut inputs = Vec::with_capacity(xs.len());
        for ((x, letters), shape) in xs.iter().zip(&terms).zip(&shapes) {
            let batched = usize::from(shape.batch != Batch::None);
            let wanted: Vec<i64> = letters.iter().skip(batched).map(|l| full[l] as i64).collect();
            let own: Vec<i64> = shape.dims.iter().map(|&d| d as i64).collect();
            inputs.push(match wanted == own {
                true => x.clone(),
                // A batch stays as it is: Expand keeps a size where the shape asks for 1.
                false => {
                    let target: Vec<i64> = std::iter::repeat_n(1, batched).chain(wanted).collect();
                    let target = g.ints("einsum_shape", &target);
                    g.node("Expand", &[x, &target], vec![])
                }
            });
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(g.node("Einsum", &inputs, vec![("equation", Attr::Str(self.equation.to_string()))]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "einsum {}", self.equation)
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("torch.einsum({:?}, {})", self.equation, xs.join(", ")))
    }

    fn family(&self) -> Family {
        Family::Join
    }
}

/// The shape of `einsum(equation, operands...)` and its multiply-adds per example (one per
/// combination of the subscripts' sizes, the batch's aside); the error's index is the operand
/// it blames, or [`EQUATION`] for the equation itself.
pub const EQUATION: usize = usize::MAX;

pub fn einsum(equation: &str, shapes: &[&Shape]) -> Result<(Shape, u64), (usize, OpError)> {
    einsum_sizes(equation, shapes).map(|(shape, macs, _)| (shape, macs))
}

/// Each subscript's size: the operands' where they agree, the other's where one is 1.
type Subscripts = BTreeMap<char, u64>;

/// [`einsum`]'s rule, with each subscript's size besides, which the ONNX writer expands a
/// broadcast operand to.
fn einsum_sizes(equation: &str, shapes: &[&Shape]) -> Result<(Shape, u64, Subscripts), (usize, OpError)> {
    let bad = |i: usize, message: String| (i, OpError::new(Code::Value, message));
    let Some((inputs, output)) = equation.split_once("->") else {
        return Err(bad(
            EQUATION,
            format!("the equation {equation:?} has no `->` and output subscripts; nnc needs them written"),
        ));
    };
    let terms: Vec<&str> = inputs.split(',').map(str::trim).collect();
    if terms.len() != shapes.len() {
        return Err(bad(
            EQUATION,
            format!(
                "the equation {equation:?} has {} operands, but {} tensors follow it",
                terms.len(),
                shapes.len()
            ),
        ));
    }
    let output = output.trim();
    let letters_of = |term: &str, i: usize| -> Result<Vec<char>, (usize, OpError)> {
        let letters: Vec<char> = term.chars().collect();
        if let Some(c) = letters.iter().find(|c| !c.is_ascii_alphabetic()) {
            return Err(bad(
                i,
                format!("subscripts are letters, but {term:?} holds {c:?} (nnc has no `...`)"),
            ));
        }
        if let Some((k, c)) = letters.iter().enumerate().find(|(k, c)| letters[..*k].contains(c)) {
            let _ = k;
            return Err(bad(i, format!("{term:?} repeats {c:?}; nnc takes no diagonals")));
        }
        Ok(letters)
    };
    // Each letter's size: the operands', one that is 1 broadcasting against another's; the
    // batch is the first letter of every batched operand and of the output.
    let mut sizes: BTreeMap<char, u64> = BTreeMap::new();
    let mut batch_letter = None;
    for (i, (term, shape)) in terms.iter().zip(shapes).enumerate() {
        let letters = letters_of(term, i)?;
        let batched = shape.batch != Batch::None;
        let dims: Vec<Option<u64>> = if batched {
            std::iter::once(None).chain(shape.dims.iter().map(|&d| Some(d))).collect()
        } else {
            shape.dims.iter().map(|&d| Some(d)).collect()
        };
        if letters.len() != dims.len() {
            return Err((
                i,
                OpError::new(
                    Code::ShapeMismatch,
                    format!(
                        "{term:?} names {} dimensions, but the operand {shape} has {}",
                        letters.len(),
                        dims.len()
                    ),
                )
                .label(format!("this is {shape}")),
            ));
        }
        for (&letter, size) in letters.iter().zip(dims) {
            match size {
                None => match batch_letter {
                    // A `param` before this operand may not have held the batch's letter.
                    None if sizes.contains_key(&letter) => {
                        return Err((
                            i,
                            OpError::new(
                                Code::ShapeMismatch,
                                format!("{letter:?} is the batch, which a `param` cannot hold"),
                            )
                            .label(format!("this is {shape}")),
                        ));
                    }
                    None => batch_letter = Some(letter),
                    Some(b) if b == letter => {}
                    Some(b) => {
                        return Err((
                            i,
                            OpError::new(
                                Code::ShapeMismatch,
                                format!("the batch is {b:?} in the first operand but {letter:?} in {term:?}"),
                            )
                            .label(format!("this is {shape}")),
                        ));
                    }
                },
                Some(size) => match sizes.get(&letter) {
                    // A size of 1 broadcasts against the other operands', as in torch.einsum.
                    Some(&other) if other != size && other != 1 && size != 1 => {
                        return Err((
                            i,
                            OpError::new(
                                Code::ShapeMismatch,
                                format!("{letter:?} is {other} in one operand and {size} in {term:?}"),
                            )
                            .label(format!("this is {shape}"))
                            .note("a subscript's sizes must be equal, or 1 in an operand that broadcasts"),
                        ));
                    }
                    Some(&other) if size == 1 || other == size => {}
                    _ => {
                        if Some(letter) == batch_letter {
                            return Err((
                                i,
                                OpError::new(
                                    Code::ShapeMismatch,
                                    format!("{letter:?} is the batch, which a `param` cannot hold"),
                                )
                                .label(format!("this is {shape}")),
                            ));
                        }
                        sizes.insert(letter, size);
                    }
                },
            }
        }
    }
    let out = letters_of(output, EQUATION)?;
    let Some(batch) = batch_letter else {
        return Err(bad(EQUATION, "no operand has a batch; einsum needs one batched tensor".to_string()));
    };
    if out.first() != Some(&batch) {
        return Err(bad(EQUATION, format!("the output {output:?} must keep the batch, {batch:?}, first")));
    }
    let mut dims = Vec::with_capacity(out.len() - 1);
    for letter in &out[1..] {
        match sizes.get(letter) {
            Some(&size) => dims.push(size),
            None => return Err(bad(EQUATION, format!("the output's {letter:?} is in no operand"))),
        }
    }
    let all: Vec<u64> = sizes.values().copied().collect();
    let macs = product("multiply-add count", &all).map_err(|e| (EQUATION, e))?;
    let first = shapes.iter().find(|s| s.batch != Batch::None).expect("a batched operand");
    Ok((first.with_dims(dims), macs, sizes))
}

attributes! {
    /// `nn.functional.scaled_dot_product_attention(q, k, v, is_causal=.., scale=..)`.
    pub struct Attention {
        pub is_causal: bool,
        /// A fourth input, a bool mask, broadcast over the dimensions between its batch and
        /// its last one or two.
        pub masked: bool,
        /// The scores' factor; PyTorch's default, 1/√E, where absent.
        pub scale: Option<f64>,
    }
}

impl Layer for Attention {
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let (q, k) = (g.input(0).clone(), g.input(1).clone());
        let rank = q.rank();
        let (l, e, s) = (q.dims[q.dims.len() - 2], q.dims[q.dims.len() - 1], k.dims[k.dims.len() - 2]);
        let mask = self.masked.then(|| xs[3].as_str());
        let how = AttentionSpec { rank, sizes: [l, s, e], mask, causal: self.is_causal, scale: self.scale };
        Ok(g.attention([&xs[0], &xs[1], &xs[2]], &how))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("scaled_dot_product_attention")?;
        if self.is_causal {
            f.write_str(", causal")?;
        }
        if let Some(scale) = self.scale {
            write!(f, ", scale {}", py_float(scale))?;
        }
        Ok(())
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        let mut args = xs[..3].join(", ");
        if let Some(mask) = xs.get(3).filter(|_| self.masked) {
            // [N, S] or [N, L, S] given 1s for the dimensions between, up to the key's rank.
            args += &format!(
                ", attn_mask={mask}.reshape({mask}.shape[0], *([1] * ({k}.dim() - {mask}.dim())), *{mask}.shape[1:])",
                k = xs[1]
            );
        }
        if self.is_causal {
            args += ", is_causal=True";
        }
        if let Some(scale) = self.scale {
            args += &format!(", scale={}", py_float(scale));
        }
        PyTorch::Expr(format!("nn.functional.scaled_dot_product_attention({args})"))
    }

    fn family(&self) -> Family {
        Family::Join
    }
}

/// The dimensions before a tensor's last two, as a shape of their own (its batch kept), and
/// its last two; an error naming `what` for a tensor of fewer than two dimensions after its
/// batch (a `param` needs two in all).
fn matrices(what: &str, shape: &Shape) -> Result<(Shape, [u64; 2]), OpError> {
    let n = shape.dims.len();
    if n < 2 {
        let needs = match shape.batch {
            Batch::None => "a `param` of two dimensions or more ([k, m])",
            _ => "a tensor of matrices, [N, ..., rows, columns]",
        };
        return Err(OpError::new(Code::ShapeMismatch, format!("{what} needs {needs}, but gets {shape}"))
            .label(format!("this is {shape}"))
            .hint("give a sequence of features its positions first: [N, T, F]"));
    }
    let prefix = shape.with_dims(shape.dims[..n - 2].to_vec());
    Ok((prefix, [shape.dims[n - 2], shape.dims[n - 1]]))
}

/// The shape of `matmul(a, b)` and its multiply-adds per example; the error's index is the
/// input it blames.
pub fn matmul(a: &Shape, b: &Shape) -> Result<(Shape, u64), (usize, OpError)> {
    let (prefix_a, [n, k]) = matrices("`matmul`", a).map_err(|e| (0, e))?;
    let (prefix_b, [k2, m]) = matrices("`matmul`", b).map_err(|e| (1, e))?;
    if k != k2 {
        return Err((
            1,
            OpError::new(
                Code::ShapeMismatch,
                format!("cannot multiply {a} by {b}: the inner sizes {k} and {k2} differ"),
            )
            .label(format!("this is {b}, whose rows must number {k}"))
            .note(format!("matmul multiplies [.., n, k] by [.., k, m]; the left side's last size is {k}")),
        ));
    }
    let prefix = broadcast(ArithOp::Mul, &prefix_a, &prefix_b).map_err(|e| (1, e))?;
    let mut dims = prefix.dims.clone();
    dims.extend([n, m]);
    let macs = product("multiply-add count", &[product("multiply-add count", &dims).map_err(|e| (1, e))?, k])
        .map_err(|e| (1, e))?;
    Ok((prefix.with_dims(dims), macs))
}

/// The shape of `scaled_dot_product_attention(q, k, v)`: `[N, .., L, E]`, `[N, .., S, E]` and
/// `[N, .., S, Ev]` give `[N, .., L, Ev]`; and its multiply-adds (the scores and their
/// weighted sum).
pub fn attention(
    q: &Shape,
    k: &Shape,
    v: &Shape,
    mask: Option<&Shape>,
) -> Result<(Shape, u64), (usize, OpError)> {
    let what = "`scaled_dot_product_attention`";
    let (prefix_q, [l, e]) = matrices(what, q).map_err(|err| (0, err))?;
    let (prefix_k, [s, e_k]) = matrices(what, k).map_err(|err| (1, err))?;
    let (prefix_v, [s_v, e_v]) = matrices(what, v).map_err(|err| (2, err))?;
    let mismatch = |i: usize, message: String, label: String| {
        (
            i,
            OpError::new(Code::ShapeMismatch, message)
                .label(label)
                .note(format!("the query is {q}, the key {k}, the value {v}")),
        )
    };
    if e_k != e {
        return Err(mismatch(
            1,
            format!("the key's features, {e_k}, differ from the query's, {e}"),
            format!("this is {k}"),
        ));
    }
    if s_v != s {
        return Err(mismatch(
            2,
            format!("the value has {s_v} positions, the key {s}"),
            format!("this is {v}"),
        ));
    }
    let prefix = broadcast(ArithOp::Mul, &prefix_q, &prefix_k)
        .and_then(|p| broadcast(ArithOp::Mul, &p, &prefix_v))
        .map_err(|err| (1, err))?;
    if let Some(mask) = mask {
        let fits = mask.batch == q.batch
            && match mask.dims[..] {
                [s_m] => s_m == s,
                [l_m, s_m] => (l_m == l || l_m == 1) && s_m == s,
                _ => false,
            };
        if !fits {
            return Err(mismatch(
                3,
                format!("the mask {mask} fits no attention of {l} queries over {s} positions"),
                format!("must be [N, {s}] (the positions each query may attend) or [N, {l}, {s}]"),
            ));
        }
    }
    let mut dims = prefix.dims.clone();
    dims.extend([l, e_v]);
    let heads = product("multiply-add count", &prefix.dims).map_err(|err| (0, err))?;
    let macs = product("multiply-add count", &[heads, l, s])
        .and_then(|scores| product("multiply-add count", &[scores, e + e_v]))
        .map_err(|err| (0, err))?;
    Ok((prefix.with_dims(dims), macs))
}
