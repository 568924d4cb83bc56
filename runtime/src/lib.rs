//! The libtorch runtime of nnc: everything that touches `tch`. It turns a checked IR graph
//! into a model on libtorch ([`Model`], the interpreter), creates its parameters under the
//! IR's PyTorch-style names, and holds the op implementations ([`ops`]) that the interpreter
//! and generated code share. Around the model: saving and loading weights as safetensors
//! ([`weights`], through [`write_atomic`]), classification data ([`data`]), training with
//! checkpoints ([`train`]), parity checks against PyTorch ([`parity`]), the memory a command
//! needs ([`memory`]), the choice of device, and mixed precision ([`precision`]).

pub mod conv_layout;
pub mod data;
mod error;
mod file;
pub mod inference;
mod init;
pub mod memory;
mod model;
pub mod ops;
pub mod parity;
pub mod precision;
pub mod shim;
pub mod train;
pub mod weights;

pub use error::{Failure, LayerError, RuntimeError};
pub use file::{check_writable, lock_folder, remove_stray_temporaries, write_atomic, FolderLock};
pub use inference::{Inference, Layout};
pub use init::Init;
pub use model::{
    check_input, check_inputs, check_typed_input, free_size_refusal, input_dims, inputs, LayerInfo, Model,
};
/// The IR, for generated code, which spells out each layer's op.
pub use nnc_compiler::ir;
pub use precision::{Autocast, Precision};
pub use tch;

/// The libtorch version tch 0.26 binds, which `scripts/setup-libtorch.sh` installs or links.
pub const LIBTORCH_VERSION: &str = "2.13.0";

/// `cuda` when the installed libtorch has CUDA and a GPU is present, else `cpu`.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(name: &str) -> Result<tch::Device, RuntimeError> {
    let device = match name {
        "cpu" => tch::Device::Cpu,
        "cuda" => tch::Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => tch::Device::Cuda(n),
            None => {
                return Err(RuntimeError::Device(format!("unknown device `{name}`; use cpu, cuda or cuda:N")))
            }
        },
    };
    if let tch::Device::Cuda(n) = device {
        let count = tch::Cuda::device_count();
        if n as i64 >= count {
            let why = if tch::Cuda::is_available() {
                format!("there are only {count} CUDA devices")
            } else {
                "this libtorch has no CUDA support or no GPU is present".to_string()
            };
            return Err(RuntimeError::Device(format!("cannot use `{name}`: {why}")));
        }
    }
    Ok(device)
}
