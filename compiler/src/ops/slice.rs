//! Slicing and indexing (`x[:, 0]`, `x[:, :, 1:]`, `x[..., ::2]`), and the pieces of
//! `chunk(2, dim=1)` and `split((16, 48), dim=1)`, each a slice of its input. The language
//! spells them itself, so they have shape rules but no layer of the registry; every piece is
//! its own node, so that every node keeps one output. Each follows PyTorch: Python's slice
//! rules (bounds clamped, negative from the end), and `chunk`'s and `split`'s piece sizes.
//! The batch, dimension 0, is only ever `:`.

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::{attributes, ArgValue, Args, Built, Kind, Layer, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use super::{SizeOrigin, ToRust};
use crate::diagnostic::Code;
use crate::shape::{DType, Shape};

/// One dimension of a [`Slice`], from dimension 1 on, resolved against the input's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceItem {
    /// `:`, the whole dimension.
    All,
    /// `start:end:step`, with `start < end` within the dimension and `step` at least 1.
    Range { start: u64, end: u64, step: u64 },
    /// One index, which removes the dimension.
    Index(u64),
}

impl ToRust for SliceItem {
    fn to_rust(&self, ir: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        match self {
            SliceItem::All => quote::quote! { #ir::SliceItem::All },
            SliceItem::Range { start, end, step } => {
                let (start, end, step) = (start.to_rust(ir), end.to_rust(ir), step.to_rust(ir));
                quote::quote! { #ir::SliceItem::Range { start: #start, end: #end, step: #step } }
            }
            SliceItem::Index(i) => {
                let i = i.to_rust(ir);
                quote::quote! { #ir::SliceItem::Index(#i) }
            }
        }
    }
}

impl fmt::Display for SliceItem {
    /// As Python writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SliceItem::All => f.write_str(":"),
            SliceItem::Range { start, end, step: 1 } => write!(f, "{start}:{end}"),
            SliceItem::Range { start, end, step } => write!(f, "{start}:{end}:{step}"),
            SliceItem::Index(i) => write!(f, "{i}"),
        }
    }
}

attributes! {
    /// `x[:, items...]`: the items apply to dimensions 1, 2, ... in order; the dimensions
    /// after the last are whole.
    pub struct Slice {
        pub items: Cow<'static, [SliceItem]>,
    }
}

impl Slice {
    /// `[:, 0:16]`
    fn text(&self) -> String {
        let items: Vec<String> = self.items.iter().map(SliceItem::to_string).collect();
        format!("[:, {}]", items.join(", "))
    }
}

impl Layer for Slice {
    /// One `Slice` of every range, then a `Gather` of each index, the last dimension's first,
    /// so that each removed dimension leaves the earlier ones where they were.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let (mut starts, mut ends, mut axes, mut steps) = (vec![], vec![], vec![], vec![]);
        for (i, item) in self.items.iter().enumerate() {
            if let SliceItem::Range { start, end, step } = *item {
                starts.push(start as i64);
                ends.push(end as i64);
                axes.push(i as i64 + 1);
                steps.push(step as i64);
            }
        }
        let mut y = xs[0].clone();
        if !axes.is_empty() {
            let inputs = [
                g.ints("starts", &starts),
                g.ints("ends", &ends),
                g.ints("axes", &axes),
                g.ints("steps", &steps),
            ];
            y = g.node("Slice", &[&y, &inputs[0], &inputs[1], &inputs[2], &inputs[3]], vec![]);
        }
        for (i, item) in self.items.iter().enumerate().rev() {
            if let SliceItem::Index(index) = *item {
                let index = g.ints("index", &[index as i64]);
                y = g.node("Gather", &[&y, &index], vec![("axis", Attr::Int(i as i64 + 1))]);
                let axes = g.ints("axes", &[i as i64 + 1]);
                y = g.node("Squeeze", &[&y, &axes], vec![]);
            }
        }
        Ok(y)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slice {}", self.text())
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("{}{}", xs[0], self.text()))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Lost
    }
}

