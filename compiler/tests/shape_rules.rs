//! Unit tests of each layer's shape rule, parameter count and multiply-add count, with every
//! expected number worked out by hand from PyTorch's documented formulas.
//!
//! Sliding windows (conv2d, maxpool2d, avgpool2d), per spatial axis:
//! `out = floor((in + 2·pad − dil·(k − 1) − 1) / stride) + 1`; with `ceil_mode` the division
//! rounds up, and then if `(out − 1)·stride ≥ in + pad` the last window (which would start in
//! the right padding) is dropped: `out −= 1`.
//! Multiply-adds are counted as torchinfo does: one per weight use, plus one per bias add, so
//! conv2d: `out_c·out_h·out_w·(in_c/groups·kh·kw + bias)` and
//! linear: `positions·(in·out + bias·out)`.

use nnc_compiler::{compile, Code, Graph, Options, Root};

/// The source of a one-network file: `input` then `body`.
fn source(input: &str, body: &str) -> String {
    format!("network t {{\n    input {input}\n    {body}\n}}\n")
}

/// Compiles a tiny network that must check without any diagnostic, and returns its graph.
fn graph(input: &str, body: &str) -> Graph {
    let text = source(input, body);
    let out = compile(Root::Text { name: "t.net", text: &text, dir: None }, &Options::default());
    assert!(out.diagnostics.is_empty(), "unexpected diagnostics for\n{text}{:#?}", out.diagnostics);
    assert_eq!(out.graphs.len(), 1, "no graph for\n{text}");
    out.graphs.into_iter().next().unwrap()
}

/// The output shape, total parameters and total multiply-adds of a tiny network.
fn check(input: &str, body: &str) -> (String, u64, u64) {
    let g = graph(input, body);
    (g.node(g.output()).shape.to_string(), g.total_params(), g.total_macs())
}

/// The output shape alone.
fn shape(input: &str, body: &str) -> String {
    check(input, body).0
}

/// The codes of the diagnostics of a tiny network that must fail, which then has no graph.
fn errors(input: &str, body: &str) -> Vec<Code> {
    let text = source(input, body);
    let out = compile(Root::Text { name: "t.net", text: &text, dir: None }, &Options::default());
    assert!(out.graphs.is_empty(), "a graph was built for\n{text}");
    out.diagnostics.iter().map(|d| d.code).collect()
}

// ---------------------------------------------------------------------------------------------
// conv2d
// ---------------------------------------------------------------------------------------------

#[test]
fn conv2d_int_kernel_stride_padding() {
    // out = floor((32 + 2·1 − 1·(5 − 1) − 1) / 2) + 1 = floor(29 / 2) + 1 = 15 (both axes)
    // params = 16·3·5·5 + 16 = 1216
    // macs = 16·15·15·(3·5·5 + 1) = 3600·76 = 273600
    assert_eq!(
        check("[N, 3, 32, 32]", "conv2d(16, 5, stride=2, padding=1)"),
        ("[N, 16, 15, 15]".into(), 1216, 273600)
    );
}

#[test]
fn conv2d_same_padding_keeps_size() {
    // out = floor((8 + 2·1 − 1·(3 − 1) − 1) / 1) + 1 = 7 + 1 = 8
    // params = 4·1·3·3 + 4 = 40
    // macs = 4·8·8·(1·3·3 + 1) = 256·10 = 2560
    assert_eq!(check("[N, 1, 8, 8]", "conv2d(4, 3, padding=1)"), ("[N, 4, 8, 8]".into(), 40, 2560));
}

#[test]
fn conv2d_pair_kernel_stride_padding() {
    // d2l 7.3: kernel (3, 5), padding (0, 1), stride (3, 4) on 8×8.
    // h = floor((8 + 2·0 − (3 − 1) − 1) / 3) + 1 = floor(5 / 3) + 1 = 2
    // w = floor((8 + 2·1 − (5 − 1) − 1) / 4) + 1 = floor(5 / 4) + 1 = 2
    // params = 1·1·3·5 + 1 = 16
    // macs = 1·2·2·(1·3·5 + 1) = 64
    assert_eq!(
        check("[N, 1, 8, 8]", "conv2d(1, (3, 5), padding=(0, 1), stride=(3, 4))"),
        ("[N, 1, 2, 2]".into(), 16, 64)
    );
}

#[test]
fn conv2d_pair_arguments_on_a_non_square_input() {
    // h = floor((10 + 2·1 − (3 − 1) − 1) / 1) + 1 = 9 + 1 = 10
    // w = floor((12 + 2·0 − (1 − 1) − 1) / 2) + 1 = floor(11 / 2) + 1 = 6
    // params = 4·2·3·1 + 4 = 28
    // macs = 4·10·6·(2·3·1 + 1) = 240·7 = 1680
    assert_eq!(
        check("[N, 2, 10, 12]", "conv2d(4, (3, 1), stride=(1, 2), padding=(1, 0))"),
        ("[N, 4, 10, 6]".into(), 28, 1680)
    );
}

#[test]
fn conv2d_dilation() {
    // out = floor((10 + 2·0 − 2·(3 − 1) − 1) / 1) + 1 = 5 + 1 = 6
    // params = 2·1·3·3 + 2 = 20 (dilation adds no weights)
    // macs = 2·6·6·(1·3·3 + 1) = 72·10 = 720
    assert_eq!(check("[N, 1, 10, 10]", "conv2d(2, 3, dilation=2)"), ("[N, 2, 6, 6]".into(), 20, 720));
}

#[test]
fn conv2d_pair_dilation() {
    // h = floor((10 + 2·0 − 1·(3 − 1) − 1) / 1) + 1 = 7 + 1 = 8
    // w = floor((12 + 2·0 − 3·(3 − 1) − 1) / 1) + 1 = 5 + 1 = 6
    // params = 2·1·3·3 + 2 = 20
    // macs = 2·8·6·(1·3·3 + 1) = 96·10 = 960
    assert_eq!(check("[N, 1, 10, 12]", "conv2d(2, 3, dilation=(1, 3))"), ("[N, 2, 8, 6]".into(), 20, 960));
}

