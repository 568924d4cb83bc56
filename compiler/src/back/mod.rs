//! The back ends: everything that reads a checked IR graph. `report` and `render` are what
//! `nnc check` prints (with `memory`'s estimate at a batch size, which the runtime also checks), `codegen` writes the Rust of `model!`, `pytorch` an `nn.Module`, `onnx`
//! an ONNX model, `dot` a Graphviz picture, and `json` the versioned JSON of `--format json`.

pub mod codegen;
pub mod dot;
pub mod json;
pub mod memory;
pub mod onnx;
pub mod pytorch;
pub mod render;
pub mod report;
