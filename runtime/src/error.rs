//! The runtime's errors.

use std::fmt;

use nnc_compiler::back::report;
use thiserror::Error;

use crate::memory::Refusal;

#[derive(Debug, Error)]
pub enum RuntimeError {
    /// An input of the wrong shape; `name` is the input's, for a model of several.
    #[error("the model expects input {}{expected}, but got {actual:?}", named(name))]
    InputShape { name: Option<String>, expected: String, actual: Vec<i64> },
    /// An input of the wrong element type: `expected` in words (`int64 ids`).
    #[error("the model expects input {}to hold {expected}, but got a tensor of {actual}", named(name))]
    InputType { name: Option<String>, expected: &'static str, actual: String },
    /// An input whose free sizes (`input [N, 3, H, W]`) the network cannot take: the sizes,
    /// the layer and what it needs, and the valid sizes.
    #[error("{sizes} is not a size this network takes: `{layer}` needs {need}; it takes {valid}")]
    FreeSize { sizes: String, layer: String, need: String, valid: String },
    /// A model of several inputs given another number of them.
    #[error("the model takes {} inputs ({}), but was given {actual}", names.len(), names.join(", "))]
    InputCount { names: Vec<String>, actual: usize },
    /// Inputs whose batches differ, which the inputs of a model share.
    #[error(
        "the inputs must share their batch, but `{first}` holds {first_batch} examples and `{name}` {batch}"
    )]
    InputBatch { first: String, first_batch: i64, name: String, batch: i64 },
    #[error("the weights in {file} do not fit the model:\n{}", problems.join("\n"))]
    Weights { file: String, problems: Vec<String> },
    /// Weights (or optimiser state) holding NaN or infinite values, one line per tensor.
    #[error("the weights in {file} are not finite:\n{}", tensors.join("\n"))]
    NonFinite { file: String, tensors: Vec<String> },
    #[error("{0}")]
    Device(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A file that is not readable safetensors, with the reason in words.
    #[error("cannot read {path} as safetensors: {reason}")]
    Safetensors { path: String, reason: String },
    /// Training settings or data that cannot give a meaningful run.
    #[error("{0}")]
    Config(String),
    /// A checkpoint whose training state cannot be resumed; nothing was changed.
    #[error("cannot resume from {path}: {reason}")]
    Resume { path: String, reason: String },
    #[error("{0}")]
    Diverged(String),
    /// A layer's libtorch call failed: while computing its output, or creating its tensors.
    /// (Boxed, as are the other large variants, to keep `Result`s small on the hot path.)
    #[error("{0}")]
    Layer(Box<LayerError>),
    /// The memory a command needs, estimated from the IR, is more than is available.
    #[error("{0}")]
    Memory(Box<Refusal>),
    #[error("libtorch: {}", torch_message(.0))]
    Torch(#[from] tch::TchError),
}

/// A libtorch call of one layer that failed, with what the layer was doing, so that the
/// message names the layer and the shapes involved rather than only libtorch's words.
#[derive(Debug)]
pub struct LayerError {
    /// The layer's IR name (`b3.0.conv1`).
    pub layer: String,
    /// The op as the report shows it (`conv2d 64→128, 3×3, stride 2, padding 1`).
    pub op: String,
    /// What it was doing: `on input [3, 64, 56, 56]`, `creating its tensor `weight` [10, 4]`.
    pub during: String,
    pub failure: Failure,
    /// What to change when memory ran out: the batch, or the layer's sizes.
    pub help: &'static str,
}

/// How a libtorch call failed.
#[derive(Debug)]
pub enum Failure {
    /// An allocation that libtorch could not make, with its size when libtorch says it.
    OutOfMemory { requested: Option<u64>, message: String },
    /// Any other refusal, in libtorch's words (without its C++ backtrace).
    Torch(String),
}

impl LayerError {
    /// The error of `layer` doing `op` (`during` says on what), from libtorch's error: a refused
    /// allocation is told apart from other failures by its message, which is all libtorch's C
    /// API passes on. `help` says what to change when memory ran out.
    pub fn new(
        layer: &str,
        op: &impl fmt::Display,
        during: String,
        error: &tch::TchError,
        help: &'static str,
    ) -> Self {
        let message = torch_message(error);
        let failure = if is_out_of_memory(&message) {
            Failure::OutOfMemory { requested: requested_bytes(&message), message }
        } else {
            Failure::Torch(message)
        };
        LayerError { layer: layer.to_string(), op: op.to_string(), during, failure, help }
    }
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let LayerError { layer, op, during, .. } = self;
        match &self.failure {
            Failure::OutOfMemory { requested: Some(bytes), .. } => write!(
                f,
                "layer `{layer}` ({op}) could not allocate {} ({bytes} bytes) {during}",
                report::bytes(u128::from(*bytes))
            )?,
            Failure::OutOfMemory { requested: None, message } => {
                write!(f, "layer `{layer}` ({op}) ran out of memory {during}: {message}")?
            }
            Failure::Torch(message) => return write!(f, "layer `{layer}` ({op}) failed {during}: {message}"),
        }
        write!(f, "\nhelp: {}", self.help)
    }
}

