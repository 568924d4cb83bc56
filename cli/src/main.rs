//! `nnc`: the command line. `check`, `emit`, `graph`, `layers`, `explain` and `fmt` run here; the
//! commands that run models (`run`, `bench`, `train`, `eval`, `predict`), which need libtorch,
//! are handed to `nnc-torch` beside this binary, so that this one never loads libtorch and
//! `nnc check` starts in about a millisecond instead of a fifth of a second.

use std::process::ExitCode;

use clap::Parser;
use nnc_cli::{execute, Cli, Outcome};

fn main() -> ExitCode {
    execute(Cli::parse().command, |_| Ok(hand_over()))
}

/// Replaces this process by `nnc-torch` with the same arguments, if it was built; otherwise
/// explains how to build it. Returns only if it cannot.
fn hand_over() -> Outcome {
    use std::os::unix::process::CommandExt;
    let sibling = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("nnc-torch")));
    if let Some(path) = sibling.as_ref().filter(|p| p.is_file()) {
        let err = std::process::Command::new(path).args(std::env::args_os().skip(1)).exec();
        eprintln!("error: cannot start {}: {err}", path.display());
        return Outcome::UsageError;
    }
    // The runtime is a sibling binary, built by the same `cargo build` as this one when asked
    // for: say where it was looked for, not that this binary lacks something.
    let looked = sibling.map_or_else(|| "beside this binary".to_string(), |p| p.display().to_string());
    eprintln!(
        "error: the commands that run models need `nnc-torch`, which is not at {looked}\n\
         help: build it beside `nnc` with `cargo build --release -p nnc-torch` (after scripts/setup-libtorch.sh), \
         or run `nnc-torch` itself with the same arguments"
    );
    Outcome::UsageError
}
