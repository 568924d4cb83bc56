//! The op conformance harness: every layer of the registry (`ops::ALL`), on libtorch.
//!
//! - Random valid configurations, several per layer (ranks, sizes, kernels, strides,
//!   dilations, groups, flags): the inferred shape equals libtorch's in eval and train mode,
//!   the checker's parameter count equals the VarStore's trainable count, and the VarStore's
//!   variables (parameters and buffers) are exactly the op's described tensors, by name and
//!   shape. Inputs of a rank the layer does not accept are refused by the checker.
//! - PyTorch parity in CI, without Python: each fixture of `parity/fixtures/ops/` (written by
//!   `parity/make_op_fixtures.py` from the real `torch.nn` module) loads strictly into nnc's
//!   layer, and nnc computes the module's outputs and, in train mode, its new state.
//! - The gradients of the forwards the runtime writes out where tch lacks an op's arguments.
//!
//! A layer added to the registry without a case generator here, or without a fixture, fails
//! the harness by name. Generated code is checked against the interpreter by
//! `nnc/tests/conformance.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use nnc_compiler::ir::{DType, Graph};
use nnc_compiler::ops::ALL;
use nnc_compiler::rng::SplitMix;
use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{parity, weights, Init, Model};
use tch::{nn, Device, Kind, Tensor};

/// Tests that draw from libtorch's one generator take turns (they run on threads of one
/// process): the fixtures' train-mode outputs are compared just after seeding it, so that a
/// dropout draws PyTorch's mask, which another test's draw in between would change.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn generator() -> std::sync::MutexGuard<'static, ()> {
    GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Random configurations per layer.
const CASES_PER_LAYER: usize = 24;
/// Relative difference allowed against PyTorch: the same kernels, but PyTorch's fixtures were
/// computed on tensors at other addresses, which can change the vectorised reduction order.
const TOLERANCE: f64 = 1e-5;

