//! Saving and loading a `VarStore` as safetensors: atomically, and with an error that names
//! every missing, unexpected or wrongly shaped tensor. Training checkpoints are written here
//! too: weights files with the optimiser's state and nnc's bookkeeping beside the weights.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use nnc_compiler::ir::Graph;
use safetensors::tensor::SafeTensorError;
use safetensors::{Dtype, SafeTensors, View};
use tch::{nn, Kind, TchError, Tensor};

use crate::{write_atomic, RuntimeError};

/// A training checkpoint is a weights file with more entries, named under these prefixes: the
/// optimiser's state, and nnc's bookkeeping (step count, metrics). Loading weights skips them.
pub(crate) const OPTIM_PREFIX: &str = "optim.";
pub(crate) const META_PREFIX: &str = "nnc.";

/// Whether a tensor name in a safetensors file is checkpoint bookkeeping rather than a weight.
pub(crate) fn is_bookkeeping(name: &str) -> bool {
    name.starts_with(OPTIM_PREFIX) || name.starts_with(META_PREFIX)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Writes every variable to `path` as safetensors, atomically (see [`write_atomic`]).
pub fn save(vs: &nn::VarStore, path: &Path) -> Result<(), RuntimeError> {
    save_with(vs, &BTreeMap::new(), path)
}

/// Writes every variable to `path` as safetensors, atomically, with `metadata` in the file's
/// `__metadata__` (see [`provenance`]).
pub fn save_with(
    vs: &nn::VarStore,
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<(), RuntimeError> {
    let variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    write(&variables, metadata, path)
}

/// What made a weights file, for its `__metadata__`: the network, the values of its parameters
/// (`--set` ones included), nnc's version, and the `format` key that marks PyTorch tensors, as
/// Hugging Face's files carry it. A checkpoint adds its epoch.
pub fn provenance(graph: &Graph) -> BTreeMap<String, String> {
    // Typed, as `--format json` gives them: `{"classes": 10, "size": 96}`.
    let parameters: serde_json::Map<String, serde_json::Value> =
        graph.params.iter().map(|(k, v)| (k.clone(), nnc_compiler::back::json::parameter(v))).collect();
    BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("nnc_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("network".to_string(), graph.name.clone()),
        ("parameters".to_string(), serde_json::Value::Object(parameters).to_string()),
    ])
}

/// The `__metadata__` of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, RuntimeError> {
    let bytes = std::fs::read(path).map_err(io(format!("cannot read {}", path.display())))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|err| RuntimeError::Safetensors {
        path: path.display().to_string(),
        reason: explain(&err),
    })?;
    Ok(meta.metadata().clone().unwrap_or_default().into_iter().collect())
}

/// Writes named tensors as safetensors (sorted by dtype, then name, as the format's writer
/// orders them) with `metadata`, with [`write_atomic`], so that a crash leaves either the old
/// file or the new one.
pub fn write(
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<(), RuntimeError> {
    let stored = tensors
        .iter()
        .map(|(name, t)| Ok((name.as_str(), Stored::new(t)?)))
        .collect::<Result<Vec<_>, TchError>>()?;
    let metadata = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    let bytes = safetensors::serialize(stored, &metadata).map_err(|err| RuntimeError::Safetensors {
        path: path.display().to_string(),
        reason: explain(&err),
    })?;
    write_atomic(path, &bytes).map_err(io(format!("cannot write the weights to {}", path.display())))
}

/// A tensor as safetensors stores it; its bytes are copied out one tensor at a time as the
/// file is assembled. (tch writes safetensors only to a path, and ours go through
/// [`write_atomic`].)
struct Stored {
    tensor: Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl Stored {
    /// Refuses what tch's writer refuses: sparse tensors, and kinds the format has no dtype
    /// for. A tensor in another layout (a channels-last weight) is stored in the usual one.
    fn new(tensor: &Tensor) -> Result<Self, TchError> {
        if tensor.is_sparse() {
            return Err(TchError::Convert("Cannot save sparse tensors".to_string()));
        }
        let tensor = match tensor.is_contiguous() {
            true => tensor.shallow_clone(),
            false => tensor.f_contiguous()?,
        };
        let dtype = Dtype::try_from(tensor.kind())?;
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        Ok(Stored { tensor, dtype, shape })
    }
}

impl View for Stored {
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

/// How [`load_with`] treats a file whose tensors are not exactly what the model holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Convert floating-point tensors of another precision (F64, F16, BF16) to the model's
    /// F32. Integer and boolean tensors are refused even so: they never were a float model's
    /// weights, and converting them would hide a wrong file.
    pub cast: bool,
    /// Load tensors holding NaN or infinite values, and list them in [`Loaded::non_finite`],
    /// instead of refusing the file (`nnc eval` warns and measures them anyway).
    pub allow_non_finite: bool,
    /// How the caller lets casting happen (a flag such as `--cast`), named in the error when a
    /// floating-point tensor of another precision is refused; `None` when it cannot.
    pub cast_hint: Option<&'static str>,
}

/// What [`load_with`] loaded, besides the values.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Each tensor converted from another precision, with the file's dtype.
    pub cast: Vec<(String, Dtype)>,
    /// Each tensor holding values that are not finite (loaded only with `allow_non_finite`).
    pub non_finite: Vec<NonFinite>,
}

/// A tensor holding NaN or infinite values.
#[derive(Clone, Debug, PartialEq)]
pub struct NonFinite {
    pub name: String,
    /// How many of its values are NaN or infinite.
    pub count: i64,
    pub total: i64,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {} of {} values are NaN or infinite", self.name, self.count, self.total)
    }
}

