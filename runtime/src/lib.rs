//! The libtorch runtime of nnc. It will hold every piece of code that links `tch`: the op
//! implementations, the IR interpreter, data loading and training. Nothing lives here yet; the
//! crate exists so that the workspace layout, and the rule that only this crate links libtorch,
//! are in place from the start.
