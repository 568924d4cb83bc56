//! The network's input: the node every graph starts from. It is declared (`input [N, 1, 28,
//! 28]`), not called, so it has no signature.

use std::fmt;

use super::{attributes, Family, Layer, PyTorch, SizeOrigin};

attributes! {
    pub struct Input;
}

impl Layer for Input {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("input")
    }

    fn pytorch(&self, xs: &[String]) -> PyTorch {
        PyTorch::Expr(xs[0].clone())
    }

    fn size_origin(&self, _: usize, _: u64) -> SizeOrigin {
        SizeOrigin::Input
    }

    fn family(&self) -> Family {
        Family::Input
    }
}
