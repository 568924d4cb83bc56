//! Parity with PyTorch: the fixtures `parity/make_fixtures.py` writes (a network's initial
//! weights, an input, PyTorch's outputs in eval and train mode, and its weights after one SGD
//! step) checked against a model built by nnc, and the per-op fixtures of
//! `parity/make_op_fixtures.py` (one real `torch.nn` module each) that the op conformance
//! harness reads.

use std::collections::BTreeMap;
use std::path::Path;

use nnc_compiler::ir::DType;
use tch::{nn, Kind, Tensor};

use crate::{weights, RuntimeError};

/// The seed both sides give the generator before the train-mode forward pass, so that dropout
/// draws the same masks (libtorch's generator is PyTorch's).
pub const DROPOUT_SEED: i64 = 123;
/// The learning rate of the fixture's SGD step.
pub const LR: f64 = 0.1;

/// libtorch's random generator is global: callers that run checks on several threads at once
/// hold this lock, so that each check's dropout masks come from its own seed.
pub static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Fixture {
    /// The `.net` file (in `models/`) and the `--set` parameters of the network it holds.
    pub net: String,
    pub overrides: Vec<(String, String)>,
    pub weights: BTreeMap<String, Tensor>,
    pub input: Tensor,
    pub labels: Tensor,
    pub output_eval: Tensor,
    pub output_train: Tensor,
    pub after_step: BTreeMap<String, Tensor>,
}

/// The safetensors header's metadata: 8 bytes of length, then JSON.
fn metadata(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len =
        bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize).unwrap_or(0);
    let header = bytes.get(8..8 + len).ok_or_else(|| format!("{}: truncated header", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = json.get("__metadata__").and_then(|m| m.as_object()).cloned().unwrap_or_default();
    Ok(meta.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_string()))).collect())
}

