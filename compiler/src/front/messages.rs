//! Every message the front end writes: each error is a variant of [`Error`], carrying only the
//! facts, and [`Error::diagnostic`] words them all in one place, so that the evaluator reads
//! as logic and the wording can be reviewed, and kept consistent, at a glance.
//!
//! Messages are lower case and name the thing in backquotes; labels say what is at their
//! place; a hint says what to write instead. The tests' snapshots hold the exact text.

use nnc_grammar::ast::{BinaryOp, UnaryOp};

use super::expand::Frame;
use super::load::STD_MODULES;
use super::value::Value;
use crate::back::report::thousands;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::ir::Node;
use crate::ops::{Kind, Layout, OpError, OpSpec};
use crate::shape::{Batch, DType, Shape, MAX_ELEMENTS};
use crate::source::Loc;

/// The fields of a tensor, as `Expander::access` reads them (`x.channels`), for its errors.
const TENSOR_FIELDS: [&str; 6] = ["channels", "height", "width", "features", "rank", "shape"];

/// A value where another type was expected: its type's name, and the value as shown to people.
pub(super) struct Found {
    type_name: &'static str,
    shown: String,
}

impl Found {
    /// `shape` is the tensor's as shown, when the value is one: only the expander knows it.
    pub(super) fn new(value: &Value, shape: Option<String>) -> Found {
        let shown = match shape {
            Some(shape) => format!("a tensor {shape}"),
            None => value.to_string(),
        };
        Found { type_name: value.type_name(), shown }
    }
}

/// One application of a shared layer: how it built the layer, from which input, where.
pub(super) struct Applied<'a> {
    pub(super) op: String,
    pub(super) input: &'a Shape,
    pub(super) at: Loc,
}

/// What is being called, as argument errors describe it.
pub(super) struct Callee<'p> {
    /// `conv2d` or `residual`.
    name: &'p str,
    /// The parameters' names, in order.
    pub(super) params: &'p [&'p str],
    /// Where a block is defined.
    defined: Option<Loc>,
    /// A built-in layer, whose signature errors show.
    layer: Option<&'static OpSpec>,
}

