//! Free sizes (`input [N, 3, H, W]`) are exact: for each network below, with its input's height
//! and width left free, 200 sizes of each in 1–512 are run on libtorch through the
//! interpreter (the other size held at a valid one). Every size in the set nnc states runs, and
//! gives the shape that checking the network at that size gives; every size outside it is
//! refused by the runtime with the derived condition, and fails in libtorch too when run
//! anyway. The stated set also agrees with today's checker at each fixed size (`--set H=…`).
//!
//! The networks are the repository's, narrowed through their width parameters where they have
//! them (ResNet-18's and GoogLeNet's `ratio`, DenseNet's `growth`), and the U-Net is a narrow
//! copy of `models/zoo/unet.net` on the same `std.unet` blocks. The sequence models take
//! token ids `[N, T]` with the length `T` free: `models/zoo/text_classifier.net` (an LSTM),
//! a transformer encoder and a 1-D convolutional classifier, narrow.

use std::path::{Path, PathBuf};

use nnc_compiler::ir::Graph;
use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{Init, Model, RuntimeError};
use tch::{nn, Device, Kind, Tensor};

/// A narrow U-Net: `models/zoo/unet.net` with 4 to 16 channels.
const UNET: &str = "import std.unet

network unet(classes = 2) {
    input [N, 3, H, W]
    inc = double_conv(4)
    down1 = down(8)
    down2 = down(8)
    down3 = down(16)
    down4 = down(16)
    up1 = up(16, down3)
    up2 = up(8, down2)
    up3 = up(8, down1)
    up4 = up(4, inc)
    outc = conv: conv2d(classes, 1)
}
";

/// Sequence models over a free length: a transformer encoder, which takes every length, a
/// 1-D convolutional classifier, whose windows need 15 tokens, and one of ceiled poolings,
/// whose windows may overhang a length shorter than themselves by less than the stride.
const SEQUENCES: &str = "import std.transformer

network encoder(vocab = 1000, d = 16) {
    input tokens [N, T] int
    x = embedding(vocab, d)
    x -> layers: repeat 2 { transformer_encoder_layer(2, dim_feedforward=32) } -> mean(1) -> linear(4)
}

network conv_text(vocab = 1000, d = 16) {
    input tokens [N, T] int
    embedding(vocab, d) -> transpose(1, 2) -> conv1d(32, 5) -> relu -> maxpool1d(3, stride=2)
        -> conv1d(32, 3, dilation=2) -> relu -> adaptive_maxpool1d(1) -> flatten -> linear(4)
}

network ceil_text(vocab = 1000, d = 16) {
    input tokens [N, T] int
    embedding(vocab, d) -> transpose(1, 2) -> maxpool1d(3, stride=2, ceil_mode=true) -> conv1d(8, 3)
        -> avgpool1d(5, stride=4, ceil_mode=true) -> adaptive_maxpool1d(1) -> flatten -> linear(4)
}
";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A model of the repository with its input's sizes made free.
fn freed(file: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let freed = text.replace(", size, size]", ", H, W]");
    assert_ne!(freed, text, "{file} declares its input as [N, C, size, size]");
    freed
}

fn check(
    text: &str,
    dir: &Path,
    overrides: &[(&str, String)],
    network: Option<&str>,
) -> Result<Graph, String> {
    let overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let network = network.map(String::from);
    let root = Root::Text { name: "freed.net", text, dir: Some(dir) };
    let compiled = compile(root, &Options { overrides, network, ..Options::default() });
    match compiled.diagnostics.iter().find(|d| d.is_error()) {
        Some(d) => Err(d.message.clone()),
        None => Ok(compiled.graphs.into_iter().next().expect("one network")),
    }
}

/// `count` sizes in `1..=512`: every size up to 32 (where windows stop fitting), then sizes
/// drawn evenly at random, and a quarter among the valid ones, so that a rare valid size is
/// met too.
fn sizes(count: usize, valid: impl Fn(u64) -> bool, seed: u64) -> Vec<u64> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % 512 + 1
    };
    let valid_sizes: Vec<u64> = (1..=512).filter(|&s| valid(s)).collect();
    let mut out: Vec<u64> = (1..=32).collect();
    out.extend((out.len()..count * 3 / 4).map(|_| next()));
    while out.len() < count {
        out.push(valid_sizes[next() as usize % valid_sizes.len()]);
    }
    out
}