/// A position between brackets as written, its integers evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Index(i64),
    Range { start: Option<i64>, end: Option<i64>, step: Option<i64> },
    Ellipsis,
}

/// The shape and op of `input[positions]`, or the index of the position at fault and why.
pub fn slice(input: &Shape, positions: &[Position]) -> Result<(Shape, Slice), (usize, OpError)> {
    let rank = input.rank();
    let ellipses: Vec<usize> =
        positions.iter().enumerate().filter(|(_, p)| **p == Position::Ellipsis).map(|(i, _)| i).collect();
    if let Some(&second) = ellipses.get(1) {
        return Err((
            second,
            OpError::new(Code::Value, "an index can hold only one `...`").label("a second `...`"),
        ));
    }
    let given = positions.len() - ellipses.len();
    if given > rank {
        let err = OpError::new(
            Code::Value,
            format!("too many indices for {input}: {given} positions for {rank} dimensions"),
        )
        .label(format!("the tensor has {rank} dimensions, the batch included"));
        return Err((rank.min(positions.len() - 1), err));
    }
    // Each position with the dimension it applies to: `...` stands for the whole dimensions
    // it covers.
    let mut resolved: Vec<(usize, Position)> = Vec::with_capacity(rank);
    for (at, &position) in positions.iter().enumerate() {
        match position {
            Position::Ellipsis => {
                let whole = Position::Range { start: None, end: None, step: None };
                resolved.extend(std::iter::repeat_n((at, whole), rank - given));
            }
            _ => resolved.push((at, position)),
        }
    }
    let (at, batch) = resolved[0];
    if !matches!(batch, Position::Range { start: None, end: None, step: None | Some(1) }) {
        let err = OpError::new(Code::Value, "the batch, dimension 0, can only be indexed with `:`")
            .label("this indexes the batch")
            .hint("start the index with `:` to keep the batch: `x[:, 0]` takes index 0 of dimension 1");
        return Err((at, err));
    }
    let mut items = Vec::with_capacity(rank - 1);
    let mut dims = Vec::with_capacity(rank - 1);
    for (d, &(at, position)) in resolved.iter().enumerate().skip(1) {
        let size = input.dims[d - 1];
        let item = resolve(position, d, size, input).map_err(|err| (at, err))?;
        match item {
            SliceItem::All => dims.push(size),
            SliceItem::Range { start, end, step } => dims.push((end - start).div_ceil(step)),
            SliceItem::Index(_) => {}
        }
        items.push(item);
    }
    dims.extend_from_slice(&input.dims[items.len()..]);
    while items.last() == Some(&SliceItem::All) {
        items.pop();
    }
    Ok((input.with_dims(dims), Slice { items: Cow::Owned(items) }))
}

/// One position on dimension `d` of size `size`, with Python's rules: an index must lie in
/// `-size..size`; a slice's bounds are clamped to the dimension, negative counting from its
/// end, and its step must be positive (PyTorch's tensors have no negative steps).
fn resolve(position: Position, d: usize, size: u64, input: &Shape) -> Result<SliceItem, OpError> {
    let size_i = size as i64;
    let from_end = |i: i64| if i < 0 { i.saturating_add(size_i) } else { i };
    match position {
        Position::Ellipsis => unreachable!("resolved by the caller"),
        Position::Index(i) => match from_end(i) {
            r if (0..size_i).contains(&r) => Ok(SliceItem::Index(r as u64)),
            _ => Err(OpError::new(
                Code::Value,
                format!("index {i} is out of range for dimension {d} of {input}, of size {size}"),
            )
            .label(format!("must lie in -{size}..{size}"))),
        },
        Position::Range { start, end, step } => {
            let step = step.unwrap_or(1);
            if step < 1 {
                let why = if step == 0 {
                    "cannot be 0"
                } else {
                    "must be positive: tensors have no negative steps"
                };
                return Err(OpError::new(Code::Value, format!("a slice's step {why}"))
                    .label(format!("the step is {step}")));
            }
            let start = start.map_or(0, |s| from_end(s).clamp(0, size_i));
            let end = end.map_or(size_i, |e| from_end(e).clamp(0, size_i));
            let item = SliceItem::Range { start: start as u64, end: end as u64, step: step as u64 };
            if start >= end {
                return Err(OpError::new(
                    Code::Value,
                    format!("the slice {item} of dimension {d} of {input}, of size {size}, is empty"),
                )
                .label("selects nothing")
                .note("nnc has no empty tensors"));
            }
            Ok(match (start, end, step) {
                (0, e, 1) if e == size_i => SliceItem::All,
                _ => item,
            })
        }
    }
}