#[test]
fn conv2d_dilation_with_padding_and_stride() {
    // out = floor((9 + 2·2 − 2·(3 − 1) − 1) / 2) + 1 = floor(8 / 2) + 1 = 5
    // params = 3·3·3·3 + 3 = 84
    // macs = 3·5·5·(3·3·3 + 1) = 75·28 = 2100
    assert_eq!(
        check("[N, 3, 9, 9]", "conv2d(3, 3, stride=2, padding=2, dilation=2)"),
        ("[N, 3, 5, 5]".into(), 84, 2100)
    );
}

#[test]
fn conv2d_groups() {
    // out = floor((6 + 2·1 − (3 − 1) − 1) / 1) + 1 = 6
    // params = 16·(8/4)·3·3 + 16 = 288 + 16 = 304
    // macs = 16·6·6·((8/4)·3·3 + 1) = 576·19 = 10944
    assert_eq!(
        check("[N, 8, 6, 6]", "conv2d(16, 3, padding=1, groups=4)"),
        ("[N, 16, 6, 6]".into(), 304, 10944)
    );
}

#[test]
fn conv2d_depthwise() {
    // groups = channels = 32: one 3×3 filter per channel.
    // out = floor((14 + 2·1 − (3 − 1) − 1) / 2) + 1 = floor(13 / 2) + 1 = 7
    // params = 32·(32/32)·3·3 + 32 = 288 + 32 = 320
    // macs = 32·7·7·(1·3·3 + 1) = 1568·10 = 15680
    assert_eq!(
        check("[N, 32, 14, 14]", "conv2d(32, 3, stride=2, padding=1, groups=32)"),
        ("[N, 32, 7, 7]".into(), 320, 15680)
    );
}

#[test]
fn conv2d_depthwise_multiplier() {
    // groups = in channels = 4, two filters per channel (out 8).
    // out = floor((5 + 2·0 − (3 − 1) − 1) / 1) + 1 = 3
    // params = 8·(4/4)·3·3 + 8 = 80
    // macs = 8·3·3·(1·3·3 + 1) = 72·10 = 720
    assert_eq!(check("[N, 4, 5, 5]", "conv2d(8, 3, groups=4)"), ("[N, 8, 3, 3]".into(), 80, 720));
}

#[test]
fn conv2d_without_bias() {
    // out = floor((32 + 2·0 − (3 − 1) − 1) / 1) + 1 = 30
    // params = 8·3·3·3 = 216 (no bias)
    // macs = 8·30·30·(3·3·3 + 0) = 7200·27 = 194400
    assert_eq!(check("[N, 3, 32, 32]", "conv2d(8, 3, bias=false)"), ("[N, 8, 30, 30]".into(), 216, 194400));
}

#[test]
fn conv2d_one_by_one() {
    // out = floor((7 + 2·0 − (1 − 1) − 1) / 1) + 1 = 7
    // params = 32·64·1·1 + 32 = 2080
    // macs = 32·7·7·(64 + 1) = 1568·65 = 101920
    assert_eq!(check("[N, 64, 7, 7]", "conv2d(32, 1)"), ("[N, 32, 7, 7]".into(), 2080, 101920));
}

#[test]
fn conv2d_kernel_equal_to_padded_input_gives_one() {
    // out = floor((3 + 2·1 − (5 − 1) − 1) / 1) + 1 = 0 + 1 = 1
    // params = 2·1·5·5 + 2 = 52; macs = 2·1·1·(25 + 1) = 52
    assert_eq!(check("[N, 1, 3, 3]", "conv2d(2, 5, padding=1)"), ("[N, 2, 1, 1]".into(), 52, 52));
}

// ---------------------------------------------------------------------------------------------
// maxpool2d
// ---------------------------------------------------------------------------------------------

#[test]
fn maxpool_stride_defaults_to_kernel() {
    // stride = kernel = 2: out = floor((28 + 0 − (2 − 1) − 1) / 2) + 1 = 13 + 1 = 14
    assert_eq!(check("[N, 4, 28, 28]", "maxpool2d(2)"), ("[N, 4, 14, 14]".into(), 0, 0));
    // stride = kernel = 3: out = floor((28 − (3 − 1) − 1) / 3) + 1 = floor(25 / 3) + 1 = 9
    // (with stride 1 it would be 26)
    assert_eq!(shape("[N, 4, 28, 28]", "maxpool2d(3)"), "[N, 4, 9, 9]");
    // explicit stride 1: out = floor((28 − 2 − 1) / 1) + 1 = 26
    assert_eq!(shape("[N, 4, 28, 28]", "maxpool2d(3, stride=1)"), "[N, 4, 26, 26]");
}

#[test]
fn maxpool_pair_kernel_and_stride() {
    // h = floor((8 − (2 − 1) − 1) / 2) + 1 = 3 + 1 = 4
    // w = floor((9 − (3 − 1) − 1) / 1) + 1 = 6 + 1 = 7
    assert_eq!(shape("[N, 1, 8, 9]", "maxpool2d((2, 3), stride=(2, 1))"), "[N, 1, 4, 7]");
    // default stride = (2, 3): h = floor(6 / 2) + 1 = 4, w = floor(6 / 3) + 1 = 3
    assert_eq!(shape("[N, 1, 8, 9]", "maxpool2d((2, 3))"), "[N, 1, 4, 3]");
}

#[test]
fn maxpool_with_padding() {
    // ResNet's stem pool: out = floor((112 + 2·1 − (3 − 1) − 1) / 2) + 1 = floor(111 / 2) + 1 = 56
    assert_eq!(
        check("[N, 64, 112, 112]", "maxpool2d(3, stride=2, padding=1)"),
        ("[N, 64, 56, 56]".into(), 0, 0)
    );
    // padding equal to half the kernel is allowed: k = 2, p = 1, stride = 2:
    // out = floor((7 + 2·1 − (2 − 1) − 1) / 2) + 1 = floor(7 / 2) + 1 = 4
    assert_eq!(shape("[N, 1, 7, 7]", "maxpool2d(2, padding=1)"), "[N, 1, 4, 4]");
}

