//! `param name [dims] = init`: a learnable tensor declared in a block or network (a layer
//! scale, a class token, a position embedding), which expressions use as a value. It has
//! exactly its declared sizes, no batch, and is itself the `state_dict` entry, named by the
//! declaration alone (`features.1.0.layer_scale`), as an `nn.Parameter` attribute is in
//! PyTorch. The language declares it, so it has no signature.

use std::borrow::Cow;
use std::fmt;

use super::onnx::{Onnx, OnnxError};

use super::layer::{py_float, py_tuple};
use super::{attributes, InitRule, Layer, PyTorch, TensorSpec};

attributes! {
    pub struct Param {
        pub dims: Cow<'static, [u64]>,
        /// `InitRule::Const` or `InitRule::Normal`, the two a declaration can write.
        pub init: InitRule,
    }
}

impl Layer for Param {
    /// The tensor itself, an initialiser.
    fn onnx(&self, g: &mut Onnx, _: &[String]) -> Result<String, OnnxError> {
        g.tensor("")
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<String> = self.dims.iter().map(u64::to_string).collect();
        write!(f, "param [{}]", sizes.join(", "))?;
        match self.init {
            InitRule::Normal { std } => write!(f, ", normal(std={})", py_float(std)),
            InitRule::Const(value) => write!(f, ", {}", py_float(value)),
            _ => Ok(()),
        }
    }

    /// The tensor is the layer: its name is the declaration's alone.
    fn tensors(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::trained("", &self.dims, self.init)]
    }

    fn pytorch(&self, _: &[String]) -> PyTorch {
        let dims = py_tuple(&self.dims);
        PyTorch::Parameter(match self.init {
            InitRule::Normal { std } => {
                format!("nn.Parameter(torch.empty{dims}.normal_(std={}))", py_float(std))
            }
            InitRule::Const(value) => format!("nn.Parameter(torch.full({dims}, {}))", py_float(value)),
            // A declaration writes only the two rules above.
            _ => format!("nn.Parameter(torch.zeros({dims}))"),
        })
    }
}
