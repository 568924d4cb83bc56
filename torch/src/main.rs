//! `nnc-torch`: the `nnc` command line with the libtorch runtime. `nnc` hands it the commands
//! that run models (`run`, `bench`, `train`, `eval`, `predict`, `export-weights`); it runs every command itself.

mod args;
mod memory;
mod plot;
mod run;
mod training;

use std::io;

use clap::Parser;
use nnc_cli::{execute, with_model, Cli, Outcome, RuntimeCommand};

fn main() -> std::process::ExitCode {
    nnc_cli::allocator::keep_freed_memory();
    execute(Cli::parse().command, run_model)
}

/// Builds the command's model, checks that it fits in memory, and runs the command on it.
fn run_model(command: RuntimeCommand) -> io::Result<Outcome> {
    with_model(&command.model().source, |graph| {
        let reads_pictures = matches!(
            command,
            RuntimeCommand::Train(_) | RuntimeCommand::Eval(_) | RuntimeCommand::Predict(_)
        );
        if reads_pictures {
            if let Err(e) = training::one_image_input(&graph) {
                eprintln!("error: {e}");
                return Ok(Outcome::UsageError);
            }
        }
        if let RuntimeCommand::Train(args) = &command {
            if let Err(e) = training::optimizer(args) {
                eprintln!("error: {e}");
                return Ok(Outcome::UsageError);
            }
        }
        if let Err(outcome) = memory::check(&command, &graph) {
            return Ok(outcome);
        }
        match &command {
            RuntimeCommand::Run(args) => run::run(args, graph),
            RuntimeCommand::Bench(args) => run::bench(args, graph),
            RuntimeCommand::Train(args) => training::train(args, graph),
            RuntimeCommand::Eval(args) => training::eval(args, graph),
            RuntimeCommand::Predict(args) => training::predict(args, graph),
            RuntimeCommand::ExportWeights(args) => training::export_weights(args, graph),
        }
    })
}
