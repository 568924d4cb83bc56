//! Tensor shapes with a symbolic batch dimension, and the sliding-window size rule that
//! convolution and pooling share.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::size::Size;

/// The batch dimension: a name such as `N`, or a fixed size; or none, for a tensor declared
/// with `param`, which has exactly its declared sizes and broadcasts against batched tensors
/// as PyTorch broadcasts it (aligned from the last dimension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Batch {
    Symbolic(String),
    Fixed(u64),
    None,
}

impl Batch {
    /// The batch as written in a shape (`N`, `8`), none for a `param`.
    pub fn text(&self) -> Option<String> {
        match self {
            Batch::Symbolic(name) => Some(name.clone()),
            Batch::Fixed(n) => Some(n.to_string()),
            Batch::None => None,
        }
    }
}

/// The most elements a float tensor may have: libtorch counts a tensor's bytes in signed 64
/// bits, and an f32 takes 4 of them (an int64 8: [`Shape::fits`] counts each type's bytes).
pub const MAX_ELEMENTS: u64 = i64::MAX as u64 / 4;

/// A tensor's element type, part of its type as the checker sees it: `float` (f32, what every
/// layer computes with), `int` (int64, as token ids are: what `embedding` reads) or `bool` (a
/// mask). Only a network's inputs are declared `int` or `bool`; each op says which element type
/// it takes ([`crate::ops::OpSpec::takes`]) and the checker refuses any other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[default]
    Float,
    Int,
    Bool,
}

impl DType {
    /// The bytes of one element: f32, int64, bool.
    pub fn bytes(self) -> u64 {
        match self {
            DType::Float => 4,
            DType::Int => 8,
            DType::Bool => 1,
        }
    }

    /// How the language writes it (`int`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float => "float",
            DType::Int => "int",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor shape: the batch, then the dimensions of one example (`[N, 64, 56, 56]` has
/// `dims == [64, 56, 56]`); without a batch, `dims` are all of its sizes. The element type
/// rides along: it shows after the brackets where it is not float (`[N, 16] int`), so that a
/// float tensor prints as it always has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub batch: Batch,
    pub dims: Vec<u64>,
    pub dtype: DType,
}

impl Shape {
    /// A float tensor of these sizes, as every layer's output is.
    pub fn float(batch: Batch, dims: Vec<u64>) -> Shape {
        Shape { batch, dims, dtype: DType::Float }
    }

    /// The rank, batch included, as PyTorch counts it.
    pub fn rank(&self) -> usize {
        self.dims.len() + usize::from(self.batch != Batch::None)
    }

    /// Elements of one example; `None` if the product overflows.
    pub fn elements_per_example(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Whether libtorch can hold this tensor: its bytes (4 per float, [`MAX_ELEMENTS`]; 8 per
    /// int), for one example or for the fixed batch, within `i64::MAX`. Every node of a
    /// checked graph fits, so its sizes also fit the `i64`s libtorch takes.
    pub fn fits(&self) -> bool {
        let batch = match self.batch {
            Batch::Symbolic(_) | Batch::None => 1,
            Batch::Fixed(n) => n,
        };
        let max = i64::MAX as u64 / self.dtype.bytes();
        self.elements_per_example().and_then(|e| e.checked_mul(batch)).is_some_and(|e| e <= max)
    }

    /// The same batch and element type with other sizes.
    pub fn with_dims(&self, dims: Vec<u64>) -> Shape {
        Shape { batch: self.batch.clone(), dims, dtype: self.dtype }
    }

    /// The sizes of every dimension, batch first, with `batch` standing for a symbolic batch
    /// (-1 gives the declared form, as generated code and input checks use it).
    pub fn sizes(&self, batch: i64) -> Vec<i64> {
        let n = match self.batch {
            Batch::Symbolic(_) => Some(batch),
            Batch::Fixed(n) => Some(n as i64),
            Batch::None => None,
        };
        n.into_iter().chain(self.dims.iter().map(|&d| d as i64)).collect()
    }

    /// The batch as written in a shape (`N`, `8`), none for a `param`.
    pub fn batch_text(&self) -> Option<String> {
        self.batch.text()
    }

    /// The shape as written, with `sizes` in place of its own: `[N, T, 8]` where a size is an
    /// expression of free sizes.
    pub fn show_sizes<D: fmt::Display>(&self, sizes: &[D]) -> String {
        let shown: Vec<String> =
            self.batch_text().into_iter().chain(sizes.iter().map(D::to_string)).collect();
        match self.dtype {
            DType::Float => format!("[{}]", shown.join(", ")),
            other => format!("[{}] {other}", shown.join(", ")),
        }
    }

    /// Dimension `axis` of the full shape (batch is axis 0), for axes ≥ 1; without a batch,
    /// any axis.
    pub fn dim(&self, axis: usize) -> Option<u64> {
        match self.batch {
            Batch::None => self.dims.get(axis).copied(),
            _ => axis.checked_sub(1).and_then(|i| self.dims.get(i).copied()),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show_sizes(&self.dims))
    }
}

impl Serialize for Shape {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// One spatial axis of a sliding window (convolution or pooling, or a transposed convolution,
/// which runs the window backwards: each input element spreads over a window of the output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub input: u64,
    pub kernel: u64,
    pub stride: u64,
    pub padding: u64,
    pub dilation: u64,
    pub ceil_mode: bool,
    /// `Some(output_padding)` for a transposed convolution.
    pub transposed: Option<u64>,
}

/// The output size of a window, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowSize {
    Ok(u64),
    /// The padded input, with the `overhang` past it that `ceil_mode` allows (the stride
    /// less 1, else 0), is smaller than the (dilated) kernel.
    TooSmall {
        padded: i128,
        overhang: i128,
        effective_kernel: i128,
    },
    /// A transposed convolution whose padding crops all of the `full` size it makes.
    Cropped {
        full: i128,
    },
    /// The size does not fit in 64 bits.
    Overflow,
}

impl Window {
    fn effective_kernel(&self) -> i128 {
        self.dilation as i128 * (self.kernel as i128 - 1) + 1
    }

