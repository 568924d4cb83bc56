//! `nnc run` and `nnc bench`: a model on a random batch or given inputs, its shapes and
//! outputs, and its throughput.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::time::Instant;

use nnc_cli::{write_json, BenchArgs, Format, Outcome, RunArgs, MAX_RUNS};
use nnc_compiler::back::json;
use nnc_compiler::ir::DType;
use nnc_compiler::Graph;
use nnc_runtime::inference::channels_last;
use nnc_runtime::tch::{self, nn, Device, Kind, Tensor};
use nnc_runtime::train::{channels_last_weights, cross_entropy, Optim, Optimizer};
use nnc_runtime::{conv_layout, parity, weights, Inference, Init, LayerError, Layout, Model, RuntimeError};

use crate::args::{device, init, precision, precision_note};

/// A random batch for each of the model's inputs, of its declared shape and element type:
/// standard normal floats; ids in `0..n`, where `n` is the smallest `num_embeddings` of the
/// embeddings that read the input (`Graph::id_bound`); random masks. Its size is the user's,
/// so an allocation libtorch refuses is an error of the input.
fn random_inputs(graph: &Graph, batch: i64, device: Device) -> Result<Vec<Tensor>, RuntimeError> {
    graph
        .inputs
        .iter()
        .map(|&id| {
            let input = graph.node(id);
            let sizes = input.shape.sizes(batch);
            let random = match input.shape.dtype {
                DType::Float => Tensor::f_randn(sizes.as_slice(), (Kind::Float, device)),
                DType::Int => {
                    Tensor::f_randint(graph.id_bound(id) as i64, sizes.as_slice(), (Kind::Int64, device))
                }
                DType::Bool => {
                    Tensor::f_rand(sizes.as_slice(), (Kind::Float, device)).and_then(|t| t.f_lt(0.5))
                }
            };
            random.map_err(|e| {
                let during = format!("creating a random batch {sizes:?}");
                let help = "try a smaller batch or input size";
                RuntimeError::Layer(Box::new(LayerError::new(&input.name, &input.op, during, &e, help)))
            })
        })
        .collect()
}

/// The inputs of `--input`: the file's tensor for each of the model's inputs, by the input's
/// name (`input` for an unnamed one), or its one tensor for a model of one input. Their shapes
/// are the model's to check, as for any forward; a float input must be F32, the weights' type
/// (numpy's F64 would otherwise fail in the first layer, or pass a layer without weights).
fn given_inputs(graph: &Graph, path: &Path, device: Device) -> Result<Vec<Tensor>, RuntimeError> {
    let mut file: BTreeMap<String, Tensor> = weights::read(path)?.into_iter().collect();
    let names: Vec<&str> = graph.inputs.iter().map(|&id| graph.node(id).name.as_str()).collect();
    if let ([_], 1) = (names.as_slice(), file.len()) {
        let name = names[0].to_string();
        file = file.into_values().map(|t| (name.clone(), t)).collect();
    }
    for (name, t) in &file {
        if t.is_floating_point() && t.kind() != Kind::Float {
            return Err(RuntimeError::Config(format!(
                "the input `{name}` in {} holds {:?} values, where the model takes Float (F32) ones: save it as float32",
                path.display(),
                t.kind()
            )));
        }
    }
    let missing: Vec<String> =
        names.iter().filter(|n| !file.contains_key(**n)).map(|n| format!("`{n}`")).collect();
    let unexpected: Vec<String> =
        file.keys().filter(|k| !names.contains(&k.as_str())).map(|k| format!("`{k}`")).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("it has no {}", missing.join(", ")));
        }
        if !unexpected.is_empty() {
            problems.push(format!("it has {}, which the network does not take", unexpected.join(", ")));
        }
        let wanted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        return Err(RuntimeError::Config(format!(
            "the inputs in {} do not fit the network's ({}): {}",
            path.display(),
            wanted.join(", "),
            problems.join("; ")
        )));
    }
    Ok(names.iter().filter_map(|n| file.remove(*n)).map(|t| t.to_device(device)).collect())
}

