//! nnc computes what PyTorch computes: every fixture of `parity/fixtures/` (written by
//! `parity/make_fixtures.py` from d2l's PyTorch code) loaded into the interpreter's model of
//! the matching `.net` file gives PyTorch's outputs in eval and train mode, and PyTorch's
//! weights after one SGD step, within 1e-5 relative.

use std::path::Path;

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{parity, Init, Model};
use tch::{nn, Device};

const TOLERANCE: f64 = 1e-5;

#[test]
fn interpreter_matches_pytorch_on_every_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut fixtures: Vec<_> = std::fs::read_dir(root.join("parity/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    fixtures.sort();
    assert_eq!(fixtures.len(), 7, "the seven seed networks");
    // Dropout draws from libtorch's one global generator, which parallel tests share.
    let _rng = nnc_runtime::parity::RNG.lock().unwrap_or_else(|e| e.into_inner());
    for path in fixtures {
        let fixture = parity::read(&path).unwrap();
        let options = Options { overrides: fixture.overrides.clone(), ..Options::default() };
        let compiled = compile(Root::Path(&root.join("models").join(&fixture.net)), &options);
        assert!(compiled.diagnostics.is_empty(), "{}: {:?}", fixture.net, compiled.diagnostics);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
        let report = parity::check(&fixture, &mut vs, &|x, train| model.try_forward(x, train)).unwrap();
        eprintln!("{}: {report:?}", path.display());
        assert!(report.eval <= TOLERANCE, "{}: eval output off by {}", path.display(), report.eval);
        assert!(report.train <= TOLERANCE, "{}: train output off by {}", path.display(), report.train);
        assert!(
            report.step <= TOLERANCE,
            "{}: `{}` off by {} after the step",
            path.display(),
            report.worst_after_step,
            report.step
        );
    }
}

#[test]
fn a_fixture_that_does_not_fit_names_the_tensor() {
    // Building a model draws random numbers: not while the other test relies on its seed.
    let _rng = nnc_runtime::parity::RNG.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture = parity::read(&root.join("parity/fixtures/lenet.safetensors")).unwrap();
    // LeNet's weights into BN-LeNet: the batch norms are missing, the shapes differ.
    let compiled = compile(Root::Path(&root.join("models/lenet-bn.net")), &Options::default());
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    let err =
        parity::check(&fixture, &mut vs, &|x, train| model.try_forward(x, train)).unwrap_err().to_string();
    assert!(err.contains("missing: `1.running_mean`"), "{err}");
    assert!(err.contains("wrong shape: `9.weight`"), "{err}");
}
