//! For every model in `models/`, and for `tests/conformance.net`, which calls every layer of the
//! registry, the module `model!` generates and the interpreter, given the same VarStore
//! contents, compute identical outputs on the same input, in evaluation and in training mode;
//! its `graph()` is the checker's graph, and its `for_inference()` plan computes its
//! evaluation-mode outputs (within 1e-5 relative), with batch norms' statistics far from their
//! initial values, so that folding them changes the weights.

use nnc::runtime::{parity, Init, Layout, Model};
use nnc::tch::{nn, nn::ModuleT, Device, Kind, Tensor};
use nnc_compiler::{compile, Options, Root};

nnc::model!(LeNet = "../models/lenet.net");
nnc::model!(LeNetBn = "../models/lenet-bn.net");
nnc::model!(AlexNet = "../models/alexnet.net", size = 96);
nnc::model!(Vgg11 = "../models/vgg11.net", size = 32, ratio = 8);
nnc::model!(Nin = "../models/nin.net");
nnc::model!(GoogLeNet = "../models/googlenet.net");
nnc::model!(ResNet18 = "../models/resnet18.net", size = 64);
nnc::model!(ResNet110 = "../models/resnet-1000.net", n = 18);
nnc::model!(Strided = "../models/conv-examples.net", network = "strided");
nnc::model!(Conformance = "tests/conformance.net", network = "conformance");
nnc::model!(Conformance3d = "tests/conformance.net", network = "conformance_3d");
nnc::model!(ConformanceTokens = "tests/conformance.net", network = "conformance_tokens");
nnc::model!(ConformanceIds = "tests/conformance.net", network = "conformance_ids");
nnc::model!(ConformanceDecoder = "tests/conformance.net", network = "conformance_decoder");

/// The interpreter's model of the same file, with the generated model's variables copied in.
fn interpreter(
    file: &str,
    overrides: &[(&str, &str)],
    network: Option<&str>,
    from: &nn::VarStore,
) -> (Model, nn::VarStore) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let options = Options {
        overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        network: network.map(String::from),
        ..Options::default()
    };
    let compiled = compile(Root::Path(&path), &options);
    assert!(compiled.diagnostics.is_empty(), "{file}: {:?}", compiled.diagnostics);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    vs.copy(from).unwrap();
    (model, vs)
}

fn same_outputs(
    generated: &dyn ModuleT,
    graph: nnc::runtime::ir::Graph,
    vs: &nn::VarStore,
    file: &str,
    overrides: &[(&str, &str)],
    network: Option<&str>,
    input: &[i64],
) {
    let (model, _vs2) = interpreter(file, overrides, network, vs);
    let checked = model.graph();
    assert_eq!(graph.name, checked.name);
    assert_eq!(graph.params, checked.params);
    assert_eq!(graph.nodes.len(), checked.nodes.len(), "{file}: nodes");
    for (a, b) in graph.nodes.iter().zip(&checked.nodes) {
        assert_eq!(
            (&a.name, &a.op, &a.inputs, &a.shape, a.params, a.macs, a.shares, &a.ties),
            (&b.name, &b.op, &b.inputs, &b.shape, b.params, b.macs, b.shares, &b.ties),
            "{file}: `graph()`'s node"
        );
    }
    assert_eq!(graph.inputs, checked.inputs);
    let outputs = |g: &nnc::runtime::ir::Graph| -> Vec<_> {
        g.outputs.iter().map(|o| (o.name.clone(), o.node, o.training_only)).collect()
    };
    assert_eq!(outputs(&graph), outputs(checked));
    assert_eq!(vs.variables().len(), _vs2.variables().len(), "{file}: the same variables");
    let x = Tensor::randn(input, (Kind::Float, Device::Cpu));
    for train in [false, true] {
        nnc::tch::manual_seed(11);
        let a = nnc::tch::no_grad(|| generated.forward_t(&x, train));
        nnc::tch::manual_seed(11);
        let b = nnc::tch::no_grad(|| model.try_forward(&x, train)).unwrap();
        assert!(a.equal(&b), "{file} (train = {train}): outputs differ by {}", (&a - &b).abs().max());
    }
}