    fn padded(&self) -> i128 {
        self.input as i128 + 2 * self.padding as i128
    }

    /// How far past the padded input a ceiled window may reach: the stride less 1.
    fn overhang(&self) -> i128 {
        if self.ceil_mode {
            self.stride as i128 - 1
        } else {
            0
        }
    }

    /// PyTorch's rule: `(in + 2·p − d·(k − 1) − 1) / s + 1`, floored, or ceiled with
    /// `ceil_mode` (where a last window that would start in the right padding is dropped),
    /// and refused below 1 (`pool2d_shape_check`). Ceiling lets the one window of a padded
    /// input shorter than the kernel overhang it by up to `s − 1`: `MaxPool2d(3, 2,
    /// ceil_mode=True)` takes 2 rows to 1. Arithmetic is in i128, so no u64 input can
    /// overflow it.
    pub fn output(&self) -> WindowSize {
        if let Some(output_padding) = self.transposed {
            // PyTorch's rule: `(in − 1)·s − 2·p + d·(k − 1) + output_padding + 1`.
            let full = (self.input as i128 - 1) * self.stride as i128
                + self.effective_kernel()
                + output_padding as i128;
            let out = full - 2 * self.padding as i128;
            if out < 1 {
                return WindowSize::Cropped { full };
            }
            return u64::try_from(out).map_or(WindowSize::Overflow, WindowSize::Ok);
        }
        let span = self.padded() - self.effective_kernel();
        let overhang = self.overhang();
        if span + overhang < 0 {
            let (padded, effective_kernel) = (self.padded(), self.effective_kernel());
            return WindowSize::TooSmall { padded, overhang, effective_kernel };
        }
        let stride = self.stride as i128;
        let mut out = if self.ceil_mode { (span + stride - 1) / stride + 1 } else { span / stride + 1 };
        if self.ceil_mode && (out - 1) * stride >= self.input as i128 + self.padding as i128 {
            out -= 1;
        }
        u64::try_from(out).map_or(WindowSize::Overflow, WindowSize::Ok)
    }

