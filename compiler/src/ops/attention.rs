//! `multi_head_attention(num_heads, dropout=0.0, bias=true, is_causal=false, memory=…,
//! key_padding_mask=…)`: PyTorch's `nn.MultiheadAttention` with `batch_first=True`. As
//! self-attention, each position of a sequence `[N, T, E]` attends to every position (or,
//! `is_causal`, to itself and those before it, as a decoder's does); with `memory` [N, S, E],
//! cross-attention, each attends to the memory's positions (its keys and values, as a
//! transformer decoder's second attention reads the encoder's output). `key_padding_mask`, a
//! bool [N, S], leaves out the keys where it is true, PyTorch's meaning (the opposite of
//! `scaled_dot_product_attention`'s `mask`). The heads are `num_heads` of `E / num_heads`
//! features, through one packed input projection (`in_proj_weight`, the query's, key's and
//! value's stacked) and an output projection (`out_proj`), named as PyTorch names them so that
//! a checkpoint loads. The emitted module calls it as `attention(x, x, x, need_weights=False)`,
//! or `attention(x, memory, memory, key_padding_mask=mask, need_weights=False)`.
//!
//! PyTorch's `attn_mask` is not offered: its layouts, [T, S] and [N·heads, T, S], have no
//! batch or another one, which no tensor of nnc has; `is_causal` gives the causal one.

use std::fmt;

use super::onnx::{AttentionSpec, Attr, Onnx, OnnxError};

use super::layer::{py_bool, py_float};
use super::{
    attributes, product, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec,
    ParamSpec, PyTorch, Ranks, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static MULTI_HEAD_ATTENTION: OpSpec = OpSpec {
    name: "multi_head_attention",
    summary: "attention of a sequence [N, T, E] over itself, or over `memory` [N, S, E], in heads of E / num_heads features; `key_padding_mask` [N, S] bool leaves out the keys where true",
    torch: "nn.MultiheadAttention",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: &[
        ParamSpec::required("num_heads", Kind::Int),
        ParamSpec::optional("dropout", Kind::Float, ArgValue::Float(0.0)),
        ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
        ParamSpec::optional("is_causal", Kind::Bool, ArgValue::Bool(false)),
        ParamSpec::optional("memory", Kind::Tensor(DType::Float), ArgValue::Unset),
        ParamSpec::optional("key_padding_mask", Kind::Tensor(DType::Bool), ArgValue::Unset),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let [length, embed_dim]: [u64; 2] = input.dims[..].try_into().map_err(|_| {
        OpError::new(
            Code::ShapeMismatch,
            format!("`multi_head_attention` needs a sequence [N, T, E], but gets {input}"),
        )
        .label(format!("the input here is {input}"))
    })?;
    let num_heads = args.positive_int("num_heads")?;
    if embed_dim % num_heads != 0 {
        // Every divisor, up to a bound that keeps a huge width from taking long ("…" then).
        const SHOWN: u64 = 4096;
        let mut divisors: Vec<String> =
            (1..=embed_dim.min(SHOWN)).filter(|d| embed_dim % d == 0).map(|d| d.to_string()).collect();
        if embed_dim > SHOWN {
            divisors.push("…".into());
        }
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("{num_heads} heads do not divide the {embed_dim} features of {input}"),
        )
        .label(format!("num_heads = {num_heads}"))
        .note("each head takes E / num_heads of the features, as PyTorch's MultiheadAttention requires")
        .hint(format!("a head count that divides {embed_dim}: {}", divisors.join(", ")))
        .at("num_heads"));
    }
    let dropout = args.float("dropout");
    if !(0.0..1.0).contains(&dropout) {
        return Err(OpError::new(
            Code::Value,
            format!("`dropout` is a probability below 1, but is {dropout}"),
        )
        .label(format!("dropout = {dropout}"))
        .at("dropout"));
    }
    let bias = args.bool("bias");
    let is_causal = args.bool("is_causal");
    // The keys' and values' positions: the memory's, or the sequence's own.
    let keys = match args.tensor("memory") {
        None => length,
        Some(memory) => memory_length(memory, input, embed_dim, is_causal)?,
    };
    if let Some(mask) = args.tensor("key_padding_mask") {
        let fits = mask.batch == input.batch && mask.dims[..] == [keys];
        if !fits {
            let source = match args.tensor("memory") {
                Some(memory) => format!("the memory {memory}"),
                None => format!("the input {input}"),
            };
            return Err(OpError::new(
                Code::ShapeMismatch,
                format!("the key padding mask {mask} does not fit the {keys} keys of {source}"),
            )
            .label(format!("must be [N, {keys}] bool: true where a key is left out"))
            .note(format!("the query is {input}; the keys and values are {source}"))
            .at("key_padding_mask"));
        }
    }
    let cross = args.tensor("memory").is_some();
    let key_padding_mask = args.tensor("key_padding_mask").is_some();
    let attention =
        MultiHeadAttention { embed_dim, num_heads, dropout, bias, is_causal, cross, key_padding_mask };
    // The projections' multiply-adds, one per weight use and bias add (as `linear` counts
    // them): the query's and the output's at every query, the key's and value's at every key;
    // and the attention itself: T·S·E for the scores and as many for their weighted sum.
    // torchinfo counts the projections once per example and not the attention.
    let quarter = param_total(&attention)? / 4;
    let overflow = || OpError::new(Code::Arithmetic, "the multiply-add count overflows 64 bits");
    let macs = product("multiply-add count", &[2 * length, quarter])?
        .checked_add(product("multiply-add count", &[2 * keys, quarter])?)
        .ok_or_else(overflow)?
        .checked_add(product("multiply-add count", &[2, length, keys, embed_dim])?)
        .ok_or_else(overflow)?;
    Built::new(Op::MultiHeadAttention(attention), input.clone(), macs)
}

