//! `nnc train`, `nnc eval` and `nnc predict`: progress bars (or, where the output is no
//! terminal, a progress line every half minute), per-epoch summaries, the metrics files (CSV
//! and JSON Lines) and the plot of the curves.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use nnc_cli::{
    write_json, EvalArgs, ExportWeightsArgs, Format, ModelArgs, OptimizerChoice, Outcome, PredictArgs,
    TrainArgs,
};
use nnc_compiler::back::json;
use nnc_compiler::ir::DType;
use nnc_compiler::Graph;
use nnc_runtime::data::{self, Dataset, FASHION_MNIST_CLASSES};
use nnc_runtime::tch::{self, nn, Device, Kind};
use nnc_runtime::train::{EpochMetrics, Observer, Optimizer, Resumed, TrainConfig, Trainer};
use nnc_runtime::weights::{self, LoadOptions};
use nnc_runtime::{
    check_writable, lock_folder, remove_stray_temporaries, write_atomic, FolderLock, Inference, Init, Layout,
    Model, Precision, RuntimeError,
};

use crate::args::{device, init, precision, precision_note};
use crate::plot;

fn fail(message: impl std::fmt::Display, outcome: Outcome) -> io::Result<Outcome> {
    eprintln!("error: {message}");
    Ok(outcome)
}

/// The exit code of a file the command was asked to write and could not: a usage error where
/// the path names no regular file (a FIFO, a device, `/dev/stdout`: `write_atomic` refuses it,
/// as `nnc`'s own commands do), else a model error.
pub(crate) fn write_failed(e: &RuntimeError) -> Outcome {
    match e {
        RuntimeError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput => {
            Outcome::UsageError
        }
        _ => Outcome::ModelError,
    }
}

/// The data folder: the one given, or the first installed Fashion-MNIST.
fn data_dir(given: &Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(dir) = given {
        return match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(dir.clone()),
            Ok(_) => Err(format!(
                "--data {}: not a folder (give the folder that holds the IDX files)",
                dir.display()
            )),
            Err(e) => Err(format!("--data {}: {e}", dir.display())),
        };
    }
    let candidates = data::default_data_dirs();
    candidates.iter().find(|d| d.join("train-labels-idx1-ubyte.gz").is_file() || d.join("train-labels-idx1-ubyte").is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        format!(
            "Fashion-MNIST is not installed (looked in {})\nhelp: run scripts/setup-data.sh, or give a folder of IDX files with --data DIR",
            looked.join(", ")
        )
    })
}

