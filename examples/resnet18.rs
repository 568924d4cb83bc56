//! ResNet-18 from its `.net` file as a typed module: its layers as the checker inferred them,
//! then a forward pass at d2l's training size, and the same through the inference plan.
//!
//! `cargo run --release -p nnc --example resnet18`

use nnc::tch::{nn, nn::ModuleT, Device, Kind, Tensor};

nnc::model!(ResNet18 = "../models/resnet18.net", size = 96);

fn main() {
    println!("{}: {} parameters, input {:?}", ResNet18::NAME, ResNet18::PARAMETERS, ResNet18::INPUT_SHAPE);
    for layer in ResNet18::LAYERS.iter().filter(|l| !l.name.contains('.') || l.name.ends_with(".0")) {
        println!("  {:<10} {:<45} {:?} {:>9} parameters", layer.name, layer.op, layer.shape, layer.params);
    }
    let vs = nn::VarStore::new(Device::cuda_if_available());
    let net = ResNet18::new(&vs.root());
    let x = Tensor::randn([4, 1, 96, 96], (Kind::Float, vs.device()));
    let y = net.forward_t(&x, false);
    println!("output {:?}", y.size());
    // Compiled for inference over the same tensors: batch norms folded, the layout chosen for
    // the network, activations in place.
    match net.for_inference() {
        Ok(plan) => {
            let planned = nnc::tch::no_grad(|| plan.try_forward(&x));
            match planned {
                Ok(z) => println!(
                    "inference plan ({}): off by {:.1e}",
                    plan.describe(),
                    (&z - &y).abs().max().double_value(&[])
                ),
                Err(e) => println!("the plan failed: {e}"),
            }
        }
        Err(e) => println!("no plan: {e}"),
    }
    match net.try_forward(&Tensor::zeros([4, 1, 28, 28], (Kind::Float, vs.device())), false) {
        Ok(_) => println!("unexpected: a 28×28 input passed"),
        Err(e) => println!("a 28×28 input is refused: {e}"),
    }
}
