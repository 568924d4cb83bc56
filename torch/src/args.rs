//! The command line's choices turned into the runtime's values, once for every command.

use nnc_cli::{InitChoice, ModelArgs, Outcome, PrecisionChoice};
use nnc_runtime::tch::Device;
use nnc_runtime::{Init, Precision};

/// The device `--device` names, or the default one; a name that is not a usable device is
/// reported, as a usage error.
pub fn device(args: &ModelArgs) -> Result<Device, Outcome> {
    match &args.device {
        None => Ok(nnc_runtime::default_device()),
        Some(name) => nnc_runtime::parse_device(name).map_err(|e| {
            eprintln!("error: {e}");
            if name.starts_with("cuda") && !nnc_runtime::tch::Cuda::is_available() {
                // The default libtorch is the CPU wheel's: a GPU needs a CUDA build linked in.
                eprintln!(
                    "help: nnc runs on the libtorch in .libtorch/; for a GPU, link a CUDA PyTorch {}'s there with `LIBTORCH_USE_PYTORCH=1 scripts/setup-libtorch.sh` (README: GPU users)",
                    nnc_runtime::LIBTORCH_VERSION
                );
            }
            Outcome::UsageError
        }),
    }
}

/// The initialisation `--init` chooses.
pub fn init(choice: InitChoice) -> Init {
    match choice {
        InitChoice::Pytorch => Init::PyTorch,
        InitChoice::Xavier => Init::XavierUniform,
    }
}

/// The precision `--precision` chooses.
pub fn precision(choice: PrecisionChoice) -> Precision {
    match choice {
        PrecisionChoice::Fp32 => Precision::Fp32,
        PrecisionChoice::Bf16 => Precision::Bf16,
    }
}

/// How a command's first line names the precision: nothing for fp32, the default.
pub fn precision_note(precision: Precision) -> String {
    match precision {
        Precision::Fp32 => String::new(),
        Precision::Bf16 => ", bf16 autocast".to_string(),
    }
}

/// The CPU threads for libtorch: those asked for, but no more than the CPUs this process may
/// use, saying so. More threads than cores only make libtorch's threads wait on one another
/// (an epoch of LeNet took over 300 s with 1000 threads on 2 cores).
pub fn threads(requested: i32) -> i32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = i32::try_from(cpus).unwrap_or(i32::MAX);
    if requested > cpus {
        eprintln!(
            "note: --threads {requested} is more than the {cpus} CPUs available here; using {cpus}, since more threads than cores only slow libtorch down"
        );
        return cpus;
    }
    requested
}
