//! Every model in `models/`: its inferred shapes and parameter counts against the ground truth
//! PyTorch gives (DESIGN.md), and an insta snapshot of its report.

mod common;

use std::path::Path;

use common::compile_file;
use nnc_compiler::back::memory::{self, Optimizer};
use nnc_compiler::back::report::{render_table, report, Report};
use nnc_compiler::Graph;

/// The output shape of a layer, or of the last layer of a group (`b3`).
fn shape_of(graph: &Graph, name: &str) -> String {
    let prefix = format!("{name}.");
    let node = graph
        .nodes
        .iter()
        .rev()
        .find(|n| n.name == name || n.name.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no layer `{name}` in {}", graph.name));
    node.shape.to_string()
}

/// Compiles a model and checks its parameter count and the shapes of the named stages.
fn check(file: &str, overrides: &[(&str, &str)], params: u64, stages: &[(&str, &str)]) -> Graph {
    let c = compile_file(&Path::new("../models").join(file), overrides);
    assert!(c.diagnostics.is_empty(), "{file}: {:?}", c.diagnostics);
    let graph = c.graphs.into_iter().next().expect("one network");
    assert_eq!(graph.total_params(), params, "{file}: parameter count");
    for (name, shape) in stages {
        assert_eq!(shape_of(&graph, name), *shape, "{file}: shape of `{name}`");
    }
    graph
}

// The expected numbers below are DESIGN.md's ground-truth table, which came from PyTorch 2.13.

#[test]
fn lenet() {
    check(
        "lenet.net",
        &[],
        61_706,
        &[
            ("0", "[N, 6, 28, 28]"),
            ("2", "[N, 6, 14, 14]"),
            ("3", "[N, 16, 10, 10]"),
            ("5", "[N, 16, 5, 5]"),
            ("6", "[N, 400]"),
            ("7", "[N, 120]"),
            ("9", "[N, 84]"),
            ("11", "[N, 10]"),
        ],
    );
}

#[test]
fn lenet_bn() {
    check(
        "lenet-bn.net",
        &[],
        44_878,
        &[
            ("0", "[N, 6, 24, 24]"),
            ("3", "[N, 6, 12, 12]"),
            ("4", "[N, 16, 8, 8]"),
            ("7", "[N, 16, 4, 4]"),
            ("8", "[N, 256]"),
            ("9", "[N, 120]"),
            ("12", "[N, 84]"),
            ("15", "[N, 10]"),
        ],
    );
}

#[test]
fn alexnet() {
    check(
        "alexnet.net",
        &[],
        46_764_746,
        &[
            ("0", "[N, 96, 54, 54]"),
            ("2", "[N, 96, 26, 26]"),
            ("3", "[N, 256, 26, 26]"),
            ("5", "[N, 256, 12, 12]"),
            ("6", "[N, 384, 12, 12]"),
            ("8", "[N, 384, 12, 12]"),
            ("10", "[N, 256, 12, 12]"),
            ("12", "[N, 256, 5, 5]"),
            ("13", "[N, 6400]"),
            ("14", "[N, 4096]"),
            ("17", "[N, 4096]"),
            ("20", "[N, 10]"),
        ],
    );
}

#[test]
fn vgg11() {
    check(
        "vgg11.net",
        &[],
        128_806_154,
        &[
            ("0", "[N, 64, 112, 112]"),
            ("1", "[N, 128, 56, 56]"),
            ("2", "[N, 256, 28, 28]"),
            ("3", "[N, 512, 14, 14]"),
            ("4", "[N, 512, 7, 7]"),
            ("5", "[N, 25088]"),
            ("6", "[N, 4096]"),
            ("9", "[N, 4096]"),
            ("12", "[N, 10]"),
        ],
    );
}

#[test]
fn vgg11_with_a_quarter_of_the_channels() {
    check(
        "vgg11.net",
        &[("ratio", "4")],
        43_093_322,
        &[
            ("0", "[N, 16, 112, 112]"),
            ("1", "[N, 32, 56, 56]"),
            ("2", "[N, 64, 28, 28]"),
            ("3", "[N, 128, 14, 14]"),
            ("4", "[N, 128, 7, 7]"),
            ("5", "[N, 6272]"),
            ("6", "[N, 4096]"),
            ("9", "[N, 4096]"),
            ("12", "[N, 10]"),
        ],
    );
}

#[test]
fn nin() {
    check(
        "nin.net",
        &[],
        1_992_166,
        &[
            ("0", "[N, 96, 54, 54]"),
            ("1", "[N, 96, 26, 26]"),
            ("2", "[N, 256, 26, 26]"),
            ("3", "[N, 256, 12, 12]"),
            ("4", "[N, 384, 12, 12]"),
            ("5", "[N, 384, 5, 5]"),
            ("7", "[N, 10, 5, 5]"),
            ("8", "[N, 10, 1, 1]"),
            ("9", "[N, 10]"),
        ],
    );
}

#[test]
fn googlenet() {
    check(
        "googlenet.net",
        &[],
        5_977_530,
        &[
            ("b1", "[N, 64, 24, 24]"),
            ("b2", "[N, 192, 12, 12]"),
            ("b3", "[N, 480, 6, 6]"),
            ("b4", "[N, 832, 3, 3]"),
            ("b5", "[N, 1024]"),
            ("fc", "[N, 10]"),
        ],
    );
}

/// d2l 8.7's DenseNet as a newcomer writes it (`repeat n { cat(in, in -> conv_block(c)) }`):
/// the count and the stage shapes of d2l's PyTorch code at 96×96, one grey channel.
#[test]
fn densenet() {
    check(
        "densenet.net",
        &[],
        758_226,
        &[
            ("b1", "[N, 64, 24, 24]"),
            ("d1", "[N, 192, 24, 24]"),
            ("t1", "[N, 96, 12, 12]"),
            ("d2", "[N, 224, 12, 12]"),
            ("t2", "[N, 112, 6, 6]"),
            ("d3", "[N, 240, 6, 6]"),
            ("t3", "[N, 120, 3, 3]"),
            ("d4", "[N, 248, 3, 3]"),
            ("last", "[N, 10]"),
        ],
    );
}

#[test]
fn resnet18() {
    let graph = check(
        "resnet18.net",
        &[],
        11_178_378,
        &[
            ("b1", "[N, 64, 56, 56]"),
            ("b2", "[N, 64, 56, 56]"),
            ("b3", "[N, 128, 28, 28]"),
            ("b4", "[N, 256, 14, 14]"),
            ("b5", "[N, 512, 7, 7]"),
            ("head.0", "[N, 512, 1, 1]"),
            ("head.1", "[N, 512]"),
            ("head.2", "[N, 10]"),
        ],
    );
    // DESIGN.md: 1.74 G multiply-adds per image at 224×224.
    assert_eq!(format!("{:.2}", graph.total_macs() as f64 / 1e9), "1.74");
    // Parameter names follow PyTorch's state_dict, as d2l's Residual names its layers.
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    for name in ["b3.0.conv1", "b3.0.bn1", "b3.0.conv2", "b3.0.bn2", "b3.0.conv3", "b3.1.conv1"] {
        assert!(names.contains(&name), "no layer `{name}`");
    }
    assert!(!names.contains(&"b3.1.conv3"), "only the first block of a stage projects its shortcut");
}

#[test]
fn resnet18_at_96_pixels() {
    check(
        "resnet18.net",
        &[("size", "96")],
        11_178_378,
        &[
            ("b1", "[N, 64, 24, 24]"),
            ("b2", "[N, 64, 24, 24]"),
            ("b3", "[N, 128, 12, 12]"),
            ("b4", "[N, 256, 6, 6]"),
            ("b5", "[N, 512, 3, 3]"),
            ("head.2", "[N, 10]"),
        ],
    );
}

#[test]
fn resnet_1000_is_a_thousand_layers_deep() {
    let c = compile_file(Path::new("../models/resnet-1000.net"), &[]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let weighted =
        graph.nodes.iter().filter(|n| n.name.ends_with("conv1") || n.name.ends_with("conv2")).count();
    assert_eq!(weighted, 6 * 166, "two convolutions per block, 166 blocks per stage");
    assert_eq!(shape_of(graph, "s3"), "[N, 64, 7, 7]");
    assert_eq!(shape_of(graph, "head"), "[N, 10]");
}

#[test]
fn convolution_examples_on_8x8() {
    // d2l 7.3's five single convolutions.
    let c = compile_file(Path::new("../models/conv-examples.net"), &[]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let outputs: Vec<(String, String)> =
        c.graphs.iter().map(|g| (g.name.clone(), g.node(g.output()).shape.to_string())).collect();
    let expected = [
        ("same", "[N, 1, 8, 8]"),
        ("tall_kernel", "[N, 1, 8, 8]"),
        ("wide_padding", "[N, 1, 10, 10]"),
        ("strided", "[N, 1, 2, 2]"),
        ("halved", "[N, 1, 4, 4]"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(outputs, expected);
}

/// One snapshot per model file of its full report (for very deep models, two levels deep),
/// with the memory of training a batch of 32 with Adam (`nnc check --batch 32 --optimizer
/// adam`). Its numbers are the ones the tests above check against DESIGN.md; the memory's
/// torchinfo rows equal `torchinfo.summary`'s of the emitted module to the byte (the input's
/// less the 64 bytes of Python's storage object), but for the networks with attention or a
/// `param` (the zoo's GPT-2 and ViT), whose tensors torchinfo leaves out (README).
#[test]
fn model_reports() {
    insta::glob!("../models", "**/*.net", |path| {
        let c = compile_file(path, &[]);
        assert!(c.diagnostics.is_empty(), "{}: {:?}", path.display(), c.diagnostics);
        let mut out = String::new();
        for graph in &c.graphs {
            let depth = (graph.nodes.len() > 400).then_some(2);
            if let Some(depth) = depth {
                out += &format!("(collapsed to depth {depth}: {} layers)\n", graph.nodes.len() - 1);
            }
            let memory = Some(memory::for_batch(graph, 32, Optimizer::Adam));
            out += &render_table(&Report { memory, ..report(graph, depth) });
            out += "\n";
        }
        insta::assert_snapshot!(out);
    });
}

/// Collapsed reports: a block whose last layer carries the block's own name (Inception's
/// closing `cat`) is one row with the block's output, and a prefix standing for one layer shows
/// that layer's op.
#[test]
fn collapsed_reports() {
    let c = compile_file(Path::new("../models/googlenet.net"), &[]);
    let table = render_table(&report(&c.graphs[0], Some(2)));
    let b30: Vec<&str> = table.lines().filter(|l| l.starts_with("b3.0 ")).collect();
    assert_eq!(b30.len(), 1, "{table}");
    assert!(b30[0].contains("[N, 256, 12, 12]") && b30[0].contains("163,696"), "{}", b30[0]);
    insta::assert_snapshot!("googlenet_depth_2", table);

    let c = compile_file(Path::new("../models/resnet18.net"), &[]);
    let table = render_table(&report(&c.graphs[0], Some(3)));
    assert!(!table.contains("1 layers"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("b2.0.2 ") && l.contains(" relu ")), "{table}");
}

/// Files in `tests/ok/` use the language's corners (imports by path, `cat`, conditionals on
/// shapes, naming); each must check without a diagnostic, and its report is a snapshot.
#[test]
fn ok_files_check() {
    insta::glob!("ok/*.net", |path| {
        let relative = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path);
        let c = compile_file(relative, &[]);
        assert!(c.diagnostics.is_empty(), "{}: {:?}", path.display(), c.diagnostics);
        let tables: Vec<String> = c.graphs.iter().map(|g| render_table(&report(g, None))).collect();
        insta::assert_snapshot!(tables.join("\n"));
    });

    let c = compile_file(Path::new("ok/tour.net"), &[]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    assert_eq!(shape_of(graph, "b1"), "[N, 64, 56, 56]");
    assert_eq!(shape_of(graph, "b3"), "[N, 128, 28, 28]");
    assert_eq!(shape_of(graph, "wide"), "[N, 144, 28, 28]");
    assert_eq!(shape_of(graph, "mixed"), "[N, 72, 28, 28]");
    assert_eq!(shape_of(graph, "head"), "[N, 10]");
    assert!(graph.nodes.iter().any(|n| n.name == "b3.1.conv1"));

    let c = compile_file(Path::new("ok/inputs.net"), &[("len", "9")]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let inputs: Vec<String> = graph.inputs.iter().map(|&id| graph.node(id).shape.to_string()).collect();
    assert_eq!(inputs, ["[N, 9] int", "[N, 8]"]);
    assert_eq!(shape_of(graph, "words.0"), "[N, 9, 32]");
    assert_eq!(graph.total_params(), 1000 * 32 + 8 * 32 + 32 + 64 * 2 + 2);

    let c = compile_file(Path::new("ok/padding.net"), &[]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    assert_eq!(shape_of(graph, "even"), "[N, 8, 15, 16]");
    assert_eq!(shape_of(graph, "dilated"), "[N, 8, 15, 16]");
    assert_eq!(shape_of(graph, "valid"), "[N, 4, 13, 14]");
    let table = render_table(&report(graph, None));
    assert!(table.contains("conv2d 3→8, 4×4, padding same"), "{table}");
}

/// Each network of issue 15's list with its input's sizes left free (`input [N, C, H, W]`,
/// `[N, T]` ids): its symbolic table is a snapshot. Each size is an expression the checker
/// verified against its shape rules at two sizes, and `runtime/tests/free_sizes.rs` runs the
/// valid sets it ends with on libtorch; the parameter counts are the models' own.
#[test]
fn free_size_tables() {
    let cases = [
        ("resnet18.net", 11_178_378),
        ("zoo/resnet50.net", 25_557_032),
        ("googlenet.net", 5_977_530),
        ("densenet.net", 758_226),
        ("zoo/mobilenet_v2.net", 3_504_872),
        ("zoo/text_classifier.net", 3_649_540),
    ];
    for (file, params) in cases {
        let path = Path::new("../models").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let freed = text.replace(", size, size]", ", H, W]").replace("[N, length] int", "[N, T] int");
        assert_ne!(freed, text, "{file}");
        let dir = path.parent().unwrap();
        let root = nnc_compiler::Root::Text { name: file, text: &freed, dir: Some(dir) };
        let c = nnc_compiler::compile(root, &nnc_compiler::Options::default());
        assert!(c.diagnostics.is_empty(), "{file}: {:?}", c.diagnostics);
        let graph = &c.graphs[0];
        assert!(graph.free.is_some(), "{file}");
        assert_eq!(graph.total_params(), params, "{file}: parameter count");
        let name = format!("free_{}", Path::new(file).file_stem().unwrap().to_string_lossy());
        insta::assert_snapshot!(name, render_table(&report(graph, None)));
    }
}
