//! The back ends: everything that reads a checked IR graph. `report` and `render` are what
//! `nnc check` prints, `codegen` writes the Rust of `model!`, `pytorch` an `nn.Module`, and
//! `dot` a Graphviz picture.

pub mod codegen;
pub mod dot;
pub mod pytorch;
pub mod render;
pub mod report;