/// `train`, `eval` and `predict` read grey pictures, one per example: they need a network of
/// one float input. Any other is refused before any work (`main` asks first), naming its
/// inputs.
pub fn one_image_input(graph: &Graph) -> Result<(), String> {
    let shown = |id| format!("`{}` {}", graph.node(id).name, graph.node(id).shape);
    match &graph.inputs[..] {
        [one] if graph.node(*one).shape.dtype == DType::Float => Ok(()),
        [one] => Err(format!(
            "`{}` takes {}, but the data are grey pictures: training and evaluation need a network of one float input [N, 1, S, S]",
            graph.name,
            shown(*one)
        )),
        inputs => Err(format!(
            "`{}` takes {} inputs ({}), but the data are grey pictures, one per example: training and evaluation need a network of one float input [N, 1, S, S]",
            graph.name,
            inputs.len(),
            inputs.iter().map(|&id| shown(id)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The input size the model expects, which the data is resized to when it differs; and the
/// number of classes it predicts.
fn geometry(graph: &Graph, data: &Dataset) -> Result<(Option<i64>, usize), String> {
    let input = &graph.node(graph.input()).shape;
    let output = &graph.node(graph.output()).shape;
    let classes = match output.dims[..] {
        [c] => c as usize,
        _ => {
            return Err(format!(
                "a classifier must output [N, classes], but `{}` outputs {output}",
                graph.name
            ))
        }
    };
    match input.dims[..] {
        [1, h, w] if h == w => {
            let (dh, dw) = data.image_size();
            Ok(((h as i64 != dh || w as i64 != dw).then_some(h as i64), classes))
        }
        _ => {
            Err(format!("the data are grey square images, [N, 1, S, S], but `{}` takes {input}", graph.name))
        }
    }
}

/// The images and labels files of one split of a data folder (`train` or `t10k`), raw or
/// gzipped, found as `data::load_dir` finds them. Reading the splits one at a time lets
/// `eval` read only the test set, and lets every message name its file.
struct Split {
    what: &'static str,
    images: PathBuf,
    labels: PathBuf,
}

fn split(dir: &Path, prefix: &str, what: &'static str) -> Result<Split, String> {
    let find = |stem: String, kind: &str| {
        [stem.clone(), format!("{stem}.gz")]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no {what} {kind} in {}: expected {stem} or {stem}.gz", dir.display()))
    };
    Ok(Split {
        what,
        images: find(format!("{prefix}-images-idx3-ubyte"), "images")?,
        labels: find(format!("{prefix}-labels-idx1-ubyte"), "labels")?,
    })
}

/// Reads a split, refusing one that cannot be trained or tested on: no images, or images
/// without pixels.
fn read_split(split: &Split, classes: usize) -> Result<Dataset, String> {
    let data = data::read_pair(&split.images, &split.labels, classes).map_err(|e| e.to_string())?;
    if data.is_empty() {
        return Err(format!("the {} set is empty: {} holds 0 images", split.what, split.images.display()));
    }
    let (h, w) = data.image_size();
    if h < 1 || w < 1 {
        return Err(format!("the {} images in {} are {h}×{w} pixels", split.what, split.images.display()));
    }
    Ok(data)
}

/// The training and test sets, checked to be of one image size.
fn load_data(given: &Option<PathBuf>, classes: usize) -> Result<(Dataset, Dataset), String> {
    let dir = data_dir(given)?;
    let (train_split, test_split) = (split(&dir, "train", "training")?, split(&dir, "t10k", "test")?);
    let (train, test) = (read_split(&train_split, classes)?, read_split(&test_split, classes)?);
    if train.image_size() != test.image_size() {
        let ((th, tw), (sh, sw)) = (train.image_size(), test.image_size());
        return Err(format!(
            "the test images ({}) are {sh}×{sw} pixels, but the training images ({}) are {th}×{tw}; a model is tested on images of the size it trains on",
            test_split.images.display(),
            train_split.images.display()
        ));
    }
    Ok((train, test))
}

fn classes_of(graph: &Graph) -> usize {
    graph.node(graph.output()).shape.dims.last().copied().unwrap_or(10) as usize
}

/// Draws a progress bar per epoch (with the time elapsed and left) and prints a line when it
/// ends; where stderr is no terminal (CI logs, `nohup`), where indicatif hides the bar,
/// prints a progress line every `log_every` instead. After each epoch's checkpoint, writes `metrics.csv`, `metrics.jsonl` and
/// `curves.svg`, so that a killed run has them.
struct Progress {
    epochs: usize,
    bar: Option<ProgressBar>,
    loss: f64,
    examples: i64,
    start: Instant,
    /// The epoch running, its batches, how many are done, and when a line was last logged.
    epoch: usize,
    batches: usize,
    done: usize,
    logged: Instant,
    /// Whether stderr is a terminal, where the bar is drawn, and how often a line is printed
    /// where it is not.
    interactive: bool,
    log_every: Duration,
    /// `--format json`: each epoch's record on stdout, as a JSON line, instead of its text.
    json: bool,
    out: PathBuf,
    title: String,
}

impl Progress {
    fn new(epochs: usize, log_every: Duration, json: bool, out: PathBuf, title: String) -> Self {
        let now = Instant::now();
        Progress {
            epochs,
            bar: None,
            loss: 0.0,
            examples: 0,
            start: now,
            epoch: 0,
            batches: 0,
            done: 0,
            logged: now,
            interactive: io::stderr().is_terminal(),
            log_every,
            json,
            out,
            title,
        }
    }

    /// A line beside the run's other notes: on stdout, or on stderr where stdout is JSON. A
    /// closed stdout is not an error here; the epoch's line, which must reach it, reports it.
    fn note(&self, line: &str) {
        let _ = match self.json {
            true => writeln!(io::stderr().lock(), "{line}"),
            false => writeln!(io::stdout().lock(), "{line}"),
        };
    }
}

/// `1 convolution`, `7 convolutions`.
fn count(n: usize) -> String {
    match n {
        1 => "1 convolution".to_string(),
        n => format!("{n} convolutions"),
    }
}

/// A duration as a clock reads: `0:42`, `12:03`, `1:02:03`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
        (self.loss, self.examples, self.start) = (0.0, 0, Instant::now());
        (self.epoch, self.batches, self.done, self.logged) = (epoch, batches, 0, Instant::now());
    }

    fn batch_done(&mut self, loss: f64, examples: i64) {
        self.loss = if self.examples == 0 { loss } else { 0.9 * self.loss + 0.1 * loss };
        self.examples += examples;
        self.done += 1;
        let elapsed = self.start.elapsed();
        let rate = self.examples as f64 / elapsed.as_secs_f64().max(1e-9);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.3}, {rate:.0} examples/s", self.loss));
            bar.inc(1);
        }
        if !self.interactive && self.logged.elapsed() >= self.log_every && self.done < self.batches {
            self.logged = Instant::now();
            let left = elapsed.mul_f64((self.batches - self.done) as f64 / self.done as f64);
            eprintln!(
                "epoch {}/{}: batch {}/{}, loss {:.3}, {rate:.0} examples/s, {} elapsed, ETA {}",
                self.epoch,
                self.epochs,
                self.done,
                self.batches,
                self.loss,
                clock(elapsed),
                clock(left)
            );
        }
    }

    fn measuring_conv_layouts(&mut self, convolutions: usize) {
        if convolutions > 0 {
            self.note(&format!("timing {} in both layouts before the first step", count(convolutions)));
        }
    }

    fn contiguous_convolutions(&mut self, names: &[String]) {
        match names {
            [] => {}
            [one] => self.note(&format!("1 convolution trains contiguous, measured faster so: {one}")),
            _ => self.note(&format!(
                "{} train contiguous, measured faster so: {}",
                count(names.len()),
                names.join(", ")
            )),
        }
    }

    fn diverging(&mut self, message: &str) {
        let say = || eprintln!("warning: {message}; training goes on (--no-stop-on-divergence)");
        match &self.bar {
            Some(bar) => bar.suspend(say),
            None => say(),
        }
    }

    fn epoch_done(&mut self, history: &[EpochMetrics]) -> Result<(), RuntimeError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // The metrics first: a closed stdout stops the run at the line below, and the folder
        // then holds the metrics of every epoch its checkpoint has.
        write_outputs(&self.out, history, &self.title)?;
        if let Some(m) = history.last() {
            let test_loss = m.test_loss.map_or(String::new(), |l| format!("test loss {l:.3}, "));
            let line = match self.json {
                true => {
                    let mut record = epoch_record(m);
                    record["schema_version"] = json::SCHEMA_VERSION.into();
                    record["epochs"] = self.epochs.into();
                    record.to_string()
                }
                false => format!(
                    "epoch {}/{}: loss {:.3}, train acc {:.3}, {test_loss}test acc {:.3}, {:.0} examples/s, {} elapsed",
                    m.epoch,
                    self.epochs,
                    m.train_loss,
                    m.train_acc,
                    m.test_acc,
                    m.examples_per_sec,
                    clock(self.start.elapsed())
                ),
            };
            // The checkpoint is written: a closed stdout stops the run there, and quietly.
            writeln!(io::stdout().lock(), "{line}")
                .map_err(|source| RuntimeError::Io { context: "cannot write to stdout".into(), source })?;
        }
        Ok(())
    }
}

