//! `multi_head_attention(num_heads, dropout=0.0, bias=true, is_causal=false)`: PyTorch's
//! `nn.MultiheadAttention` with `batch_first=True`, as self-attention: each position of a
//! sequence `[N, T, E]` attends to every position (or, `is_causal`, to itself and those
//! before it, as a decoder's does), in `num_heads` heads of `E / num_heads` features, through one packed input projection (`in_proj_weight`, the query's, key's and
//! value's stacked) and an output projection (`out_proj`), named as PyTorch names them so that
//! a checkpoint loads. The emitted module calls it as `attention(x, x, x, need_weights=False)`.

use std::fmt;

use super::onnx::{AttentionSpec, Attr, Onnx, OnnxError};

use super::layer::{py_bool, py_float};
use super::{
    attributes, product, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Op, OpError, OpSpec,
    ParamSpec, PyTorch, Ranks, TensorSpec,
};
use crate::diagnostic::Code;
use crate::shape::{DType, Shape};

pub static MULTI_HEAD_ATTENTION: OpSpec = OpSpec {
    name: "multi_head_attention",
    summary: "self-attention over the positions of a sequence [N, T, E], in heads of E / num_heads features",
    torch: "nn.MultiheadAttention",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: &[
        ParamSpec::required("num_heads", Kind::Int),
        ParamSpec::optional("dropout", Kind::Float, ArgValue::Float(0.0)),
        ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
        ParamSpec::optional("is_causal", Kind::Bool, ArgValue::Bool(false)),
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
        let divisors: Vec<String> =
            (1..=embed_dim.min(64)).filter(|d| embed_dim % d == 0).map(|d| d.to_string()).collect();
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
    let attention = MultiHeadAttention { embed_dim, num_heads, dropout, bias, is_causal };
    // The projections' multiply-adds at every position, one per weight use and bias add (as
    // `linear` counts them), and the attention itself: T·T·E for the scores and as many for
    // their weighted sum. torchinfo counts the projections once per example and not the
    // attention.
    let projections = param_total(&attention)?;
    let macs = product("multiply-add count", &[length, projections])?
        .checked_add(product("multiply-add count", &[2, length, length, embed_dim])?)
        .ok_or_else(|| OpError::new(Code::Arithmetic, "the multiply-add count overflows 64 bits"))?;
    Built::new(Op::MultiHeadAttention(attention), input.clone(), macs)
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
    }
}

impl Layer for MultiHeadAttention {
    /// Decomposed as PyTorch computes it: the packed projection, split into queries, keys and
    /// values, each `[N, T, heads, E / heads]` moved to `[N, heads, T, E / heads]`, attention per
    /// head (causal where asked), the heads joined and projected out.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
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
        Ok(())
    }

    /// `nn.MultiheadAttention`'s tensors, in its `state_dict`'s order and with its
    /// initialisation: the packed projection Xavier-uniform and its bias zero, the output
    /// projection as an `nn.Linear` with a zero bias.
    fn tensors(&self) -> Vec<TensorSpec> {
        let e = self.embed_dim;
        let mut tensors = vec![TensorSpec::trained("in_proj_weight", &[3 * e, e], InitRule::XavierUniform)];
        if self.bias {
            tensors.push(TensorSpec::trained("in_proj_bias", &[3 * e], InitRule::Const(0.0)));
        }
        tensors.push(TensorSpec::trained("out_proj.weight", &[e, e], InitRule::Weight));
        if self.bias {
            tensors.push(TensorSpec::trained("out_proj.bias", &[e], InitRule::Const(0.0)));
        }
        tensors
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

    /// Self-attention: the sequence is the query, key and value; the output comes first in
    /// the tuple PyTorch's module returns. Causal attention passes the mask PyTorch's
    /// `is_causal` needs beside it.
    fn pytorch_call(&self, module: &str, xs: &[String]) -> String {
        let x = &xs[0];
        match self.is_causal {
            false => format!("{module}({x}, {x}, {x}, need_weights=False)[0]"),
            true => format!(
                "{module}({x}, {x}, {x}, need_weights=False, is_causal=True, \
                 attn_mask=nn.Transformer.generate_square_subsequent_mask({x}.shape[1], device={x}.device, dtype={x}.dtype))[0]"
            ),
        }
    }

    fn family(&self) -> Family {
        Family::Linear
    }
}
