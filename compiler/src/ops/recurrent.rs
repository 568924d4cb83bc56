//! The recurrent layers, PyTorch's modules with `batch_first=True`, as nnc's tensors always
//! have the batch first: a sequence `[N, T, F]` in, every step's hidden state of the last
//! layer out, `[N, T, D·H]` (D = 2 when bidirectional, the two directions' states side by
//! side); the input features F are inferred.
//!
//! - `lstm(hidden_size, num_layers=1, bias=true, dropout=0.0, bidirectional=false, h0=…,
//!   c0=…)`: `nn.LSTM`;
//! - `gru(hidden_size, num_layers=1, bias=true, dropout=0.0, bidirectional=false, h0=…)`:
//!   `nn.GRU`;
//! - `rnn(hidden_size, num_layers=1, nonlinearity="tanh", bias=true, dropout=0.0,
//!   bidirectional=false, h0=…)`: `nn.RNN`, the Elman network, with tanh or relu.
//!
//! `dropout` applies to the outputs of every layer but the last, in training only. The states
//! are batch first too, `[N, D·num_layers, H]` (PyTorch's `h_n` is `[D·num_layers, N, H]`):
//! the initial ones, tensor arguments `h0` (and an LSTM's `c0`, given together), zero where
//! not given; the final ones, which the module returns beside the output, are [`FinalState`]
//! nodes that read the layer's node, made where a destructuring binds them
//! (`y, h_n, c_n = lstm(64)`).

use std::fmt;

use super::layer::{py_bool, py_float};
use super::{
    attributes, product, wrong_layout, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Layout, Op,
    OpError, OpSpec, ParamSpec, PyTorch, Ranks, SizeOrigin, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

/// The most layers one recurrent layer stacks: as many as one network may have (the default
/// of `Limits::max_nodes`). Each is described tensor by tensor, so without a bound a
/// `num_layers` of a billion would exhaust the checker's memory before any error.
pub const MAX_NUM_LAYERS: u64 = 100_000;

/// The parameters of a recurrent layer: `hidden_size`, `num_layers`, those between (`rnn`'s
/// `nonlinearity`), `bias`, `dropout` and `bidirectional`, in PyTorch's order, then its
/// initial states.
macro_rules! recurrent_params {
    ($($between:expr,)*; $($state:literal),*) => {
        &[
            ParamSpec::required("hidden_size", Kind::Int),
            ParamSpec::optional("num_layers", Kind::Int, ArgValue::Int(1)),
            $($between,)*
            ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
            ParamSpec::optional("dropout", Kind::Float, ArgValue::Float(0.0)),
            ParamSpec::optional("bidirectional", Kind::Bool, ArgValue::Bool(false)),
            $(ParamSpec::optional($state, Kind::Tensor(DType::Float), ArgValue::Unset),)*
        ]
    };
}

pub static LSTM: OpSpec = OpSpec {
    name: "lstm",
    summary: "long short-term memory over a sequence [N, T, F] (batch first): the last layer's hidden state at every step, [N, T, D·H] with D = 2 if bidirectional, and to a destructuring the final states h_n, c_n [N, D·num_layers, H]; initial states h0, c0 of that shape, else zero; the input features are inferred",
    torch: "nn.LSTM",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: recurrent_params!(; "h0", "c0"),
    apply: |args, input| Recurrent::checked(Cell::Lstm, args, input)?.built(input),
};

pub static GRU: OpSpec = OpSpec {
    name: "gru",
    summary: "gated recurrent units over a sequence [N, T, F] (batch first): the last layer's hidden state at every step, [N, T, D·H] with D = 2 if bidirectional, and to a destructuring the final state h_n [N, D·num_layers, H]; an initial state h0 of that shape, else zero; the input features are inferred",
    torch: "nn.GRU",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: recurrent_params!(; "h0"),
    apply: |args, input| Recurrent::checked(Cell::Gru, args, input)?.built(input),
};

pub static RNN: OpSpec = OpSpec {
    name: "rnn",
    summary: "an Elman RNN (tanh or relu) over a sequence [N, T, F] (batch first): the last layer's hidden state at every step, [N, T, D·H] with D = 2 if bidirectional, and to a destructuring the final state h_n [N, D·num_layers, H]; an initial state h0 of that shape, else zero; the input features are inferred",
    torch: "nn.RNN",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: recurrent_params!(ParamSpec::optional(
        "nonlinearity",
        Kind::Choice(&["tanh", "relu"]),
        ArgValue::Choice("tanh")
    ),; "h0"),
    apply: |args, input| {
        let cell = if args.choice("nonlinearity") == "relu" { Cell::RnnRelu } else { Cell::RnnTanh };
        Recurrent::checked(cell, args, input)?.built(input)
    },
};

/// The cell a recurrent layer repeats over the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Lstm,
    Gru,
    RnnTanh,
    RnnRelu,
}

