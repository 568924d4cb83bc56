//! Initialisation follows PyTorch: uniform in ±1/√fan_in by default, ±√(6/(fan_in + fan_out))
//! for Xavier; batch norm starts at weight 1, bias 0, mean 0, variance 1.

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{Init, Model};
use tch::{nn, Device, Kind, Tensor};

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
