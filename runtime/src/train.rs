//! Training as d2l's `train_ch6` does it: mini-batch SGD (or Adam) on cross-entropy, with the
//! training loss and accuracy of each epoch, the test accuracy, and the throughput; a
//! checkpoint after every epoch from which a killed run resumes exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{nn, Device, Kind, Tensor};

use crate::data::{Batches, Dataset};
use crate::weights::{self, META_PREFIX, OPTIM_PREFIX};
use crate::{Model, RuntimeError};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Plain or momentum SGD, as `torch.optim.SGD`.
    Sgd { momentum: f64, weight_decay: f64 },
    /// Adam, as `torch.optim.Adam` (β = 0.9, 0.999; ε = 1e-8).
    Adam { weight_decay: f64 },
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
}

/// What one epoch measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Counted from 1.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_acc: f64,
    /// Training examples per second.
    pub examples_per_sec: f64,
}

/// Hears about progress; the command line draws it.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _batches: usize) {}
    fn batch_done(&mut self, _loss: f64, _examples: i64) {}
    fn epoch_done(&mut self, _metrics: &EpochMetrics) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// SGD and Adam over the trainable variables, with their state kept by name so that it can be
/// checkpointed (tch's optimizers do not expose theirs).
struct Optim {
    kind: Optimizer,
    lr: f64,
    params: Vec<(String, Tensor)>,
    /// Per parameter: the momentum buffer (SGD) or the two moment estimates (Adam).
    state: Vec<Vec<Tensor>>,
    steps: i64,
}

impl Optim {
    fn new(vs: &nn::VarStore, kind: Optimizer, lr: f64) -> Optim {
        let mut params: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let state = params.iter().map(|_| Vec::new()).collect();
        Optim { kind, lr, params, state, steps: 0 }
    }

    fn state_names(&self) -> &'static [&'static str] {
        match self.kind {
            Optimizer::Sgd { .. } => &["momentum_buffer"],
            Optimizer::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        let t = self.steps;
        tch::no_grad(|| {
            for ((_, p), state) in self.params.iter_mut().zip(&mut self.state) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                match self.kind {
                    Optimizer::Sgd { momentum, weight_decay } => {
                        let mut d = if weight_decay != 0.0 { &g + &*p * weight_decay } else { g };
                        if momentum != 0.0 {
                            if state.is_empty() {
                                state.push(d.detach().copy());
                            } else {
                                let _ = state[0].g_mul_scalar_(momentum).g_add_(&d);
                            }
                            d = state[0].shallow_clone();
                        }
                        let _ = p.g_sub_(&(d * self.lr));
                    }
                    Optimizer::Adam { weight_decay } => {
                        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
                        let g = if weight_decay != 0.0 { &g + &*p * weight_decay } else { g };
                        if state.is_empty() {
                            state.push(g.zeros_like());
                            state.push(g.zeros_like());
                        }
                        let _ = state[0].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                        let _ = state[1].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                        let m_hat = &state[0] / (1.0 - b1.powi(t as i32));
                        let v_hat = &state[1] / (1.0 - b2.powi(t as i32));
                        let _ = p.g_sub_(&(m_hat / (v_hat.sqrt() + eps) * self.lr));
                    }
                }
            }
        });
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{META_PREFIX}optim_steps"), Tensor::from(self.steps as f64))];
        for ((name, _), state) in self.params.iter().zip(&self.state) {
            for (what, t) in self.state_names().iter().zip(state) {
                out.push((format!("{OPTIM_PREFIX}{name}.{what}"), t.shallow_clone()));
            }
        }
        out
    }

    fn restore(&mut self, file: &std::collections::HashMap<String, Tensor>, device: Device) {
        if let Some(steps) = file.get(&format!("{META_PREFIX}optim_steps")) {
            self.steps = steps.double_value(&[]) as i64;
        }
        let names = self.state_names();
        for ((name, _), state) in self.params.iter().zip(&mut self.state) {
            let saved: Option<Vec<Tensor>> = names
                .iter()
                .map(|what| file.get(&format!("{OPTIM_PREFIX}{name}.{what}")).map(|t| t.to_device(device)))
                .collect();
            *state = saved.unwrap_or_default();
        }
    }
}