impl Cell {
    /// The gates whose weights each matrix stacks: input, forget, cell and output (LSTM);
    /// reset, update and new (GRU); one (RNN).
    pub fn gates(self) -> u64 {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::RnnTanh | Cell::RnnRelu => 1,
        }
    }

    /// The layer's name in the language.
    fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::RnnTanh | Cell::RnnRelu => "rnn",
        }
    }

    /// The states the cell carries from step to step, as PyTorch names the final ones: the
    /// hidden state, and an LSTM's cell state. Each is also an initial state the layer takes
    /// (`h0`, `c0`), and a [`FinalState`] it gives.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            Cell::Lstm => &["h_n", "c_n"],
            Cell::Gru | Cell::RnnTanh | Cell::RnnRelu => &["h_n"],
        }
    }
}

/// What the three recurrent ops share, read from any of them: the sizes and flags that fix
/// their tensors, their description and their PyTorch module, and that the runtime's forward
/// passes to libtorch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recurrent {
    pub cell: Cell,
    pub input_size: u64,
    pub hidden_size: u64,
    pub num_layers: u64,
    pub bias: bool,
    pub dropout: f64,
    pub bidirectional: bool,
    /// Whether the initial states are given: the node's inputs after the sequence, `h0` (and
    /// an LSTM's `c0`), batch first, `[N, D·num_layers, H]`; zero where not.
    pub initial: bool,
}

