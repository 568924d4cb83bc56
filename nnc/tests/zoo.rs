//! The torchvision zoo through `model!`: each generated module loads the synthetic
//! torchvision state of its fixture (`parity/fixtures/zoo/`, see `runtime/tests/zoo.rs`)
//! strictly and computes torchvision's output.

use std::path::Path;

use nnc::runtime::{parity, weights};
use nnc::tch::{nn, nn::ModuleT, Device};

nnc::model!(ResNet50 = "../models/zoo/resnet50.net", classes = 10, size = 64);
nnc::model!(ResNeXt50 = "../models/zoo/resnext50_32x4d.net", classes = 10, size = 64);
nnc::model!(MobileNetV2 = "../models/zoo/mobilenet_v2.net", classes = 10, size = 64);
nnc::model!(MobileNetV3Small = "../models/zoo/mobilenet_v3_small.net", classes = 10, size = 64);
nnc::model!(EfficientNetB0 = "../models/zoo/efficientnet_b0.net", classes = 10, size = 64);
nnc::model!(RegNetY400MF = "../models/zoo/regnet_y_400mf.net", classes = 10, size = 64);
nnc::model!(DenseNet121 = "../models/zoo/densenet121.net", classes = 10, size = 64);
nnc::model!(ShuffleNetV2 = "../models/zoo/shufflenet_v2_x1_0.net", classes = 10, size = 64);
nnc::model!(VitB16 = "../models/zoo/vit_b_16.net", classes = 10, size = 64);
nnc::model!(InceptionV3 = "../models/zoo/inception_v3.net", classes = 10, size = 299);
nnc::model!(ConvNeXtTiny = "../models/zoo/convnext_tiny.net", classes = 10, size = 64);
nnc::model!(UNet = "../models/zoo/unet.net", classes = 2, size = 64);
nnc::model!(
    TextClassifier = "../models/zoo/text_classifier.net",
    vocab = 50,
    embed = 8,
    hidden = 6,
    classes = 10,
    length = 12
);
nnc::model!(Gpt2 = "../models/zoo/gpt2.net", vocab = 50, width = 16, layers = 2, heads = 2, length = 12);
// At GPT-2 small's sizes, never instantiated here (its weights are half a gigabyte): that it
// compiles, and what it counts.
nnc::model!(Gpt2Small = "../models/zoo/gpt2.net");

/// Loads the fixture's synthetic state into `vs` strictly and compares `net`'s output with
/// torchvision's.
fn check(name: &str, net: &dyn ModuleT, vs: &mut nn::VarStore) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../parity/fixtures/zoo/{name}.safetensors"));
    let fixture = parity::read_zoo(&path).unwrap();
    weights::load_map(vs, &fixture.synthetic_state(), "the synthetic torchvision state").unwrap();
    let y = nnc::tch::no_grad(|| net.forward_t(&fixture.synthetic_input(), false));
    let error = parity::relative(&y, &fixture.output);
    assert!(error <= 1e-5, "{name}: the generated module is off torchvision's output by {error:e}");
}

macro_rules! zoo {
    ($test:ident, $ty:ident, $name:literal) => {
        #[test]
        fn $test() {
            let mut vs = nn::VarStore::new(Device::Cpu);
            let net = $ty::new(&vs.root());
            check($name, &net, &mut vs);
        }
    };
}

zoo!(resnet50, ResNet50, "resnet50");
zoo!(resnext50_32x4d, ResNeXt50, "resnext50_32x4d");
zoo!(mobilenet_v2, MobileNetV2, "mobilenet_v2");
zoo!(mobilenet_v3_small, MobileNetV3Small, "mobilenet_v3_small");
zoo!(efficientnet_b0, EfficientNetB0, "efficientnet_b0");
zoo!(regnet_y_400mf, RegNetY400MF, "regnet_y_400mf");
zoo!(densenet121, DenseNet121, "densenet121");
zoo!(shufflenet_v2_x1_0, ShuffleNetV2, "shufflenet_v2_x1_0");
zoo!(convnext_tiny, ConvNeXtTiny, "convnext_tiny");
zoo!(inception_v3, InceptionV3, "inception_v3");
zoo!(vit_b_16, VitB16, "vit_b_16");

/// The generated type's outputs: Inception-v3's auxiliary classifier is `None` in evaluation
/// mode and torchvision's value in training mode.
#[test]
fn inception_v3_outputs() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = InceptionV3::new(&vs.root());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity/fixtures/zoo/inception_v3.safetensors");
    let fixture = parity::read_zoo(&path).unwrap();
    weights::load_map(&mut vs, &fixture.synthetic_state(), "the synthetic torchvision state").unwrap();
    let x = fixture.synthetic_input();
    let eval = nnc::tch::no_grad(|| net.try_forward_outputs(&x, false)).unwrap();
    assert!(eval.AuxLogits.is_none());
    assert!(parity::relative(&eval.output, &fixture.output) <= 1e-5);
    let train = nnc::tch::no_grad(|| net.try_forward_outputs(&x, true)).unwrap();
    let aux = train.AuxLogits.expect("the auxiliary output in training mode");
    let error = parity::relative(&aux, fixture.aux_train.as_ref().unwrap());
    assert!(error <= 1e-5, "the auxiliary output is off torchvision's by {error:e}");
}
zoo!(unet, UNet, "unet");
zoo!(text_classifier, TextClassifier, "text_classifier");
zoo!(gpt2, Gpt2, "gpt2");

/// GPT-2 small's parameters, its output embedding tied to its input embedding and counted once.
#[test]
fn gpt2_small_counts_tied_weights_once() {
    assert_eq!(Gpt2Small::PARAMETERS, 124_439_808);
    assert_eq!(Gpt2Small::OUTPUT_SHAPE, &[-1, 1024, 50_257]);
}

/// A tied weight is one tensor: the optimiser sees it once, and a step on the output
/// projection's gradient moves the input embedding.
#[test]
fn gpt2_tied_weight_is_one_tensor() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = Gpt2::new(&vs.root());
    let variables = vs.variables();
    let (wte, head) = (&variables["wte.weight"], &variables["lm_head.weight"]);
    assert_eq!(wte.data_ptr(), head.data_ptr());
    let trained: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    assert_eq!(trained as u64, Gpt2::PARAMETERS);
}
