//! The inference plan (`nnc_runtime::inference`) computes what the interpreter computes: every
//! model of `models/`, and several of the zoo at a small size, in each layout, with batch
//! norms whose statistics and affine tensors are far from their initial values (so that
//! folding them changes the weights), within 1e-5 relative of the plain evaluation-mode forward.

use std::path::{Path, PathBuf};

use nnc_compiler::ir::{Graph, Op};
use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{conv_layout, parity, Inference, Init, Layout, Model};
use support::random_inputs;
use tch::{nn, Device, Tensor};

mod support;

const TOLERANCE: f64 = 1e-5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Overrides that keep each model small enough for a quick CPU test.
fn overrides(file: &str) -> Vec<(String, String)> {
    let set: &[(&str, &str)] = match file {
        "alexnet.net" => &[("size", "96"), ("hidden", "256")],
        "vgg11.net" => &[("size", "32"), ("ratio", "8"), ("hidden", "128")],
        "resnet18.net" => &[("size", "64")],
        "resnet-1000.net" => &[("n", "18")],
        "nin.net" => &[("size", "96"), ("ratio", "4")],
        "googlenet.net" => &[("size", "64"), ("ratio", "4")],
        "densenet.net" => &[("size", "64")],
        "zoo/mobilenet_v2.net" | "zoo/efficientnet_b0.net" | "zoo/resnet50.net" => &[("size", "64")],
        "zoo/shufflenet_v2_x1_0.net" | "zoo/regnet_y_400mf.net" => &[("size", "64")],
        "zoo/unet.net" => &[("size", "32")],
        "zoo/inception_v3.net" => &[("classes", "10")],
        "zoo/resnext50_32x4d.net" | "zoo/convnext_tiny.net" | "zoo/densenet121.net" => {
            &[("size", "32"), ("classes", "10")]
        }
        "zoo/mobilenet_v3_small.net" => &[("size", "64")],
        "zoo/vit_b_16.net" => &[
            ("size", "32"),
            ("layers", "2"),
            ("num_heads", "2"),
            ("hidden", "32"),
            ("mlp", "64"),
            ("classes", "10"),
        ],
        "zoo/gpt2.net" => {
            &[("vocab", "100"), ("length", "16"), ("width", "32"), ("layers", "2"), ("heads", "2")]
        }
        _ => &[],
    };
    set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn graphs(file: &str) -> Vec<Graph> {
    let path = root().join("models").join(file);
    let options = Options { overrides: overrides(file), ..Options::default() };
    let compiled = compile(Root::Path(&path), &options);
    assert!(compiled.diagnostics.is_empty(), "{file}: {:?}", compiled.diagnostics);
    compiled.graphs
}

/// Batch norms with statistics and affine tensors of their own: folded, they change the
/// layer before them.
fn randomise_batch_norms(vs: &nn::VarStore, graph: &Graph) {
    let variables = vs.variables();
    tch::no_grad(|| {
        for node in graph.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm(_))) {
            for (tensor, low, high) in [
                ("running_mean", -0.5, 0.5),
                ("running_var", 0.5, 2.0),
                ("weight", 0.5, 1.5),
                ("bias", -0.5, 0.5),
            ] {
                let mut t = variables[&format!("{}.{tensor}", node.name)].shallow_clone();
                let _ = t.uniform_(low, high);
            }
        }
    });
}

/// The plan's outputs against the interpreter's, in each layout; the number of batch norms
/// the plan folded.
fn check(file: &str) -> usize {
    graphs(file).into_iter().fold(0, |_, graph| check_graph(file, graph))
}

