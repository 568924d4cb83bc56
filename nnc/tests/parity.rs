//! The modules `model!` generates compute what PyTorch computes: each fixture of
//! `parity/fixtures/` gives PyTorch's outputs in eval and train mode, and its weights after one
//! SGD step, within 1e-5 relative. (`runtime/tests/parity.rs` checks the interpreter.)

use std::path::Path;

use nnc::runtime::parity;
use nnc::tch::{nn, Device};

nnc::model!(PLeNet = "../models/lenet.net");
nnc::model!(PLeNetBn = "../models/lenet-bn.net");
nnc::model!(PAlexNet = "../models/alexnet.net", size = 96, ratio = 8, hidden = 64);
nnc::model!(PVgg = "../models/vgg11.net", size = 32, ratio = 16, hidden = 64);
nnc::model!(PNin = "../models/nin.net", size = 96, ratio = 8);
nnc::model!(PGoogLeNet = "../models/googlenet.net", ratio = 8);
nnc::model!(PResNet18 = "../models/resnet18.net", size = 32, ratio = 8);

const TOLERANCE: f64 = 1e-5;

macro_rules! parity {
    ($test:ident, $ty:ident, $fixture:expr, $net:expr, $set:expr) => {
        #[test]
        fn $test() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parity/fixtures").join($fixture);
            let fixture = parity::read(&path).unwrap();
            // The macro above must build the network the fixture was made from.
            let set: Vec<String> = fixture.overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            assert_eq!((fixture.net.as_str(), set.join(",")), ($net, $set.to_string()));
            let _rng = parity::RNG.lock().unwrap_or_else(|e| e.into_inner());
            let mut vs = nn::VarStore::new(Device::Cpu);
            let net = $ty::new(&vs.root());
            let report = parity::check(&fixture, &mut vs, &|x, train| net.try_forward(x, train)).unwrap();
            assert!(
                report.eval <= TOLERANCE && report.train <= TOLERANCE && report.step <= TOLERANCE,
                "{report:?}"
            );
        }
    };
}

parity!(lenet, PLeNet, "lenet.safetensors", "lenet.net", "");
parity!(lenet_bn, PLeNetBn, "lenet_bn.safetensors", "lenet-bn.net", "");
parity!(alexnet, PAlexNet, "alexnet.safetensors", "alexnet.net", "size=96,ratio=8,hidden=64");
parity!(vgg, PVgg, "vgg.safetensors", "vgg11.net", "size=32,ratio=16,hidden=64");
parity!(nin, PNin, "nin.safetensors", "nin.net", "size=96,ratio=8");
parity!(googlenet, PGoogLeNet, "googlenet.safetensors", "googlenet.net", "ratio=8");
parity!(resnet18, PResNet18, "resnet18.safetensors", "resnet18.net", "size=32,ratio=8");
