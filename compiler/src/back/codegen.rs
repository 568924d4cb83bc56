//! Code generation: an IR graph as a Rust module on the `nnc` runtime. The `model!` macro and
//! `nnc emit` both call [`generate`]; the code it writes calls the same runtime functions as
//! the interpreter (`ops::try_create_params`, `ops::apply`), one statement per node, each passing
//! on with `?` the error of a layer libtorch refuses. Each op is
//! spelled by its derived [`ToRust`], so nothing here is written per op.
//!
//! A network of one input gets `try_forward(&Tensor, train)` and is an `nn::ModuleT`; one of
//! several gets a struct `<Type>Inputs` (a field per input, named as the network names it) and
//! `try_forward_inputs(<Type>Inputs, train)` instead, and the constant `INPUTS`, which lists
//! each input's name, shape and element type, checked per input before anything runs.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

use super::report;
use crate::ir::{Graph, NodeId};
use crate::ops::ToRust;
use crate::shape::{Batch, DType};

/// Generates `pub struct #name` with its constructor and `nn::ModuleT` implementation.
/// `krate` is the path of the user-facing crate (`::nnc`), through which the code reaches
/// `tch` and the runtime.
pub fn generate(graph: &Graph, name: &Ident, krate: &TokenStream) -> TokenStream {
    let k = krate;
    let ir = quote! { #k::runtime::ir };
    let field = |i: usize| format_ident!("l{}_{}", i, sanitize(&graph.nodes[i].name));

    let mut fields = Vec::new();
    let mut inits = Vec::new();
    let mut ties = Vec::new();
    let mut made = Vec::new();
    let mut consts = Vec::new();
    let mut steps = Vec::new();
    let last_use = graph.last_uses();
    let in_eval = graph.computed(false);
    let several = graph.inputs.len() > 1;
    // Each node's tensors as an expression of `self`, for the plan of `for_inference`.
    let mut node_params = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let value = format_ident!("x{}", i);
        if graph.is_input(i) {
            node_params.push(quote! { &#k::runtime::ops::Params::NONE });
            let source = match several {
                true => {
                    let field = field_name(&node.name);
                    quote! { inputs.#field }
                }
                false => quote! { xs },
            };
            steps.push(quote! { let #value = #source.shallow_clone(); });
            continue;
        }
        let c = op_const(i);
        let op = node.op.to_rust(&ir);
        let doc = format!(" `{}`: {}, {}", node.name, node.op, graph.shape_text(NodeId(i)));
        consts.push(quote! { #[doc = #doc] const #c: #k::runtime::ir::Op = #op; });
        let params = if let Some(owner) = node.shares {
            // A shared layer applied again: its first application's tensors.
            let f = field(owner.0);
            quote! { &self.#f }
        } else if !node.op.layer().tensors().is_empty() {
            let f = field(i);
            let layer = &node.name;
            fields.push(quote! { #[doc = #doc] #f: #k::runtime::ops::Params, });
            let tied: Vec<&str> = node.ties.iter().map(|t| t.tensor.as_str()).collect();
            inits.push(match tied.is_empty() {
                true => quote! { let #f = #k::runtime::ops::try_create_params(vs, #layer, &Self::#c, init)?; },
                false => quote! {
                    let mut #f = #k::runtime::ops::try_create_untied(vs, #layer, &Self::#c, init, &[#(#tied),*])?;
                },
            });
            for tie in &node.ties {
                let (tensor, owner, to) = (&tie.tensor, field(tie.to.0), &tie.to_tensor);
                ties.push(quote! { #f.tie(vs, #layer, #tensor, &#owner, #to)?; });
            }
            made.push(f.clone());
            quote! { &self.#f }
        } else {
            quote! { &#k::runtime::ops::Params::NONE }
        };
        node_params.push(params.clone());
        // State k of a layer (a recurrent layer's `h_n`) is `x5_k`, beside its output `x5`.
        let reads = node.op.layer().reads();
        let inputs = node.inputs.iter().map(|id| match reads {
            0 => format_ident!("x{}", id.0),
            k => format_ident!("x{}_{}", id.0, k),
        });
        let layer = &node.name;
        let states = state_names(graph, i);
        let (apply, skipped) = match states.len() {
            0 => (
                quote! { #k::runtime::ops::apply(#layer, &Self::#c, #params, &[#(&#inputs),*], train)? },
                quote! { #k::tch::Tensor::new() },
            ),
            n => {
                let n = Literal::usize_unsuffixed(n + 1);
                (
                    quote! { #k::runtime::ops::apply_all::<#n>(#layer, &Self::#c, #params, &[#(&#inputs),*], train)? },
                    quote! { ::std::array::from_fn(|_| #k::tch::Tensor::new()) },
                )
            }
        };
        let value = match states.is_empty() {
            true => quote! { #value },
            false => quote! { [#value, #(#states),*] },
        };
        steps.push(if in_eval[i] {
            quote! { let #value = #apply; }
        } else {
            // Only an output of training reads it (an auxiliary classifier): skipped in
            // evaluation mode, where nothing reads the empty tensor that stands for it.
            quote! { let #value = if train { #apply } else { #skipped }; }
        });
        // Free each intermediate as soon as nothing reads it any more, once even when a node
        // reads it twice (`y + y`).
        let mut dead: Vec<usize> =
            node.inputs.iter().map(|id| id.0).filter(|&id| last_use[id] == i).collect();
        dead.sort_unstable();
        dead.dedup();
        for id in dead {
            let dead = format_ident!("x{}", id);
            let states = state_names(graph, id);
            steps.push(quote! { drop(#dead); #(drop(#states);)* });
        }
    }
    let network = &graph.name;
    let input_shape = dims(graph, graph.input());
    let output_shape = dims(graph, graph.output());
    // The outputs as a struct: a field per output, an `Option` for those of training alone.
    let outputs_type = format_ident!("{}Outputs", name);
    let mut output_fields = Vec::new();
    let mut output_values = Vec::new();
    for output in &graph.outputs {
        let field = field_name(&output.name);
        let value = format_ident!("x{}", output.node.0);
        let doc = format!(" `{}`: {}", output.name, graph.shape_text(output.node));
        if output.training_only {
            let doc = format!("{doc}, in training mode only");
            output_fields.push(quote! { #[doc = #doc] pub #field: ::std::option::Option<#k::tch::Tensor>, });
            output_values.push(quote! { #field: if train { ::std::option::Option::Some(self.precision.output(&#value)?) } else { ::std::option::Option::None }, });
        } else {
            output_fields.push(quote! { #[doc = #doc] pub #field: #k::tch::Tensor, });
            output_values.push(quote! { #field: self.precision.output(&#value)?, });
        }
    }
    let main = field_name(&graph.outputs[0].name);
    let outputs_doc = format!(" The outputs of [`{name}`]: the main one first.");
    let parameters = Literal::u64_unsuffixed(graph.total_params());
    // With free sizes, the multiply-adds depend on them: 0 stands for unknown.
    let counted = |macs: u64| Literal::u64_unsuffixed(if graph.free.is_some() { 0 } else { macs });
    let macs = counted(graph.total_macs());
    let layers = graph.nodes.iter().enumerate().map(|(i, n)| {
        let (name, op, shape, dtype) = (&n.name, n.op.to_string(), dims(graph, NodeId(i)), n.shape.dtype.to_rust(&ir));
        let (params, layer_macs) = (Literal::u64_unsuffixed(n.params), counted(n.macs));
        quote! {
            #k::runtime::LayerInfo { name: #name, op: #op, shape: &[#(#shape),*], dtype: #dtype, params: #params, macs: #layer_macs }
        }
    });
    // nnc's table, as `nnc check` prints it, computed here once.
    let summary = report::render_table(&report::report(graph, None));
    let inputs_shown = match &graph.inputs[..] {
        [one] => format!("input {}", graph.shape_text(*one)),
        inputs => {
            let each: Vec<String> = inputs
                .iter()
                .map(|&id| format!("{} {}", graph.node(id).name, graph.shape_text(id)))
                .collect();
            format!("inputs {}", each.join(", "))
        }
    };
    let type_text = name.to_string();
    let layer_count = Literal::usize_unsuffixed(graph.nodes.len() - graph.inputs.len());
    let doc = format!(
        " The network `{network}`, generated by nnc: {} layers, {} parameters, {inputs_shown}.",
        graph.nodes.len() - graph.inputs.len(),
        graph.total_params(),
    );
    let input_shape_doc = match several {
        true => format!(
            " The first input's shape (`{}`); -1 is the batch. [`Self::INPUTS`] lists every input.",
            graph.node(graph.input()).name
        ),
        false => " The input shape; -1 is the batch, and each free size (`Self::FREE_SIZES`).".to_string(),
    };
    let (free_sizes, free_check) = free_sizes(graph, k);
    let inference = inference(graph, k, &ir, &node_params);
    let items = Items {
        k,
        ir: &ir,
        name,
        outputs_type: &outputs_type,
        main: &main,
        steps: &steps,
        output_values: &output_values,
    };
    let (inputs_type, forward_methods, module_impl) = match several {
        true => several_inputs(graph, &items),
        false => one_input(graph, &items),
    };
    quote! {
        #[doc = #doc]
        pub struct #name {
            #(#fields)*
            /// The precision of the forwards ([`Self::with_precision`]).
            precision: #k::runtime::Precision,
        }

        /// The network's name, parameters, multiply-adds and layers, not the tensors' values.
        impl ::std::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(#type_text)
                    .field("network", &Self::NAME)
                    .field("parameters", &Self::PARAMETERS)
                    .field("macs", &Self::MACS)
                    .field("layers", &#layer_count)
                    .finish_non_exhaustive()
            }
        }

        /// nnc's table of the network: every layer's name, op, output shape, parameters and
        /// multiply-adds, and the totals, as `nnc check` prints it.
        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(Self::SUMMARY)
            }
        }

        #[doc = #outputs_doc]
        #[derive(Debug)]
        #[allow(non_snake_case)]
        pub struct #outputs_type {
            #(#output_fields)*
        }

        #inputs_type

        #[allow(clippy::all, clippy::pedantic)]
        impl #name {
            /// The network's name in its `.net` file.
            pub const NAME: &'static str = #network;
            #[doc = #input_shape_doc]
            pub const INPUT_SHAPE: &'static [i64] = &[#(#input_shape),*];
            /// The output shape; -1 is the batch, and each size that depends on a free one.
            pub const OUTPUT_SHAPE: &'static [i64] = &[#(#output_shape),*];
            /// The network's free sizes (`input [N, 3, H, W]`) and the sizes each takes, as
            /// the checker derived them (`H % 16 == 0 and H ≥ 16`); none for most networks.
            pub const FREE_SIZES: &'static [(&'static str, &'static str)] = &[#(#free_sizes),*];
            /// Learnable parameters, as the checker counted them.
            pub const PARAMETERS: u64 = #parameters;
            /// Multiply-adds of one example, as the checker (and torchinfo) counts them; 0 for
            /// a network with free sizes, whose multiply-adds depend on them.
            pub const MACS: u64 = #macs;
            /// Every layer, as the checker inferred it: its name, op, output shape (-1 is the
            /// batch, and each size that depends on a free one), element type, parameters and
            /// multiply-adds (0 where they depend on free sizes).
            pub const LAYERS: &'static [#k::runtime::LayerInfo] = &[#(#layers),*];
            /// nnc's table of the network, as `nnc check` prints it ([`Self::summary`]).
            pub const SUMMARY: &'static str = #summary;

            /// nnc's table of the network, as `nnc check` prints it; `Display` writes it too.
            pub fn summary() -> &'static str {
                Self::SUMMARY
            }
            #(#consts)*

            /// Creates the parameters under `vs`, initialised as PyTorch does; panics where
            /// [`Self::try_new`] returns an error.
            pub fn new(vs: &#k::tch::nn::Path) -> Self {
                Self::with_init(vs, #k::runtime::Init::PyTorch)
            }

            /// Creates the parameters under `vs` with the given initialisation; panics where
            /// [`Self::try_with_init`] returns an error.
            pub fn with_init(vs: &#k::tch::nn::Path, init: #k::runtime::Init) -> Self {
                Self::try_with_init(vs, init).unwrap_or_else(|e| panic!("{e}"))
            }

            /// Creates the parameters under `vs`, initialised as PyTorch does; an error naming
            /// the layer and the tensor libtorch could not create (a size too large for the
            /// memory, a device libtorch was not built for).
            pub fn try_new(vs: &#k::tch::nn::Path) -> ::std::result::Result<Self, #k::runtime::RuntimeError> {
                Self::try_with_init(vs, #k::runtime::Init::PyTorch)
            }

            /// Creates the parameters under `vs` with the given initialisation; errors as
            /// [`Self::try_new`]'s.
            pub fn try_with_init(vs: &#k::tch::nn::Path, init: #k::runtime::Init) -> ::std::result::Result<Self, #k::runtime::RuntimeError> {
                #(#inits)*
                #(#ties)*
                Ok(Self { #(#made,)* precision: #k::runtime::Precision::Fp32 })
            }

            /// The same model computing in `precision`: bf16 runs each forward under libtorch's
            /// autocast (matrix products and convolutions in bf16), with the weights kept in
            /// fp32 and the outputs given back in fp32.
            pub fn with_precision(mut self, precision: #k::runtime::Precision) -> Self {
                self.precision = precision;
                self
            }

            /// Makes later forwards compute in `precision` (see [`Self::with_precision`]).
            pub fn set_precision(&mut self, precision: #k::runtime::Precision) {
                self.precision = precision;
            }

            /// The precision of the forwards.
            pub fn precision(&self) -> #k::runtime::Precision {
                self.precision
            }

            #forward_methods

            #free_check

            #inference
        }

        #module_impl
    }
}

/// What the forward methods of either kind of network are written from.
struct Items<'a> {
    k: &'a TokenStream,
    ir: &'a TokenStream,
    name: &'a Ident,
    outputs_type: &'a Ident,
    main: &'a Ident,
    steps: &'a [TokenStream],
    output_values: &'a [TokenStream],
}

/// The forward methods of a network of one input, which takes the tensor `xs`, and its
/// `nn::ModuleT` implementation (and no inputs type).
fn one_input(graph: &Graph, items: &Items) -> (TokenStream, TokenStream, TokenStream) {
    let Items { k, ir, name, outputs_type, main, steps, output_values } = *items;
    let input = graph.node(graph.input());
    // A float input is checked as every model's always was; another type also by its kind.
    let check = match input.shape.dtype {
        DType::Float => quote! { #k::runtime::check_input(Self::INPUT_SHAPE, xs)?; },
        dtype => {
            let dtype = dtype.to_rust(ir);
            quote! { #k::runtime::check_typed_input(::std::option::Option::None, Self::INPUT_SHAPE, #dtype, xs)?; }
        }
    };
    let check = match graph.free {
        Some(_) => quote! { #check Self::check_free_sizes(&[xs])?; },
        None => check,
    };
    let methods = quote! {
        /// The main output; an error if `xs` does not have the input shape, or if libtorch
        /// refuses a layer (an allocation too large for the memory, most often), naming it.
        pub fn try_forward(&self, xs: &#k::tch::Tensor, train: bool) -> ::std::result::Result<#k::tch::Tensor, #k::runtime::RuntimeError> {
            self.try_forward_outputs(xs, train).map(|outputs| outputs.#main)
        }

        /// Every output; errors as [`Self::try_forward`]'s. In evaluation mode, the layers
        /// only outputs of training read are skipped.
        #[allow(unused_variables)]
        pub fn try_forward_outputs(&self, xs: &#k::tch::Tensor, train: bool) -> ::std::result::Result<#outputs_type, #k::runtime::RuntimeError> {
            #check
            let _autocast = self.precision.enter(xs.device())?;
            #(#steps)*
            Ok(#outputs_type { #(#output_values)* })
        }
    };
    let module = quote! {
        impl #k::tch::nn::ModuleT for #name {
            /// Panics, with the error's message, if `xs` does not have the input shape or
            /// libtorch refuses a layer, as `ModuleT` cannot return an error;
            /// [`Self::try_forward`] returns the error instead.
            fn forward_t(&self, xs: &#k::tch::Tensor, train: bool) -> #k::tch::Tensor {
                match self.try_forward(xs, train) {
                    Ok(y) => y,
                    Err(e) => panic!("{}", e),
                }
            }
        }
    };
    (TokenStream::new(), methods, module)
}

/// The inputs type, the forward methods and the constant `INPUTS` of a network of several
/// inputs, which takes them in a struct, a field per input (and which is no `nn::ModuleT`,
/// whose `forward_t` takes one tensor).
fn several_inputs(graph: &Graph, items: &Items) -> (TokenStream, TokenStream, TokenStream) {
    let Items { k, ir, name, outputs_type, main, steps, output_values } = *items;
    let inputs_type = format_ident!("{}Inputs", name);
    let inputs_doc = format!(
        " The inputs of [`{name}`], one field per input, named as the network names them; \
         [`{name}::try_forward_inputs`] takes them."
    );
    let mut fields = Vec::new();
    let mut listed = Vec::new();
    let mut tensors = Vec::new();
    for &id in &graph.inputs {
        let node = graph.node(id);
        let field = field_name(&node.name);
        let doc = format!(" `{}`: {}", node.name, graph.shape_text(id));
        fields.push(quote! { #[doc = #doc] pub #field: &'a #k::tch::Tensor, });
        let (input, shape, dtype) = (&node.name, dims(graph, id), node.shape.dtype.to_rust(ir));
        listed.push(quote! { (#input, &[#(#shape),*], #dtype) });
        tensors.push(quote! { inputs.#field });
    }
    // The autocast scope is for the inputs' device, which they share: the first one's.
    let first = &tensors[0];
    let types = quote! {
        #[doc = #inputs_doc]
        #[derive(Clone, Copy, Debug)]
        #[allow(non_snake_case)]
        pub struct #inputs_type<'a> {
            #(#fields)*
        }
    };
    let free = match graph.free {
        Some(_) => quote! { Self::check_free_sizes(&[#(#tensors),*])?; },
        None => TokenStream::new(),
    };
    let methods = quote! {
        /// Every input, in the network's order: its name, its shape (-1 is the batch, which
        /// the inputs share, and each free size) and its element type.
        pub const INPUTS: &'static [(&'static str, &'static [i64], #ir::DType)] = &[#(#listed),*];

        /// The main output; an error if an input does not have its shape or element type, if
        /// their batches differ, or if libtorch refuses a layer (an allocation too large for
        /// the memory, most often), naming it.
        pub fn try_forward_inputs(&self, inputs: #inputs_type<'_>, train: bool) -> ::std::result::Result<#k::tch::Tensor, #k::runtime::RuntimeError> {
            self.try_forward_outputs_inputs(inputs, train).map(|outputs| outputs.#main)
        }

        /// Every output; errors as [`Self::try_forward_inputs`]'s. In evaluation mode, the
        /// layers only outputs of training read are skipped.
        #[allow(unused_variables)]
        pub fn try_forward_outputs_inputs(&self, inputs: #inputs_type<'_>, train: bool) -> ::std::result::Result<#outputs_type, #k::runtime::RuntimeError> {
            #k::runtime::check_inputs(Self::INPUTS, &[#(#tensors),*])?;
            #free
            let _autocast = self.precision.enter(#first.device())?;
            #(#steps)*
            Ok(#outputs_type { #(#output_values)* })
        }
    };
    (types, methods, TokenStream::new())
}

/// The variables of node `i`'s states, `x5_1`, ..., for a layer that has them (see
/// [`crate::ops::Layer::states`]).
fn state_names(graph: &Graph, i: usize) -> Vec<Ident> {
    let states = graph.nodes[i].op.layer().states().len();
    (1..=states).map(|k| format_ident!("x{}_{}", i, k)).collect()
}

/// A stand-in with the same items as [`generate`]'s (those of a network of one input and of
/// several), emitted beside a `compile_error!` so that code using the model type-checks and
/// the user sees the one error that matters. Its outputs and inputs types have no fields: the
/// fields are the network's, which did not compile. `stub_has_every_item_of_generate` keeps the
/// two in step.
pub fn stub(name: &Ident, krate: &TokenStream) -> TokenStream {
    let k = krate;
    let ir = quote! { #k::runtime::ir };
    let outputs = format_ident!("{}Outputs", name);
    let inputs = format_ident!("{}Inputs", name);
    let never = quote! { unreachable!("the model did not compile") };
    let result = |t: TokenStream| quote! { ::std::result::Result<#t, #k::runtime::RuntimeError> };
    let (tensor, outs, plan) = (
        result(quote! { #k::tch::Tensor }),
        result(quote! { #outputs }),
        result(quote! { #k::runtime::Inference<'static> }),
    );
    quote! {
        pub struct #name;

        impl ::std::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(stringify!(#name)) }
        }

        impl ::std::fmt::Display for #name {
            fn fmt(&self, _: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { Ok(()) }
        }

        #[derive(Debug)]
        pub struct #outputs {}

        #[derive(Clone, Copy, Debug)]
        pub struct #inputs<'a> { _inputs: ::std::marker::PhantomData<&'a #k::tch::Tensor> }

        #[allow(unused_variables, clippy::all)]
        impl #name {
            pub const NAME: &'static str = "";
            pub const INPUT_SHAPE: &'static [i64] = &[];
            pub const OUTPUT_SHAPE: &'static [i64] = &[];
            pub const FREE_SIZES: &'static [(&'static str, &'static str)] = &[];
            pub const PARAMETERS: u64 = 0;
            pub const MACS: u64 = 0;
            pub const LAYERS: &'static [#k::runtime::LayerInfo] = &[];
            pub const SUMMARY: &'static str = "";
            pub const INPUTS: &'static [(&'static str, &'static [i64], #ir::DType)] = &[];
            pub fn summary() -> &'static str { Self::SUMMARY }
            pub fn new(vs: &#k::tch::nn::Path) -> Self { #name }
            pub fn with_init(vs: &#k::tch::nn::Path, init: #k::runtime::Init) -> Self { #name }
            pub fn try_new(vs: &#k::tch::nn::Path) -> ::std::result::Result<Self, #k::runtime::RuntimeError> { Ok(#name) }
            pub fn try_with_init(vs: &#k::tch::nn::Path, init: #k::runtime::Init) -> ::std::result::Result<Self, #k::runtime::RuntimeError> { Ok(#name) }
            pub fn with_precision(self, precision: #k::runtime::Precision) -> Self { #name }
            pub fn set_precision(&mut self, precision: #k::runtime::Precision) {}
            pub fn precision(&self) -> #k::runtime::Precision { #k::runtime::Precision::Fp32 }
            pub fn try_forward(&self, xs: &#k::tch::Tensor, train: bool) -> #tensor { #never }
            pub fn try_forward_outputs(&self, xs: &#k::tch::Tensor, train: bool) -> #outs { #never }
            pub fn try_forward_inputs(&self, inputs: #inputs<'_>, train: bool) -> #tensor { #never }
            pub fn try_forward_outputs_inputs(&self, inputs: #inputs<'_>, train: bool) -> #outs { #never }
            pub fn graph() -> #ir::Graph { #never }
            pub fn for_inference(&self) -> #plan { #never }
        }

        impl #k::tch::nn::ModuleT for #name {
            fn forward_t(&self, _: &#k::tch::Tensor, _: bool) -> #k::tch::Tensor { #never }
        }
    }
}

/// Rust's keywords, strict and reserved, which a field can only be spelt as raw (`r#type`).
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro",
    "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "static", "struct", "trait",
    "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// The field of an output named `name` in the outputs struct: the name itself, raw where it
/// is a Rust keyword (`r#type`), and with an underscore where it cannot be raw (`self_`).
fn field_name(name: &str) -> Ident {
    match name {
        "self" | "super" | "crate" | "Self" => format_ident!("{}_", name),
        _ if RUST_KEYWORDS.contains(&name) => Ident::new_raw(name, Span::call_site()),
        _ => Ident::new(name, Span::call_site()),
    }
}

/// A layer name as part of an identifier: `b3.0.conv1` → `b3_0_conv1`.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// `graph()`, the IR graph rebuilt, and `for_inference()`, the runtime's inference plan over the
/// type's tensors, for a network without free sizes (whose sets and size expressions stay in
/// the checker; its outputs are the forward's, and `nnc run` plans it).
fn inference(graph: &Graph, k: &TokenStream, ir: &TokenStream, node_params: &[TokenStream]) -> TokenStream {
    if graph.free.is_some() {
        return TokenStream::new();
    }
    let shape = |shape: &crate::shape::Shape| {
        let batch = match &shape.batch {
            Batch::Symbolic(name) => quote! { #ir::Batch::Symbolic(::std::string::String::from(#name)) },
            Batch::Fixed(n) => quote! { #ir::Batch::Fixed(#n) },
            Batch::None => quote! { #ir::Batch::None },
        };
        let (dims, dtype) = (&shape.dims, shape.dtype.to_rust(ir));
        quote! { #ir::Shape { batch: #batch, dims: ::std::vec![#(#dims),*], dtype: #dtype } }
    };
    let id = |id: NodeId| {
        let i = Literal::usize_unsuffixed(id.0);
        quote! { #ir::NodeId(#i) }
    };
    let string = |s: &str| quote! { ::std::string::String::from(#s) };
    let nodes = graph.nodes.iter().enumerate().map(|(i, node)| {
        let op = match graph.is_input(i) {
            true => node.op.to_rust(ir),
            false => {
                let c = op_const(i);
                quote! { Self::#c }
            }
        };
        let (name, inputs, shape) =
            (string(&node.name), node.inputs.iter().map(|&i| id(i)), shape(&node.shape));
        let (params, macs) = (node.params, node.macs);
        let shares = match node.shares {
            Some(owner) => {
                let owner = id(owner);
                quote! { ::std::option::Option::Some(#owner) }
            }
            None => quote! { ::std::option::Option::None },
        };
        let ties = node.ties.iter().map(|t| {
            let (tensor, to, to_tensor) = (string(&t.tensor), id(t.to), string(&t.to_tensor));
            quote! { #ir::Tie { tensor: #tensor, to: #to, to_tensor: #to_tensor } }
        });
        quote! {
            #ir::Node {
                name: #name, op: #op, inputs: ::std::vec![#(#inputs),*], shape: #shape, params: #params,
                macs: #macs, shares: #shares, ties: ::std::vec![#(#ties),*], loc: #ir::Loc::NOWHERE,
            }
        }
    });
    let params = graph.params.iter().map(|(name, value)| {
        let (name, value) = (string(name), string(value));
        quote! { (#name, #value) }
    });
    let inputs = graph.inputs.iter().map(|&i| id(i));
    let outputs = graph.outputs.iter().map(|o| {
        let (name, node, training_only) = (string(&o.name), id(o.node), o.training_only);
        quote! { #ir::Output { name: #name, node: #node, training_only: #training_only } }
    });
    let network = string(&graph.name);
    quote! {
        /// The network's IR graph as the checker built it (each layer's op, inputs, shape and
        /// counts; no source locations): what [`Self::for_inference`] plans.
        pub fn graph() -> #ir::Graph {
            #ir::Graph {
                name: #network,
                params: ::std::vec![#(#params),*],
                nodes: ::std::vec![#(#nodes),*],
                inputs: ::std::vec![#(#inputs),*],
                outputs: ::std::vec![#(#outputs),*],
                groups: ::std::vec::Vec::new(),
                free: ::std::option::Option::None,
            }
        }

        /// The model compiled for inference over its current tensors, as `nnc run`, `eval`,
        /// `predict` and `bench` run it (all but `predict` also measure, at their batch, which
        /// convolutions run faster on contiguous activations: `measure_conv_layouts`): batch
        /// norms folded into the layer before them, convolution weights prepacked for oneDNN on
        /// the CPU, the layout `Layout::for_graph` chooses for the network (channels-last where
        /// wide 2-D convolutions do most of the work, as measured faster so; else contiguous),
        /// residual sums fused into the convolution before them, activations computed in place,
        /// in this model's precision. Its outputs are the
        /// evaluation-mode forward's, within 1e-5 relative. The plan holds tensors derived from
        /// the weights: make another after they change.
        pub fn for_inference(&self) -> ::std::result::Result<#k::runtime::Inference<'static>, #k::runtime::RuntimeError> {
            let graph = Self::graph();
            let layout = #k::runtime::Layout::for_graph(&graph);
            let params = ::std::vec![#((#node_params).shared()),*];
            let mut model = #k::runtime::Model::from_params(graph, params)?;
            model.set_precision(self.precision);
            #k::runtime::Inference::owning(model, layout)
        }
    }
}

/// The name of node `i`'s op constant, `Self::OP_i`.
fn op_const(i: usize) -> Ident {
    format_ident!("OP_{}", i)
}

/// Node `id`'s sizes, -1 for the batch and for each that depends on a free size.
fn dims(graph: &Graph, id: NodeId) -> Vec<Literal> {
    let shape = &graph.node(id).shape;
    let mut sizes = shape.sizes(-1);
    if let Some(free) = graph.free.as_ref().and_then(|f| f.dims.get(id.0)) {
        let batch = usize::from(shape.batch != Batch::None);
        for (size, d) in sizes[batch..].iter_mut().zip(free) {
            if d.as_known().is_none() {
                *size = -1;
            }
        }
    }
    sizes.into_iter().map(Literal::i64_unsuffixed).collect()
}

/// A network's free sizes as generated code states them: `FREE_SIZES`' entries, and
/// `check_free_sizes`, which reads each from the inputs, the same wherever it is used, and
/// refuses sizes that break a layer's need as the interpreter does, with the same error.
fn free_sizes(graph: &Graph, k: &TokenStream) -> (Vec<TokenStream>, TokenStream) {
    let Some(free) = &graph.free else { return (Vec::new(), TokenStream::new()) };
    let entries = free.sets().map(|(name, text)| quote! { (#name, #text) }).collect();
    let var = |name: &str| {
        let v = format_ident!("free_{}", sanitize(name));
        quote! { #v }
    };
    let mut reads = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for n in &free.names {
        let k_input =
            Literal::usize_unsuffixed(graph.inputs.iter().position(|&id| id == n.input).unwrap_or(0));
        let batch = usize::from(graph.node(n.input).shape.batch != Batch::None);
        let axis = Literal::usize_unsuffixed(n.axis + batch);
        let v = var(&n.name);
        let name = &n.name;
        if seen.contains(&name.as_str()) {
            reads.push(quote! {
                let again = xs[#k_input].size()[#axis];
                if again != #v {
                    let sizes = format!("{} = {} and {}", #name, #v, again);
                    return Err(#k::runtime::free_size_refusal(sizes, None, Self::FREE_SIZES_TEXT.into()));
                }
            });
        } else {
            seen.push(name);
            reads.push(quote! { let #v: i64 = xs[#k_input].size()[#axis]; });
        }
    }
    let shown = seen.iter().map(|n| format!("{n} = {{}}")).collect::<Vec<_>>().join(", ");
    let values = seen.iter().map(|n| var(n));
    let checks = free.constraints.iter().map(|c| {
        let (holds, layer, need) = (c.need.to_rust(&var), &graph.node(c.node).name, c.need.to_string());
        quote! {
            if !(#holds) {
                let broken = ::std::option::Option::Some((#layer.to_string(), #need.to_string()));
                return Err(#k::runtime::free_size_refusal(sizes(), broken, Self::FREE_SIZES_TEXT.into()));
            }
        }
    });
    let valid = free.valid_text();
    let check = quote! {
        /// The free sizes' valid sets in words, as the refusals state them.
        const FREE_SIZES_TEXT: &'static str = #valid;

        /// Refuses inputs whose free sizes a layer cannot take, naming it and what it needs.
        #[allow(unused_parens, clippy::all)]
        fn check_free_sizes(xs: &[&#k::tch::Tensor]) -> ::std::result::Result<(), #k::runtime::RuntimeError> {
            #(#reads)*
            let sizes = || format!(#shown, #(#values),*);
            #(#checks)*
            Ok(())
        }
    };
    (entries, check)
}

/// An identifier for a generated type, from a network's name (`resnet18` → `Resnet18`).
pub fn type_name(network: &str) -> Ident {
    let mut out = String::new();
    for part in network.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'N');
    }
    // `network self` would be `Self`, which no type may be called.
    if out == "Self" {
        out.push('_');
    }
    Ident::new(&out, Span::call_site())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Options, Root};
    use proc_macro2::TokenTree;

    /// The names of the public items `tokens` declares (`pub fn`, `pub const`, `pub struct`) and
    /// of the traits it implements (`impl … for`), at any depth.
    fn items(tokens: TokenStream, out: &mut std::collections::BTreeSet<String>) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(g) => items(g.stream(), out),
                TokenTree::Ident(kw)
                    if ["fn", "const", "struct", "for"].contains(&kw.to_string().as_str()) =>
                {
                    let before = i.checked_sub(1).map(|b| &trees[b]);
                    match (before, trees.get(i + 1)) {
                        (Some(TokenTree::Ident(t)), _) if kw == "for" => _ = out.insert(format!("impl {t}")),
                        (Some(TokenTree::Ident(p)), Some(TokenTree::Ident(name))) if p == "pub" => {
                            out.insert(format!("{kw} {name}"));
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn type_names_are_types() {
        let names = ["lenet", "resnet-18", "vit_b_16", "3d", "self", "Self", "super"];
        let types: Vec<String> = names.iter().map(|n| type_name(n).to_string()).collect();
        assert_eq!(types, ["Lenet", "Resnet18", "VitB16", "N3d", "Self_", "Self_", "Super"]);
    }

    /// Code that uses any item of a model still type-checks against the stand-in when the model
    /// does not compile: the stand-in declares every item the generator does, for networks of
    /// one input, of several, with free sizes and with several outputs.
    #[test]
    fn stub_has_every_item_of_generate() {
        let k = quote! { ::nnc };
        let name = format_ident!("Net");
        let mut stubbed = std::collections::BTreeSet::new();
        items(stub(&name, &k), &mut stubbed);
        for item in ["impl ModuleT", "impl Display", "impl Debug", "pub fn for_inference", "const MACS"] {
            assert!(
                stubbed.iter().any(|s| s.ends_with(item.trim_start_matches("pub "))),
                "{item}: {stubbed:?}"
            );
        }
        let networks = [
            "network one { input [N, 1, 8, 8] conv2d(4, 3) -> flatten -> linear(2) }",
            "network two { input a [N, 4]\n input b [N, 4]\n a + b }",
            "network free { input [N, 3, H, W] conv2d(4, 3) }",
            "network heads { input [N, 4]\n h = linear(8)\n aux = h -> linear(3)\n h -> linear(2)\n output _, aux if training }",
        ];
        for text in networks {
            let compiled = compile(Root::Text { name: "n.net", text, dir: None }, &Options::default());
            assert!(!compiled.has_errors(), "{text}: {:?}", compiled.diagnostics);
            let mut generated = std::collections::BTreeSet::new();
            items(generate(&compiled.graphs[0], &name, &k), &mut generated);
            let missing: Vec<&String> = generated.difference(&stubbed).collect();
            assert!(missing.is_empty(), "{text}: the stand-in lacks {missing:?}");
        }
    }
}