/// Dropout draws from libtorch's one global generator, which tests running in parallel share:
/// every test holds this lock from its first random number to its last.
fn rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

macro_rules! check {
    ($test:ident, $ty:ident, $file:expr, [$($k:expr => $v:expr),*], $network:expr, $input:expr) => {
        #[test]
        fn $test() {
            let _rng = rng();
            nnc::tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = $ty::new(&vs.root());
            let stored: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
            assert_eq!(stored as u64, $ty::PARAMETERS);
            same_outputs(&net, $ty::graph(), &vs, $file, &[$(($k, $v)),*], $network, &$input);
            randomise_batch_norms(&vs);
            let mut plan = net.for_inference().unwrap();
            assert_eq!(plan.layout(), Layout::for_graph(&$ty::graph()));
            let x = Tensor::randn($input, (Kind::Float, Device::Cpu));
            // The plan `nnc eval` runs: each convolution in the layout measured faster.
            plan.measure_conv_layouts(x.size()[0]).unwrap();
            let planned = nnc::tch::no_grad(|| plan.try_forward(&x)).unwrap();
            let plain = nnc::tch::no_grad(|| net.try_forward(&x, false)).unwrap();
            let error = parity::relative(&planned, &plain);
            assert!(error <= 1e-5, "{}: the plan ({}) is off by {error:e}", $file, plan.describe());
        }
    };
}

/// Batch norms with statistics of their own: folded, they change the layer before them.
fn randomise_batch_norms(vs: &nn::VarStore) {
    nnc::tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            let range = match name.rsplit('.').next() {
                Some("running_mean") => (-0.5, 0.5),
                Some("running_var") => (0.5, 2.0),
                _ => continue,
            };
            let _ = t.uniform_(range.0, range.1);
        }
    });
}

check!(lenet, LeNet, "../models/lenet.net", [], None, [3, 1, 28, 28]);
check!(lenet_bn, LeNetBn, "../models/lenet-bn.net", [], None, [3, 1, 28, 28]);
check!(alexnet, AlexNet, "../models/alexnet.net", ["size" => "96"], None, [2, 1, 96, 96]);
check!(vgg11, Vgg11, "../models/vgg11.net", ["size" => "32", "ratio" => "8"], None, [2, 1, 32, 32]);
check!(nin, Nin, "../models/nin.net", [], None, [2, 1, 224, 224]);
check!(googlenet, GoogLeNet, "../models/googlenet.net", [], None, [2, 1, 96, 96]);
check!(resnet18, ResNet18, "../models/resnet18.net", ["size" => "64"], None, [2, 1, 64, 64]);
check!(resnet110, ResNet110, "../models/resnet-1000.net", ["n" => "18"], None, [2, 1, 28, 28]);
check!(strided, Strided, "../models/conv-examples.net", [], Some("strided"), [2, 1, 8, 8]);
check!(conformance, Conformance, "tests/conformance.net", [], Some("conformance"), [3, 4, 9, 9]);
check!(conformance_3d, Conformance3d, "tests/conformance.net", [], Some("conformance_3d"), [3, 2, 5, 6, 7]);