impl Recurrent {
    /// The arguments of the layer of `cell` checked against its input, or why not. Every size
    /// the tensors and the output are made of is checked here, so that
    /// [`Recurrent::tensors`] computes without overflow.
    fn checked(cell: Cell, args: &Args, input: &Shape) -> Result<Recurrent, OpError> {
        let op = cell.name();
        let &[_, input_size] = &input.dims[..] else {
            let needs = "a sequence [N, T, F] (batch, steps, features)";
            let mut err = wrong_layout(op, needs, Layout::SEQUENCE, input).note(
                "the steps are dimension 1 and the features dimension 2, as PyTorch's `batch_first=True` lays them out",
            );
            if input.rank() == 4 {
                err = err.note(
                    "an image [N, C, H, W] is a sequence of its rows with `permute(0, 2, 1, 3) -> flatten(start=2)`: [N, H, C·W]",
                );
            }
            return Err(err);
        };
        let hidden_size = args.positive_int("hidden_size")?;
        let num_layers = args.positive_int("num_layers")?;
        if num_layers > MAX_NUM_LAYERS {
            let message = format!(
                "`num_layers` is {num_layers}, more than the limit of {MAX_NUM_LAYERS} layers in one stack"
            );
            return Err(OpError::new(Code::Limit, message)
                .label(format!("`num_layers` is {num_layers}"))
                .at("num_layers"));
        }
        let dropout = args.float("dropout");
        // `contains` is false for NaN too.
        if !(0.0..1.0).contains(&dropout) {
            return Err(OpError::new(
                Code::Value,
                format!("`dropout` is a probability below 1 and must lie in [0, 1), but is {dropout}"),
            )
            .label(format!("dropout = {dropout}"))
            .note(
                "it drops the outputs of every layer but the last in training; at 1, it would drop them all",
            )
            .at("dropout"));
        }
        let initial = args.tensor("h0").is_some();
        let r = Recurrent {
            cell,
            input_size,
            hidden_size,
            num_layers,
            bias: args.bool("bias"),
            dropout,
            bidirectional: args.bool("bidirectional"),
            initial,
        };
        product("parameter count", &[cell.gates(), hidden_size])?;
        product("output size", &[r.directions(), hidden_size])?;
        let state = input.with_dims(r.state_sizes()?);
        let given: Vec<(&'static str, Option<&Shape>)> =
            ["h0", "c0"].iter().take(cell.states().len()).map(|&name| (name, args.tensor(name))).collect();
        if let [(_, h0), (_, c0)] = given[..] {
            if h0.is_some() != c0.is_some() {
                let (given, missing) = if h0.is_some() { ("h0", "c0") } else { ("c0", "h0") };
                return Err(OpError::new(
                    Code::Value,
                    format!("`lstm` is given `{given}` without `{missing}`"),
                )
                .label(format!("`{missing}` is missing"))
                .note("`nn.LSTM` takes its initial states as a pair, `(h_0, c_0)`, or neither")
                .hint(format!("give `{missing}` too, of the same shape, or neither"))
                .at(given));
            }
        }
        for (name, shape) in given {
            let Some(shape) = shape else { continue };
            if *shape != state {
                let (layers, d, h) = (r.num_layers, r.directions(), r.hidden_size);
                return Err(OpError::new(
                    Code::ShapeMismatch,
                    format!("the initial state `{name}` is {shape}, but this `{op}` needs {state}"),
                )
                .label(format!("this is {shape}, not {state}"))
                .note(format!(
                    "an initial state is [N, D·num_layers, hidden_size], batch first: here D = {d}{}, {layers} layer{}, {h} features",
                    if r.bidirectional { " (bidirectional)" } else { "" },
                    if layers == 1 { "" } else { "s" }
                ))
                .at(name));
            }
        }
        Ok(r)
    }

    /// The layer on `input`: the output `[N, T, D·H]`, and torchinfo's multiply-adds for
    /// an RNN module, one per parameter per step: its rule for a module's other parameters
    /// (`weight_ih_l0`, ...) is `prod(output_size[:2]) · numel`, which with the batch first is
    /// N · T per parameter. Checked against `torchinfo.summary` on
    /// `nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)` and an input
    /// (3, 7, 6): 25,200 = 3 · 7 · 1,200 parameters (and on a GRU without bias, 3,465).
    fn built(&self, input: &Shape) -> Result<Built, OpError> {
        let steps = input.dims[0];
        let output = input.with_dims(vec![steps, self.directions() * self.hidden_size]);
        let mut built = Built::free(self.op(), output)?;
        built.macs = product("multiply-add count", &[steps, built.params])?;
        Ok(built)
    }

    /// The op this view describes.
    fn op(&self) -> Op {
        match self.cell {
            Cell::Lstm => Op::Lstm(Lstm::from(self)),
            Cell::Gru => Op::Gru(Gru::from(self)),
            Cell::RnnTanh | Cell::RnnRelu => Op::Rnn(Rnn::from(self)),
        }
    }

    /// 2 for a bidirectional layer, else 1.
    pub fn directions(&self) -> u64 {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// A state's sizes after the batch: `[D·num_layers, H]`.
    fn state_sizes(&self) -> Result<Vec<u64>, OpError> {
        let states = product("state size", &[self.directions(), self.num_layers])?;
        product("state size", &[states, self.hidden_size])?;
        Ok(vec![states, self.hidden_size])
    }

    /// PyTorch's tensors, in its `state_dict` order, which is also the order libtorch's
    /// `lstm`, `gru` and `rnn_*` take them in: for each layer k, for each direction (the
    /// reverse one suffixed `_reverse`), `weight_ih_l{k}` [G·H, in_k], `weight_hh_l{k}`
    /// [G·H, H], and with `bias`, `bias_ih_l{k}` and `bias_hh_l{k}` [G·H]; in_0 is F, the
    /// others D·H. PyTorch's `reset_parameters` draws every one uniform in ±1/√H, whatever
    /// the run's initialisation (d2l's Xavier applies to linear and convolution layers only).
    fn tensors(&self) -> Vec<TensorSpec> {
        let (h, rows) = (self.hidden_size, self.cell.gates().saturating_mul(self.hidden_size));
        let init = InitRule::Bias { fan_in: h };
        let per_direction = if self.bias { 4 } else { 2 };
        let capacity = (self.num_layers * self.directions() * per_direction) as usize;
        let mut tensors = Vec::with_capacity(capacity);
        for k in 0..self.num_layers {
            let input = if k == 0 { self.input_size } else { self.directions().saturating_mul(h) };
            for sfx in ["", "_reverse"].iter().take(self.directions() as usize) {
                tensors.push(TensorSpec::trained(format!("weight_ih_l{k}{sfx}"), &[rows, input], init));
                tensors.push(TensorSpec::trained(format!("weight_hh_l{k}{sfx}"), &[rows, h], init));
                if self.bias {
                    tensors.push(TensorSpec::trained(format!("bias_ih_l{k}{sfx}"), &[rows], init));
                    tensors.push(TensorSpec::trained(format!("bias_hh_l{k}{sfx}"), &[rows], init));
                }
            }
        }
        tensors
    }

    /// `lstm 8→16, 2 layers, bidirectional, dropout 0.2`, with what differs from the defaults.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}→{}", self.cell.name(), self.input_size, self.hidden_size)?;
        if self.cell == Cell::RnnRelu {
            f.write_str(", relu")?;
        }
        if self.num_layers != 1 {
            write!(f, ", {} layers", self.num_layers)?;
        }
        if self.bidirectional {
            f.write_str(", bidirectional")?;
        }
        if !self.bias {
            f.write_str(", no bias")?;
        }
        if self.dropout != 0.0 {
            write!(f, ", dropout {}", self.dropout)?;
        }
        if self.initial {
            f.write_str(", initial state")?;
        }
        Ok(())
    }

    /// `nn.LSTM(8, 16, num_layers=2, ...)`, batch first.
    fn pytorch(&self) -> PyTorch {
        let (module, nonlinearity) = match self.cell {
            Cell::Lstm => ("LSTM", ""),
            Cell::Gru => ("GRU", ""),
            Cell::RnnTanh => ("RNN", ", nonlinearity='tanh'"),
            Cell::RnnRelu => ("RNN", ", nonlinearity='relu'"),
        };
        PyTorch::Module(format!(
            "nn.{module}({}, {}, num_layers={}{nonlinearity}, bias={}, batch_first=True, dropout={}, bidirectional={})",
            self.input_size,
            self.hidden_size,
            self.num_layers,
            py_bool(self.bias),
            py_float(self.dropout),
            py_bool(self.bidirectional)
        ))
    }

    /// The module called on the sequence and, where given, the initial states, which PyTorch
    /// takes as `[D·num_layers, N, H]` (contiguous, as cuDNN needs them): an LSTM's as a pair.
    fn pytorch_call(&self, module: &str, xs: &[String]) -> String {
        let state = |x: &String| format!("{x}.transpose(0, 1).contiguous()");
        match (xs, self.cell) {
            ([x, h, c], Cell::Lstm) if self.initial => format!("{module}({x}, ({}, {}))", state(h), state(c)),
            ([x, h], _) if self.initial => format!("{module}({x}, {})", state(h)),
            _ => format!("{module}({})", xs[0]),
        }
    }

    /// The module's `(output, h_n)`, or an LSTM's `(output, (h_n, c_n))`, bound to `ys`; `_`
    /// for the states when nothing reads them.
    fn pytorch_targets(&self, ys: &[String]) -> String {
        match ys {
            [y, states @ ..] if states.iter().all(|s| s == "_") => format!("{y}, _"),
            [y, h, c] => format!("{y}, ({h}, {c})"),
            _ => ys.join(", "),
        }
    }

    /// The final states, each `[N, D·num_layers, H]`: `h_n`, and an LSTM's `c_n`.
    fn states(&self) -> Vec<(Op, Vec<u64>)> {
        let sizes = vec![self.directions() * self.num_layers, self.hidden_size];
        (1..=self.cell.states().len() as u64)
            .map(|index| (Op::FinalState(FinalState { index, lstm: self.cell == Cell::Lstm }), sizes.clone()))
            .collect()
    }
}

/// A recurrent op's attribute struct (the fields of the [`Recurrent`] view, and `rnn`'s
/// `nonlinearity`, which gives its cell), the view, and its [`Layer`], through the view.
macro_rules! recurrent_op {
    ($op:ident, |$r:ident| $cell:expr $(, $(#[$meta:meta])* $field:ident: $ty:ty = $value:expr)?) => {
        attributes! {
            pub struct $op {
                pub input_size: u64,
                pub hidden_size: u64,
                pub num_layers: u64,
                $($(#[$meta])* pub $field: $ty,)?
                pub bias: bool,
                pub dropout: f64,
                pub bidirectional: bool,
                /// Given initial states: the node's second input is `h0` (and an LSTM's third
                /// `c0`), batch first.
                pub initial: bool,
            }
        }

        impl $op {
            pub fn recurrent(&self) -> Recurrent {
                let $r = self;
                Recurrent {
                    cell: $cell,
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    num_layers: self.num_layers,
                    bias: self.bias,
                    dropout: self.dropout,
                    bidirectional: self.bidirectional,
                    initial: self.initial,
                }
            }
        }

        impl From<&Recurrent> for $op {
            fn from($r: &Recurrent) -> Self {
                $op {
                    input_size: $r.input_size,
                    hidden_size: $r.hidden_size,
                    num_layers: $r.num_layers,
                    $($field: $value,)?
                    bias: $r.bias,
                    dropout: $r.dropout,
                    bidirectional: $r.bidirectional,
                    initial: $r.initial,
                }
            }
        }

        impl Layer for $op {
            /// Every step of the sequence, with the features the layer makes (its initial
            /// states, if given, have no free size).
            fn free_sizes(&self, xs: &[&[Size]], out: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
                let steps = xs.first()?.first()?.clone();
                Some(vec![steps, Size::from(*out.get(1)?)])
            }

            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.recurrent().describe(f)
            }

            fn tensors(&self) -> Vec<TensorSpec> {
                self.recurrent().tensors()
            }

            fn pytorch(&self, _: &[String]) -> PyTorch {
                self.recurrent().pytorch()
            }

            fn pytorch_call(&self, module: &str, xs: &[String]) -> String {
                self.recurrent().pytorch_call(module, xs)
            }

            fn pytorch_targets(&self, ys: &[String]) -> String {
                self.recurrent().pytorch_targets(ys)
            }

            fn states(&self) -> Vec<(Op, Vec<u64>)> {
                self.recurrent().states()
            }

            fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
                SizeOrigin::Lost
            }

            fn family(&self) -> Family {
                Family::Recurrent
            }
        }
    };
}

recurrent_op!(Lstm, |_r| Cell::Lstm);
recurrent_op!(Gru, |_r| Cell::Gru);
recurrent_op!(
    Rnn,
    |r| if r.nonlinearity == "relu" { Cell::RnnRelu } else { Cell::RnnTanh },
    /// `"tanh"` or `"relu"`, as PyTorch spells them.
    nonlinearity: &'static str = if r.cell == Cell::RnnRelu { "relu" } else { "tanh" }
);

attributes! {
    /// A recurrent layer's final state, its node's input: `h_n` (`index` 1) or an LSTM's
    /// `c_n` (2), which libtorch and PyTorch give as `[D·num_layers, N, H]` and nnc batch
    /// first, `[N, D·num_layers, H]`.
    pub struct FinalState {
        pub index: u64,
        /// Whether the layer is an LSTM, whose state 2 is its cell state.
        pub lstm: bool,
    }
}

impl Layer for FinalState {
    /// `[D·num_layers, H]`, whatever the sequence's length.
    fn free_sizes(&self, _: &[&[Size]], out: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        Some(out.iter().map(|&d| Size::from(d)).collect())
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, self.lstm) {
            (2, true) => f.write_str("final cell state c_n"),
            _ => f.write_str("final hidden state h_n"),
        }
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("{}.transpose(0, 1)", xs[0]))
    }

    fn reads(&self) -> usize {
        self.index as usize
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Lost
    }

    fn family(&self) -> Family {
        Family::Recurrent
    }
}