pub fn read(path: &Path) -> Result<Fixture, String> {
    let meta = metadata(path)?;
    let mut all: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path).map_err(|e| format!("{}: {e}", path.display()))?.into_iter().collect();
    let mut take = |name: &str| all.remove(name).ok_or_else(|| format!("{}: no `{name}`", path.display()));
    let (input, labels) = (take("fixture.input")?, take("fixture.labels")?);
    let (output_eval, output_train) = (take("fixture.output_eval")?, take("fixture.output_train")?);
    let (after, weights): (BTreeMap<_, _>, BTreeMap<_, _>) =
        all.into_iter().partition(|(k, _)| k.starts_with("fixture.after."));
    let after_step = after.into_iter().map(|(k, v)| (k["fixture.after.".len()..].to_string(), v)).collect();
    let overrides = meta
        .get("set")
        .map(|s| {
            s.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let net =
        meta.get("net").cloned().ok_or_else(|| format!("{}: no `net` in the metadata", path.display()))?;
    Ok(Fixture { net, overrides, weights, input, labels, output_eval, output_train, after_step })
}

/// How far nnc is from PyTorch: the largest difference relative to the reference's magnitude,
/// and where.
#[derive(Debug)]
pub struct Report {
    pub eval: f64,
    pub train: f64,
    pub step: f64,
    pub worst_after_step: String,
}

/// One op's fixture: an nnc call, the `torch.nn` module it stands for, that module's state and
/// its outputs on `input`.
pub struct OpFixture {
    /// nnc's layer name (`conv2d`), the call (`conv2d(8, 3, padding=1)`) and the input's sizes
    /// without the batch (`[3, 6, 6]`).
    pub layer: String,
    pub call: String,
    pub input_dims: String,
    /// The module's constructor (`nn.Conv2d(3, 8, 3, padding=1)`).
    pub torch: String,
    /// The module the call needs imported, for a block of the standard library
    /// (`std.shufflenet`).
    pub import: Option<String>,
    /// The input's element type: int for the ids an `embedding` reads (the metadata's
    /// `input_dtype`), float for every other fixture, whose metadata has no such key.
    pub input_dtype: DType,
    pub input: Tensor,
    /// The inputs after the first, for a call of several (an attention's memory and key
    /// padding mask), in order: the metadata's `inputs`, the tensors `input.<name>`. The
    /// network then names its first input `x`, and the call names these.
    pub further_inputs: Vec<FurtherInput>,
    pub output: Tensor,
    /// The train-mode output, computed just after seeding libtorch's generator with
    /// [`DROPOUT_SEED`], so that a dropout's mask is drawn alike.
    pub output_train: Tensor,
    /// The module's `state_dict` before either call, and after the train-mode call where that
    /// call changes it (batch norm's running statistics).
    pub state: BTreeMap<String, Tensor>,
    pub train_state: BTreeMap<String, Tensor>,
}

/// An op fixture's input after the first: its name, sizes without the batch, element type.
pub struct FurtherInput {
    pub name: String,
    pub dims: Vec<u64>,
    pub dtype: DType,
    pub tensor: Tensor,
}

impl OpFixture {
    /// Every input, the first and the further ones, in the network's order.
    pub fn inputs(&self) -> Vec<&Tensor> {
        std::iter::once(&self.input).chain(self.further_inputs.iter().map(|f| &f.tensor)).collect()
    }

    /// What the module's `state_dict` keys take in front in nnc: a layer's tensors are named
    /// under the layer (`conv2d.weight`); a std block's under `0`, as a network's lone block
    /// call is numbered (`0.self_attn.in_proj_weight`); the language's own operations (`param
    /// scale ...`) name theirs themselves.
    pub fn state_prefix(&self) -> String {
        match (nnc_compiler::ops::lookup(&self.layer), &self.import) {
            (Some(_), _) => format!("{}.", self.layer),
            (None, Some(_)) => "0.".to_string(),
            (None, None) => String::new(),
        }
    }

    /// A network that applies the fixture's call to its input, for nnc to check.
    pub fn network(&self) -> String {
        let dims = self.input_dims.trim_start_matches('[');
        let import = self.import.as_ref().map_or(String::new(), |m| format!("import {m}\n"));
        let dtype = match self.input_dtype {
            DType::Float => String::new(),
            other => format!(" {other}"),
        };
        if self.further_inputs.is_empty() {
            return format!(
                "{import}network {} {{\n    input [N, {dims}{dtype}\n    {}\n}}\n",
                self.layer, self.call
            );
        }
        let mut inputs = format!("    input x [N, {dims}{dtype}\n");
        for f in &self.further_inputs {
            let sizes: String = f.dims.iter().map(|d| format!(", {d}")).collect();
            let dtype = match f.dtype {
                DType::Float => String::new(),
                other => format!(" {other}"),
            };
            inputs += &format!("    input {} [N{sizes}]{dtype}\n", f.name);
        }
        format!("{import}network {} {{\n{inputs}    {}\n}}\n", self.layer, self.call)
    }
}

pub fn read_op(path: &Path) -> Result<OpFixture, String> {
    let meta = metadata(path)?;
    let field = |key: &str| {
        meta.get(key).cloned().ok_or_else(|| format!("{}: no `{key}` in the metadata", path.display()))
    };
    let mut all: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path).map_err(|e| format!("{}: {e}", path.display()))?.into_iter().collect();
    let mut prefixed = |prefix: &str| -> BTreeMap<String, Tensor> {
        let keys: Vec<String> = all.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.into_iter().map(|k| (k[prefix.len()..].to_string(), all.remove(&k).expect("listed"))).collect()
    };
    let (state, train_state) = (prefixed("state."), prefixed("train_state."));
    let input = all.remove("input").ok_or_else(|| format!("{}: no `input`", path.display()))?;
    let output = all.remove("output").ok_or_else(|| format!("{}: no `output`", path.display()))?;
    let input_dtype = match meta.get("input_dtype").map(String::as_str) {
        None => DType::Float,
        Some("int") => DType::Int,
        Some("bool") => DType::Bool,
        Some(other) => return Err(format!("{}: an unknown `input_dtype` {other:?}", path.display())),
    };
    let kind = match input_dtype {
        DType::Float => Kind::Float,
        DType::Int => Kind::Int64,
        DType::Bool => Kind::Bool,
    };
    if input.kind() != kind {
        return Err(format!("{}: the input is {:?}, not {input_dtype}", path.display(), input.kind()));
    }
    let listed: Vec<(String, Vec<u64>, String)> = match meta.get("inputs") {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("{}: `inputs`: {e}", path.display()))?,
        None => Vec::new(),
    };
    let mut further_inputs = Vec::new();
    for (name, dims, dtype) in listed {
        let (dtype, kind) = match dtype.as_str() {
            "float" => (DType::Float, Kind::Float),
            "bool" => (DType::Bool, Kind::Bool),
            other => return Err(format!("{}: `{name}` has an unknown type {other:?}", path.display())),
        };
        let tensor = all
            .remove(&format!("input.{name}"))
            .ok_or_else(|| format!("{}: no `input.{name}`", path.display()))?;
        let sizes: Vec<i64> =
            std::iter::once(input.size()[0]).chain(dims.iter().map(|&d| d as i64)).collect();
        if tensor.kind() != kind || tensor.size() != sizes {
            return Err(format!("{}: `input.{name}` is not {sizes:?} {dtype}", path.display()));
        }
        further_inputs.push(FurtherInput { name, dims, dtype, tensor });
    }
    Ok(OpFixture {
        layer: field("layer")?,
        call: field("call")?,
        input_dims: field("input")?,
        torch: field("torch")?,
        import: meta.get("import").cloned(),
        input_dtype,
        input,
        further_inputs,
        output,
        output_train: all
            .remove("output_train")
            .ok_or_else(|| format!("{}: no `output_train`", path.display()))?,
        state,
        train_state,
    })
}

