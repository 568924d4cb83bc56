//! What shape rules share: their error type, checked products, and the sliding-window rule
//! with errors that show how a size was derived.

use crate::diagnostic::Code;
use crate::shape::{Shape, Window, WindowSize};
use crate::size::Size;

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
    /// For a size that shrinks to nothing: the spatial axis (0 the first after the channels).
    pub axis: Option<usize>,
    /// For an input of the wrong rank: the layout needed. Only the evaluator knows where the
    /// input's rank came from (a `flatten` upstream, or the input declaration), so it words
    /// the hint.
    pub needs: Option<Layout>,
}

/// The layout of input a layer needs, as the hint of an input of another rank words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Dimensions, the batch included.
    pub rank: usize,
    /// The layers that take it: `1-D layers`.
    pub layers: &'static str,
    /// Its dimensions: `[N, C, L]`.
    pub dims: &'static str,
    /// An input declaration of this layout, and what it holds.
    pub example: &'static str,
}

impl Layout {
    /// A sequence `[N, T, F]`, as the recurrent layers take it (PyTorch's `batch_first`).
    pub const SEQUENCE: Layout = Layout {
        rank: 3,
        layers: "recurrent layers",
        dims: "[N, T, F]",
        example: "`input [N, 50, 8]` for sequences of 50 steps of 8 features",
    };

