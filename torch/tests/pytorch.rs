//! The PyTorch back end: for every seed network, the module `nnc emit --target pytorch` writes,
//! loaded with nnc's weights (and with a training checkpoint, optimiser state and all), computes
//! nnc's outputs. Runs only where Python has PyTorch and safetensors (set NNC_PYTHON to such a
//! Python); elsewhere it says so and passes.

use std::path::Path;
use std::process::Command;

use nnc_compiler::back::pytorch;
use nnc_compiler::{compile, Options, Root};
use nnc_runtime::data::Dataset;
use nnc_runtime::tch::{nn, Device, Kind, Tensor};
use nnc_runtime::train::{Optimizer, Quiet, TrainConfig, Trainer};
use nnc_runtime::{weights, Init, Model};

fn python() -> Option<String> {
    let python = std::env::var("NNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// Loads the emitted module with nnc's weights and checks that it computes nnc's output, also
/// after the tools PyTorch users apply: `convert_sync_batchnorm` (whose new modules `forward`
/// must run), `torch.jit.script`, `torch.fx.symbolic_trace` and `torch.export`; and, where
/// torchinfo is installed, that torchinfo's layer rows (name, output shape, parameters,
/// multiply-adds) are nnc's, in order.
const CHECK: &str = r#"
import copy, importlib.util, json, sys, torch
from torch import nn
from safetensors.torch import load_file
spec = importlib.util.spec_from_file_location("emitted", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = getattr(m, sys.argv[2])()
m.load_nnc_checkpoint(net, sys.argv[3])
io = load_file(sys.argv[4])
rows = json.loads(open(sys.argv[5]).read())
x, ref = io["x"], io["y"]
net.eval()

def diff(y):
    return ((y - ref).abs().max() / ref.abs().max().clamp(min=1e-6)).item()

results = {}
with torch.no_grad():
    results["eager"] = diff(net(x))
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(net)).eval()
    sync_modules = [mod for mod in synced.modules() if isinstance(mod, nn.SyncBatchNorm)]
    batch_norms = [mod for mod in net.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    assert len(sync_modules) == len(batch_norms), "convert_sync_batchnorm missed a batch norm"
    calls = []
    for mod in sync_modules:
        mod.register_forward_hook(lambda *_: calls.append(1))
    results["sync_batchnorm"] = diff(synced(x))
    assert len(calls) == len(sync_modules), f"forward ran {len(calls)} of {len(sync_modules)} SyncBatchNorms"
    results["jit.script"] = diff(torch.jit.script(net)(x))
    results["fx"] = diff(torch.fx.symbolic_trace(net)(x))
    results["export"] = diff(torch.export.export(net, (x,)).module()(x))
try:
    from torchinfo import summary
except ImportError:
    summary = None
if summary is not None and rows is not None:
    info = summary(net, input_data=x, verbose=0, depth=1000)
    batch = x.shape[0]
    theirs = [[l.var_name, list(l.output_size), l.num_params, l.macs // batch] for l in info.summary_list if l.is_leaf_layer]
    assert theirs == rows, f"torchinfo rows differ: {theirs} != nnc's {rows}"
    results["torchinfo rows"] = len(theirs)
print(sys.argv[2] + ": " + ", ".join(f"{k} {v:.3g}" for k, v in results.items()))
sys.exit(0 if all(v <= 1e-5 for k, v in results.items() if k != "torchinfo rows") else 1)
"#;

/// Runs `model` in nnc, then the emitted module in PyTorch with the same weights and input.
fn compare(
    python: &str,
    name: &str,
    model: &Model,
    vs: &nn::VarStore,
    weights_file: &Path,
    dir: &Path,
    source: &str,
) {
    let graph = model.graph();
    let input = &graph.node(graph.input()).shape;
    let dims: Vec<i64> = std::iter::once(2).chain(input.dims.iter().map(|&d| d as i64)).collect();
    let x = Tensor::randn(dims.as_slice(), (Kind::Float, Device::Cpu));
    let y = nnc_runtime::tch::no_grad(|| model.try_forward(&x, false)).unwrap();
    let io = dir.join(format!("{name}.io.safetensors"));
    Tensor::write_safetensors(&[("x", &x), ("y", &y)], &io).unwrap();
    if !weights_file.exists() {
        weights::save(vs, weights_file).unwrap();
    }
    let module = dir.join(format!("{name}.py"));
    std::fs::write(&module, pytorch::emit(graph, source).unwrap()).unwrap();
    let class = nnc_compiler::back::codegen::type_name(&graph.name).to_string();
    let rows = dir.join(format!("{name}.rows.json"));
    std::fs::write(&rows, layer_rows(graph, 2).to_string()).unwrap();
    let out = Command::new(python)
        .args(["-c", CHECK])
        .arg(&module)
        .arg(&class)
        .arg(weights_file)
        .arg(&io)
        .arg(&rows)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| !l.contains("Warning") && !l.trim_start().starts_with("cpu ="))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(out.status.success(), "{name}: {text}");
}

/// nnc's rows for the layers that are modules (not joins): the name's last segment, the
/// output shape at batch `batch`, the trained parameters and the multiply-adds per example, as
/// torchinfo lists its leaves; `null` (no comparison) for a network with shared layers or tied
/// tensors, which torchinfo counts otherwise: a module called again with its parameters each
/// time, and a tied weight under each module that holds it.
fn layer_rows(graph: &nnc_compiler::Graph, batch: i64) -> serde_json::Value {
    if graph.nodes.iter().any(|n| n.shares.is_some() || !n.ties.is_empty()) {
        return serde_json::Value::Null;
    }
    let rows: Vec<serde_json::Value> = graph
        .nodes
        .iter()
        .skip(1)
        .filter(|n| {
            let xs = vec![String::new(); n.inputs.len()];
            matches!(n.op.layer().pytorch(&xs), nnc_compiler::ops::PyTorch::Module(_))
        })
        .map(|n| {
            let name = n.name.rsplit('.').next().unwrap_or(&n.name);
            serde_json::json!([name, n.shape.sizes(batch), n.params, n.macs])
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// A fixture's name, its `.net` file and its `--set` parameters.
type Case = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

fn build(file: &str, overrides: &[(&str, &str)]) -> (Model, nn::VarStore) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
    let options = Options {
        overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Options::default()
    };
    let compiled = compile(Root::Path(&path), &options);
    assert!(compiled.diagnostics.is_empty(), "{file}: {:?}", compiled.diagnostics);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    (model, vs)
}

#[test]
fn emitted_pytorch_modules_reproduce_nnc() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with torch and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("nnc-pytorch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let networks: [Case; 8] = [
        ("lenet", "lenet.net", &[]),
        ("lenet_bn", "lenet-bn.net", &[]),
        ("alexnet", "alexnet.net", &[("size", "96"), ("ratio", "8"), ("hidden", "64")]),
        ("vgg", "vgg11.net", &[("size", "32"), ("ratio", "16"), ("hidden", "64")]),
        ("nin", "nin.net", &[("size", "96"), ("ratio", "8")]),
        ("googlenet", "googlenet.net", &[("ratio", "8")]),
        ("resnet18", "resnet18.net", &[("size", "32"), ("ratio", "8")]),
        // Shared layers (a module called again) and a tied weight.
        ("shared", "../tests/ok/shared.net", &[]),
    ];
    for (name, file, overrides) in networks {
        nnc_runtime::tch::manual_seed(5);
        let (model, vs) = build(file, overrides);
        // One training-mode pass, so that batch norm's running statistics are not trivial.
        let dims: Vec<i64> = std::iter::once(4)
            .chain(model.graph().node(model.graph().input()).shape.dims.iter().map(|&d| d as i64))
            .collect();
        let _ = model.try_forward(&Tensor::randn(dims.as_slice(), (Kind::Float, Device::Cpu)), true).unwrap();
        compare(&python, name, &model, &vs, &dir.join(format!("{name}.safetensors")), &dir, file);
    }

    // A checkpoint of `nnc train` (optimiser state and metrics included) loads as it is.
    let (model, mut vs) = build("lenet-bn.net", &[]);
    let images = (Tensor::rand([64, 1, 28, 28], (Kind::Float, Device::Cpu)) * 255.0).to_kind(Kind::Uint8);
    let data = Dataset { images, labels: Tensor::randint(10, [64], (Kind::Int64, Device::Cpu)) };
    let checkpoint = dir.join("trained.safetensors");
    let config = TrainConfig {
        epochs: 1,
        batch: 16,
        lr: 0.1,
        optimizer: Optimizer::Sgd { momentum: 0.9, weight_decay: 0.0 },
        seed: 0,
        resize: None,
        device: Device::Cpu,
        checkpoint: Some(checkpoint.clone()),
        stop_on_divergence: true,
        layout: nnc_runtime::Layout::Contiguous,
        measure_conv_layouts: true,
    };
    Trainer::new(&model, &mut vs, config).run(&data, &data, &mut Quiet).unwrap();
    compare(&python, "trained", &model, &vs, &checkpoint, &dir, "lenet-bn.net");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// For each op fixture (`parity/fixtures/ops/`, from the real `torch.nn` modules): the emitted
/// module's `state_dict` has the real module's names and shapes under the layer's name, loads
/// the fixture's state strictly, and computes the real module's outputs.
const CHECK_OP: &str = r#"
import importlib.util, json, sys, torch, torchvision
from torch import nn
from safetensors import safe_open
from safetensors.torch import load_file
sys.path.insert(0, sys.argv[6])
from make_op_fixtures import EncoderLayer, Lambda, SelfAttention, WithParam, LSTMOutput, GRUOutput, RNNOutput, States
from make_op_fixtures import Attention, DecoderLayer
spec = importlib.util.spec_from_file_location("emitted", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = getattr(m, sys.argv[2])()
with safe_open(sys.argv[3], framework="pt") as f:
    meta = f.metadata()
fixture = load_file(sys.argv[3])
prefix = sys.argv[5]
env = {"nn": nn, "torch": torch, "torchvision": torchvision, "Lambda": Lambda, "WithParam": WithParam}
env.update({"SelfAttention": SelfAttention, "EncoderLayer": EncoderLayer})
env.update({"Attention": Attention, "DecoderLayer": DecoderLayer})
env.update({"LSTMOutput": LSTMOutput, "GRUOutput": GRUOutput, "RNNOutput": RNNOutput, "States": States})
real = eval(meta["torch"], env)
ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
theirs = [(f"{prefix}{k}", list(v.shape)) for k, v in real.state_dict().items()]
# Key for key and shape for shape; the order is the graph's, which for a std block can differ
# from the order its torch.nn module registers (TransformerEncoderLayer's norms come last), and
# which loading by name does not read.
assert sorted(ours) == sorted(theirs), f"state_dict {ours} != torch.nn's {theirs}"
state = {f"{prefix}{k[len('state.'):]}": v.clone() for k, v in fixture.items() if k.startswith("state.")}
net.load_state_dict(state, strict=True)
x = fixture["input"].clone()
# A call of several inputs: the network's forward takes them by name, the first as `x`.
further = {name: fixture[f"input.{name}"].clone() for name, _, _ in json.loads(meta.get("inputs", "[]"))}
worst = 0.0
for mode, key in ((False, "output"), (True, "output_train")):
    torch.manual_seed(123)  # nnc_runtime::parity::DROPOUT_SEED, as the fixture was made
    with torch.no_grad():
        y = net.train(mode)(x, **further)
    ref = fixture[key]
    worst = max(worst, ((y - ref).abs().max() / ref.abs().max().clamp(min=1e-6)).item())
print(f"{sys.argv[4]}: relative difference {worst:.3g}")
sys.exit(0 if worst <= 1e-5 else 1)
"#;

/// Writes the module `nnc emit --target pytorch` makes of `graph` into `dir` and runs `script`
/// on it with `python`: the script's arguments are the module's path, its class and `args`.
/// Fails, with the script's output, if the script does.
fn run_emitted(
    python: &str,
    script: &str,
    graph: &nnc_compiler::Graph,
    dir: &Path,
    case: &str,
    args: &[&std::ffi::OsStr],
) {
    let module = dir.join(format!("{case}.py"));
    std::fs::write(&module, pytorch::emit(graph, case).unwrap()).unwrap();
    let class = nnc_compiler::back::codegen::type_name(&graph.name).to_string();
    let out = Command::new(python).args(["-c", script]).arg(&module).arg(&class).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprint!("{text}");
    assert!(out.status.success(), "{case}: {text}");
}

#[test]
fn emitted_modules_match_every_op_fixture() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with torch and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity/fixtures/ops");
    let dir = std::env::temp_dir().join(format!("nnc-pytorch-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths: Vec<_> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        let case = path.file_stem().unwrap().to_string_lossy().into_owned();
        let fixture = nnc_runtime::parity::read_op(&path).unwrap();
        let text = fixture.network();
        let compiled = compile(Root::Text { name: "op.net", text: &text, dir: None }, &Options::default());
        assert!(compiled.diagnostics.is_empty(), "{case}: {:?}", compiled.diagnostics);
        let prefix = fixture.state_prefix();
        let parity = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity");
        let args = [path.as_os_str(), case.as_ref(), prefix.as_ref(), parity.as_os_str()];
        run_emitted(&python, CHECK_OP, &compiled.graphs[0], &dir, &case, &args);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// For each zoo fixture (`parity/fixtures/zoo/`, from torchvision): the module `nnc emit
/// --target pytorch` writes has torchvision's state_dict, key for key, loads the fixture's
/// synthetic state (`parity/synthetic.py`) strictly, and computes torchvision's output.
const CHECK_ZOO: &str = r#"
import importlib.util, json, sys, torch
from safetensors import safe_open
sys.path.insert(0, sys.argv[4])
import synthetic
spec = importlib.util.spec_from_file_location("emitted", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = getattr(m, sys.argv[2])().eval()
with safe_open(sys.argv[3], framework="pt") as f:
    meta = f.metadata()
    output = f.get_tensor("output")
    stored = f.get_tensor("input") if "input" in f.keys() else None  # token ids
    aux = f.get_tensor("aux_train") if "aux_train" in f.keys() else None
state = json.loads(meta["state"])
ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
assert sorted(ours) == sorted((k, s) for k, s in state), "state_dict differs from torchvision's"
tied = json.loads(meta.get("tied", "{}"))  # a tied name takes its tensor's first name's values
net.load_state_dict({k: torch.from_numpy(synthetic.tensor(tied.get(k, k), tuple(s))) for k, s in state}, strict=True)
x = stored if stored is not None else torch.from_numpy(synthetic.tensor("input", tuple(json.loads(meta["input"]))))
with torch.no_grad():
    y = net(x)
worst = ((y - output).abs().max() / output.abs().max()).item()
if aux is not None:
    # The auxiliary classifier: returned second in training mode alone.
    with torch.no_grad():
        outs = net.train()(x)
    worst = max(worst, ((outs[1] - aux).abs().max() / aux.abs().max()).item())
print(f"{sys.argv[5]}: relative difference {worst:.3g}")
sys.exit(0 if worst <= 1e-5 else 1)
"#;

#[test]
fn emitted_zoo_modules_match_torchvision() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with torch and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("nnc-pytorch-zoo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = root.join("parity/fixtures/zoo");
    let mut paths: Vec<_> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        let case = path.file_stem().unwrap().to_string_lossy().into_owned();
        let fixture = nnc_runtime::parity::read_zoo(&path).unwrap();
        let options = Options { overrides: fixture.overrides, ..Options::default() };
        let compiled = compile(Root::Path(&root.join(&fixture.net)), &options);
        assert!(compiled.diagnostics.is_empty(), "{case}: {:?}", compiled.diagnostics);
        let parity = root.join("parity");
        let args = [path.as_os_str(), parity.as_os_str(), case.as_ref()];
        run_emitted(&python, CHECK_ZOO, &compiled.graphs[0], &dir, &case, &args);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A network of several inputs: the emitted module's `forward` takes them by name, as
/// `INPUT_SHAPES` and `INPUT_DTYPES` list them, and computes nnc's output with nnc's weights,
/// eagerly and scripted; its own `__main__` check runs on the right-typed random inputs it
/// draws (ids within the embedding, masks).
const CHECK_INPUTS: &str = r#"
import importlib.util, runpy, sys, torch
from safetensors.torch import load_file
spec = importlib.util.spec_from_file_location("emitted", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = getattr(m, sys.argv[2])()
m.load_nnc_checkpoint(net, sys.argv[3])
io = load_file(sys.argv[4])
net.eval()
inputs = {k[len("x."):]: v for k, v in io.items() if k.startswith("x.")}
assert sorted(inputs) == sorted(m.INPUT_SHAPES) == sorted(m.INPUT_DTYPES), (list(inputs), m.INPUT_SHAPES)
for k, v in inputs.items():
    assert v.dtype == m.INPUT_DTYPES[k] and list(v.shape[1:]) == list(m.INPUT_SHAPES[k][1:]), k
ref = io["y"]
with torch.no_grad():
    outputs = {"eager": net(**inputs), "jit.script": torch.jit.script(net)(**inputs)}
diffs = {k: ((y - ref).abs().max() / ref.abs().max().clamp(min=1e-6)).item() for k, y in outputs.items()}
runpy.run_path(sys.argv[1], run_name="__main__")
print(sys.argv[2] + ": " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
sys.exit(0 if all(v <= 1e-5 for v in diffs.values()) else 1)
"#;

#[test]
fn emitted_modules_take_several_inputs_by_name() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with torch and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let text = "network tagger(len = 7) {
        input tokens [N, len] int
        input features [N, 3]
        input mask [N, len] bool
        words = tokens -> embedding(40, 6, padding_idx=0) -> mean(1)
        words * (features -> linear(6) -> sigmoid) -> linear(2)
    }";
    // The mask is given and not read (W0005, allowed): the module takes it by name all the same.
    let options = Options { allow: vec![nnc_compiler::Code::UnusedInput], ..Options::default() };
    let compiled = compile(Root::Text { name: "tagger.net", text, dir: None }, &options);
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    nnc_runtime::tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    let tokens = Tensor::randint(40, [3, 7], (Kind::Int64, Device::Cpu));
    let features = Tensor::randn([3, 3], (Kind::Float, Device::Cpu));
    let mask = Tensor::rand([3, 7], (Kind::Float, Device::Cpu)).lt(0.5);
    let y =
        nnc_runtime::tch::no_grad(|| model.try_forward_inputs(&[&tokens, &features, &mask], false)).unwrap();
    let dir = std::env::temp_dir().join(format!("nnc-pytorch-inputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let io = dir.join("tagger.io.safetensors");
    let named = [("x.tokens", &tokens), ("x.features", &features), ("x.mask", &mask), ("y", &y)];
    Tensor::write_safetensors(&named, &io).unwrap();
    let weights_file = dir.join("tagger.safetensors");
    weights::save(&vs, &weights_file).unwrap();
    let args = [weights_file.as_os_str(), io.as_os_str()];
    run_emitted(&python, CHECK_INPUTS, model.graph(), &dir, "tagger", &args);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Exports the emitted module of a network with free sizes with `torch.export` and the
/// `dynamic_shapes()` it declares, then runs the exported program at each size nnc ran it at,
/// and at another batch: its outputs must be nnc's. (torch.export 2.13 fixes the length through `max_pool1d` and
/// `adaptive_max_pool1d`, so the sequence model here strides by convolution.)
const CHECK_EXPORT: &str = r#"
import importlib.util, sys, torch
from safetensors.torch import load_file
spec = importlib.util.spec_from_file_location("emitted", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = getattr(m, sys.argv[2])().eval()
m.load_nnc_checkpoint(net, sys.argv[3])
io = load_file(sys.argv[4])
count = len([k for k in io if k.startswith("x")])
example = io["x0"]
ep = torch.export.export(net, (example,), dynamic_shapes=m.dynamic_shapes())
print(sys.argv[2], "exported:", ep.range_constraints)
with torch.no_grad():
    for i in range(count):
        x, y = io[f"x{i}"], io[f"y{i}"]
        z = ep.module()(x)
        err = float((z - y).abs().max() / y.abs().max().clamp_min(1e-12))
        print(f"  at {tuple(x.shape)}: output {tuple(z.shape)}, off nnc's by {err:.2e}")
        assert z.shape == y.shape and err < 1e-4, err
        # The batch is free too: three examples, the first again at the end.
        x3, y3 = torch.cat([x, x[:1]]), torch.cat([y, y[:1]])
        z3 = ep.module()(x3)
        err = float((z3 - y3).abs().max() / y3.abs().max().clamp_min(1e-12))
        assert z3.shape == y3.shape and err < 1e-4, (tuple(z3.shape), err)
"#;

#[test]
fn emitted_free_sizes_export_with_their_dynamic_shapes() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with torch and safetensors (set NNC_PYTHON to one to run this test)");
        return;
    };
    let sequences = "network conv_text(vocab = 100, d = 16) {
        input tokens [N, T] int
        embedding(vocab, d) -> transpose(1, 2) -> conv1d(32, 5) -> relu -> conv1d(32, 3, stride=2)
            -> conv1d(32, 3, dilation=2) -> relu -> amax(2) -> linear(4)
    }";
    let free_sizes =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ok/free-sizes.net"))
            .unwrap();
    let cases: [(&str, &str, &[&[i64]]); 3] = [
        ("unet", &free_sizes, &[&[3, 32, 48], &[3, 64, 32], &[3, 96, 160]]),
        ("strided", &free_sizes, &[&[3, 32, 32], &[3, 29, 100], &[3, 200, 61]]),
        ("conv_text", sequences, &[&[40], &[17], &[300]]),
    ];
    let dir = std::env::temp_dir().join(format!("nnc-pytorch-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (case, text, sizes) in cases {
        let options = Options { network: Some(case.to_string()), ..Options::default() };
        let compiled = compile(Root::Text { name: "free.net", text, dir: None }, &options);
        assert!(compiled.diagnostics.is_empty(), "{case}: {:?}", compiled.diagnostics);
        let graph = compiled.graphs.into_iter().next().unwrap();
        assert!(graph.free.is_some(), "{case} has free sizes");
        nnc_runtime::tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph, Init::PyTorch);
        let mut named = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let shape: Vec<i64> = std::iter::once(2).chain(size.iter().copied()).collect();
            let x = match case {
                "conv_text" => Tensor::randint(100, shape.as_slice(), (Kind::Int64, Device::Cpu)),
                _ => Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)),
            };
            let y = nnc_runtime::tch::no_grad(|| model.try_forward(&x, false)).unwrap();
            named.push((format!("x{i}"), x));
            named.push((format!("y{i}"), y));
        }
        let io = dir.join(format!("{case}.io.safetensors"));
        Tensor::write_safetensors(&named, &io).unwrap();
        let weights_file = dir.join(format!("{case}.safetensors"));
        weights::save(&vs, &weights_file).unwrap();
        run_emitted(
            &python,
            CHECK_EXPORT,
            model.graph(),
            &dir,
            case,
            &[weights_file.as_os_str(), io.as_os_str()],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
