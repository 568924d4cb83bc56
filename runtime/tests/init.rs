//! Initialisation follows PyTorch: uniform in ±1/√fan_in by default, ±√(6/(fan_in + fan_out))
//! for Xavier; batch norm starts at weight 1, bias 0, mean 0, variance 1.

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{Init, Model};
use tch::{nn, Device, Kind, Tensor};

/// libtorch's random stream is one for the process: the tests of this file, which seed it and
/// draw from it, take turns, so that none draws in the middle of another's sequence.
static STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn variables(init: Init) -> std::collections::HashMap<String, Tensor> {
    let src = "network n { input [N, 3, 16, 16]\n conv2d(64, 5) -> batchnorm -> flatten -> linear(100) }";
    let compiled = compile(Root::Text { name: "n.net", text: src, dir: None }, &Options::default());
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), init);
    vs.variables()
}

fn bounds(t: &Tensor) -> (f64, f64) {
    (t.min().double_value(&[]), t.max().double_value(&[]))
}

#[test]
fn pytorch_defaults() {
    let _turn = STREAM.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let vars = variables(Init::PyTorch);
    // conv: fan_in = 3·5·5 = 75; linear: fan_in = 64·12·12 = 9216.
    for (name, bound) in
        [("0.weight", 1.0 / 75f64.sqrt()), ("0.bias", 1.0 / 75f64.sqrt()), ("3.weight", 1.0 / 96.0)]
    {
        let (lo, hi) = bounds(&vars[name]);
        assert!(lo >= -bound && hi <= bound, "{name}: [{lo}, {hi}] outside ±{bound}");
        // Thousands of draws come within 1% of both bounds (64 biases need not).
        if name.ends_with("weight") {
            assert!(hi > 0.99 * bound && lo < -0.99 * bound, "{name}: [{lo}, {hi}] does not fill ±{bound}");
        }
    }
    assert!(vars["1.weight"].equal(&Tensor::ones([64], (Kind::Float, Device::Cpu))));
    assert!(vars["1.bias"].equal(&Tensor::zeros([64], (Kind::Float, Device::Cpu))));
    assert!(vars["1.running_var"].equal(&Tensor::ones([64], (Kind::Float, Device::Cpu))));
    assert_eq!(vars["1.num_batches_tracked"].size(), Vec::<i64>::new());
}

#[test]
fn xavier_uniform() {
    let _turn = STREAM.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let vars = variables(Init::XavierUniform);
    // conv: fan_in 75, fan_out 64·25 = 1600; linear: fan_in 9216, fan_out 100.
    for (name, bound) in [("0.weight", (6.0f64 / 1675.0).sqrt()), ("3.weight", (6.0f64 / 9316.0).sqrt())] {
        let (lo, hi) = bounds(&vars[name]);
        assert!(lo >= -bound && hi <= bound && hi > 0.9 * bound, "{name}: [{lo}, {hi}] vs ±{bound}");
    }
    // Biases keep PyTorch's default.
    let (lo, hi) = bounds(&vars["0.bias"]);
    assert!(lo >= -1.0 / 75f64.sqrt() && hi <= 1.0 / 75f64.sqrt());
}

/// After the same seed, a model starts from the values PyTorch's modules start from, bit for
/// bit (`parity/make_init_fixture.py`): each layer draws in torch.nn's order, and
/// `nn.MultiheadAttention` draws its output projection, bias included, before its packed input
/// projection, so that every draw after it (a later layer's, `nnc run`'s input) is PyTorch's too.
#[test]
fn a_seeded_model_starts_from_pytorchs_values() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity/fixtures/init");
    let compiled = compile(Root::Path(&fixtures.join("seeded.net")), &Options::default());
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let expected: std::collections::BTreeMap<String, Tensor> =
        Tensor::read_safetensors(fixtures.join("seeded.safetensors")).unwrap().into_iter().collect();
    let _turn = STREAM.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    let made = vs.variables();
    let mut names: Vec<&String> = made.keys().collect();
    names.sort();
    assert_eq!(names, expected.keys().collect::<Vec<_>>());
    for (name, want) in &expected {
        assert!(made[name].equal(want), "{name} differs from PyTorch's initial value");
    }
}
