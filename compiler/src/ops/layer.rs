//! What every back end reads about an op: its display text, its parameter tensors, its PyTorch
//! spelling and its family, through the [`Layer`] trait, and its Rust spelling, through
//! [`ToRust`], which [`attributes!`] derives for each op's attribute struct.

use std::borrow::Cow;
use std::fmt;

use arrayvec::ArrayVec;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::onnx::{Onnx, OnnxError};
use crate::free::Needs;
use crate::size::Size;

/// The description of one op, implemented by each op's attribute struct in its own file.
pub trait Layer {
    /// The report's `op` column: `conv2d 1→6, 5×5, padding 2`.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// The tensors the layer holds, in the order of PyTorch's `state_dict`.
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }

    /// The tensors PyTorch's module creates, and draws from the random stream, before the
    /// others, in that order, where it is not the `state_dict`'s: the runtime creates them so,
    /// so that a seeded run starts from PyTorch's values and every draw after them does too.
    fn created_first(&self) -> &'static [&'static str] {
        &[]
    }

    /// How PyTorch computes it from its inputs' Python names `xs`.
    fn pytorch(&self, xs: &[String]) -> PyTorch;

    /// How ONNX (opset 17) computes it: nodes added to `g` from its inputs' value names `xs`,
    /// giving the output's value name; an error naming the layer where nnc has no spelling.
    fn onnx(&self, g: &mut Onnx, _xs: &[String]) -> Result<String, OnnxError> {
        Err(g.unsupported("nnc has no ONNX spelling of this layer yet"))
    }

    /// How the emitted `forward` calls the layer's module (`module`, such as `self.fc`) on its
    /// inputs' names: `self.fc(x1)` by default; a module that returns more than the layer
    /// gives (`nn.MultiheadAttention`'s tuple) is called and indexed.
    fn pytorch_call(&self, module: &str, xs: &[String]) -> String {
        format!("{module}({})", xs.join(", "))
    }

    /// What the emitted `forward` assigns the call of a layer with [`Layer::states`] to: the
    /// output's name `ys[0]`, then each state's, `_` for one nothing reads (`x5, (x5_1, _)`
    /// for `nn.LSTM`'s `(output, (h_n, c_n))`). Only such layers are asked.
    fn pytorch_targets(&self, ys: &[String]) -> String {
        ys[0].clone()
    }

    /// The tensors the layer computes besides its output (a recurrent layer's final states),
    /// in order, each as the op of a node that reads it from the layer's node (whose
    /// [`Layer::reads`] is its position, from 1) and that node's sizes after the batch. A
    /// destructuring binds them: `y, h_n = gru(64)`.
    fn states(&self) -> Vec<(crate::ir::Op, Vec<u64>)> {
        Vec::new()
    }

    /// Which of its input's tensors the op reads: 0, the output, for every op but the
    /// selector of a layer's state, which reads state k (see [`Layer::states`]).
    fn reads(&self) -> usize {
        0
    }

    /// The Python source of a class that [`Layer::pytorch`]'s spelling uses and `torch.nn`
    /// lacks (torchvision's `LayerNorm2d`), which the emitted module defines once.
    fn pytorch_class(&self) -> Option<&'static str> {
        None
    }

    /// The ids a layer that reads int tensors takes lie in `0..bound` (`embedding`'s
    /// `num_embeddings`): random inputs are drawn there (`nnc run`, the emitted module's own
    /// check). `None` for a layer that reads no ids.
    fn id_bound(&self) -> Option<u64> {
        None
    }

    /// Where the output's spatial axis `axis` (0 the first after the channels: length, depth
    /// or height) gets its size; `input` is the first input's size on that axis.
    fn size_origin(&self, _axis: usize, _input: u64) -> SizeOrigin {
        SizeOrigin::Kept
    }

    /// What kind of layer it is, for pictures.
    fn family(&self) -> Family {
        Family::Other
    }

    /// The output's sizes after the batch as expressions of the network's free sizes (see
    /// `crate::free`), from its inputs' (`xs`, each after its batch) and `out`, the output's
    /// sizes at the probe, which hold wherever they depend on no free size; what the layer
    /// needs of them (sizes equal) goes to `needs`. `None` where the layer does not take free
    /// sizes: by default, where some input has one.
    fn free_sizes(&self, xs: &[&[Size]], out: &[u64], _needs: &mut Needs) -> Option<Vec<Size>> {
        super::free_known(xs, out)
    }
}