fn model_error(e: impl std::fmt::Display) -> io::Result<Outcome> {
    eprintln!("error: {e}");
    Ok(Outcome::ModelError)
}

pub fn run(args: &RunArgs, graph: Graph) -> io::Result<Outcome> {
    let device = match device(&args.model) {
        Ok(d) => d,
        Err(outcome) => return Ok(outcome),
    };
    tch::manual_seed(args.seed);
    let mut vs = nn::VarStore::new(device);
    let mut model = match Model::try_new(&vs.root(), graph, init(args.init)) {
        Ok(model) => model,
        Err(e) => return model_error(e),
    };
    let precision = precision(args.precision);
    model.set_precision(precision);
    if let Some(path) = &args.weights {
        if let Err(e) = weights::load(&mut vs, path) {
            return model_error(e);
        }
    }
    let graph = model.graph();
    let inputs = match &args.input {
        Some(path) => given_inputs(graph, path, device),
        None => random_inputs(graph, args.batch, device),
    };
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err(e) => return model_error(e),
    };
    // Given inputs have their own batch, which the forward checks they share; the memory check
    // before the command ran at `--batch`, so theirs is checked here.
    let batch = inputs.first().and_then(|x| x.size().first().copied()).unwrap_or(args.batch);
    if args.input.is_some() {
        if let Err(outcome) = crate::memory::check_run(graph, batch, device) {
            return Ok(outcome);
        }
    }
    let xs: Vec<&Tensor> = inputs.iter().collect();
    let outputs = match tch::no_grad(|| model.forward_all_inputs(&xs, args.train)) {
        Ok(outputs) => outputs,
        Err(e) => return model_error(e),
    };
    if let Some(path) = &args.save_outputs {
        let named: Vec<(String, Tensor)> =
            graph.outputs.iter().map(|o| (o.name.clone(), outputs[o.node.0].shallow_clone())).collect();
        if let Err(e) = weights::write(&named, &BTreeMap::new(), path) {
            let outcome = crate::training::write_failed(&e);
            eprintln!("error: {e}");
            return Ok(outcome);
        }
    }
    // In evaluation mode, the inference plan `eval` and `bench` run, its convolutions' layouts
    // measured at this batch as theirs are, on the same batch: its description and how far its
    // outputs are from the interpreter's, which the table's forward computed.
    // A plan that cannot be made is reported after the shapes, which are what `run` checks.
    let plain: Vec<&Tensor> = graph.outputs_in(false).map(|o| &outputs[o.node.0]).collect();
    let (plan, plan_failure) = match (!args.train).then(|| check_plan(&model, &xs, &plain)) {
        Some(Ok(checked)) => (Some(checked), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    if let Some(path) = &args.save_weights {
        if let Err(e) = weights::save_with(&vs, &weights::provenance(model.graph()), path) {
            let outcome = crate::training::write_failed(&e);
            eprintln!("error: {e}");
            return Ok(outcome);
        }
    }
    let mut out = io::stdout().lock();
    let mode = if args.train { "training" } else { "evaluation" };
    if args.format == Format::Json {
        let layers: Vec<serde_json::Value> = graph
            .nodes
            .iter()
            .zip(&outputs)
            .map(|(node, t)| {
                let inferred = node.shape.sizes(batch);
                serde_json::json!({ "name": node.name, "inferred": inferred, "runtime": t.size(), "ok": t.size() == inferred })
            })
            .collect();
        let mismatches = layers.iter().filter(|l| l["ok"] == false).count();
        let results: Vec<serde_json::Value> = graph
            .outputs
            .iter()
            .map(|o| {
                let t = &outputs[o.node.0];
                serde_json::json!({ "name": o.name, "shape": t.size(), "training_only": o.training_only, "first_example": first_values(t) })
            })
            .collect();
        let mut document = serde_json::json!({
            "schema_version": json::SCHEMA_VERSION,
            "network": graph.name,
            "device": format!("{device:?}"),
            "batch": batch,
            "mode": mode,
            "precision": precision.name(),
            "layers": layers,
            "mismatches": mismatches,
            "outputs": results,
        });
        if let Some((description, worst)) = &plan {
            document["inference_plan"] =
                serde_json::json!({ "description": description, "relative_error": worst });
        }
        if let Some(path) = &args.save_weights {
            document["saved_weights"] = serde_json::json!(path.display().to_string());
        }
        if let Some(path) = &args.save_outputs {
            document["saved_outputs"] = serde_json::json!(path.display().to_string());
        }
        write_json(&mut out, &document)?;
        if let Some(e) = plan_failure {
            return model_error(e);
        }
        return Ok(if mismatches == 0 { Outcome::Ok } else { Outcome::ModelError });
    }
    writeln!(
        out,
        "network {} on {device:?}{}, batch {}, {mode} mode\n",
        graph.name,
        precision_note(precision),
        batch
    )?;
    let rows: Vec<[String; 4]> = graph
        .nodes
        .iter()
        .zip(&outputs)
        .map(|(node, t)| {
            let inferred = node.shape.sizes(batch);
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
    let main = &outputs[graph.output().0];
    writeln!(out)?;
    if mismatches == 0 {
        writeln!(
            out,
            "all {} layers have their inferred shapes; output {:?}",
            rows.len() - graph.inputs.len(),
            main.size()
        )?;
    } else {
        writeln!(out, "{mismatches} layers differ from their inferred shapes")?;
    }
    for output in &graph.outputs {
        let tensor = &outputs[output.node.0];
        let shown: Vec<String> = first_values(tensor).iter().map(|v| format!("{v:.4}")).collect();
        let more = tensor.get(0).numel() > shown.len();
        let values = format!("[{}{}]", shown.join(", "), if more { ", …" } else { "" });
        match graph.outputs.len() {
            1 => writeln!(out, "first example: {values}")?,
            _ if output.training_only && !args.train => writeln!(
                out,
                "output `{}` {:?}, an output of training mode only (computed here to check it): {values}",
                output.name,
                tensor.size()
            )?,
            _ => writeln!(out, "output `{}` {:?}, first example: {values}", output.name, tensor.size())?,
        }
    }
    if let Some((description, worst)) = &plan {
        writeln!(
            out,
            "inference plan ({description}): outputs within {worst:.1e} relative of the interpreter's"
        )?;
    }
    if let Some(path) = &args.save_weights {
        writeln!(out, "saved the weights to {}", path.display())?;
    }
    if let Some(path) = &args.save_outputs {
        writeln!(out, "saved the outputs to {}", path.display())?;
    }
    if let Some(e) = plan_failure {
        return model_error(e);
    }
    Ok(if mismatches == 0 { Outcome::Ok } else { Outcome::ModelError })
}

/// The inference plan of `model`, its convolutions' layouts measured at the batch of `xs`, run
/// on `xs`: its description, and the largest relative difference of its outputs from `plain`,
/// the interpreter's evaluation-mode outputs on `xs`, NaN where an output is not finite (a NaN
/// is never taken for agreement).
fn check_plan(model: &Model, xs: &[&Tensor], plain: &[&Tensor]) -> Result<(String, f64), RuntimeError> {
    let batch = xs.first().map_or(1, |x| x.size()[0]);
    let plan = Inference::measured(model, batch)?;
    let fast = tch::no_grad(|| plan.try_forward_outputs_inputs(xs))?;
    let worst = plain.iter().zip(&fast).map(|(a, b)| parity::relative(b, a)).fold(0.0, |worst: f64, e| {
        if worst.is_nan() || e.is_nan() {
            f64::NAN
        } else {
            worst.max(e)
        }
    });
    Ok((plan.describe(), worst))
}

/// The first example's first ten values of an output.
fn first_values(tensor: &Tensor) -> Vec<f64> {
    let first = Vec::<f64>::try_from(tensor.get(0).flatten(0, -1).to_kind(Kind::Double)).unwrap_or_default();
    first.into_iter().take(10).collect()
}

/// Median and spread of examples per second over timed batches.
#[derive(Clone, Copy, serde::Serialize)]
struct Throughput {
    median: f64,
    min: f64,
    max: f64,
}

/// Runs `step` `warmup` times, then `runs` times timed; the first error stops it.
fn measure(
    warmup: usize,
    runs: u32,
    batch: i64,
    device: Device,
    mut step: impl FnMut() -> Result<(), RuntimeError>,
) -> Result<Throughput, RuntimeError> {
    let sync = || {
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
    };
    for _ in 0..warmup {
        step()?;
    }
    sync();
    let mut rates = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let start = Instant::now();
        step()?;
        sync();
        rates.push(batch as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    // The mean of the middle two for an even count, as Python's `statistics.median`, which
    // bench/compare.py takes of PyTorch's batches.
    let n = rates.len();
    let median = (rates[(n - 1) / 2] + rates[n / 2]) / 2.0;
    Ok(Throughput { median, min: rates[0], max: rates[n - 1] })
}

/// One training step of plain SGD, with libtorch's fallible calls: the backward pass
/// allocates as much as the forward one.
fn train_step(model: &Model, xs: &[&Tensor], labels: &Tensor, sgd: &mut Optim) -> Result<(), RuntimeError> {
    let logits = model.try_forward_inputs(xs, true)?;
    let loss = cross_entropy(&logits, labels)?;
    sgd.zero_grad()?;
    loss.f_backward()?;
    sgd.step()
}

/// The weights of rank 4 made channels-last in place, but the convolutions measured faster
/// contiguous ([`conv_layout`]), whose names it returns, as `nnc train` lays them out; and the
/// inputs of rank 4 copied channels-last.
fn arrange_for_training(
    vs: &nn::VarStore,
    model: &Model,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Vec<String>), RuntimeError> {
    channels_last_weights(vs)?;
    let batch = inputs.first().map_or(1, |x| x.size()[0]);
    let contiguous = conv_layout::measure(model, batch, vs.device())?;
    conv_layout::arrange(model, &contiguous)?;
    let inputs = inputs
        .iter()
        .map(|x| match x.dim() == 4 && x.is_floating_point() {
            true => channels_last(x),
            false => Ok(x.shallow_clone()),
        })
        .collect::<Result<_, _>>()?;
    Ok((inputs, contiguous))
}

/// What `nnc bench` times.
#[derive(Clone, Copy)]
enum Workload {
    /// The inference plan's forward.
    Forward,
    /// The interpreter's forward, the plan's reference.
    Plain,
    /// A training step of plain SGD, in the layout `nnc train` chooses.
    Train,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Forward, Workload::Plain, Workload::Train];

    fn name(self) -> &'static str {
        match self {
            Workload::Forward => "forward",
            Workload::Plain => "plain",
            Workload::Train => "train",
        }
    }
}

/// `nnc bench --serve`: `setting` on a line, then an answer on a line to each request read from
/// standard input, until it ends. A request that is not understood is answered with an error
/// and the next one read; a workload that fails ends the command, as without `--serve`.
fn serve(
    args: &BenchArgs,
    device: Device,
    setting: serde_json::Value,
    mut step: impl FnMut(Workload) -> Result<(), RuntimeError>,
) -> io::Result<Outcome> {
    let mut out = io::stdout().lock();
    let mut answer = |value: serde_json::Value| -> io::Result<()> {
        writeln!(out, "{value}")?;
        // The harness waits for each answer before it goes on.
        out.flush()
    };
    answer(setting)?;
    let mut input = io::stdin().lock();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        line.clear();
        let read = input.by_ref().take(MAX_REQUEST).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(Outcome::Ok);
        }
        // Past the limit with more to come (a last line of exactly the limit, unended, is read).
        if !line.ends_with(b"\n") && read as u64 == MAX_REQUEST && !input.fill_buf()?.is_empty() {
            skip_line(&mut input)?;
            answer(
                serde_json::json!({ "error": format!("request {number}: longer than {MAX_REQUEST} bytes") }),
            )?;
            continue;
        }
        let request = String::from_utf8_lossy(&line);
        let (workload, runs) = match parse_request(request.trim()) {
            Ok(request) => request,
            Err(e) => {
                answer(serde_json::json!({ "error": format!("request {number}: {e}") }))?;
                continue;
            }
        };
        let t = match measure(args.warmup, runs, args.batch, device, || step(workload)) {
            Ok(t) => t,
            Err(e) => return model_error(e),
        };
        answer(serde_json::json!({
            "workload": workload.name(),
            "runs": runs,
            "median": t.median,
            "min": t.min,
            "max": t.max,
        }))?;
    }
}