#[test]
fn maxpool_with_dilation() {
    // out = floor((10 + 0 − 2·(3 − 1) − 1) / 1) + 1 = 5 + 1 = 6
    assert_eq!(shape("[N, 1, 10, 10]", "maxpool2d(3, stride=1, dilation=2)"), "[N, 1, 6, 6]");
    // stride defaults to the kernel, not the dilated kernel:
    // out = floor((10 − 2·(3 − 1) − 1) / 3) + 1 = floor(5 / 3) + 1 = 2
    assert_eq!(shape("[N, 1, 10, 10]", "maxpool2d(3, dilation=2)"), "[N, 1, 2, 2]");
    // with padding 1 (≤ 3 / 2): out = floor((10 + 2 − 4 − 1) / 1) + 1 = 8
    assert_eq!(shape("[N, 1, 10, 10]", "maxpool2d(3, stride=1, padding=1, dilation=2)"), "[N, 1, 8, 8]");
}

#[test]
fn maxpool_floor_mode_for_comparison() {
    // h = floor((6 − (3 − 1) − 1) / 2) + 1 = floor(3 / 2) + 1 = 2
    // w = floor((7 − (3 − 1) − 1) / 2) + 1 = floor(4 / 2) + 1 = 3
    assert_eq!(shape("[N, 1, 6, 7]", "maxpool2d(3, stride=2)"), "[N, 1, 2, 3]");
}

#[test]
fn maxpool_ceil_mode() {
    // h = ceil((6 − 2 − 1) / 2) + 1 = ceil(3 / 2) + 1 = 3; (3 − 1)·2 = 4 < 6 + 0: kept → 3
    // w = ceil((7 − 2 − 1) / 2) + 1 = ceil(4 / 2) + 1 = 3; (3 − 1)·2 = 4 < 7 + 0: kept → 3
    assert_eq!(
        check("[N, 1, 6, 7]", "maxpool2d(3, stride=2, ceil_mode=true)"),
        ("[N, 1, 3, 3]".into(), 0, 0)
    );
}

#[test]
fn maxpool_ceil_mode_drops_a_window_that_starts_in_the_padding() {
    // h: in 4, k 2, s 2, p 1: ceil((4 + 2 − 1 − 1) / 2) + 1 = ceil(4 / 2) + 1 = 3;
    //    (3 − 1)·2 = 4 < 4 + 1 = 5: kept → 3
    // w: in 5, k 2, s 2, p 1: ceil((5 + 2 − 1 − 1) / 2) + 1 = ceil(5 / 2) + 1 = 4;
    //    (4 − 1)·2 = 6 ≥ 5 + 1 = 6: dropped → 3
    assert_eq!(shape("[N, 1, 4, 5]", "maxpool2d(2, stride=2, padding=1, ceil_mode=true)"), "[N, 1, 3, 3]");
    // the same without ceil_mode: h = floor(4 / 2) + 1 = 3, w = floor(5 / 2) + 1 = 3
    assert_eq!(shape("[N, 1, 4, 5]", "maxpool2d(2, stride=2, padding=1)"), "[N, 1, 3, 3]");
}

#[test]
fn maxpool_ceil_mode_with_pair_arguments() {
    // h: in 9, k 2, s 2: ceil((9 − 1 − 1) / 2) + 1 = ceil(7 / 2) + 1 = 5; (5 − 1)·2 = 8 < 9: kept → 5
    // w: in 9, k 3, s 3: ceil((9 − 2 − 1) / 3) + 1 = ceil(6 / 3) + 1 = 3; (3 − 1)·3 = 6 < 9: kept → 3
    assert_eq!(shape("[N, 2, 9, 9]", "maxpool2d((2, 3), ceil_mode=true)"), "[N, 2, 5, 3]");
}

// ---------------------------------------------------------------------------------------------
// avgpool2d and adaptive_avgpool2d
// ---------------------------------------------------------------------------------------------

#[test]
fn avgpool_floor_mode() {
    // LeNet's pool: out = floor((28 − (2 − 1) − 1) / 2) + 1 = 14
    assert_eq!(check("[N, 6, 28, 28]", "avgpool2d(2, stride=2)"), ("[N, 6, 14, 14]".into(), 0, 0));
    // h = floor((7 − 1 − 1) / 2) + 1 = 3, w = floor((5 − 1 − 1) / 2) + 1 = 2 (stride = kernel)
    assert_eq!(shape("[N, 3, 7, 5]", "avgpool2d(2)"), "[N, 3, 3, 2]");
}

/// The report's text says when an average leaves the padding out of its count, where that
/// changes the result (a padded window), as `nn.AvgPool2d(count_include_pad=False)` does.
#[test]
fn avgpool_text_says_when_padding_is_not_counted() {
    let text = |call: &str| {
        let g = graph("[N, 1, 6, 6]", call);
        g.node(g.output()).op.to_string()
    };
    assert_eq!(
        text("avgpool2d(3, padding=1, count_include_pad=false)"),
        "avgpool2d 3×3, padding 1, padding not counted"
    );
    assert_eq!(text("avgpool2d(3, padding=1)"), "avgpool2d 3×3, padding 1");
    assert_eq!(text("avgpool2d(3, count_include_pad=false)"), "avgpool2d 3×3");
    assert_eq!(text("maxpool2d(3, padding=1)"), "maxpool2d 3×3, padding 1");
}

#[test]
fn avgpool_ceil_mode() {
    // h = ceil((7 − 1 − 1) / 2) + 1 = ceil(5 / 2) + 1 = 4; (4 − 1)·2 = 6 < 7 + 0: kept → 4
    // w = ceil((5 − 1 − 1) / 2) + 1 = ceil(3 / 2) + 1 = 3; (3 − 1)·2 = 4 < 5 + 0: kept → 3
    assert_eq!(check("[N, 3, 7, 5]", "avgpool2d(2, ceil_mode=true)"), ("[N, 3, 4, 3]".into(), 0, 0));
}