/// The metrics as CSV, a row per epoch; an epoch without a test loss (resumed from an older
/// checkpoint) leaves its cell empty.
fn metrics_csv(history: &[EpochMetrics]) -> String {
    let mut csv = String::from("epoch,train_loss,train_acc,test_loss,test_acc,examples_per_sec\n");
    for m in history {
        let test_loss = m.test_loss.map_or(String::new(), |l| format!("{l:.6}"));
        csv += &format!(
            "{},{:.6},{:.6},{test_loss},{:.6},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.test_acc, m.examples_per_sec
        );
    }
    csv
}

/// The metrics as JSON Lines, one object of scalars per epoch (`test_loss` is `null` where
/// unknown), which dashboards and `pandas.read_json(lines=True)` read.
fn metrics_jsonl(history: &[EpochMetrics]) -> String {
    history.iter().map(|m| format!("{}\n", epoch_record(m))).collect()
}

/// One epoch's scalars, as `metrics.jsonl` and `--format json` write them.
fn epoch_record(m: &EpochMetrics) -> serde_json::Value {
    serde_json::json!({
        "epoch": m.epoch,
        "train_loss": m.train_loss,
        "train_acc": m.train_acc,
        "test_loss": m.test_loss,
        "test_acc": m.test_acc,
        "examples_per_sec": m.examples_per_sec,
    })
}