/// The most dimensions a layer's tensor may have. Sizes are held inline, so that describing a
/// layer's tensors, which the checker does for every layer, allocates nothing per tensor.
pub const MAX_TENSOR_RANK: usize = 8;

/// One parameter or buffer of a layer, named as in PyTorch's `state_dict` (`weight`,
/// `running_mean`, or `out_proj.weight` for a submodule's); an empty name is the layer itself
/// (a declared `param`, which PyTorch names by its attribute alone). Most names are fixed
/// strings, borrowed; a layer whose tensors are numbered (`weight_ih_l3`, one per layer of a
/// recurrent stack) owns them.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: Cow<'static, str>,
    pub dims: ArrayVec<u64, MAX_TENSOR_RANK>,
    /// Trained by the optimiser, or a buffer (running statistics) that only the forward pass
    /// updates.
    pub trained: bool,
    pub init: InitRule,
}

impl TensorSpec {
    /// Panics on more than [`MAX_TENSOR_RANK`] sizes, which shape rules refuse first.
    pub fn trained(name: impl Into<Cow<'static, str>>, dims: &[u64], init: InitRule) -> Self {
        TensorSpec { name: name.into(), dims: sizes(dims), trained: true, init }
    }

    pub fn buffer(name: impl Into<Cow<'static, str>>, dims: &[u64], init: InitRule) -> Self {
        TensorSpec { name: name.into(), dims: sizes(dims), trained: false, init }
    }

    /// Elements, or `None` if the count overflows.
    pub fn elements(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }
}

fn sizes(dims: &[u64]) -> ArrayVec<u64, MAX_TENSOR_RANK> {
    ArrayVec::try_from(dims).expect("shape rules refuse tensors of more than MAX_TENSOR_RANK dimensions")
}

/// How a tensor starts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "rule", content = "value", rename_all = "snake_case")]
pub enum InitRule {
    /// A weight `[out, in, kernel...]`: PyTorch's default, uniform in ±1/√fan_in (Kaiming
    /// uniform with a = √5), or Xavier uniform when the run asks for d2l's initialisation.
    Weight,
    /// A bias: uniform in ±1/√fan_in, whatever the weights' rule.
    Bias { fan_in: u64 },
    /// Xavier uniform whatever the run asks for, as `nn.MultiheadAttention` initialises its
    /// packed projection: uniform in ±√(6 / (fan_in + fan_out)) of a weight `[out, in]`.
    XavierUniform,
    /// Every element `value` (batch norm's weight 1 and bias 0, running statistics).
    Const(f64),
    /// Zero, after the draw of a bias (uniform in ±1/√fan_in) that PyTorch makes and then
    /// overwrites (`nn.MultiheadAttention`'s `out_proj.bias`, which its `nn.Linear` drew): the
    /// random stream moves on as PyTorch's does.
    ZeroedBias { fan_in: u64 },
    /// Normal with mean 0 and standard deviation `std`.
    Normal { std: f64 },
    /// An int64 counter from 0: batch norm's `num_batches_tracked`, which PyTorch keeps as
    /// int64, so that a PyTorch checkpoint loads without a cast.
    Count,
    /// An embedding's table, as `nn.Embedding.reset_parameters` makes it: normal with mean 0
    /// and standard deviation 1, the row `padding_idx` (if any) zero.
    Embedding { padding_idx: Option<u64> },
}

/// How the PyTorch back end spells an op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PyTorch {
    /// The `torch.nn` module that is this layer (`nn.Conv2d(1, 6, kernel_size=(5, 5), ...)`,
    /// `nn.ReLU()`), registered under the layer's name and called on its input, so that tools
    /// that swap modules (`convert_sync_batchnorm`, quantisation) reach every layer.
    Module(String),
    /// An expression of the inputs, for what PyTorch spells as one (`x1 + x2`,
    /// `torch.cat([x1, x2], dim=1)`).
    Expr(String),
    /// An `nn.Parameter` (`nn.Parameter(torch.full((96, 1, 1), 1e-06))`), registered under the
    /// layer's name and read, not called.
    Parameter(String),
}