/// A network of two inputs (int ids and floats) takes them in its `<Type>Inputs` struct, and
/// computes the interpreter's outputs given the same tensors in the network's order.
#[test]
fn several_inputs() {
    let _rng = rng();
    nnc::tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = ConformanceTokens::new(&vs.root());
    let file = "tests/conformance.net";
    let (model, _vs2) = interpreter(file, &[], Some("conformance_tokens"), &vs);
    let tokens = Tensor::randint(30, [3, 7], (Kind::Int64, Device::Cpu));
    let features = Tensor::randn([3, 3], (Kind::Float, Device::Cpu));
    for train in [false, true] {
        let inputs = ConformanceTokensInputs { tokens: &tokens, features: &features };
        let a = nnc::tch::no_grad(|| net.try_forward_inputs(inputs, train)).unwrap();
        let b = nnc::tch::no_grad(|| model.try_forward_inputs(&[&tokens, &features], train)).unwrap();
        assert!(a.equal(&b), "conformance_tokens (train = {train}): outputs differ");
    }
    let names: Vec<&str> = ConformanceTokens::INPUTS.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, ["tokens", "features"]);
    assert_eq!(ConformanceTokens::INPUTS[0].1, &[-1, 7]);
    assert_eq!(ConformanceTokens::INPUTS[0].2, nnc::runtime::ir::DType::Int);
    assert_eq!(ConformanceTokens::INPUT_SHAPE, &[-1, 7]);
    // Each input is checked by name, and the batches against each other.
    let swapped = ConformanceTokensInputs { tokens: &features, features: &tokens };
    let err = net.try_forward_inputs(swapped, false).unwrap_err().to_string();
    assert_eq!(err, "the model expects input `tokens` [N, 7], but got [3, 3]");
    let fewer = features.narrow(0, 0, 2);
    let err = net.try_forward_inputs(ConformanceTokensInputs { tokens: &tokens, features: &fewer }, false);
    let err = err.unwrap_err().to_string();
    assert_eq!(err, "the inputs must share their batch, but `tokens` holds 3 examples and `features` 2");
}

/// Cross-attention over a memory with its key padding mask, and std's decoder layer: the
/// generated code computes the interpreter's outputs, dropout included, from a bool mask.
#[test]
fn cross_attention_and_a_decoder_layer() {
    let _rng = rng();
    nnc::tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = ConformanceDecoder::new(&vs.root());
    let (model, _vs2) = interpreter("tests/conformance.net", &[], Some("conformance_decoder"), &vs);
    let target = Tensor::randn([3, 5, 8], (Kind::Float, Device::Cpu));
    let memory = Tensor::randn([3, 7, 8], (Kind::Float, Device::Cpu));
    // Example i leaves out its last i + 1 keys.
    let padding = Tensor::arange(7, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .ge_tensor(&(Tensor::from_slice(&[6i64, 5, 4]).unsqueeze(1)));
    assert_eq!(padding.kind(), Kind::Bool);
    for train in [false, true] {
        let inputs = ConformanceDecoderInputs { target: &target, memory: &memory, padding: &padding };
        nnc::tch::manual_seed(11);
        let a = nnc::tch::no_grad(|| net.try_forward_inputs(inputs, train)).unwrap();
        nnc::tch::manual_seed(11);
        let b = nnc::tch::no_grad(|| model.try_forward_inputs(&[&target, &memory, &padding], train)).unwrap();
        assert!(a.equal(&b), "conformance_decoder (train = {train}): outputs differ");
    }
    // The padded keys change nothing.
    let changed = memory.copy();
    let _ = changed.get(0).narrow(0, 6, 1).fill_(100.0);
    let a = nnc::tch::no_grad(|| model.try_forward_inputs(&[&target, &memory, &padding], false)).unwrap();
    let b = nnc::tch::no_grad(|| model.try_forward_inputs(&[&target, &changed, &padding], false)).unwrap();
    assert!(a.allclose(&b, 1e-6, 1e-6, false), "a left-out key changed the output");
}

/// A network of one int input is a `ModuleT` as any other, which refuses floats.
#[test]
fn one_int_input() {
    let _rng = rng();
    nnc::tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = ConformanceIds::new(&vs.root());
    let file = "tests/conformance.net";
    let (model, _vs2) = interpreter(file, &[], Some("conformance_ids"), &vs);
    let x = Tensor::randint(11, [4, 5], (Kind::Int64, Device::Cpu));
    for train in [false, true] {
        nnc::tch::manual_seed(11);
        let a = nnc::tch::no_grad(|| net.forward_t(&x, train));
        nnc::tch::manual_seed(11);
        let b = nnc::tch::no_grad(|| model.try_forward(&x, train)).unwrap();
        assert!(a.equal(&b), "conformance_ids (train = {train}): outputs differ");
    }
    let err = net.try_forward(&Tensor::zeros([4, 5], (Kind::Float, Device::Cpu)), false).unwrap_err();
    assert_eq!(err.to_string(), "the model expects input to hold int64 ids, but got a tensor of Float");
}

/// `tests/conformance.net`, checked above, calls every layer of the registry in its networks,
/// so that each op's generated code is compared with the interpreter.
#[test]
fn conformance_network_calls_every_layer() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance.net");
    let compiled = compile(Root::Path(&path), &Options::default());
    let nodes = compiled.graphs.iter().flat_map(|g| &g.nodes);
    let called: Vec<&str> = nodes.filter_map(|n| n.op.spec()).map(|spec| spec.name).collect();
    let missing: Vec<&str> =
        nnc_compiler::ops::ALL.iter().map(|s| s.name).filter(|name| !called.contains(name)).collect();
    assert!(missing.is_empty(), "tests/conformance.net calls no {missing:?}");
}

