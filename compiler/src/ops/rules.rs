//! What shape rules share: their error type, checked products, and the sliding-window rule
//! with errors that show how a size was derived.

use crate::diagnostic::Code;
use crate::shape::{Shape, Window, WindowSize};

/// Why a layer cannot be applied. The evaluator adds the location and the expansion context.
#[derive(Debug)]
pub struct OpError {
    pub code: Code,
    pub message: String,
    pub label: String,
    pub notes: Vec<String>,
    pub hint: Option<String>,
    /// The argument to point at, when the caller gave it.
    pub arg: Option<&'static str>,
    /// For a size that shrinks to nothing: the spatial axis (0 height, 1 width).
    pub axis: Option<usize>,
    /// For an input of the wrong rank: the rank needed. Only the evaluator knows where the
    /// input's rank came from (a `flatten` upstream, or the input declaration), so it words
    /// the hint.
    pub needs_rank: Option<usize>,
}

impl OpError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
            label: String::new(),
            notes: Vec::new(),
            hint: None,
            arg: None,
            axis: None,
            needs_rank: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at(mut self, arg: &'static str) -> Self {
        self.arg = Some(arg);
        self
    }
}

/// The product of `factors`, or an error naming what overflowed.
pub fn product(what: &str, factors: &[u64]) -> Result<u64, OpError> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f)).ok_or_else(|| {
        OpError::new(Code::Arithmetic, format!("the {what} of this layer overflows 64 bits"))
            .label(format!("{what}: {}", factors.iter().map(u64::to_string).collect::<Vec<_>>().join(" × ")))
    })
}

/// Resolves the axis `name=raw` of `input`, negative counting from the end, to 1..rank, as
/// PyTorch does; axis 0, the batch, is refused. The error shows `raw` as it was written.
pub fn axis(name: &'static str, raw: i64, input: &Shape) -> Result<usize, OpError> {
    let rank = input.rank() as i64;
    // `raw + rank` cannot overflow: `raw` is negative there, and the rank is small.
    let resolved = if raw < 0 { raw + rank } else { raw };
    if resolved < 1 || resolved >= rank {
        let msg = if resolved == 0 {
            format!("`{name}={raw}` is the batch dimension, which layers keep as it is")
        } else {
            format!("`{name}={raw}` is out of range for {input}, which has {rank} dimensions")
        };
        return Err(OpError::new(Code::Value, msg)
            .label(format!("must lie in 1..{rank}, or be negative from the end"))
            .at(name));
    }
    Ok(resolved as usize)
}

/// `[C, H, W]` of a 4-D input, or an error saying what `op` needs.
pub fn expect_image(op: &str, input: &Shape) -> Result<[u64; 3], OpError> {
    match input.dims[..] {
        [c, h, w] => Ok([c, h, w]),
        _ => {
            let mut err = OpError::new(
                Code::ShapeMismatch,
                format!("`{op}` needs a 4-D input [N, C, H, W], but gets {input}"),
            )
            .label(format!("the input here is {input}"));
            err.needs_rank = Some(4);
            Err(err)
        }
    }
}

/// The output size of one spatial axis, or an error that shows how it was derived and what
/// would fix it.
pub fn window_output(op: &str, axis: &str, window: Window, input: &Shape) -> Result<u64, OpError> {
    match window.output() {
        WindowSize::Ok(out) => Ok(out),
        WindowSize::Overflow => {
            Err(OpError::new(Code::Arithmetic, format!("the output {axis} of this `{op}` overflows 64 bits"))
                .note(format!("{axis}: {}", window.derivation())))
        }
        WindowSize::TooSmall { padded, effective_kernel } => {
            let mut err = OpError::new(
                Code::SizeTooSmall,
                format!(
                    "the {axis} shrinks to nothing: this `{op}`'s {effective_kernel}-wide window does not fit in {padded} (padded) rows",
                ),
            )
            .label(format!("input {input} is too small for this window"))
            .note(format!("{axis}: {}", window.derivation()));
            let padding = window.padding_needed();
            let mut fixes = vec![format!("a kernel of at most {padded}")];
            if padding > window.padding && padding * 2 <= effective_kernel as u64 {
                fixes.insert(0, format!("`padding={padding}`"));
            }
            fixes.push("fewer downsampling layers before this one".into());
            fixes.push("a larger input".into());
            err = err.hint(format!("use {}", join_or(&fixes)));
            err.axis = Some(if axis == "width" { 1 } else { 0 });
            if axis == "width" {
                err.message = err.message.replace("rows", "columns");
            }
            Err(err)
        }
    }
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
    }
}

/// `` `op` needs `needs`, but gets [N, 16] ``: an input of a rank the layer does not take,
/// marked with the rank wanted, so that the evaluator adds where the input's rank came from.
pub fn wrong_rank(op: &str, needs: &str, rank: usize, input: &Shape) -> OpError {
    let mut err = OpError::new(Code::ShapeMismatch, format!("`{op}` needs {needs}, but gets {input}"))
        .label(format!("the input here is {input}"));
    err.needs_rank = Some(rank);
    err
}
