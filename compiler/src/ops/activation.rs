//! Pointwise activations with number arguments, each with its `torch.nn` module's argument
//! names and defaults: `leaky_relu`, `elu`, `softplus`, `hardtanh`. `activation!` declares
//! each one's signature, its attribute struct (one `f64` per argument, which must be finite)
//! and its description; a layer whose arguments must also agree with each other names a check.

use std::fmt;

use super::layer::py_float;
use super::onnx::{Attr, Onnx, OnnxError};
use super::{attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

macro_rules! activation {
    (
        $spec:ident, $ty:ident, $name:literal, $summary:literal, $torch:literal,
        [$($field:ident = $default:literal),+], describe $describe:literal, check $check:expr
    ) => {
        pub static $spec: OpSpec = OpSpec {
            name: $name,
            summary: $summary,
            torch: $torch,
            ranks: Ranks::AtLeast(1),
            takes: DType::Float,
            params: &[$(ParamSpec::optional(stringify!($field), Kind::Float, ArgValue::Float($default))),+],
            apply: |args: &Args, input: &Shape| -> Result<Built, OpError> {
                let attributes = $ty { $($field: args.finite_float(stringify!($field))?),+ };
                let check: fn(&$ty) -> Result<(), OpError> = $check;
                check(&attributes)?;
                Built::free(Op::$ty(attributes), input.clone())
            },
        };

        attributes! {
            pub struct $ty {
                $(pub $field: f64,)+
            }
        }

        impl Layer for $ty {
            fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
                super::free_same(xs)
            }

            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $ty { $($field),+ } = self;
                write!(f, $describe)
            }

            /// Every argument by name, so that the module reads as its `torch.nn` documentation.
            fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
                Ok(onnx(g, $name, &[$(self.$field),+], &xs[0]))
            }

            fn pytorch(&self, _: &[String]) -> PyTorch {
                let args = [$(format!(concat!(stringify!($field), "={}"), py_float(self.$field))),+];
                PyTorch::Module(format!(concat!($torch, "({})"), args.join(", ")))
            }
        }
    };
}

activation!(
    LEAKY_RELU, LeakyRelu, "leaky_relu", "x where x > 0, negative_slope · x elsewhere", "nn.LeakyReLU",
    [negative_slope = 0.01], describe "leaky_relu {negative_slope}", check |_| Ok(())
);

activation!(
    ELU, Elu, "elu", "x where x > 0, alpha · (exp(x) - 1) elsewhere", "nn.ELU",
    [alpha = 1.0], describe "elu {alpha}", check |_| Ok(())
);

activation!(
    SOFTPLUS, Softplus, "softplus",
    "log(1 + exp(beta · x)) / beta, or x itself where beta · x > threshold", "nn.Softplus",
    [beta = 1.0, threshold = 20.0], describe "softplus beta {beta}, threshold {threshold}",
    check nonzero_beta
);

activation!(
    HARDTANH, Hardtanh, "hardtanh", "x clamped to [min_val, max_val]", "nn.Hardtanh",
    [min_val = -1.0, max_val = 1.0], describe "hardtanh {min_val} to {max_val}", check ordered_bounds
);

/// PyTorch computes `log(1 + exp(0)) / 0`, infinity everywhere, for `beta=0`: no model means it.
fn nonzero_beta(s: &Softplus) -> Result<(), OpError> {
    if s.beta == 0.0 {
        return Err(OpError::new(Code::Value, "`beta` must not be 0: softplus divides by it")
            .label("`beta` is 0")
            .at("beta"));
    }
    Ok(())
}

/// PyTorch's `nn.Hardtanh` refuses bounds out of order when it is built; nnc refuses them
/// when the model is checked, with the same words.
fn ordered_bounds(h: &Hardtanh) -> Result<(), OpError> {
    let Hardtanh { min_val, max_val } = *h;
    if max_val <= min_val {
        let mut err = OpError::new(
            Code::Value,
            format!("`max_val` ({max_val:?}) must be greater than `min_val` ({min_val:?})"),
        )
        .label(format!("`max_val` is {max_val:?}"));
        if max_val < min_val {
            err = err.hint(format!("the lower bound comes first: `hardtanh({max_val:?}, {min_val:?})`"));
        }
        return Err(err.at("max_val"));
    }
    Ok(())
}

/// The ONNX spelling of the activation named `name` with its arguments in declared order.
fn onnx(g: &mut Onnx, name: &str, args: &[f64], x: &str) -> String {
    match (name, args) {
        ("leaky_relu", &[slope]) => g.node("LeakyRelu", &[x], vec![("alpha", Attr::Float(slope as f32))]),
        ("elu", &[alpha]) => g.node("Elu", &[x], vec![("alpha", Attr::Float(alpha as f32))]),
        // log(1 + exp(β·x)) / β, or x where β·x exceeds the threshold, as PyTorch computes it.
        ("softplus", &[beta, threshold]) => {
            let beta = g.scalar("beta", beta as f32);
            let scaled = g.node("Mul", &[x, &beta], vec![]);
            let soft = g.node("Softplus", &[&scaled], vec![]);
            let soft = g.node("Div", &[&soft, &beta], vec![]);
            let threshold = g.scalar("threshold", threshold as f32);
            let over = g.node("Greater", &[&scaled, &threshold], vec![]);
            g.node("Where", &[&over, x, &soft], vec![])
        }
        ("hardtanh", &[low, high]) => {
            let (low, high) = (g.scalar("min", low as f32), g.scalar("max", high as f32));
            g.node("Clip", &[x, &low, &high], vec![])
        }
        _ => unreachable!("each activation of this file has its spelling"),
    }
}
