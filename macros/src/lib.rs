//! `model!`: a model written in a `.net` file, or inline, becomes an ordinary Rust type that
//! implements `tch::nn::ModuleT`; a shape error becomes a compile error. This crate is a shell:
//! it reads the macro's input, and the compiler library checks the model and writes the code.
//!
//! The examples go through the `nnc` crate, which re-exports this macro with the runtime it
//! needs, so they cannot run as this crate's doctests (`nnc/tests/` runs them):
//!
//! ```ignore
//! nnc::model!(ResNet18 = "models/resnet18.net");            // relative to CARGO_MANIFEST_DIR
//! nnc::model!(ResNet96 = "models/resnet18.net", size = 96); // with network parameters set
//! nnc::model! {
//!     network edge {
//!         input [N, 1, 6, 8]
//!         conv2d(1, (1, 2), bias=false)
//!     }
//! }                                                          // defines `Edge`
//! ```

mod expand;

use proc_macro::TokenStream;

#[proc_macro]
pub fn model(input: TokenStream) -> TokenStream {
    expand::expand(input.into()).into()
}