    /// How the size was computed, with the numbers: `28 = (56 + 2·1 − 3) / 2 + 1`.
    pub fn derivation(&self) -> String {
        if let Some(output_padding) = self.transposed {
            let out = match self.output() {
                WindowSize::Ok(out) => out.to_string(),
                WindowSize::Cropped { full } => (full - 2 * self.padding as i128).to_string(),
                _ => "a size beyond 64 bits".to_string(),
            };
            return format!(
                "{out} = ({} − 1)·{} − 2·{} + {}·({} − 1) + {output_padding} + 1",
                self.input, self.stride, self.padding, self.dilation, self.kernel
            );
        }
        let kernel_term = if self.dilation == 1 {
            self.kernel.to_string()
        } else {
            format!("{}·({} − 1) − 1", self.dilation, self.kernel)
        };
        let inner = format!("{} + 2·{} − {}", self.input, self.padding, kernel_term);
        let division = if self.ceil_mode {
            format!("⌈({inner}) / {}⌉", self.stride)
        } else {
            format!("({inner}) / {}", self.stride)
        };
        match self.output() {
            WindowSize::Ok(out) => format!("{out} = {division} + 1"),
            WindowSize::TooSmall { padded, overhang, effective_kernel } => {
                let kernel = match self.dilation {
                    1 => "the kernel".to_string(),
                    d => format!("the kernel {} dilated by {d}", self.kernel),
                };
                let (input, padding) = (self.input, self.padding);
                match overhang {
                    0 => format!("{input} + 2·{padding} = {padded} < {effective_kernel} ({kernel})"),
                    _ => format!(
                        "{input} + 2·{padding} + ({} − 1) = {} < {effective_kernel} ({kernel})",
                        self.stride,
                        padded + overhang
                    ),
                }
            }
            WindowSize::Overflow | WindowSize::Cropped { .. } => {
                format!("({inner}) / {} + 1 does not fit in 64 bits", self.stride)
            }
        }
    }

    /// The output size for a free input size `x` (its `input` aside), which PyTorch takes
    /// exactly where it is at least 1; `None` for a ceiled window that may drop its last
    /// position for some sizes and not others (where `d·(k − 1) + 1 < padding + stride`).
    pub fn free_output(&self, x: &Size) -> Option<Size> {
        let (kernel, padding) =
            (i64::try_from(self.effective_kernel()).ok()?, i64::try_from(self.padding).ok()?);
        let stride = i64::try_from(self.stride).ok()?;
        if let Some(output_padding) = self.transposed {
            let grow = kernel
                .checked_add(i64::try_from(output_padding).ok()?)?
                .checked_sub(padding.checked_mul(2)?)?;
            return x.add_known(-1)?.scale(stride)?.add_known(grow);
        }
        let span = x.add_known(padding.checked_mul(2)?.checked_sub(kernel)?)?;
        if !self.ceil_mode {
            // At least 1 exactly where the window fits: the span is not negative.
            return span.floor_div(self.stride)?.add_known(1);
        }
        // The last window starts at most stride − 1 past the span's end, which lies within
        // the input or its left padding unless the kernel is shorter than padding + stride.
        // (A negative span down to 1 − stride gives the one window, starting at 0.) The size
        // is then at least 1 exactly where PyTorch takes it, as every size must be.
        if kernel < padding.checked_add(stride)? {
            return None;
        }
        span.ceil_div(self.stride)?.add_known(1)
    }