/// Writes `metrics.csv` and `curves.svg` atomically. A metrics file that cannot be written is
/// an error (the folder is failing); a plot that cannot be drawn is only a warning.
fn write_outputs(out: &Path, history: &[EpochMetrics], title: &str) -> Result<(), RuntimeError> {
    for (name, text) in [(METRICS_FILE, metrics_csv(history)), (JSONL_FILE, metrics_jsonl(history))] {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|source| RuntimeError::Io {
            context: format!("cannot write {}", path.display()),
            source,
        })?;
    }
    let svg = out.join(PLOT_FILE);
    match plot::curves(history, title) {
        Ok(text) => write_atomic(&svg, text.as_bytes()).map_err(|source| RuntimeError::Io {
            context: format!("cannot write {}", svg.display()),
            source,
        })?,
        Err(e) => eprintln!("warning: could not draw {}: {e}", svg.display()),
    }
    Ok(())
}

const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const METRICS_FILE: &str = "metrics.csv";
const JSONL_FILE: &str = "metrics.jsonl";
const PLOT_FILE: &str = "curves.svg";
/// The file whose OS lock keeps a second `nnc train` out of a run's folder.
const LOCK_FILE: &str = ".nnc-train.lock";

/// Makes the output folder ready before any work: created, writable, locked against a second
/// run (the lock lasts as long as the returned value), and rid of the temporary files of
/// writes a kill interrupted, which are removed under the lock, so never a live run's.
fn prepare_out(out: &Path) -> Result<FolderLock, String> {
    if out.exists() && !out.is_dir() {
        return Err(format!("the output folder {} is a file", out.display()));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let lock = lock_folder(out, LOCK_FILE).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => format!(
            "another `nnc train` is running in {} (it holds {})\nhelp: wait for it to end, or choose another folder with --out DIR",
            out.display(),
            out.join(LOCK_FILE).display()
        ),
        _ => format!("cannot write to the output folder {}: {e}", out.display()),
    })?;
    check_writable(out).map_err(|e| format!("cannot write to the output folder {}: {e}", out.display()))?;
    for name in [CHECKPOINT_FILE, METRICS_FILE, JSONL_FILE, PLOT_FILE] {
        let removed = remove_stray_temporaries(&out.join(name))
            .map_err(|e| format!("cannot clean the output folder {}: {e}", out.display()))?;
        for path in removed {
            eprintln!("note: removed {}, left by a write that was killed", path.display());
        }
    }
    Ok(lock)
}

/// The optimiser `nnc train`'s options ask for. An option the optimiser chosen has no use for
/// is refused rather than dropped: a run asked for momentum would train without it. (`main`
/// asks first, so that the mistake is said before the memory check.)
pub(crate) fn optimizer(args: &TrainArgs) -> Result<Optimizer, &'static str> {
    match args.optimizer {
        OptimizerChoice::Sgd => Ok(Optimizer::Sgd { momentum: args.momentum, weight_decay: args.weight_decay }),
        OptimizerChoice::Adam if args.momentum != 0.0 => Err(
            "--momentum is SGD's; Adam keeps its own moments (betas 0.9 and 0.999)\nhelp: drop --momentum, or train with --optimizer sgd",
        ),
        OptimizerChoice::Adam => Ok(Optimizer::Adam { weight_decay: args.weight_decay }),
    }
}