fn check_graph(file: &str, graph: Graph) -> usize {
    let mut folded = 0;
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    randomise_batch_norms(&vs, model.graph());
    let inputs = random_inputs(model.graph(), 2);
    let xs: Vec<&Tensor> = inputs.iter().collect();
    let plain = tch::no_grad(|| model.try_forward_outputs_inputs(&xs, false)).unwrap();
    for layout in [Layout::Contiguous, Layout::ChannelsLast] {
        let plan = Inference::new(&model, layout).unwrap();
        assert_eq!(plan.layout(), layout, "{file}: a CPU fp32 model runs in the layout asked for");
        folded = plan.folded();
        let optimised = tch::no_grad(|| plan.try_forward_outputs_inputs(&xs)).unwrap();
        assert_eq!(optimised.len(), plain.len(), "{file}: outputs");
        for (k, (a, b)) in optimised.iter().zip(&plain).enumerate() {
            assert_eq!(a.size(), b.size(), "{file}: output {k}'s shape");
            let error = parity::relative(a, b);
            eprintln!("{file} {layout:?}: output {k} off by {error:e}, {folded} batch norms folded");
            assert!(error <= TOLERANCE, "{file} {layout:?}: output {k} off the interpreter's by {error:e}");
        }
    }
    // Channels-last, with every convolution that has a layout of its own run on contiguous
    // activations, as `measure_conv_layouts` may choose: the layouts meet in sums and joins.
    let mut plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
    let names = measurable(&model);
    let ran = plan.run_contiguous(&names);
    // Every one the plan packs (not a `same` convolution of an even window).
    assert!(
        ran <= names.len() && (ran > 0 || names.is_empty() || file == "conv-examples.net"),
        "{file}: {ran} of {names:?}"
    );
    let optimised = tch::no_grad(|| plan.try_forward_outputs_inputs(&xs)).unwrap();
    for (k, (a, b)) in optimised.iter().zip(&plain).enumerate() {
        let error = parity::relative(a, b);
        eprintln!("{file} mixed ({ran} convolutions contiguous): output {k} off by {error:e}");
        assert!(error <= TOLERANCE, "{file} mixed: output {k} off the interpreter's by {error:e}");
    }
    folded
}

/// A prepacked weight is laid out for each size of input the plan meets (oneDNN's kernel, and
/// the layout it reads, depend on it), and for contiguous inputs: a plan fed batches of more
/// sizes than it keeps weights for, with half its convolutions contiguous, computes the
/// interpreter's outputs at each.
#[test]
fn a_plan_meets_batches_of_any_size() {
    let graph = graphs("zoo/mobilenet_v2.net").remove(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    randomise_batch_norms(&vs, model.graph());
    let mut plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
    let every_other: Vec<String> = model
        .graph()
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_)))
        .step_by(2)
        .map(|n| n.name.clone())
        .collect();
    plan.run_contiguous(&every_other);
    for batch in [1, 3, 2, 5, 1, 4] {
        let inputs = random_inputs(model.graph(), batch);
        let xs: Vec<&Tensor> = inputs.iter().collect();
        let plain = tch::no_grad(|| model.try_forward_inputs(&xs, false)).unwrap();
        let optimised = tch::no_grad(|| plan.try_forward_inputs(&xs)).unwrap();
        let error = parity::relative(&optimised, &plain);
        assert!(error <= TOLERANCE, "batch {batch}: off the interpreter's by {error:e}");
    }
}

/// The names of the convolutions whose layout is measured.
fn measurable(model: &Model) -> Vec<String> {
    conv_layout::measurable(model.graph()).into_iter().map(|id| model.graph().node(id).name.clone()).collect()
}

/// The plan runs a convolution contiguous where that was measured faster: only convolutions
/// with a layout of their own are measured, and the plan says how many it runs so.
#[test]
fn convolutions_run_contiguous_where_measured_faster() {
    let graph = graphs("resnet18.net").remove(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    // The 3×3 convolutions of the residual blocks; not the stem on one channel, nor the 1×1
    // shortcuts.
    let names = measurable(&model);
    assert_eq!(names.len(), 16, "{names:?}");
    let mut plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
    assert_eq!(plan.run_contiguous(&names), 16);
    assert!(
        plan.describe().ends_with(", 16 convolutions on contiguous activations (measured faster)"),
        "{}",
        plan.describe()
    );
    let chosen = plan.measure_conv_layouts(4).unwrap();
    assert!(chosen.iter().all(|n| names.contains(n)), "{chosen:?}");
    assert_eq!(plan.contiguous(), chosen.len());
    // A bf16 plan's convolutions stay channels-last.
    let mut model = model;
    model.set_precision(nnc_runtime::Precision::Bf16);
    if nnc_runtime::shim::onednn_bf16_supported() {
        let mut plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
        assert_eq!(plan.run_contiguous(&names), 0);
    }
}

#[test]
fn every_model_computes_the_interpreters_outputs() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for file in files {
        check(&file);
    }
}