#[test]
fn avgpool_ceil_mode_drops_a_window_that_starts_in_the_padding() {
    // h: in 3, k 2, s 2, p 1: ceil((3 + 2 − 1 − 1) / 2) + 1 = ceil(3 / 2) + 1 = 3;
    //    (3 − 1)·2 = 4 ≥ 3 + 1 = 4: dropped → 2
    // w: in 5, k 2, s 2, p 1: ceil((5 + 2 − 1 − 1) / 2) + 1 = ceil(5 / 2) + 1 = 4;
    //    (4 − 1)·2 = 6 ≥ 5 + 1 = 6: dropped → 3
    assert_eq!(shape("[N, 1, 3, 5]", "avgpool2d(2, stride=2, padding=1, ceil_mode=true)"), "[N, 1, 2, 3]");
    // h: in 5, k 3, s 2, p 1: ceil((5 + 2 − 2 − 1) / 2) + 1 = ceil(4 / 2) + 1 = 3;
    //    (3 − 1)·2 = 4 < 5 + 1: kept → 3
    // w: in 6, k 3, s 2, p 1: ceil((6 + 2 − 2 − 1) / 2) + 1 = ceil(5 / 2) + 1 = 4;
    //    (4 − 1)·2 = 6 < 6 + 1: kept → 4
    assert_eq!(shape("[N, 1, 5, 6]", "avgpool2d(3, stride=2, padding=1, ceil_mode=true)"), "[N, 1, 3, 4]");
}

#[test]
fn adaptive_avgpool_int_and_pair() {
    // The output size is the argument, whatever the input size.
    assert_eq!(check("[N, 512, 7, 7]", "adaptive_avgpool2d(1)"), ("[N, 512, 1, 1]".into(), 0, 0));
    assert_eq!(shape("[N, 8, 13, 9]", "adaptive_avgpool2d((3, 2))"), "[N, 8, 3, 2]");
    // PyTorch also allows an output larger than the input.
    assert_eq!(shape("[N, 8, 2, 2]", "adaptive_avgpool2d(4)"), "[N, 8, 4, 4]");
}

// ---------------------------------------------------------------------------------------------
// batchnorm
// ---------------------------------------------------------------------------------------------

#[test]
fn batchnorm_rank_2_is_1d() {
    // BatchNorm1d(10) on [N, 10]: weight + bias = 2·10 = 20 (running stats are buffers); as
    // many multiply-adds, as torchinfo counts a normalisation
    assert_eq!(check("[N, 10]", "batchnorm"), ("[N, 10]".into(), 20, 20));
}

#[test]
fn batchnorm_rank_3_is_1d() {
    // BatchNorm1d(4) on [N, 4, 16]: features = C = 4, params = 2·4 = 8
    assert_eq!(check("[N, 4, 16]", "batchnorm"), ("[N, 4, 16]".into(), 8, 8));
}

#[test]
fn batchnorm_rank_4_is_2d() {
    // BatchNorm2d(6) on [N, 6, 5, 5]: params = 2·6 = 12
    assert_eq!(check("[N, 6, 5, 5]", "batchnorm"), ("[N, 6, 5, 5]".into(), 12, 12));
    assert_eq!(check("[N, 6, 5, 5]", "batchnorm(eps=1e-3, momentum=0.01)"), ("[N, 6, 5, 5]".into(), 12, 12));
}

#[test]
fn batchnorm_rank_5_is_3d() {
    // BatchNorm3d(2) on [N, 2, 3, 4, 5]: params = 2·2 = 4
    assert_eq!(check("[N, 2, 3, 4, 5]", "batchnorm"), ("[N, 2, 3, 4, 5]".into(), 4, 4));
}

#[test]
fn batchnorm_rank_6_is_refused() {
    // PyTorch has no BatchNorm4d: only ranks 2 to 5.
    assert_eq!(errors("[N, 2, 3, 4, 5, 6]", "batchnorm"), vec![Code::ShapeMismatch]);
}

// ---------------------------------------------------------------------------------------------
// Shape-keeping layers
// ---------------------------------------------------------------------------------------------

#[test]
fn activations_identity_and_dropout_keep_the_shape() {
    for layer in ["relu", "sigmoid", "tanh", "gelu", "identity", "dropout", "dropout(0.3)", "dropout(p=1.0)"]
    {
        assert_eq!(check("[N, 3, 5, 7]", layer), ("[N, 3, 5, 7]".into(), 0, 0), "{layer}");
        assert_eq!(shape("[N, 10]", layer), "[N, 10]", "{layer}");
    }
    assert_eq!(
        shape("[N, 3, 5, 7]", "relu -> sigmoid -> tanh -> gelu -> identity -> dropout(0.5)"),
        "[N, 3, 5, 7]"
    );
}

#[test]
fn softmax_keeps_the_shape_along_any_dim() {
    // Default dim = −1.
    assert_eq!(check("[N, 10]", "softmax"), ("[N, 10]".into(), 0, 0));
    for dim in ["1", "2", "3", "-1", "-2", "-3"] {
        assert_eq!(shape("[N, 3, 4, 5]", &format!("softmax(dim={dim})")), "[N, 3, 4, 5]", "dim={dim}");
    }
}

#[test]
fn softmax_dim_out_of_range() {
    // [N, 3, 4] has rank 3: dims 0..2, or −3..−1; 3 and −4 do not exist.
    assert_eq!(errors("[N, 3, 4]", "softmax(dim=3)"), vec![Code::Value]);
    assert_eq!(errors("[N, 3, 4]", "softmax(dim=-4)"), vec![Code::Value]);
    // nnc's own rule: the batch (dim 0, or −3 here) is never reduced over.
    assert_eq!(errors("[N, 3, 4]", "softmax(dim=0)"), vec![Code::Value]);
    assert_eq!(errors("[N, 3, 4]", "softmax(dim=-3)"), vec![Code::Value]);
}

// ---------------------------------------------------------------------------------------------
// flatten
// ---------------------------------------------------------------------------------------------

#[test]
fn flatten_default_merges_all_but_the_batch() {
    // nn.Flatten(start_dim=1, end_dim=-1): 2·3·4 = 24
    assert_eq!(check("[N, 2, 3, 4]", "flatten"), ("[N, 24]".into(), 0, 0));
    // already flat: unchanged
    assert_eq!(shape("[N, 7]", "flatten"), "[N, 7]");
}