/// `` `tokens` `` and a space, naming an input of a model of several; nothing for a model's
/// only input.
fn named(name: &Option<String>) -> String {
    name.as_ref().map_or(String::new(), |n| format!("`{n}` "))
}

/// libtorch's message without the C++ backtrace that follows it (`frame #0: …`, or
/// `Exception raised from …`), which says nothing to a user of nnc.
pub(crate) fn torch_message(error: &tch::TchError) -> String {
    let text = match error {
        tch::TchError::Torch(message) => message.clone(),
        other => other.to_string(),
    };
    let end = ["\nframe #", "\nException raised from", "Exception raised from"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
        .unwrap_or(text.len());
    text[..end].trim().to_string()
}

/// Whether libtorch's message reports a refused allocation: the CPU allocator's ("can't
/// allocate memory"), CUDA's and MPS's ("out of memory").
fn is_out_of_memory(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("can't allocate memory") || lower.contains("out of memory")
}

/// The size of a refused allocation, from the CPU allocator's "you tried to allocate N bytes".
fn requested_bytes(message: &str) -> Option<u64> {
    let rest = &message[message.find("tried to allocate ")? + "tried to allocate ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if rest[digits.len()..].starts_with(" bytes") {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_messages_lose_their_backtrace_and_keep_the_size() {
        let raw = "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate \
                   memory: you tried to allocate 80000000000 bytes. Error code 12 (Cannot allocate \
                   memory)\nframe #0: c10::ThrowEnforceNotMet(char const*, int) + 0x6a\nframe #1: …";
        let error = tch::TchError::Torch(raw.to_string());
        let message = torch_message(&error);
        assert!(message.ends_with("(Cannot allocate memory)"), "{message}");
        let help = "try a smaller batch or input size";
        let e = LayerError::new("b1.conv", &"conv2d 3→64, 3×3", "on input [1, 3, 9, 9]".into(), &error, help);
        assert!(matches!(e.failure, Failure::OutOfMemory { requested: Some(80_000_000_000), .. }));
        assert_eq!(
            e.to_string(),
            "layer `b1.conv` (conv2d 3→64, 3×3) could not allocate 80.00 GB (80000000000 bytes) on \
             input [1, 3, 9, 9]\nhelp: try a smaller batch or input size"
        );
        let cuda = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)";
        let e = LayerError::new(
            "fc",
            &"linear",
            "on input [9, 9]".into(),
            &tch::TchError::Torch(cuda.into()),
            help,
        );
        assert!(matches!(e.failure, Failure::OutOfMemory { requested: None, .. }), "{e:?}");
        assert!(e.to_string().contains("ran out of memory on input [9, 9]: CUDA out of memory"));
    }
}