#[test]
fn batch_norms_fold_into_the_layer_before_them() {
    // LeNet-BN: two convolutions and two linear layers, each followed by a batch norm.
    assert_eq!(check("lenet-bn.net"), 4);
    // ResNet-18: the stem's and the two of each of the eight residual blocks; d2l's 1×1
    // shortcut convolutions have none.
    assert_eq!(check("resnet18.net"), 17);
    assert_eq!(check("lenet.net"), 0);
}

#[test]
fn zoo_networks_compute_the_interpreters_outputs() {
    for file in [
        "zoo/mobilenet_v2.net",
        "zoo/resnet50.net",
        "zoo/efficientnet_b0.net",
        "zoo/shufflenet_v2_x1_0.net",
        "zoo/regnet_y_400mf.net",
        "zoo/unet.net",
        "zoo/text_classifier.net",
    ] {
        check(file);
    }
}

/// The rest of the zoo, a test of its own so that the two run in parallel: asymmetric kernels
/// and paddings (Inception-v3), grouped convolutions (ResNeXt), 7×7 depthwise ones and layer
/// norms over channels (ConvNeXt), hardswish and squeeze-excitation products (MobileNetV3),
/// concatenations (DenseNet), attention (ViT, GPT-2).
#[test]
fn the_rest_of_the_zoo_computes_the_interpreters_outputs() {
    for file in [
        "zoo/inception_v3.net",
        "zoo/resnext50_32x4d.net",
        "zoo/convnext_tiny.net",
        "zoo/mobilenet_v3_small.net",
        "zoo/densenet121.net",
        "zoo/vit_b_16.net",
        "zoo/gpt2.net",
    ] {
        check(file);
    }
}