#[test]
fn flatten_with_start_and_end() {
    // dims 2..3 merged: 3·4 = 12
    assert_eq!(shape("[N, 2, 3, 4]", "flatten(start=2)"), "[N, 2, 12]");
    // dims 1..2 merged: 2·3 = 6
    assert_eq!(shape("[N, 2, 3, 4]", "flatten(start=1, end=2)"), "[N, 6, 4]");
    // end = −2 is dim 4 − 2 = 2: same as above
    assert_eq!(shape("[N, 2, 3, 4]", "flatten(end=-2)"), "[N, 6, 4]");
    // start = −2 is dim 2, end = −1 is dim 3: 3·4 = 12
    assert_eq!(shape("[N, 2, 3, 4]", "flatten(start=-2, end=-1)"), "[N, 2, 12]");
    // a single dimension: nothing changes
    assert_eq!(shape("[N, 2, 3, 4]", "flatten(start=2, end=2)"), "[N, 2, 3, 4]");
    // rank 5: dims 2..3 merged: 3·4 = 12
    assert_eq!(shape("[N, 2, 3, 4, 5]", "flatten(start=2, end=3)"), "[N, 2, 12, 5]");
}

#[test]
fn flatten_bad_axes() {
    // end before start
    assert_eq!(errors("[N, 2, 3, 4]", "flatten(start=3, end=2)"), vec![Code::Value]);
    // dim 4 does not exist in a rank-4 shape
    assert_eq!(errors("[N, 2, 3, 4]", "flatten(start=4)"), vec![Code::Value]);
}

// ---------------------------------------------------------------------------------------------
// linear
// ---------------------------------------------------------------------------------------------

#[test]
fn linear_on_rank_2() {
    // params = 84·10 + 10 = 850; macs = 1·(84·10 + 10) = 850
    assert_eq!(check("[N, 84]", "linear(10)"), ("[N, 10]".into(), 850, 850));
}

#[test]
fn linear_without_bias() {
    // params = 84·10 = 840; macs = 1·(84·10 + 0) = 840
    assert_eq!(check("[N, 84]", "linear(10, bias=false)"), ("[N, 10]".into(), 840, 840));
}

#[test]
fn linear_on_rank_4_acts_on_the_last_dim() {
    // in = 8 (last dim), positions = 2·3 = 6
    // params = 8·5 + 5 = 45; macs = 6·(8·5 + 5) = 270
    assert_eq!(check("[N, 2, 3, 8]", "linear(5)"), ("[N, 2, 3, 5]".into(), 45, 270));
    // without bias: params = 40; macs = 6·40 = 240
    assert_eq!(check("[N, 2, 3, 8]", "linear(5, bias=false)"), ("[N, 2, 3, 5]".into(), 40, 240));
}

#[test]
fn lenet_totals() {
    // conv 6@5, pad 2: 28 → floor((28 + 4 − 4 − 1) / 1) + 1 = 28; params 6·1·25 + 6 = 156;
    //   macs 6·28·28·(25 + 1) = 122304
    // avgpool2d 2: 28 → 14
    // conv 16@5: 14 → floor((14 − 4 − 1) / 1) + 1 = 10; params 16·6·25 + 16 = 2416;
    //   macs 16·10·10·(150 + 1) = 241600
    // avgpool2d 2: 10 → 5; flatten: 16·5·5 = 400
    // linear 400→120: 48120; 120→84: 10164; 84→10: 850 (params = macs for each)
    // params = 156 + 2416 + 48120 + 10164 + 850 = 61706
    // macs = 122304 + 241600 + 48120 + 10164 + 850 = 423038
    let body = "conv2d(6, 5, padding=2) -> sigmoid -> avgpool2d(2, stride=2)
        -> conv2d(16, 5) -> sigmoid -> avgpool2d(2, stride=2)
        -> flatten -> linear(120) -> sigmoid -> linear(84) -> sigmoid -> linear(10)";
    assert_eq!(check("[N, 1, 28, 28]", body), ("[N, 10]".into(), 61706, 423038));
}

// ---------------------------------------------------------------------------------------------
// Joins: `+` and `cat`
// ---------------------------------------------------------------------------------------------

#[test]
fn add_of_equal_shapes() {
    assert_eq!(
        check("[N, 64, 8, 8]", "a = in -> relu\n    b = in -> tanh\n    a + b"),
        ("[N, 64, 8, 8]".into(), 0, 0)
    );
    // Both sides [N, 8, 8, 8]: 3×3 pad 1 keeps 8; 1×1 keeps 8.
    // params = (8·4·9 + 8) + (8·4·1 + 8) = 296 + 40 = 336
    // macs = 8·8·8·(4·9 + 1) + 8·8·8·(4·1 + 1) = 18944 + 2560 = 21504
    assert_eq!(
        check("[N, 4, 8, 8]", "a = conv2d(8, 3, padding=1)\n    b = in -> conv2d(8, 1)\n    a + b"),
        ("[N, 8, 8, 8]".into(), 336, 21504)
    );
}

#[test]
fn cat_along_channels() {
    // default dim = 1: 4 + 6 = 10 channels; both branches keep 8×8
    // params = (4·3·1 + 4) + (6·3·9 + 6) = 16 + 168 = 184
    let body = "a = conv2d(4, 1)\n    b = in -> conv2d(6, 3, padding=1)\n    cat(a, b)";
    assert_eq!(check("[N, 3, 8, 8]", body).0, "[N, 10, 8, 8]");
    assert_eq!(check("[N, 3, 8, 8]", body).1, 184);
    let body = "a = conv2d(4, 1)\n    b = in -> conv2d(6, 3, padding=1)\n    cat(a, b, in, dim=1)";
    // 4 + 6 + 3 = 13
    assert_eq!(shape("[N, 3, 8, 8]", body), "[N, 13, 8, 8]");
}