/// The largest difference between `a` and the reference `b`, relative to `b`'s magnitude.
pub fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double).to_device(a.device()));
    let diff = (&a - &b).abs().max().double_value(&[]);
    diff / b.abs().max().double_value(&[]).max(1e-6)
}

/// Loads the fixture's weights into `vs`, runs `forward` in both modes and one SGD step, and
/// measures every difference. A name or shape that does not match is an error naming it.
pub fn check(
    fixture: &Fixture,
    vs: &mut nn::VarStore,
    forward: &dyn Fn(&Tensor, bool) -> Result<Tensor, RuntimeError>,
) -> Result<Report, RuntimeError> {
    weights::load_map(vs, &fixture.weights, "the fixture")?;
    let device = vs.device();
    let x = fixture.input.to_device(device);
    let eval = tch::no_grad(|| forward(&x, false))?;
    tch::manual_seed(DROPOUT_SEED);
    let train = forward(&x, true)?;
    let loss = train.cross_entropy_for_logits(&fixture.labels.to_device(device));
    for p in vs.trainable_variables() {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    loss.backward();
    tch::no_grad(|| {
        for mut p in vs.trainable_variables() {
            let g = p.grad();
            if g.defined() {
                let _ = p.g_sub_(&(g * LR));
            }
        }
    });
    let mut step = 0.0;
    let mut worst_after_step = String::new();
    for (name, var) in vs.variables() {
        let reference = fixture.after_step.get(&name).ok_or_else(|| RuntimeError::Weights {
            file: "the fixture".into(),
            problems: vec![format!("  missing after the step: `{name}`")],
        })?;
        let r = relative(&var, reference);
        if r > step || worst_after_step.is_empty() {
            (step, worst_after_step) = (r, name);
        }
    }
    Ok(Report {
        eval: relative(&eval, &fixture.output_eval),
        train: relative(&train, &fixture.output_train),
        step,
        worst_after_step,
    })
}

/// A synthetic tensor that `parity/synthetic.py` computes bit for bit: a zoo fixture holds a
/// network's output, and both sides make its weights and input from their names alone (the
/// rule and why are in that file). `num_batches_tracked` is an int64 zero; everything else is
/// float32.
pub fn synthetic(name: &str, shape: &[i64]) -> Tensor {
    if name.ends_with("num_batches_tracked") {
        return Tensor::zeros(shape, (Kind::Int64, tch::Device::Cpu));
    }
    let n: i64 = shape.iter().product();
    let u = synthetic_uniform(name, n as u64);
    let last = |suffix: &str| name.ends_with(suffix);
    let values: Vec<f32> = if name == "input" {
        u
    } else if last("running_var") {
        u.iter().map(|u| 1.0f32 + 0.5f32 * u).collect()
    } else if last("running_mean") || (shape.len() == 1 && last("bias")) {
        u.iter().map(|u| 0.1f32 * u).collect()
    } else if shape.len() == 1 {
        u.iter().map(|u| 1.0f32 + 0.1f32 * u).collect()
    } else {
        let fan_in = match shape.first() {
            Some(&rows) if rows > 0 => (n / rows).max(1),
            _ => 1,
        };
        let scale = (3.0f64 / fan_in as f64).sqrt() as f32;
        u.iter().map(|u| u * scale).collect()
    };
    Tensor::from_slice(&values).reshape(shape)
}

/// `n` float32 values in [-1, 1), a function of `name` and their position: splitmix64 over
/// the name's FNV-1a hash plus the position times the golden ratio, top 24 bits.
fn synthetic_uniform(name: &str, n: u64) -> Vec<f32> {
    let hash =
        name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3));
    (0..n)
        .map(|i| {
            let mut z = hash.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// A zoo fixture (`parity/fixtures/zoo/`, written by `parity/zoo.py --write-fixtures`): the
/// reference network's state_dict names and shapes and its output on the synthetic input with
/// the synthetic weights of [`synthetic`], which the fixture does not store.
pub struct ZooFixture {
    /// The `.net` file, relative to the repository, and its `--set` values.
    pub net: String,
    pub overrides: Vec<(String, String)>,
    /// The reference's state_dict: each name with its shape.
    pub state: BTreeMap<String, Vec<i64>>,
    /// The names of the state_dict that are another's tensor (tied weights), with that
    /// tensor's first name, whose synthetic values they take.
    pub tied: BTreeMap<String, String>,
    /// The input's sizes, batch included.
    pub input: Vec<i64>,
    pub output: Tensor,
    /// The auxiliary classifier's output in training mode, for a reference that has one
    /// (Inception-v3): nnc's second output in training mode.
    pub aux_train: Option<Tensor>,
    /// The input, where the fixture stores it (token ids, which are no synthetic floats).
    pub stored_input: Option<Tensor>,
}

impl ZooFixture {
    /// The synthetic state_dict, which loads into a model with the reference's names.
    pub fn synthetic_state(&self) -> BTreeMap<String, Tensor> {
        self.state
            .iter()
            .map(|(name, shape)| (name.clone(), synthetic(self.tied.get(name).unwrap_or(name), shape)))
            .collect()
    }

    /// The input: the stored one, else the synthetic one.
    pub fn synthetic_input(&self) -> Tensor {
        match &self.stored_input {
            Some(input) => input.shallow_clone(),
            None => synthetic("input", &self.input),
        }
    }
}

pub fn read_zoo(path: &Path) -> Result<ZooFixture, String> {
    let meta = metadata(path)?;
    // A metadata field that holds JSON, as the type it is read into.
    fn json<T: serde::de::DeserializeOwned>(
        meta: &BTreeMap<String, String>,
        key: &str,
        path: &Path,
    ) -> Result<T, String> {
        let text = meta.get(key).ok_or_else(|| format!("{}: no `{key}` in its metadata", path.display()))?;
        serde_json::from_str(text).map_err(|e| format!("{}: `{key}`: {e}", path.display()))
    }
    let overrides: BTreeMap<String, String> = json(&meta, "set", path)?;
    let state: Vec<(String, Vec<i64>)> = json(&meta, "state", path)?;
    let mut tensors: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path).map_err(|e| format!("{}: {e}", path.display()))?.into_iter().collect();
    let output = tensors.remove("output").ok_or_else(|| format!("{}: no `output` tensor", path.display()))?;
    let aux_train = tensors.remove("aux_train");
    let stored_input = tensors.remove("input");
    Ok(ZooFixture {
        net: meta
            .get("net")
            .cloned()
            .ok_or_else(|| format!("{}: no `net` in its metadata", path.display()))?,
        overrides: overrides.into_iter().collect(),
        state: state.into_iter().collect(),
        tied: match meta.contains_key("tied") {
            true => json(&meta, "tied", path)?,
            false => BTreeMap::new(),
        },
        input: json(&meta, "input", path)?,
        output,
        aux_train,
        stored_input,
    })
}