#[test]
fn generated_items_describe_the_model() {
    let _rng = rng();
    assert_eq!(ResNet18::NAME, "resnet18");
    assert_eq!(ResNet18::INPUT_SHAPE, &[-1, 1, 64, 64]);
    assert_eq!(ResNet18::OUTPUT_SHAPE, &[-1, 10]);
    assert_eq!(LeNet::PARAMETERS, 61_706);
    let conv = LeNet::LAYERS[1];
    assert_eq!(
        (conv.name, conv.op, conv.shape),
        ("0", "conv2d 1→6, 5×5, padding 2", &[-1i64, 6, 28, 28][..])
    );
    // 6·25 weights and 6 biases; a multiply-add per weight use and per bias add, at 28×28.
    assert_eq!((conv.params, conv.macs), (156, 156 * 28 * 28));
    assert_eq!(LeNet::LAYERS.iter().map(|l| l.params).sum::<u64>(), LeNet::PARAMETERS);
    assert_eq!(LeNet::LAYERS.iter().map(|l| l.macs).sum::<u64>(), LeNet::MACS);
    // The table `nnc check` prints, and a Debug that shows the model, not its tensors.
    let table = format!("{}", LeNet::new(&nn::VarStore::new(Device::Cpu).root()));
    assert_eq!(table, LeNet::summary());
    assert!(
        table.starts_with("network lenet(") && table.contains("parameters:              61,706"),
        "{table}"
    );
    let debug = format!("{:?}", LeNet::new(&nn::VarStore::new(Device::Cpu).root()));
    assert_eq!(
        debug,
        format!("LeNet {{ network: \"lenet\", parameters: 61706, macs: {}, layers: 12, .. }}", LeNet::MACS)
    );
    // A wrong input is an error naming both shapes.
    let vs = nn::VarStore::new(Device::Cpu);
    let net = LeNet::new(&vs.root());
    let err = net.try_forward(&Tensor::zeros([1, 1, 32, 32], (Kind::Float, Device::Cpu)), false).unwrap_err();
    assert_eq!(err.to_string(), "the model expects input [N, 1, 28, 28], but got [1, 1, 32, 32]");
}

// An inline model imports a `std` module, and a file by a path relative to this Rust file, as
// `include_str!` reads one; `std.resnet` is written as the language writes it, without spaces.
nnc::model! {
    import std.resnet
    import "inline_blocks.net"
    network inline_imports {
        input [N, 3, 8, 8]
        conv2d(16, 3, padding=1) -> residual(16) -> adaptive_avgpool2d(1) -> flatten -> mlp(8, 3)
    }
}

// In a `macro_rules!`, the file form takes the macro's values as arguments.
macro_rules! lenet_of {
    ($name:ident, $classes:expr) => {
        nnc::model!($name = "../models/lenet.net", classes = $classes);
    };
}
lenet_of!(LeNet3, 3);
lenet_of!(LeNet12, 2 * 6);

#[test]
fn an_inline_model_imports_std_modules_and_files_beside_it() {
    assert_eq!((LeNet3::OUTPUT_SHAPE, LeNet12::OUTPUT_SHAPE), (&[-1, 3][..], &[-1, 12][..]));
    let vs = nn::VarStore::new(Device::Cpu);
    let net = InlineImports::new(&vs.root());
    let y = net.try_forward(&Tensor::zeros([2, 3, 8, 8], (Kind::Float, Device::Cpu)), false).unwrap();
    assert_eq!(y.size(), [2, 3]);
    assert!(vs.variables().contains_key("1.conv1.weight"), "{:?}", vs.variables().keys());
    assert!(vs.variables().contains_key("4.2.weight"), "{:?}", vs.variables().keys());
}