impl<'p> Callee<'p> {
    /// Built for every call, so it formats nothing: errors word it when they happen.
    pub(super) fn layer(spec: &'static OpSpec, params: &'p [&'p str]) -> Self {
        Callee { name: spec.name, params, defined: None, layer: Some(spec) }
    }

    pub(super) fn block(name: &'p str, params: &'p [&'p str], defined: Loc) -> Self {
        Callee { name, params, defined: Some(defined), layer: None }
    }

    /// "`conv2d`" or "block `residual`".
    fn what(&self) -> String {
        match self.layer {
            Some(_) => format!("`{}`", self.name),
            None => format!("block `{}`", self.name),
        }
    }

    /// Adds where the callee is defined, or its signature.
    fn context(&self, mut d: Diagnostic) -> Diagnostic {
        if let Some(at) = self.defined {
            d = d.secondary(at, "block defined here");
        }
        if let Some(spec) = self.layer {
            d = d.note(format!("the signature is {}", signature(spec)));
        }
        d
    }
}

/// An error found while loading files or expanding a network, with what its message needs to
/// say. (Variants are commented with `//`, as doc comments would make rustfmt spread each over
/// several lines.)
pub(super) enum Error<'a> {
    // ---- Loading files and imports ----
    // `import` is the import that asked for the file, if any.
    IsDirectory { name: &'a str, import: Option<Loc> },
    // `folder` is the importing file's, for a file not found: paths are relative to it.
    Unreadable { name: &'a str, error: &'a std::io::Error, import: Option<Loc>, folder: Option<String> },
    // A FIFO, a device or a socket: `kind` says which.
    NotRegular { name: &'a str, kind: &'a str, import: Option<Loc> },
    // `size` is `None` when the file grew past the limit while it was read.
    TooLarge { name: &'a str, size: Option<u64>, max: u64, import: Option<Loc> },
    NotUtf8 { name: &'a str, byte: u8, at: Loc },
    ImportsTooDeep { max: usize, at: Loc },
    NoStdModule { module: &'a str, at: Loc },
    // `import ""`.
    EmptyImport { at: Loc },
    // `links` are the other imports along the cycle, with the name of the file making each.
    ImportCycle { file: &'a str, at: Loc, links: Vec<(Loc, &'a str)> },
    // A block named as a built-in layer or function.
    HidesBuiltin { name: &'a str, at: Loc },
    // Two blocks of one name.
    DefinedTwice { name: &'a str, at: Loc, first: Loc },

    // ---- Networks and their input ----
    // A network parameter with neither a default nor a `--set` value.
    NoParamValue { name: &'a str, at: Loc },
    NoInput { network: &'a str, at: Loc },
    // A network whose last statement is not a tensor; `found` is its type, if it has one.
    NetworkOutput { network: &'a str, found: Option<&'static str>, at: Loc },
    // `what` is the first total that overflows: "parameter count", "activations per example".
    TotalsOverflow { network: &'a str, what: &'a str, at: Loc },
    // A layer's output, or the input, with more elements than libtorch can hold as f32.
    TensorTooLarge { shape: &'a Shape, at: Loc },
    // A `--set` value that is not a constant.
    NotConstant { at: Loc },
    InputInBlock { at: Loc },
    WhereOutsideNetwork { at: Loc },
    FreeIsBatch { name: &'a str, at: Loc },
    InputInBody { at: Loc },
    FlowWithoutTensor { at: Loc },
    // A function whose body made a layer or gave a tensor.
    FunctionTensor { function: &'a str, at: Loc },
    // A built-in function given what it does not take.
    BuiltinArgs { function: &'a str, takes: &'static str, found: String, at: Loc },
    // `name{i}:` where `i` is not an integer.
    LabelIndex { found: Found, at: Loc },
    // A label that is empty or holds a dot.
    LabelText { text: &'a str, at: Loc },
    // Two unnamed inputs; `first` is the first.
    InputTwice { at: Loc, first: Loc },
    // Two inputs whose batches differ: this one's `batch`, the first input's `first_batch`.
    InputBatch { name: &'a str, batch: String, first: &'a str, first_batch: String, at: Loc, first_at: Loc },
    // `size`: the one dimension given, when it is a number (a size without the batch).
    InputTooFewDims { size: Option<i64>, at: Loc },
    BadDimension { value: i64, at: Loc },
    // ---- Declared outputs ----
    // `output` in a block, or before the network's last statement.
    OutputInBlock { at: Loc },
    OutputNotLast { at: Loc },
    // The first output marked `if training`.
    MainOutputInTraining { name: &'a str, at: Loc },
    // ---- Declared parameters ----
    // A `param`'s initial value that is neither a number nor `normal(std=...)`; `None` for a
    // call of `normal` with other arguments.
    ParamInit { found: Option<Found>, at: Loc },
    // A `param` of more dimensions than a layer's tensor may have.
    ParamRank { rank: usize, max: usize, at: Loc },
    // A `param` (no batch) given to a layer, a block, a join or a slice, or made the output;
    // `what` says which (`layer `conv2d``).
    ParamAsInput { what: String, shape: &'a Shape, at: Loc },
    // A tensor of another element type than `what` (`layer `linear``) takes; `origin` is the
    // node that made it, with its name.
    ElementType { what: String, takes: DType, shape: &'a Shape, at: Loc, origin: (Loc, &'a str, bool) },
    // `in` used before `input`.
    InBeforeInput { at: Loc },

    // ---- Shared layers and tied tensors ----
    // A `shared` layer applied to a tensor that builds its layer `layer` otherwise than its
    // first application did.
    SharedMismatch { name: &'a str, layer: &'a str, here: Applied<'a>, first: Applied<'a> },
    // A `shared` layer whose application builds a layer its first did not, or not all of
    // them (an `if` on the input's sizes).
    SharedStructure { name: &'a str, layer: &'a str, at: Loc, first: Loc },
    // `tie a.weight = ...` where no layer of the body is `a`.
    TieUnknownLayer { layer: &'a str, at: Loc, hint: Option<String> },
    // `tie a.bias = ...` where the layer `a` has no trained tensor `bias`.
    TieUnknownTensor { layer: &'a str, tensor: &'a str, op: String, has: String, at: Loc },
    TieShape { tensor: &'a str, dims: String, to: &'a str, to_dims: String, at: Loc },
    // A tensor tied twice (`first` is where it was tied first), or to itself.
    TieAgain { tensor: &'a str, at: Loc, first: Option<Loc> },

    // ---- Names ----
    // Two layers with one name; `first` is where the name was first taken.
    DuplicateLayer { name: &'a str, at: Loc, first: Loc },
    // A layer whose name is the parent of another's (`h` and `h.y.0`).
    LayerAsParent { name: &'a str, child: &'a str, at: Loc, child_at: Loc },
    // A name bound twice in one scope.
    Redefined { name: &'a str, at: Loc, first: Loc },
    // `hint` is a did-you-mean, as only the expander knows the names in scope.
    UnknownName { name: &'a str, at: Loc, hint: Option<String> },
    // A call of something that is no layer or block; `is_value` when it names a value.
    UnknownCallee { name: &'a str, is_value: bool, at: Loc, hint: Option<String> },

    // ---- Values and their types ----
    // Where an integer is needed.
    NotInteger { found: Found, at: Loc },
    UnaryOperand { op: UnaryOp, found: Found, at: Loc },
    BinaryOperands { a: &'a Value, op: BinaryOp, b: &'a Value, at: Loc },
    NotBooleans { a: &'a Value, op: BinaryOp, b: &'a Value, at: Loc },
    NotCondition { found: Found, at: Loc },
    StageNotTensor { found: Found, at: Loc },
    IndexNotInteger { found: Found, at: Loc },
    NotTensor { found: Found, at: Loc },
    // A field or index on a value that has none; `field` is `None` for an index.
    NoAccess { field: Option<&'a str>, found: Found, at: Loc },
    NoTensorField { field: &'a str, shape: String, at: Loc },
    IndexOutOfRange { index: i64, len: i64, at: Loc },
    NoElse { at: Loc },

    // ---- Arithmetic ----
    Overflow { a: &'a Value, op: BinaryOp, b: &'a Value, at: Loc },
    DivideByZero { a: &'a Value, op: BinaryOp, b: &'a Value, at: Loc },
    // A tensor divided by the number 0, or combined with a number that is not finite.
    TensorByNumber { value: f64, at: Loc },
    NegationOverflow { value: i64, at: Loc },

    // ---- Calls and their arguments ----
    TooManyArgs { callee: &'a Callee<'a>, given: usize, at: Loc },
    UnknownArg { callee: &'a Callee<'a>, name: &'a str, at: Loc },
    ArgTwice { param: &'a str, at: Loc },
    // An argument that is not of its parameter's kind.
    ArgType { param: &'a str, kind: Kind, value: &'a Value, found: Found, at: Loc },
    MissingLayerArg { layer: &'a str, param: &'a str, signature: String, at: Loc },
    MissingBlockArg { block: &'a str, param: &'a str, at: Loc, param_at: Loc },
    CatDimNotInteger { found: Found, at: Loc },
    // `join` is `cat` or `stack`.
    CatUnknownArg { join: &'a str, name: &'a str, at: Loc },
    CatEmpty { join: &'a str, at: Loc },
    // `a, b = value` where `value` is a tuple of another length; `at` is the names.
    DestructureCount { names: usize, items: usize, at: Loc, value: Loc },
    // `a, b = value` where `value` is no tuple.
    DestructureNotTuple { found: Found, at: Loc },
    // `a, b = lstm(...)` with another number of names than the layer's output and states
    // (`states` as the report describes them); `at` is the names.
    DestructureStates { layer: &'a str, states: &'a [String], names: usize, at: Loc, value: Loc },
    LayerNeedsInput { layer: &'a str, at: Loc },
    BlockNeedsInput { block: &'a str, at: Loc },
    RepeatNeedsInput { at: Loc },
    // A block's last statement is not a tensor; `found` is its type, if it has one.
    BlockOutput { block: &'a str, found: Option<&'static str>, at: Loc, call: Loc },
    // A block calling itself; `cycle` holds the frames from the block's first call on.
    Recursion { block: &'a str, function: bool, at: Loc, cycle: &'a [Frame] },

    // ---- Repeats ----
    NegativeRepeat { count: i64, at: Loc },
    ReversedRange { lo: i64, hi: i64, at: Loc },

    // ---- Limits, which stop expansion ----
    TooManyNodes { max: usize, at: Loc },
    TooManySteps { max: u64, at: Loc },
    TooManyIterations { count: u64, max: u64, at: Loc },
    TooDeep { max: usize, at: Loc },
}

impl Error<'_> {
    /// The diagnostic, worded. Expansion context is added by the expander when it reports it.
    pub(super) fn diagnostic(self) -> Diagnostic {
        use Error::*;
        let this_is = |found: &Found| format!("this is {}", found.shown);
        match self {
            IsDirectory { name, import } => {
                unloadable(format!("`{name}` is a directory, not a .net file"), import, None)
            }
            Unreadable { name, error, import, folder } => {
                let reason = match error.kind() {
                    std::io::ErrorKind::NotFound => "no such file".into(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                    _ => error.to_string(),
                };
                let hint = folder.map(|f| format!("paths are relative to the importing file's folder ({f})"));
                unloadable(format!("cannot read `{name}`: {reason}"), import, hint)
            }
            NotRegular { name, kind, import } => unloadable(
                format!("`{name}` is {kind}, not a regular file"),
                import,
                Some("models are read from regular files only: a FIFO would wait for a writer, and a device may never end".into()),
            ),
            TooLarge { name, size: Some(size), max, import } => {
                unloadable(format!("`{name}` is {size} bytes, over the limit of {max}"), import, None)
            }
            TooLarge { name, size: None, max, import } => {
                unloadable(format!("`{name}` is over the limit of {max} bytes"), import, None)
            }
            NotUtf8 { name, byte, at } => Diagnostic::error(Code::Io, format!("`{name}` is not valid UTF-8"))
                .primary(at, format!("byte 0x{byte:02x} here"))
                .hint(".net files are UTF-8 text; re-save the file as UTF-8"),
            ImportsTooDeep { max, at } => {
                Diagnostic::error(Code::Limit, format!("imports nest deeper than the limit of {max}"))
                    .primary(at, "this import is too deep")
            }
            NoStdModule { module, at } => {
                let names = STD_MODULES.iter().map(|(n, _)| *n);
                Diagnostic::error(Code::MissingImport, format!("there is no standard module `{module}`"))
                    .primary(at, "unknown module")
                    .maybe_hint(did_you_mean(module, names.clone()))
                    .note(format!("the standard library has {}", names.collect::<Vec<_>>().join(", ")))
            }
            EmptyImport { at } => Diagnostic::error(Code::MissingImport, "an import of no file")
                .primary(at, "the path is empty")
                .hint("write the file's path, relative to this file: `import \"blocks.net\"`"),
            ImportCycle { file, at, links } => {
                let mut d =
                    Diagnostic::error(Code::ImportCycle, format!("import cycle: `{file}` imports itself"))
                        .primary(at, "this import closes the cycle");
                for (import, importer) in links {
                    d = d.secondary(import, format!("`{importer}` imports the next file here"));
                }
                d.hint("move the shared blocks into a file that both import")
            }
            HidesBuiltin { name, at } => {
                Diagnostic::error(Code::Duplicate, format!("block `{name}` would hide the built-in `{name}`"))
                    .primary(at, "this name is taken by a built-in")
                    .hint(format!("rename the block, e.g. `my_{name}`"))
            }
            DefinedTwice { name, at, first } => {
                Diagnostic::error(Code::Duplicate, format!("block `{name}` is defined twice"))
                    .primary(at, "defined again here")
                    .secondary(first, "first defined here")
            }

            NoParamValue { name, at } => {
                Diagnostic::error(Code::Structure, format!("network parameter `{name}` has no value"))
                    .primary(at, "no default")
                    .hint(format!("give it a default (`{name} = ...`) or a value with `--set {name}=...`"))
            }
            NoInput { network, at } => {
                Diagnostic::error(Code::Structure, format!("network `{network}` has no input"))
                    .primary(at, "declared here")
                    .hint("declare the input shape first, e.g. `input [N, 1, 28, 28]`")
            }
            NetworkOutput { network, found, at } => {
                let found = found.unwrap_or("nothing");
                Diagnostic::error(Code::Structure, format!("network `{network}` must end with a tensor"))
                    .primary(at, format!("the last statement gives {found}"))
                    .hint("a network's output is its last statement")
            }
            TotalsOverflow { network, what, at } => Diagnostic::error(
                Code::Arithmetic,
                format!("the totals of network `{network}` overflow 64 bits"),
            )
            .primary(at, "this network is too large to count")
            .note(format!("every layer's own count fits, but the network's {what} does not")),
            TensorTooLarge { shape, at } => {
                let per_example = if matches!(shape.batch, Batch::Symbolic(_)) { " per example" } else { "" };
                let (max, element) = match shape.dtype {
                    DType::Float => (MAX_ELEMENTS, "f32".to_string()),
                    other => (i64::MAX as u64 / other.bytes(), format!("{other}")),
                };
                let max = thousands(max);
                Diagnostic::error(
                    Code::Arithmetic,
                    format!("this tensor is too large: {shape} has more than {max} elements{per_example}"),
                )
                .primary(at, format!("this is {shape}"))
                .note(format!(
                    "libtorch counts a tensor's bytes in signed 64 bits, so a tensor of {element} holds at most {max} elements"
                ))
            }
            NotConstant { at } => Diagnostic::error(Code::Type, "a parameter value must be a constant")
                .primary(at, "not a constant"),
            InputInBlock { at } => Diagnostic::error(Code::Structure, "`input` belongs in a network")
                .primary(at, "not allowed in a block or function")
                .hint("inside a block, `in` is the tensor the block is applied to"),
            FreeIsBatch { name, at } => Diagnostic::error(
                Code::Structure,
                format!("`{name}` is the batch, and cannot also be a size of one example"),
            )
            .primary(at, "the batch's name")
            .hint("give the free size a name of its own: `input [N, 3, H, W]`"),
            WhereOutsideNetwork { at } => Diagnostic::error(Code::Structure, "`where` belongs in a network's body")
                .primary(at, "not allowed in a block, function, `if` or `repeat` body")
                .hint("`where` speaks of the free sizes of the network's input: write it beside the `input`"),
            InputInBody { at } => Diagnostic::error(Code::Structure, "`input` belongs in a network's body")
                .primary(at, "not allowed in an `if` or `repeat` body")
                .hint("declare the input once, at the top of the network"),
            LabelIndex { found, at } => Diagnostic::error(
                Code::Type,
                format!("the number in a label must be an integer, but is {}", found.type_name),
            )
            .primary(at, this_is(&found))
            .hint("`denselayer{j}:` appends the value of an integer such as a repeat's index `j`"),
            LabelText { text, at } => Diagnostic::error(
                Code::Value,
                if text.is_empty() { "a label must not be empty".to_string() } else { format!("the label `{text}` holds a dot") },
            )
            .primary(at, "this label")
            .hint("a label names one layer; the dots between names come from the statements and blocks it is in"),
            FunctionTensor { function, at } => Diagnostic::error(
                Code::Type,
                format!("function `{function}` computes a tensor, but a function computes numbers"),
            )
            .primary(at, "called here")
            .hint("a `fn` computes sizes and other values from its arguments; write layers in a `block`"),
            BuiltinArgs { function, takes, found, at } => {
                Diagnostic::error(Code::Type, format!("`{function}` takes {takes}, but gets {found}"))
                    .primary(at, "in this call")
            }
            FlowWithoutTensor { at } => Diagnostic::error(Code::Structure, "`_` has no tensor here")
                .primary(at, "no tensor flows into this stage")
                .hint("`_` is the tensor flowing into the stage where it is written (`a -> f(_)` is `a`); use it after `->` or in a statement that follows one with a tensor"),
            InputTwice { at, first } => {
                Diagnostic::error(Code::Structure, "the network declares its unnamed input twice")
                    .primary(at, "second input")
                    .secondary(first, "first input")
                    .hint("name each input to declare several: `input tokens [N, T] int`, `input image [N, 3, H, W]`")
            }
            InputBatch { name, batch, first, first_batch, at, first_at } => Diagnostic::error(
                Code::Structure,
                format!("input `{name}` has batch `{batch}`, but input `{first}` has batch `{first_batch}`"),
            )
            .primary(at, format!("batch `{batch}`"))
            .secondary(first_at, format!("batch `{first_batch}`"))
            .note("the inputs of a network are the examples of one batch, so they share its size")
            .hint(format!("write `{first_batch}` first in every input's brackets")),
            InputTooFewDims { size, at } => {
                let hint = match size {
                    Some(size) => format!("put the batch first: `input [N, {size}]` for {size} features per example"),
                    None => "e.g. `input [N, 1, 28, 28]` for grey 28×28 images".into(),
                };
                Diagnostic::error(Code::Structure, "the input needs a batch and at least one more dimension")
                    .primary(at, "too few dimensions")
                    .hint(hint)
            }
            BadDimension { value, at } => {
                Diagnostic::error(Code::Value, format!("a dimension must be at least 1, but is {value}"))
                    .primary(at, format!("this is {value}"))
            }
            OutputInBlock { at } => Diagnostic::error(Code::Structure, "only a network declares outputs")
                .primary(at, "in a block")
                .hint("a block's output is its last statement; declare the outputs in the network that calls it"),
            OutputNotLast { at } => Diagnostic::error(Code::Structure, "`output` must be the network's last statement")
                .primary(at, "statements follow it")
                .hint("move `output` to the end of the network"),
            MainOutputInTraining { name, at } => Diagnostic::error(
                Code::Structure,
                format!("the first output, `{name}`, is the main one and cannot be an output of training only"),
            )
            .primary(at, "marked `if training`")
            .hint("list the output of every mode first: `output logits, aux if training`"),
            ParamInit { found, at } => Diagnostic::error(
                Code::Type,
                match found {
                    Some(found) => format!("a `param` starts as a number or `normal(std=...)`, not {}", found.shown),
                    None => "`normal` takes one argument, `std`, a number of at least 0".to_string(),
                },
            )
            .primary(at, "the initial value")
            .hint("write `= 0` (every element 0), `= 1e-6`, or `= normal(std=0.02)`"),
            ParamRank { rank, max, at } => Diagnostic::error(
                Code::Value,
                format!("a `param` may have at most {max} dimensions, but this one has {rank}"),
            )
            .primary(at, format!("{rank} dimensions")),
            SharedMismatch { name, layer, here, first } => {
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("shared layer `{name}` applied to two incompatible shapes"),
                )
                .primary(here.at, format!("applied to {} here, which makes `{layer}` {}", here.input, here.op))
                .secondary(first.at, format!("first applied to {}, which made `{layer}` {}", first.input, first.op))
                .note("a shared layer has one set of parameters, so every application must build the same layers, with the same sizes")
                .hint("apply it only to tensors of the shape it was built for, or declare a second layer where the shapes differ")
            }
            SharedStructure { name, layer, at, first } => Diagnostic::error(
                Code::ShapeMismatch,
                format!("shared layer `{name}` builds other layers here than where it was first applied"),
            )
            .primary(at, format!("this application differs in `{layer}`"))
            .secondary(first, "first applied here")
            .note("a shared layer has one set of parameters, so every application must build the same layers")
            .hint("apply it only to tensors of the shape it was built for"),
            TieUnknownLayer { layer, at, hint } => {
                Diagnostic::error(Code::UnknownName, format!("no layer `{layer}` to tie"))
                    .primary(at, "no layer of this body has this name")
                    .note("`tie` names layers as the `state_dict` does, relative to the body it is written in, after they are made")
                    .maybe_hint(hint)
            }
            TieUnknownTensor { layer, tensor, op, has, at } => Diagnostic::error(
                Code::UnknownName,
                format!("layer `{layer}` ({op}) has no trained tensor `{tensor}`"),
            )
            .primary(at, "not one of the layer's tensors")
            .hint(match has.is_empty() {
                true => "this layer has no trained tensors".to_string(),
                false => format!("its trained tensors are {has}"),
            }),
            TieShape { tensor, dims, to, to_dims, at } => Diagnostic::error(
                Code::ShapeMismatch,
                format!("cannot tie `{tensor}` {dims} to `{to}` {to_dims}: their sizes differ"),
            )
            .primary(at, "tied here")
            .note("a tied tensor is the other one, so both layers must expect the same sizes (an embedding [V, D] and a linear layer D → V both have a weight [V, D])"),
            TieAgain { tensor, at, first } => {
                let d = Diagnostic::error(Code::Duplicate, format!("`{tensor}` cannot be tied here"));
                match first {
                    Some(first) => d.primary(at, "tied again").secondary(first, "first tied here"),
                    None => d.primary(at, "tied to itself"),
                }
                .hint("a tensor is tied once, to a tensor of another layer")
            }
            ParamAsInput { what, shape, at } => Diagnostic::error(
                Code::Type,
                format!("{what} takes a batched tensor, but gets a `param` {shape}, which has no batch"),
            )
            .primary(at, format!("this is the `param` {shape}"))
            .note("a `param` has exactly its declared sizes; it takes part in arithmetic with batched tensors (`scale * x`, `x + pos`), broadcast from its last dimension as in PyTorch")
            .hint(if what == "`cat`" {
                "a `param` joins a `cat` when its first size is 1, which then stands for the batch: `param token [1, 1, d]` is repeated along it"
            } else {
                "combine it with a batched tensor first: `x * scale`, not `scale -> layer`"
            }),
            ElementType { what, takes, shape, at, origin: (origin, name, is_input) } => {
                let found = shape.dtype;
                let a = |t: DType| if t == DType::Int { "an" } else { "a" };
                let hint = match (takes, found) {
                    (DType::Float, DType::Int) => "an int tensor holds ids: `embedding(num_embeddings, embedding_dim)` turns them into float vectors, which layers take".to_string(),
                    (DType::Float, _) => format!("a {found} tensor is a mask: only `multi_head_attention`'s `key_padding_mask` and `scaled_dot_product_attention`'s `mask` take one"),
                    (DType::Bool, DType::Float) => "declare the mask as an input of its element type: `input mask [N, T] bool`".to_string(),
                    (_, DType::Float) => "declare the input of ids with its element type: `input tokens [N, T] int`".to_string(),
                    _ => format!("only an input declared `{takes}` holds {takes} elements"),
                };
                // A float shape shows no type: say it.
                let float = if found == DType::Float { ", float" } else { "" };
                let origin_label = match is_input {
                    true => format!("`{name}` is declared {shape} here{float}"),
                    false => format!("layer `{name}` makes it {shape} here{float}"),
                };
                Diagnostic::error(
                    Code::Type,
                    format!("{what} needs {} {takes} tensor, but gets {} {found} tensor, {shape}", a(takes), a(found)),
                )
                .primary(at, format!("this is {found}, not {takes}"))
                .secondary(origin, origin_label)
                .hint(hint)
            }
            InBeforeInput { at } => Diagnostic::error(Code::Structure, "`in` has no value yet")
                .primary(at, "used before the input is declared")
                .hint("declare `input [N, ...]` first"),

            LayerAsParent { name, child, at, child_at } => Diagnostic::error(
                Code::Duplicate,
                format!("layer `{name}` is also the parent of layer `{child}`"),
            )
            .primary(at, format!("this layer is named `{name}`"))
            .secondary(child_at, format!("this one is named `{child}`, inside it"))
            .hint(
                "in PyTorch a layer cannot hold other layers: bind the statement that makes this \
                 layer to a name of its own, or label it (`name: layer`)",
            ),
            DuplicateLayer { name, at, first } => {
                Diagnostic::error(Code::Duplicate, format!("two layers are named `{name}`"))
                    .primary(at, "this layer takes the name again")
                    .secondary(first, "first layer with this name")
                    .hint(
                        "layer names become parameter names and must be unique: bind the statements to \
                         different names or give the layers distinct labels (`name: layer`)",
                    )
            }
            Redefined { name, at, first } => {
                Diagnostic::error(Code::Duplicate, format!("`{name}` is already defined"))
                    .primary(at, "defined again here")
                    .secondary(first, "first defined here")
                    .hint("every name in a block or network is bound once; pick another name")
            }
            UnknownName { name, at, hint } => {
                Diagnostic::error(Code::UnknownName, format!("unknown name `{name}`"))
                    .primary(at, "not a parameter, tensor, layer or block")
                    .maybe_hint(hint)
            }
            UnknownCallee { name, is_value, at, hint } => {
                let message = if is_value {
                    format!("`{name}` is a value, not a layer or block, and cannot be called")
                } else {
                    format!("unknown layer or block `{name}`")
                };
                Diagnostic::error(Code::UnknownName, message)
                    .primary(at, "not a built-in layer or a block in scope")
                    .maybe_hint(hint.or_else(|| Some("blocks from other files need an `import`".into())))
            }

            NotInteger { found, at } => {
                Diagnostic::error(Code::Type, format!("expected an integer, found {}", found.type_name))
                    .primary(at, this_is(&found))
            }
            UnaryOperand { op, found, at } => {
                let what = if op == UnaryOp::Neg { "negate" } else { "apply `not` to" };
                Diagnostic::error(Code::Type, format!("cannot {what} {}", found.type_name))
                    .primary(at, this_is(&found))
            }
            BinaryOperands { a, op, b, at } => {
                let hint = matches!((a, b), (Value::Tensor(_), _) | (_, Value::Tensor(_)))
                    .then(|| "tensors take `+`, `-`, `*` and `/`, with tensors (broadcast) or numbers".to_string());
                let (a, b) = (a.type_name(), b.type_name());
                Diagnostic::error(Code::Type, format!("cannot apply `{op}` to {a} and {b}"))
                    .primary(at, format!("{a} {op} {b}"))
                    .maybe_hint(hint)
            }
            NotBooleans { a, op, b, at } => {
                let (a, b) = (a.type_name(), b.type_name());
                Diagnostic::error(Code::Type, format!("`{op}` needs booleans, not {a} and {b}"))
                    .primary(at, format!("{a} {op} {b}"))
            }
            NotCondition { found, at } => Diagnostic::error(
                Code::Type,
                format!("a condition must be a boolean, not {}", found.type_name),
            )
            .primary(at, this_is(&found))
            .hint("compare it, e.g. `stride != 1`"),
            StageNotTensor { found, at } => Diagnostic::error(
                Code::Type,
                format!("a chain stage must give a tensor, not {}", found.type_name),
            )
            .primary(at, this_is(&found)),
            IndexNotInteger { found, at } => Diagnostic::error(
                Code::Type,
                format!("an index must be an integer, not {}", found.type_name),
            )
            .primary(at, this_is(&found)),
            NotTensor { found, at } => {
                Diagnostic::error(Code::Type, format!("expected a tensor, found {}", found.type_name))
                    .primary(at, this_is(&found))
            }
            NoAccess { field, found, at } => {
                let what = field.map_or("index".to_string(), |f| format!("field `{f}`"));
                Diagnostic::error(Code::Type, format!("{} has no {what}", found.type_name))
                    .primary(at, format!("the value is {}", found.shown))
            }
            NoTensorField { field, shape, at } => {
                let message = if TENSOR_FIELDS.contains(&field) {
                    format!("a tensor of shape {shape} has no `{field}`")
                } else {
                    format!("tensors have no field `{field}`")
                };
                Diagnostic::error(Code::UnknownName, message)
                    .primary(at, format!("the tensor is {shape}"))
                    .maybe_hint(did_you_mean(field, TENSOR_FIELDS))
                    .note(format!("tensors have {}", TENSOR_FIELDS.join(", ")))
            }
            IndexOutOfRange { index, len, at } => {
                Diagnostic::error(Code::Value, format!("index {index} is out of range for a tuple of {len}"))
                    .primary(at, format!("valid indices are 0..{len}"))
            }
            NoElse { at } => {
                Diagnostic::error(Code::Structure, "this `if` has no value when its condition is false")
                    .primary(at, "no `else`")
                    .hint("add an `else { ... }`")
            }

            Overflow { a, op, b, at } => arithmetic(format!("{a} {op} {b} overflows 64-bit integers"), at),
            DivideByZero { a, op, b, at } => arithmetic(format!("{a} {op} {b} divides by zero"), at),
            TensorByNumber { value, at } => {
                let message = if value == 0.0 {
                    "this divides a tensor by zero".to_string()
                } else {
                    format!("the number {value} is not finite")
                };
                Diagnostic::error(Code::Arithmetic, message)
                    .primary(at, "in this expression")
                    .note("PyTorch would fill the result with infinities and NaNs, which no training recovers from")
            }
            NegationOverflow { value, at } => arithmetic(format!("-({value}) overflows"), at),

            TooManyArgs { callee, given, at } => {
                let message = format!(
                    "{} takes at most {} arguments, but gets {given}",
                    callee.what(),
                    callee.params.len()
                );
                callee.context(Diagnostic::error(Code::ArgumentCount, message)).primary(at, "extra argument")
            }
            UnknownArg { callee, name, at } => {
                let message = format!("{} has no argument `{name}`", callee.what());
                callee
                    .context(Diagnostic::error(Code::UnknownArgument, message))
                    .primary(at, "unknown argument")
                    .maybe_hint(did_you_mean(name, callee.params.iter().copied()))
            }
            ArgTwice { param, at } => {
                Diagnostic::error(Code::ArgumentCount, format!("argument `{param}` is given twice"))
                    .primary(at, "given again here")
            }
            ArgType { param, kind, value, found, at } => {
                let hint = match (value, kind) {
                    (Value::Float(_), Kind::Int | Kind::Spatial(_) | Kind::SpatialOr(..)) => {
                        Some("use `//` for integer division".to_string())
                    }
                    _ => None,
                };
                // A string of the wrong choice is shown itself: "a string" would not say which.
                let is = match value {
                    Value::Str(_) => found.shown.clone(),
                    // A tuple of the wrong length for a layer's rank: say how long it is.
                    Value::Tuple(items) if matches!(kind, Kind::Spatial(_) | Kind::SpatialOr(..)) => {
                        format!("a tuple of {}", items.len())
                    }
                    _ => found.type_name.into(),
                };
                Diagnostic::error(Code::Type, format!("`{param}` must be {}, but is {is}", kind.describe()))
                .primary(at, this_is(&found))
                .maybe_hint(hint)
            }
            MissingLayerArg { layer, param, signature, at } => {
                Diagnostic::error(Code::ArgumentCount, format!("`{layer}` needs the argument `{param}`"))
                    .primary(at, format!("`{param}` is missing"))
                    .hint(format!("the signature is {signature}"))
            }
            MissingBlockArg { block, param, at, param_at } => Diagnostic::error(
                Code::ArgumentCount,
                format!("block `{block}` needs the argument `{param}`"),
            )
            .primary(at, format!("`{param}` is missing"))
            .secondary(param_at, "parameter without a default"),
            CatDimNotInteger { found, at } => {
                Diagnostic::error(Code::Type, format!("`dim` must be an integer, not {}", found.type_name))
                    .primary(at, this_is(&found))
            }
            CatUnknownArg { join, name, at } => {
                Diagnostic::error(Code::UnknownArgument, format!("`{join}` has no argument `{name}`"))
                    .primary(at, "unknown argument")
                    .hint(format!("`{join}(a, b, ..., dim=1)` takes tensors and an optional `dim`"))
            }
            CatEmpty { join, at } => {
                Diagnostic::error(Code::ArgumentCount, format!("`{join}` needs at least one tensor"))
                    .primary(at, format!("nothing to {}", if join == "cat" { "concatenate" } else { "stack" }))
                    .hint(format!("e.g. `{join}(a, b)` joins a and b along the channels"))
            }
            DestructureCount { names, items, at, value } => Diagnostic::error(
                Code::Value,
                format!("{names} names to bind, but the value has {items} pieces"),
            )
            .primary(at, format!("{names} names"))
            .secondary(value, format!("this gives {items}"))
            .hint(match items > names {
                true => "bind one name to each piece",
                false => "bind one name to each piece: `chunk` gives fewer pieces than asked when the size \
                          does not divide evenly (5 in 4 chunks is 2, 2, 1)",
            }),
            DestructureNotTuple { found, at } => Diagnostic::error(
                Code::Type,
                format!("several names bind the pieces of a tuple, not {}", found.type_name),
            )
            .primary(at, this_is(&found))
            .hint("`a, b = chunk(2, dim=1)` binds the two halves of the channels"),
            DestructureStates { layer, states, names, at, value } => {
                let gives = states.len() + 1;
                // `h_n` and `c_n`, the last word of each state's description.
                let short: Vec<&str> = states.iter().map(|s| s.rsplit(' ').next().unwrap_or(s)).collect();
                let states_are = match &short[..] {
                    [one] => format!("its final state {one}"),
                    _ => format!("its final states {}", short.join(" and ")),
                };
                Diagnostic::error(
                    Code::Value,
                    format!("{names} names to bind, but `{layer}` gives {gives} tensors: its output and {states_are}"),
                )
                .primary(at, format!("{names} names"))
                .secondary(value, format!("this gives {gives}"))
                .hint(format!("bind one name to each: `y, {} = {layer}(...)`", short.join(", ")))
            }
            LayerNeedsInput { layer, at } => {
                Diagnostic::error(Code::Type, format!("`{layer}` is a layer and needs an input tensor here"))
                    .primary(at, "nothing flows into this layer")
                    .hint(
                        "layers stand in chains (`x -> conv2d(...)`) or statements; arguments and \
                         conditions take values",
                    )
            }
            BlockNeedsInput { block, at } => {
                Diagnostic::error(Code::Type, format!("block `{block}` needs an input tensor here"))
                    .primary(at, "nothing flows into this block")
                    .hint("blocks stand in chains (`x -> block(...)`) or statements")
            }
            RepeatNeedsInput { at } => Diagnostic::error(Code::Type, "`repeat` needs an input tensor here")
                .primary(at, "nothing flows into this repeat")
                .hint(
                    "a repeat applies its body again and again to a tensor: use it in a chain or a statement",
                ),
            BlockOutput { block, found, at, call } => {
                let found = found.unwrap_or("nothing");
                Diagnostic::error(Code::Structure, format!("block `{block}` must end with a tensor"))
                    .primary(at, format!("the last statement gives {found}"))
                    .secondary(call, "called here")
                    .hint("a block's output is its last statement")
            }
            Recursion { block, function, at, cycle } => {
                let kind = if function { "function" } else { "block" };
                let mut d = Diagnostic::error(Code::Recursion, format!("{kind} `{block}` calls itself"))
                    .primary(at, "this call would expand forever");
                for frame in cycle {
                    if let Frame::Call { block: called, at: call, .. } = frame {
                        d = d.secondary(*call, format!("`{called}` is called here"));
                    }
                }
                d.hint(format!("{kind}s cannot be recursive; build deep networks with `repeat`"))
            }

            NegativeRepeat { count, at } => {
                Diagnostic::error(Code::Value, format!("a repeat count must be at least 0, but is {count}"))
                    .primary(at, format!("this is {count}"))
            }
            ReversedRange { lo, hi, at } => {
                Diagnostic::error(Code::Value, format!("the range {lo}..{hi} ends before it starts"))
                    .primary(at, "empty or reversed range")
            }

            TooManyNodes { max, at } => limit(
                format!("the network expands to more than {max} layers, the limit"),
                at,
                "while adding this layer",
            ),
            TooManySteps { max, at } => {
                limit(format!("expansion takes more than {max} steps, the limit"), at, "still expanding here")
            }
            TooManyIterations { count, max, at } => limit(
                format!("repeat count {count} exceeds the limit of {max} iterations"),
                at,
                "too many iterations",
            ),
            TooDeep { max, at } => {
                limit(format!("block calls nest deeper than the limit of {max}"), at, "this call is too deep")
            }
        }
    }
}

/// The warnings of the wiring lints, each a likely mistake in a model that still checks.
pub(super) enum Lint<'a> {
    /// Layers computed and never reaching the output, dropped at `at`: `name` is the last one,
    /// `params` the parameters they hold, `times` how many instances (repeat iterations, block
    /// calls) of this source drop one.
    Dead {
        name: &'a str,
        params: u64,
        times: usize,
        at: Loc,
    },
    /// A chain stage whose value does not depend on `dropped`, the tensor flowing into it.
    IgnoredInput {
        dropped: &'a str,
        shape: &'a Shape,
        at: Loc,
    },
    UnusedParameter {
        block: &'a str,
        name: &'a str,
        at: Loc,
    },
    ShadowedIndex {
        name: &'a str,
        at: Loc,
        first: Loc,
    },
    /// An input of the network, declared at `at`, that nothing reads; `later`: not the first.
    UnusedInput {
        name: &'a str,
        later: bool,
        at: Loc,
    },
    /// A size of an input, after its first, named as a batch is (`name`), which makes it a
    /// free size while the first, `batch` as written, is the batch.
    BatchNamedFree {
        name: &'a str,
        batch: String,
        at: Loc,
    },
}

impl Lint<'_> {
    pub(super) fn diagnostic(self) -> Diagnostic {
        match self {
            Lint::Dead { name, params, times, at } => {
                let mut d = Diagnostic::error(
                    Code::DeadTensor,
                    format!("`{name}` is computed but never reaches the network's output"),
                )
                .primary(at, "computed here, then used by nothing");
                if times > 1 {
                    d = d.note(format!("this happens {times} times, once per instance of this code"));
                }
                if params > 0 {
                    d = d.note(format!(
                        "{params} parameters lie on that dead path: they are counted and exported, \
                         but would never get a gradient"
                    ));
                }
                d.hint("feed it into the output (`+`, `cat(...)`, or a later stage), or remove it")
            }
            Lint::IgnoredInput { dropped, shape, at } => Diagnostic::error(
                Code::IgnoredInput,
                format!("this stage does not use the tensor flowing into it, `{dropped}` {shape}"),
            )
            .primary(at, "computed from other tensors only")
            .note(format!("`a -> b` feeds `a` into `b`; here `{dropped}` is computed and thrown away"))
            .hint("start a new statement to branch from another tensor (`y = x -> ...`), or use the tensor flowing in"),
            Lint::UnusedParameter { block, name, at } => Diagnostic::error(
                Code::UnusedParameter,
                format!("parameter `{name}` of block `{block}` is never used"),
            )
            .primary(at, "no instance of the block reads it")
            .hint(format!("use `{name}` in the block's body, or remove it")),
            Lint::ShadowedIndex { name, at, first } => Diagnostic::error(
                Code::Shadowed,
                format!("the repeat's index `{name}` hides the `{name}` defined before"),
            )
            .primary(at, format!("inside the repeat, `{name}` is the index"))
            .secondary(first, "this one is hidden")
            .hint("give the index another name"),
            Lint::UnusedInput { name, later, at } => {
                // An unnamed input's node is `input`, a keyword no named one can have; it is `in`.
                let (what, read_as) = match name {
                    "input" => ("the network's input is never read".to_string(), "in"),
                    name => (format!("input `{name}` is never read"), name),
                };
                let d = Diagnostic::error(Code::UnusedInput, what)
                    .primary(at, "declared here, read by nothing")
                    .hint(format!("read it (`{read_as} -> ...`, or as a layer's argument), or remove it"));
                match later {
                    true => d.note(
                        "the statement after the inputs continues from the first, `in`; a later input is \
                         read by its name",
                    ),
                    false => d,
                }
            }
            Lint::BatchNamedFree { name, batch, at } => Diagnostic::error(
                Code::BatchNamedFree,
                format!("`{name}` is a free size here, not the batch: the batch is the first size, `{batch}`"),
            )
            .primary(at, format!("a size the network is checked for at every value of `{name}`"))
            .note("nnc's tensors are batch first, as PyTorch's with `batch_first=True`: [batch, ...]")
            .hint(format!("put the batch first (`[{name}, ...]`), or name this size otherwise if it is no batch")),
        }
    }
}

impl From<Lint<'_>> for Diagnostic {
    fn from(lint: Lint<'_>) -> Diagnostic {
        lint.diagnostic()
    }
}

impl From<Error<'_>> for Diagnostic {
    fn from(error: Error<'_>) -> Diagnostic {
        error.diagnostic()
    }
}

/// A file that could not be loaded: an import error where an import asked for it, else an I/O
/// error.
fn unloadable(message: String, import: Option<Loc>, hint: Option<String>) -> Diagnostic {
    let mut d = Diagnostic::error(if import.is_some() { Code::MissingImport } else { Code::Io }, message);
    if let Some(at) = import {
        d = d.primary(at, "imported here");
    }
    d.maybe_hint(hint)
}

fn arithmetic(message: String, at: Loc) -> Diagnostic {
    Diagnostic::error(Code::Arithmetic, message)
        .primary(at, "in this expression")
        .note("integers are 64-bit and every operation is checked")
}

fn limit(message: String, at: Loc, label: &str) -> Diagnostic {
    Diagnostic::error(Code::Limit, message)
        .primary(at, label)
        .note("nnc bounds expansion so that no input can exhaust time or memory")
}

/// Adds how expansion got to the error: each enclosing block call and repeat iteration as a
/// secondary label, innermost first, and the whole chain as a note when it is longer than one.
pub(super) fn expanded_from(mut d: Diagnostic, frames: &[Frame]) -> Diagnostic {
    let mut chain = Vec::new();
    for frame in frames.iter().rev() {
        match frame {
            // A function's call: it makes no layers, so it has no instance name.
            Frame::Call { block, instance, at } if instance.is_empty() => {
                d = d.secondary(*at, format!("in this call of `{block}`"));
                chain.push(format!("`{block}`"));
            }
            Frame::Call { block, instance, at } => {
                // "an `enc` block", "a `residual` block" (names read letter by letter aside).
                let a = match block.to_ascii_lowercase().starts_with(['a', 'e', 'i', 'o']) {
                    true => "an",
                    false => "a",
                };
                d = d.secondary(*at, format!("in `{instance}`, {a} `{block}` block called here"));
                chain.push(format!("`{instance}` ({block})"));
            }
            Frame::Repeat { iteration, count, index, at } => {
                // Iterations are counted from 1 for people; the index shows the value.
                let index = index.as_ref().map_or(String::new(), |(n, v)| format!(", with {n} = {v}"));
                let nth = iteration + 1;
                d = d.secondary(*at, format!("in iteration {nth} of {count} of this repeat{index}"));
                chain.push(format!("repeat iteration {nth}{index}"));
            }
        }
    }
    if chain.len() > 1 {
        chain.reverse();
        d = d.note(format!("expanded from {}", chain.join(" → ")));
    }
    d
}

/// Says where the wrong rank of a layer that needs the `layout` (an image layer, a 1-D or
/// 3-D one, a recurrent one) came from: a layer upstream that changed it (a `flatten` the
/// layer should come before), or the input declaration (which should have the layout's
/// rank). Blaming `flatten` when there is none sends the reader to look for a layer they
/// never wrote.
/// `shape` is the origin's shape as the error shows it: with the free names, where it has
/// free sizes.
pub(super) fn rank_origin(d: Diagnostic, origin: &Node, shape: &str, layout: Layout) -> Diagnostic {
    let Layout { rank, layers, dims: layout, example } = layout;
    match origin.op.spec() {
        Some(spec) => d
            .secondary(origin.loc, format!("`{}` makes it {shape} here", spec.name))
            .hint(format!("{layers} must come before `{0}`; move this layer up, or `{0}` down", spec.name)),
        None => {
            // A sequence [N, C, L] declared for an image layer: [N, C, L, L], its last size
            // repeated as written (`[N, T, 16]` gives `[N, T, 16, 16]`).
            let example = match (&origin.shape.dims[..], shape.strip_suffix(']')) {
                ([_, _], Some(open)) if rank == 4 => match open.rsplit_once(", ") {
                    Some((_, last)) => format!("`input {open}, {last}]`"),
                    None => example.into(),
                },
                _ => example.into(),
            };
            d.secondary(
                origin.loc,
                format!("the input is declared as {shape}, with {} dimensions", origin.shape.rank()),
            )
            .hint(format!(
                "{layers} take {layout}: declare the input with {rank} dimensions, such as {example}"
            ))
        }
    }
}

/// Shows the first input's shape beside the one that does not join with it.
pub(super) fn with_first_input(d: Diagnostic, at: Loc, shape: &Shape) -> Diagnostic {
    d.secondary(at, format!("this is {shape}"))
}

pub(super) fn op_diagnostic(err: OpError, at: Loc, layer: Option<&str>) -> Diagnostic {
    let label = match (layer, err.label.is_empty()) {
        (Some(name), true) => format!("in layer `{name}`"),
        (Some(name), false) => format!("{} (layer `{name}`)", err.label),
        (None, _) => err.label,
    };
    let mut d = Diagnostic::error(err.code, err.message).primary(at, label).maybe_hint(err.hint);
    d.notes = err.notes;
    d
}

/// `conv2d(out_channels, kernel, stride=1, ...)`
pub(super) fn signature(spec: &OpSpec) -> String {
    format!("`{}`", spec.signature())
}
