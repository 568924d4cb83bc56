//! Training as d2l's `train_ch6` does it: mini-batch SGD (or Adam) on cross-entropy, with the
//! training loss and accuracy of each epoch, the test accuracy, and the throughput; a
//! checkpoint after every epoch from which a killed run resumes exactly.
//!
//! A checkpoint is written only when every weight, buffer and optimiser value is finite, so
//! the file on disk is always the last good epoch; a resumed checkpoint is validated whole
//! (weights, optimiser state, history) before anything is changed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nnc_compiler::ir::{Graph, Op};
use tch::{nn, Device, Kind, TchError, Tensor};

use crate::conv_layout;
use crate::data::{Batches, Dataset};
use crate::inference::{channels_last, Layout};
use crate::shim;
use crate::weights::{self, LoadOptions, OPTIM_PREFIX};
use crate::{Model, RuntimeError};

/// The bookkeeping entries of a checkpoint (under `weights::META_PREFIX`).
const STEPS: &str = "nnc.optim_steps";
/// The name of a parameter's Adam step count in its optimiser state, as torch.optim's.
const ADAM_STEP: &str = "step";
const METRICS: &str = "nnc.metrics";
/// The checkpoint metadata entry naming the convolutions that train contiguous, comma-separated.
const CONTIGUOUS_CONVOLUTIONS: &str = "contiguous_convolutions";
/// Adam's β₁, β₂ and ε: torch.optim.Adam's defaults.
const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const ADAM_EPS: f64 = 1e-8;

/// A training loss above this many times the larger of the run's first loss and the loss of a
/// uniform guess (ln of the number of classes) is divergence. A cross-entropy of 100 × ln 10
/// ≈ 230 means logits hundreds apart in favour of wrong classes: far above the loss of a model
/// that only guesses (2.3), so a run that is learning does not reach it, while the diverged
/// runs of issue 17 (`--lr 1000`: a mean loss of 16,025) are far past it.
pub const DIVERGENCE_FACTOR: f64 = 100.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Plain or momentum SGD, as `torch.optim.SGD`.
    Sgd { momentum: f64, weight_decay: f64 },
    /// Adam, as `torch.optim.Adam` (β = 0.9, 0.999; ε = 1e-8).
    Adam { weight_decay: f64 },
}

impl Optimizer {
    fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum != 0.0 => "SGD with momentum",
            Optimizer::Sgd { .. } => "SGD",
            Optimizer::Adam { .. } => "Adam",
        }
    }
}

/// The weight of an auxiliary classifier's loss (`output logits, aux if training`) beside the
/// main one's: 0.4, as in torchvision's fine-tuning of Inception-v3 (`loss1 + 0.4 * loss2`).
pub const AUX_LOSS_WEIGHT: f64 = 0.4;

/// tch's `cross_entropy_for_logits`, through the fallible calls: the mean over the batch (the
/// loss of `nnc train`, and of `nnc bench`'s training step).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor, TchError> {
    logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100)
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: i64,
    pub lr: f64,
    pub optimizer: Optimizer,
    /// Seeds the shuffling and dropout of each epoch (with the epoch number), so that a resumed
    /// run repeats exactly what the uninterrupted one would have done.
    pub seed: i64,
    /// Resize images to this many pixels square (bilinear).
    pub resize: Option<i64>,
    pub device: Device,
    /// Where to write the checkpoint after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Stop at a loss above [`DIVERGENCE_FACTOR`] times its reference, without checkpointing
    /// that epoch; otherwise such a loss is reported to the observer and training goes on. A
    /// loss or weights that are not finite stop the run either way.
    pub stop_on_divergence: bool,
    /// The memory layout of the weights of rank 4 and of the batches: channels-last makes
    /// MobileNetV2's step 1.25–2× faster on a CPU; ResNet-18's was level with contiguous until
    /// its one-channel input and stem weight were given a channel stride of 1 (see
    /// [`channels_last`]), which made it 8–9 % faster ([`Layout::for_graph`] chooses); the
    /// values are the same, to rounding.
    pub layout: Layout,
    /// Under [`Layout::ChannelsLast`], time each 2-D convolution in both layouts before the
    /// first step and keep those measured faster contiguous so ([`conv_layout`]): ResNet-18's
    /// 3×3 convolutions on maps of 6×6 and smaller. A resumed run takes the choice its
    /// checkpoint records, so that it computes what the uninterrupted run would have.
    pub measure_conv_layouts: bool,
}

impl TrainConfig {
    /// Refuses what `torch.optim` refuses (negative learning rate, momentum or weight decay),
    /// and values that are not finite, which would turn every weight into NaN at the first
    /// step.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let (momentum, weight_decay) = match self.optimizer {
            Optimizer::Sgd { momentum, weight_decay } => (momentum, weight_decay),
            Optimizer::Adam { weight_decay } => (0.0, weight_decay),
        };
        for (what, value) in
            [("the learning rate", self.lr), ("the momentum", momentum), ("the weight decay", weight_decay)]
        {
            if !value.is_finite() || value < 0.0 {
                return Err(RuntimeError::Config(format!(
                    "{what} must be a finite number of at least 0, not {value}"
                )));
            }
        }
        if self.batch < 1 {
            return Err(RuntimeError::Config(format!(
                "the batch size must be at least 1, not {}",
                self.batch
            )));
        }
        if let Some(size) = self.resize.filter(|&s| s < 1) {
            return Err(RuntimeError::Config(format!("images cannot be resized to {size} pixels")));
        }
        Ok(())
    }
}

/// Refuses data that cannot give a meaningful run: an empty set (an epoch would train on
/// nothing and the test accuracy would be 0 of 0), images without pixels, and test images of
/// another size than the training images (which the model would refuse after a whole epoch).
pub fn check_data(train: &Dataset, test: &Dataset) -> Result<(), RuntimeError> {
    for (what, data) in [("training", train), ("test", test)] {
        if data.is_empty() {
            return Err(RuntimeError::Config(format!("the {what} set is empty (0 images)")));
        }
        let (h, w) = data.image_size();
        if h < 1 || w < 1 {
            return Err(RuntimeError::Config(format!("the {what} images are {h}×{w} pixels")));
        }
    }
    if train.image_size() != test.image_size() {
        let ((th, tw), (sh, sw)) = (train.image_size(), test.image_size());
        return Err(RuntimeError::Config(format!(
            "the test images are {sh}×{sw} pixels, the training images {th}×{tw}"
        )));
    }
    Ok(())
}

