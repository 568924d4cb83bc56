//! The command line's library: its arguments, the commands that need no libtorch (`check`,
//! `emit`, `graph`, `layers`, `explain`, `fmt`, in `fmt.rs`), and [`execute`], the one place that routes a command:
//! those run here, and the commands that run models ([`RuntimeCommand`]) go to the runtime the binary passes
//! in. `nnc` passes a hand-over that execs `nnc-torch`; `nnc-torch` (in `torch/`) runs them on
//! libtorch. With `nnc-torch`, the only crates that print; everything they show is computed
//! by the compiler and runtime libraries. `nnc` itself never links libtorch, so that
//! `nnc check` starts in about a millisecond.

pub mod allocator;
mod fmt;
mod lsp;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use nnc_compiler::back::memory::{self, Optimizer};
use nnc_compiler::back::render::{self, Style};
use nnc_compiler::back::report::{self, Report};
use nnc_compiler::back::{codegen, json};
use nnc_compiler::diagnostic::did_you_mean;
use nnc_compiler::ir::DType;
use nnc_compiler::ops::{self, ArgValue, OpSpec};
use nnc_compiler::{compile, compile_cached, Code, Compilation, Graph, Options, ParseCache, Root, Severity};

mod onnx;
mod snapshot;

#[derive(Parser)]
#[command(name = "nnc", version, about = "A declarative model compiler for neural networks")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every command. The explicit `display_order`s keep `nnc help` listing them in the order it
/// always has, across the two enums.
#[derive(Subcommand)]
pub enum Command {
    /// Parse and check models; print every layer's shape, parameters and multiply-adds.
    #[command(display_order = 0)]
    Check(CheckArgs),
    /// Print the Rust module that `model!` generates for a model, or a PyTorch module.
    #[command(display_order = 3)]
    Emit(EmitArgs),
    /// Draw a model's graph: Graphviz DOT, or SVG/PNG through Graphviz's `dot`.
    #[command(display_order = 4)]
    Graph(GraphArgs),
    /// List the built-in layers (signatures, defaults, input ranks, PyTorch equivalents) and the
    /// standard library's blocks.
    #[command(display_order = 8)]
    Layers(LayersArgs),
    /// Explain a diagnostic code (`nnc explain E0202`): what it means, a broken example and its fix.
    #[command(display_order = 9)]
    Explain(ExplainArgs),
    /// Lay `.net` files out canonically, in place (`--check`: only report the files that would change).
    #[command(display_order = 10)]
    Fmt(fmt::FmtArgs),
    /// Pin each model's shapes, parameters and multiply-adds in an insta snapshot beside it
    /// (`snapshots/MODEL.snap`); `--check` fails on a change, for CI.
    #[command(display_order = 11)]
    Snapshot(snapshot::SnapshotArgs),
    /// Serve the language server protocol on stdin and stdout, for editors: diagnostics, shapes
    /// on hover and as inlay hints, definitions, references, completion, outline, formatting.
    #[command(display_order = 12)]
    Lsp,
    /// Print the completion script of a shell (`nnc completions bash > /etc/bash_completion.d/nnc`).
    #[command(display_order = 13)]
    Completions(CompletionsArgs),
    // The commands that run models, as subcommands of their own (`nnc run`, not `nnc runtime run`).
    #[command(flatten)]
    Runtime(RuntimeCommand),
}

/// The commands that run models on libtorch; only `nnc-torch` executes them.
#[derive(Subcommand)]
pub enum RuntimeCommand {
    /// Run a model on libtorch with random input, or given (`--input`); print inferred and runtime
    /// shapes side by side, and the outputs (all of them with `--save-outputs`).
    #[command(display_order = 1)]
    Run(RunArgs),
    /// Measure forward and training-step throughput on libtorch.
    #[command(display_order = 2)]
    Bench(BenchArgs),
    /// Train a model on Fashion-MNIST (or other IDX data), as d2l's train_ch6 does.
    #[command(display_order = 5)]
    Train(TrainArgs),
    /// Test accuracy of trained weights.
    #[command(display_order = 6)]
    Eval(EvalArgs),
    /// Classify images with trained weights.
    #[command(display_order = 7)]
    Predict(PredictArgs),
    /// Write a checkpoint's weights alone: a plain `state_dict` file, checked against the model,
    /// without the optimiser's state and nnc's bookkeeping, with the network in its metadata.
    #[command(display_order = 8)]
    ExportWeights(ExportWeightsArgs),
}

impl RuntimeCommand {
    /// The model the command runs.
    pub fn model(&self) -> &ModelArgs {
        match self {
            RuntimeCommand::Run(args) => &args.model,
            RuntimeCommand::Bench(args) => &args.model,
            RuntimeCommand::Train(args) => &args.model,
            RuntimeCommand::Eval(args) => &args.model,
            RuntimeCommand::Predict(args) => &args.model,
            RuntimeCommand::ExportWeights(args) => &args.model,
        }
    }
}

#[derive(clap::Args)]
pub struct EmitArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The name of the generated type; default: the network's name in CamelCase.
    #[arg(long)]
    pub name: Option<String>,
    /// What to write: the Rust module `model!` generates, a PyTorch `nn.Module`, or an ONNX
    /// model (opset 17, in evaluation mode).
    #[arg(long, value_enum, default_value_t = Target::Rust)]
    pub target: Target,
    /// ONNX: fill the initialisers from these weights (safetensors, as `nnc train` and
    /// `nnc run --save-weights` write them); without it, they are drawn as PyTorch
    /// initialises its layers.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// ONNX: the seed of the drawn initialisers, without --weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// ONNX: write the file here (atomically) instead of to stdout, which must not be a terminal.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Write here instead of printing DOT: `.dot`, or `.svg`, `.png` or `.pdf` (drawn by Graphviz).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Draw the layers under each name of this many segments as one box (1: the top-level stages).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub depth: Option<u32>,
    /// The direction of the layout: top to bottom, or left to right (wide screens, long networks).
    #[arg(long, value_enum, default_value_t = RankDir::Tb)]
    pub rankdir: RankDir,
}

