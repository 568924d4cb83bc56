//! The runtime's errors.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("the model expects input {expected}, but got {actual:?}")]
    InputShape { expected: String, actual: Vec<i64> },
    #[error("the weights in {file} do not fit the model:\n{}", problems.join("\n"))]
    Weights { file: String, problems: Vec<String> },
    #[error("{0}")]
    Device(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("{0}")]
    Diverged(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