/// The positions of a cross-attention's `memory`, a sequence [N, S, E] of the query's
/// features, as `nn.MultiheadAttention`'s keys and values (its `kdim` and `vdim` are E).
fn memory_length(memory: &Shape, query: &Shape, embed_dim: u64, is_causal: bool) -> Result<u64, OpError> {
    let [keys, features]: [u64; 2] = memory.dims[..].try_into().map_err(|_| {
        OpError::new(
            Code::ShapeMismatch,
            format!("the memory {memory} is no sequence [N, S, E] for the query {query} to attend to"),
        )
        .label(format!("this is {memory}"))
        .note("the keys and values of cross-attention are a sequence: [N, S, E], S positions of E features")
        .at("memory")
    })?;
    if features != embed_dim || memory.batch != query.batch {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!("the memory {memory} has {features} features, the query {query} {embed_dim}"),
        )
        .label(format!("must be [N, S, {embed_dim}]"))
        .note("nn.MultiheadAttention's keys and values have the query's features (its kdim and vdim are embed_dim)")
        .hint(format!("project the memory first: `linear({embed_dim})`"))
        .at("memory"));
    }
    if is_causal {
        return Err(OpError::new(
            Code::Value,
            "`is_causal` masks the positions after each query in its own sequence; cross-attention has none",
        )
        .label("is_causal = true")
        .note("a decoder's cross-attention reads the whole memory; its self-attention is the causal one")
        .at("is_causal"));
    }
    Ok(keys)
}

/// Every parameter of the layer: the projections' weights and biases.
fn param_total(attention: &MultiHeadAttention) -> Result<u64, OpError> {
    super::param_count(&attention.tensors())
}

attributes! {
    pub struct MultiHeadAttention {
        pub embed_dim: u64,
        pub num_heads: u64,
        pub dropout: f64,
        pub bias: bool,
        /// Each position attends to itself and those before it only.
        pub is_causal: bool,
        /// Cross-attention: the node's second input is the memory, the keys and values.
        pub cross: bool,
        /// The node's last input is a bool [N, S] mask, true where a key is left out.
        pub key_padding_mask: bool,
    }
}