/// `nnc graph --rankdir`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RankDir {
    /// Top to bottom.
    Tb,
    /// Left to right.
    Lr,
}

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct LayersArgs {
    /// Show this layer in detail: each parameter with its kind and default; or this block of
    /// the standard library: its parameters, module and what it computes.
    pub name: Option<String>,
    /// `markdown`: the table in the README (which a test keeps equal to this output).
    #[arg(long, value_enum, default_value_t = LayersFormat::Text)]
    pub format: LayersFormat,
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The code, as diagnostics show it (`E0202`, `w0001`, `E202`); without it, every code is listed.
    pub code: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayersFormat {
    Text,
    Markdown,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Rust,
    Pytorch,
    Onnx,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder of IDX files laid out as (Fashion-)MNIST's; default: the installed Fashion-MNIST.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    /// Examples per mini-batch.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch: i64,
    /// Learning rate.
    #[arg(long, default_value_t = 0.9, value_parser = non_negative)]
    pub lr: f64,
    /// `sgd` (with `--momentum`) or `adam`.
    #[arg(long, value_enum, default_value_t = OptimizerChoice::Sgd)]
    pub optimizer: OptimizerChoice,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub momentum: f64,
    /// L2 penalty on the weights, as `torch.optim`'s `weight_decay`.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub weight_decay: f64,
    /// Seed of the initial weights, the shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// CPU threads for libtorch (its default: one per core); more than the CPUs is capped.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=MAX_THREADS))]
    pub threads: Option<i32>,
    /// Weight initialisation; d2l's train_ch6 uses Xavier.
    #[arg(long, value_enum, default_value_t = InitChoice::Xavier)]
    pub init: InitChoice,
    /// Compute in fp32, or in bf16 through libtorch's autocast (matrix products and
    /// convolutions in bf16; weights, losses and outputs in fp32), as PyTorch's autocast does.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Lay every weight and batch of rank 4 out channels-last (NHWC), on any device, as
    /// PyTorch's channels-last route does; by default nnc chooses: channels-last where wide 2-D
    /// convolutions do most of the work, but the convolutions measured faster contiguous
    /// (before the first step) stay contiguous.
    #[arg(long)]
    pub channels_last: bool,
    /// Folder for the checkpoint, metrics and plot; default: runs/NETWORK.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Where the output is no terminal (a CI log), print a progress line this often, in seconds,
    /// instead of the progress bar (0: after every batch).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub log_every: u64,
    /// Output format: text, or JSON Lines, one record per epoch on stdout
    /// (docs/schema/train.schema.json), the other messages on stderr.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop when the loss diverges (more than 100 times its first value or a uniform guess's),
    /// keeping the last good checkpoint. The default.
    #[arg(long, overrides_with = "no_stop_on_divergence")]
    pub stop_on_divergence: bool,
    /// Report a diverging loss but train on (a loss or weights that are not finite still stop).
    #[arg(long, overrides_with = "stop_on_divergence")]
    pub no_stop_on_divergence: bool,
}

impl TrainArgs {
    /// Whether a diverging loss stops the run: yes, unless `--no-stop-on-divergence` was the
    /// last of the two flags given.
    pub fn stops_on_divergence(&self) -> bool {
        !self.no_stop_on_divergence
    }
}

/// The most `--threads` accepted: far more than any machine's cores, so that a typo such as
/// 2147483647 is refused here instead of ending in libgomp running out of memory.
pub const MAX_THREADS: i64 = 1024;

/// The most timed batches `nnc bench` takes in one figure (`--runs`, or a `--serve` request):
/// it keeps each batch's time, 8 bytes, and a count past any use must not become an
/// allocation that aborts.
pub const MAX_RUNS: i64 = 1_000_000;

/// A learning rate, momentum or weight decay: a finite number of at least 0, as `torch.optim`
/// requires. NaN or infinity would make every weight NaN at the first step, and a negative
/// learning rate or weight decay climbs the loss instead of descending it.
fn non_negative(s: &str) -> Result<f64, String> {
    let value: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !value.is_finite() {
        return Err(format!("`{s}` is not a finite number"));
    }
    if value < 0.0 {
        return Err(format!("{s} is negative; it must be at least 0"));
    }
    Ok(value)
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    Sgd,
    Adam,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weights or a training checkpoint (safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// A folder of IDX files; default: the installed Fashion-MNIST.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Examples per batch of the evaluation.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch: i64,
    /// Compute in fp32, or in bf16 through libtorch's autocast (matrix products and
    /// convolutions in bf16; weights, losses and outputs in fp32), as PyTorch's autocast does.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Convert floating-point weights of another precision (F64, F16, BF16) to F32.
    #[arg(long)]
    pub cast: bool,
    /// Output format: text, or JSON (docs/schema/eval.schema.json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weights or a training checkpoint (safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// IDX image files (raw or gzipped), or PNG and JPEG pictures (turned grey and resized).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many images of each file to classify, from the first.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Compute in fp32, or in bf16 through libtorch's autocast (matrix products and
    /// convolutions in bf16; weights, losses and outputs in fp32), as PyTorch's autocast does.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Convert floating-point weights of another precision (F64, F16, BF16) to F32.
    #[arg(long)]
    pub cast: bool,
}

#[derive(clap::Args)]
pub struct ExportWeightsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The checkpoint (or weights) to export (safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The file to write (safetensors); it may not be the checkpoint itself.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Convert floating-point weights of another precision (F64, F16, BF16) to F32.
    #[arg(long)]
    pub cast: bool,
}

/// Which network: a file, its parameters and, if the file has several, the network's name.
#[derive(clap::Args)]
pub struct SourceArgs {
    /// The `.net` file.
    #[arg(value_name = "MODEL")]
    pub file: PathBuf,
    /// Set a network parameter, e.g. `--set size=96` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_override)]
    pub overrides: Vec<(String, String)>,
    /// The network, when the file defines several.
    #[arg(long)]
    pub network: Option<String>,
    #[command(flatten)]
    pub lints: LintArgs,
    /// When to colour diagnostics: `auto` (when stderr is a terminal and NO_COLOR is unset),
    /// `always`, `never`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// What to make of warnings.
#[derive(clap::Args, Clone, Default)]
pub struct LintArgs {
    /// `--deny warnings`: treat every warning as an error.
    #[arg(long, value_name = "warnings", value_parser = ["warnings"])]
    pub deny: Option<String>,
    /// Do not report warnings of this code, e.g. `--allow W0003` (repeatable).
    #[arg(long, value_name = "CODE", value_parser = parse_warning_code)]
    pub allow: Vec<Code>,
}

impl LintArgs {
    /// Compile options with these lint levels.
    fn options(&self, overrides: &[(String, String)], network: &Option<String>) -> Options {
        Options {
            overrides: overrides.to_vec(),
            network: network.clone(),
            deny_warnings: self.deny.is_some(),
            allow: self.allow.clone(),
            ..Options::default()
        }
    }
}

fn parse_warning_code(s: &str) -> Result<Code, String> {
    match Code::parse(s) {
        Some(code) if !code.as_str().starts_with('E') => Ok(code),
        Some(code) => Err(format!("`{}` is an error, which cannot be allowed", code.as_str())),
        None => Err(format!(
            "`{s}` is no warning code (they are W0001 to W{:04})",
            Code::ALL.iter().filter(|c| c.as_str().starts_with('W')).count()
        )),
    }
}

/// Which model to build, and where to run it.
#[derive(clap::Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// `cpu`, `cuda` or `cuda:N`; the default is CUDA when libtorch has it and a GPU is present.
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Examples in the random batch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..), conflicts_with = "input")]
    pub batch: i64,
    /// Run on these inputs instead of a random batch: a safetensors file of one tensor per
    /// input of the network, under the input's name (`input` for an unnamed one), or of one
    /// tensor for a network of one input.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Seed of the random input and initial weights.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// How to initialise the weights: as PyTorch's layers do, or Xavier-uniform as d2l trains.
    #[arg(long, value_enum, default_value_t = InitChoice::Pytorch)]
    pub init: InitChoice,
    /// Run in training mode (batch statistics, dropout) instead of evaluation mode.
    #[arg(long)]
    pub train: bool,
    /// Compute in fp32, or in bf16 through libtorch's autocast (matrix products and
    /// convolutions in bf16; weights, losses and outputs in fp32), as PyTorch's autocast does.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Load these weights (safetensors) instead of initialising at random.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Save the weights (safetensors) after the run.
    #[arg(long, value_name = "FILE")]
    pub save_weights: Option<PathBuf>,
    /// Save the outputs (safetensors, each under its name: `output` for the last statement's).
    #[arg(long, value_name = "FILE")]
    pub save_outputs: Option<PathBuf>,
    /// Output format: the table, or JSON (docs/schema/run.schema.json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Examples per batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch: i64,
    /// CPU threads for libtorch (its default: one per core).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=MAX_THREADS))]
    pub threads: Option<i32>,
    /// Untimed batches before measuring.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed batches; the median is reported.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_RUNS))]
    pub runs: u32,
    /// Compute in fp32, or in bf16 through libtorch's autocast (matrix products and
    /// convolutions in bf16; weights, losses and outputs in fp32), as PyTorch's autocast does.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Output format: text, or JSON (docs/schema/bench.schema.json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Measure on request, for a harness that times nnc in turns with another program on a
    /// machine whose speed drifts (bench/compare.py): after setting up, print a line of JSON,
    /// then read lines `forward N`, `plain N` or `train N` from standard input and answer each
    /// line with a line of JSON: the throughput of N timed batches after `--warmup` untimed
    /// ones, or an error for a line that is no such request
    /// (docs/schema/bench-serve.schema.json). Ends with exit 0 when the input ends; a
    /// workload that fails ends it with exit 1 and the error on stderr.
    #[arg(long, conflicts_with_all = ["runs", "format"])]
    pub serve: bool,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The `.net` files to check, folders (every `.net` file under them), or `-` for standard
    /// input (imports relative to the current folder).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print no tables: only diagnostics, and the exit code (for scripts and CI).
    #[arg(short, long)]
    pub quiet: bool,
    /// Set a network parameter, e.g. `--set size=96` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_override)]
    pub overrides: Vec<(String, String)>,
    /// Check only the network of this name.
    #[arg(long)]
    pub network: Option<String>,
    /// Collapse layers deeper than this many name segments (1 shows the top-level stages).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub depth: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also estimate the memory of training one batch of this size: torchinfo's figures, and
    /// nnc's own with gradients and optimiser state.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// The optimiser whose state the training estimate assumes (with `--batch`).
    #[arg(long, value_enum, default_value_t = CheckOptimizer::Sgd, requires = "batch")]
    pub optimizer: CheckOptimizer,
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(flatten)]
    pub lints: LintArgs,
}