/// How many values of a floating-point tensor are NaN or infinite (0 for other kinds, which
/// cannot hold them).
pub(crate) fn count_non_finite(t: &Tensor) -> i64 {
    if !t.is_floating_point() || t.numel() == 0 {
        return 0;
    }
    t.isfinite().logical_not().sum(Kind::Int64).int64_value(&[])
}

/// The tensors among `tensors` that hold NaN or infinite values, in order.
pub fn non_finite<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>) -> Vec<NonFinite> {
    tensors
        .into_iter()
        .filter_map(|(name, t)| {
            let count = count_non_finite(t);
            (count > 0).then(|| NonFinite { name: name.to_string(), count, total: t.numel() as i64 })
        })
        .collect()
}

/// Loads `path` into the variables of `vs`, strictly: every variable must be in the file with
/// its shape and dtype (F32) and finite values, and the file may hold nothing else (but a
/// training checkpoint's optimiser state and metrics); otherwise nothing is changed and the
/// error lists each problem.
pub fn load(vs: &mut nn::VarStore, path: &Path) -> Result<(), RuntimeError> {
    load_with(vs, path, &LoadOptions::default()).map(|_| ())
}

/// [`load`], with casting between floating-point precisions or non-finite values allowed as
/// `options` say.
pub fn load_with(vs: &mut nn::VarStore, path: &Path, options: &LoadOptions) -> Result<Loaded, RuntimeError> {
    let file: BTreeMap<String, Tensor> =
        read(path)?.into_iter().filter(|(n, _)| !is_bookkeeping(n)).collect();
    load_checked(vs, file, &path.display().to_string(), options)
}

/// Checks what [`load_map`] does not (dtypes, finiteness), then loads.
pub(crate) fn load_checked(
    vs: &mut nn::VarStore,
    mut file: BTreeMap<String, Tensor>,
    origin: &str,
    options: &LoadOptions,
) -> Result<Loaded, RuntimeError> {
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut problems = Vec::new();
    let mut loaded = Loaded::default();
    let mut refused_floats = false;
    for (name, t) in file.iter_mut() {
        let Some(var) = variables.get(name) else { continue };
        if t.kind() == var.kind() {
            continue;
        }
        let (theirs, ours) = (dtype_name(t.kind()), dtype_name(var.kind()));
        // nnc used to keep batch norm's counter as F32 (older checkpoints hold it so); it is an
        // integer, and a whole-valued F32 one is taken as one.
        if t.is_floating_point() && var.kind() == Kind::Int64 && name.ends_with("num_batches_tracked") {
            let whole =
                t.f_frac().and_then(|f| f.f_abs()).and_then(|f| f.f_max()).map(|m| m.double_value(&[]));
            if whole.is_ok_and(|m| m == 0.0) {
                *t = t.to_kind(Kind::Int64);
                continue;
            }
        }
        if t.is_floating_point() && options.cast {
            loaded.cast.push((name.clone(), Dtype::try_from(t.kind())?));
            *t = t.to_kind(var.kind());
        } else {
            refused_floats |= t.is_floating_point();
            let why = if t.is_floating_point() { "" } else { " (integers and booleans are never cast)" };
            problems
                .push(format!("  wrong dtype: `{name}` is {theirs} in the file, {ours} in the model{why}"));
        }
    }
    // Every misfit at once (dtypes, names, shapes), not some first and the rest after they are
    // fixed; values are checked in a file that fits.
    problems.extend(misfits(&variables, &file));
    if !problems.is_empty() {
        if let Some(flag) = options.cast_hint.filter(|_| refused_floats) {
            problems.push(format!("  help: {flag} converts floating-point tensors of another precision"));
        }
        return Err(RuntimeError::Weights { file: origin.to_string(), problems });
    }
    let bad =
        non_finite(file.iter().filter(|(n, _)| variables.contains_key(*n)).map(|(n, t)| (n.as_str(), t)));
    if !bad.is_empty() && !options.allow_non_finite {
        let tensors = bad.iter().map(|b| format!("  {b}")).collect();
        return Err(RuntimeError::NonFinite { file: origin.to_string(), tensors });
    }
    loaded.non_finite = bad;
    load_map(vs, &file, origin)?;
    Ok(loaded)
}