/// A sum of a convolution's value (through its folded batch norm) and another tensor of its
/// shape that dies there is fused into the convolution, which writes over that tensor: once
/// here (not the sum whose other operand is read afterwards), and ResNet-18's eight residual
/// sums. Its outputs are the interpreter's, NaNs and infinities where the interpreter has them
/// (oneDNN's sum is IEEE's; its fused ReLU would not be, which is why none is fused), in
/// channels-last and with every convolution contiguous (where libtorch adds after it).
#[test]
fn sums_fuse_into_the_convolution_before_them() {
    let text = "network sums {
    input [N, 4, 16, 16]
    x = relu
    y = x -> conv2d(4, 3, padding=1) -> relu
    a = y -> conv2d(4, 3, padding=1) -> batchnorm -> _ + x -> relu
    z = a -> conv2d(4, 3, padding=1) -> relu
    b = z -> conv2d(4, 3, padding=1) -> _ + a
    b * a
}
";
    let compiled = compile(Root::Text { name: "sums.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    let graph = compiled.graphs.into_iter().next().unwrap();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    randomise_batch_norms(&vs, model.graph());
    // A NaN in one corner, infinities in another: they spread through the convolutions to a
    // corner of the output each, and the rest stays finite.
    let x = Tensor::randn([2, 4, 16, 16], (tch::Kind::Float, Device::Cpu));
    let _ = x.get(0).get(0).get(1).get(1).fill_(f64::NAN);
    let _ = x.get(1).get(3).get(14).get(14).fill_(f64::INFINITY);
    let _ = x.get(1).get(1).get(13).get(14).fill_(f64::NEG_INFINITY);
    let plain = tch::no_grad(|| model.try_forward(&x, false)).unwrap();
    let count = |t: Tensor| t.sum(tch::Kind::Int64).int64_value(&[]);
    let (nans, finite) = (count(plain.isnan()), count(plain.isfinite()));
    assert!(nans > 0 && finite > nans, "{nans} NaNs, {finite} finite values");
    let mut plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
    assert_eq!(plan.fused(), 1, "{}", plan.describe());
    for contiguous in [false, true] {
        if contiguous {
            plan.run_contiguous(&measurable(&model));
            assert_eq!(plan.contiguous(), 4);
        }
        let optimised = tch::no_grad(|| plan.try_forward(&x)).unwrap();
        assert!(
            optimised.isnan().equal(&plain.isnan()),
            "contiguous {contiguous}: NaNs where the interpreter has them"
        );
        assert!(optimised.isinf().equal(&plain.isinf()), "contiguous {contiguous}: infinities too");
        let finite = |t: &Tensor| t.nan_to_num(0.0, 0.0, 0.0);
        let error = parity::relative(&finite(&optimised), &finite(&plain));
        assert!(error <= TOLERANCE, "contiguous {contiguous}: off the interpreter's by {error:e}");
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graphs("resnet18.net").remove(0), Init::PyTorch);
    let plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
    assert_eq!(plan.fused(), 8, "{}", plan.describe());
    assert!(plan.describe().contains("8 sums fused into the convolution before them"), "{}", plan.describe());
}

/// A sum whose other operand cannot be written over stays a node of its own, and the plan
/// computes the interpreter's outputs: the operand is the convolution's own input; a node
/// between the convolution and the sum reads it; it is the graph's input; it is read after the
/// sum through another name (a dropout, the same tensor in evaluation).
#[test]
fn sums_that_cannot_write_over_their_operand_stay_apart() {
    for (name, body) in [
        ("its own input", "t = relu\n    t -> conv2d(4, 3, padding=1) -> _ + t"),
        (
            "read in between",
            "x = relu\n    t = x -> relu\n    c = x -> conv2d(4, 3, padding=1)\n    u = t -> sigmoid\n    \
             s = c + t\n    s * u",
        ),
        ("the graph's input", "x = relu\n    x -> conv2d(4, 3, padding=1) -> _ + in"),
        (
            "read after, through another name",
            "x = relu\n    y = x -> conv2d(4, 3, padding=1) -> relu\n    v = x -> dropout(0.5)\n    \
             s = y -> conv2d(4, 3, padding=1) -> _ + v\n    s * x",
        ),
    ] {
        let text = format!("network apart {{\n    input [N, 4, 8, 8]\n    {body}\n}}\n");
        let compiled = compile(Root::Text { name: "apart.net", text: &text, dir: None }, &Options::default());
        assert!(compiled.diagnostics.is_empty(), "{name}: {:?}", compiled.diagnostics);
        let graph = compiled.graphs.into_iter().next().unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph.clone(), Init::PyTorch);
        let plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
        assert_eq!(plan.fused(), 0, "{name}: {}", plan.describe());
        check_graph(name, graph);
    }
}

