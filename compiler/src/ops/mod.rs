//! The ops. Each file holds everything nnc knows about one layer (or one small family): its
//! signature and shape rule, which also computes its multiply-adds (an [`OpSpec`]), its IR
//! attributes (a struct declared with `attributes!`, which derives its Rust spelling), and
//! their [`Layer`] description: display text, parameter tensors with their initialisation,
//! PyTorch spelling. Every back end reads that description; the libtorch forward in the
//! runtime matches on [`Op`] without a wildcard, so an op it misses fails to compile.
//!
//! Adding a layer is adding its file here, one line to `registry!` below, and its forward
//! in the runtime (ARCHITECTURE.md lists the steps).

mod activation;
mod adaptive_pool;
pub mod arith;
mod attention;
mod batchnorm;
mod conv;
mod dropout;
mod elementwise;
mod embedding;
mod flatten;
mod gelu;
mod groupnorm;
mod input;
mod instancenorm;
pub mod join;
mod layer;
mod layernorm;
mod linear;
pub mod matmul;
pub mod onnx;
mod param;
mod permute;
mod pixel_shuffle;
mod pool;
mod prelu;
mod recurrent;
mod reduce;
mod reshape;
mod rules;
mod signature;
pub mod slice;
mod softmax;
mod upsample;

pub use adaptive_pool::{AdaptiveAvgPool, AdaptiveMaxPool};
pub use arith::ArithOp;
pub use conv::{Conv, ConvTranspose};
pub(crate) use layer::attributes;
pub use layer::{Family, InitRule, Layer, PyTorch, SizeOrigin, TensorSpec, ToRust, MAX_TENSOR_RANK};
pub use onnx::{Attr, Onnx, OnnxError};
pub use pool::{AvgPool, MaxPool};
pub use recurrent::{Cell, Recurrent, MAX_NUM_LAYERS};
pub use rules::{
    axis, expect_spatial, free_known, free_same, free_spatial, product, spatial_axis, window_at,
    window_output, window_outputs, wrong_layout, wrong_rank, Layout, OpError,
};
pub use signature::{param_count, ArgValue, Args, Built, Kind, ParamSpec};
pub use slice::SliceItem;

/// A built-in layer as the language sees it: its name, its parameters and its shape rule,
/// with what the layer reference (`nnc layers`) says about it.
pub struct OpSpec {
    pub name: &'static str,
    /// One line on what it computes.
    pub summary: &'static str,
    /// The `torch.nn` module it equals.
    pub torch: &'static str,
    /// The ranks of input it accepts, batch included.
    pub ranks: Ranks,
    /// The element type of input it takes: float for every layer but `embedding`, which reads
    /// int ids. The checker refuses any other, naming both, before the shape rule runs.
    pub takes: crate::shape::DType,
    pub params: &'static [ParamSpec],
    pub apply: fn(&Args, &crate::shape::Shape) -> Result<Built, OpError>,
}

impl OpSpec {
    /// `conv2d(out_channels, kernel, stride=1, ...)`, or `relu` for a layer without arguments;
    /// an optional argument without a fixed default (it follows another, is inferred, or is
    /// none, as `embedding`'s `padding_idx`) shows as `…`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match &p.default {
                None => p.name.to_string(),
                Some(value) => format!("{}={value}", p.name),
            })
            .collect();
        if params.is_empty() {
            return self.name.to_string();
        }
        format!("{}({})", self.name, params.join(", "))
    }
}

/// Input ranks a layer accepts, the batch dimension included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranks {
    Exactly(&'static [usize]),
    AtLeast(usize),
}

impl Ranks {
    pub fn accepts(self, rank: usize) -> bool {
        match self {
            Ranks::Exactly(ranks) => ranks.contains(&rank),
            Ranks::AtLeast(min) => rank >= min,
        }
    }
}

impl std::fmt::Display for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ranks::Exactly(ranks) => {
                let ranks: Vec<String> = ranks.iter().map(usize::to_string).collect();
                f.write_str(&ranks.join(", "))
            }
            Ranks::AtLeast(min) => write!(f, "{min} or more"),
        }
    }
}

/// The one list of ops. Each line names an [`Op`] variant, the module and attribute struct
/// that describe it, and, for layers a model can call by name, their [`OpSpec`]. From it come
/// the `Op` enum, its dispatch to each op's [`Layer`], its Rust spelling, and [`ALL`].
macro_rules! registry {
    (@spec $spec:expr) => { Some(&$spec) };
    (@spec) => { None };
    ($($variant:ident($module:ident) $(= $spec:expr)?,)*) => {
        $(pub use $module::$variant;)*

        /// `Op` and every op's attribute struct, which the IR re-exports, so that generated
        /// code names them `ir::Op` and `ir::Conv2d`.
        pub mod types {
            pub use super::{Op, $($variant,)*};
        }

        /// An operation with every attribute evaluated: one variant per op, holding the op's
        /// attribute struct.
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Op {
            $($variant($variant),)*
        }

        impl Op {
            /// The op's description, which every back end reads.
            pub fn layer(&self) -> &dyn Layer {
                match self {
                    $(Op::$variant(attributes) => attributes,)*
                }
            }

            /// The signature a model calls this op by; `None` for the input and the joins,
            /// which the language spells itself.
            pub fn spec(&self) -> Option<&'static OpSpec> {
                match self {
                    $(Op::$variant(_) => registry!(@spec $($spec)?),)*
                }
            }
        }

        impl ToRust for Op {
            fn to_rust(&self, ir: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
                match self {
                    $(Op::$variant(attributes) => {
                        let attributes = attributes.to_rust(ir);
                        quote::quote! { #ir::Op::$variant(#attributes) }
                    })*
                }
            }
        }

        /// Every layer a model can call by name, in the order `nnc layers` lists them.
        pub static ALL: &[&OpSpec] = &[$($(&$spec,)?)*];
    };
}