fn exact(name: &str, text: &str, channels: i64, params: &[(&str, &str)]) {
    let dir = root().join("models");
    let params: Vec<(&str, String)> = params.iter().map(|&(k, v)| (k, v.to_string())).collect();
    let graph = check(text, &dir, &params, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let free = graph.free.clone().expect("free sizes");
    let valid: Vec<_> = free.valid.iter().map(|(n, v)| (n.clone(), v.clone().unwrap())).collect();
    let [(h, h_set), (w, w_set)] = &valid[..] else { panic!("{name}: free sizes {valid:?}") };
    assert_eq!((h.as_str(), w.as_str()), ("H", "W"));
    eprintln!("{name}: {h_set}; {w_set}");
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    let (mut ran, mut refused) = (0, 0);
    for (axis, set, other_set) in [(0, h_set, w_set), (1, w_set, h_set)] {
        let other = (16..=512).find(|&s| other_set.contains(s)).expect("a valid size up to 512");
        for size in sizes(200, |s| set.contains(s), 17 + axis as u64) {
            let (hh, ww) = if axis == 0 { (size, other) } else { (other, size) };
            let at = [("H", hh.to_string()), ("W", ww.to_string())];
            let mut overrides = params.clone();
            overrides.extend(at.iter().map(|(k, v)| (*k, v.clone())));
            let fixed = check(text, &dir, &overrides, None);
            let x = Tensor::randn([1, channels, hh as i64, ww as i64], (Kind::Float, Device::Cpu));
            let accepted = set.contains(size);
            assert_eq!(fixed.is_ok(), accepted, "{name} at H = {hh}, W = {ww}: the checker says {fixed:?}");
            if accepted {
                let y = tch::no_grad(|| model.try_forward(&x, false))
                    .unwrap_or_else(|e| panic!("{name} at H = {hh}, W = {ww}, which nnc accepts: {e}"));
                let expected = fixed.unwrap();
                let shape = expected.node(expected.output()).shape.sizes(1);
                assert_eq!(y.size(), shape, "{name} at H = {hh}, W = {ww}");
                ran += 1;
            } else {
                match tch::no_grad(|| model.try_forward(&x, false)) {
                    Err(RuntimeError::FreeSize { .. }) => {}
                    other => {
                        panic!("{name} at H = {hh}, W = {ww}: the runtime should refuse it, got {other:?}")
                    }
                }
                let libtorch = tch::no_grad(|| model.try_forward_unchecked(&[&x], false));
                assert!(
                    libtorch.is_err(),
                    "{name} at H = {hh}, W = {ww}: nnc refuses it, but libtorch runs it"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{name}: {ran} sizes ran, {refused} were refused and fail in libtorch too");
}

/// The sequence models' exactness: 200 lengths in 1–512, as `exact` does for images.
fn exact_sequence(name: &str, text: &str, params: &[(&str, &str)]) {
    let network = text.contains(&format!("network {name}(")).then_some(name);
    let dir = root().join("models");
    let params: Vec<(&str, String)> = params.iter().map(|&(k, v)| (k, v.to_string())).collect();
    let graph = check(text, &dir, &params, network).unwrap_or_else(|e| panic!("{name}: {e}"));
    let free = graph.free.clone().expect("free sizes");
    let [(t, Ok(set))] = &free.valid[..] else { panic!("{name}: free sizes {:?}", free.valid) };
    assert_eq!(t, "T");
    eprintln!("{name}: {set}");
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    let (mut ran, mut refused) = (0, 0);
    for length in sizes(200, |s| set.contains(s), 29) {
        let mut overrides = params.clone();
        overrides.push(("T", length.to_string()));
        let fixed = check(text, &dir, &overrides, network);
        let x = Tensor::randint(50, [1, length as i64], (Kind::Int64, Device::Cpu));
        let accepted = set.contains(length);
        assert_eq!(fixed.is_ok(), accepted, "{name} at T = {length}: the checker says {fixed:?}");
        if accepted {
            let y = tch::no_grad(|| model.try_forward(&x, false))
                .unwrap_or_else(|e| panic!("{name} at T = {length}, which nnc accepts: {e}"));
            let expected = fixed.unwrap();
            assert_eq!(y.size(), expected.node(expected.output()).shape.sizes(1), "{name} at T = {length}");
            ran += 1;
        } else {
            match tch::no_grad(|| model.try_forward(&x, false)) {
                Err(RuntimeError::FreeSize { .. }) => {}
                other => panic!("{name} at T = {length}: the runtime should refuse it, got {other:?}"),
            }
            let libtorch = tch::no_grad(|| model.try_forward_unchecked(&[&x], false));
            assert!(libtorch.is_err(), "{name} at T = {length}: nnc refuses it, but libtorch runs it");
            refused += 1;
        }
    }
    eprintln!("{name}: {ran} lengths ran, {refused} were refused and fail in libtorch too");
}

#[test]
fn sequence_models_are_exact() {
    let lstm = std::fs::read_to_string(root().join("models/zoo/text_classifier.net")).unwrap();
    let lstm = lstm.replace("input tokens [N, length] int", "input tokens [N, T] int");
    exact_sequence("text_classifier", &lstm, &[("vocab", "100"), ("embed", "16"), ("hidden", "8")]);
    exact_sequence("encoder", SEQUENCES, &[("vocab", "100")]);
    exact_sequence("conv_text", SEQUENCES, &[("vocab", "100")]);
    exact_sequence("ceil_text", SEQUENCES, &[("vocab", "100")]);
}

/// PyTorch's 3-D average pooling also needs each size before padding to hold the kernel: a
/// free depth's set is exactly where libtorch's `avg_pool3d` runs, ceiled or padded.
#[test]
fn avgpool3d_depths_are_exact() {
    for call in ["avgpool3d(3, stride=2, ceil_mode=true)", "avgpool3d(3, stride=2, padding=1)"] {
        let text = format!("network pool {{\n    input [N, 1, D, 4, 4]\n    {call}\n}}\n");
        let graph = check(&text, &root(), &[], None).unwrap_or_else(|e| panic!("{call}: {e}"));
        let free = graph.free.clone().expect("free sizes");
        let [(_, Ok(set))] = &free.valid[..] else { panic!("{call}: {:?}", free.valid) };
        let model = Model::new(&nn::VarStore::new(Device::Cpu).root(), graph, Init::PyTorch);
        for depth in 1..=12 {
            let x = Tensor::randn([1, 1, depth, 4, 4], (Kind::Float, Device::Cpu));
            let libtorch = tch::no_grad(|| model.try_forward_unchecked(&[&x], false)).is_ok();
            assert_eq!(set.contains(depth as u64), libtorch, "{call} at D = {depth}: nnc says {set}");
        }
    }
}

#[test]
fn unet_takes_exactly_multiples_of_16() {
    exact("unet", UNET, 3, &[]);
}

#[test]
fn resnet18_takes_every_size() {
    exact("resnet18", &freed("models/resnet18.net"), 1, &[("ratio", "8")]);
}

#[test]
fn resnet50_takes_every_size() {
    exact("resnet50", &freed("models/zoo/resnet50.net"), 3, &[("classes", "10")]);
}

#[test]
fn googlenet_is_exact() {
    exact("googlenet", &freed("models/googlenet.net"), 1, &[("ratio", "8")]);
}

#[test]
fn densenet_is_exact() {
    exact("densenet", &freed("models/densenet.net"), 1, &[("growth", "8")]);
}

#[test]
fn mobilenet_v2_is_exact() {
    exact("mobilenet_v2", &freed("models/zoo/mobilenet_v2.net"), 3, &[("classes", "10")]);
}