/// Refuses, before any training, batches that would give a batch norm one value per channel
/// (a batch of 1 through a batch norm on `[N, C]`, as after a pooling to 1×1): the layer
/// refuses such a batch, as PyTorch's does, and finding it at an epoch's last batch would stop
/// the run there.
pub fn check_batch_norm_batches(graph: &Graph, examples: usize, batch: i64) -> Result<(), RuntimeError> {
    // A batch size below 1 is `TrainConfig::validate`'s to refuse, not this check's to divide by.
    let last = match (examples as i64).checked_rem(batch) {
        _ if batch < 1 => return Ok(()),
        Some(0) | None => batch,
        Some(rest) => rest,
    };
    if last != 1 && batch != 1 {
        return Ok(());
    }
    let lone = graph.nodes.iter().find(|node| {
        matches!(node.op, Op::BatchNorm(_))
            && node
                .inputs
                .first()
                .is_some_and(|&i| graph.node(i).shape.dims.iter().skip(1).product::<u64>() == 1)
    });
    match lone {
        None => Ok(()),
        Some(node) => Err(RuntimeError::Config(format!(
            "batch norm `{}` would see one value per channel in a batch of 1 example ({examples} training \
             examples in batches of {batch}), which it cannot normalise; choose another batch size",
            node.name
        ))),
    }
}

/// What one epoch measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Counted from 1.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    /// The mean cross-entropy on the test set; `None` for the epochs of a checkpoint written
    /// before nnc recorded it.
    pub test_loss: Option<f64>,
    pub test_acc: f64,
    /// Training examples per second.
    pub examples_per_sec: f64,
}

/// Hears about progress; the command line draws it.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _batches: usize) {}
    fn batch_done(&mut self, _loss: f64, _examples: i64) {}
    /// The loss went past the divergence threshold, and the run goes on (without
    /// `stop_on_divergence`); said at most once per epoch.
    fn diverging(&mut self, _message: &str) {}
    /// An epoch ended and its checkpoint is written; `history` holds every epoch so far, this
    /// one last. An error stops the run (after the checkpoint, so nothing is lost).
    fn epoch_done(&mut self, _history: &[EpochMetrics]) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Before the convolutions' layouts are measured ([`conv_layout::measure`]): how many are
    /// timed, each forward and backward a dozen times, which can take seconds.
    fn measuring_conv_layouts(&mut self, _convolutions: usize) {}
    /// Before the first step of a run that measured its convolutions' layouts (or took them
    /// from the checkpoint it resumed): the convolutions that train contiguous, if any.
    fn contiguous_convolutions(&mut self, _names: &[String]) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// What [`Trainer::resume`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// Weights, optimiser state and history restored: training continues after `epochs`
    /// epochs. `fresh_state`: this run's optimiser keeps state (momentum, or Adam's moments)
    /// but the checkpoint has none, as when it was trained with plain SGD; it starts afresh.
    After { epochs: usize, fresh_state: bool },
    /// The file holds weights but no training history (`nnc.metrics`), as a weights file
    /// saved by `nnc run` does: its weights are loaded, and training restarts at epoch 1 with
    /// a fresh optimiser.
    Restarted,
}

/// SGD and Adam over the trainable variables, with their state kept by name so that it can be
/// checkpointed (tch's optimizers do not expose theirs): what [`Trainer`] steps with, and `nnc
/// bench` times.
pub struct Optim {
    kind: Optimizer,
    lr: f64,
    params: Vec<(String, Tensor)>,
    /// Per parameter: the momentum buffer (SGD), or the two moment estimates and the step count
    /// (Adam, which counts each parameter's steps from its first gradient, as torch.optim does);
    /// empty until the parameter first has a gradient.
    state: Vec<Vec<Tensor>>,
    /// Steps taken: a checkpoint's `nnc.optim_steps`, and each parameter's Adam step count in a
    /// checkpoint written before nnc kept one per parameter.
    steps: i64,
}

impl Optim {
    pub fn new(vs: &nn::VarStore, kind: Optimizer, lr: f64) -> Optim {
        let mut params: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let state = params.iter().map(|_| Vec::new()).collect();
        Optim { kind, lr, params, state, steps: 0 }
    }

    /// Whether the optimiser keeps state between steps (all but plain SGD).
    fn keeps_state(&self) -> bool {
        !matches!(self.kind, Optimizer::Sgd { momentum: 0.0, .. })
    }