/// The safetensors name of a tensor kind (`F32`), or tch's where the format has none.
fn dtype_name(kind: Kind) -> String {
    Dtype::try_from(kind).map_or_else(|_| format!("{kind:?}"), |d| format!("{d:?}"))
}

/// Reads every tensor of a safetensors file, with errors that name the file and say in words
/// what is wrong with it (the format's own errors are enum names such as
/// `InvalidHeaderDeserialization`).
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>, RuntimeError> {
    let fail = |reason: String| RuntimeError::Safetensors { path: path.display().to_string(), reason };
    // A FIFO or a device would block or never end; weights are regular files.
    let meta = std::fs::metadata(path).map_err(io(format!("cannot read {}", path.display())))?;
    if !meta.is_file() {
        return Err(fail("it is not a regular file".to_string()));
    }
    let bytes = std::fs::read(path).map_err(io(format!("cannot read {}", path.display())))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| fail(explain(&e)))?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let kind = Kind::try_from(view.dtype()).map_err(|_| {
                fail(format!("tensor `{name}` is {:?}, which libtorch cannot hold", view.dtype()))
            })?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, kind)
                .map_err(|e| fail(format!("tensor `{name}` cannot be read: {e}")))?;
            Ok((name, t))
        })
        .collect()
}

/// The safetensors format's errors, in words.
fn explain(err: &SafeTensorError) -> String {
    match err {
        SafeTensorError::HeaderTooSmall => "it is shorter than the 8 bytes that start a safetensors file".into(),
        SafeTensorError::HeaderTooLarge => {
            "its first 8 bytes declare a header of more than 100 MB; it is not a safetensors file".into()
        }
        SafeTensorError::InvalidHeaderLength => {
            "its first 8 bytes declare a header longer than the file; it is truncated, or not a safetensors file"
                .into()
        }
        SafeTensorError::InvalidHeader => "its header is not UTF-8 text".into(),
        SafeTensorError::InvalidHeaderStart => "its header does not start with `{`; it is not a safetensors file".into(),
        SafeTensorError::InvalidHeaderDeserialization => {
            "its header is not the JSON table of tensors that safetensors files start with".into()
        }
        SafeTensorError::JsonError(e) => format!("its header is not valid JSON ({e})"),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and dtype".into()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("the byte range of tensor `{name}` overlaps another or leaves a gap")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "its length does not match its header: it is truncated or has bytes past its last tensor".into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape is too large to be real".into(),
        SafeTensorError::InvalidTensorView(dtype, shape, len) => {
            format!("a {dtype:?} tensor of shape {shape:?} does not fit its {len} bytes")
        }
        SafeTensorError::TensorNotFound(name) => format!("it has no tensor `{name}`"),
        SafeTensorError::IoError(e) => e.to_string(),
    }
}

/// The tensors of `file` that do not fit the model's `variables`: missing, of the wrong shape,
/// or unexpected, one line each.
fn misfits(variables: &BTreeMap<String, Tensor>, file: &BTreeMap<String, Tensor>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, var) in variables {
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
    problems
}

/// Copies named tensors into the variables of `vs`, under the same rules as [`load`];
/// `origin` names where they came from in the error.
pub fn load_map(
    vs: &mut nn::VarStore,
    file: &BTreeMap<String, Tensor>,
    origin: &str,
) -> Result<(), RuntimeError> {
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut problems = misfits(&variables, file);
    // Names of one tensor (tied weights, `lm_head.weight` and `wte.weight`) must be given one
    // value, or which one the model ends with would depend on the order of loading.
    if problems.is_empty() {
        let mut first: BTreeMap<usize, &String> = BTreeMap::new();
        for (name, var) in &variables {
            let at = var.data_ptr() as usize;
            match first.get(&at) {
                Some(other) if !file[name].equal(&file[*other]) => problems.push(format!(
                    "  tied: `{other}` and `{name}` are one tensor in the model, but differ in the file"
                )),
                Some(_) => {}
                None => {
                    first.insert(at, name);
                }
            }
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
