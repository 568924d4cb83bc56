//! The torchvision zoo (`models/zoo/`) against torchvision, in CI without Python: each fixture
//! of `parity/fixtures/zoo/` (written by `python parity/zoo.py --write-fixtures` from
//! torchvision's own module) holds the network's `state_dict` names and shapes and its output
//! on a synthetic input with synthetic weights, which `parity::synthetic` recomputes bit for
//! bit (so the fixture holds no weights). nnc's parameters must be torchvision's, name for
//! name, and load strictly; its output must be torchvision's.
//!
//! `zoo_full_size` checks a real torchvision checkpoint instead, at full size, when
//! `parity/zoo.py` points `NNC_ZOO_DIR` at one it wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nnc_compiler::ir::Graph;
use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{parity, weights, Init, Model};
use tch::{nn, Device, Tensor};

/// Relative difference allowed against torchvision: the same kernels, but PyTorch's were run
/// by another build of libtorch, whose convolution algorithms may round differently.
const TOLERANCE: f64 = 1e-5;

fn graph(net: &Path, overrides: Vec<(String, String)>) -> Graph {
    let compiled = compile(Root::Path(net), &Options { overrides, ..Options::default() });
    assert!(compiled.diagnostics.is_empty(), "{}: {:?}", net.display(), compiled.diagnostics);
    compiled.graphs.into_iter().next().expect("one network")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn zoo_networks_compute_torchvisions_outputs() {
    let dir = root().join("parity/fixtures/zoo");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    for path in paths {
        let case = path.file_stem().unwrap().to_string_lossy().into_owned();
        let fixture = parity::read_zoo(&path).unwrap();
        let graph = graph(&root().join(&fixture.net), fixture.overrides.clone());

        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph, Init::PyTorch);
        // torchvision's state_dict, name for name and shape for shape.
        let theirs = &fixture.state;
        let ours: BTreeMap<String, Vec<i64>> =
            vs.variables().into_iter().map(|(name, t)| (name, t.size())).collect();
        let missing: Vec<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
        let extra: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        assert_eq!(&ours, theirs, "{case}: torchvision's names missing here {missing:?}, extra {extra:?}");

        weights::load_map(&mut vs, &fixture.synthetic_state(), "the synthetic torchvision state").unwrap();
        let y = tch::no_grad(|| model.try_forward(&fixture.synthetic_input(), false)).unwrap();
        assert_eq!(y.size(), fixture.output.size(), "{case}: output shape");
        let error = parity::relative(&y, &fixture.output);
        eprintln!("{case}: relative difference {error:e}");
        assert!(error <= TOLERANCE, "{case}: nnc's output is off torchvision's by {error:e}");
        if let Some(expected) = &fixture.aux_train {
            check_aux(&case, &model, &fixture.synthetic_input(), expected);
        }
    }
}

/// The auxiliary classifier (`output logits, aux if training`): absent in evaluation mode, the
/// second output in training mode, with torchvision's value.
fn check_aux(case: &str, model: &Model, x: &Tensor, expected: &Tensor) {
    let eval = tch::no_grad(|| model.try_forward_outputs(x, false)).unwrap();
    assert_eq!(eval.len(), 1, "{case}: outputs in evaluation mode");
    let train = tch::no_grad(|| model.try_forward_outputs(x, true)).unwrap();
    assert_eq!(train.len(), 2, "{case}: outputs in training mode");
    let error = parity::relative(&train[1], expected);
    eprintln!("{case}: auxiliary output in training mode, relative difference {error:e}");
    assert!(error <= TOLERANCE, "{case}: the auxiliary output is off torchvision's by {error:e}");
}

/// A real torchvision checkpoint at full size, when `parity/zoo.py` wrote one (`NNC_ZOO_DIR`:
/// `net`, the `.net` file's path; `set.json`, its `--set` values; `weights.safetensors`,
/// torchvision's state_dict; `io.safetensors`, an input and torchvision's output in eval mode).
#[test]
fn zoo_full_size() {
    let Ok(dir) = std::env::var("NNC_ZOO_DIR") else {
        eprintln!("skipped: NNC_ZOO_DIR is not set (parity/zoo.py sets it)");
        return;
    };
    let dir = Path::new(&dir);
    let net = std::fs::read_to_string(dir.join("net")).unwrap();
    let set: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("set.json")).unwrap()).unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model =
        Model::new(&vs.root(), graph(Path::new(net.trim()), set.into_iter().collect()), Init::PyTorch);
    weights::load(&mut vs, &dir.join("weights.safetensors")).unwrap();
    let io: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("io.safetensors")).unwrap().into_iter().collect();
    let y = tch::no_grad(|| model.try_forward(&io["input"], false)).unwrap();
    let error = parity::relative(&y, &io["output"]);
    eprintln!("relative difference {error:e}");
    assert!(error <= TOLERANCE, "off torchvision's output by {error:e}");
    if let Some(expected) = io.get("aux_train") {
        check_aux("full size", &model, &io["input"], expected);
    }
}
