// With `#![deny(warnings)]`, a model's warnings are compile errors: here a squeeze-excitation
// branch that is computed and never used.
nnc::model! {
    #![deny(warnings)]
    network se {
        input [N, 16, 8, 8]
        x = conv2d(16, 3, padding=1) -> relu
        se = adaptive_avgpool2d(1) -> conv2d(4, 1) -> relu -> conv2d(16, 1) -> sigmoid
        x -> conv2d(8, 1)
    }
}

fn main() {
    let vs = nnc::tch::nn::VarStore::new(nnc::tch::Device::Cpu);
    let _net = Se::new(&vs.root());
}
