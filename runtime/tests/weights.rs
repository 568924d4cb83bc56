//! Weights saved as safetensors load back to identical outputs; a file that does not fit the
//! model is refused with every problem named.

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{weights, Init, Model, RuntimeError};
use tch::{nn, Device, Kind, Tensor};

fn model(src: &str, vs: &nn::VarStore) -> Model {
    let compiled = compile(Root::Text { name: "m.net", text: src, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch)
}

const NET: &str = "network n { input [N, 1, 12, 12]
    conv2d(4, 3, padding=1) -> batchnorm -> relu -> maxpool(2) -> flatten -> linear(10) }";

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn save_then_load_gives_identical_outputs() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let a = model(NET, &vs);
    let x = Tensor::randn([3, 1, 12, 12], (Kind::Float, Device::Cpu));
    // One training pass so that the batch-norm statistics are not their initial values.
    let _ = a.try_forward(&x, true).unwrap();
    let path = tmp("roundtrip.safetensors");
    weights::save(&vs, &path).unwrap();

    tch::manual_seed(2);
    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let b = model(NET, &vs2);
    let before = b.try_forward(&x, false).unwrap();
    weights::load(&mut vs2, &path).unwrap();
    let expected = a.try_forward(&x, false).unwrap();
    let got = b.try_forward(&x, false).unwrap();
    assert!(!before.equal(&expected), "a fresh model should differ");
    assert!(got.equal(&expected), "loaded weights must give identical outputs");
}

#[test]
fn a_file_that_does_not_fit_names_each_tensor() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    // A file with one tensor missing, one of the wrong shape and one the model does not have.
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.retain(|(n, _)| n != "1.running_var");
    for (name, t) in tensors.iter_mut() {
        if name == "5.weight" {
            *t = Tensor::zeros([10, 99], (Kind::Float, Device::Cpu));
        }
    }
    tensors.push(("6.weight".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
    let path = tmp("broken.safetensors");
    Tensor::write_safetensors(&tensors, &path).unwrap();

    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs2);
    let err = weights::load(&mut vs2, &path).unwrap_err();
    let RuntimeError::Weights { problems, .. } = &err else { panic!("{err}") };
    assert_eq!(problems.len(), 3, "{err}");
    let text = err.to_string();
    assert!(text.contains("missing: `1.running_var` [4]"), "{text}");
    assert!(
        text.contains("wrong shape: `5.weight` is [10, 99] in the file, [10, 144] in the model"),
        "{text}"
    );
    assert!(text.contains("unexpected: `6.weight`"), "{text}");
}

#[test]
fn a_missing_file_is_an_error() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let err = weights::load(&mut vs, &tmp("nope.safetensors")).unwrap_err();
    assert!(err.to_string().contains("cannot read weights"), "{err}");
}