    /// The layout of layers over `rank − 2` spatial axes: 1-D (`[N, C, L]`), 3-D, and images
    /// for any other rank.
    pub fn spatial(rank: usize) -> Layout {
        let (layers, dims, example) = match rank {
            3 => ("1-D layers", "[N, C, L]", "`input [N, 1, 100]` for one channel of 100 samples"),
            5 => ("3-D layers", "[N, C, D, H, W]", "`input [N, 1, 16, 64, 64]` for 16 grey 64×64 frames"),
            _ => ("image layers", "[N, C, H, W]", "`input [N, 1, 28, 28]` for grey 28×28 images"),
        };
        Layout { rank, layers, dims, example }
    }
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
            needs: None,
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

/// The names of spatial axis `axis` of a layer with `spatial` of them, as PyTorch's
/// documentation names them (L; D, H, W), and what a window counts along it, for messages.
pub fn spatial_axis(spatial: usize, axis: usize) -> (&'static str, &'static str) {
    const AXES: [(&str, &str); 3] = [("depth", "planes"), ("height", "rows"), ("width", "columns")];
    let named = match spatial {
        1 => Some(("length", "positions")),
        // 2-D layers have the last two: height and width.
        2 | 3 => AXES.get(3 - spatial + axis).copied(),
        _ => None,
    };
    named.unwrap_or(("size", "elements"))
}

/// The channels and the `N` spatial sizes of an input `[N, C, ...]` of rank `N + 2`, or an
/// error saying what `op` needs.
pub fn expect_spatial<const N: usize>(op: &str, input: &Shape) -> Result<(u64, [u64; N]), OpError> {
    if let Some((&channels, spatial)) = input.dims.split_first() {
        if let Ok(sizes) = <[u64; N]>::try_from(spatial) {
            return Ok((channels, sizes));
        }
    }
    let letters: String =
        (0..N).map(|axis| format!(", {}", spatial_axis(N, axis).0[..1].to_uppercase())).collect();
    let mut err = OpError::new(
        Code::ShapeMismatch,
        format!("`{op}` needs a {}-D input [N, C{letters}], but gets {input}", N + 2),
    )
    .label(format!("the input here is {input}"));
    err.needs = Some(Layout::spatial(N + 2));
    Err(err)
}

/// The window along spatial axis `axis` over `input` elements, of a layer's kernel, stride,
/// padding and dilation (one size per axis each); not ceiled, not transposed.
pub fn window_at<const N: usize>(
    [kernel, stride, padding, dilation]: [&[u64; N]; 4],
    axis: usize,
    input: u64,
) -> Window {
    Window {
        input,
        kernel: kernel[axis],
        stride: stride[axis],
        padding: padding[axis],
        dilation: dilation[axis],
        ceil_mode: false,
        transposed: None,
    }
}

/// The output sizes of every spatial axis of `input`, whose spatial sizes are `sizes`, through
/// the `window` of each axis over its size, or an error for the first that fails.
pub fn window_outputs<const N: usize>(
    op: &str,
    input: &Shape,
    sizes: [u64; N],
    window: impl Fn(usize, u64) -> Window,
) -> Result<[u64; N], OpError> {
    let mut out = sizes;
    for (axis, size) in out.iter_mut().enumerate() {
        *size = window_output(op, axis, window(axis, *size), input)?;
    }
    Ok(out)
}

/// The output size of spatial axis `axis`, or an error that shows how it was derived and what
/// would fix it.
pub fn window_output(op: &str, axis: usize, window: Window, input: &Shape) -> Result<u64, OpError> {
    let (name, units) = spatial_axis(input.dims.len().saturating_sub(1), axis);
    let mut err = match window.output() {
        WindowSize::Ok(out) => return Ok(out),
        WindowSize::Overflow => {
            return Err(OpError::new(
                Code::Arithmetic,
                format!("the output {name} of this `{op}` overflows 64 bits"),
            )
            .note(format!("{name}: {}", window.derivation())))
        }
        WindowSize::TooSmall { padded, overhang, effective_kernel } => {
            let past = match overhang {
                0 => String::new(),
                _ => format!(", even reaching {overhang} past them as `ceil_mode` lets it"),
            };
            let err = OpError::new(
                Code::SizeTooSmall,
                format!(
                    "the {name} shrinks to nothing: this `{op}`'s {effective_kernel}-wide window does not fit in {padded} (padded) {units}{past}",
                ),
            );
            let padding = window.padding_needed();
            let mut fixes = vec![format!("a kernel of at most {}", padded + overhang)];
            if padding > window.padding && padding * 2 <= effective_kernel as u64 {
                fixes.insert(0, format!("`padding={padding}`"));
            }
            fixes.push("fewer downsampling layers before this one".into());
            fixes.push("a larger input".into());
            err.hint(format!("use {}", join_or(&fixes))).label(format!("input {input} is too small for this window"))
        }
        WindowSize::Cropped { full } => OpError::new(
            Code::SizeTooSmall,
            format!(
                "the {name} shrinks to nothing: this `{op}` makes {full} {units}, and its padding crops {} of them",
                2 * u128::from(window.padding)
            ),
        )
        // The output is `full − 2·padding`: at least 1 needs this much.
        .hint(format!("use `padding={}` or less", (full - 1).max(0) / 2))
        .label(format!("`padding` is {}", window.padding))
        .at("padding"),
    };
    err = err.note(format!("{name}: {}", window.derivation()));
    err.axis = Some(axis);
    Err(err)
}

/// [`super::Layer::free_sizes`] where no input has a free size: the output's sizes at the
/// probe, which are then every size's; `None` otherwise.
pub fn free_known(xs: &[&[Size]], out: &[u64]) -> Option<Vec<Size>> {
    let known = xs.iter().all(|x| x.iter().all(|d| d.as_known().is_some()));
    known.then(|| out.iter().map(|&d| Size::from(d)).collect())
}

/// [`super::Layer::free_sizes`] of a layer that keeps its first input's sizes.
pub fn free_same(xs: &[&[Size]]) -> Option<Vec<Size>> {
    xs.first().map(|x| x.to_vec())
}

/// [`super::Layer::free_sizes`] of a layer over `[C, spatial...]` (convolution, pooling):
/// the channels it makes, and each spatial size where its [`super::Layer::size_origin`]
/// says: kept, through a window, or set by the layer.
pub fn free_spatial(layer: &dyn super::Layer, xs: &[&[Size]], out: &[u64]) -> Option<Vec<Size>> {
    let x = xs.first()?;
    if x.len() != out.len() || x.first()?.as_known().is_none() {
        return None;
    }
    let mut dims = vec![Size::from(*out.first()?)];
    for (axis, size) in x[1..].iter().enumerate() {
        dims.push(match layer.size_origin(axis, 0) {
            super::SizeOrigin::Kept => size.clone(),
            super::SizeOrigin::Window(window) => window.free_output(size)?,
            super::SizeOrigin::Set(_) => Size::from(out[axis + 1]),
            super::SizeOrigin::Input | super::SizeOrigin::Lost => return None,
        });
    }
    Some(dims)
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
    }
}

/// `` `op` needs `needs`, but gets [N, 16] ``: an input of a rank the layer does not take,
/// marked with the rank wanted (of a layer over `rank − 2` spatial axes), so that the
/// evaluator adds where the input's rank came from.
pub fn wrong_rank(op: &str, needs: &str, rank: usize, input: &Shape) -> OpError {
    wrong_layout(op, needs, Layout::spatial(rank), input)
}

/// [`wrong_rank`] for a layer that needs another `layout` than its spatial one.
pub fn wrong_layout(op: &str, needs: &str, layout: Layout, input: &Shape) -> OpError {
    let mut err = OpError::new(Code::ShapeMismatch, format!("`{op}` needs {needs}, but gets {input}"))
        .label(format!("the input here is {input}"));
    err.needs = Some(layout);
    err
}
