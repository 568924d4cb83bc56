//! The recurrent layers, PyTorch's modules with `batch_first=True`, as nnc's tensors always
//! have the batch first: a sequence `[N, T, F]` in, every step's hidden state of the last
//! layer out, `[N, T, D·H]` (D = 2 when bidirectional, the two directions' states side by
//! side); the input features F are inferred, and every initial state is zero.
//!
//! - `lstm(hidden_size, num_layers=1, bias=true, dropout=0.0, bidirectional=false)`:
//!   `nn.LSTM`;
//! - `gru(hidden_size, num_layers=1, bias=true, dropout=0.0, bidirectional=false)`: `nn.GRU`;
//! - `rnn(hidden_size, num_layers=1, nonlinearity="tanh", bias=true, dropout=0.0,
//!   bidirectional=false)`: `nn.RNN`, the Elman network, with tanh or relu.
//!
//! `dropout` applies to the outputs of every layer but the last, in training only. The final
//! hidden (and cell) states, the modules' second output, are not values in nnc.

use std::fmt;

use super::layer::{py_bool, py_float};
use super::{
    attributes, product, wrong_layout, ArgValue, Args, Built, Family, InitRule, Kind, Layer, Layout, Op,
    OpError, OpSpec, ParamSpec, PyTorch, Ranks, SizeOrigin, TensorSpec,
};
use crate::diagnostic::Code;
use crate::shape::{DType, Shape};

/// The most layers one recurrent layer stacks: as many as one network may have (the default
/// of `Limits::max_nodes`). Each is described tensor by tensor, so without a bound a
/// `num_layers` of a billion would exhaust the checker's memory before any error.
pub const MAX_NUM_LAYERS: u64 = 100_000;

/// The parameters every recurrent layer has after `hidden_size` (and, for `rnn`, before
/// `nonlinearity`) and after it, in PyTorch's order.
macro_rules! recurrent_params {
    ($($between:expr,)*) => {
        &[
            ParamSpec::required("hidden_size", Kind::Int),
            ParamSpec::optional("num_layers", Kind::Int, ArgValue::Int(1)),
            $($between,)*
            ParamSpec::optional("bias", Kind::Bool, ArgValue::Bool(true)),
            ParamSpec::optional("dropout", Kind::Float, ArgValue::Float(0.0)),
            ParamSpec::optional("bidirectional", Kind::Bool, ArgValue::Bool(false)),
        ]
    };
}

pub static LSTM: OpSpec = OpSpec {
    name: "lstm",
    summary: "long short-term memory over a sequence [N, T, F] (batch first): the last layer's hidden state at every step, [N, T, D·H] with D = 2 if bidirectional; the input features are inferred",
    torch: "nn.LSTM",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: recurrent_params!(),
    apply: |args, input| {
        let r = Recurrent::checked("lstm", Cell::Lstm, args, input)?;
        let op = Op::Lstm(Lstm {
            input_size: r.input_size,
            hidden_size: r.hidden_size,
            num_layers: r.num_layers,
            bias: r.bias,
            dropout: r.dropout,
            bidirectional: r.bidirectional,
        });
        r.built(op, input)
    },
};

pub static GRU: OpSpec = OpSpec {
    name: "gru",
    summary: "gated recurrent units over a sequence [N, T, F] (batch first): the last layer's hidden state at every step, [N, T, D·H] with D = 2 if bidirectional; the input features are inferred",
    torch: "nn.GRU",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: recurrent_params!(),
    apply: |args, input| {
        let r = Recurrent::checked("gru", Cell::Gru, args, input)?;
        let op = Op::Gru(Gru {
            input_size: r.input_size,
            hidden_size: r.hidden_size,
            num_layers: r.num_layers,
            bias: r.bias,
            dropout: r.dropout,
            bidirectional: r.bidirectional,
        });
        r.built(op, input)
    },
};

