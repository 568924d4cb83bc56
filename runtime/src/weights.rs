//! Saving and loading a `VarStore` as safetensors: atomically, and with an error that names
//! every missing, unexpected or wrongly shaped tensor. Training checkpoints are written here
//! too: weights files with the optimiser's state and nnc's bookkeeping beside the weights.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, View};
use tch::{nn, TchError, Tensor};

use crate::{write_atomic, RuntimeError};

/// A training checkpoint is a weights file with more entries, named under these prefixes: the
/// optimiser's state, and nnc's bookkeeping (step count, metrics). Loading weights skips them.
pub(crate) const OPTIM_PREFIX: &str = "optim.";
pub(crate) const META_PREFIX: &str = "nnc.";

/// Whether a tensor name in a safetensors file is checkpoint bookkeeping rather than a weight.
fn is_bookkeeping(name: &str) -> bool {
    name.starts_with(OPTIM_PREFIX) || name.starts_with(META_PREFIX)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Writes every variable to `path` as safetensors, atomically (see [`write_atomic`]).
pub fn save(vs: &nn::VarStore, path: &Path) -> Result<(), RuntimeError> {
    let variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    write(&variables, path)
}

/// Writes named tensors as safetensors (sorted by dtype, then name, as the format's writer
/// orders them) with [`write_atomic`], so that a crash leaves either the old file or the new one.
pub(crate) fn write(tensors: &[(String, Tensor)], path: &Path) -> Result<(), RuntimeError> {
    let stored = tensors
        .iter()
        .map(|(name, t)| Ok((name.as_str(), Stored::new(t)?)))
        .collect::<Result<Vec<_>, TchError>>()?;
    let bytes = safetensors::serialize(stored, &None)
        .map_err(|err| TchError::SafeTensorError { path: path.display().to_string(), err })?;
    write_atomic(path, &bytes).map_err(io(format!("cannot write the weights to {}", path.display())))
}

/// A tensor as safetensors stores it; its bytes are copied out one tensor at a time as the
/// file is assembled. (tch writes safetensors only to a path, and ours go through
/// [`write_atomic`].)
struct Stored<'a> {
    tensor: &'a Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl<'a> Stored<'a> {
    /// Refuses what tch's writer refuses: sparse and non-contiguous tensors, and kinds the
    /// format has no dtype for.
    fn new(tensor: &'a Tensor) -> Result<Self, TchError> {
        if tensor.is_sparse() {
            return Err(TchError::Convert("Cannot save sparse tensors".to_string()));
        }
        if !tensor.is_contiguous() {
            return Err(TchError::Convert("Cannot save non contiguous tensors".to_string()));
        }
        let dtype = Dtype::try_from(tensor.kind())?;
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        Ok(Stored { tensor, dtype, shape })
    }
}

impl View for Stored<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let mut data = vec![0; self.data_len()];
        self.tensor
            .f_copy_data_u8(&mut data, self.tensor.numel())
            .expect("a dense, contiguous tensor of a checked kind copies out");
        data.into()
    }

    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

/// Loads `path` into the variables of `vs`. Every variable must be in the file with its shape,
/// and the file may hold nothing else (but a training checkpoint's optimiser state and
/// metrics); otherwise nothing is changed and the error lists each problem.
pub fn load(vs: &mut nn::VarStore, path: &Path) -> Result<(), RuntimeError> {
    if !path.is_file() {
        return Err(RuntimeError::Io {
            context: format!("cannot read weights from {}", path.display()),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let file: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path)?.into_iter().filter(|(n, _)| !is_bookkeeping(n)).collect();
    load_map(vs, &file, &path.display().to_string())
}

/// Copies named tensors into the variables of `vs`, under the same rules as [`load`];
/// `origin` names where they came from in the error.
pub fn load_map(
    vs: &mut nn::VarStore,
    file: &BTreeMap<String, Tensor>,
    origin: &str,
) -> Result<(), RuntimeError> {
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut problems = Vec::new();
    for (name, var) in &variables {
        match file.get(name) {
            None => problems.push(format!("  missing: `{name}` {:?}", var.size())),
            Some(t) if t.size() != var.size() => problems.push(format!(
                "  wrong shape: `{name}` is {:?} in the file, {:?} in the model",
                t.size(),
                var.size()
            )),
            Some(_) => {}
        }
    }
    for (name, t) in file {
        if !variables.contains_key(name) {
            problems.push(format!("  unexpected: `{name}` {:?} is not in the model", t.size()));
        }
    }
    if !problems.is_empty() {
        return Err(RuntimeError::Weights { file: origin.to_string(), problems });
    }
    tch::no_grad(|| {
        for (name, mut var) in variables {
            var.copy_(&file[&name].to_device(var.device()));
        }
    });
    Ok(())
}
