//! The runtime's errors.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("the model expects input {expected}, but got {actual:?}")]
    InputShape { expected: String, actual: Vec<i64> },
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
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