impl Layer for MultiHeadAttention {
    /// The query's sizes; a key padding mask must have a position for each key.
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], needs: &mut Needs) -> Option<Vec<Size>> {
        let query = xs.first()?;
        if self.key_padding_mask {
            let keys = if self.cross { xs.get(1)? } else { query };
            needs.equal(xs.last()?.first()?, keys.first()?);
        }
        Some(query.to_vec())
    }

    /// Decomposed as PyTorch computes it: the packed projection, split into queries, keys and
    /// values, each `[N, T, heads, E / heads]` moved to `[N, heads, T, E / heads]`, attention per
    /// head (causal where asked), the heads joined and projected out.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        // The decomposition below is self-attention without a mask; anything else would be a
        // file that computes something else, so it is refused until it is written.
        if self.cross || self.key_padding_mask {
            return Err(g.unsupported("cross-attention and key padding masks have no ONNX spelling yet"));
        }
        let (e, h) = (self.embed_dim, self.num_heads);
        let t = g.input(0).dims[0];
        let w = g.tensor("in_proj_weight")?;
        let b = if self.bias { Some(g.tensor("in_proj_bias")?) } else { None };
        let packed = g.linear(&xs[0], 3, &w, b.as_deref());
        let split = g.ints("split", &[e as i64; 3]);
        let qkv = g.node_n("Split", &[&packed, &split], vec![("axis", Attr::Int(-1))], 3);
        let heads: Vec<String> = qkv
            .iter()
            .map(|x| {
                let x = g.reshape(x, &[t as i64, h as i64, (e / h) as i64]);
                g.transpose(&x, &[0, 2, 1, 3])
            })
            .collect();
        let how =
            AttentionSpec { rank: 4, sizes: [t, t, e / h], mask: None, causal: self.is_causal, scale: None };
        let y = g.attention([&heads[0], &heads[1], &heads[2]], &how);
        let y = g.transpose(&y, &[0, 2, 1, 3]);
        let y = g.reshape(&y, &[t as i64, e as i64]);
        let w = g.tensor("out_proj.weight")?;
        let b = if self.bias { Some(g.tensor("out_proj.bias")?) } else { None };
        Ok(g.linear(&y, 3, &w, b.as_deref()))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "multi_head_attention {}, {} heads", self.embed_dim, self.num_heads)?;
        if self.dropout > 0.0 {
            write!(f, ", dropout {}", self.dropout)?;
        }
        if !self.bias {
            f.write_str(", no bias")?;
        }
        if self.is_causal {
            f.write_str(", causal")?;
        }
        if self.cross {
            f.write_str(", cross")?;
        }
        if self.key_padding_mask {
            f.write_str(", key padding mask")?;
        }
        Ok(())
    }

    /// `nn.MultiheadAttention`'s tensors, in its `state_dict`'s order and with its
    /// initialisation: the packed projection Xavier-uniform and its bias zero, the output
    /// projection as an `nn.Linear` whose drawn bias is then zeroed.
    fn tensors(&self) -> Vec<TensorSpec> {
        let e = self.embed_dim;
        let mut tensors = vec![TensorSpec::trained("in_proj_weight", &[3 * e, e], InitRule::XavierUniform)];
        if self.bias {
            tensors.push(TensorSpec::trained("in_proj_bias", &[3 * e], InitRule::Const(0.0)));
        }
        tensors.push(TensorSpec::trained("out_proj.weight", &[e, e], InitRule::Weight));
        if self.bias {
            tensors.push(TensorSpec::trained("out_proj.bias", &[e], InitRule::ZeroedBias { fan_in: e }));
        }
        tensors
    }

    /// `out_proj`, an `nn.Linear`, is built (and draws its weight and bias) in the module's
    /// constructor, before `_reset_parameters` draws the packed projection.
    fn created_first(&self) -> &'static [&'static str] {
        &["out_proj.weight", "out_proj.bias"]
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.MultiheadAttention({}, {}, dropout={}, bias={}, batch_first=True)",
            self.embed_dim,
            self.num_heads,
            py_float(self.dropout),
            py_bool(self.bias)
        ))
    }

    /// The sequence is the query; the key and value are the memory (cross-attention) or the
    /// sequence itself; the output comes first in the tuple PyTorch's module returns. Causal
    /// attention passes the mask PyTorch's `is_causal` needs beside it: a float one, as
    /// `nn.Transformer` makes it, or a bool one (true above the diagonal) beside a key padding
    /// mask, which is bool, as PyTorch wants the two of one type.
    fn pytorch_call(&self, module: &str, xs: &[String]) -> String {
        let x = &xs[0];
        let kv = if self.cross { &xs[1] } else { x };
        let mut args = format!("{x}, {kv}, {kv}");
        if self.key_padding_mask {
            args += &format!(", key_padding_mask={}", xs[xs.len() - 1]);
        }
        args += ", need_weights=False";
        if self.is_causal {
            let mask = match self.key_padding_mask {
                false => format!(
                    "nn.Transformer.generate_square_subsequent_mask({x}.shape[1], device={x}.device, dtype={x}.dtype)"
                ),
                true => format!(
                    "torch.ones({x}.shape[1], {x}.shape[1], dtype=torch.bool, device={x}.device).triu(1)"
                ),
            };
            args += &format!(", is_causal=True, attn_mask={mask}");
        }
        format!("{module}({args})[0]")
    }

    fn family(&self) -> Family {
        Family::Linear
    }
}