/// The signatures of `chunk` and `split`, which are no layers (each gives several tensors,
/// which the expander makes into slices), for binding and checking their arguments as a
/// layer's are. `dim` defaults to 1, the channels, as `cat`'s does: PyTorch's 0 is the batch.
pub static CHUNK: OpSpec = OpSpec {
    name: "chunk",
    summary: "`chunks` pieces of `dim`, of ceil(size / chunks) each, the last smaller, as torch.chunk",
    torch: "torch.chunk",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[
        ParamSpec::required("chunks", Kind::Int),
        ParamSpec::optional("dim", Kind::Int, ArgValue::Int(1)),
    ],
    apply: several,
};

pub static SPLIT: OpSpec = OpSpec {
    name: "split",
    summary: "pieces of `dim` of `split_size_or_sections` each (the last smaller), or of those sizes, as torch.split",
    torch: "torch.split",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[
        ParamSpec::required("split_size_or_sections", Kind::Ints),
        ParamSpec::optional("dim", Kind::Int, ArgValue::Int(1)),
    ],
    apply: several,
};

/// `chunk` and `split` give several tensors, never one node: the expander calls [`pieces`].
fn several(_: &Args, _: &Shape) -> Result<Built, OpError> {
    Err(OpError::new(Code::Structure, "this gives several tensors: bind them with `a, b = ...`"))
}

/// The pieces of `chunk` or `split` (`spec`) on `input`: one slice op and shape each.
pub fn pieces(spec: &OpSpec, args: &Args, input: &Shape) -> Result<Vec<(Slice, Shape)>, OpError> {
    let dim = super::flatten::axis(args, "dim", input)?;
    let size = input.dims[dim - 1];
    let lengths = match spec.name {
        "chunk" => chunk_lengths(args.int("chunks"), size)?,
        _ => split_lengths(args.ints("split_size_or_sections"), size, dim)?,
    };
    let mut start = 0;
    let pieces = lengths
        .into_iter()
        .map(|length| {
            let mut items = vec![SliceItem::All; dim - 1];
            items.push(SliceItem::Range { start, end: start + length, step: 1 });
            start += length;
            let mut dims = input.dims.clone();
            dims[dim - 1] = length;
            (Slice { items: Cow::Owned(items) }, input.with_dims(dims))
        })
        .collect();
    Ok(pieces)
}

/// PyTorch's chunk: pieces of ceil(size / chunks), the last holding the rest, so there may be
/// fewer than `chunks` (5 in 4 chunks is 2, 2, 1).
fn chunk_lengths(chunks: i64, size: u64) -> Result<Vec<u64>, OpError> {
    if chunks < 1 {
        return Err(
            OpError::new(Code::Value, format!("`chunks` must be at least 1, but is {chunks}")).at("chunks")
        );
    }
    lengths_of(size.div_ceil(chunks as u64), size)
}

/// Pieces of `each`, the last holding what is left; refused, before anything is made for them,
/// when there are more than a network may have layers (each piece is one).
fn lengths_of(each: u64, size: u64) -> Result<Vec<u64>, OpError> {
    let count = size.div_ceil(each);
    if count > crate::MAX_LAYERS as u64 {
        let max = crate::MAX_LAYERS;
        return Err(OpError::new(
            Code::Limit,
            format!("this makes {count} pieces, each a layer, over the limit of {max} layers"),
        )
        .label(format!("{count} pieces of {each}")));
    }
    Ok((0..count).map(|i| each.min(size - i * each)).collect())
}

