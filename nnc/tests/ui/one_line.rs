// nnc's position of an error on the line of the macro's first tokens is rustc's.
nnc::model! { network n { input [N, 4] linearr(2) } }

fn main() {
    // Every item of the model type exists on the stand-in: no error but the model's.
    let vs = nnc::tch::nn::VarStore::new(nnc::tch::Device::Cpu);
    let net = N::new(&vs.root());
    println!("{} {} {} {}", N::LAYERS.len(), N::MACS, N::summary(), net);
    let _ = net.for_inference();
    let _ = net.try_forward_outputs(&nnc::tch::Tensor::zeros([1, 4], nnc::tch::kind::FLOAT_CPU), false);
}
