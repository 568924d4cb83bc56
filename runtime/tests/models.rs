//! Every model in `models/` runs on libtorch, and every node's runtime shape equals the shape
//! the checker inferred; the VarStore holds exactly as many parameters as the checker counted.

use std::path::Path;

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{Init, Model};
use tch::{nn, Device, Kind, Tensor};

/// Overrides that keep each model small enough for a quick CPU test, where the model allows it.
fn overrides(file: &str) -> Vec<(String, String)> {
    let set: &[(&str, &str)] = match file {
        "alexnet.net" => &[("size", "96")],
        "vgg11.net" => &[("size", "32"), ("ratio", "8")],
        "resnet18.net" => &[("size", "64")],
        "resnet-1000.net" => &[("n", "18")],
        _ => &[],
    };
    set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn every_model_runs_with_the_inferred_shapes() {
    tch::manual_seed(0);
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    // The zoo (`models/zoo/`) has its own test against torchvision, `zoo.rs`.
    let mut files: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    files.sort();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let options = Options { overrides: overrides(&file), ..Options::default() };
        let compiled = compile(Root::Path(&path), &options);
        assert!(compiled.diagnostics.is_empty(), "{file}: {:?}", compiled.diagnostics);
        for graph in compiled.graphs {
            let batch = 2;
            let vs = nn::VarStore::new(Device::Cpu);
            let expected_params = graph.total_params();
            let model = Model::new(&vs.root(), graph, Init::PyTorch);
            let stored: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
            assert_eq!(stored as u64, expected_params, "{file}: parameters in the VarStore");

            let graph = model.graph();
            let x = Tensor::randn(
                graph.node(graph.input()).shape.sizes(batch).as_slice(),
                (Kind::Float, Device::Cpu),
            );
            for train in [false, true] {
                let outputs = tch::no_grad(|| model.forward_all(&x, train)).unwrap();
                for (node, out) in graph.nodes.iter().zip(&outputs) {
                    let inferred = node.shape.sizes(batch);
                    assert_eq!(out.size(), inferred, "{file}: `{}` ({})", node.name, node.op);
                }
            }
        }
    }
}

#[test]
fn a_wrong_input_shape_is_an_error_not_a_panic() {
    let src = "network n { input [N, 1, 28, 28]\n conv2d(6, 5) -> flatten -> linear(10) }";
    let compiled = compile(Root::Text { name: "n.net", text: src, dir: None }, &Options::default());
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    let err =
        model.try_forward(&Tensor::zeros([4, 1, 32, 32], (Kind::Float, Device::Cpu)), false).unwrap_err();
    assert_eq!(err.to_string(), "the model expects input [N, 1, 28, 28], but got [4, 1, 32, 32]");
    assert!(model.try_forward(&Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu)), false).is_ok());
}

#[test]
fn parameter_names_follow_pytorch() {
    let compiled = compile(
        Root::Path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/resnet18.net")),
        &Options::default(),
    );
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    let vars = vs.variables();
    for (name, shape) in [
        ("b1.0.weight", vec![64, 1, 7, 7]),
        ("b1.1.running_mean", vec![64]),
        ("b3.0.conv1.weight", vec![128, 64, 3, 3]),
        ("b3.0.bn1.running_var", vec![128]),
        ("b3.0.conv3.weight", vec![128, 64, 1, 1]),
        ("head.2.weight", vec![10, 512]),
    ] {
        assert_eq!(vars.get(name).map(|t| t.size()), Some(shape), "{name}");
    }
}
