//! `nnc train`, `nnc eval` and `nnc predict`: progress bars, per-epoch summaries, the metrics
//! file and the plot of the curves.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use nnc_cli::{EvalArgs, ModelArgs, OptimizerChoice, Outcome, PredictArgs, TrainArgs};
use nnc_compiler::Graph;
use nnc_runtime::data::{self, Dataset, FASHION_MNIST_CLASSES};
use nnc_runtime::tch::{self, nn, Device, Kind};
use nnc_runtime::train::{EpochMetrics, Observer, Optimizer, TrainConfig, Trainer};
use nnc_runtime::{weights, write_atomic, Init, Model, RuntimeError};

use crate::args::{device, init};
use crate::plot;

fn fail(message: impl std::fmt::Display, outcome: Outcome) -> io::Result<Outcome> {
    eprintln!("error: {message}");
    Ok(outcome)
}

/// The data folder: the one given, or the first installed Fashion-MNIST.
fn data_dir(given: &Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(dir) = given {
        return Ok(dir.clone());
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

/// The input size the model expects, which the data is resized to when it differs; and the
/// number of classes it predicts.
fn geometry(graph: &Graph, data: &Dataset) -> Result<(Option<i64>, usize), String> {
    let input = &graph.node(graph.input).shape;
    let output = &graph.node(graph.output).shape;
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

fn load_data(given: &Option<PathBuf>, classes: usize) -> Result<(Dataset, Dataset), String> {
    let dir = data_dir(given)?;
    data::load_dir(&dir, classes).map_err(|e| e.to_string())
}

fn classes_of(graph: &Graph) -> usize {
    graph.node(graph.output).shape.dims.last().copied().unwrap_or(10) as usize
}

/// Draws a progress bar per epoch and prints a line when it ends.
struct Progress {
    epochs: usize,
    bar: Option<ProgressBar>,
    loss: f64,
    examples: i64,
    start: std::time::Instant,
}

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
        (self.loss, self.examples, self.start) = (0.0, 0, std::time::Instant::now());
    }

    fn batch_done(&mut self, loss: f64, examples: i64) {
        self.loss = if self.examples == 0 { loss } else { 0.9 * self.loss + 0.1 * loss };
        self.examples += examples;
        if let Some(bar) = &self.bar {
            let rate = self.examples as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {:.3}, {rate:.0} examples/s", self.loss));
            bar.inc(1);
        }
    }

    fn epoch_done(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "epoch {}/{}: loss {:.3}, train acc {:.3}, test acc {:.3}, {:.0} examples/s",
            m.epoch, self.epochs, m.train_loss, m.train_acc, m.test_acc, m.examples_per_sec
        );
    }
}

fn metrics_csv(history: &[EpochMetrics]) -> String {
    let mut csv = String::from("epoch,train_loss,train_acc,test_acc,examples_per_sec\n");
    for m in history {
        csv += &format!(
            "{},{:.6},{:.6},{:.6},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.test_acc, m.examples_per_sec
        );
    }
    csv
}