/// The longest `--serve` request line read: a longer one is answered with an error, unread, so
/// that input without line ends cannot fill the memory.
const MAX_REQUEST: u64 = 256;

/// Reads past the next line end, or to the end of the input, keeping nothing.
fn skip_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => {
                input.consume(end + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                input.consume(all);
            }
        }
    }
}

/// A `--serve` request, `WORKLOAD N`: the workload, and N timed batches.
fn parse_request(request: &str) -> Result<(Workload, u32), String> {
    let mut words = request.split_whitespace();
    let (Some(name), Some(runs), None) = (words.next(), words.next(), words.next()) else {
        return Err(refused(request));
    };
    let workload = Workload::ALL.into_iter().find(|w| w.name() == name);
    let runs = runs.parse::<u32>().ok().filter(|&n| (1..=MAX_RUNS).contains(&i64::from(n)));
    workload.zip(runs).ok_or_else(|| refused(request))
}

/// Why `request` is no `--serve` request, quoting its first 80 characters.
fn refused(request: &str) -> String {
    let shown: String = request.chars().take(80).collect();
    format!(
        "`{}`: a request is `forward N`, `plain N` or `train N`, N timed batches from 1 to {MAX_RUNS}",
        shown.escape_debug()
    )
}

/// A model of `graph` for `nnc bench`, drawn from seed 0, with its tensors' store.
fn bench_model(
    graph: &Graph,
    device: Device,
    precision: nnc_runtime::Precision,
) -> Result<(nn::VarStore, Model), RuntimeError> {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let mut model = Model::try_new(&vs.root(), graph.clone(), Init::PyTorch)?;
    model.set_precision(precision);
    Ok((vs, model))
}