/// `nnc check --optimizer`: the state each keeps per parameter decides the training estimate.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOptimizer {
    /// Plain SGD, `nnc train`'s default: no state.
    Sgd,
    /// SGD with momentum: one copy of the parameters.
    Momentum,
    /// Adam: two copies of the parameters.
    Adam,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitChoice {
    Pytorch,
    Xavier,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionChoice {
    Fp32,
    Bf16,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How to render diagnostics on stderr: in colour if asked to, or, for `auto`, if stderr is a
/// terminal and `NO_COLOR` is not set.
pub(crate) fn stderr_style(choice: ColorChoice) -> Style {
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    if color {
        Style::Color
    } else {
        Style::Plain
    }
}

/// Writes an output file atomically, never over anything but a regular file (the compiler's
/// [`nnc_compiler::output::write_atomic`]), with the path in the error.
pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> io::Result<()> {
    nnc_compiler::output::write_atomic(path, bytes).map_err(|e| match e.kind() {
        // A refusal names the path already.
        io::ErrorKind::InvalidInput => e,
        kind => io::Error::new(kind, format!("cannot write `{}`: {e}", path.display())),
    })
}

pub(crate) fn parse_override(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a parameter name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Exit codes: 0 checked, 1 model errors, 2 usage errors (as clap uses for its own).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok = 0,
    ModelError = 1,
    UsageError = 2,
}

fn check(args: &CheckArgs) -> io::Result<Outcome> {
    let options = args.lints.options(&args.overrides, &args.network);
    let style = stderr_style(args.color);
    let depth = args.depth.map(|d| d as usize);
    let mut stdout = io::stdout().lock();
    let mut outcome = Outcome::Ok;
    let mut json_files = Vec::new();
    let mut codes = Vec::new();
    let mut files = Vec::new();
    for path in &args.files {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let before = files.len();
        net_files(path, &mut files)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot list `{}`: {e}", path.display())))?;
        if files.len() == before {
            eprintln!("error: `{}` holds no .net file", path.display());
            return Ok(Outcome::UsageError);
        }
    }
    let stdin = match files.iter().any(|p| p.as_os_str() == "-") {
        true => match read_stdin()? {
            Some(text) => text,
            None => return Ok(Outcome::UsageError),
        },
        false => String::new(),
    };
    let here = std::env::current_dir().ok();
    fn root_of<'a>(path: &'a Path, stdin: &'a str, here: Option<&'a Path>) -> Root<'a> {
        match path.as_os_str() == "-" {
            true => Root::Text { name: "<stdin>", text: stdin, dir: here },
            false => Root::Path(path),
        }
    }
    // Of several files (a folder), `--network` picks the files that define that network, and
    // `--set` applies to the networks that have the parameter, the others checked at their
    // own values; either is an error only where no file has a use for it.
    let several = files.len() > 1;
    let mut without_network = 0;
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked = 0;
    // The `std` modules and imports that consecutive files share are parsed once, and a file
    // compiled again without the `--set`s its networks lack is not parsed again; the sweep
    // before each file keeps only what the file before it parsed.
    let mut parses = ParseCache::default();
    for path in &files {
        parses.sweep();
        let mut compilation = compile_cached(root_of(path, &stdin, here.as_deref()), &options, &mut parses);
        if several && compilation.network_missing {
            without_network += 1;
            continue;
        }
        if several && !compilation.unknown_overrides.is_empty() {
            for name in &compilation.unknown_overrides {
                *unknown.entry(name.clone()).or_default() += 1;
            }
            let lacked = &compilation.unknown_overrides;
            let overrides = options.overrides.iter().filter(|(n, _)| !lacked.contains(n)).cloned().collect();
            let options = Options { overrides, ..options.clone() };
            compilation = compile_cached(root_of(path, &stdin, here.as_deref()), &options, &mut parses);
        }
        let i = checked;
        checked += 1;
        let optimizer = match args.optimizer {
            CheckOptimizer::Sgd => Optimizer::Sgd,
            CheckOptimizer::Momentum => Optimizer::Momentum,
            CheckOptimizer::Adam => Optimizer::Adam,
        };
        let reports: Vec<Report> = compilation
            .graphs
            .iter()
            .map(|g| Report {
                memory: args.batch.map(|batch| memory::for_batch(g, batch, optimizer)),
                ..report::report(g, depth)
            })
            .collect();
        let file_outcome = outcome_of(&compilation);
        outcome = outcome.max(file_outcome);
        match args.format {
            Format::Json => json_files.push(serde_json::json!({
                "file": path.display().to_string(),
                "ok": file_outcome == Outcome::Ok,
                "networks": compilation.graphs.iter().zip(&reports).map(|(g, r)| json::network(g, r)).collect::<Vec<_>>(),
                "diagnostics": render::to_json(&compilation.diagnostics, &compilation.sources),
            })),
            Format::Text => {
                if i > 0 && !args.quiet {
                    writeln!(stdout)?;
                }
                for (j, r) in reports.iter().enumerate().filter(|_| !args.quiet) {
                    if j > 0 {
                        writeln!(stdout)?;
                    }
                    write!(stdout, "{}", report::render_table(r))?;
                }
                if compilation.networks_defined == 0 && compilation.diagnostics.is_empty() && !args.quiet {
                    // A library of blocks, or a file with nothing in it (emptied by mistake).
                    let defines = compilation.trees.first().and_then(Option::as_ref).map_or(0, |t| t.definitions.len());
                    let what = match defines {
                        0 => "the file defines nothing",
                        _ => "the file defines only blocks",
                    };
                    writeln!(stdout, "{}: no network to check ({what})", path.display())?;
                }
                let diags = &compilation.diagnostics;
                if !diags.is_empty() {
                    stdout.flush()?;
                    let mut stderr = io::stderr().lock();
                    write!(stderr, "{}", render::render(diags, &compilation.sources, style))?;
                    writeln!(stderr, "{}", summary(&path.display().to_string(), diags))?;
                    codes.extend(diags.iter().map(|d| d.code));
                }
            }
        }
    }
    if let Some(network) = options.network.as_ref().filter(|_| several && checked == 0) {
        eprintln!("error: no network named `{network}` in the {without_network} files given");
        outcome = Outcome::UsageError;
    }
    for name in unknown.iter().filter(|&(_, &n)| n == checked && checked > 0).map(|(name, _)| name) {
        eprintln!("error: no network in the {checked} files checked has a parameter or free size `{name}`");
        outcome = Outcome::UsageError;
    }
    if let Some(hint) = explain_hint(&codes) {
        writeln!(io::stderr().lock(), "{hint}")?;
    }
    if let Format::Json = args.format {
        // An I/O error keeps its kind, so that a closed pipe ends quietly, as elsewhere.
        let document = serde_json::json!({ "schema_version": json::SCHEMA_VERSION, "files": json_files });
        write_json(&mut stdout, &document)?;
    }
    Ok(outcome)
}