    fn state_names(&self) -> &'static [&'static str] {
        match self.kind {
            Optimizer::Sgd { .. } => &["momentum_buffer"],
            Optimizer::Adam { .. } => &["exp_avg", "exp_avg_sq", ADAM_STEP],
        }
    }

    /// A parameter's state before its first step: zeros laid out as it is, and Adam's step
    /// count at 0.
    fn fresh_state(&self, p: &Tensor) -> Result<Vec<Tensor>, TchError> {
        self.state_names()
            .iter()
            .map(|&what| match what {
                ADAM_STEP => adam_count(0, p),
                _ => p.f_zeros_like(),
            })
            .collect()
    }

    /// Every gradient set to none, as PyTorch's `zero_grad()` does: backward then hands its
    /// gradients over instead of adding them into zeroed tensors (a pass over every parameter
    /// saved twice).
    pub fn zero_grad(&mut self) -> Result<(), RuntimeError> {
        Ok(shim::clear_grads(self.params.iter().map(|(_, p)| p))?)
    }

    /// One optimiser step: libtorch's fused one (`shim::fused_sgd`, `shim::fused_adam`,
    /// torch.optim's `fused=True`: one pass over each parameter, its gradient and its state),
    /// over the parameters that have a gradient. A parameter's state is made when it first has
    /// one, in its layout.
    pub fn step(&mut self) -> Result<(), RuntimeError> {
        self.steps += 1;
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        // The parameters with a gradient, those with state and those whose state starts now
        // (SGD's fused kernel fills a first step's momentum buffers with the gradients).
        let (fresh, going): (Vec<usize>, Vec<usize>) =
            (0..grads.len()).filter(|&i| grads[i].defined()).partition(|&i| self.state[i].is_empty());
        let keeps_state = self.keeps_state();
        for &i in fresh.iter().filter(|_| keeps_state) {
            self.state[i] = self.fresh_state(&self.params[i].1)?;
        }
        for (first, chosen) in [(true, fresh), (false, going)] {
            if chosen.is_empty() {
                continue;
            }
            let params: Vec<&Tensor> = chosen.iter().map(|&i| &self.params[i].1).collect();
            let grads: Vec<&Tensor> = chosen.iter().map(|&i| &grads[i]).collect();
            let state = |k: usize| chosen.iter().map(|&i| &self.state[i][k]).collect::<Vec<_>>();
            tch::no_grad(|| match self.kind {
                Optimizer::Sgd { momentum, weight_decay } => {
                    let buffers = if momentum != 0.0 { state(0) } else { Vec::new() };
                    let first = first && momentum != 0.0;
                    shim::fused_sgd(&params, &grads, &buffers, self.lr, momentum, weight_decay, first)
                }
                Optimizer::Adam { weight_decay } => {
                    let (m, v, steps) = (state(0), state(1), state(2));
                    shim::fused_adam(
                        &params,
                        &grads,
                        &m,
                        &v,
                        &steps,
                        self.lr,
                        ADAM_BETAS,
                        weight_decay,
                        ADAM_EPS,
                    )
                }
            })?;
        }
        Ok(())
    }

    /// Each state tensor laid out as its parameter, as the fused kernels need: state read from
    /// a checkpoint is contiguous, and the parameters may since have been made channels-last.
    fn match_layouts(&mut self) -> Result<(), RuntimeError> {
        for ((_, p), state) in self.params.iter().zip(&mut self.state) {
            for t in state.iter_mut().filter(|t| t.size() == p.size() && t.stride() != p.stride()) {
                let mut arranged = p.f_empty_like()?;
                arranged.f_copy_(t)?;
                *t = arranged;
            }
        }
        Ok(())
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(STEPS.to_string(), Tensor::from(self.steps as f64))];
        for ((name, _), state) in self.params.iter().zip(&self.state) {
            for (what, t) in self.state_names().iter().zip(state) {
                out.push((format!("{OPTIM_PREFIX}{name}.{what}"), t.shallow_clone()));
            }
        }
        out
    }

    /// The step count and per-parameter state a checkpoint's bookkeeping holds, checked against
    /// this optimiser and its parameters: every entry must be state this optimiser keeps, of
    /// its parameter's shape and dtype, finite, and complete. Nothing is changed here; the
    /// caller commits with [`Optim::set`] once the whole checkpoint has passed.
    fn read_state(
        &self,
        saved: &BTreeMap<String, Tensor>,
        device: Device,
    ) -> Result<(i64, Vec<Vec<Tensor>>), String> {
        let steps = saved.get(STEPS).map(|t| read_count(t, STEPS)).transpose()?;
        let ours = self.state_names();
        let index: HashMap<&str, usize> =
            self.params.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
        let mut found: Vec<Vec<Option<Tensor>>> =
            self.params.iter().map(|_| ours.iter().map(|_| None).collect()).collect();
        // Adam's step count of each parameter that has one in the file.
        let mut counts: Vec<Option<i64>> = vec![None; self.params.len()];
        for (key, t) in
            saved.range(OPTIM_PREFIX.to_string()..).take_while(|(k, _)| k.starts_with(OPTIM_PREFIX))
        {
            let Some((param, what)) = key[OPTIM_PREFIX.len()..].rsplit_once('.') else {
                return Err(format!("`{key}` is not optimiser state that nnc writes"));
            };
            let Some(slot) = ours.iter().position(|n| *n == what) else {
                let trained = match what {
                    "momentum_buffer" => "SGD with momentum",
                    "exp_avg" | "exp_avg_sq" | ADAM_STEP => "Adam",
                    _ => return Err(format!("`{key}` is not optimiser state that nnc writes")),
                };
                return Err(format!(
                    "it was trained with {trained} (it holds `{key}`), but this run uses {}; resume with the optimiser settings the run started with",
                    self.kind.name()
                ));
            };
            if let Optimizer::Sgd { momentum: 0.0, .. } = self.kind {
                return Err(format!(
                    "it was trained with SGD with momentum (it holds `{key}`), but this run has momentum 0; resume with the momentum the run started with"
                ));
            }
            let Some(&i) = index.get(param) else {
                return Err(format!(
                    "`{key}` is the state of `{param}`, which is not a trainable parameter of this model"
                ));
            };
            let p = &self.params[i].1;
            if what == ADAM_STEP {
                // A count of 0 would divide the bias correction by 1 - β⁰ = 0.
                counts[i] = Some(read_count(t, key).and_then(|c| match c {
                    0 => Err(format!("`{key}` is 0, but Adam's moments are kept after a step")),
                    c => Ok(c),
                })?);
                continue;
            }
            if t.size() != p.size() {
                return Err(format!(
                    "`{key}` has shape {:?}, but `{param}` has shape {:?}",
                    t.size(),
                    p.size()
                ));
            }
            if t.kind() != p.kind() {
                return Err(format!("`{key}` is {:?}, but `{param}` is {:?}", t.kind(), p.kind()));
            }
            let bad = weights::count_non_finite(t);
            if bad > 0 {
                return Err(format!("`{key}` holds {bad} NaN or infinite values"));
            }
            found[i][slot] = Some(t.to_device(device));
        }
        let any = found.iter().flatten().any(Option::is_some) || counts.iter().any(Option::is_some);
        let steps = match steps {
            Some(steps) => steps,
            None if any => return Err(format!("it holds optimiser state but no `{STEPS}`")),
            None => 0,
        };
        // A checkpoint of an nnc that counted Adam's steps once for all parameters has moments
        // and no count of any parameter's own: each parameter's count was the global one. A file
        // with some parameters' counts must have all of them.
        let legacy = counts.iter().all(Option::is_none);
        let step_slot = ours.iter().position(|&n| n == ADAM_STEP);
        let mut state = Vec::with_capacity(found.len());
        for (((name, p), mut slots), count) in self.params.iter().zip(found).zip(counts) {
            if let Some(k) = step_slot {
                let count = match count {
                    None if legacy && slots.iter().any(Option::is_some) => {
                        // Adam's bias correction divides by 1 - β^steps, which is 0 for 0 steps.
                        if steps == 0 {
                            return Err(format!("it holds Adam's moment estimates, but `{STEPS}` is 0"));
                        }
                        Some(steps)
                    }
                    count => count,
                };
                if let Some(count) = count {
                    if count > steps {
                        return Err(format!(
                            "`{OPTIM_PREFIX}{name}.{ADAM_STEP}` is {count}, more than the {steps} steps of `{STEPS}`"
                        ));
                    }
                    let count = adam_count(count, p)
                        .map_err(|e| format!("`{OPTIM_PREFIX}{name}.{ADAM_STEP}` cannot be made: {e}"))?;
                    slots[k] = Some(count);
                }
            }
            let present = slots.iter().filter(|s| s.is_some()).count();
            if present != 0 && present != slots.len() {
                let missing: Vec<&str> =
                    ours.iter().zip(&slots).filter(|(_, s)| s.is_none()).map(|(n, _)| *n).collect();
                return Err(format!("the optimiser state of `{name}` lacks {}", missing.join(" and ")));
            }
            state.push(slots.into_iter().flatten().collect());
        }
        // Without saved state, an optimiser that keeps some starts afresh, and so must the step
        // count (the file's counts another optimiser's steps); plain SGD keeps none, and its
        // steps go on from the file's.
        let steps = if any || !self.keeps_state() { steps } else { 0 };
        Ok((steps, state))
    }

    fn set(&mut self, (steps, state): (i64, Vec<Vec<Tensor>>)) {
        self.steps = steps;
        self.state = state;
    }

    /// Every state tensor, by its checkpoint name.
    fn named_state(&self) -> impl Iterator<Item = (String, &Tensor)> {
        let names = self.state_names();
        self.params.iter().zip(&self.state).flat_map(move |((name, _), state)| {
            names.iter().zip(state).map(move |(what, t)| (format!("{OPTIM_PREFIX}{name}.{what}"), t))
        })
    }
}

