//! Without `#![deny(warnings)]`, a model with warnings still compiles: warnings are for
//! `nnc check` to show, and never change the generated module.

nnc::model! {
    network se {
        input [N, 16, 8, 8]
        x = conv2d(16, 3, padding=1) -> relu
        se = adaptive_avgpool2d(1) -> conv2d(4, 1) -> relu -> conv2d(16, 1) -> sigmoid
        x -> conv2d(8, 1)
    }
}

#[test]
fn a_model_with_warnings_compiles_and_runs() {
    let vs = nnc::tch::nn::VarStore::new(nnc::tch::Device::Cpu);
    let net = Se::new(&vs.root());
    // The dead branch's parameters are still created, as nnc counts them.
    assert_eq!(Se::PARAMETERS, 2_604);
    let x = nnc::tch::Tensor::zeros([2, 16, 8, 8], (nnc::tch::Kind::Float, nnc::tch::Device::Cpu));
    assert_eq!(net.try_forward(&x, false).unwrap().size(), [2, 8, 8, 8]);
}
