//! The command line's choices turned into the runtime's values, once for every command.

use nnc_cli::{InitChoice, ModelArgs, Outcome};
use nnc_runtime::tch::Device;
use nnc_runtime::Init;

/// The device `--device` names, or the default one; a name that is not a usable device is
/// reported, as a usage error.
pub fn device(args: &ModelArgs) -> Result<Device, Outcome> {
    match &args.device {
        None => Ok(nnc_runtime::default_device()),
        Some(name) => nnc_runtime::parse_device(name).map_err(|e| {
            eprintln!("error: {e}");
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
