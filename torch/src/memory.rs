//! The memory check of `run`, `bench` and `train`, before they allocate anything: the compiler's
//! estimate from the IR (see [`nnc_compiler::back::memory`]) at the command's batch size, against the
//! memory this process may use. A batch that cannot fit is refused with the estimate, the
//! limit and a batch that fits, instead of failing in a layer after minutes of work (or
//! being killed by the kernel). `NNC_MEMORY_CHECK=off` skips it, for a machine where the
//! estimate or the available memory is wrong.

use nnc_cli::{OptimizerChoice, Outcome, RuntimeCommand};
use nnc_compiler::back::memory::{Optimizer, Workload};
use nnc_compiler::Graph;
use nnc_runtime::memory;
use nnc_runtime::tch::Device;

/// Refuses the command, with the message printed, when the model cannot fit at its batch size.
pub fn check(command: &RuntimeCommand, graph: &Graph) -> Result<(), Outcome> {
    if skipped() {
        return Ok(());
    }
    let (model, verb, workload, batch) = match command {
        // The batch of `--input` is the file's: `run` checks once it has read them.
        RuntimeCommand::Run(args) if args.input.is_some() => return Ok(()),
        RuntimeCommand::Run(args) => (&args.model, "running", Workload::KeepAll, args.batch),
        // Plain SGD, as `bench` trains, has no optimiser state, but `bench` keeps a second
        // model beside the trained one for its forwards: one more tensor per parameter.
        RuntimeCommand::Bench(args) => {
            (&args.model, "benchmarking", Workload::Training { optimizer_states: 1 }, args.batch)
        }
        RuntimeCommand::Train(args) => {
            let optimizer = match args.optimizer {
                OptimizerChoice::Sgd if args.momentum == 0.0 => Optimizer::Sgd,
                OptimizerChoice::Sgd => Optimizer::Momentum,
                OptimizerChoice::Adam => Optimizer::Adam,
            };
            let optimizer_states = optimizer.states();
            // Not the evaluation that ends each epoch: its batch, at least 256, is cut to the
            // test set's size, which is not known before the data are read.
            (&args.model, "training", Workload::Training { optimizer_states }, args.batch)
        }
        RuntimeCommand::Eval(_) | RuntimeCommand::Predict(_) | RuntimeCommand::ExportWeights(_) => {
            return Ok(())
        }
    };
    // The check is of the host's memory; on a GPU, libtorch's refusal is the layer's error.
    // A device that is not there is left for the command to report.
    let device = match &model.device {
        Some(name) => nnc_runtime::parse_device(name).ok(),
        None => Some(nnc_runtime::default_device()),
    };
    if device != Some(Device::Cpu) {
        return Ok(());
    }
    fits(graph, verb, workload, batch)
}

/// `nnc run --input`'s check, at the batch of the inputs it has read, on `device`.
pub fn check_run(graph: &Graph, batch: i64, device: Device) -> Result<(), Outcome> {
    if skipped() || device != Device::Cpu {
        return Ok(());
    }
    fits(graph, "running", Workload::KeepAll, batch)
}

/// Whether the user turned the check off (`NNC_MEMORY_CHECK=off`).
fn skipped() -> bool {
    std::env::var("NNC_MEMORY_CHECK").is_ok_and(|v| v == "off")
}

/// Whether `workload` of `graph` at `batch` fits the memory, or the refusal, printed.
fn fits(graph: &Graph, verb: &str, workload: Workload, batch: i64) -> Result<(), Outcome> {
    let task = format!("{verb} {} at batch {batch}", graph.name);
    memory::check(graph, workload, batch.unsigned_abs(), &task).map_err(|e| {
        eprintln!(
            "error: {e}\nnote: the estimate counts parameters and layer outputs only; \
             NNC_MEMORY_CHECK=off skips this check"
        );
        Outcome::ModelError
    })
}
