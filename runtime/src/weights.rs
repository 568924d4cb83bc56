//! Saving and loading a `VarStore` as safetensors: atomically, and with an error that names
//! every missing, unexpected or wrongly shaped tensor.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use tch::{nn, Tensor};

use crate::RuntimeError;

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

/// Writes every variable to `path`, atomically (see [`write_atomic`]).
pub fn save(vs: &nn::VarStore, path: &Path) -> Result<(), RuntimeError> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    write_atomic(&mut variables, path)
}

/// Writes named tensors as safetensors (sorted by name) through a temporary file that is
/// synced and renamed into place, so that a crash leaves either the old file or the new one,
/// never half of one.
pub fn write_atomic(tensors: &mut [(String, Tensor)], path: &Path) -> Result<(), RuntimeError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp.safetensors", std::process::id()));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let result = Tensor::write_safetensors(tensors, &tmp).map_err(RuntimeError::from).and_then(|()| {
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(format!("cannot sync {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(io(format!("cannot move the weights to {}", path.display())))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is synced.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(format!("cannot sync {}", dir.display())))?;
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
