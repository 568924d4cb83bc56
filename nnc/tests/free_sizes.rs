//! Free sizes through `model!`: the generated type takes every size the network takes, with
//! the interpreter's output, and refuses the others with the derived condition, as the
//! interpreter does (never a libtorch error); its constants show the free sizes as -1.

use nnc::runtime::{Init, Model, RuntimeError};
use nnc::tch::{nn, Device, Kind, Tensor};
use nnc_compiler::{compile, Options, Root};

nnc::model!(FreeUnet = "../tests/ok/free-sizes.net", network = "unet");

nnc::model! {
    network free_text {
        input tokens [N, T] int
        embedding(100, 8) -> transpose(1, 2) -> conv1d(8, 5) -> relu -> conv1d(8, 3, stride=2)
            -> amax(2) -> linear(3)
    }
}

/// The interpreter on the same network, for the outputs to compare.
fn interpreter(text: &str, network: &str) -> nnc_compiler::Graph {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ok");
    let options = Options { network: Some(network.into()), ..Options::default() };
    let c = compile(Root::Text { name: "free.net", text, dir: Some(&dir) }, &options);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    c.graphs.into_iter().next().unwrap()
}

#[test]
fn a_generated_unet_takes_every_multiple_of_16() {
    assert_eq!(FreeUnet::INPUT_SHAPE, &[-1, 3, -1, -1]);
    assert_eq!(FreeUnet::OUTPUT_SHAPE, &[-1, 2, -1, -1]);
    assert_eq!(FreeUnet::FREE_SIZES, &[("H", "H % 16 == 0 and H ≥ 16"), ("W", "W % 16 == 0 and W ≥ 16")]);
    assert_eq!(FreeUnet::MACS, 0, "multiply-adds depend on the sizes");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ok/free-sizes.net"),
    )
    .unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let generated = FreeUnet::new(&vs.root());
    let theirs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&theirs.root(), interpreter(&text, "unet"), Init::PyTorch);
    vs.copy(&theirs).unwrap();
    for (h, w) in [(16, 16), (32, 48), (80, 32)] {
        let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
        let ours = nnc::tch::no_grad(|| generated.try_forward(&x, false)).unwrap();
        let reference = nnc::tch::no_grad(|| model.try_forward(&x, false)).unwrap();
        assert_eq!(ours.size(), [2, 2, h, w]);
        assert!(ours.allclose(&reference, 1e-6, 1e-6, false), "at {h}×{w}");
    }
    for (h, w, broken) in [(40, 48, "H = 40, W = 48"), (32, 8, "H = 32, W = 8")] {
        let x = Tensor::randn([1, 3, h, w], (Kind::Float, Device::Cpu));
        let generated_error = generated.try_forward(&x, false).unwrap_err();
        let interpreted_error = model.try_forward(&x, false).unwrap_err();
        assert!(matches!(generated_error, RuntimeError::FreeSize { .. }), "{generated_error}");
        let text = generated_error.to_string();
        assert!(text.starts_with(broken) && text.contains("H % 16 == 0 and H ≥ 16"), "{text}");
        assert_eq!(text, interpreted_error.to_string());
    }
}

#[test]
fn a_generated_sequence_model_takes_lengths_from_7() {
    assert_eq!(FreeText::INPUT_SHAPE, &[-1, -1]);
    assert_eq!(FreeText::FREE_SIZES, &[("T", "T ≥ 7")]);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = FreeText::new(&vs.root());
    for t in [7, 8, 100] {
        let x = Tensor::randint(100, [2, t], (Kind::Int64, Device::Cpu));
        assert_eq!(net.try_forward(&x, false).unwrap().size(), [2, 3]);
    }
    let x = Tensor::randint(100, [2, 6], (Kind::Int64, Device::Cpu));
    let e = net.try_forward(&x, false).unwrap_err().to_string();
    assert!(e.starts_with("T = 6 is not a size this network takes") && e.contains("T ≥ 7"), "{e}");
}
