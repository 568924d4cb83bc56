// A residual block that halves the size and doubles the channels without projecting its
// shortcut: the addition's shapes differ.
nnc::model! {
    block residual(c, stride = 1) {
        y = conv2d(c, 3, padding=1, stride=stride) -> batchnorm -> relu
        y + in -> relu
    }

    network net {
        input [N, 64, 56, 56]
        residual(128, stride=2)
    }
}

fn main() {
    // The stand-in type keeps this code free of further errors.
    let vs = nnc::tch::nn::VarStore::new(nnc::tch::Device::Cpu);
    let _net = Net::new(&vs.root());
}