/// The `.net` files under `dir`, in order, skipping hidden entries, `target` folders and
/// symbolic links (which could loop).
pub(crate) fn net_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() && name != "target" {
            net_files(&entry.path(), out)?;
        } else if kind.is_file() && name.ends_with(".net") {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Standard input as a model's text: read boundedly (at most the limit of a model file), and
/// refused, with the reason said, if it is over it or not UTF-8 (`None`).
pub(crate) fn read_stdin() -> io::Result<Option<String>> {
    use std::io::Read;
    let limit = nnc_compiler::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    io::stdin().lock().take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        eprintln!("error: standard input is over the limit of {limit} bytes");
        return Ok(None);
    }
    match String::from_utf8(nnc_compiler::input::without_bom(bytes)) {
        Ok(text) => Ok(Some(text)),
        Err(_) => {
            eprintln!("error: standard input is not UTF-8");
            Ok(None)
        }
    }
}

/// Writes `value` as pretty JSON and a newline. An I/O error keeps its kind, so that a closed
/// pipe ends quietly, as elsewhere.
pub fn write_json(out: &mut impl Write, value: &serde_json::Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| match e.io_error_kind() {
        Some(kind) => io::Error::from(kind),
        None => io::Error::other(e),
    })?;
    writeln!(out)
}

