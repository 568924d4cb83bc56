//! `nnc-torch`: the `nnc` command line with the libtorch runtime. `nnc` hands `run` and
//! `bench` to it; it runs every command itself.

mod plot;
mod runtime;
mod training;

use clap::Parser;
use nnc_cli::{execute, Cli};

fn main() -> std::process::ExitCode {
    execute(Cli::parse().command, &runtime::Torch)
}
