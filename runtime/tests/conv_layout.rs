//! Convolutions of one model in different layouts (`nnc_runtime::conv_layout`): each runs in
//! its weight's layout, the values and gradients stay those of the contiguous model, and only
//! the convolutions whose weight has a layout of its own are measured.

use nnc_compiler::ir::{Graph, Op};
use nnc_compiler::{compile, Options, Root};
use nnc_runtime::inference::channels_last;
use nnc_runtime::train::{channels_last_weights, cross_entropy};
use nnc_runtime::{conv_layout, Init, Model};
use tch::{nn, Device, Kind, Tensor};

/// ResNet's layers (convolutions before a batch norm have no bias, whose gradient would be
/// rounding alone): a stem on one channel, 3×3 convolutions, a 1×1 projection and a
/// depthwise convolution.
const NET: &str = "network mixed { input [N, 1, 12, 12]
  conv2d(8, 3, padding=1, bias=false) -> batchnorm -> relu
  -> conv2d(16, 3, padding=1, stride=2, bias=false) -> batchnorm -> relu
  -> conv2d(16, 3, padding=1) -> relu
  -> conv2d(16, 3, padding=1, groups=16) -> conv2d(24, 1)
  -> adaptive_avgpool2d(1) -> flatten -> linear(5) }";

fn compiled(text: &str) -> Graph {
    let compiled = compile(Root::Text { name: "mixed.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    compiled.graphs.into_iter().next().unwrap()
}

fn convolutions(graph: &Graph) -> Vec<String> {
    graph.nodes.iter().filter(|n| matches!(n.op, Op::Conv2d(_))).map(|n| n.name.clone()).collect()
}

/// Whether a tensor of rank 4 is laid out NCHW (and not also NHWC, as a 1×1 map is).
fn is_contiguous_only(t: &Tensor) -> bool {
    t.is_contiguous() && t.stride() != channels_last(t).unwrap().stride()
}

/// The model's every node's output and every gradient after a training step on `x`.
fn step(
    model: &Model,
    vs: &nn::VarStore,
    x: &Tensor,
    labels: &Tensor,
) -> (Vec<Tensor>, Vec<(String, Tensor)>) {
    let outputs = model.forward_all(x, true).unwrap();
    let logits = &outputs[model.graph().output().0];
    cross_entropy(logits, labels).unwrap().backward();
    let mut grads: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(_, v)| v.requires_grad()).map(|(n, v)| (n, v.grad())).collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    (outputs, grads)
}

fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a - b).abs().max().double_value(&[]) / scale
}

#[test]
fn each_convolution_runs_in_its_weights_layout() {
    let graph = compiled(NET);
    let names = convolutions(&graph);
    // The second and third 3×3 convolutions stay contiguous; the rest is channels-last.
    let kept = vec![names[1].clone(), names[2].clone()];
    let x = Tensor::randn([4, 1, 12, 12], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 3, 1, 4]);

    let plain_vs = nn::VarStore::new(Device::Cpu);
    let plain = Model::new(&plain_vs.root(), graph.clone(), Init::PyTorch);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mixed = Model::new(&vs.root(), graph.clone(), Init::PyTorch);
    vs.copy(&plain_vs).unwrap();
    let (plain_out, plain_grads) = step(&plain, &plain_vs, &x, &labels);

    channels_last_weights(&vs).unwrap();
    conv_layout::arrange(&mixed, &kept).unwrap();
    let (out, grads) = step(&mixed, &vs, &channels_last(&x).unwrap(), &labels);

    for (node, (a, b)) in graph.nodes.iter().zip(out.iter().zip(&plain_out)) {
        let error = relative(a, b);
        assert!(error < 1e-5, "{}: {error:e} from the contiguous model's output", node.name);
        if matches!(node.op, Op::Conv2d(_)) && node.name != names[3] && node.name != names[4] {
            // Each convolution computed in its weight's layout (the depthwise and the 1×1 ones
            // follow their input, and are not asked).
            let weight = vs.variables()[&format!("{}.weight", node.name)].shallow_clone();
            let contiguous = kept.contains(&node.name);
            assert_eq!(is_contiguous_only(&weight), contiguous, "{}'s weight", node.name);
            assert_eq!(is_contiguous_only(a), contiguous, "{}'s output", node.name);
        }
    }
    assert_eq!(grads.len(), plain_grads.len());
    for ((name, a), (_, b)) in grads.iter().zip(&plain_grads) {
        assert!(a.defined() && b.defined(), "{name} has a gradient in both");
        let error = relative(a, b);
        assert!(error < 1e-5, "{name}'s gradient: {error:e} from the contiguous model's");
    }
}

#[test]
fn only_convolutions_with_a_layout_of_their_own_are_measured() {
    let graph = compiled(NET);
    let names = convolutions(&graph);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    // The stem (one input channel), the depthwise and the 1×1 convolutions have one layout.
    let measurable: Vec<String> = conv_layout::measurable(model.graph())
        .into_iter()
        .map(|id| model.graph().node(id).name.clone())
        .collect();
    assert_eq!(measurable, &names[1..3]);
    let chosen = conv_layout::measure(&model, 8, Device::Cpu).unwrap();
    assert!(chosen.iter().all(|n| measurable.contains(n)), "{chosen:?} of {measurable:?}");

    // A network with free sizes has no one shape to measure at.
    let free = compiled("network free { input [N, 4, H, W] conv2d(8, 3, padding=1) -> relu }");
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), free, Init::PyTorch);
    assert!(model.graph().free.is_some());
    assert!(conv_layout::measurable(model.graph()).is_empty());
    assert_eq!(conv_layout::measure(&model, 8, Device::Cpu).unwrap(), Vec::<String>::new());
}