/// The closing line of a file's diagnostics: `error: could not check `f` (2 errors, 1
/// warning)`, or `warning: `f`: 1 warning` when it checked.
fn summary(file: &str, diags: &[nnc_compiler::Diagnostic]) -> String {
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    match (errors, warnings) {
        (0, w) => format!("warning: `{file}`: {}", count(w, "warning")),
        (e, 0) => format!("error: could not check `{file}` ({})", count(e, "error")),
        (e, w) => format!("error: could not check `{file}` ({}, {})", count(e, "error"), count(w, "warning")),
    }
}

/// The last line after diagnostics, which points at `nnc explain` as rustc points at
/// `rustc --explain`: "help: `nnc explain E0202` says more about this code", or, for several
/// codes, "help: `nnc explain CODE` says more about E0102, E0202" (in the order of their numbers).
fn explain_hint(codes: &[Code]) -> Option<String> {
    let mut distinct: Vec<&str> = Vec::new();
    for code in codes {
        if !distinct.contains(&code.as_str()) {
            distinct.push(code.as_str());
        }
    }
    distinct.sort_unstable();
    match distinct[..] {
        [] => None,
        [code] => Some(format!("help: `nnc explain {code}` says more about this code")),
        _ => Some(format!("help: `nnc explain CODE` says more about {}", distinct.join(", "))),
    }
}

/// Prints the generated module, as `model!` would write it, formatted by prettyplease.
fn emit(args: &EmitArgs) -> io::Result<Outcome> {
    if args.target != Target::Onnx && (args.weights.is_some() || args.output.is_some() || args.seed != 0) {
        eprintln!("error: --weights, --seed and --output are options of `--target onnx`");
        return Ok(Outcome::UsageError);
    }
    if args.target != Target::Rust && args.name.is_some() {
        eprintln!(
            "error: --name is an option of `--target rust` (the PyTorch class is named after the network)"
        );
        return Ok(Outcome::UsageError);
    }
    with_graph(&args.source, args.target != Target::Onnx, |graph| {
        if args.target == Target::Onnx {
            return onnx::emit(&graph, args.weights.as_deref(), args.seed, args.output.as_deref());
        }
        if args.target == Target::Pytorch {
            return match nnc_compiler::back::pytorch::emit(&graph, &args.source.file.display().to_string()) {
                Ok(module) => io::stdout().lock().write_all(module.as_bytes()).map(|()| Outcome::Ok),
                Err(refused) => {
                    eprintln!("error: {refused}");
                    Ok(Outcome::ModelError)
                }
            };
        }
        let name = match &args.name {
            // syn's parse, which takes raw identifiers (`r#type`) as `Ident::new` does not.
            Some(n) => match syn::parse_str::<syn::Ident>(n) {
                Ok(ident) => ident,
                Err(_) => {
                    eprintln!("error: `{n}` is not a Rust identifier");
                    return Ok(Outcome::UsageError);
                }
            },
            None => codegen::type_name(&graph.name),
        };
        let tokens = codegen::generate(&graph, &name, &quote::quote! { ::nnc });
        let file: syn::File = match syn::parse2(tokens) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: the generated code does not parse ({e}); please report this");
                return Ok(Outcome::ModelError);
            }
        };
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "// Generated by nnc from {} (network `{}`); `nnc::model!` writes the same.",
            args.source.file.display(),
            graph.name
        )?;
        write!(out, "{}", prettyplease::unparse(&file))?;
        Ok(Outcome::Ok)
    })
}