pub fn train(args: &TrainArgs, graph: Graph) -> io::Result<Outcome> {
    let device = match device(&args.model) {
        Ok(d) => d,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(threads) = args.threads {
        tch::set_num_threads(crate::args::threads(threads));
    }
    let out = args.out.clone().unwrap_or_else(|| Path::new("runs").join(&graph.name));
    let checkpoint = out.join(CHECKPOINT_FILE);
    // Everything that can be checked is checked before the first epoch, so that a mistake
    // costs seconds, not an epoch: the settings, the data, the folder, then the checkpoint.
    // The data come before the folder so that a run refused for its data creates nothing.
    let optimizer = match optimizer(args) {
        Ok(optimizer) => optimizer,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let config = TrainConfig {
        epochs: args.epochs as usize,
        batch: args.batch,
        lr: args.lr,
        optimizer,
        seed: args.seed,
        resize: None,
        device,
        checkpoint: Some(checkpoint.clone()),
        stop_on_divergence: args.stops_on_divergence(),
        layout: match args.channels_last {
            true => Layout::ChannelsLast,
            false => Layout::for_graph(&graph),
        },
        // `--channels-last` asks for every layer so, as PyTorch's channels-last route runs.
        measure_conv_layouts: !args.channels_last,
    };
    let precision = precision(args.precision);
    if let Err(e) = config.validate() {
        return fail(e, Outcome::UsageError);
    }
    if args.resume && !out.is_dir() {
        return fail(
            format!(
                "nothing to resume: there is no folder {}\nhelp: drop --resume to start a new run there",
                out.display()
            ),
            Outcome::UsageError,
        );
    }
    let (train, test) = match load_data(&args.data, classes_of(&graph)) {
        Ok(d) => d,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let resize = match geometry(&graph, &train) {
        Ok((resize, _)) => resize,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    // Before the output folder is made: a batch size no epoch could finish is the command's
    // mistake, and leaves nothing behind.
    if let Err(e) = nnc_runtime::train::check_batch_norm_batches(&graph, train.len(), args.batch) {
        return fail(e, Outcome::UsageError);
    }
    let _lock = match prepare_out(&out) {
        Ok(lock) => lock,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    // Checked under the lock, so that a run that just ended in this folder is seen.
    if checkpoint.exists() && !args.resume {
        return fail(
            format!("{} already holds a checkpoint\nhelp: pass --resume to continue it, or --out DIR for a new run", out.display()),
            Outcome::UsageError,
        );
    }
    if args.resume && !checkpoint.exists() {
        return fail(
            format!(
                "nothing to resume: {} holds no {CHECKPOINT_FILE}\nhelp: drop --resume to start a new run there",
                out.display()
            ),
            Outcome::UsageError,
        );
    }
    tch::manual_seed(args.seed);
    let mut vs = nn::VarStore::new(device);
    let mut model = match Model::try_new(&vs.root(), graph, init(args.init)) {
        Ok(model) => model,
        Err(e) => return fail(e, Outcome::ModelError),
    };
    // fp32 master weights either way: bf16 is libtorch's autocast around each forward.
    model.set_precision(precision);
    let layout = config.layout;
    let title = model.graph().name.clone();
    // What the run says besides its epochs: on stdout, or on stderr where stdout is JSON.
    let json = args.format == Format::Json;
    let say = |text: String| -> io::Result<()> {
        match json {
            true => writeln!(io::stderr().lock(), "{text}"),
            false => writeln!(io::stdout().lock(), "{text}"),
        }
    };
    let mut trainer = Trainer::new(&model, &mut vs, TrainConfig { resize, ..config });
    if args.resume {
        match trainer.resume(&checkpoint) {
            Err(e) => return fail(e, Outcome::ModelError),
            Ok(Resumed::Restarted) => say(format!(
                "note: {} holds weights but no training history (nnc.metrics); training restarts at epoch 1 from those weights, with a fresh optimiser",
                checkpoint.display()
            ))?,
            Ok(Resumed::After { epochs: done, .. }) if done > args.epochs as usize => {
                return fail(
                    format!(
                        "the checkpoint in {} has trained {done} epochs already, more than --epochs {}\nhelp: pass --epochs {} or more to train further",
                        out.display(),
                        args.epochs,
                        done + 1
                    ),
                    Outcome::UsageError,
                )
            }
            Ok(Resumed::After { epochs: done, .. }) if done == args.epochs as usize => {
                say(format!(
                    "nothing to do: the checkpoint in {} has finished all {done} epochs\nhelp: pass --epochs {} or more to train further",
                    out.display(),
                    done + 1
                ))?;
                if let Err(e) = write_outputs(&out, &trainer.history, &title) {
                    return fail(e, Outcome::ModelError);
                }
                return Ok(Outcome::Ok);
            }
            Ok(Resumed::After { epochs: done, fresh_state }) => {
                say(format!("resuming after epoch {done} from {}", checkpoint.display()))?;
                if let Some((theirs, ours)) = &trainer.changed_parameters {
                    say(format!("note: the checkpoint was trained with the parameters {theirs}; this run has {ours}"))?;
                }
                if fresh_state {
                    say("note: the checkpoint holds no state for this optimiser (it was trained without momentum or Adam), so that state starts afresh".to_string())?;
                }
            }
        }
    }
    let resized = resize.map_or(String::new(), |s| format!(", resized to {s}×{s}"));
    say(format!(
        "training {title} on {} examples ({} test){resized}, {device:?}, {} threads{}{}",
        train.len(),
        test.len(),
        tch::get_num_threads(),
        precision_note(precision),
        match (args.channels_last, layout) {
            (true, _) => ", channels-last (--channels-last)",
            (false, Layout::ChannelsLast) => ", channels-last (chosen for this network)",
            (false, Layout::Contiguous) => "",
        }
    ))?;
    let log_every = Duration::from_secs(args.log_every);
    let mut progress = Progress::new(args.epochs as usize, log_every, json, out.clone(), title);
    let result = trainer.run(&train, &test, &mut progress);
    if let Some(bar) = progress.bar.take() {
        bar.abandon();
    }
    match result {
        Ok(()) => {
            say(format!(
                "checkpoint: {}\nmetrics:    {} and {}\nplot:       {}",
                checkpoint.display(),
                out.join(METRICS_FILE).display(),
                out.join(JSONL_FILE).display(),
                out.join(PLOT_FILE).display()
            ))?;
            Ok(Outcome::Ok)
        }
        // Stdout was closed after a checkpoint (`nnc train ... | head`): quietly, as elsewhere.
        Err(RuntimeError::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => Err(source),
        Err(RuntimeError::Diverged(why)) => {
            let kept = match trainer.checkpointed_epoch() {
                Some(epoch) => format!(
                    "the checkpoint of epoch {epoch}, the last good one, is kept in {}\nhelp: continue it with --resume and a lower --lr",
                    checkpoint.display()
                ),
                None => "no epoch finished, so no checkpoint was written\nhelp: try a lower --lr".to_string(),
            };
            fail(format!("training stopped: {why}\n{kept}"), Outcome::ModelError)
        }
        Err(e) => fail(e, Outcome::ModelError),
    }
}

/// Builds the model and loads its weights: of another floating-point precision only with
/// `--cast`, and with a warning for values that are not finite, whose predictions mean nothing.
fn load_model(
    model_args: &ModelArgs,
    weights_path: &Path,
    cast: bool,
    precision: Precision,
    graph: Graph,
) -> Result<(Model, nn::VarStore, Device), Outcome> {
    let device = device(model_args)?;
    let mut vs = nn::VarStore::new(device);
    let mut model = Model::try_new(&vs.root(), graph, Init::PyTorch).map_err(|e| {
        eprintln!("error: {e}");
        Outcome::ModelError
    })?;
    model.set_precision(precision);
    let options = LoadOptions { cast, allow_non_finite: true, cast_hint: Some("--cast") };
    let loaded = match weights::load_with(&mut vs, weights_path, &options) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(Outcome::ModelError);
        }
    };
    if let Some((_, dtype)) = loaded.cast.first() {
        eprintln!(
            "note: {} tensors of {} converted to F32 (--cast), the first from {dtype:?}",
            loaded.cast.len(),
            weights_path.display()
        );
    }
    if !loaded.non_finite.is_empty() {
        let list: Vec<String> = loaded.non_finite.iter().map(|b| format!("  {b}")).collect();
        eprintln!(
            "warning: the weights in {} are not finite, so the model's outputs mean nothing:\n{}",
            weights_path.display(),
            list.join("\n")
        );
    }
    Ok((model, vs, device))
}

/// `nnc export-weights`: the model's tensors from a checkpoint, loaded (so checked strictly
/// against the network) and written alone, with the network's provenance as metadata, so that
/// `load_state_dict(load_file(...))` takes the file as it is.
pub fn export_weights(args: &ExportWeightsArgs, graph: Graph) -> io::Result<Outcome> {
    let same = match (args.weights.canonicalize(), args.output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return fail(
            format!(
                "--output {} is the checkpoint itself, whose optimiser state and history would be lost\nhelp: write the weights to another file",
                args.output.display()
            ),
            Outcome::UsageError,
        );
    }
    let (model, vs, _) = match load_model(&args.model, &args.weights, args.cast, Precision::Fp32, graph) {
        Ok(m) => m,
        Err(outcome) => return Ok(outcome),
    };
    let mut metadata = weights::provenance(model.graph());
    // The epoch of the checkpoint the weights come from, when it says.
    if let Some(epoch) = weights::read_metadata(&args.weights).ok().and_then(|m| m.get("epoch").cloned()) {
        metadata.insert("epoch".to_string(), epoch);
    }
    match weights::save_with(&vs, &metadata, &args.output) {
        Ok(()) => {
            writeln!(
                io::stdout().lock(),
                "wrote the {} tensors of {} to {}",
                vs.variables().len(),
                model.graph().name,
                args.output.display()
            )?;
            Ok(Outcome::Ok)
        }
        Err(e) => {
            let outcome = write_failed(&e);
            fail(e, outcome)
        }
    }
}

pub fn eval(args: &EvalArgs, graph: Graph) -> io::Result<Outcome> {
    // Only the test set: a broken training file is no reason to refuse an evaluation.
    let test = match data_dir(&args.data)
        .and_then(|dir| split(&dir, "t10k", "test"))
        .and_then(|s| read_split(&s, classes_of(&graph)))
    {
        Ok(d) => d,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let resize = match geometry(&graph, &test) {
        Ok((resize, _)) => resize,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let (model, _vs, device) =
        match load_model(&args.model, &args.weights, args.cast, precision(args.precision), graph) {
            Ok(m) => m,
            Err(outcome) => return Ok(outcome),
        };
    // Each convolution in the layout measured faster at the batch the test set runs at.
    let plan = match Inference::measured(&model, args.batch.min(test.len() as i64).max(1)) {
        Ok(plan) => plan,
        Err(e) => return fail(e, Outcome::ModelError),
    };
    match nnc_runtime::train::evaluate_with(|x| plan.try_forward(x), &test, args.batch, resize, device) {
        Ok(tested) => {
            let mut out = io::stdout().lock();
            match args.format {
                Format::Json => {
                    let document = serde_json::json!({
                        "schema_version": json::SCHEMA_VERSION,
                        "network": model.graph().name,
                        "examples": test.len(),
                        "accuracy": tested.accuracy,
                        "loss": tested.loss,
                        "precision": model.precision().name(),
                    });
                    write_json(&mut out, &document)?;
                }
                Format::Text => writeln!(
                    out,
                    "test accuracy {:.4} on {} examples, test loss {:.4}{}",
                    tested.accuracy,
                    test.len(),
                    tested.loss,
                    precision_note(model.precision())
                )?,
            }
            Ok(Outcome::Ok)
        }
        Err(e) => fail(e, Outcome::ModelError),
    }
}

pub fn predict(args: &PredictArgs, graph: Graph) -> io::Result<Outcome> {
    let classes = classes_of(&graph);
    let names: Vec<String> = if classes == FASHION_MNIST_CLASSES.len() {
        FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|c| format!("class {c}")).collect()
    };
    let (model, _vs, device) =
        match load_model(&args.model, &args.weights, args.cast, precision(args.precision), graph) {
            Ok(m) => m,
            Err(outcome) => return Ok(outcome),
        };
    let plan = match Inference::new(&model, Layout::for_graph(model.graph())) {
        Ok(plan) => plan,
        Err(e) => return fail(e, Outcome::ModelError),
    };
    let mut out = io::stdout().lock();
    for path in &args.images {
        let read = if data::is_picture(path) { data::read_picture(path) } else { data::read_images(path) };
        let images = match read {
            Ok(t) => t,
            Err(e) => return fail(e, Outcome::UsageError),
        };
        let n = (images.size()[0]).min(i64::from(args.count));
        let dataset = Dataset {
            labels: nnc_runtime::tch::Tensor::zeros([n], (Kind::Int64, nnc_runtime::tch::Device::Cpu)),
            images: images.narrow(0, 0, n),
        };
        let resize = match geometry(model.graph(), &dataset) {
            Ok((resize, _)) => resize,
            Err(e) => return fail(e, Outcome::UsageError),
        };
        let mut index = 0;
        for batch in data::Batches::new(&dataset, 256, false, resize, device) {
            let x = match batch {
                Ok((x, _)) => x,
                Err(e) => return fail(e, Outcome::ModelError),
            };
            let probs = match tch::no_grad(|| plan.try_forward(&x)) {
                Ok(logits) => logits.softmax(-1, Kind::Float),
                Err(e) => return fail(e, Outcome::ModelError),
            };
            for row in 0..probs.size()[0] {
                let p = probs.get(row);
                let class = p.argmax(0, false).int64_value(&[]) as usize;
                writeln!(
                    out,
                    "{}[{index}]: {} ({:.1}%)",
                    path.display(),
                    names[class],
                    100.0 * p.double_value(&[class as i64])
                )?;
                index += 1;
            }
        }
    }
    Ok(Outcome::Ok)
}
