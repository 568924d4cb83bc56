//! `nnc`: the command line. `check` runs here; `run`, `bench`, `train`, `eval` and `predict`,
//! which need libtorch, are handed to `nnc-torch` beside this binary, so that this one never loads libtorch and
//! `nnc check` starts in about a millisecond instead of a fifth of a second.

use std::process::ExitCode;

use clap::Parser;
use nnc_cli::{
    execute, BenchArgs, Cli, Command, EvalArgs, Outcome, PredictArgs, RunArgs, Runtime, TrainArgs,
};
use nnc_compiler::Graph;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        command @ (Command::Check(_) | Command::Emit(_) | Command::Graph(_)) => execute(command, &NoRuntime),
        _ => hand_over(),
    }
}

/// `check` needs no runtime; the commands that do are handed over before they reach this one.
struct NoRuntime;

impl Runtime for NoRuntime {
    fn run(&self, _: &RunArgs, _: Graph) -> std::io::Result<Outcome> {
        unreachable!("handed over to nnc-torch")
    }

    fn bench(&self, _: &BenchArgs, _: Graph) -> std::io::Result<Outcome> {
        unreachable!("handed over to nnc-torch")
    }

    fn train(&self, _: &TrainArgs, _: Graph) -> std::io::Result<Outcome> {
        unreachable!("handed over to nnc-torch")
    }

    fn eval(&self, _: &EvalArgs, _: Graph) -> std::io::Result<Outcome> {
        unreachable!("handed over to nnc-torch")
    }

    fn predict(&self, _: &PredictArgs, _: Graph) -> std::io::Result<Outcome> {
        unreachable!("handed over to nnc-torch")
    }
}

/// Replaces this process by `nnc-torch` with the same arguments, if it was built; otherwise
/// explains how to build it.
fn hand_over() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let sibling = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("nnc-torch")));
    if let Some(path) = sibling.filter(|p| p.is_file()) {
        let err = std::process::Command::new(&path).args(std::env::args_os().skip(1)).exec();
        eprintln!("error: cannot start {}: {err}", path.display());
        return ExitCode::from(2);
    }
    eprintln!(
        "error: this nnc was built without the libtorch runtime\n\
         help: run scripts/setup-libtorch.sh, then build it with `cargo build --release -p nnc-torch`"
    );
    ExitCode::from(2)
}
