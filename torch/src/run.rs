//! `nnc run` and `nnc bench`: a model on a random batch, its shapes and its throughput.

use std::io::{self, Write};
use std::time::Instant;

use nnc_cli::{BenchArgs, Outcome, RunArgs};
use nnc_compiler::Graph;
use nnc_runtime::tch::{self, nn, nn::OptimizerConfig, Device, Kind, Tensor};
use nnc_runtime::{weights, Init, Model};

use crate::args::{device, init};

/// A random input batch of the model's declared shape.
fn random_input(graph: &Graph, batch: i64, device: Device) -> Tensor {
    Tensor::randn(graph.node(graph.input).shape.sizes(batch).as_slice(), (Kind::Float, device))
}

pub fn run(args: &RunArgs, graph: Graph) -> io::Result<Outcome> {
    let device = match device(&args.model) {
        Ok(d) => d,
        Err(outcome) => return Ok(outcome),
    };
    tch::manual_seed(args.seed);
    let mut vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), graph, init(args.init));
    if let Some(path) = &args.weights {
        if let Err(e) = weights::load(&mut vs, path) {
            eprintln!("error: {e}");
            return Ok(Outcome::ModelError);
        }
    }
    let graph = model.graph();
    let x = random_input(graph, args.batch, device);
    let outputs = match tch::no_grad(|| model.forward_all(&x, args.train)) {
        Ok(outputs) => outputs,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Outcome::ModelError);
        }
    };
    let mut out = io::stdout().lock();
    let mode = if args.train { "training" } else { "evaluation" };
    writeln!(out, "network {} on {device:?}, batch {}, {mode} mode\n", graph.name, args.batch)?;
    let rows: Vec<[String; 4]> = graph
        .nodes
        .iter()
        .zip(&outputs)
        .map(|(node, t)| {
            let inferred = node.shape.sizes(args.batch);
            let ok = if t.size() == inferred { "ok" } else { "MISMATCH" };
            [node.name.clone(), node.shape.to_string(), format!("{:?}", t.size()), ok.to_string()]
        })
        .collect();
    let header = ["layer".to_string(), "inferred".into(), "runtime".into(), "".into()];
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    let mismatches = rows.iter().filter(|r| r[3] != "ok").count();
    let output = &outputs[graph.output.0];
    writeln!(out)?;
    if mismatches == 0 {
        writeln!(
            out,
            "all {} layers have their inferred shapes; output {:?}",
            rows.len() - 1,
            output.size()
        )?;
    } else {
        writeln!(out, "{mismatches} layers differ from their inferred shapes")?;
    }
    let first: Vec<f64> =
        Vec::<f64>::try_from(output.get(0).flatten(0, -1).to_kind(Kind::Double)).unwrap_or_default();
    let shown: Vec<String> = first.iter().take(10).map(|v| format!("{v:.4}")).collect();
    writeln!(out, "first example: [{}{}]", shown.join(", "), if first.len() > 10 { ", …" } else { "" })?;
    if let Some(path) = &args.save_weights {
        if let Err(e) = weights::save(&vs, path) {
            eprintln!("error: {e}");
            return Ok(Outcome::ModelError);
        }
        writeln!(out, "saved the weights to {}", path.display())?;
    }
    Ok(if mismatches == 0 { Outcome::Ok } else { Outcome::ModelError })
}

/// Median and spread of examples per second over timed batches.
struct Throughput {
    median: f64,
    min: f64,
    max: f64,
}

fn measure(warmup: usize, runs: u32, batch: i64, device: Device, mut step: impl FnMut()) -> Throughput {
    let sync = || {
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
    };
    for _ in 0..warmup {
        step();
    }
    sync();
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            step();
            sync();
            batch as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    Throughput { median: rates[rates.len() / 2], min: rates[0], max: rates[rates.len() - 1] }
}

pub fn bench(args: &BenchArgs, graph: Graph) -> io::Result<Outcome> {
    let device = match device(&args.model) {
        Ok(d) => d,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    let graph = model.graph();
    let x = random_input(graph, args.batch, device);
    let classes = graph.node(graph.output).shape.dims.last().copied().unwrap_or(1) as i64;
    let labels = Tensor::randint(classes, [x.size()[0]], (Kind::Int64, device));
    let mut sgd = match nn::Sgd::default().build(&vs, 0.01) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Outcome::ModelError);
        }
    };
    let forward = measure(args.warmup, args.runs, args.batch, device, || {
        tch::no_grad(|| {
            let _ = model.try_forward(&x, false);
        });
    });
    let train = measure(args.warmup, args.runs, args.batch, device, || {
        if let Ok(logits) = model.try_forward(&x, true) {
            let loss = logits.cross_entropy_for_logits(&labels);
            sgd.backward_step(&loss);
        }
    });
    let mut out = io::stdout().lock();
    let threads = tch::get_num_threads();
    writeln!(
        out,
        "network {} on {device:?}, batch {}, {threads} threads, median of {} runs after {} warm-up",
        graph.name, args.batch, args.runs, args.warmup
    )?;
    for (what, t) in [("forward (eval)", forward), ("training step", train)] {
        writeln!(out, "{what:<15} {:>10.1} examples/s  (min {:.1}, max {:.1})", t.median, t.min, t.max)?;
    }
    Ok(Outcome::Ok)
}
