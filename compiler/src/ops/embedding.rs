//! `embedding(num_embeddings, embedding_dim, padding_idx=…)`: PyTorch's `nn.Embedding`, a
//! table of `num_embeddings` trained vectors of `embedding_dim` floats, which turns each int
//! id of its input (`[N, ...] int`) into its row (`[N, ..., embedding_dim]`, float). The one
//! layer that takes int tensors: the ids of a network's `input tokens [N, T] int`.

use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::{
    attributes, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec, ParamSpec,
    PyTorch, Ranks, SizeOrigin, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static EMBEDDING: OpSpec = OpSpec {
    name: "embedding",
    summary:
        "a lookup table: each int id of the input becomes its row, a trained vector of embedding_dim floats",
    torch: "nn.Embedding",
    ranks: Ranks::AtLeast(1),
    takes: DType::Int,
    params: &[
        ParamSpec::required("num_embeddings", Kind::Int),
        ParamSpec::required("embedding_dim", Kind::Int),
        ParamSpec::optional("padding_idx", Kind::Int, ArgValue::Unset),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let num_embeddings = args.positive_int("num_embeddings")?;
    let embedding_dim = args.positive_int("embedding_dim")?;
    let padding_idx = match args.is_set("padding_idx") {
        true => Some(padding_row(args.int("padding_idx"), num_embeddings)?),
        false => None,
    };
    let mut dims = input.dims.clone();
    dims.push(embedding_dim);
    let op = Op::Embedding(Embedding { num_embeddings, embedding_dim, padding_idx });
    // A lookup multiplies and adds nothing: nnc counts no multiply-adds. torchinfo counts, by
    // its rule for any module's `weight` outside a convolution, the whole table once per
    // example (num_embeddings · embedding_dim), whatever the number of ids looked up.
    Built::free(op, Shape::float(input.batch.clone(), dims))
}

/// The row `padding_idx` names, counted from the end when negative, as `nn.Embedding` resolves
/// it; one outside the table is refused, as PyTorch refuses it.
fn padding_row(padding_idx: i64, num_embeddings: u64) -> Result<u64, OpError> {
    let num = num_embeddings as i128;
    let raw = padding_idx as i128;
    let row = if raw < 0 { raw + num } else { raw };
    if !(0..num).contains(&row) {
        return Err(OpError::new(
            Code::Value,
            format!(
                "`padding_idx` must name a row of the table, from -{num} to {}, but is {padding_idx}",
                num - 1
            ),
        )
        .label(format!("the table has {num} rows; `padding_idx` is {padding_idx}"))
        .note("a negative `padding_idx` counts from the end, as in PyTorch (-1 is the last row)")
        .at("padding_idx"));
    }
    Ok(row as u64)
}

attributes! {
    pub struct Embedding {
        pub num_embeddings: u64,
        pub embedding_dim: u64,
        /// The row that stays zero and gets no gradient, counted from 0.
        pub padding_idx: Option<u64>,
    }
}

impl Layer for Embedding {
    /// Each id's row: the ids' sizes, then the row's.
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        let mut dims = xs.first()?.to_vec();
        dims.push(Size::from(self.embedding_dim));
        Some(dims)
    }

    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let weight = g.tensor("weight")?;
        Ok(g.node("Gather", &[&weight, &xs[0]], vec![("axis", Attr::Int(0))]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "embedding {}×{}", self.num_embeddings, self.embedding_dim)?;
        match self.padding_idx {
            Some(row) => write!(f, ", padding_idx {row}"),
            None => Ok(()),
        }
    }

    /// The table, `weight` as `nn.Embedding` names it: normal(0, 1), its padding row zero.
    fn tensors(&self) -> Vec<TensorSpec> {
        let init = InitRule::Embedding { padding_idx: self.padding_idx };
        vec![TensorSpec::trained("weight", &[self.num_embeddings, self.embedding_dim], init)]
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let padding = match self.padding_idx {
            Some(row) => format!(", padding_idx={row}"),
            None => String::new(),
        };
        PyTorch::Module(format!("nn.Embedding({}, {}{padding})", self.num_embeddings, self.embedding_dim))
    }

    fn id_bound(&self) -> Option<u64> {
        Some(self.num_embeddings)
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Lost
    }

    fn family(&self) -> Family {
        Family::Linear
    }
}