pub fn train(args: &TrainArgs, graph: Graph) -> io::Result<Outcome> {
    let device = match device(&args.model) {
        Ok(d) => d,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let (train, test) = match load_data(&args.data, classes_of(&graph)) {
        Ok(d) => d,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let resize = match geometry(&graph, &train) {
        Ok((resize, _)) => resize,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let out = args.out.clone().unwrap_or_else(|| Path::new("runs").join(&graph.name));
    let checkpoint = out.join("checkpoint.safetensors");
    if checkpoint.exists() && !args.resume {
        return fail(
            format!("{} already holds a checkpoint\nhelp: pass --resume to continue it, or --out DIR for a new run", out.display()),
            Outcome::UsageError,
        );
    }
    if args.resume && !checkpoint.exists() {
        return fail(format!("there is no checkpoint to resume in {}", out.display()), Outcome::UsageError);
    }
    std::fs::create_dir_all(&out)?;
    tch::manual_seed(args.seed);
    let mut vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), graph, init(args.init));
    let optimizer = match args.optimizer {
        OptimizerChoice::Sgd => Optimizer::Sgd { momentum: args.momentum, weight_decay: args.weight_decay },
        OptimizerChoice::Adam => Optimizer::Adam { weight_decay: args.weight_decay },
    };
    let config = TrainConfig {
        epochs: args.epochs as usize,
        batch: args.batch,
        lr: args.lr,
        optimizer,
        seed: args.seed,
        resize,
        device,
        checkpoint: Some(checkpoint.clone()),
    };
    let mut trainer = Trainer::new(&model, &mut vs, config);
    if args.resume {
        if let Err(e) = trainer.resume(&checkpoint) {
            return fail(e, Outcome::ModelError);
        }
        println!("resuming after epoch {} from {}", trainer.history.len(), checkpoint.display());
    }
    let resized = resize.map_or(String::new(), |s| format!(", resized to {s}×{s}"));
    println!(
        "training {} on {} examples ({} test){resized}, {device:?}, {} threads",
        model.graph().name,
        train.len(),
        test.len(),
        tch::get_num_threads()
    );
    let mut progress = Progress {
        epochs: args.epochs as usize,
        bar: None,
        loss: 0.0,
        examples: 0,
        start: std::time::Instant::now(),
    };
    let result = trainer.run(&train, &test, &mut progress);
    if let Some(bar) = progress.bar.take() {
        bar.abandon();
    }
    let history = trainer.history.clone();
    write_atomic(&out.join("metrics.csv"), metrics_csv(&history).as_bytes())?;
    let svg = out.join("curves.svg");
    if let Err(e) = plot::curves(&history, &model.graph().name, &svg) {
        eprintln!("warning: could not draw {}: {e}", svg.display());
    }
    match result {
        Ok(()) => {
            println!(
                "checkpoint: {}\nmetrics:    {}\nplot:       {}",
                checkpoint.display(),
                out.join("metrics.csv").display(),
                svg.display()
            );
            Ok(Outcome::Ok)
        }
        Err(RuntimeError::Diverged(why)) => {
            let kept = match history.last() {
                Some(m) => format!("the checkpoint of epoch {} is kept in {}", m.epoch, checkpoint.display()),
                None => "no epoch finished, so there is no checkpoint".to_string(),
            };
            fail(format!("training stopped: {why}\n{kept}"), Outcome::ModelError)
        }
        Err(e) => fail(e, Outcome::ModelError),
    }
}

fn load_model(
    model_args: &ModelArgs,
    weights_path: &Path,
    graph: Graph,
) -> Result<(Model, nn::VarStore, Device), Outcome> {
    let device = device(model_args)?;
    let mut vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    if let Err(e) = weights::load(&mut vs, weights_path) {
        eprintln!("error: {e}");
        return Err(Outcome::ModelError);
    }
    Ok((model, vs, device))
}

pub fn eval(args: &EvalArgs, graph: Graph) -> io::Result<Outcome> {
    let (_, test) = match load_data(&args.data, classes_of(&graph)) {
        Ok(d) => d,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let resize = match geometry(&graph, &test) {
        Ok((resize, _)) => resize,
        Err(e) => return fail(e, Outcome::UsageError),
    };
    let (model, _vs, device) = match load_model(&args.model, &args.weights, graph) {
        Ok(m) => m,
        Err(outcome) => return Ok(outcome),
    };
    match nnc_runtime::train::evaluate(&model, &test, args.batch, resize, device) {
        Ok(acc) => {
            println!("test accuracy {acc:.4} on {} examples", test.len());
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
    let (model, _vs, device) = match load_model(&args.model, &args.weights, graph) {
        Ok(m) => m,
        Err(outcome) => return Ok(outcome),
    };
    let mut out = io::stdout().lock();
    for path in &args.images {
        let read = if data::is_picture(path) { data::read_picture(path) } else { data::read_images(path) };
        let images = match read {
            Ok(t) => t,
            Err(e) => return fail(e, Outcome::UsageError),
        };
        let n = (images.size()[0]).min(args.count as i64);
        let dataset = Dataset {
            labels: nnc_runtime::tch::Tensor::zeros([n], (Kind::Int64, nnc_runtime::tch::Device::Cpu)),
            images: images.narrow(0, 0, n),
        };
        let resize = match geometry(model.graph(), &dataset) {
            Ok((resize, _)) => resize,
            Err(e) => return fail(e, Outcome::UsageError),
        };
        let mut index = 0;
        for (x, _) in data::Batches::new(&dataset, 256, false, resize, device) {
            let probs = match tch::no_grad(|| model.try_forward(&x, false)) {
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