/// Accuracy of `model` on `data`, in evaluation mode.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    batch: i64,
    resize: Option<i64>,
    device: Device,
) -> Result<f64, RuntimeError> {
    let mut correct = 0i64;
    tch::no_grad(|| -> Result<(), RuntimeError> {
        for (x, y) in Batches::new(data, batch, false, resize, device) {
            let logits = model.try_forward(&x, false)?;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
        }
        Ok(())
    })?;
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// Trains `model`, whose variables live in `vs`; `history` holds every epoch's metrics, those of
/// a resumed run's earlier epochs included.
pub struct Trainer<'m> {
    model: &'m Model,
    vs: &'m mut nn::VarStore,
    config: TrainConfig,
    optim: Optim,
    pub history: Vec<EpochMetrics>,
}

impl<'m> Trainer<'m> {
    pub fn new(model: &'m Model, vs: &'m mut nn::VarStore, config: TrainConfig) -> Self {
        let optim = Optim::new(vs, config.optimizer, config.lr);
        Trainer { model, vs, config, optim, history: Vec::new() }
    }

    /// Restores weights, optimiser state and history from a checkpoint written by [`Trainer::run`].
    pub fn resume(&mut self, path: &Path) -> Result<(), RuntimeError> {
        weights::load(self.vs, path)?;
        let file: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path)?.into_iter().collect();
        self.optim.restore(&file, self.config.device);
        if let Some(metrics) = file.get(&format!("{META_PREFIX}metrics")) {
            let rows = metrics.size()[0];
            for r in 0..rows {
                let v: Vec<f64> = Vec::<f64>::try_from(metrics.get(r)).unwrap_or_default();
                if let [epoch, train_loss, train_acc, test_acc, examples_per_sec] = v[..] {
                    self.history.push(EpochMetrics {
                        epoch: epoch as usize,
                        train_loss,
                        train_acc,
                        test_acc,
                        examples_per_sec,
                    });
                }
            }
        }
        Ok(())
    }

    fn checkpoint(&self, path: &Path) -> Result<(), RuntimeError> {
        let mut tensors: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        tensors.extend(self.optim.tensors());
        let rows: Vec<f64> = self
            .history
            .iter()
            .flat_map(|m| [m.epoch as f64, m.train_loss, m.train_acc, m.test_acc, m.examples_per_sec])
            .collect();
        let metrics = Tensor::from_slice(&rows).reshape([self.history.len() as i64, 5]);
        tensors.push((format!("{META_PREFIX}metrics"), metrics));
        weights::write(&tensors, path)
    }

    /// Runs the epochs not yet in the history. A loss that is not finite stops the run with
    /// [`RuntimeError::Diverged`]; the last checkpoint then still holds the last good epoch.
    pub fn run(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<(), RuntimeError> {
        let c = self.config.clone();
        for epoch in self.history.len() + 1..=c.epochs {
            tch::manual_seed(c.seed.wrapping_mul(1_000_003).wrapping_add(epoch as i64));
            let batches = Batches::new(train, c.batch, true, c.resize, c.device);
            observer.epoch_started(epoch, batches.len());
            let start = Instant::now();
            let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0i64);
            for (x, y) in batches {
                self.optim.zero_grad();
                let logits = self.model.try_forward(&x, true)?;
                let loss = logits.cross_entropy_for_logits(&y);
                let value = loss.double_value(&[]);
                if !value.is_finite() {
                    return Err(RuntimeError::Diverged(format!(
                        "the loss became {value} in epoch {epoch} after {seen} examples; the learning rate ({}) is likely too high",
                        c.lr
                    )));
                }
                loss.backward();
                self.optim.step();
                let n = y.size()[0];
                loss_sum += value * n as f64;
                correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
                seen += n;
                observer.batch_done(value, n);
            }
            let elapsed = start.elapsed().as_secs_f64();
            let test_acc = evaluate(self.model, test, c.batch.max(256), c.resize, c.device)?;
            let metrics = EpochMetrics {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: correct as f64 / seen.max(1) as f64,
                test_acc,
                examples_per_sec: seen as f64 / elapsed,
            };
            self.history.push(metrics);
            if let Some(path) = &c.checkpoint {
                self.checkpoint(path)?;
            }
            observer.epoch_done(&metrics);
        }
        Ok(())
    }
}