/// Every float variable of rank 4 (a 2-D convolution's weight) laid out channels-last, in place,
/// as `nnc train` trains in [`Layout::ChannelsLast`]: the optimiser and the model keep the same
/// tensors.
pub fn channels_last_weights(vs: &nn::VarStore) -> Result<(), RuntimeError> {
    for (_, mut v) in vs.variables() {
        if v.dim() == 4 && v.is_floating_point() {
            let arranged = channels_last(&v)?;
            tch::no_grad(|| v.f_set_data(&arranged))?;
        }
    }
    Ok(())
}

/// A number for a message: plain where that reads well, in scientific notation where plain
/// would print hundreds of digits (a learning rate of 1e300) or round to 0.
fn number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else if v.fract() == 0.0 || !v.is_finite() {
        format!("{v}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// Parameter `p`'s Adam step count, as torch.optim's fused Adam keeps it: a 0-dim fp32 tensor on
/// the parameter's device, where the fused kernel reads it.
fn adam_count(count: i64, p: &Tensor) -> Result<Tensor, TchError> {
    Tensor::f_full([], count as f64, (Kind::Float, p.device()))
}

/// A step count (`nnc.optim_steps`, or a parameter's Adam `step`): one whole, non-negative
/// number, at most `i32::MAX` (Adam keeps its counts in fp32, as torch.optim's fused Adam does,
/// which counts exactly to 2²⁴ steps and then stops counting; its bias corrections are 1 by
/// then).
fn read_count(t: &Tensor, key: &str) -> Result<i64, String> {
    let numeric = t.is_floating_point()
        || matches!(t.kind(), Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8);
    let value = (numeric && t.numel() == 1).then(|| t.reshape([1]).double_value(&[0]));
    match value {
        Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= f64::from(i32::MAX) => Ok(v as i64),
        Some(v) => Err(format!("`{key}` is {v}, not a whole number of steps from 0 to {}", i32::MAX)),
        None => Err(format!("`{key}` must be one number, but it is {:?} of shape {:?}", t.kind(), t.size())),
    }
}

/// `nnc.metrics`: one row of six numbers per epoch (epoch, training loss, training accuracy,
/// test loss, test accuracy, examples per second), epochs numbered 1, 2, … in order; or of
/// five, without the test loss, as checkpoints written before nnc recorded it hold them.
fn read_history(t: &Tensor) -> Result<Vec<EpochMetrics>, String> {
    let size = t.size();
    let (&[rows, columns @ (5 | 6)], true) = (&size[..], t.is_floating_point()) else {
        return Err(format!(
            "`{METRICS}` must be a table of 6 numbers per epoch, but it is {:?} of shape {size:?}",
            t.kind()
        ));
    };
    let values = Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1]))
        .map_err(|e| format!("`{METRICS}` cannot be read: {e}"))?;
    let mut history = Vec::with_capacity(rows as usize);
    for (r, row) in values.chunks_exact(columns as usize).enumerate() {
        let (epoch, train_loss, train_acc, test_loss, test_acc, examples_per_sec) = match *row {
            // NaN stands for an epoch without a test loss (one resumed from an older file).
            [e, l, a, tl, ta, s] => (e, l, a, Some(tl).filter(|v| !v.is_nan()), ta, s),
            [e, l, a, ta, s] => (e, l, a, None, ta, s),
            _ => continue, // chunks_exact gives rows of 5 or 6
        };
        let fits = epoch == (r + 1) as f64
            && train_loss.is_finite()
            && train_loss >= 0.0
            && (0.0..=1.0).contains(&train_acc)
            && test_loss.is_none_or(|l| l.is_finite() && l >= 0.0)
            && (0.0..=1.0).contains(&test_acc)
            && examples_per_sec.is_finite()
            && examples_per_sec >= 0.0;
        if !fits {
            return Err(format!(
                "row {} of `{METRICS}` should be epoch {} with finite losses, accuracies from 0 to 1 and a finite speed, but it is {row:?}",
                r + 1,
                r + 1
            ));
        }
        history.push(EpochMetrics {
            epoch: r + 1,
            train_loss,
            train_acc,
            test_loss,
            test_acc,
            examples_per_sec,
        });
    }
    Ok(history)
}

/// What `model` scores on a data set, in evaluation mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The mean cross-entropy over the examples, as the training loss is measured.
    pub loss: f64,
    pub accuracy: f64,
}

