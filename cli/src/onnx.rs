//! `nnc emit --target onnx`: the model as an ONNX file, its initialisers filled from a
//! checkpoint (`--weights`, nnc's safetensors) or drawn as PyTorch initialises its layers
//! (`--seed`), written to `--output` atomically, or to a stdout that is not a terminal.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use nnc_compiler::back::onnx;
use nnc_compiler::input::read_regular;
use nnc_compiler::ops::TensorSpec;
use nnc_compiler::Graph;
use safetensors::{Dtype, SafeTensors};

use crate::Outcome;

/// The largest checkpoint read: an ONNX file in one piece cannot exceed protobuf's 2 GiB anyway.
const MAX_WEIGHTS: u64 = 4 << 30;

pub fn emit(graph: &Graph, weights: Option<&Path>, seed: u64, output: Option<&Path>) -> io::Result<Outcome> {
    if output.is_none() && io::stdout().is_terminal() {
        eprintln!("error: an ONNX file is binary; write it with --output FILE (or redirect stdout)");
        return Ok(Outcome::UsageError);
    }
    let bytes = match weights {
        Some(path) => {
            let data = match read_regular(path, MAX_WEIGHTS) {
                Ok(data) => data,
                Err(e) => {
                    eprintln!("error: cannot read the weights `{}`: {}", path.display(), e);
                    return Ok(Outcome::UsageError);
                }
            };
            let file = match SafeTensors::deserialize(&data) {
                Ok(file) => file,
                Err(e) => {
                    eprintln!("error: `{}` is not a safetensors file: {e:?}", path.display());
                    return Ok(Outcome::UsageError);
                }
            };
            let mut from_file = |name: &str, spec: &TensorSpec| tensor(&file, path, name, spec);
            onnx::emit(graph, &mut from_file)
        }
        None => {
            eprintln!(
                "note: without --weights, the initialisers are drawn as PyTorch initialises its layers \
                 (seed {seed}): the file runs, but computes nothing trained"
            );
            onnx::emit(graph, &mut onnx::initial_weights(seed))
        }
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e @ onnx::Error::Layer(_)) => {
            eprintln!("error: {e}");
            return Ok(Outcome::ModelError);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Outcome::UsageError);
        }
    };
    match output {
        Some(path) => crate::write_output(path, &bytes)?,
        None => io::stdout().lock().write_all(&bytes)?,
    }
    Ok(Outcome::Ok)
}

/// The values of `name` in the checkpoint: F32, of the layer's sizes.
fn tensor(file: &SafeTensors<'_>, path: &Path, name: &str, spec: &TensorSpec) -> Result<Vec<f32>, String> {
    let view = file.tensor(name).map_err(|_| {
        format!("`{}` has no tensor `{name}`, which the network's ONNX graph reads", path.display())
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(format!(
            "`{name}` is {:?} in `{}`; the ONNX writer takes F32 weights",
            view.dtype(),
            path.display()
        ));
    }
    let dims: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
    if dims[..] != spec.dims[..] {
        return Err(format!(
            "`{name}` is {dims:?} in `{}`, but the network's layer has {:?}",
            path.display(),
            &spec.dims[..]
        ));
    }
    Ok(view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}