    /// The smallest padding that gives at least one output, if padding can help at all.
    pub fn padding_needed(&self) -> u64 {
        let missing = self.effective_kernel() - self.input as i128 - self.overhang();
        ((missing + 1) / 2).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(input: u64, kernel: u64, stride: u64, padding: u64) -> Window {
        Window { input, kernel, stride, padding, dilation: 1, ceil_mode: false, transposed: None }
    }

    #[test]
    fn conv_formula_matches_pytorch() {
        // (in + 2p − d(k − 1) − 1) / s + 1, checked against the values PyTorch prints.
        assert_eq!(win(224, 11, 4, 1).output(), WindowSize::Ok(54)); // AlexNet's first conv
        assert_eq!(win(54, 3, 2, 0).output(), WindowSize::Ok(26));
        assert_eq!(win(224, 7, 2, 3).output(), WindowSize::Ok(112));
        assert_eq!(win(112, 3, 2, 1).output(), WindowSize::Ok(56));
        assert_eq!(win(56, 3, 2, 1).derivation(), "28 = (56 + 2·1 − 3) / 2 + 1");
        let dilated = Window { dilation: 2, ..win(10, 3, 1, 0) };
        assert_eq!(dilated.output(), WindowSize::Ok(6));
    }

    #[test]
    fn seed_convolution_examples_on_8x8() {
        assert_eq!(win(8, 3, 1, 1).output(), WindowSize::Ok(8));
        assert_eq!(win(8, 5, 1, 2).output(), WindowSize::Ok(8));
        assert_eq!(win(8, 3, 1, 1).output(), WindowSize::Ok(8));
        assert_eq!(win(8, 3, 1, 2).output(), WindowSize::Ok(10));
        assert_eq!(win(8, 3, 3, 0).output(), WindowSize::Ok(2));
        assert_eq!(win(8, 5, 4, 1).output(), WindowSize::Ok(2));
        assert_eq!(win(8, 3, 2, 1).output(), WindowSize::Ok(4));
    }

    #[test]
    fn ceil_mode_matches_pytorch() {
        let w = |input, k, s, p| Window { ceil_mode: true, ..win(input, k, s, p) };
        // PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 6 → 3, on 7 → 3; (2, 2, pad 1) on 4 → 3.
        assert_eq!(w(6, 3, 2, 0).output(), WindowSize::Ok(3));
        assert_eq!(w(7, 3, 2, 0).output(), WindowSize::Ok(3));
        assert_eq!(w(4, 2, 2, 1).output(), WindowSize::Ok(3));
        assert_eq!(w(5, 2, 2, 1).output(), WindowSize::Ok(3));
        // A window longer than the padded input, by less than the stride: one output, as
        // PyTorch's (3, 2) on 2, (5, 4) on 2 and (3, 2, pad 1) on 1 give; by the stride or more,
        // none, as its "Output size is too small" for (4, 2) on 1 and (5, 3) on 2.
        assert_eq!(w(2, 3, 2, 0).output(), WindowSize::Ok(1));
        assert_eq!(w(2, 5, 4, 0).output(), WindowSize::Ok(1));
        assert_eq!(w(1, 3, 2, 1).output(), WindowSize::Ok(1));
        assert_eq!(
            w(1, 4, 2, 0).output(),
            WindowSize::TooSmall { padded: 1, overhang: 1, effective_kernel: 4 }
        );
        assert_eq!(
            w(2, 5, 3, 0).output(),
            WindowSize::TooSmall { padded: 2, overhang: 2, effective_kernel: 5 }
        );
        assert_eq!(w(2, 5, 3, 0).derivation(), "2 + 2·0 + (3 − 1) = 4 < 5 (the kernel)");
    }

    #[test]
    fn too_small_explains_itself() {
        let w = win(4, 5, 1, 0);
        assert!(matches!(w.output(), WindowSize::TooSmall { padded: 4, overhang: 0, effective_kernel: 5 }));
        assert_eq!(w.padding_needed(), 1);
        assert_eq!(
            win(1, 3, 1, 0).output(),
            WindowSize::TooSmall { padded: 1, overhang: 0, effective_kernel: 3 }
        );
        assert_eq!(win(u64::MAX, 1, 1, u64::MAX).output(), WindowSize::Overflow);
    }

    #[test]
    fn transposed_matches_pytorch() {
        let t = |input, k, s, p, d, op| Window { dilation: d, transposed: Some(op), ..win(input, k, s, p) };
        // nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1) on 4 → 8.
        assert_eq!(t(4, 3, 2, 1, 1, 1).output(), WindowSize::Ok(8));
        assert_eq!(t(5, 2, 3, 0, 2, 2).output(), WindowSize::Ok(17));
        assert_eq!(t(4, 3, 2, 1, 1, 1).derivation(), "8 = (4 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1");
        assert_eq!(t(1, 1, 1, 1, 1, 0).output(), WindowSize::Cropped { full: 1 });
        assert_eq!(t(1, 1, 1, 1, 1, 0).derivation(), "-1 = (1 − 1)·1 − 2·1 + 1·(1 − 1) + 0 + 1");
    }

    #[test]
    fn shapes_print_like_pytorch() {
        let s = Shape::float(Batch::Symbolic("N".into()), vec![64, 56, 56]);
        assert_eq!(s.to_string(), "[N, 64, 56, 56]");
        assert_eq!(s.rank(), 4);
        assert_eq!(s.elements_per_example(), Some(64 * 56 * 56));
        let tokens = Shape { dtype: DType::Int, ..Shape::float(Batch::Symbolic("N".into()), vec![16]) };
        assert_eq!(tokens.to_string(), "[N, 16] int");
        let mask = Shape { dtype: DType::Bool, ..tokens.clone() };
        assert_eq!(mask.to_string(), "[N, 16] bool");
    }
}
