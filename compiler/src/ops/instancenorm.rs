//! `instancenorm(eps=1e-5, momentum=0.1, affine=false, track_running_stats=false)`: PyTorch's
//! `nn.InstanceNorm1d` on `[N, C, L]`, `InstanceNorm2d` on `[N, C, H, W]`, `InstanceNorm3d` on
//! `[N, C, D, H, W]`, chosen by rank as `batchnorm` chooses; the channels are inferred. Each
//! example's channels are normalised over their own positions. With `track_running_stats`, a
//! training call also updates running statistics, which evaluation then uses instead.

use std::fmt;

use super::onnx::{Attr, Onnx, OnnxError};

use super::batchnorm::{norm_tensors, spatial_suffix};
use super::layer::{py_bool, py_float};
use super::{
    attributes, wrong_rank, ArgValue, Args, Built, Family, Kind, Layer, Op, OpError, OpSpec, ParamSpec,
    PyTorch, Ranks, TensorSpec,
};
use crate::diagnostic::Code;
use crate::free::Needs;
use crate::shape::{DType, Shape};
use crate::size::Size;

pub static INSTANCENORM: OpSpec = OpSpec {
    name: "instancenorm",
    summary: "normalises each example's channels over their own positions (1d on rank 3, 2d on rank 4, 3d on rank 5)",
    torch: "nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d",
    // Not rank 2: InstanceNorm1d takes `[C, L]` as one unbatched example, which would
    // normalise across nnc's batch.
    ranks: Ranks::Exactly(&[3, 4, 5]),
    takes: DType::Float,
    params: &[
        ParamSpec::optional("eps", Kind::Float, ArgValue::Float(1e-5)),
        ParamSpec::optional("momentum", Kind::Float, ArgValue::Float(0.1)),
        ParamSpec::optional("affine", Kind::Bool, ArgValue::Bool(false)),
        ParamSpec::optional("track_running_stats", Kind::Bool, ArgValue::Bool(false)),
    ],
    apply,
};

fn apply(args: &Args, input: &Shape) -> Result<Built, OpError> {
    let rank = input.rank();
    if !INSTANCENORM.ranks.accepts(rank) {
        let needs = "an input of rank 3, 4 or 5 ([N, C, ...])";
        return Err(wrong_rank("instancenorm", needs, 3, input)
            .note("each example needs positions to normalise its channels over"));
    }
    // PyTorch refuses to train on one position per channel: its variance is 0, so the layer
    // would output its bias whatever the input.
    if input.dims[1..].iter().all(|&d| d == 1) {
        return Err(OpError::new(
            Code::ShapeMismatch,
            format!(
                "`instancenorm` normalises each channel over its positions, but the input {input} has one"
            ),
        )
        .label(format!("the input here is {input}"))
        .note(
            "PyTorch's InstanceNorm refuses to train on a single position per channel, whose variance is 0",
        ));
    }
    let (eps, momentum) = (super::batchnorm::eps(args)?, super::batchnorm::momentum(args)?);
    let op = Op::InstanceNorm(InstanceNorm {
        features: input.dims[0],
        eps,
        momentum,
        affine: args.bool("affine"),
        track_running_stats: args.bool("track_running_stats"),
        rank,
    });
    // torchinfo counts one multiply-add per scale and shift, whatever the input's size.
    Built::per_parameter(op, input.clone())
}

attributes! {
    pub struct InstanceNorm {
        pub features: u64,
        pub eps: f64,
        pub momentum: f64,
        pub affine: bool,
        pub track_running_stats: bool,
        /// The input's rank, batch included, which chooses the 1d, 2d or 3d module.
        pub rank: usize,
    }
}

impl Layer for InstanceNorm {
    fn free_sizes(&self, xs: &[&[Size]], _: &[u64], _: &mut Needs) -> Option<Vec<Size>> {
        super::free_same(xs)
    }

    /// With running statistics, PyTorch's evaluation uses them, as batch norm does; without,
    /// each example's own.
    fn onnx(&self, g: &mut Onnx, xs: &[String]) -> Result<String, OnnxError> {
        let epsilon = vec![("epsilon", Attr::Float(self.eps as f32))];
        let n = self.features as usize;
        let (scale, bias) = match self.affine {
            true => (g.tensor("weight")?, g.tensor("bias")?),
            false => {
                (g.floats("ones", &[n as i64], vec![1.0; n]), g.floats("zeros", &[n as i64], vec![0.0; n]))
            }
        };
        if self.track_running_stats {
            let (m, v) = (g.tensor("running_mean")?, g.tensor("running_var")?);
            return Ok(g.node("BatchNormalization", &[&xs[0], &scale, &bias, &m, &v], epsilon));
        }
        if self.rank < 3 {
            return Err(g.unsupported("ONNX's InstanceNormalization needs spatial dimensions"));
        }
        Ok(g.node("InstanceNormalization", &[&xs[0], &scale, &bias], epsilon))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instancenorm{} {}", spatial_suffix(self.rank), self.features)?;
        if self.affine {
            f.write_str(", affine")?;
        }
        if self.track_running_stats {
            f.write_str(", running stats")?;
        }
        Ok(())
    }

    /// `_NormBase`'s tensors, each only with its flag, as the module's `state_dict` holds them.
    fn tensors(&self) -> Vec<TensorSpec> {
        norm_tensors(self.features, self.affine, self.track_running_stats)
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        PyTorch::Module(format!(
            "nn.InstanceNorm{}({}, eps={}, momentum={}, affine={}, track_running_stats={})",
            spatial_suffix(self.rank),
            self.features,
            py_float(self.eps),
            py_float(self.momentum),
            py_bool(self.affine),
            py_bool(self.track_running_stats)
        ))
    }

    fn family(&self) -> Family {
        Family::Normalisation
    }
}
