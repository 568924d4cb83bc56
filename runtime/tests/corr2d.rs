//! The seed's from-scratch cross-correlation (d2l 7.2–7.4) as a test oracle: checked against
//! the numbers of DESIGN.md, then against the runtime's conv2d on random data.

use nnc_compiler::ir::{Conv2d, Op};
use nnc_runtime::ops::{self, Params};
use tch::{Device, Kind, Tensor};

/// d2l's `corr2d`: `Y[i, j] = (X[i:i+h, j:j+w] * K).sum()`, one element at a time.
fn corr2d(x: &Tensor, k: &Tensor) -> Tensor {
    let (xh, xw) = (x.size()[0], x.size()[1]);
    let (h, w) = (k.size()[0], k.size()[1]);
    let y = Tensor::zeros([xh - h + 1, xw - w + 1], (Kind::Float, Device::Cpu));
    for i in 0..xh - h + 1 {
        for j in 0..xw - w + 1 {
            let window = x.narrow(0, i, h).narrow(1, j, w);
            let _ = y.get(i).get(j).fill_((window * k).sum(Kind::Float).double_value(&[]));
        }
    }
    y
}

/// Several input channels: the sum of each channel's cross-correlation.
fn corr2d_multi_in(x: &Tensor, k: &Tensor) -> Tensor {
    (0..x.size()[0]).map(|c| corr2d(&x.get(c), &k.get(c))).reduce(|a, b| a + b).unwrap()
}

/// Several output channels: one multi-input cross-correlation per output channel, stacked.
fn corr2d_multi_in_out(x: &Tensor, k: &Tensor) -> Tensor {
    let outs: Vec<Tensor> = (0..k.size()[0]).map(|o| corr2d_multi_in(x, &k.get(o))).collect();
    Tensor::stack(&outs, 0)
}

/// A 1×1 convolution as a matrix product: `[c_o, c_i] × [c_i, h·w]`.
fn corr2d_multi_in_out_1x1(x: &Tensor, k: &Tensor) -> Tensor {
    let (c_i, h, w) = (x.size()[0], x.size()[1], x.size()[2]);
    let c_o = k.size()[0];
    k.reshape([c_o, c_i]).matmul(&x.reshape([c_i, h * w])).reshape([c_o, h, w])
}

fn t(rows: &[&[f32]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).reshape([rows.len() as i64, rows[0].len() as i64])
}

fn conv(x: &Tensor, k: &Tensor) -> Tensor {
    let attrs = Conv2d {
        in_channels: k.size()[1] as u64,
        out_channels: k.size()[0] as u64,
        kernel: [k.size()[2] as u64, k.size()[3] as u64],
        stride: [1, 1],
        padding: [0, 0],
        same: false,
        dilation: [1, 1],
        groups: 1,
        bias: false,
    };
    let weights = Params::new(vec![("weight", k.shallow_clone())]);
    ops::apply("conv", &Op::Conv2d(attrs), &weights, &[&x.unsqueeze(0)], false)
        .expect("a valid convolution")
        .squeeze_dim(0)
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && (a - b).abs().max().double_value(&[]) < 1e-5
}

#[test]
fn corr2d_matches_the_book() {
    let x = t(&[&[0., 1., 2.], &[3., 4., 5.], &[6., 7., 8.]]);
    let k = t(&[&[0., 1.], &[2., 3.]]);
    assert!(corr2d(&x, &k).equal(&t(&[&[19., 25.], &[37., 43.]])));
}

#[test]
fn multi_input_channels_match_the_book() {
    let x = Tensor::stack(
        &[
            t(&[&[0., 1., 2.], &[3., 4., 5.], &[6., 7., 8.]]),
            t(&[&[1., 2., 3.], &[4., 5., 6.], &[7., 8., 9.]]),
        ],
        0,
    );
    let k = Tensor::stack(&[t(&[&[0., 1.], &[2., 3.]]), t(&[&[1., 2.], &[3., 4.]])], 0);
    let expected = t(&[&[56., 72.], &[104., 120.]]);
    assert!(corr2d_multi_in(&x, &k).equal(&expected));
    // The runtime's conv2d computes the same.
    assert!(close(&conv(&x, &k.unsqueeze(0)).squeeze_dim(0), &expected));
    // Three output channels: K, K + 1, K + 2 (d2l 7.4).
    let k3 = Tensor::stack(&[k.shallow_clone(), &k + 1, &k + 2], 0);
    let y = corr2d_multi_in_out(&x, &k3);
    assert_eq!(y.size(), [3, 2, 2]);
    assert!(y.get(0).equal(&expected));
    assert!(close(&conv(&x, &k3), &y));
}

#[test]
fn conv2d_equals_the_oracle_on_random_data() {
    tch::manual_seed(7);
    for (c_i, c_o, h, w, kh, kw) in [(1, 1, 6, 8, 1, 2), (3, 2, 7, 5, 3, 3), (4, 5, 9, 9, 2, 4)] {
        let x = Tensor::randn([c_i, h, w], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([c_o, c_i, kh, kw], (Kind::Float, Device::Cpu));
        assert!(close(&conv(&x, &k), &corr2d_multi_in_out(&x, &k)), "{c_i}→{c_o}, {kh}×{kw}");
    }
}

#[test]
fn one_by_one_convolution_is_a_matrix_product() {
    tch::manual_seed(3);
    let x = Tensor::randn([3, 3, 3], (Kind::Float, Device::Cpu));
    let k = Tensor::randn([2, 3, 1, 1], (Kind::Float, Device::Cpu));
    let y1 = corr2d_multi_in_out_1x1(&x, &k);
    assert!(close(&y1, &corr2d_multi_in_out(&x, &k)));
    assert!(close(&y1, &conv(&x, &k)));
}