/// Prints the graph as DOT, or writes it to a file, drawn by Graphviz for `.svg` and `.png`.
fn graph(args: &GraphArgs) -> io::Result<Outcome> {
    with_model(&args.source, |graph| {
        let options = nnc_compiler::back::dot::Options {
            depth: args.depth.map(|d| d as usize),
            left_to_right: args.rankdir == RankDir::Lr,
        };
        let text = nnc_compiler::back::dot::dot(&graph, options);
        let Some(output) = &args.output else {
            io::stdout().lock().write_all(text.as_bytes())?;
            return Ok(Outcome::Ok);
        };
        let format = output.extension().and_then(|e| e.to_str()).unwrap_or("dot");
        if format == "dot" {
            write_output(output, text.as_bytes())?;
            return Ok(Outcome::Ok);
        }
        if !["svg", "png", "pdf"].contains(&format) {
            eprintln!("error: `{}`: write .dot, .svg, .png or .pdf", output.display());
            return Ok(Outcome::UsageError);
        }
        // Drawn to memory and written here, as every output is (`write_output`): Graphviz's
        // `-o` would write into whatever the path names, a FIFO or a device included.
        let drawn = std::process::Command::new("dot")
            .arg(format!("-T{format}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                let mut stdin = child.stdin.take().expect("piped");
                // Fed from a thread: dot writes its picture while it reads, and a pipe holds
                // only so much.
                let feeding = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
                let out = child.wait_with_output()?;
                let fed = feeding.join().unwrap_or_else(|_| Err(io::Error::other("feeding dot panicked")));
                // A dot that failed stops reading: its status says so, not the broken pipe.
                if out.status.success() {
                    fed?;
                }
                Ok(out)
            });
        match drawn {
            Ok(out) if out.status.success() => {
                write_output(output, &out.stdout)?;
                writeln!(io::stdout().lock(), "wrote {}", output.display())?;
                Ok(Outcome::Ok)
            }
            Ok(out) => {
                let status = out.status;
                eprintln!("error: Graphviz's dot failed ({status})");
                Ok(Outcome::ModelError)
            }
            Err(e) => {
                eprintln!("error: cannot run Graphviz's `dot` ({e})\nhelp: install it (apt-get install graphviz), or write a .dot file");
                Ok(Outcome::UsageError)
            }
        }
    })
}

/// The joins, which are syntax rather than layers of the registry.
const JOINS: &str = "Besides these, `cat(a, b, ..., dim=1)` concatenates tensors along a dimension \
                     (`torch.cat`),\nand `a + b`, `a - b`, `a * b`, `a / b` work element by element, \
                     broadcast as PyTorch does\n(same rank and batch; each other dimension equal or 1 \
                     on one side), between tensors or with a number, and `-a` negates a tensor.\n`stack(a, b, ..., dim=1)` \
                     joins equal shapes along a new dimension (`torch.stack`); `a, b = chunk(2, dim=1)` \
                     and\n`a, b = split((16, 48), dim=1)` (or `split(16, dim=1)`) bind the pieces \
                     `torch.chunk` and `torch.split` give;\n`x[:, 0]`, `x[:, :, 1:]`, `x[..., ::2]` \
                     slice and index as PyTorch does, the batch only ever `:`.\n`matmul(a, b)` \
                     multiplies the matrices in the last two dimensions, the others broadcast \
                     (`torch.matmul`; either side may be a `param`),\nand \
                     `scaled_dot_product_attention(q, k, v, mask=…, is_causal=false, scale=…)` is \
                     `nn.functional.scaled_dot_product_attention`,\nits bool `mask` [N, S] (or \
                     [N, L, S], true where a query may attend: the opposite of `multi_head_attention`'s \
                     `key_padding_mask`, as in PyTorch)\nbroadcast over the heads; \
                     `einsum(\"nqd,nkd->nqk\", q, k)` is `torch.einsum`, with its output written and \
                     each operand's batch its first subscript (a subscript of size 1 in one operand \
                     broadcasts, as there).\n";

/// Prints the layer reference, generated from the registry so that it cannot fall behind it.
fn layers(args: &LayersArgs) -> io::Result<Outcome> {
    let text = match (&args.name, args.format) {
        (None, LayersFormat::Text) => layer_list(),
        (None, LayersFormat::Markdown) => table(ops::ALL.iter().copied()) + "\n" + JOINS,
        (Some(name), format) => match (ops::lookup(name), std_definitions().find(|d| d.1.name.name == *name))
        {
            (Some(op), _) => match format {
                LayersFormat::Text => layer_detail(op),
                LayersFormat::Markdown => table([op]),
            },
            (None, Some((module, def, text))) => std_detail(module, &def, text),
            (None, None) => {
                eprintln!("error: there is no layer `{name}`");
                let names: Vec<String> = std_definitions().map(|(_, d, _)| d.name.name).collect();
                let known = ops::ALL.iter().map(|op| op.name).chain(names.iter().map(String::as_str));
                if let Some(hint) = did_you_mean(name, known) {
                    eprintln!("help: {hint}");
                }
                eprintln!("help: `nnc layers` lists them all");
                return Ok(Outcome::UsageError);
            }
        },
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Outcome::Ok)
}

