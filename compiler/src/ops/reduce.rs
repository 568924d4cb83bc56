//! `mean(dim, keepdim=false)`, `sum(...)` and `amax(...)`: a reduction over dimensions other
//! than the batch, as PyTorch's `Tensor.mean(dim=..., keepdim=...)` computes it. A reduced
//! dimension is removed, or kept with size 1 under `keepdim`.

use std::borrow::Cow;
use std::fmt;

use super::layer::py_bool;
use super::onnx::{Attr, Onnx, OnnxError};
use super::{
    attributes, ArgValue, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks,
    SizeOrigin,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

/// The dimensions reduced, resolved (1..rank) and sorted, and the output shape.
fn reduced(args: &Args, input: &Shape) -> Result<(Vec<usize>, Shape), OpError> {
    let (written, _) = args.ints("dim");
    let mut dims = Vec::with_capacity(written.len());
    for &d in &written {
        let resolved = super::axis("dim", d, input)?;
        if dims.contains(&resolved) {
            return Err(OpError::new(Code::Value, format!("`dim` names dimension {resolved} twice"))
                .label("each dimension may be reduced once")
                .at("dim"));
        }
        dims.push(resolved);
    }
    dims.sort_unstable();
    let keepdim = args.bool("keepdim");
    let sizes = (1..=input.dims.len())
        .filter_map(|d| match dims.contains(&d) {
            false => Some(input.dims[d - 1]),
            true => keepdim.then_some(1),
        })
        .collect();
    Ok((dims, input.with_dims(sizes)))
}

macro_rules! reduction {
    ($spec:ident, $ty:ident, $name:literal, $summary:literal) => {
        pub static $spec: OpSpec = OpSpec {
            name: $name,
            summary: $summary,
            torch: concat!("Tensor.", $name),
            ranks: Ranks::AtLeast(2),
            takes: DType::Float,
            params: &[
                ParamSpec::required("dim", Kind::Ints),
                ParamSpec::optional("keepdim", Kind::Bool, ArgValue::Bool(false)),
            ],
            apply: |args: &Args, input: &Shape| -> Result<Built, OpError> {
                let (dims, shape) = reduced(args, input)?;
                let keepdim = args.bool("keepdim");
                Built::free(Op::$ty($ty { dims: Cow::Owned(dims), keepdim }), shape)
            },
        };

        attributes! {
            /// The dimensions reduced, sorted, none of them the batch.
            pub struct $ty {
                pub dims: Cow<'static, [usize]>,
                pub keepdim: bool,
            }
        }

        impl Layer for $ty {
            /// The sizes not reduced, and 1 for each reduced one under `keepdim`.
            fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
                let x = xs.first()?;
                let kept = x.iter().enumerate().filter_map(|(i, d)| match self.dims.contains(&(i + 1)) {
                    false => Some(d.clone()),
                    true => self.keepdim.then(|| Size::known(1)),
                });
                Some(kept.collect())
            }

            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                describe(f, $name, &self.dims, self.keepdim)
            }

            fn pytorch(&self, xs: &[String]) -> PyTorch {
                pytorch(&xs[0], $name, &self.dims, self.keepdim)
            }

            fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
                Ok(onnx(g, $name, &xs[0], &self.dims, self.keepdim))
            }

            fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
                SizeOrigin::Lost
            }
        }
    };
}

reduction!(MEAN, Mean, "mean", "the mean over dimensions `dim` (not the batch), removed unless `keepdim`");
reduction!(SUM, Sum, "sum", "the sum over dimensions `dim` (not the batch), removed unless `keepdim`");
reduction!(AMAX, Amax, "amax", "the maximum over dimensions `dim` (not the batch), removed unless `keepdim`");

fn describe(f: &mut fmt::Formatter<'_>, name: &str, dims: &[usize], keepdim: bool) -> fmt::Result {
    write!(f, "{name} over {dims:?}")?;
    if keepdim {
        f.write_str(", kept")?;
    }
    Ok(())
}

/// `x.mean(dim=(2, 3), keepdim=True)`
fn pytorch(x: &str, name: &str, dims: &[usize], keepdim: bool) -> PyTorch {
    let dim = match dims {
        [one] => one.to_string(),
        _ => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    PyTorch::Expr(format!("{x}.{name}(dim={dim}, keepdim={})", py_bool(keepdim)))
}

/// The ONNX reduction of the op named `name`, as opset 17 takes its axes: an attribute of
/// `ReduceMean` and `ReduceMax`, an input of `ReduceSum`.
fn onnx(g: &mut Onnx, name: &str, x: &str, dims: &[usize], keepdim: bool) -> String {
    let axes: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let keepdims = ("keepdims", Attr::Int(keepdim.into()));
    match name {
        "sum" => {
            let axes = g.ints("axes", &axes);
            g.node("ReduceSum", &[x, &axes], vec![keepdims])
        }
        "amax" => g.node("ReduceMax", &[x], vec![("axes", Attr::Ints(axes)), keepdims]),
        _ => g.node("ReduceMean", &[x], vec![("axes", Attr::Ints(axes)), keepdims]),
    }
}
