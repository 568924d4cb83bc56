//! Parameter initialisation, as PyTorch's layers do it by default or as d2l's `train_ch6`
//! does it (Xavier-uniform weights for convolutions and linear layers).

use tch::{nn, TchError, Tensor};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's defaults: weights and biases uniform in ±1/√fan_in (Kaiming-uniform with
    /// a = √5, as `nn.Conv2d` and `nn.Linear` reset their parameters).
    #[default]
    PyTorch,
    /// Weights uniform in ±√(6 / (fan_in + fan_out)); biases as PyTorch's defaults.
    XavierUniform,
}

/// A weight `name` of shape `dims` (`[out, in, kernel...]`) under `path`.
pub fn weight(path: &nn::Path, name: &str, dims: &[i64], init: Init) -> Result<Tensor, TchError> {
    // In floating point: the sizes are the model's, and their product may not fit an i64.
    let receptive: f64 = dims[2..].iter().map(|&d| d as f64).product();
    let fan_in = dims[1] as f64 * receptive;
    let fan_out = dims[0] as f64 * receptive;
    let bound = match init {
        Init::PyTorch => 1.0 / fan_in.sqrt(),
        Init::XavierUniform => (6.0 / (fan_in + fan_out)).sqrt(),
    };
    uniform(path, name, dims, bound)
}

/// A tensor `name` of shape `dims`, uniform in ±`bound`.
pub fn uniform(path: &nn::Path, name: &str, dims: &[i64], bound: f64) -> Result<Tensor, TchError> {
    path.f_var(name, dims, nn::Init::Uniform { lo: -bound, up: bound })
}