fn layer_list() -> String {
    let mut out = String::new();
    for op in ops::ALL {
        let (signature, summary) = (op.signature(), op.summary);
        out += &format!(
            "{signature}\n    {summary}\n    input rank: {}{}; PyTorch: {}\n\n",
            op.ranks,
            input_type(op),
            op.torch
        );
    }
    out += JOINS;
    out += "\nThe standard library's blocks and functions, which a network calls once it imports \
            their module (`import std.resnet`):\n\n";
    for (module, def, text) in std_definitions() {
        out += &format!("{}  ({module})\n", def.signature(text));
    }
    out + "\n`nnc layers NAME` shows one layer or block in detail.\n"
}

/// Each block and function of the standard library (`compiler/std/`): its module, its
/// definition and the module's text.
fn std_definitions() -> impl Iterator<Item = (&'static str, nnc_grammar::ast::Definition, &'static str)> {
    nnc_compiler::STD_MODULES.iter().flat_map(|&(module, text)| {
        let (file, _) = nnc_grammar::parse_file(text);
        file.definitions.into_iter().map(move |def| (module, def, text))
    })
}

/// A block or function of the standard library: its signature as written, its module, and the
/// comment above it, which says what it is and how it names its layers.
fn std_detail(module: &str, def: &nnc_grammar::ast::Definition, text: &str) -> String {
    let doc: String = def.doc_comment(text).lines().map(|l| format!("    {l}\n")).collect();
    format!("{}\n    from {module}: `import {module}`\n\n{doc}", def.signature(text))
}

pub(crate) fn layer_detail(op: &OpSpec) -> String {
    let mut out = format!("{}: {}\n\n    {}\n\n", op.name, op.summary, op.signature());
    if !op.params.is_empty() {
        out += "parameters:\n";
        let width = op.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        let kind_width = op.params.iter().map(|p| p.kind.describe().len()).max().unwrap_or(0);
        for p in op.params {
            let default = match &p.default {
                None => "required".to_string(),
                Some(ArgValue::Unset) => {
                    "optional (none, inferred, or following another argument)".to_string()
                }
                Some(value) => format!("default {value}"),
            };
            out += &format!("    {:width$}  {:kind_width$}  {default}\n", p.name, p.kind.describe());
        }
        out += "\n";
    }
    let takes = match op.takes {
        DType::Float => String::new(),
        other => format!("input type: {other} (every other layer takes float tensors)\n"),
    };
    out + &format!("input rank: {} (the batch included)\n{takes}PyTorch:    {}\n", op.ranks, op.torch)
}

/// `; input type: int` for a layer that takes another element type than float, which every
/// other takes.
fn input_type(op: &OpSpec) -> String {
    match op.takes {
        DType::Float => String::new(),
        other => format!("; input type: {other}"),
    }
}