// A convolution whose padding makes its output 2⁴⁶ floats, more than any address space.
nnc::model! {
    network huge {
        input [N, 1, 1, 1]
        relu -> conv2d(1, 1, padding=4194303)
    }
}

#[test]
fn a_layer_libtorch_cannot_allocate_is_an_error_of_the_generated_code() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Huge::new(&vs.root());
    let x = Tensor::ones([1, 1, 1, 1], (Kind::Float, Device::Cpu));
    let err = nnc::tch::no_grad(|| net.try_forward(&x, false)).unwrap_err().to_string();
    assert!(
        err.starts_with("layer `1` (conv2d 1→1, 1×1, padding 4194303) could not allocate 281.47 TB"),
        "{err}"
    );
    assert!(err.contains("on input [1, 1, 1, 1]"), "{err}");
}

// A weight of 2⁴⁶ floats (281 TB), more than any address space: no overcommitting
// allocator hands it out to be written.
nnc::model! {
    network too_wide {
        input [N, 8388608]
        linear(8388608)
    }
}

#[test]
fn try_new_is_an_error_where_libtorch_cannot_create_a_tensor() {
    let vs = nn::VarStore::new(Device::Cpu);
    let err = TooWide::try_new(&vs.root()).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("layer `linear`") && err.contains("creating its tensor `weight` [8388608, 8388608]"),
        "{err}"
    );
}

/// `with_precision(Precision::Bf16)` on the generated type runs the same autocast as the
/// interpreter: the same bf16 outputs to the bit, given back in fp32, and not fp32's.
#[test]
fn generated_bf16_is_the_interpreters_bf16() {
    use nnc::runtime::Precision;
    let _rng = rng();
    nnc::tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = LeNetBn::new(&vs.root()).with_precision(Precision::Bf16);
    assert_eq!(net.precision(), Precision::Bf16);
    let (mut model, _vs2) = interpreter("../models/lenet-bn.net", &[], None, &vs);
    let x = Tensor::randn([4, 1, 28, 28], (Kind::Float, Device::Cpu));
    for train in [false, true] {
        model.set_precision(Precision::Bf16);
        let a = nnc::tch::no_grad(|| net.try_forward(&x, train)).unwrap();
        let b = nnc::tch::no_grad(|| model.try_forward(&x, train)).unwrap();
        assert_eq!(a.kind(), Kind::Float, "a bf16 forward gives fp32 outputs");
        assert!(a.equal(&b), "train = {train}: bf16 outputs differ by {}", (&a - &b).abs().max());
        model.set_precision(Precision::Fp32);
        let full = nnc::tch::no_grad(|| model.try_forward(&x, train)).unwrap();
        assert!(!a.equal(&full), "train = {train}: bf16 gave fp32's outputs; was autocast on?");
    }
    // The type's inference plan computes in its precision: bf16 weights made once, within the
    // README's bf16 tolerance of fp32 in evaluation mode, and not fp32's outputs.
    // (The fp32 reference is a fresh copy of the type's tensors: the training forwards above
    // moved its batch norms' statistics and the interpreter's differently.)
    let plan = net.for_inference().unwrap();
    assert_eq!(plan.model().precision(), Precision::Bf16);
    let planned = nnc::tch::no_grad(|| plan.try_forward(&x)).unwrap();
    let (reference, _vs3) = interpreter("../models/lenet-bn.net", &[], None, &vs);
    let full = nnc::tch::no_grad(|| reference.try_forward(&x, false)).unwrap();
    assert_eq!(planned.kind(), Kind::Float, "a bf16 plan gives fp32 outputs");
    let error = parity::relative(&planned, &full);
    assert!(error > 0.0 && error <= 3e-2, "the bf16 plan ({}) is off fp32 by {error:e}", plan.describe());
}