pub fn bench(args: &BenchArgs, graph: Graph) -> io::Result<Outcome> {
    let device = match device(&args.model) {
        Ok(d) => d,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(threads) = args.threads {
        tch::set_num_threads(crate::args::threads(threads));
    }
    let precision = precision(args.precision);
    // Two models of the same weights: the forwards', and the training step's, which lays its
    // weights out for training and changes them at every step. So the interpreter's forward
    // runs in its own layout, whichever workload ran before it (`--serve` takes them in any
    // order).
    let (_vs, model) = match bench_model(&graph, device, precision) {
        Ok(model) => model,
        Err(e) => return model_error(e),
    };
    let (train_vs, trained) = match bench_model(&graph, device, precision) {
        Ok(model) => model,
        Err(e) => return model_error(e),
    };
    let inputs = match random_inputs(&graph, args.batch, device) {
        Ok(inputs) => inputs,
        Err(e) => return model_error(e),
    };
    let xs: Vec<&Tensor> = inputs.iter().collect();
    let classes = graph.node(graph.output()).shape.dims.last().copied().unwrap_or(1) as i64;
    let labels = Tensor::randint(classes, [xs[0].size()[0]], (Kind::Int64, device));
    // `nnc train`'s optimiser, plain SGD as PyTorch's routes in bench/compare.py step.
    let mut sgd = Optim::new(&train_vs, Optimizer::Sgd { momentum: 0.0, weight_decay: 0.0 }, 0.01);
    let plan = match Inference::measured(&model, args.batch) {
        Ok(plan) => plan,
        Err(e) => return model_error(e),
    };
    // The training step in the layout `nnc train` chooses.
    let arranged = match Layout::for_graph(&graph) {
        Layout::ChannelsLast => arrange_for_training(&train_vs, &trained, &inputs),
        Layout::Contiguous => Ok((inputs.iter().map(Tensor::shallow_clone).collect(), Vec::new())),
    };
    let (arranged, contiguous) = match arranged {
        Ok(arranged) => arranged,
        Err(e) => return model_error(e),
    };
    let train_xs: Vec<&Tensor> = arranged.iter().collect();
    let mut step = |workload| match workload {
        Workload::Forward => tch::no_grad(|| plan.try_forward_inputs(&xs)).map(drop),
        Workload::Plain => tch::no_grad(|| model.try_forward_inputs(&xs, false)).map(drop),
        Workload::Train => train_step(&trained, &train_xs, &labels, &mut sgd),
    };
    let threads = tch::get_num_threads();
    let training_layout = Layout::for_graph(&graph).describe();
    let setting = serde_json::json!({
        "schema_version": json::SCHEMA_VERSION,
        "network": graph.name,
        "device": format!("{device:?}"),
        "batch": args.batch,
        "threads": threads,
        "warmup": args.warmup,
        "precision": precision.name(),
        "unit": "examples per second",
        "inference_plan": plan.describe(),
        "training_layout": training_layout,
        "contiguous_convolutions": contiguous,
    });
    if args.serve {
        return serve(args, device, setting, step);
    }
    let mut time = |workload| measure(args.warmup, args.runs, args.batch, device, || step(workload));
    // The interpreter first, then the plan, then training; the first error stops the measuring.
    let figures = (|| {
        Ok::<_, RuntimeError>((time(Workload::Plain)?, time(Workload::Forward)?, time(Workload::Train)?))
    })();
    let (plain, forward, train) = match figures {
        Ok(figures) => figures,
        Err(e) => return model_error(e),
    };
    let mut out = io::stdout().lock();
    if args.format == Format::Json {
        let mut document = setting;
        document["runs"] = args.runs.into();
        document["forward"] = serde_json::json!(forward);
        document["plain_forward"] = serde_json::json!(plain);
        document["training_step"] = serde_json::json!(train);
        write_json(&mut out, &document)?;
        return Ok(Outcome::Ok);
    }
    writeln!(
        out,
        "network {} on {device:?}{}, batch {}, {threads} threads, median of {} runs after {} warm-up",
        graph.name,
        precision_note(precision),
        args.batch,
        args.runs,
        args.warmup
    )?;
    writeln!(out, "inference plan: {}; \"plain forward\" is the interpreter", plan.describe())?;
    match contiguous.as_slice() {
        [] => writeln!(out, "training layout: {training_layout}")?,
        names => writeln!(
            out,
            "training layout: {training_layout}; contiguous, measured faster so: {}",
            names.join(", ")
        )?,
    }
    for (what, t) in [("forward (eval)", forward), ("plain forward", plain), ("training step", train)] {
        writeln!(out, "{what:<15} {:>10.1} examples/s  (min {:.1}, max {:.1})", t.median, t.min, t.max)?;
    }
    Ok(Outcome::Ok)
}