/// The broad kind of an op, which pictures colour by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Input,
    Convolution,
    Linear,
    Normalisation,
    Pooling,
    Recurrent,
    Join,
    Other,
}

/// A value as the Rust expression that builds it, for generated code. `ir` is the path of the
/// IR module in the generated code's crate (`::nnc::runtime::ir`).
pub trait ToRust {
    fn to_rust(&self, ir: &TokenStream) -> TokenStream;
}

impl ToRust for u64 {
    fn to_rust(&self, _: &TokenStream) -> TokenStream {
        let v = Literal::u64_unsuffixed(*self);
        quote! { #v }
    }
}

impl ToRust for usize {
    fn to_rust(&self, _: &TokenStream) -> TokenStream {
        let v = Literal::usize_unsuffixed(*self);
        quote! { #v }
    }
}

impl ToRust for f64 {
    fn to_rust(&self, _: &TokenStream) -> TokenStream {
        let v = Literal::f64_unsuffixed(*self);
        quote! { #v }
    }
}

impl ToRust for bool {
    fn to_rust(&self, _: &TokenStream) -> TokenStream {
        quote! { #self }
    }
}

impl ToRust for InitRule {
    fn to_rust(&self, ir: &TokenStream) -> TokenStream {
        match *self {
            InitRule::Weight => quote! { #ir::InitRule::Weight },
            InitRule::XavierUniform => quote! { #ir::InitRule::XavierUniform },
            InitRule::Bias { fan_in } => {
                let fan_in = fan_in.to_rust(ir);
                quote! { #ir::InitRule::Bias { fan_in: #fan_in } }
            }
            InitRule::Const(value) => {
                let value = value.to_rust(ir);
                quote! { #ir::InitRule::Const(#value) }
            }
            InitRule::Normal { std } => {
                let std = std.to_rust(ir);
                quote! { #ir::InitRule::Normal { std: #std } }
            }
            InitRule::ZeroedBias { fan_in } => {
                let fan_in = fan_in.to_rust(ir);
                quote! { #ir::InitRule::ZeroedBias { fan_in: #fan_in } }
            }
            InitRule::Count => quote! { #ir::InitRule::Count },
            InitRule::Embedding { padding_idx } => {
                let padding_idx = padding_idx.to_rust(ir);
                quote! { #ir::InitRule::Embedding { padding_idx: #padding_idx } }
            }
        }
    }
}

impl ToRust for crate::shape::DType {
    fn to_rust(&self, ir: &TokenStream) -> TokenStream {
        match self {
            crate::shape::DType::Float => quote! { #ir::DType::Float },
            crate::shape::DType::Int => quote! { #ir::DType::Int },
            crate::shape::DType::Bool => quote! { #ir::DType::Bool },
        }
    }
}

/// A [`Kind::Choice`](super::Kind::Choice)'s string (`"tanh"`), which the IR keeps as the
/// signature's own `&'static str`.
impl ToRust for &'static str {
    fn to_rust(&self, _: &TokenStream) -> TokenStream {
        let v = Literal::string(self);
        quote! { #v }
    }
}

impl<T: ToRust, const N: usize> ToRust for [T; N] {
    fn to_rust(&self, ir: &TokenStream) -> TokenStream {
        let items = self.iter().map(|v| v.to_rust(ir));
        quote! { [#(#items),*] }
    }
}

/// Text of any length (`einsum`'s equation), spelt as a constant.
impl ToRust for Cow<'static, str> {
    fn to_rust(&self, _: &TokenStream) -> TokenStream {
        let v = Literal::string(self);
        quote! { ::std::borrow::Cow::Borrowed(#v) }
    }
}

/// An optional attribute (`upsample`'s scale, absent when it is given a size).
impl<T: ToRust> ToRust for Option<T> {
    fn to_rust(&self, ir: &TokenStream) -> TokenStream {
        match self {
            Some(v) => {
                let v = v.to_rust(ir);
                quote! { ::std::option::Option::Some(#v) }
            }
            None => quote! { ::std::option::Option::None },
        }
    }
}

/// Lists of any length live in the IR as `Cow`, so that generated code can spell them as
/// constants (`Cow::Borrowed(&[3, 4])`).
impl<T: ToRust + Clone> ToRust for Cow<'static, [T]> {
    fn to_rust(&self, ir: &TokenStream) -> TokenStream {
        let items = self.iter().map(|v| v.to_rust(ir));
        quote! { ::std::borrow::Cow::Borrowed(&[#(#items),*]) }
    }
}

/// Declares an op's attribute struct, with the derives the IR needs and its [`ToRust`]
/// spelling, so that no back end spells an op's fields by hand.
macro_rules! attributes {
    ($(#[$meta:meta])* pub struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        pub struct $name;

        impl $crate::ops::ToRust for $name {
            fn to_rust(&self, ir: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
                quote::quote! { #ir::$name }
            }
        }
    };
    // A family of ops over `N` spatial axes (`Conv<N>`, which `Conv2d` names for N = 2); its
    // Rust spelling leaves `N` to the arrays' length.
    ($(#[$meta:meta])* pub struct $name:ident<const N: usize> { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        // serde implements `Serialize` for arrays of each length up to 32, not for any `N`.
        #[serde(bound(serialize = "[u64; N]: serde::Serialize"))]
        $(#[$meta])*
        pub struct $name<const N: usize> { $($(#[$field_meta])* pub $field: $ty,)* }

        impl<const N: usize> $crate::ops::ToRust for $name<N> {
            fn to_rust(&self, ir: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
                $(let $field = $crate::ops::ToRust::to_rust(&self.$field, ir);)*
                quote::quote! { #ir::$name { $($field: #$field),* } }
            }
        }
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        pub struct $name { $($(#[$field_meta])* pub $field: $ty,)* }

        impl $crate::ops::ToRust for $name {
            fn to_rust(&self, ir: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
                $(let $field = $crate::ops::ToRust::to_rust(&self.$field, ir);)*
                quote::quote! { #ir::$name { $($field: #$field),* } }
            }
        }
    };
}
pub(crate) use attributes;

/// A Python tuple of sizes: `(3, 5)`, or `(3,)` for one.
pub fn py_tuple(v: &[u64]) -> String {
    match v {
        [one] => format!("({one},)"),
        _ => format!("({})", v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// A Python float literal.
pub fn py_float(v: f64) -> String {
    format!("{v:?}")
}

pub fn py_bool(v: bool) -> &'static str {
    if v {
        "True"
    } else {
        "False"
    }
}

/// `3×3` for the report: one size per spatial axis.
pub fn describe_window(f: &mut fmt::Formatter<'_>, v: &[u64]) -> fmt::Result {
    f.write_str(&v.iter().map(u64::to_string).collect::<Vec<_>>().join("×"))
}

/// `, stride 2` or `, padding (1, 2)` for the report, or nothing at the default.
pub fn describe_sizes(f: &mut fmt::Formatter<'_>, what: &str, v: &[u64], default: u64) -> fmt::Result {
    match v {
        [a, rest @ ..] if rest.iter().all(|b| b == a) && *a == default => Ok(()),
        [a, rest @ ..] if rest.iter().all(|b| b == a) => write!(f, ", {what} {a}"),
        _ => {
            let sizes: Vec<String> = v.iter().map(u64::to_string).collect();
            write!(f, ", {what} ({})", sizes.join(", "))
        }
    }
}

/// Where the size of a spatial axis comes from, for errors that show how a size that became
/// too small was derived, layer by layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeOrigin {
    /// The layer keeps the size of its (first) input.
    Kept,
    /// The network's input declares it.
    Input,
    /// A sliding window computes it from the input's size.
    Window(crate::shape::Window),
    /// The layer sets it regardless of its input (`"from adaptive pooling"`).
    Set(&'static str),
    /// The axis does not exist before this layer (it flattens or mixes the axes).
    Lost,
}
