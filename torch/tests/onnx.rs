//! The ONNX back end against the interpreter: the file `nnc emit --target onnx` writes, with
//! nnc's weights in its initialisers, run in onnxruntime, computes nnc's outputs within 1e-5
//! (relative to the output's largest magnitude), for every seed network, every op fixture of
//! `parity/fixtures/ops/` (the real `torch.nn` module's output) and every zoo network at its
//! fixture's size. Runs only where Python has onnxruntime, numpy and safetensors (set
//! NNC_PYTHON to such a Python); elsewhere it says so and passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nnc_compiler::back::onnx;
use nnc_compiler::{compile, Graph, Options, Root};
use nnc_runtime::tch::{nn, Device, Kind, Tensor};
use nnc_runtime::{parity, weights, Init, Model};

fn python() -> Option<String> {
    let python = std::env::var("NNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import onnxruntime, numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// Runs each ONNX file of a list in onnxruntime on its inputs (`x.<name>` of its io file) and
/// prints its relative difference from the output `y` there; fails if any is over 1e-5.
const CHECK: &str = r#"
import sys, numpy as np, onnxruntime as ort
from safetensors.numpy import load_file
options = ort.SessionOptions()
options.log_severity_level = 3
worst = 0.0
for line in open(sys.argv[1]).read().split("\n"):
    if not line:
        continue
    case, model, io = line.split("\t")
    io = load_file(io)
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        assert sorted(names) == sorted(k[2:] for k in io if k.startswith("x.")), (names, list(io))
        y = session.run(None, {n: io["x." + n] for n in names})[0]
        ref = io["y"]
        assert y.shape == ref.shape, f"shape {y.shape} != nnc's {ref.shape}"
    except Exception as e:
        print(f"{case}: FAILED: {e}")
        worst = float("inf")
        continue
    diff = float(np.abs(y.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-6))
    worst = max(worst, diff)
    print(f"{case}: relative difference {diff:.3g}" + ("" if diff <= 1e-5 else "  <-- over 1e-5"))
sys.exit(0 if worst <= 1e-5 else 1)
"#;

/// The cases written so far: their names, ONNX files and io files, for one run of [`CHECK`].
struct Cases {
    dir: PathBuf,
    list: Vec<String>,
}

impl Cases {
    fn new(what: &str) -> Cases {
        let dir = std::env::temp_dir().join(format!("nnc-onnx-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Cases { dir, list: Vec::new() }
    }

    /// Writes `graph` as ONNX with the model's weights, and the inputs with nnc's output on
    /// them; `Err` with the writer's error where it has no spelling of a layer.
    fn add(
        &mut self,
        case: &str,
        graph: &Graph,
        vs: &nn::VarStore,
        inputs: &[(&str, Tensor)],
        y: &Tensor,
    ) -> Result<(), onnx::Error> {
        let variables = vs.variables();
        let mut from_vs = |name: &str, _: &nnc_compiler::ops::TensorSpec| -> Result<Vec<f32>, String> {
            let t = variables.get(name).ok_or_else(|| format!("no variable `{name}`"))?;
            Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).map_err(|e| e.to_string())
        };
        let bytes = onnx::emit(graph, &mut from_vs)?;
        let model = self.dir.join(format!("{case}.onnx"));
        std::fs::write(&model, bytes).unwrap();
        let io = self.dir.join(format!("{case}.io.safetensors"));
        let mut named: Vec<(String, Tensor)> =
            inputs.iter().map(|(n, t)| (format!("x.{n}"), t.contiguous())).collect();
        named.push(("y".into(), y.to_kind(Kind::Double).contiguous()));
        Tensor::write_safetensors(&named, &io).unwrap();
        self.list.push(format!("{case}\t{}\t{}", model.display(), io.display()));
        Ok(())
    }

    fn run(self, python: &str) {
        let list = self.dir.join("cases.tsv");
        std::fs::write(&list, self.list.join("\n")).unwrap();
        let out = Command::new(python).args(["-c", CHECK]).arg(&list).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprint!("{text}");
        assert!(out.status.success(), "onnxruntime's outputs differ from nnc's (above)");
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

fn build(path: &Path, overrides: &[(&str, &str)]) -> (Model, nn::VarStore) {
    let options = Options {
        overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Options::default()
    };
    let compiled = compile(Root::Path(path), &options);
    assert!(compiled.diagnostics.is_empty(), "{}: {:?}", path.display(), compiled.diagnostics);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    (model, vs)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A random float batch of `n` for the graph's first input.
fn random_input(model: &Model, n: i64) -> Tensor {
    let graph = model.graph();
    let dims: Vec<i64> =
        std::iter::once(n).chain(graph.node(graph.input()).shape.dims.iter().map(|&d| d as i64)).collect();
    Tensor::randn(dims.as_slice(), (Kind::Float, Device::Cpu))
}

/// A case's name, its `.net` file and its `--set` parameters.
type Case = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

#[test]
fn onnx_files_of_the_seed_networks_compute_nncs_outputs() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with onnxruntime, numpy and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let networks: [Case; 10] = [
        ("lenet", "models/lenet.net", &[]),
        ("lenet_bn", "models/lenet-bn.net", &[]),
        ("alexnet", "models/alexnet.net", &[("size", "96"), ("ratio", "8"), ("hidden", "64")]),
        ("vgg", "models/vgg11.net", &[("size", "32"), ("ratio", "16"), ("hidden", "64")]),
        ("nin", "models/nin.net", &[("size", "96"), ("ratio", "8")]),
        ("googlenet", "models/googlenet.net", &[("ratio", "8")]),
        ("resnet18", "models/resnet18.net", &[("size", "32"), ("ratio", "8")]),
        ("densenet", "models/densenet.net", &[]),
        ("resnet_1000", "models/resnet-1000.net", &[]),
        // Shared layers (one set of tensors read twice) and a tied weight.
        ("shared", "tests/ok/shared.net", &[]),
    ];
    let mut cases = Cases::new("seed");
    for (name, file, overrides) in networks {
        nnc_runtime::tch::manual_seed(5);
        let (model, vs) = build(&root().join(file), overrides);
        // One training-mode pass, so that batch norm's running statistics are not trivial.
        let _ = model.try_forward(&random_input(&model, 4), true).unwrap();
        let x = random_input(&model, 3);
        let y = nnc_runtime::tch::no_grad(|| model.try_forward(&x, false)).unwrap();
        let input = model.graph().node(model.graph().input()).name.clone();
        cases.add(name, model.graph(), &vs, &[(&input, x)], &y).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The five networks of one file, each chosen by name.
    for network in ["same", "tall_kernel", "wide_padding", "strided", "halved"] {
        let options = Options { network: Some(network.to_string()), ..Options::default() };
        let compiled = compile(Root::Path(&root().join("models/conv-examples.net")), &options);
        assert!(compiled.diagnostics.is_empty(), "{network}: {:?}", compiled.diagnostics);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
        let x = random_input(&model, 2);
        let y = nnc_runtime::tch::no_grad(|| model.try_forward(&x, false)).unwrap();
        cases.add(network, model.graph(), &vs, &[("input", x)], &y).unwrap();
    }
    // Several inputs, by name: int ids, floats and a bool mask that nothing reads.
    let text = "network tagger(len = 7) {
        input tokens [N, len] int
        input features [N, 3]
        words = tokens -> embedding(40, 6, padding_idx=0) -> mean(1)
        words * (features -> linear(6) -> sigmoid) -> linear(2)
    }";
    let compiled = compile(Root::Text { name: "tagger.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    let tokens = Tensor::randint(40, [3, 7], (Kind::Int64, Device::Cpu));
    let features = Tensor::randn([3, 3], (Kind::Float, Device::Cpu));
    let y = nnc_runtime::tch::no_grad(|| model.try_forward_inputs(&[&tokens, &features], false)).unwrap();
    cases.add("tagger", model.graph(), &vs, &[("tokens", tokens), ("features", features)], &y).unwrap();
    cases.run(&python);
}

/// The layers nnc has no ONNX spelling of yet; each of their fixtures must fail with an error
/// naming the layer, never a panic.
const UNSPELLED: &[&str] = &["lstm", "gru", "rnn"];

/// Whether a refusal is one the writer is known to make: a recurrent layer, or attention over
/// a memory or with a key padding mask (which its self-attention decomposition does not cover).
fn known_gap(e: &impl std::fmt::Display, op: &str) -> bool {
    UNSPELLED.iter().any(|l| op.starts_with(l))
        || e.to_string().contains("cross-attention and key padding masks have no ONNX spelling yet")
}

#[test]
fn onnx_files_match_every_op_fixture() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with onnxruntime, numpy and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let fixtures = root().join("parity/fixtures/ops");
    let mut paths: Vec<_> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut cases = Cases::new("ops");
    for path in paths {
        let case = path.file_stem().unwrap().to_string_lossy().into_owned();
        let fixture = parity::read_op(&path).unwrap();
        let text = fixture.network();
        let compiled = compile(Root::Text { name: "op.net", text: &text, dir: None }, &Options::default());
        assert!(compiled.diagnostics.is_empty(), "{case}: {:?}", compiled.diagnostics);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
        let prefix = fixture.state_prefix();
        let state: BTreeMap<String, Tensor> =
            fixture.state.iter().map(|(k, v)| (format!("{prefix}{k}"), v.shallow_clone())).collect();
        weights::load_map(&mut vs, &state, "the fixture").unwrap();
        // Every input, named as the network names them (a fixture of several feeds the further
        // ones by name: a memory, a mask, an initial state).
        let inputs = fixture.inputs();
        let y = nnc_runtime::tch::no_grad(|| model.try_forward_inputs(&inputs, false)).unwrap();
        let named: Vec<(&str, Tensor)> = model
            .graph()
            .inputs
            .iter()
            .zip(&inputs)
            .map(|(&id, t)| (model.graph().node(id).name.as_str(), t.shallow_clone()))
            .collect();
        match cases.add(&case, model.graph(), &vs, &named, &y) {
            Ok(()) => {
                assert!(!UNSPELLED.contains(&fixture.layer.as_str()), "{case}: now spelled; update UNSPELLED")
            }
            Err(onnx::Error::Layer(e)) if known_gap(&e, &e.op) => {
                let text = e.to_string();
                assert!(text.starts_with(&format!("layer `{}` ({}", e.layer, e.op)), "{case}: {text}");
                eprintln!("{case}: not written ({text})");
            }
            Err(e) => panic!("{case}: {e}"),
        }
    }
    cases.run(&python);
}

#[test]
fn onnx_files_of_the_zoo_compute_nncs_outputs() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with onnxruntime, numpy and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let dir = root().join("parity/fixtures/zoo");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut cases = Cases::new("zoo");
    for path in paths {
        let case = path.file_stem().unwrap().to_string_lossy().into_owned();
        let fixture = parity::read_zoo(&path).unwrap();
        let options = Options { overrides: fixture.overrides.clone(), ..Options::default() };
        let compiled = compile(Root::Path(&root().join(&fixture.net)), &options);
        assert!(compiled.diagnostics.is_empty(), "{case}: {:?}", compiled.diagnostics);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
        weights::load_map(&mut vs, &fixture.synthetic_state(), "the synthetic state").unwrap();
        let x = fixture.synthetic_input();
        let y = nnc_runtime::tch::no_grad(|| model.try_forward(&x, false)).unwrap();
        let input = model.graph().node(model.graph().input()).name.clone();
        match cases.add(&case, model.graph(), &vs, &[(&input, x)], &y) {
            Ok(()) => {}
            // The text classifier's LSTM.
            Err(e @ onnx::Error::Layer(_)) if case == "text_classifier" => {
                eprintln!("{case}: not written ({e})")
            }
            Err(e) => panic!("{case}: {e}"),
        }
    }
    cases.run(&python);
}