/// SplitMix64 (the compiler's), so that a failure reproduces, with the draws the cases take.
struct Rng(SplitMix);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..=hi`.
    fn int(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn flag(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// Uniform in `[lo, hi)`, rounded to three decimals so the call text is exact.
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = self.0.next_f64();
        ((lo + unit * (hi - lo)) * 1000.0).round() / 1000.0
    }

    /// A small positive epsilon, as normalisations take.
    fn eps(&mut self) -> f64 {
        [1e-5, 1e-4, 1e-3, 0.01][self.int(0, 3) as usize]
    }

    /// `n` sizes in `lo..=hi`.
    fn dims(&mut self, n: usize, lo: u64, hi: u64) -> Vec<u64> {
        (0..n).map(|_| self.int(lo, hi)).collect()
    }

    /// `n` sizes in `lo..=hi`, all equal half the time (written as one integer).
    fn sizes(&mut self, n: usize, lo: u64, hi: u64) -> Vec<u64> {
        if self.flag() {
            vec![self.int(lo, hi); n]
        } else {
            self.dims(n, lo, hi)
        }
    }
}

/// Sizes as the language writes them: one integer when all are equal, else a tuple (`(3,)`
/// for one).
fn sizes_text(v: &[u64]) -> String {
    match v {
        [a, rest @ ..] if rest.iter().all(|b| b == a) => a.to_string(),
        [one] => format!("({one},)"),
        _ => format!("({})", v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// The number of spatial axes of a layer named for it (`conv3d`: 3).
fn spatial_rank(name: &str) -> usize {
    let digit = name.trim_end_matches('d').chars().last().and_then(|c| c.to_digit(10));
    digit.expect("a layer named with its rank") as usize
}

/// A convolution over `n` spatial axes: groups, kernels, strides, dilations, and a quarter of
/// the cases padded "same" (at stride 1, the only one PyTorch allows, and with even kernels,
/// padded unevenly), a quarter "valid".
fn conv_case(name: &str, rng: &mut Rng, n: usize) -> Case {
    let groups = rng.int(1, 3);
    let (kernel, mut stride, dilation) = (rng.sizes(n, 1, 4), rng.sizes(n, 1, 3), rng.sizes(n, 1, 2));
    let mut padding = rng.sizes(n, 0, 2);
    let padding_text = match rng.int(0, 3) {
        0 => {
            stride = vec![1; n];
            padding = (0..n).map(|i| dilation[i] * (kernel[i] - 1) / 2).collect();
            "\"same\"".to_string()
        }
        1 => {
            padding = vec![0; n];
            "\"valid\"".to_string()
        }
        _ => sizes_text(&padding),
    };
    let mut dims = vec![groups * rng.int(1, 3)];
    dims.extend((0..n).map(|i| fitting_size(rng, kernel[i], dilation[i], padding[i])));
    let out = groups * rng.int(1, 3);
    let call = format!(
        "{name}({out}, {}, stride={}, padding={padding_text}, dilation={}, groups={groups}, bias={})",
        sizes_text(&kernel),
        sizes_text(&stride),
        sizes_text(&dilation),
        rng.flag()
    );
    Case { dims, call }
}

/// A transposed convolution over `n` spatial axes, with an output padding below the stride or
/// the dilation, and a padding that leaves at least one output.
fn conv_transpose_case(name: &str, rng: &mut Rng, n: usize) -> Case {
    let groups = rng.int(1, 3);
    let (kernel, stride, dilation) = (rng.sizes(n, 1, 4), rng.sizes(n, 1, 3), rng.sizes(n, 1, 2));
    let output_padding: Vec<u64> = (0..n).map(|i| rng.int(0, stride[i].max(dilation[i]) - 1)).collect();
    let mut dims = vec![groups * rng.int(1, 3)];
    dims.extend(rng.dims(n, 1, 5));
    // The full output is (in − 1)·s + d·(k − 1) + 1 + output_padding; padding crops twice.
    let padding: Vec<u64> = (0..n)
        .map(|i| {
            let full = (dims[1 + i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i];
            rng.int(0, ((full - 1) / 2).min(2))
        })
        .collect();
    let out = groups * rng.int(1, 3);
    let call = format!(
        "{name}({out}, {}, stride={}, padding={}, output_padding={}, groups={groups}, bias={}, dilation={})",
        sizes_text(&kernel),
        sizes_text(&stride),
        sizes_text(&padding),
        sizes_text(&output_padding),
        rng.flag(),
        sizes_text(&dilation)
    );
    Case { dims, call }
}

/// A max or average pooling over `n` spatial axes, with a padding of at most half the kernel,
/// as PyTorch requires.
fn pool_case(name: &str, rng: &mut Rng, n: usize) -> Case {
    let is_max = name.starts_with("maxpool");
    let kernel = rng.sizes(n, 1, 4);
    let padding: Vec<u64> = kernel.iter().map(|&k| rng.int(0, k / 2)).collect();
    let dilation = if is_max { rng.sizes(n, 1, 2) } else { vec![1; n] };
    // PyTorch's avg_pool3d needs each size, unpadded, to hold the kernel.
    let unpadded = |i: usize| if name == "avgpool3d" { kernel[i] } else { 1 };
    let mut dims = vec![rng.int(1, 3)];
    dims.extend((0..n).map(|i| fitting_size(rng, kernel[i], dilation[i], padding[i]).max(unpadded(i))));
    let mut call = format!("{name}({}, padding={}", sizes_text(&kernel), sizes_text(&padding));
    if rng.flag() {
        call += &format!(", stride={}", sizes_text(&rng.sizes(n, 1, 3)));
    }
    if is_max {
        call += &format!(", dilation={}", sizes_text(&dilation));
    } else {
        call += &format!(", count_include_pad={}", rng.flag());
    }
    call += &format!(", ceil_mode={})", rng.flag());
    Case { dims, call }
}

/// One configuration: the input's sizes without the batch, and the call.
struct Case {
    dims: Vec<u64>,
    call: String,
}

/// A window's input size along one axis that its kernel fits in after padding.
fn fitting_size(rng: &mut Rng, kernel: u64, dilation: u64, padding: u64) -> u64 {
    let effective = dilation * (kernel - 1) + 1;
    effective.saturating_sub(2 * padding).max(1) + rng.int(0, 6)
}

/// Random valid configurations of the layer `name`; `None` for a layer this harness does not
/// know, which fails the harness.
fn case(name: &str, rng: &mut Rng) -> Option<Case> {
    let any_rank = |rng: &mut Rng| {
        let rank = rng.int(2, 5) as usize;
        rng.dims(rank - 1, 1, 5)
    };
    let case = match name {
        "conv1d" | "conv2d" | "conv3d" => conv_case(name, rng, spatial_rank(name)),
        "conv_transpose1d" | "conv_transpose2d" | "conv_transpose3d" => {
            conv_transpose_case(name, rng, spatial_rank(name))
        }
        "maxpool1d" | "maxpool2d" | "maxpool3d" | "avgpool1d" | "avgpool2d" | "avgpool3d" => {
            pool_case(name, rng, spatial_rank(name))
        }
        "adaptive_avgpool1d" | "adaptive_avgpool2d" | "adaptive_avgpool3d" | "adaptive_maxpool1d"
        | "adaptive_maxpool2d" | "adaptive_maxpool3d" => {
            let n = spatial_rank(name);
            let mut dims = vec![rng.int(1, 3)];
            dims.extend(rng.dims(n, 1, 9));
            Case { dims, call: format!("{name}({})", sizes_text(&rng.sizes(n, 1, 4))) }
        }
        "batchnorm" => {
            let rank = rng.int(2, 5) as usize;
            let call = format!("batchnorm(eps={}, momentum={})", rng.eps(), rng.float(0.0, 1.0));
            Case { dims: rng.dims(rank - 1, 1, 5), call }
        }
        "layernorm" => {
            let dims = any_rank(rng);
            let n = rng.int(0, dims.len() as u64) as usize;
            let mut call = format!("layernorm(eps={}, elementwise_affine={}", rng.eps(), rng.flag());
            match &dims[dims.len() - n..] {
                [] => {}
                [one] => call += &format!(", normalized_shape={one}"),
                trailing => {
                    let trailing: Vec<String> = trailing.iter().map(u64::to_string).collect();
                    call += &format!(", normalized_shape=({})", trailing.join(", "));
                }
            }
            Case { dims, call: call + ")" }
        }
        "multi_head_attention" => {
            let heads = rng.int(1, 4);
            let embed = heads * rng.int(1, 4);
            let dims = vec![rng.int(1, 6), embed];
            let call = format!("multi_head_attention({heads}, bias={})", rng.flag());
            Case { dims, call }
        }
        "layernorm2d" => Case {
            dims: rng.dims(3, 1, 5),
            call: format!("layernorm2d(eps={}, elementwise_affine={})", rng.eps(), rng.flag()),
        },
        "relu" | "relu6" | "sigmoid" | "tanh" | "silu" | "hardswish" | "hardsigmoid" | "mish"
        | "identity" => Case { dims: any_rank(rng), call: name.into() },
        "gelu" => {
            let approximate = if rng.flag() { "tanh" } else { "none" };
            Case { dims: any_rank(rng), call: format!("gelu(approximate=\"{approximate}\")") }
        }
        "leaky_relu" => Case { dims: any_rank(rng), call: format!("leaky_relu({})", rng.float(-0.5, 0.5)) },
        "elu" => Case { dims: any_rank(rng), call: format!("elu(alpha={})", rng.float(-2.0, 2.0)) },
        "softplus" => {
            // A beta of either sign, away from 0, which softplus divides by.
            let beta = rng.float(0.1, 3.0) * if rng.flag() { -1.0 } else { 1.0 };
            Case {
                dims: any_rank(rng),
                call: format!("softplus({beta}, threshold={})", rng.float(-1.0, 20.0)),
            }
        }
        "hardtanh" => {
            let min_val = rng.float(-3.0, 1.0);
            let call =
                format!("hardtanh(min_val={min_val}, max_val={})", min_val + 0.5 + rng.float(0.0, 3.0));
            Case { dims: any_rank(rng), call }
        }
        "prelu" => {
            let dims = any_rank(rng);
            // One slope for all channels, or one per channel (dimension 1).
            let num_parameters = if rng.flag() { 1 } else { dims[0] };
            Case { dims, call: format!("prelu({num_parameters}, init={})", rng.float(-1.0, 1.0)) }
        }
        "dropout" => Case { dims: any_rank(rng), call: format!("dropout({})", rng.float(0.0, 1.0)) },
        "softmax" | "log_softmax" => {
            let dims = any_rank(rng);
            let rank = dims.len() as i64 + 1;
            let dim = rng.int(1, rank as u64 - 1) as i64;
            let dim = if rng.flag() { dim - rank } else { dim };
            Case { dims, call: format!("{name}(dim={dim})") }
        }
        "flatten" => {
            let dims = any_rank(rng);
            let rank = dims.len() as u64 + 1;
            let start = rng.int(1, rank - 1);
            let end = rng.int(start, rank - 1);
            Case { dims, call: format!("flatten(start={start}, end={end})") }
        }
        "linear" => {
            let rank = rng.int(2, 4) as usize;
            let call = format!("linear({}, bias={})", rng.int(1, 6), rng.flag());
            Case { dims: rng.dims(rank - 1, 1, 6), call }
        }
        // A sequence [N, T, F]; stacks of up to 3 layers, either direction, with and without
        // bias, and a dropout (between layers, in training) half the time.
        "lstm" | "gru" | "rnn" => {
            let dims = vec![rng.int(1, 5), rng.int(1, 6)];
            let dropout = if rng.flag() { rng.float(0.0, 0.9) } else { 0.0 };
            let mut call = format!(
                "{name}({}, num_layers={}, bias={}, dropout={dropout}, bidirectional={}",
                rng.int(1, 6),
                rng.int(1, 3),
                rng.flag(),
                rng.flag()
            );
            if name == "rnn" {
                call += &format!(", nonlinearity=\"{}\"", if rng.flag() { "relu" } else { "tanh" });
            }
            Case { dims, call: call + ")" }
        }
        // The shape operations: sizes that divide, dimensions in any order, negative or not.
        "reshape" => {
            let dims = any_rank(rng);
            let n = rng.int(1, 3) as usize;
            let mut sizes = factors(rng, dims.iter().product(), n);
            if rng.flag() {
                let i = rng.int(0, sizes.len() as u64 - 1) as usize;
                sizes[i] = -1;
            }
            Case { dims, call: format!("reshape({})", listed(&sizes)) }
        }
        "unflatten" => {
            let dims = any_rank(rng);
            let dim = rng.int(1, dims.len() as u64);
            let sizes = factors(rng, dims[dim as usize - 1], 2);
            Case { dims, call: format!("unflatten({dim}, ({}))", listed(&sizes)) }
        }
        "permute" => {
            let dims = any_rank(rng);
            let mut order: Vec<i64> = (1..=dims.len() as i64).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.int(0, i as u64) as usize);
            }
            Case { dims, call: format!("permute(0, {})", listed(&order)) }
        }
        "transpose" => {
            let dims = any_rank(rng);
            let rank = dims.len() as u64 + 1;
            let mut dim = || rng.int(1, rank - 1) as i64 - if rng.flag() { rank as i64 } else { 0 };
            let (dim0, dim1) = (dim(), dim());
            Case { dims, call: format!("transpose({dim0}, {dim1})") }
        }
        "mean" | "sum" | "amax" => {
            let dims = any_rank(rng);
            let mut reduced: Vec<i64> = (1..=dims.len() as i64).filter(|_| rng.flag()).collect();
            if reduced.is_empty() {
                reduced.push(dims.len() as i64);
            }
            Case { dims, call: format!("{name}(({},), keepdim={})", listed(&reduced), rng.flag()) }
        }
        "groupnorm" => {
            let num_groups = rng.int(1, 4);
            let mut dims = any_rank(rng);
            dims[0] = num_groups * rng.int(1, 3);
            Case { dims, call: format!("groupnorm({num_groups}, eps={}, affine={})", rng.eps(), rng.flag()) }
        }
        "instancenorm" => {
            let rank = rng.int(3, 5) as usize;
            let call = format!(
                "instancenorm(eps={}, momentum={}, affine={}, track_running_stats={})",
                rng.eps(),
                rng.float(0.0, 1.0),
                rng.flag(),
                rng.flag()
            );
            // At least two positions per channel, or training's variance has nothing to average.
            let mut dims = rng.dims(rank - 1, 1, 5);
            dims[1] = rng.int(2, 5);
            Case { dims, call }
        }
        "upsample" => {
            let rank = rng.int(3, 5) as usize;
            let interpolating = match rank {
                3 => "linear",
                4 => ["bilinear", "bicubic"][rng.int(0, 1) as usize],
                _ => "trilinear",
            };
            let dims = rng.dims(rank - 1, 1, 5);
            let mut call = if rng.flag() {
                // A scale that gives whole sizes: an integer, or a half on even sizes.
                let even = dims[1..].iter().all(|d| d % 2 == 0);
                let scale =
                    if even && rng.flag() { rng.int(1, 5) as f64 / 2.0 } else { rng.int(1, 3) as f64 };
                format!("upsample(scale_factor={scale:?}")
            } else {
                let sizes: Vec<String> = (1..rank - 1).map(|_| rng.int(1, 9).to_string()).collect();
                format!("upsample(size=({})", sizes.join(", "))
            };
            if rng.flag() {
                call += &format!(", mode=\"{interpolating}\", align_corners={})", rng.flag());
            } else {
                call += ")";
            }
            Case { dims, call }
        }
        // A table of any size, on ids of any rank, with a padding row or not, counted from
        // either end.
        "embedding" => {
            let (num, dim) = (rng.int(1, 12), rng.int(1, 6));
            let mut call = format!("embedding({num}, {dim}");
            if rng.flag() {
                let row = rng.int(0, num - 1) as i64;
                let padding_idx = if rng.flag() { row - num as i64 } else { row };
                call += &format!(", padding_idx={padding_idx}");
            }
            Case { dims: any_rank(rng), call: call + ")" }
        }
        "pixel_shuffle" | "pixel_unshuffle" => {
            let r = rng.int(1, 3);
            let rank = rng.int(4, 5) as usize;
            let mut dims = rng.dims(rank - 1, 1, 3);
            let n = dims.len();
            if name == "pixel_shuffle" {
                dims[n - 3] *= r * r;
            } else {
                dims[n - 2] *= r;
                dims[n - 1] *= r;
            }
            Case { dims, call: format!("{name}({r})") }
        }
        _ => return None,
    };
    Some(case)
}

/// `n` integers whose product is `total`.
fn factors(rng: &mut Rng, mut total: u64, n: usize) -> Vec<i64> {
    let mut sizes = Vec::with_capacity(n);
    for _ in 1..n {
        let divisors: Vec<u64> = (1..=total).filter(|d| total.is_multiple_of(*d)).collect();
        let d = divisors[rng.int(0, divisors.len() as u64 - 1) as usize];
        sizes.push(d as i64);
        total /= d;
    }
    sizes.push(total as i64);
    sizes
}

fn listed(values: &[i64]) -> String {
    values.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// A network of `call` on an input of `dims` and element type `dtype` (`input [N, 6] int`).
fn network(dims: &[u64], dtype: DType, call: &str) -> String {
    let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
    let dtype = match dtype {
        DType::Float => String::new(),
        other => format!(" {other}"),
    };
    format!("network conformance {{\n    input [N, {}]{dtype}\n    {call}\n}}\n", dims.join(", "))
}

/// The graph of `call` on a float input of `dims`, or the rendered diagnostics.
fn check(dims: &[u64], call: &str) -> Result<Graph, String> {
    check_text(network(dims, DType::Float, call))
}

/// A random batch of two for `graph`'s input of `dims`: standard normal floats, or ids within
/// the embedding that reads them.
fn random_input(graph: &Graph, dims: &[u64]) -> Tensor {
    let sizes: Vec<i64> = std::iter::once(2).chain(dims.iter().map(|&d| d as i64)).collect();
    match graph.node(graph.input()).shape.dtype {
        DType::Float => Tensor::randn(sizes, (Kind::Float, Device::Cpu)),
        DType::Int => {
            Tensor::randint(graph.id_bound(graph.input()) as i64, sizes, (Kind::Int64, Device::Cpu))
        }
        DType::Bool => Tensor::rand(sizes, (Kind::Float, Device::Cpu)).lt(0.5),
    }
}

/// The graph of the network `text`, or the rendered diagnostics.
fn check_text(text: String) -> Result<Graph, String> {
    let compiled =
        compile(Root::Text { name: "conformance.net", text: &text, dir: None }, &Options::default());
    if compiled.diagnostics.is_empty() {
        Ok(compiled.graphs.into_iter().next().expect("one network"))
    } else {
        Err(format!("{text}{:?}", compiled.diagnostics))
    }
}

/// The VarStore's variables by name, with their sizes.
fn variables(vs: &nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables().into_iter().map(|(name, t)| (name, t.size())).collect()
}

/// The variables the op's description promises, under the layer's name.
fn described(graph: &Graph) -> BTreeMap<String, Vec<i64>> {
    let layer = &graph.nodes[1];
    layer
        .op
        .layer()
        .tensors()
        .into_iter()
        .map(|t| (format!("{}.{}", layer.name, t.name), t.dims.iter().map(|&d| d as i64).collect()))
        .collect()
}

#[test]
fn every_layer_conforms_on_random_configurations() {
    let _generator = generator();
    let mut rng = Rng::new(0x006e_6e63);
    let mut missing = Vec::new();
    for spec in ALL {
        for i in 0..CASES_PER_LAYER {
            let Some(case) = case(spec.name, &mut rng) else {
                missing.push(spec.name);
                break;
            };
            let what = format!("{} #{i}: {} on [N, {:?}]", spec.name, case.call, case.dims);
            // The network declares the element type the layer takes (`int` for `embedding`).
            let graph = check_text(network(&case.dims, spec.takes, &case.call))
                .unwrap_or_else(|e| panic!("{what} does not check:\n{e}"));
            assert!(spec.ranks.accepts(case.dims.len() + 1), "{what}: a rank outside {}", spec.ranks);

            let vs = nn::VarStore::new(Device::Cpu);
            let model = Model::new(&vs.root(), graph.clone(), Init::PyTorch);
            assert_eq!(variables(&vs), described(&graph), "{what}: the VarStore holds other tensors");
            let trainable: i64 = vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64;
            assert_eq!(trainable as u64, graph.total_params(), "{what}: parameter count");

            let x = random_input(&graph, &case.dims);
            for train in [false, true] {
                let outputs = tch::no_grad(|| model.forward_all(&x, train)).expect("the input fits");
                for (node, out) in graph.nodes.iter().zip(&outputs) {
                    assert_eq!(out.size(), node.shape.sizes(2), "{what} (train = {train}): `{}`", node.name);
                }
            }

            // Every rank the layer does not accept is refused, whatever the sizes.
            for rank in (2..=5).filter(|&r| !spec.ranks.accepts(r)) {
                let dims = vec![8; rank - 1];
                assert!(
                    check_text(network(&dims, spec.takes, &case.call)).is_err(),
                    "{what}: rank {rank} should be refused ({})",
                    spec.ranks
                );
            }

            // Every element type the layer does not take is refused, by the one check that
            // names both types.
            for dtype in [DType::Float, DType::Int, DType::Bool].into_iter().filter(|&t| t != spec.takes) {
                let refused = check_text(network(&case.dims, dtype, &case.call));
                let error = refused.expect_err(&format!("{what}: a {dtype} input should be refused"));
                let needs = format!(
                    "needs a{} {} tensor",
                    if spec.takes == DType::Int { "n" } else { "" },
                    spec.takes
                );
                assert!(error.contains(&needs), "{what}: a {dtype} input is refused otherwise:\n{error}");
            }
        }
    }
    assert!(missing.is_empty(), "layers without a case generator in this harness: {missing:?}");
}

/// Every small pooling window, over 1–3 spatial axes: the checker takes exactly the ones
/// libtorch's own functions take, with their output's shape, and nnc computes their values.
/// Random cases draw only windows that fit; this holds the edges, where a ceiled window
/// longer than its padded input still gives one output (`MaxPool2d(3, 2, ceil_mode=True)` on
/// 2 rows) while a floored one, or one longer by the stride or more, gives none.
#[test]
fn poolings_refuse_exactly_the_windows_libtorch_refuses() {
    let _generator = generator();
    let (mut compared, mut refused) = (0, 0);
    for n in 1..=3usize {
        for is_max in [true, false] {
            let name = format!("{}pool{n}d", if is_max { "max" } else { "avg" });
            for (size, kernel, stride, ceil) in window_grid(1..=4, 1..=4, 1..=3) {
                for padding in 0..=kernel / 2 {
                    for dilation in if is_max { 1..=2 } else { 1..=1 } {
                        let dims: Vec<u64> = std::iter::once(2).chain(std::iter::repeat_n(size, n)).collect();
                        let mut call =
                            format!("{name}({kernel}, stride={stride}, padding={padding}, ceil_mode={ceil}");
                        if is_max {
                            call += &format!(", dilation={dilation})");
                        } else {
                            call += ", count_include_pad=false)";
                        }
                        let what = format!("{call} on [N, {dims:?}]");
                        let x = Tensor::randn(
                            std::iter::once(1).chain(dims.iter().map(|&d| d as i64)).collect::<Vec<_>>(),
                            (Kind::Float, Device::Cpu),
                        );
                        let (k, s, p) =
                            (vec![kernel as i64; n], vec![stride as i64; n], vec![padding as i64; n]);
                        let d = vec![dilation as i64; n];
                        let theirs = match (is_max, n) {
                            (true, 1) => x.f_max_pool1d(&k, &s, &p, &d, ceil),
                            (true, 2) => x.f_max_pool2d(&k, &s, &p, &d, ceil),
                            (true, _) => x.f_max_pool3d(&k, &s, &p, &d, ceil),
                            (false, 1) => x.f_avg_pool1d(&k, &s, &p, ceil, false),
                            (false, 2) => x.f_avg_pool2d(&k, &s, &p, ceil, false, None),
                            (false, _) => x.f_avg_pool3d(&k, &s, &p, ceil, false, None),
                        };
                        match (check(&dims, &call), theirs) {
                            (Ok(graph), Ok(theirs)) => {
                                let model =
                                    Model::new(&nn::VarStore::new(Device::Cpu).root(), graph, Init::PyTorch);
                                let ours =
                                    tch::no_grad(|| model.try_forward(&x, false)).expect("the input fits");
                                assert_eq!(ours.size(), theirs.size(), "{what}");
                                assert!(ours.allclose(&theirs, 0.0, 0.0, false), "{what}: other values");
                                compared += 1;
                            }
                            (Err(_), Err(_)) => refused += 1,
                            (Ok(graph), Err(e)) => {
                                panic!(
                                    "{what}: checks as {}, but libtorch refuses it: {e}",
                                    graph.nodes[1].shape
                                )
                            }
                            (Err(e), Ok(theirs)) => {
                                panic!("{what}: refused, but libtorch gives {:?}:\n{e}", theirs.size())
                            }
                        }
                    }
                }
            }
        }
    }
    // Both sides of the edge are met: the sweep is not all of one kind.
    assert!(compared > 1000 && refused > 100, "{compared} compared, {refused} refused");
}

/// Every (size, kernel, stride) of the ranges, with `ceil_mode` off and on.
fn window_grid(
    sizes: std::ops::RangeInclusive<u64>,
    kernels: std::ops::RangeInclusive<u64>,
    strides: std::ops::RangeInclusive<u64>,
) -> Vec<(u64, u64, u64, bool)> {
    let mut all = Vec::new();
    for size in sizes {
        for kernel in kernels.clone() {
            for stride in strides.clone() {
                all.extend([false, true].map(|ceil| (size, kernel, stride, ceil)));
            }
        }
    }
    all
}

/// Where tch binds a module without its arguments, the runtime writes out libtorch's kernel
/// (`runtime/src/ops.rs`): the fixtures check its values, this its gradients, which training
/// follows, at inputs where the unused branch overflows (±1000) and exactly at the bounds.
/// The expected gradients are PyTorch 2.13's: `x.grad` after `module(x).sum().backward()`.
#[test]
fn written_out_kernels_have_torchs_gradients() {
    let x = [-1000.0f32, -1.0, -2.0, 0.0, 0.25, 1.0, 3.0, 5.0, 1000.0];
    let cases: [(&str, [f64; 9]); 5] = [
        ("leaky_relu(0.2)", [0.2, 0.2, 0.2, 0.2, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("elu(alpha=0.5)", [0.0, 0.18393972516059875, 0.0676676407456398, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]),
        (
            "softplus(2.0, threshold=1.0)",
            [0.0, 0.11920291930437088, 0.01798621006309986, 0.5, 0.622459352016449, 1.0, 1.0, 1.0, 1.0],
        ),
        (
            "softplus",
            [
                0.0,
                0.2689414322376251,
                0.11920291930437088,
                0.5,
                0.562176525592804,
                0.7310585975646973,
                0.9525741338729858,
                0.9933071732521057,
                1.0,
            ],
        ),
        ("hardtanh(-2.0, 3.0)", [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
    ];
    for (call, expected) in cases {
        let graph = check(&[x.len() as u64], call).unwrap_or_else(|e| panic!("{call} does not check:\n{e}"));
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph, Init::PyTorch);
        let input = Tensor::from_slice(&x).reshape([1, -1]).set_requires_grad(true);
        model.try_forward(&input, false).unwrap().sum(Kind::Float).backward();
        let grad = input.grad();
        for (i, want) in expected.iter().enumerate() {
            let got = grad.double_value(&[0, i as i64]);
            assert!(
                (got - want).abs() <= 1e-6,
                "{call}: gradient at x = {} is {got}, PyTorch's {want}",
                x[i]
            );
        }
    }
}

/// The op fixtures, by file name.
fn op_fixtures() -> Vec<(String, parity::OpFixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity/fixtures/ops");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), parity::read_op(p).unwrap()))
        .collect()
}

#[test]
fn every_layer_computes_what_its_torch_module_computes() {
    let _generator = generator();
    let fixtures = op_fixtures();
    let covered: Vec<&str> = fixtures.iter().map(|(_, f)| f.layer.as_str()).collect();
    let uncovered: Vec<&str> = ALL.iter().map(|s| s.name).filter(|n| !covered.contains(n)).collect();
    assert!(uncovered.is_empty(), "layers without a fixture in parity/fixtures/ops: {uncovered:?}");

    for (case, fixture) in &fixtures {
        let what =
            format!("{case}: {} on [N, {}] against {}", fixture.call, fixture.input_dims, fixture.torch);
        let graph = check_text(fixture.network()).unwrap_or_else(|e| panic!("{what} does not check:\n{e}"));
        // The fixtures of the language's own operations (`arith`, `slice`, `param`, ...) and of
        // std's blocks are expressions of several nodes (see `OpFixture::state_prefix` for how
        // their tensors are named); a layer's is that layer, whose tensors are named under it.
        let prefix = fixture.state_prefix();
        if ALL.iter().any(|s| s.name == fixture.layer) {
            assert_eq!(graph.nodes[graph.inputs.len()].name, fixture.layer, "{what}: the layer's name");
        }
        let prefixed = |state: &BTreeMap<String, Tensor>| -> BTreeMap<String, Tensor> {
            state.iter().map(|(k, v)| (format!("{prefix}{k}"), v.shallow_clone())).collect()
        };

        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph.clone(), Init::PyTorch);
        // Strict: every name and shape of the module's state_dict, and nothing else.
        weights::load_map(&mut vs, &prefixed(&fixture.state), "the fixture")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            vs.variables().len(),
            fixture.state.len(),
            "{what}: the module's state_dict has other tensors"
        );

        let inputs = fixture.inputs();
        let eval = tch::no_grad(|| model.try_forward_inputs(&inputs, false)).unwrap();
        assert_eq!(eval.size(), fixture.output.size(), "{what}: eval shape");
        let error = parity::relative(&eval, &fixture.output);
        eprintln!("{case}: eval output off by {error:e}");
        assert!(error <= TOLERANCE, "{what}: eval output off by {error:e}");
        // Seeded as the fixture was, so that a dropout draws PyTorch's mask.
        tch::manual_seed(parity::DROPOUT_SEED);
        let train = tch::no_grad(|| model.try_forward_inputs(&inputs, true)).unwrap();
        let error = parity::relative(&train, &fixture.output_train);
        assert!(error <= TOLERANCE, "{what}: train output off by {error:e}");
        for (name, expected) in prefixed(&fixture.train_state) {
            let actual = &vs.variables()[&name];
            let error = parity::relative(actual, &expected);
            assert!(error <= TOLERANCE, "{what}: `{name}` after the train-mode call off by {error:e}");
        }
    }
}

/// The ranks a layer claims are the ranks its fixtures and shape rule use: a fixture outside
/// them would mean the reference (`nnc layers`) lies.
#[test]
fn fixtures_lie_within_the_ranks_each_layer_claims() {
    for (case, fixture) in op_fixtures() {
        // The language's own operations and std's blocks are no layers.
        let Some(spec) = ALL.iter().find(|s| s.name == fixture.layer) else {
            continue;
        };
        let rank = fixture.input.dim();
        assert!(spec.ranks.accepts(rank), "{case}: rank {rank} outside {}", spec.ranks);
    }
}

/// An embedding's table starts as `nn.Embedding.reset_parameters` makes it, normal(0, 1) with
/// the padding row zero, and training leaves that row at zero: the lookup gives it no
/// gradient, as PyTorch's does not.
#[test]
fn an_embeddings_padding_row_starts_zero_and_gets_no_gradient() {
    let _generator = generator();
    let call = "embedding(50, 8, padding_idx=-3) -> flatten -> linear(2)";
    let graph = check_text(network(&[6], DType::Int, call)).unwrap();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    let table = vs.variables()["0.weight"].shallow_clone();
    let row_sum = |t: &Tensor, row: i64| t.get(row).abs().sum(Kind::Float).double_value(&[]);
    assert_eq!(row_sum(&table, 47), 0.0, "the padding row starts zero");
    let others = Tensor::cat(&[table.narrow(0, 0, 47), table.narrow(0, 48, 2)], 0);
    let (mean, std) = (others.mean(Kind::Float).double_value(&[]), others.std(true).double_value(&[]));
    assert!(mean.abs() < 0.2 && (0.85..1.15).contains(&std), "normal(0, 1)? mean {mean}, std {std}");

    let x = Tensor::from_slice(&[47i64, 1, 2, 47, 3, 4, 5, 47, 47, 6, 7, 8]).reshape([2, 6]);
    model.try_forward(&x, true).unwrap().sum(Kind::Float).backward();
    let grad = table.grad();
    assert_eq!(row_sum(&grad, 47), 0.0, "the padding row gets no gradient");
    assert!(row_sum(&grad, 1) > 0.0, "a row looked up gets one");
    assert_eq!(row_sum(&grad, 9), 0.0, "a row not looked up gets none");
}

/// A masked attention (`scaled_dot_product_attention(q, k, v, mask=m)`, a key padding mask
/// [N, S] of two inputs): the positions the mask leaves out change nothing, and the output is
/// libtorch's with the mask broadcast over the queries as PyTorch's `attn_mask[:, None, :]`.
#[test]
fn masked_attention_ignores_the_masked_positions() {
    let _generator = generator();
    let text = "network masked {\n    input x [N, 5, 4]\n    input mask [N, 5] bool\n    \
                scaled_dot_product_attention(x, x, x * 2, mask=mask)\n}\n";
    let graph = check_text(text.to_string()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    tch::manual_seed(3);
    let x = Tensor::randn([2, 5, 4], (Kind::Float, Device::Cpu));
    // The last two positions are padding in the first example, none in the second.
    let mask =
        Tensor::from_slice(&[true, true, true, false, false, true, true, true, true, true]).view([2, 5]);
    let y = model.try_forward_inputs(&[&x, &mask], false).unwrap();
    let expected = Tensor::scaled_dot_product_attention(
        &x,
        &x,
        &(&x * 2),
        Some(mask.view([2, 1, 5])),
        0.0,
        false,
        None,
        false,
    );
    assert!(parity::relative(&y, &expected) <= TOLERANCE);
    // Changing what the mask leaves out leaves the output alone.
    let changed = x.copy();
    let _ = changed.get(0).narrow(0, 3, 2).fill_(100.0);
    let z = model.try_forward_inputs(&[&changed, &mask], false).unwrap();
    let first = |t: &Tensor| t.get(0).narrow(0, 0, 3);
    assert!(parity::relative(&first(&z), &first(&y)) <= TOLERANCE, "masked positions changed the output");
}