#[test]
fn cat_along_height() {
    // a = maxpool2d((2, 1)) of [N, 3, 8, 8]: h = floor((8 − 1 − 1) / 2) + 1 = 4, w = 8
    // cat(in, a, dim=2): heights 8 + 4 = 12
    assert_eq!(shape("[N, 3, 8, 8]", "a = maxpool2d((2, 1))\n    cat(in, a, dim=2)"), "[N, 3, 12, 8]");
}

#[test]
fn cat_with_negative_dim() {
    // rank 4: dim −2 is 4 − 2 = 2 (height): 8 + 4 = 12
    assert_eq!(shape("[N, 3, 8, 8]", "a = maxpool2d((2, 1))\n    cat(in, a, dim=-2)"), "[N, 3, 12, 8]");
    // rank 4: dim −3 is 1 (channels): 3 + 3 = 6
    assert_eq!(shape("[N, 3, 8, 8]", "a = in -> relu\n    cat(in, a, dim=-3)"), "[N, 6, 8, 8]");
    // rank 2: dim −1 is 1: 5 + 3 = 8; params = 5·3 + 3 = 18
    assert_eq!(check("[N, 5]", "a = linear(3)\n    cat(in, a, dim=-1)"), ("[N, 8]".into(), 18, 18));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn kernel_larger_than_padded_input() {
    // 4 + 2·1 = 6 < 7: floor((4 + 2 − 6 − 1) / 1) + 1 = 0, PyTorch refuses
    assert_eq!(errors("[N, 1, 4, 4]", "conv2d(1, 7, padding=1)"), vec![Code::SizeTooSmall]);
    // dilated kernel 3·(3 − 1) + 1 = 7 > 6
    assert_eq!(errors("[N, 1, 6, 6]", "conv2d(1, 3, dilation=3)"), vec![Code::SizeTooSmall]);
    // only the width is too small: w = 5 < 7
    assert_eq!(errors("[N, 1, 9, 5]", "conv2d(1, 7)"), vec![Code::SizeTooSmall]);
    // pooling: 4 < 5
    assert_eq!(errors("[N, 1, 4, 4]", "maxpool2d(5)"), vec![Code::SizeTooSmall]);
    assert_eq!(errors("[N, 1, 4, 4]", "avgpool2d(5)"), vec![Code::SizeTooSmall]);
    // shrinking step by step: 8 → 4 → 2 → 1, then 1 < 2
    assert_eq!(
        errors("[N, 1, 8, 8]", "maxpool2d(2) -> maxpool2d(2) -> maxpool2d(2) -> maxpool2d(2)"),
        vec![Code::SizeTooSmall]
    );
}

#[test]
fn zero_stride() {
    assert_eq!(errors("[N, 1, 28, 28]", "conv2d(6, 5, stride=0)"), vec![Code::Value]);
    assert_eq!(errors("[N, 1, 28, 28]", "conv2d(6, 5, stride=(1, 0))"), vec![Code::Value]);
    assert_eq!(errors("[N, 1, 28, 28]", "maxpool2d(2, stride=0)"), vec![Code::Value]);
    assert_eq!(errors("[N, 1, 28, 28]", "avgpool2d(2, stride=0)"), vec![Code::Value]);
}

#[test]
fn maxpool_padding_more_than_half_the_kernel() {
    // PyTorch: kernel / 2 ≥ pad, i.e. 3 / 2 = 1 < 2
    assert_eq!(errors("[N, 1, 8, 8]", "maxpool2d(3, padding=2)"), vec![Code::Value]);
    // 2 / 2 = 1 < 2
    assert_eq!(errors("[N, 1, 8, 8]", "maxpool2d(2, padding=2)"), vec![Code::Value]);
    // only the width: (3, 5) / 2 = (1, 2) ≥ (1, 2) is fine, (1, 3) is not
    assert_eq!(shape("[N, 1, 8, 8]", "maxpool2d((3, 5), stride=1, padding=(1, 2))"), "[N, 1, 8, 8]");
    assert_eq!(errors("[N, 1, 8, 8]", "maxpool2d((3, 5), stride=1, padding=(1, 3))"), vec![Code::Value]);
    assert_eq!(errors("[N, 1, 8, 8]", "avgpool2d(3, padding=2)"), vec![Code::Value]);
}

#[test]
fn maxpool_padding_limit_ignores_dilation() {
    // PyTorch's pool2d_shape_check tests `kW / 2 >= padW` with the kernel size itself, not the
    // dilated one: MaxPool2d(3, stride=1, padding=2, dilation=2) fails with "pad should be
    // smaller than or equal to half of kernel size" since 3 / 2 = 1 < 2.
    assert_eq!(errors("[N, 1, 8, 8]", "maxpool2d(3, stride=1, padding=2, dilation=2)"), vec![Code::Value]);
}

#[test]
fn groups_that_do_not_divide_the_channels() {
    // in channels: 3 % 2 ≠ 0
    assert_eq!(errors("[N, 3, 32, 32]", "conv2d(8, 3, groups=2)"), vec![Code::Value]);
    // out channels: 6 % 4 ≠ 0 (in channels 4 % 4 = 0)
    assert_eq!(errors("[N, 4, 8, 8]", "conv2d(6, 3, groups=4)"), vec![Code::Value]);
    // zero groups
    assert_eq!(errors("[N, 4, 8, 8]", "conv2d(4, 3, groups=0)"), vec![Code::Value]);
}

#[test]
fn add_of_different_channels() {
    // [N, 64, 8, 8] + [N, 32, 8, 8]
    assert_eq!(errors("[N, 32, 8, 8]", "a = conv2d(64, 1)\n    a + in"), vec![Code::AddMismatch]);
}

#[test]
fn cat_of_different_heights() {
    // a: 1×1 keeps 32; b: 3×3 without padding gives floor((32 − 2 − 1) / 1) + 1 = 30
    let body = "a = conv2d(16, 1)\n    b = in -> conv2d(16, 3)\n    cat(a, b)";
    assert_eq!(errors("[N, 3, 32, 32]", body), vec![Code::ConcatMismatch]);
    // along the height, the channels must agree: 3 vs 6
    assert_eq!(errors("[N, 3, 8, 8]", "a = conv2d(6, 1)\n    cat(in, a, dim=2)"), vec![Code::ConcatMismatch]);
}

#[test]
fn image_layers_after_flatten() {
    assert_eq!(errors("[N, 1, 28, 28]", "flatten -> conv2d(6, 5)"), vec![Code::ShapeMismatch]);
    assert_eq!(errors("[N, 1, 28, 28]", "flatten -> maxpool2d(2)"), vec![Code::ShapeMismatch]);
    assert_eq!(errors("[N, 1, 28, 28]", "flatten -> adaptive_avgpool2d(1)"), vec![Code::ShapeMismatch]);
}

// ---------------------------------------------------------------------------------------------
// groupnorm, instancenorm
// ---------------------------------------------------------------------------------------------

#[test]
fn groupnorm_counts_a_scale_and_shift_per_channel() {
    // GroupNorm(4, 8) on [N, 8, 5, 5]: weight + bias = 2·8 = 16, as many multiply-adds
    assert_eq!(check("[N, 8, 5, 5]", "groupnorm(4)"), ("[N, 8, 5, 5]".into(), 16, 16));
    // without affine: nothing trained, nothing counted; any rank from 2
    assert_eq!(check("[N, 6]", "groupnorm(3, affine=false)"), ("[N, 6]".into(), 0, 0));
    assert_eq!(check("[N, 6, 2, 3, 4]", "groupnorm(6)"), ("[N, 6, 2, 3, 4]".into(), 12, 12));
    // 6 channels in 4 groups: 6 % 4 ≠ 0
    assert_eq!(errors("[N, 6, 5, 5]", "groupnorm(4)"), vec![Code::ShapeMismatch]);
}

#[test]
fn instancenorm_is_1d_2d_or_3d_by_rank() {
    // InstanceNorm2d(3): no affine by default, so no parameters; with it, 2·3 = 6
    assert_eq!(check("[N, 3, 4, 4]", "instancenorm"), ("[N, 3, 4, 4]".into(), 0, 0));
    assert_eq!(check("[N, 3, 7]", "instancenorm(affine=true)"), ("[N, 3, 7]".into(), 6, 6));
    // running statistics are buffers: still no parameters
    assert_eq!(
        check("[N, 2, 2, 3, 4]", "instancenorm(track_running_stats=true)"),
        ("[N, 2, 2, 3, 4]".into(), 0, 0)
    );
    // [N, C] has no positions to normalise over, and neither has [N, C, 1, 1]
    assert_eq!(errors("[N, 3]", "instancenorm"), vec![Code::ShapeMismatch]);
    assert_eq!(errors("[N, 3, 1, 1]", "instancenorm"), vec![Code::ShapeMismatch]);
}

// ---------------------------------------------------------------------------------------------
// upsample, pixel_shuffle, pixel_unshuffle
// ---------------------------------------------------------------------------------------------

#[test]
fn upsample_by_scale_or_to_size() {
    // floor(7·2) = 14, floor(5·2) = 10; no parameters, no multiply-adds (torchinfo's count)
    assert_eq!(check("[N, 3, 7, 5]", "upsample(scale_factor=2)"), ("[N, 3, 14, 10]".into(), 0, 0));
    // 8·1.5 = 12, 6·1.5 = 9; 4·0.5 = 2 on each of three axes
    assert_eq!(shape("[N, 3, 8, 6]", "upsample(scale_factor=1.5, mode=\"bilinear\")"), "[N, 3, 12, 9]");
    assert_eq!(shape("[N, 1, 4, 4, 4]", "upsample(scale_factor=0.5, mode=\"trilinear\")"), "[N, 1, 2, 2, 2]");
    // one size for every axis, or one each
    assert_eq!(shape("[N, 3, 9]", "upsample(size=4, mode=\"linear\", align_corners=true)"), "[N, 3, 4]");
    assert_eq!(shape("[N, 3, 8, 8]", "upsample(size=(5, 11), mode=\"bicubic\")"), "[N, 3, 5, 11]");
}

#[test]
fn upsample_refusals() {
    // 7·1.5 = 10.5: PyTorch would floor it to 10
    assert_eq!(errors("[N, 3, 7, 8]", "upsample(scale_factor=1.5)"), vec![Code::ShapeMismatch]);
    assert_eq!(errors("[N, 3, 8, 8]", "upsample"), vec![Code::Value]);
    assert_eq!(errors("[N, 3, 8, 8]", "upsample(4, scale_factor=2)"), vec![Code::Value]);
    assert_eq!(errors("[N, 3, 8]", "upsample(scale_factor=2, mode=\"bilinear\")"), vec![Code::ShapeMismatch]);
    assert_eq!(errors("[N, 3, 8, 8]", "upsample(4, align_corners=false)"), vec![Code::Value]);
    assert_eq!(errors("[N, 3, 8, 8]", "upsample(scale_factor=0)"), vec![Code::Value]);
}

#[test]
fn pixel_shuffle_and_unshuffle_trade_channels_for_positions() {
    // [N, 3·2², 5, 6] → [N, 3, 10, 12], and back
    assert_eq!(check("[N, 12, 5, 6]", "pixel_shuffle(2)"), ("[N, 3, 10, 12]".into(), 0, 0));
    assert_eq!(shape("[N, 3, 10, 12]", "pixel_unshuffle(2)"), "[N, 12, 5, 6]");
    // the dimensions before the last three are kept
    assert_eq!(shape("[N, 2, 9, 1, 1]", "pixel_shuffle(3)"), "[N, 2, 1, 3, 3]");
    // 6 channels, r² = 4; a width of 9, r = 2
    assert_eq!(errors("[N, 6, 4, 4]", "pixel_shuffle(2)"), vec![Code::ShapeMismatch]);
    assert_eq!(errors("[N, 3, 8, 9]", "pixel_unshuffle(2)"), vec![Code::ShapeMismatch]);
}

/// Cross-attention: the query's T = 5 positions over the memory's S = 7, E = 8. The
/// projections count `E·E + E` = 72 multiply-adds per use: the query's and the output's at
/// each query (2·5·72), the key's and value's at each key (2·7·72); the scores and their
/// weighted sum 2·T·S·E = 560. Self-attention is the same with S = T.
#[test]
fn cross_attention_reads_the_memorys_positions() {
    let inputs = "x [N, 5, 8]\n    input m [N, 7, 8]\n    input pad [N, 7] bool";
    let (out, params, macs) = check(inputs, "x -> multi_head_attention(2, memory=m, key_padding_mask=pad)");
    assert_eq!((out.as_str(), params, macs), ("[N, 5, 8]", 4 * 72, 2 * 5 * 72 + 2 * 7 * 72 + 560));
    // Without biases: E·E = 64 per use. (Each network reads every input it declares: W0005.)
    let without_mask = "x [N, 5, 8]\n    input m [N, 7, 8]";
    let (_, params, macs) = check(without_mask, "x -> multi_head_attention(4, bias=false, memory=m)");
    assert_eq!((params, macs), (4 * 64, 2 * 5 * 64 + 2 * 7 * 64 + 560));
    // `false` is no tensor: self-attention, as without the argument.
    let (_, _, macs) =
        check("x [N, 5, 8]", "x -> multi_head_attention(2, memory=false, key_padding_mask=false)");
    assert_eq!(macs, 4 * 5 * 72 + 2 * 5 * 5 * 8);
    let mismatch = [Code::ShapeMismatch];
    let inputs = "x [N, 5, 8]\n    input m [N, 7, 6]\n    input pad [N, 5] bool";
    assert_eq!(errors(inputs, "x -> multi_head_attention(2, memory=m)"), mismatch, "other features");
    assert_eq!(errors(inputs, "x -> multi_head_attention(2, memory=m[:, 0])"), mismatch, "no sequence");
    let body = "x -> multi_head_attention(2, memory=m -> linear(8), key_padding_mask=pad)";
    assert_eq!(errors(inputs, body), mismatch, "a mask of the query's length, not the memory's");
    let body = "x -> multi_head_attention(2, memory=m -> linear(8), is_causal=true)";
    assert_eq!(errors(inputs, body), [Code::Value], "causal cross-attention");
}

// ---------------------------------------------------------------------------------------------
// recurrent states
// ---------------------------------------------------------------------------------------------

/// A destructuring binds an LSTM's output and its final states, batch first, each state a
/// node of its own reading the layer's; the given initial states are inputs of the layer, in
/// the order `h0`, `c0`.
#[test]
fn lstm_states_are_batch_first_nodes_and_inputs() {
    let body = "h = in[:, 0:4, 0:3]\n    c = in[:, 1:5, 0:3]\n    \
                y, h_n, c_n = in -> lstm(3, num_layers=2, bidirectional=true, h0=h, c0=c)\n    \
                cat(y[:, -1], h_n -> flatten, c_n -> flatten, dim=1)";
    let g = graph("[N, 7, 5]", body);
    let find = |name: &str| g.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("{name}"));
    let (lstm, h, c) = (find("y_h_n_c_n"), find("h"), find("c"));
    assert_eq!(g.nodes[lstm].shape.to_string(), "[N, 7, 6]");
    let inputs: Vec<usize> = g.nodes[lstm].inputs.iter().map(|id| id.0).collect();
    assert_eq!(inputs, [0, h, c]);
    for (state, which) in [("h_n", 1), ("c_n", 2)] {
        let node = &g.nodes[find(state)];
        assert_eq!(node.shape.to_string(), "[N, 4, 3]", "{state}");
        assert_eq!(node.inputs[0].0, lstm, "{state}");
        assert_eq!(node.op.layer().reads(), which, "{state}");
    }
    assert_eq!(shape("[N, 7, 5]", body), "[N, 30]");
}

