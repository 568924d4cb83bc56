//! The seed's edge detector (d2l 7.2): a 1×2 convolution without bias learns the kernel
//! [1, -1] from an image X and its edges Y = corr2d(X, [[1, -1]]), by gradient descent on the
//! squared error with learning rate 0.03, printing the loss every 2 steps.
//!
//! `cargo run -p nnc --example edge_detector [SEED]`

use nnc::tch::{nn, nn::ModuleT, Device, Kind, Tensor};

// One output channel, a 1×2 kernel, no bias: the layer d2l trains.
nnc::model! {
    network edge {
        input [N, 1, 6, 8]
        conv2d(1, (1, 2), bias=false)
    }
}

/// d2l's picture: ones with a black band in columns 2..6, and its vertical edges.
fn data() -> (Tensor, Tensor) {
    let x = Tensor::ones([6, 8], (Kind::Float, Device::Cpu));
    let _ = x.narrow(1, 2, 4).fill_(0.0);
    let y = x.narrow(1, 0, 7) - x.narrow(1, 1, 7);
    (x.reshape([1, 1, 6, 8]), y.reshape([1, 1, 6, 7]))
}

/// Trains from the initial weights of `seed`; returns the final loss and the learned kernel.
pub fn train(seed: i64, steps: usize, lr: f64, verbose: bool) -> (f64, Vec<f64>) {
    nnc::tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Edge::new(&vs.root());
    let (x, y) = data();
    // The network's one layer is named after its op: its weight is `conv2d.weight`.
    let mut weight = vs.variables()["conv2d.weight"].shallow_clone();
    let mut loss_value = f64::NAN;
    for step in 1..=steps {
        let loss = (net.forward_t(&x, true) - &y).pow_tensor_scalar(2).sum(Kind::Float);
        vs.trainable_variables().iter().for_each(|t| {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        });
        loss.backward();
        nnc::tch::no_grad(|| {
            let _ = weight.g_sub_(&(weight.grad() * lr));
        });
        loss_value = loss.double_value(&[]);
        if verbose && step % 2 == 0 {
            println!("batch {step}, loss {loss_value:.3}");
        }
    }
    let kernel = Vec::<f64>::try_from(weight.reshape([2]).to_kind(Kind::Double)).unwrap_or_default();
    (loss_value, kernel)
}

fn main() {
    let seed = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (_, kernel) = train(seed, 20, 0.03, true);
    println!("learned kernel: [{:.4}, {:.4}]", kernel[0], kernel[1]);
}
