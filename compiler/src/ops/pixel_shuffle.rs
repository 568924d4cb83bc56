//! `pixel_shuffle(upscale_factor)` and `pixel_unshuffle(downscale_factor)`: PyTorch's
//! `nn.PixelShuffle`, which moves blocks of r² channels into r × r patches of the picture
//! (`[N, C·r², H, W]` to `[N, C, H·r, W·r]`), and `nn.PixelUnshuffle`, its inverse. Both act
//! on the last three dimensions, as PyTorch's do, so the dimensions between the batch and the
//! channels are kept.

use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::{
    attributes, wrong_rank, Args, Built, Kind, Layer, Op, OpError, OpSpec, ParamSpec, PyTorch, Ranks,
    SizeOrigin,
};
use crate::diagnostic::Code;
use crate::shape::{DType, Shape};

pub static PIXEL_SHUFFLE: OpSpec = OpSpec {
    name: "pixel_shuffle",
    summary: "moves blocks of r² channels into r × r patches: [N, C·r², H, W] to [N, C, H·r, W·r]",
    torch: "nn.PixelShuffle",
    ranks: Ranks::AtLeast(4),
    takes: DType::Float,
    params: &[ParamSpec::required("upscale_factor", Kind::Int)],
    apply: |args, input| apply(Direction::Shuffle, args, input),
};

pub static PIXEL_UNSHUFFLE: OpSpec = OpSpec {
    name: "pixel_unshuffle",
    summary: "moves r × r patches into blocks of r² channels: [N, C, H·r, W·r] to [N, C·r², H, W]",
    torch: "nn.PixelUnshuffle",
    ranks: Ranks::AtLeast(4),
    takes: DType::Float,
    params: &[ParamSpec::required("downscale_factor", Kind::Int)],
    apply: |args, input| apply(Direction::Unshuffle, args, input),
};

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Shuffle,
    Unshuffle,
}

impl Direction {
    fn spec(self) -> &'static OpSpec {
        match self {
            Direction::Shuffle => &PIXEL_SHUFFLE,
            Direction::Unshuffle => &PIXEL_UNSHUFFLE,
        }
    }
}

fn apply(direction: Direction, args: &Args, input: &Shape) -> Result<Built, OpError> {
    let spec = direction.spec();
    let name = spec.name;
    let factor_name = spec.params[0].name;
    let [c, h, w] = match input.dims[..] {
        [.., c, h, w] => [c, h, w],
        _ => return Err(wrong_rank(name, "an input [N, C, H, W]", 4, input)),
    };
    let r = args.positive_int(factor_name)?;
    let overflow = || {
        OpError::new(Code::Arithmetic, format!("the output size of this `{name}` overflows 64 bits"))
            .at(factor_name)
    };
    let r2 = r.checked_mul(r).ok_or_else(overflow)?;
    let out = match direction {
        Direction::Shuffle => {
            if c % r2 != 0 {
                return Err(OpError::new(
                    Code::ShapeMismatch,
                    format!(
                        "`pixel_shuffle({r})` needs channels divisible by {r}² = {r2}, but the input has {c}"
                    ),
                )
                .label(format!("the input here is {input}"))
                .note(format!(
                    "each output channel takes {r2} input channels, one per position of its {r} × {r} patch"
                ))
                .at(factor_name));
            }
            let (h, w) = (h.checked_mul(r).ok_or_else(overflow)?, w.checked_mul(r).ok_or_else(overflow)?);
            [c / r2, h, w]
        }
        Direction::Unshuffle => {
            if let Some((axis, size)) = [("height", h), ("width", w)].into_iter().find(|(_, s)| s % r != 0) {
                return Err(OpError::new(
                    Code::ShapeMismatch,
                    format!("`pixel_unshuffle({r})` needs a height and width divisible by {r}, but the {axis} is {size}"),
                )
                .label(format!("the input here is {input}"))
                .note(format!("each {r} × {r} patch of the picture becomes {r2} channels"))
                .at(factor_name));
            }
            [c.checked_mul(r2).ok_or_else(overflow)?, h / r, w / r]
        }
    };
    let mut dims = input.dims[..input.dims.len() - 3].to_vec();
    dims.extend_from_slice(&out);
    let op = match direction {
        Direction::Shuffle => Op::PixelShuffle(PixelShuffle { upscale_factor: r }),
        Direction::Unshuffle => Op::PixelUnshuffle(PixelUnshuffle { downscale_factor: r }),
    };
    Built::free(op, input.with_dims(dims))
}

attributes! {
    pub struct PixelShuffle {
        pub upscale_factor: u64,
    }
}

attributes! {
    pub struct PixelUnshuffle {
        pub downscale_factor: u64,
    }
}

impl Layer for PixelShuffle {
    /// `[N, ..., C·r², H, W]` as `[N, ..., C, r, r, H, W]`, its blocks moved beside the rows
    /// and columns.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let r = self.upscale_factor as i64;
        let (mut dims, [c, h, w]) = split_chw(g);
        dims.extend([c / (r * r), r, r, h, w]);
        let blocks = g.reshape(&xs[0], &dims);
        let moved = g.transpose(&blocks, &blocks_moved(dims.len(), [0, 3, 1, 4, 2]));
        Ok(g.reshape_to_output(&moved))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pixel_shuffle ×{}", self.upscale_factor)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.PixelShuffle({})", self.upscale_factor))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Set("from pixel_shuffle")
    }
}

impl Layer for PixelUnshuffle {
    /// `[N, ..., C, H·r, W·r]` as `[N, ..., C, H, r, W, r]`, its blocks moved into the channels.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let r = self.downscale_factor as i64;
        let (mut dims, [c, h, w]) = split_chw(g);
        dims.extend([c, h / r, r, w / r, r]);
        let blocks = g.reshape(&xs[0], &dims);
        let moved = g.transpose(&blocks, &blocks_moved(dims.len(), [0, 2, 4, 1, 3]));
        Ok(g.reshape_to_output(&moved))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pixel_unshuffle ÷{}", self.downscale_factor)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!("nn.PixelUnshuffle({})", self.downscale_factor))
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Set("from pixel_unshuffle")
    }
}

/// The input's sizes after the batch: those before its last three, and `[C, H, W]` (the shape
/// rule requires at least three).
fn split_chw(g: &Onnx) -> (Vec<i64>, [i64; 3]) {
    let dims: Vec<i64> = g.input(0).dims.iter().map(|&d| d as i64).collect();
    let (lead, chw) = dims.split_at(dims.len() - 3);
    (lead.to_vec(), [chw[0], chw[1], chw[2]])
}

/// The permutation of a tensor of `len` sizes after the batch, its last five reordered by
/// `last` (positions among those five), the rest kept.
fn blocks_moved(len: usize, last: [usize; 5]) -> Vec<usize> {
    let base = len + 1 - 5;
    (0..base).chain(last.iter().map(|&p| base + p)).collect()
}