/// The loss and accuracy of `model` on `data`, in evaluation mode.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    batch: i64,
    resize: Option<i64>,
    device: Device,
) -> Result<Evaluation, RuntimeError> {
    evaluate_with(|x| model.try_forward(x, false), data, batch, resize, device)
}

/// The loss and accuracy on `data` of the evaluation-mode forward `forward` (a model's
/// [`Inference`](crate::Inference) plan, or its interpreter).
pub fn evaluate_with(
    forward: impl Fn(&Tensor) -> Result<Tensor, RuntimeError>,
    data: &Dataset,
    batch: i64,
    resize: Option<i64>,
    device: Device,
) -> Result<Evaluation, RuntimeError> {
    if data.is_empty() {
        return Err(RuntimeError::Config("there are no examples to evaluate on (0 images)".to_string()));
    }
    // Summed on the device and read once, not after every batch (a GPU would wait for each
    // read): the loss in double precision, each batch's weighted by its size, as before.
    let (correct, loss_sum) = tch::no_grad(|| -> Result<(Tensor, Tensor), RuntimeError> {
        let mut correct = Tensor::f_zeros([], (Kind::Int64, device))?;
        let mut loss_sum = Tensor::f_zeros([], (Kind::Double, device))?;
        for batch in Batches::new(data, batch, false, resize, device) {
            let (x, y) = batch?;
            let logits = forward(&x)?;
            correct = correct.f_add(&count_correct(&logits, &y)?)?;
            let loss = cross_entropy(&logits, &y)?.f_to_kind(Kind::Double)?;
            loss_sum = loss_sum.f_add(&loss.f_mul_scalar(y.size()[0])?)?;
        }
        Ok((correct, loss_sum))
    })?;
    let n = data.len() as f64;
    Ok(Evaluation {
        loss: loss_sum.f_double_value(&[])? / n,
        accuracy: correct.f_int64_value(&[])? as f64 / n,
    })
}

/// How many of a batch's predictions (the largest logit) are the label: a tensor on their
/// device, which the caller sums and reads once.
fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<Tensor, RuntimeError> {
    Ok(logits.f_argmax(-1, false)?.f_eq_tensor(labels)?.f_sum(Kind::Int64)?)
}

/// Trains `model`, whose variables live in `vs`; `history` holds every epoch's metrics, those of
/// a resumed run's earlier epochs included.
pub struct Trainer<'m> {
    model: &'m Model,
    vs: &'m mut nn::VarStore,
    config: TrainConfig,
    optim: Optim,
    pub history: Vec<EpochMetrics>,
    /// The epoch whose checkpoint is on disk: the last one written, or the resumed one.
    checkpointed: Option<usize>,
    /// The loss of this run's first batch, the divergence test's reference.
    first_loss: Option<f64>,
    /// What each checkpoint's `__metadata__` records besides its epoch ([`weights::provenance`]).
    pub metadata: BTreeMap<String, String>,
    /// The convolutions a resumed checkpoint says trained contiguous.
    resumed_layouts: Option<Vec<String>>,
    /// The values of the network's parameters a resumed checkpoint was trained with, and this
    /// run's, where they differ (`{"size":32}` and `{"size":40}`), which its caller says.
    pub changed_parameters: Option<(String, String)>,
}

impl<'m> Trainer<'m> {
    pub fn new(model: &'m Model, vs: &'m mut nn::VarStore, config: TrainConfig) -> Self {
        let optim = Optim::new(vs, config.optimizer, config.lr);
        let metadata = weights::provenance(model.graph());
        Trainer {
            model,
            vs,
            config,
            optim,
            history: Vec::new(),
            checkpointed: None,
            first_loss: None,
            metadata,
            resumed_layouts: None,
            changed_parameters: None,
        }
    }

    /// The epoch whose checkpoint is on disk, if any: after an error, the one to resume from.
    pub fn checkpointed_epoch(&self) -> Option<usize> {
        self.checkpointed
    }

    /// Restores weights, optimiser state and history from a checkpoint written by
    /// [`Trainer::run`]. The whole file is checked first (of this network's name, where its
    /// metadata records one; weights of the model's shapes, dtype and finite; optimiser state of this
    /// optimiser, of the parameters' shapes; a history of whole epochs), so a refused
    /// checkpoint changes nothing.
    pub fn resume(&mut self, path: &Path) -> Result<Resumed, RuntimeError> {
        let origin = path.display().to_string();
        let fail = |reason: String| RuntimeError::Resume { path: origin.clone(), reason };
        let (bookkeeping, file): (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) =
            weights::read(path)?.into_iter().partition(|(n, _)| weights::is_bookkeeping(n));
        let Some(metrics) = bookkeeping.get(METRICS) else {
            weights::load_checked(self.vs, file, &origin, &LoadOptions::default())?;
            return Ok(Resumed::Restarted);
        };
        let history = read_history(metrics).map_err(fail)?;
        let mut recorded = weights::read_metadata(path)?;
        // A network of another name whose tensors have the same shapes (another file's
        // variant with other activations) would train on silently; the name is what the
        // metadata records of the network. Its parameters may differ: `--set size=` changed
        // between runs is progressive resizing, which the caller says.
        if let (Some(theirs), Some(ours)) = (recorded.get("network"), self.metadata.get("network")) {
            if theirs != ours {
                return Err(fail(format!(
                    "it is a checkpoint of the network `{theirs}`, but this run trains `{ours}`; resume with the .net file (and --network) the run started with"
                )));
            }
        }
        let changed_parameters = match (recorded.remove("parameters"), self.metadata.get("parameters")) {
            (Some(theirs), Some(ours)) if theirs != *ours => Some((theirs, ours.clone())),
            _ => None,
        };
        let layouts = recorded.remove(CONTIGUOUS_CONVOLUTIONS);
        let state = self.optim.read_state(&bookkeeping, self.config.device).map_err(fail)?;
        weights::load_checked(self.vs, file, &origin, &LoadOptions::default())?;
        let fresh_state = self.optim.keeps_state() && state.1.iter().all(|s| s.is_empty());
        self.optim.set(state);
        self.resumed_layouts =
            layouts.map(|names| names.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect());
        self.checkpointed = history.last().map(|m| m.epoch);
        self.history = history;
        self.changed_parameters = changed_parameters;
        Ok(Resumed::After { epochs: self.history.len(), fresh_state })
    }

