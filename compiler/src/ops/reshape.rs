//! `reshape(d1, d2, ...)` and `unflatten(dim, sizes)`: new sizes for the dimensions after the
//! batch, or for one of them, holding the same number of elements; one size may be -1, which
//! is inferred, as PyTorch infers it. The batch always stays. (`flatten` is the inverse of
//! `unflatten`, in `flatten.rs`.)

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::{attributes, product, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks};
use crate::diagnostic::Code;
use crate::shape::{DType, Shape};

pub static RESHAPE: OpSpec = OpSpec {
    name: "reshape",
    summary: "gives the dimensions after the batch new sizes holding the same elements (`reshape(4, -1)`: \
              one -1 is inferred); the batch stays",
    torch: "Tensor.reshape",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[ParamSpec::required("shape", Kind::Ints)],
    apply: reshape,
};

pub static UNFLATTEN: OpSpec = OpSpec {
    name: "unflatten",
    summary:
        "splits dimension `dim` (not the batch) into `sizes`, whose product is its size; one -1 is inferred",
    torch: "nn.Unflatten",
    ranks: Ranks::AtLeast(2),
    takes: DType::Float,
    params: &[ParamSpec::required("dim", Kind::Int), ParamSpec::required("sizes", Kind::Dims)],
    apply: unflatten,
};

fn reshape(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let (sizes, _) = args.ints("shape");
    let total = product("element count", &input.dims)?;
    let what = || format!("the input {input} holds {total} elements per example");
    let shape = infer("shape", &sizes, total, "reshape", &input.to_string(), what)?;
    let op = Op::Reshape(Reshape { shape: Cow::Owned(shape.clone()) });
    Built::free(op, input.with_dims(shape))
}

fn unflatten(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let dim = super::flatten::axis(args, "dim", input)?;
    let (sizes, _) = args.ints("sizes");
    let size = input.dims[dim - 1];
    let what = || format!("dimension {dim} of {input} has size {size}");
    let sizes = infer("sizes", &sizes, size, "unflatten", &format!("dimension {dim} of {input}"), what)?;
    let mut dims = input.dims[..dim - 1].to_vec();
    dims.extend_from_slice(&sizes);
    dims.extend_from_slice(&input.dims[dim..]);
    Built::free(Op::Unflatten(Unflatten { dim, sizes: Cow::Owned(sizes.clone()) }), input.with_dims(dims))
}

/// `sizes` (the argument `arg`) with its -1, if any, inferred so that they hold `total`
/// elements, as PyTorch infers it; an error names both products. `verb` and `from` word the
/// error (`cannot reshape [N, 4, 4] into ...`), `holds` says what holds `total`.
fn infer(
    arg: &'static str,
    sizes: &[i64],
    total: u64,
    verb: &str,
    from: &str,
    holds: impl Fn() -> String,
) -> Result<Vec<u64>, OpError> {
    let shown = ints_text(sizes);
    let mut inferred = None;
    let mut known = 1u64;
    for (i, &size) in sizes.iter().enumerate() {
        match size {
            -1 if inferred.is_none() => inferred = Some(i),
            -1 => {
                return Err(OpError::new(Code::Value, format!("`{arg}` {shown} holds more than one -1"))
                    .label("only one size can be inferred")
                    .at(arg))
            }
            1.. => {
                known = known.checked_mul(size as u64).ok_or_else(|| {
                    OpError::new(Code::Arithmetic, format!("the product of {shown} overflows 64 bits"))
                        .at(arg)
                })?
            }
            _ => {
                return Err(OpError::new(
                    Code::Value,
                    format!("`{arg}` holds {size}: each size must be at least 1, or -1 to infer it"),
                )
                .label(format!("`{arg}` is {shown}"))
                .at(arg))
            }
        }
    }
    let mismatch = |label: String| {
        OpError::new(Code::ShapeMismatch, format!("cannot {verb} {from} into {shown}"))
            .label(label)
            .note(holds())
            .at(arg)
    };
    let mut sizes: Vec<u64> = sizes.iter().map(|&s| s.max(1) as u64).collect();
    match inferred {
        None if known == total => {}
        None => return Err(mismatch(format!("{shown} holds {known} elements, not {total}"))),
        Some(i) if total.is_multiple_of(known) => sizes[i] = total / known,
        Some(_) => {
            return Err(mismatch(format!(
                "the sizes other than -1 multiply to {known}, which does not divide {total}"
            )))
        }
    }
    Ok(sizes)
}

/// `(4, -1)`, as the argument is written.
fn ints_text(sizes: &[i64]) -> String {
    let sizes: Vec<String> = sizes.iter().map(i64::to_string).collect();
    format!("({})", sizes.join(", "))
}

attributes! {
    /// The sizes after the batch, the -1 inferred.
    pub struct Reshape {
        pub shape: Cow<'static, [u64]>,
    }
}

attributes! {
    pub struct Unflatten {
        pub dim: usize,
        pub sizes: Cow<'static, [u64]>,
    }
}

/// `4, 8`: sizes as a Python argument list.
fn listed(sizes: &[u64]) -> String {
    sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

impl Layer for Reshape {
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        Ok(g.reshape_to_output(&xs[0]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reshape to ({})", listed(&self.shape))
    }

    /// The batch is read from the input, so that the module runs at any batch size.
    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(format!("{0}.reshape({0}.shape[0], {1})", xs[0], listed(&self.shape)))
    }
}

impl Layer for Unflatten {
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        Ok(g.reshape_to_output(&xs[0]))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unflatten {} to ({})", self.dim, listed(&self.sizes))
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let comma = if self.sizes.len() == 1 { "," } else { "" };
        PyTorch::Module(format!("nn.Unflatten({}, ({}{comma}))", self.dim, listed(&self.sizes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_size_is_inferred_and_the_products_are_checked() {
        let holds = || "holds".to_string();
        assert_eq!(infer("shape", &[4, -1], 32, "reshape", "x", holds).unwrap(), [4, 8]);
        assert_eq!(infer("shape", &[2, 16], 32, "reshape", "x", holds).unwrap(), [2, 16]);
        let err = infer("shape", &[5, 3], 16, "reshape", "[N, 4, 4]", holds).unwrap_err();
        assert_eq!(err.code, Code::ShapeMismatch);
        assert_eq!(err.message, "cannot reshape [N, 4, 4] into (5, 3)");
        assert_eq!(err.label, "(5, 3) holds 15 elements, not 16");
        let err = infer("shape", &[5, -1], 16, "reshape", "x", holds).unwrap_err();
        assert!(err.label.contains("multiply to 5, which does not divide 16"), "{}", err.label);
        assert!(infer("shape", &[-1, -1], 16, "reshape", "x", holds).is_err());
        assert!(infer("shape", &[0, 16], 16, "reshape", "x", holds).is_err());
        assert!(infer("shape", &[-2, -8], 16, "reshape", "x", holds).is_err());
        assert_eq!(
            infer("shape", &[i64::MAX, 4], 16, "reshape", "x", holds).unwrap_err().code,
            Code::Arithmetic
        );
    }
}