registry! {
    Input(input),
    Conv1d(conv) = conv::CONV1D,
    Conv2d(conv) = conv::CONV2D,
    Conv3d(conv) = conv::CONV3D,
    ConvTranspose1d(conv) = conv::CONV_TRANSPOSE1D,
    ConvTranspose2d(conv) = conv::CONV_TRANSPOSE2D,
    ConvTranspose3d(conv) = conv::CONV_TRANSPOSE3D,
    MaxPool1d(pool) = pool::MAXPOOL1D,
    MaxPool2d(pool) = pool::MAXPOOL2D,
    MaxPool3d(pool) = pool::MAXPOOL3D,
    AvgPool1d(pool) = pool::AVGPOOL1D,
    AvgPool2d(pool) = pool::AVGPOOL2D,
    AvgPool3d(pool) = pool::AVGPOOL3D,
    AdaptiveAvgPool1d(adaptive_pool) = adaptive_pool::ADAPTIVE_AVGPOOL1D,
    AdaptiveAvgPool2d(adaptive_pool) = adaptive_pool::ADAPTIVE_AVGPOOL2D,
    AdaptiveAvgPool3d(adaptive_pool) = adaptive_pool::ADAPTIVE_AVGPOOL3D,
    AdaptiveMaxPool1d(adaptive_pool) = adaptive_pool::ADAPTIVE_MAXPOOL1D,
    AdaptiveMaxPool2d(adaptive_pool) = adaptive_pool::ADAPTIVE_MAXPOOL2D,
    AdaptiveMaxPool3d(adaptive_pool) = adaptive_pool::ADAPTIVE_MAXPOOL3D,
    BatchNorm(batchnorm) = batchnorm::BATCHNORM,
    LayerNorm(layernorm) = layernorm::LAYERNORM,
    LayerNorm2d(layernorm) = layernorm::LAYERNORM2D,
    GroupNorm(groupnorm) = groupnorm::GROUPNORM,
    InstanceNorm(instancenorm) = instancenorm::INSTANCENORM,
    Relu(elementwise) = elementwise::RELU,
    Relu6(elementwise) = elementwise::RELU6,
    Sigmoid(elementwise) = elementwise::SIGMOID,
    Tanh(elementwise) = elementwise::TANH,
    Gelu(gelu) = gelu::GELU,
    Silu(elementwise) = elementwise::SILU,
    Hardswish(elementwise) = elementwise::HARDSWISH,
    Hardsigmoid(elementwise) = elementwise::HARDSIGMOID,
    Mish(elementwise) = elementwise::MISH,
    LeakyRelu(activation) = activation::LEAKY_RELU,
    Prelu(prelu) = prelu::PRELU,
    Elu(activation) = activation::ELU,
    Softplus(activation) = activation::SOFTPLUS,
    Hardtanh(activation) = activation::HARDTANH,
    Identity(elementwise) = elementwise::IDENTITY,
    Softmax(softmax) = softmax::SOFTMAX,
    LogSoftmax(softmax) = softmax::LOG_SOFTMAX,
    Dropout(dropout) = dropout::DROPOUT,
    Flatten(flatten) = flatten::FLATTEN,
    Linear(linear) = linear::LINEAR,
    MultiHeadAttention(attention) = attention::MULTI_HEAD_ATTENTION,
    Lstm(recurrent) = recurrent::LSTM,
    Gru(recurrent) = recurrent::GRU,
    Rnn(recurrent) = recurrent::RNN,
    FinalState(recurrent),
    Embedding(embedding) = embedding::EMBEDDING,
    Upsample(upsample) = upsample::UPSAMPLE,
    PixelShuffle(pixel_shuffle) = pixel_shuffle::PIXEL_SHUFFLE,
    PixelUnshuffle(pixel_shuffle) = pixel_shuffle::PIXEL_UNSHUFFLE,
    Arith(arith),
    ArithScalar(arith),
    Concat(join),
    Reshape(reshape) = reshape::RESHAPE,
    Permute(permute) = permute::PERMUTE,
    Transpose(permute) = permute::TRANSPOSE,
    Unflatten(reshape) = reshape::UNFLATTEN,
    Mean(reduce) = reduce::MEAN,
    Sum(reduce) = reduce::SUM,
    Amax(reduce) = reduce::AMAX,
    Slice(slice),
    Stack(join),
    Param(param),
    Matmul(matmul),
    Attention(matmul),
    Einsum(matmul),
}

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    ALL.iter().copied().find(|op| op.name == name)
}

/// Layers' former names, with what they are called now, for the error that meets an old
/// model: a spelling suggestion alone would offer the 1-D layer, the first of three as close.
static RENAMED: &[(&str, &str)] =
    &[("maxpool", "maxpool2d"), ("avgpool", "avgpool2d"), ("adaptive_avgpool", "adaptive_avgpool2d")];

/// The layer once called `name`.
pub fn renamed(name: &str) -> Option<&'static str> {
    RENAMED.iter().find(|(old, _)| *old == name).map(|&(_, new)| new)
}

/// The report's text of an op: `conv2d 1→6, 5×5, padding 2`.
impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.layer().describe(f)
    }
}