/// Which convolutions run through oneDNN with prepacked weights: every 2-D one of a batch
/// (grouped, strided, dilated, without bias, `same` of an odd window, one a batch norm folded
/// into), except a `same` convolution of an even window, which libtorch pads unevenly itself;
/// the outputs stay the interpreter's.
#[test]
fn convolution_weights_are_prepacked() {
    let text = "network convolutions {
    input [N, 3, 20, 20]
    x = conv2d(8, 3, padding=1)
    y = x -> batchnorm -> gelu -> tanh
    z = (x -> conv2d(8, 5, padding=\"same\", dilation=1, bias=false) -> sigmoid) * y
    d = z + x -> conv2d(8, 3, groups=8, stride=2, dilation=2, padding=2) -> batchnorm -> relu
    e = d -> conv2d(8, 4, padding=\"same\")
    e + d -> adaptive_avgpool2d(1) -> flatten -> linear(4)
}
";
    let compiled = compile(Root::Text { name: "convolutions.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    let graph = compiled.graphs.into_iter().next().unwrap();
    // The depthwise convolution's batch norm folds; the first's does not (`x` has three readers).
    assert_eq!(check_graph("convolutions.net", graph.clone()), 1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    for layout in [Layout::Contiguous, Layout::ChannelsLast] {
        assert_eq!(Inference::new(&model, layout).unwrap().packed(), 3, "{layout:?}");
    }
    for (file, convolutions) in [("lenet.net", 2), ("resnet18.net", 20), ("zoo/mobilenet_v2.net", 52)] {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graphs(file).remove(0), Init::PyTorch);
        assert_eq!(Inference::new(&model, Layout::for_graph(model.graph())).unwrap().packed(), convolutions);
    }
}

/// The layout each plan takes: channels-last where wide convolutions do most of the work,
/// contiguous for LeNet.
#[test]
fn inference_layouts_are_chosen_per_graph() {
    for (file, layout) in [
        ("resnet18.net", Layout::ChannelsLast),
        ("zoo/resnet50.net", Layout::ChannelsLast),
        ("zoo/mobilenet_v2.net", Layout::ChannelsLast),
        ("googlenet.net", Layout::ChannelsLast),
        ("lenet.net", Layout::Contiguous),
    ] {
        let graph = graphs(file).remove(0);
        assert_eq!(Layout::for_graph(&graph), layout, "{file}");
    }
}

/// A value the plan could compute in place is read again through another name: the tensor
/// dropout passes on in evaluation mode, a view (`reshape`, `transpose`, a slice), an output;
/// each must keep its values (the plan traces every name to its storage).
#[test]
fn values_read_through_another_name_are_not_overwritten() {
    let text = "network dropout_alias {
    input [N, 8]
    h = linear(8)
    v = h -> dropout(0.1)
    s = h -> sigmoid
    s + v
}

network reshaped_output {
    input [N, 8]
    h = linear(8)
    f = h -> reshape(2, 4)
    r = h -> relu
    output r, f
}

network sliced {
    input [N, 4]
    h = linear(4)
    c = h[:, 0:1]
    h * c
}

network transposed {
    input [N, 3, 3]
    h = linear(3)
    t = h -> transpose(1, 2)
    h + t
}

network dilated_pool {
    input [N, 3, 32, 32]
    conv2d(32, 3, padding=1) -> relu -> maxpool2d(3, stride=2, dilation=2) -> conv2d(32, 3) -> relu
        -> adaptive_avgpool2d(1) -> flatten -> linear(10)
}
";
    let compiled = compile(Root::Text { name: "aliases.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    assert_eq!(compiled.graphs.len(), 5);
    for graph in compiled.graphs {
        let name = graph.name.clone();
        check_graph(&name, graph);
    }
}

/// A model cast to f64 runs its convolutions through libtorch's usual kernel: the prepacked
/// ones take fp32 alone.
#[test]
fn a_model_of_another_type_keeps_libtorchs_convolution() {
    let mut graph = graphs("resnet18.net").remove(0);
    graph.name = "resnet18 in f64".to_string();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), graph, Init::PyTorch);
    vs.double();
    let plan = Inference::new(&model, Layout::ChannelsLast).unwrap();
    assert_eq!(plan.packed(), 0);
    let x = Tensor::randn([2, 1, 64, 64], (tch::Kind::Double, Device::Cpu));
    let planned = tch::no_grad(|| plan.try_forward(&x)).unwrap();
    let plain = tch::no_grad(|| model.try_forward(&x, false)).unwrap();
    assert!(parity::relative(&planned, &plain) <= TOLERANCE);
}

/// A tensor made channels-last has the channels' stride 1 even with one channel (ResNet's stem
/// reads such an input), as PyTorch's `.to(memory_format=torch.channels_last)` gives it, so
/// that libtorch's convolution takes it as NHWC; the values stay.
#[test]
fn channels_last_strides_hold_for_one_channel() {
    for (size, strides) in [([2, 1, 4, 3], [12, 1, 3, 1]), ([2, 5, 4, 3], [60, 1, 15, 5])] {
        let t = Tensor::randn(size, (tch::Kind::Float, Device::Cpu));
        let arranged = nnc_runtime::inference::channels_last(&t).unwrap();
        assert_eq!(arranged.stride(), strides.to_vec());
        assert!(arranged.equal(&t));
    }
    assert!(nnc_runtime::inference::channels_last(&Tensor::zeros([2, 3], (tch::Kind::Float, Device::Cpu)))
        .is_err());
}