/// A GRU's and an RNN's one state; the plain call gives the output alone, as it always did.
#[test]
fn gru_and_rnn_give_one_state() {
    assert_eq!(shape("[N, 7, 5]", "y, h_n = gru(4, num_layers=3)\n    h_n"), "[N, 3, 4]");
    assert_eq!(shape("[N, 7, 5]", "y, h_n = rnn(4, bidirectional=true)\n    h_n"), "[N, 2, 4]");
    assert_eq!(shape("[N, 7, 5]", "y = gru(4, h0=in[:, 0:1, 0:4])\n    y"), "[N, 7, 4]");
    assert_eq!(shape("[N, 7, 5]", "lstm(4) -> gru(2)"), "[N, 7, 2]");
}

/// With the output discarded and one state bound (`_, h = gru(4)`, Python's
/// `_, h = self.gru(x)`), the state takes the name bound and the layer its op's name under it,
/// as a label would name it; two states bound keep naming the layer after both.
#[test]
fn a_lone_state_names_itself_and_its_layer_under_it() {
    let names = |body: &str| -> Vec<String> {
        graph("[N, 7, 5]", body).nodes.iter().map(|n| n.name.clone()).collect()
    };
    assert_eq!(names("_, h = gru(4)\n    h"), ["input", "h.gru", "h"]);
    assert_eq!(names("_, _, c = lstm(4)\n    c"), ["input", "c.lstm", "c"]);
    assert_eq!(names("_, h, c = lstm(4)\n    cat(h, c)"), ["input", "h_c", "h", "c", "cat"]);
    assert_eq!(names("_, h = enc: gru(4)\n    h"), ["input", "h.enc", "h"]);
    assert_eq!(shape("[N, 7, 5]", "_, h = rnn(4, num_layers=2)\n    h"), "[N, 2, 4]");
}

/// An initial state of another shape (here not bidirectional's 2), half an LSTM's pair, a
/// destructuring of the wrong count, or of a block's output, are errors.
#[test]
fn recurrent_state_mistakes() {
    assert_eq!(errors("[N, 7, 5]", "gru(4, bidirectional=true, h0=in[:, 0:1, 0:4])"), [Code::ShapeMismatch]);
    assert_eq!(errors("[N, 7, 5]", "lstm(4, c0=in[:, 0:1, 0:4])"), [Code::Value]);
    assert_eq!(errors("[N, 7, 5]", "y, h_n = lstm(4)\n    y"), [Code::Value]);
    assert_eq!(errors("[N, 7, 5]", "y, h_n = relu\n    y"), [Code::Type]);
}