    /// Every weight, buffer and optimiser state tensor that holds NaN or infinite values.
    fn non_finite(&self) -> Vec<weights::NonFinite> {
        let variables: BTreeMap<String, Tensor> = self.vs.variables().into_iter().collect();
        let state: Vec<(String, &Tensor)> = self.optim.named_state().collect();
        weights::non_finite(
            variables.iter().map(|(n, t)| (n.as_str(), t)).chain(state.iter().map(|(n, t)| (n.as_str(), *t))),
        )
    }

    fn checkpoint(&mut self, path: &Path) -> Result<(), RuntimeError> {
        let mut tensors: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        tensors.extend(self.optim.tensors());
        let rows: Vec<f64> = self
            .history
            .iter()
            .flat_map(|m| {
                // An epoch resumed from an older checkpoint has no test loss: NaN stands for it
                // in the table, which reads it back as none.
                let test_loss = m.test_loss.unwrap_or(f64::NAN);
                [m.epoch as f64, m.train_loss, m.train_acc, test_loss, m.test_acc, m.examples_per_sec]
            })
            .collect();
        let metrics = Tensor::from_slice(&rows).reshape([self.history.len() as i64, 6]);
        tensors.push((METRICS.to_string(), metrics));
        let mut metadata = self.metadata.clone();
        if let Some(last) = self.history.last() {
            metadata.insert("epoch".to_string(), last.epoch.to_string());
        }
        weights::write(&tensors, &metadata, path)?;
        self.checkpointed = self.history.last().map(|m| m.epoch);
        Ok(())
    }

