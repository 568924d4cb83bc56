//! nnc for Rust programs: one dependency gives the `model!` macro, the libtorch runtime the
//! code it generates runs on, and `tch` itself.
//!
//! ```no_run
//! use nnc::tch::{nn, nn::ModuleT, Device, Kind, Tensor};
//!
//! // Paths are relative to the crate's folder (here: this crate's, beside `models/`).
//! nnc::model!(ResNet18 = "../models/resnet18.net", size = 96);
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let net = ResNet18::new(&vs.root());
//! let y = net.forward_t(&Tensor::zeros([2, 1, 96, 96], (Kind::Float, Device::Cpu)), false);
//! assert_eq!(y.size(), [2, 10]);
//! ```
//!
//! (Compiled by the tests but not run: the tests of `nnc/tests/` run such models.)

pub use nnc_compiler as compiler;
pub use nnc_macros::model;
pub use nnc_runtime as runtime;
pub use nnc_runtime::tch;