/// A Markdown table of `layers`, as the README has it.
fn table<'a>(layers: impl IntoIterator<Item = &'a OpSpec>) -> String {
    let mut out =
        "| layer | input ranks | PyTorch | what it computes |\n| --- | --- | --- | --- |\n".to_string();
    for op in layers {
        let torch: Vec<String> = op.torch.split(", ").map(|module| format!("`{module}`")).collect();
        let cells =
            [format!("`{}`", op.signature()), op.ranks.to_string(), torch.join(", "), op.summary.into()];
        // A `|` would end the cell early.
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

/// Prints a code's explanation, or the list of every code; generated from the compiler's
/// registry of codes, so that no code goes unexplained.
fn explain(args: &ExplainArgs) -> io::Result<Outcome> {
    let text = match &args.code {
        None => code_list(),
        Some(written) => match parse_code(written) {
            Some(code) => explanation(code),
            None => {
                eprintln!("error: there is no diagnostic code `{written}`");
                if let Some(hint) = closest_code(written) {
                    eprintln!("help: {hint}");
                }
                eprintln!("help: `nnc explain` lists them all");
                return Ok(Outcome::UsageError);
            }
        },
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Outcome::Ok)
}

/// A code as written (`E0202`, `e0202`, `E202`), with its letter upper-cased and its number
/// padded to four digits; `None` unless it is a letter and one to four digits.
fn normal_code(written: &str) -> Option<String> {
    let mut chars = written.trim().chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let digits = chars.as_str();
    let is_number = (1..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    (letter.is_ascii_alphabetic() && is_number).then(|| format!("{letter}{digits:0>4}"))
}

fn parse_code(written: &str) -> Option<Code> {
    Code::parse(&normal_code(written)?)
}

/// "did you mean `E0204`?" for `E0209`: the code of the same letter nearest in number, within
/// ten, or else one a typo away.
fn closest_code(written: &str) -> Option<String> {
    let normal = normal_code(written).unwrap_or_else(|| written.trim().to_ascii_uppercase());
    let number = |code: &str| code.get(1..).and_then(|n| n.parse::<i64>().ok());
    let same_letter = || Code::ALL.iter().map(|c| c.as_str()).filter(|c| normal.get(..1) == c.get(..1));
    let nearest = number(&normal).and_then(|n| {
        same_letter()
            .filter_map(|c| Some(((number(c)? - n).abs(), c)))
            .filter(|(distance, _)| *distance <= 10)
            .min()
            .map(|(_, c)| format!("did you mean `{c}`?"))
    });
    nearest.or_else(|| did_you_mean(&normal, same_letter()))
}

fn severity_word(code: Code) -> &'static str {
    match code.severity() {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// The width explanations are wrapped to.
const EXPLAIN_WIDTH: usize = 90;

fn explanation(code: Code) -> String {
    let e = code.explanation();
    let mut out = format!("{}[{}]: {}\n", severity_word(code), code.as_str(), e.summary);
    for paragraph in e.text.split("\n\n") {
        out += "\n";
        out += &wrap(paragraph, EXPLAIN_WIDTH);
    }
    for (title, example) in [("Broken", e.broken), ("Fixed", e.fixed)] {
        out += &format!("\n{title}:\n\n");
        for line in example.lines() {
            out += &if line.is_empty() { "\n".to_string() } else { format!("    {line}\n") };
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > width {
            out += "\n";
            line = 0;
        }
        if line > 0 {
            out += " ";
            line += 1;
        }
        out += word;
        line += len;
    }
    out + "\n"
}

fn code_list() -> String {
    let mut out = String::new();
    for &code in Code::ALL {
        out += &format!("{}  {:7}  {}\n", code.as_str(), severity_word(code), code.explanation().summary);
    }
    out + "\n`nnc explain CODE` explains a code: what it means, a broken example and its fix.\n"
}

/// Compiles the one network `args` names, printing its diagnostics if it does not check, and
/// hands its graph to `f`; a network with free sizes is refused, saying which to `--set`.
pub fn with_model(args: &SourceArgs, f: impl FnOnce(Graph) -> io::Result<Outcome>) -> io::Result<Outcome> {
    with_graph(args, false, f)
}

/// [`with_model`], which hands a network with free sizes to `f` too where `free` is set.
fn with_graph(
    args: &SourceArgs,
    free: bool,
    f: impl FnOnce(Graph) -> io::Result<Outcome>,
) -> io::Result<Outcome> {
    let options = args.lints.options(&args.overrides, &args.network);
    let mut compilation = compile(Root::Path(&args.file), &options);
    let outcome = outcome_of(&compilation);
    if !compilation.diagnostics.is_empty() {
        let style = stderr_style(args.color);
        eprint!("{}", render::render(&compilation.diagnostics, &compilation.sources, style));
        eprintln!("{}", summary(&args.file.display().to_string(), &compilation.diagnostics));
        let codes: Vec<Code> = compilation.diagnostics.iter().map(|d| d.code).collect();
        if let Some(hint) = explain_hint(&codes) {
            eprintln!("{hint}");
        }
    }
    if outcome != Outcome::Ok {
        return Ok(outcome);
    }
    if compilation.graphs.len() != 1 {
        let names: Vec<&str> = compilation.graphs.iter().map(|g| g.name.as_str()).collect();
        let what = if names.is_empty() {
            "no network".to_string()
        } else {
            format!("several networks ({})", names.join(", "))
        };
        eprintln!("error: `{}` defines {what}; choose one with --network NAME", args.file.display());
        return Ok(Outcome::UsageError);
    }
    let graph = compilation.graphs.pop().expect("one graph");
    // Free sizes are checked and emitted (PyTorch, Rust), not yet run, drawn or in ONNX.
    match &graph.free {
        Some(sizes) if !free => {
            eprintln!("error: {}", sizes.needs_fixing());
            Ok(Outcome::UsageError)
        }
        _ => f(graph),
    }
}

fn outcome_of(compilation: &Compilation) -> Outcome {
    let diags = &compilation.diagnostics;
    // Arguments that do not parse, and a root file that cannot be read, are usage errors.
    let usage = diags.iter().any(|d| d.code == Code::Usage || (d.code == Code::Io && d.labels.is_empty()));
    if usage {
        Outcome::UsageError
    } else if !compilation.has_errors() {
        Outcome::Ok
    } else {
        Outcome::ModelError
    }
}

/// Runs a parsed command line and turns its outcome into the process's exit code. This is
/// where commands are routed: `check`, `emit`, `graph`, `layers`, `explain` and `fmt` run here, in
/// either binary; the commands that run models go to `runtime`, which in `nnc` execs
/// `nnc-torch` and in `nnc-torch` runs them on libtorch.
pub fn execute(command: Command, runtime: impl FnOnce(RuntimeCommand) -> io::Result<Outcome>) -> ExitCode {
    let result = match command {
        Command::Check(args) => check(&args),
        Command::Emit(args) => emit(&args),
        Command::Graph(args) => graph(&args),
        Command::Layers(args) => layers(&args),
        Command::Explain(args) => explain(&args),
        Command::Fmt(args) => fmt::fmt(&args),
        Command::Snapshot(args) => snapshot::snapshot(&args),
        Command::Lsp => lsp::serve(),
        Command::Completions(args) => {
            // Written to memory first: clap_complete panics on a failed write, and a closed
            // pipe must end the command quietly, as everywhere.
            let mut script = Vec::new();
            clap_complete::generate(
                args.shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "nnc",
                &mut script,
            );
            io::stdout().lock().write_all(&script).map(|()| Outcome::Ok)
        }
        Command::Runtime(command) => runtime(command),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome as u8),
        // A closed pipe (`nnc check ... | head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        // A path the command was given that it may not write (a FIFO, a device, an open
        // file's link: `output::write_atomic`'s refusals) is a usage error, as a bad argument.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            eprintln!("error: {e}");
            ExitCode::from(Outcome::UsageError as u8)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(Outcome::ModelError as u8)
        }
    }
}