pub static RNN: OpSpec = OpSpec {
    name: "rnn",
    summary: "an Elman RNN (tanh or relu) over a sequence [N, T, F] (batch first): the last layer's hidden state at every step, [N, T, D·H] with D = 2 if bidirectional; the input features are inferred",
    torch: "nn.RNN",
    ranks: Ranks::Exactly(&[3]),
    takes: DType::Float,
    params: recurrent_params!(ParamSpec::optional(
        "nonlinearity",
        Kind::Choice(&["tanh", "relu"]),
        ArgValue::Choice("tanh")
    ),),
    apply: |args, input| {
        let nonlinearity = args.choice("nonlinearity");
        let cell = if nonlinearity == "relu" { Cell::RnnRelu } else { Cell::RnnTanh };
        let r = Recurrent::checked("rnn", cell, args, input)?;
        let op = Op::Rnn(Rnn {
            input_size: r.input_size,
            hidden_size: r.hidden_size,
            num_layers: r.num_layers,
            nonlinearity,
            bias: r.bias,
            dropout: r.dropout,
            bidirectional: r.bidirectional,
        });
        r.built(op, input)
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
}

impl Recurrent {
    /// The arguments of `op` checked against its input, or why not. Every size the tensors
    /// and the output are made of is checked here, so that [`Recurrent::tensors`] computes
    /// without overflow.
    fn checked(op: &'static str, cell: Cell, args: &Args, input: &Shape) -> Result<Recurrent, OpError> {
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
        let r = Recurrent {
            cell,
            input_size,
            hidden_size,
            num_layers,
            bias: args.bool("bias"),
            dropout,
            bidirectional: args.bool("bidirectional"),
        };
        product("parameter count", &[cell.gates(), hidden_size])?;
        product("output size", &[r.directions(), hidden_size])?;
        Ok(r)
    }

    /// The layer `op` on `input`: the output `[N, T, D·H]`, and torchinfo's multiply-adds for
    /// an RNN module, one per parameter per step: its rule for a module's other parameters
    /// (`weight_ih_l0`, ...) is `prod(output_size[:2]) · numel`, which with the batch first is
    /// N · T per parameter. Checked against `torchinfo.summary` on
    /// `nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)` and an input
    /// (3, 7, 6): 25,200 = 3 · 7 · 1,200 parameters (and on a GRU without bias, 3,465).
    fn built(&self, op: Op, input: &Shape) -> Result<Built, OpError> {
        let steps = input.dims[0];
        let output = input.with_dims(vec![steps, self.directions() * self.hidden_size]);
        let mut built = Built::free(op, output)?;
        built.macs = product("multiply-add count", &[steps, built.params])?;
        Ok(built)
    }

    /// 2 for a bidirectional layer, else 1.
    pub fn directions(&self) -> u64 {
        if self.bidirectional {
            2
        } else {
            1
        }
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
        let name = match self.cell {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::RnnTanh | Cell::RnnRelu => "rnn",
        };
        write!(f, "{name} {}→{}", self.input_size, self.hidden_size)?;
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
}

/// The [`Layer`] of a recurrent op, through its [`Recurrent`] view.
macro_rules! recurrent_layer {
    ($op:ident) => {
        impl Layer for $op {
            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.recurrent().describe(f)
            }

            fn tensors(&self) -> Vec<TensorSpec> {
                self.recurrent().tensors()
            }

            fn pytorch(&self, _: &[String]) -> PyTorch {
                self.recurrent().pytorch()
            }

            /// The module returns the output and the final states; the layer is the output.
            fn pytorch_call(&self, module: &str, xs: &[String]) -> String {
                format!("{module}({})[0]", xs.join(", "))
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

attributes! {
    pub struct Lstm {
        pub input_size: u64,
        pub hidden_size: u64,
        pub num_layers: u64,
        pub bias: bool,
        pub dropout: f64,
        pub bidirectional: bool,
    }
}

impl Lstm {
    pub fn recurrent(&self) -> Recurrent {
        Recurrent {
            cell: Cell::Lstm,
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            bias: self.bias,
            dropout: self.dropout,
            bidirectional: self.bidirectional,
        }
    }
}

recurrent_layer!(Lstm);

attributes! {
    pub struct Gru {
        pub input_size: u64,
        pub hidden_size: u64,
        pub num_layers: u64,
        pub bias: bool,
        pub dropout: f64,
        pub bidirectional: bool,
    }
}

impl Gru {
    pub fn recurrent(&self) -> Recurrent {
        Recurrent {
            cell: Cell::Gru,
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            bias: self.bias,
            dropout: self.dropout,
            bidirectional: self.bidirectional,
        }
    }
}

recurrent_layer!(Gru);

attributes! {
    pub struct Rnn {
        pub input_size: u64,
        pub hidden_size: u64,
        pub num_layers: u64,
        /// `"tanh"` or `"relu"`, as PyTorch spells them.
        pub nonlinearity: &'static str,
        pub bias: bool,
        pub dropout: f64,
        pub bidirectional: bool,
    }
}

impl Rnn {
    pub fn recurrent(&self) -> Recurrent {
        Recurrent {
            cell: if self.nonlinearity == "relu" { Cell::RnnRelu } else { Cell::RnnTanh },
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            bias: self.bias,
            dropout: self.dropout,
            bidirectional: self.bidirectional,
        }
    }
}

recurrent_layer!(Rnn);