    /// Runs the epochs not yet in the history. A loss or weights that are not finite, or (with
    /// `stop_on_divergence`) a diverging loss, stop the run with [`RuntimeError::Diverged`]
    /// before the epoch is checkpointed: the checkpoint on disk still holds the last good epoch
    /// ([`Trainer::checkpointed_epoch`]).
    pub fn run(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<(), RuntimeError> {
        let c = self.config.clone();
        c.validate()?;
        check_data(train, test)?;
        check_batch_norm_batches(self.model.graph(), train.len(), c.batch)?;
        if c.layout == Layout::ChannelsLast {
            channels_last_weights(self.vs)?;
            if c.measure_conv_layouts && self.history.len() < c.epochs {
                let contiguous = match self.resumed_layouts.take() {
                    Some(names) => names,
                    None => {
                        observer.measuring_conv_layouts(conv_layout::measurable(self.model.graph()).len());
                        conv_layout::measure(self.model, c.batch, c.device)?
                    }
                };
                conv_layout::arrange(self.model, &contiguous)?;
                observer.contiguous_convolutions(&contiguous);
                self.metadata.insert(CONTIGUOUS_CONVOLUTIONS.to_string(), contiguous.join(","));
            }
        }
        self.optim.match_layouts()?;
        for epoch in self.history.len() + 1..=c.epochs {
            tch::manual_seed(c.seed.wrapping_mul(1_000_003).wrapping_add(epoch as i64));
            let batches = Batches::new(train, c.batch, true, c.resize, c.device);
            observer.epoch_started(epoch, batches.len());
            let start = Instant::now();
            let (mut loss_sum, mut seen) = (0.0, 0i64);
            // Counted on the device and read at the epoch's end. The loss is read at each step:
            // the divergence check must see it before the step.
            let mut correct = Tensor::f_zeros([], (Kind::Int64, c.device))?;
            let mut warned = false;
            for batch in batches {
                let (x, y) = batch?;
                let x = match c.layout {
                    Layout::ChannelsLast if x.dim() == 4 => channels_last(&x)?,
                    _ => x,
                };
                self.optim.zero_grad()?;
                let outputs = self.model.try_forward_outputs(&x, true)?;
                let logits = &outputs[0];
                let mut loss = cross_entropy(logits, &y)?;
                // An auxiliary classifier (an output of training alone, shaped as the main
                // one) adds its loss, weighted as Inception's training weighs it.
                for (output, aux) in self.model.graph().outputs.iter().zip(&outputs).skip(1) {
                    if output.training_only && aux.size() == logits.size() {
                        loss = loss.f_add(&cross_entropy(aux, &y)?.f_mul_scalar(AUX_LOSS_WEIGHT)?)?;
                    }
                }
                let value = loss.f_double_value(&[])?;
                if !value.is_finite() {
                    return Err(RuntimeError::Diverged(format!(
                        "the loss became {value} in epoch {epoch} after {seen} examples; the learning rate ({}) is likely too high",
                        number(c.lr)
                    )));
                }
                let classes = logits.size().last().copied().unwrap_or(2).max(2);
                let uniform = (classes as f64).ln();
                let first = *self.first_loss.get_or_insert(value);
                let (reference, what) = if first >= uniform {
                    (first, "the run's first loss".to_string())
                } else {
                    (uniform, format!("the loss of a uniform guess over {classes} classes"))
                };
                if value > DIVERGENCE_FACTOR * reference {
                    let why = format!(
                        "the loss reached {} in epoch {epoch} after {seen} examples, more than {DIVERGENCE_FACTOR} times {} ({what}); the learning rate ({}) is likely too high",
                        number(value),
                        number(reference),
                        number(c.lr)
                    );
                    if c.stop_on_divergence {
                        return Err(RuntimeError::Diverged(why));
                    }
                    if !warned {
                        observer.diverging(&why);
                        warned = true;
                    }
                }
                loss.f_backward()?;
                self.optim.step()?;
                let n = y.size()[0];
                loss_sum += value * n as f64;
                correct = correct.f_add(&count_correct(logits, &y)?)?;
                seen += n;
                observer.batch_done(value, n);
            }
            let elapsed = start.elapsed().as_secs_f64();
            // The loss is checked before each step; the epoch's last step can still have made
            // weights (or the optimiser's state) non-finite, and those must not be checkpointed.
            let bad = self.non_finite();
            if !bad.is_empty() {
                let list: Vec<String> = bad.iter().take(3).map(|b| b.to_string()).collect();
                let more = if bad.len() > 3 {
                    format!(" and {} more tensors", bad.len() - 3)
                } else {
                    String::new()
                };
                return Err(RuntimeError::Diverged(format!(
                    "the weights stopped being finite in epoch {epoch} ({}{more}); the learning rate ({}) is likely too high",
                    list.join("; "),
                    number(c.lr)
                )));
            }
            let tested = evaluate(self.model, test, c.batch.max(256), c.resize, c.device)?;
            let metrics = EpochMetrics {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: correct.f_int64_value(&[])? as f64 / seen.max(1) as f64,
                // Finite weights can still overflow a logit on a test example: such a loss is
                // recorded as unknown, so that the checkpoint stays one a resume reads.
                test_loss: Some(tested.loss).filter(|l| l.is_finite()),
                test_acc: tested.accuracy,
                examples_per_sec: seen as f64 / elapsed.max(1e-9),
            };
            self.history.push(metrics);
            if let Some(path) = &c.checkpoint {
                if let Err(e) = self.checkpoint(path) {
                    // The history must match what is on disk, should the caller go on.
                    self.history.pop();
                    return Err(e);
                }
            }
            observer.epoch_done(&self.history)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of `parity/make_optim_fixture.py`, which wrote each one's tensors after
    /// three steps of torch.optim, and the tensor each leaves without a gradient at the first.
    const OPTIMISERS: [(&str, Optimizer, f64, Option<&str>); 5] = [
        ("sgd", Optimizer::Sgd { momentum: 0.0, weight_decay: 0.0 }, 0.1, None),
        ("sgd_momentum", Optimizer::Sgd { momentum: 0.9, weight_decay: 0.01 }, 0.1, None),
        ("sgd_momentum_late", Optimizer::Sgd { momentum: 0.9, weight_decay: 0.01 }, 0.1, Some("linear.bias")),
        ("adam", Optimizer::Adam { weight_decay: 0.01 }, 0.01, None),
        ("adam_late", Optimizer::Adam { weight_decay: 0.01 }, 0.01, Some("linear.bias")),
    ];

    /// Three steps of nnc's optimiser, with the fixture's gradients, end where torch.optim's
    /// did, in the usual layout and with the convolution weight channels-last (its gradients and
    /// state then channels-last too, as the fused kernels need), a tensor without a gradient at
    /// the first step included (skipped there; its state starts at the second, and Adam
    /// bias-corrects its first step as a first step, counting its steps as torch.optim does).
    #[test]
    fn steps_match_torch_optim() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity/fixtures/optim/steps.safetensors");
        let fixture: BTreeMap<String, Tensor> = weights::read(&path).unwrap().into_iter().collect();
        let names = ["conv.weight", "linear.bias", "linear.weight"];
        for (setting, kind, lr, late) in OPTIMISERS {
            for layout in [Layout::Contiguous, Layout::ChannelsLast] {
                let params: Vec<(String, Tensor)> = names
                    .iter()
                    .map(|n| {
                        let t = fixture[&format!("initial.{n}")].copy();
                        let t = match (layout, t.dim()) {
                            (Layout::ChannelsLast, 4) => channels_last(&t).unwrap(),
                            _ => t,
                        };
                        (n.to_string(), t.set_requires_grad(true))
                    })
                    .collect();
                let state = params.iter().map(|_| Vec::new()).collect();
                let mut optim = Optim { kind, lr, params, state, steps: 0 };
                for step in 0..3 {
                    optim.zero_grad().unwrap();
                    // Σ p·g has the gradient g.
                    let loss = optim
                        .params
                        .iter()
                        .filter(|(n, _)| step > 0 || late != Some(n.as_str()))
                        .map(|(n, p)| (p * &fixture[&format!("grad.{step}.{n}")]).sum(Kind::Float))
                        .reduce(|a, b| a + b)
                        .unwrap();
                    loss.backward();
                    optim.step().unwrap();
                }
                for (n, p) in &optim.params {
                    let expected = &fixture[&format!("{setting}.{n}")];
                    let error = crate::parity::relative(p, expected);
                    assert!(error < 1e-6, "{setting} {layout:?}: `{n}` off torch.optim's by {error:e}");
                    // The step changed the tensor: the check can fail.
                    assert!(crate::parity::relative(p, &fixture[&format!("initial.{n}")]) > 1e-3);
                }
                let layouts_kept = optim.params.iter().zip(&optim.state).all(|((_, p), s)| {
                    s.iter().filter(|t| t.dim() > 0).all(|t| t.stride() == p.stride())
                        && p.grad().stride() == p.stride()
                });
                assert!(
                    layouts_kept,
                    "{setting} {layout:?}: state and gradients laid out as their parameters"
                );
                assert_eq!(optim.state.iter().all(Vec::is_empty), setting == "sgd", "{setting}: state kept");
                if let Some(late) = late {
                    // The late tensor's state started a step after the others'.
                    let kept = optim.state_names().len();
                    assert!(optim.state.iter().all(|s| s.len() == kept), "{setting}: state for each");
                    if let Optimizer::Adam { .. } = kind {
                        let counts: Vec<f64> = optim.state.iter().map(|s| s[2].double_value(&[])).collect();
                        let late = optim.params.iter().position(|(n, _)| n == late).unwrap();
                        let expected: Vec<f64> = (0..3).map(|i| if i == late { 2.0 } else { 3.0 }).collect();
                        assert_eq!(counts, expected, "{setting}: Adam's steps counted per tensor");
                    }
                }
            }
        }
    }

    /// State read from a checkpoint is contiguous; once the parameters are channels-last, it is
    /// laid out as they are before a fused step reads it, with its values.
    #[test]
    fn state_follows_its_parameters_layout() {
        let p = channels_last(&Tensor::randn([2, 3, 2, 2], (Kind::Float, Device::Cpu))).unwrap();
        let buffer = Tensor::randn([2, 3, 2, 2], (Kind::Float, Device::Cpu));
        let mut optim = Optim {
            kind: Optimizer::Sgd { momentum: 0.9, weight_decay: 0.0 },
            lr: 0.1,
            params: vec![("w".to_string(), p.set_requires_grad(true))],
            state: vec![vec![buffer.copy()]],
            steps: 1,
        };
        assert_ne!(optim.state[0][0].stride(), optim.params[0].1.stride());
        optim.match_layouts().unwrap();
        assert_eq!(optim.state[0][0].stride(), optim.params[0].1.stride());
        assert_eq!(crate::parity::relative(&optim.state[0][0], &buffer), 0.0);
    }

    /// A batch that gives a batch norm one value per channel is refused, at the layer (where
    /// libtorch alone writes NaN into the running variance) and before training, where the
    /// training set's last batch, or every batch, would be one; a batch norm over a map of
    /// more than one value takes a batch of 1.
    #[test]
    fn a_lone_value_per_channel_is_refused_by_batch_norm() {
        use nnc_compiler::{compile, Options, Root};

        let text = "network bn { input [N, 1, 4, 4] conv2d(2, 3) -> batchnorm -> flatten -> linear(3) -> batchnorm }";
        let graph =
            compile(Root::Text { name: "bn.net", text, dir: None }, &Options::default()).graphs.remove(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::try_new(&vs.root(), graph.clone(), crate::Init::PyTorch).unwrap();
        let one = Tensor::rand([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let err = model.try_forward(&one, true).unwrap_err().to_string();
        assert!(err.contains("batch norm in training needs more than 1 value per channel"), "{err}");
        assert!(err.contains("[1, 3]"), "{err}");
        let running_var = |name: &str| vs.variables()[&format!("{name}.running_var")].copy();
        let last = graph.nodes.last().unwrap().name.clone();
        assert_eq!(running_var(&last), Tensor::ones([3], (Kind::Float, Device::Cpu)), "left as it was");
        // Two examples train; one evaluates.
        let _ = model.try_forward(&Tensor::rand([2, 1, 4, 4], (Kind::Float, Device::Cpu)), true).unwrap();
        assert!(running_var(&last).isfinite().all().int64_value(&[]) == 1);
        assert_eq!(model.try_forward(&one, false).unwrap().size(), [1, 3]);

        let refused = |examples, batch| check_batch_norm_batches(&graph, examples, batch).is_err();
        assert!(refused(33, 16) && refused(1, 16) && refused(32, 1), "a batch of 1 is refused");
        assert!(!refused(32, 16) && !refused(34, 16) && !refused(16, 16));
        assert!(!refused(33, 0) && !refused(33, -2), "no division by a batch size validate refuses");
        let err = check_batch_norm_batches(&graph, 33, 16).unwrap_err().to_string();
        assert!(
            err.contains(&format!("batch norm `{last}`")) && err.contains("33 training examples"),
            "{err}"
        );
        // Without the last batch norm, the first sees 2×2 values per channel in a batch of 1.
        let text = "network bn2d { input [N, 1, 4, 4] conv2d(2, 3) -> batchnorm -> flatten -> linear(3) }";
        let graph =
            compile(Root::Text { name: "bn2d.net", text, dir: None }, &Options::default()).graphs.remove(0);
        assert!(check_batch_norm_batches(&graph, 33, 16).is_ok());
        assert!(check_batch_norm_batches(&graph, 8, 1).is_ok());
    }

    /// A resumed run trains each convolution in the layout its checkpoint records (here, forged
    /// to differ from any measurement), so that it computes what the uninterrupted run would.
    #[test]
    fn a_resumed_run_keeps_the_recorded_layouts() {
        use crate::inference::layout_of;
        use nnc_compiler::ir::Op;
        use nnc_compiler::{compile, Options, Root};

        #[derive(Default)]
        struct Told(Vec<Vec<String>>);
        impl Observer for Told {
            fn contiguous_convolutions(&mut self, names: &[String]) {
                self.0.push(names.to_vec());
            }
        }
        let text = "network three { input [N, 1, 8, 8] conv2d(4, 3, padding=1) -> relu
            -> conv2d(4, 3, padding=1) -> relu -> conv2d(4, 3, padding=1) -> flatten -> linear(3) }";
        let graph =
            compile(Root::Text { name: "three.net", text, dir: None }, &Options::default()).graphs.remove(0);
        let convs: Vec<String> =
            graph.nodes.iter().filter(|n| matches!(n.op, Op::Conv2d(_))).map(|n| n.name.clone()).collect();
        let images = (Tensor::rand([32, 1, 8, 8], (Kind::Float, Device::Cpu)) * 255.0).to_kind(Kind::Uint8);
        let data = Dataset { images, labels: Tensor::randint(3, [32], (Kind::Int64, Device::Cpu)) };
        let dir = std::env::temp_dir().join(format!("nnc-layouts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.safetensors");
        let config = |epochs| TrainConfig {
            epochs,
            batch: 16,
            lr: 0.01,
            optimizer: Optimizer::Sgd { momentum: 0.9, weight_decay: 0.0 },
            seed: 0,
            resize: None,
            device: Device::Cpu,
            checkpoint: Some(path.clone()),
            stop_on_divergence: false,
            layout: Layout::ChannelsLast,
            measure_conv_layouts: true,
        };

        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph.clone(), crate::Init::PyTorch);
        let mut told = Told::default();
        Trainer::new(&model, &mut vs, config(1)).run(&data, &data, &mut told).unwrap();
        let mut metadata = weights::read_metadata(&path).unwrap();
        assert_eq!(told.0.len(), 1, "told once, before the first step");
        assert_eq!(metadata[CONTIGUOUS_CONVOLUTIONS], told.0[0].join(","), "the choice is recorded");

        // The stem (one input channel) is never measured: no measurement gives this list.
        let forged = vec![convs[0].clone(), convs[2].clone()];
        metadata.insert(CONTIGUOUS_CONVOLUTIONS.to_string(), forged.join(","));
        weights::write(&weights::read(&path).unwrap(), &metadata, &path).unwrap();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph, crate::Init::PyTorch);
        let mut trainer = Trainer::new(&model, &mut vs, config(2));
        trainer.resume(&path).unwrap();
        let mut told = Told::default();
        trainer.run(&data, &data, &mut told).unwrap();
        assert_eq!(told.0, vec![forged.clone()]);
        let layout = |name: &String| layout_of(&vs.variables()[&format!("{name}.weight")]);
        assert_eq!(layout(&convs[1]), Some(Layout::ChannelsLast));
        assert_eq!(layout(&convs[2]), Some(Layout::Contiguous));
        assert_eq!(weights::read_metadata(&path).unwrap()[CONTIGUOUS_CONVOLUTIONS], forged.join(","));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