/// PyTorch's split: an integer is the size of each piece (the last holding the rest); a tuple
/// gives each piece's size, which must add up to the dimension's.
fn split_lengths((sizes, tuple): (Vec<i64>, bool), size: u64, dim: usize) -> Result<Vec<u64>, OpError> {
    const ARG: &str = "split_size_or_sections";
    if let Some(&bad) = sizes.iter().find(|&&s| s < 1) {
        return Err(OpError::new(
            Code::Value,
            format!("the sizes of `split` must be at least 1, but one is {bad}"),
        )
        .note("nnc has no empty tensors")
        .at(ARG));
    }
    let sizes: Vec<u64> = sizes.into_iter().map(|s| s as u64).collect();
    if !tuple {
        return lengths_of(sizes[0], size);
    }
    let total = sizes.iter().try_fold(0u64, |acc, &s| acc.checked_add(s));
    if total != Some(size) {
        let shown = sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let sum = total.map_or("more than 64 bits hold".to_string(), |t| t.to_string());
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("`split` sizes ({shown}) add up to {sum}, but dimension {dim} has size {size}"),
        )
        .label(format!("must add up to {size}"))
        .hint("give an integer instead to cut pieces of that size, the last smaller")
        .at(ARG));
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Batch;

    fn s(dims: &[u64]) -> Shape {
        Shape::float(Batch::Symbolic("N".into()), dims.to_vec())
    }

    fn range(start: Option<i64>, end: Option<i64>, step: Option<i64>) -> Position {
        Position::Range { start, end, step }
    }

    const ALL: Position = Position::Range { start: None, end: None, step: None };

    #[test]
    fn pieces_follow_torch() {
        assert_eq!(chunk_lengths(2, 64).unwrap(), [32, 32]);
        assert_eq!(chunk_lengths(4, 5).unwrap(), [2, 2, 1]);
        assert_eq!(chunk_lengths(3, 2).unwrap(), [1, 1]);
        assert!(chunk_lengths(0, 4).is_err());
        assert_eq!(split_lengths((vec![16], false), 40, 1).unwrap(), [16, 16, 8]);
        assert_eq!(split_lengths((vec![16, 48], true), 64, 1).unwrap(), [16, 48]);
        let err = split_lengths((vec![16, 32], true), 64, 1).unwrap_err();
        assert_eq!(err.message, "`split` sizes (16, 32) add up to 48, but dimension 1 has size 64");
        assert!(split_lengths((vec![0], false), 4, 1).is_err());
    }

    #[test]
    fn slices_follow_python() {
        let x = s(&[3, 8, 8]);
        let (shape, op) = slice(&x, &[ALL, Position::Index(0)]).unwrap();
        assert_eq!((shape, op.text()), (s(&[8, 8]), "[:, 0]".to_string()));
        let (shape, op) = slice(&x, &[ALL, ALL, range(Some(1), None, None)]).unwrap();
        assert_eq!((shape, op.text()), (s(&[3, 7, 8]), "[:, :, 1:8]".to_string()));
        let (shape, op) = slice(&x, &[Position::Ellipsis, Position::Index(-1)]).unwrap();
        assert_eq!((shape, op.text()), (s(&[3, 8]), "[:, :, :, 7]".to_string()));
        let (shape, _) =
            slice(&x, &[ALL, ALL, range(None, None, Some(3)), range(Some(-100), Some(100), None)]).unwrap();
        assert_eq!(shape, s(&[3, 3, 8]));
        let (_, err) = slice(&x, &[ALL, Position::Index(3)]).unwrap_err();
        assert_eq!(err.message, "index 3 is out of range for dimension 1 of [N, 3, 8, 8], of size 3");
        assert_eq!(slice(&x, &[Position::Index(0)]).unwrap_err().0, 0);
        assert!(slice(&x, &[ALL, range(Some(2), Some(1), None)]).is_err());
        assert!(slice(&x, &[ALL, range(None, None, Some(-1))]).is_err());
        assert!(slice(&x, &[ALL, ALL, ALL, ALL, ALL]).is_err());
        assert!(slice(&x, &[Position::Ellipsis, Position::Ellipsis]).is_err());
    }
}
