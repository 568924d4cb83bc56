//! The language's meaning, case by case: which layers a model makes and what they are named.
//! Each expected list was worked out by hand from what the PyTorch a user would write names
//! (`nn.Sequential` numbers its children from 0, a Python `if` that appends nothing takes no
//! number, a module's attributes nest under it), and from the shapes PyTorch gives.

use nnc_compiler::ir::NodeId;
use nnc_compiler::{compile, Compilation, Options, Root};

fn compile_text(text: &str) -> Compilation {
    compile(Root::Text { name: "test.net", text, dir: None }, &Options::default())
}

/// The names of the layers with parameters and each one's output shape, in order.
fn named(text: &str) -> Vec<(String, String)> {
    let c = compile_text(text);
    assert!(!c.has_errors(), "{text}\n{:?}", c.diagnostics);
    let graph = c.graphs.into_iter().next().expect("one network");
    graph.nodes.iter().filter(|n| n.params > 0).map(|n| (n.name.clone(), n.shape.to_string())).collect()
}

/// Every layer's name, the input aside.
fn all_names(text: &str) -> Vec<String> {
    let c = compile_text(text);
    assert!(!c.has_errors(), "{text}\n{:?}", c.diagnostics);
    let graph = c.graphs.into_iter().next().expect("one network");
    graph.nodes.iter().skip(1).map(|n| n.name.clone()).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// torchvision's `InvertedResidual`: `layers = []; if expand_ratio != 1: layers.append(...)`;
/// without expansion the depthwise convolution is `conv.0`.
#[test]
fn a_false_if_takes_no_index() {
    let source = |expand: i32| {
        format!(
            "block cbr(c, k, groups = 1) {{ conv2d(c, k, padding=k // 2, groups=groups, bias=false) -> batchnorm -> relu }}
             network n(expand = {expand}) {{
                 input [N, 16, 8, 8]
                 conv = if expand != 1 {{ cbr(16 * expand, 1) }} -> cbr(16 * expand, 3, groups=16 * expand)
                     -> conv2d(16, 1, bias=false) -> batchnorm
             }}"
        )
    };
    let names = |expand| named(&source(expand)).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(1), ["conv.0.0", "conv.0.1", "conv.1", "conv.2"]);
    assert_eq!(names(6), ["conv.0.0", "conv.0.1", "conv.1.0", "conv.1.1", "conv.2", "conv.3"]);
}

/// An arm of several layers adds each to the sequence, as `layers.extend([...])` would.
#[test]
fn a_true_if_adds_its_layers_to_the_sequence() {
    let names = all_names(
        "network n(big = true) {
             input [N, 3, 8, 8]
             f = conv2d(4, 3) -> if big { conv2d(4, 1) -> relu } -> linear(2)
         }",
    );
    assert_eq!(names, ["f.0", "f.1", "f.2", "f.3"]);
}

/// Labels nest under the name of their statement: torchvision's ViT has `encoder.ln`.
#[test]
fn labels_nest_under_their_statement() {
    let names = named(
        "network n {
             input [N, 4, 8]
             encoder = repeat 2 { linear(8) } -> ln: layernorm
             head: linear(3)
         }",
    );
    let expected = [
        ("encoder.0", "[N, 4, 8]"),
        ("encoder.1", "[N, 4, 8]"),
        ("encoder.ln", "[N, 4, 8]"),
        ("head", "[N, 4, 3]"),
    ];
    assert_eq!(names, pairs(&expected));
}

/// Unbound statements continue one sequence, so two unbound `relu`s are `0` and `1`, and a
/// block called unbound at the top is a numbered child, its names under it (a block with
/// bindings numbers its unbound layers, here the closing `cat`).
#[test]
fn unbound_statements_continue_one_sequence() {
    assert_eq!(all_names("network n { input [N, 3] \n relu \n relu \n linear(2) }"), ["0", "1", "2"]);
    let names = all_names(
        "block two(c) { y = linear(c) \n cat(y, in) }
         network n { input [N, 3] \n linear(4) \n two(5) }",
    );
    assert_eq!(names, ["0", "1.y", "1.0"]);
}

/// A body may hold bindings. In a `repeat`, a body of several statements is one child per
/// iteration, as `nn.Sequential(*[Block() for _ in range(n)])` is, and `in` is the input of
/// that iteration.
#[test]
fn bodies_hold_bindings() {
    let names = named(
        "network n {
             input [N, 8, 6, 6]
             stages = repeat 2 {
                 y = conv2d(8, 3, padding=1) -> relu
                 y + in
             }
             head = if true {
                 pooled = adaptive_avgpool2d(1) -> flatten
                 pooled -> linear(3)
             }
         }",
    );
    let expected = [("stages.0.y.0", "[N, 8, 6, 6]"), ("stages.1.y.0", "[N, 8, 6, 6]"), ("head.0", "[N, 3]")];
    assert_eq!(names, pairs(&expected));
}

/// `_` is the tensor flowing into the stage it is written in: DenseNet's transition halves the
/// channels it receives, inline in the chain.
#[test]
fn underscore_is_the_tensor_flowing_in() {
    let names = named(
        "block transition(c) { batchnorm -> relu -> conv2d(c, 1) -> avgpool2d(2) }
         network n {
             input [N, 3, 8, 8]
             f = conv2d(10, 3, padding=1) -> transition(_.channels // 2) -> cat(_, _ -> conv2d(2, 1))
         }",
    );
    let expected = [
        ("f.0", "[N, 10, 8, 8]"),
        ("f.1.0", "[N, 10, 8, 8]"),
        ("f.1.2", "[N, 5, 8, 8]"),
        ("f.2.1", "[N, 2, 4, 4]"),
    ];
    assert_eq!(names, pairs(&expected));
}

/// `-x` of a tensor is `-1 * x` (`torch.neg`'s values), named as a binary operation's result,
/// with a layer-making operand under `.0`; `- -x` is `x` itself.
#[test]
fn minus_negates_a_tensor() {
    let text = "network n {
             input x [N, 4]
             a = linear(4)
             b = -a
             c = - -x + b
             d = -(c -> relu) * 2
         }";
    assert_eq!(all_names(text), ["a", "b", "c", "d.0.0", "d.0", "d"]);
    let graph = compile_text(text).graphs.into_iter().next().unwrap();
    let ops: Vec<String> = graph.nodes.iter().skip(2).map(|n| n.op.to_string()).collect();
    assert_eq!(ops, ["-1.0 * x", "add", "relu", "-1.0 * x", "x * 2.0"]);
    // `c` adds `x` itself: the double negation made no layer.
    assert_eq!(graph.nodes[3].inputs[0], graph.inputs[0]);
    // In a chain, the tensor flowing in flows into the negated stage.
    let chained = "network n {
             input x [N, 4]
             a = x -> -relu
             b = a -> -linear(4) -> -_
         }";
    assert_eq!(all_names(chained), ["a.0", "a", "b.0.0", "b.0", "b.1"]);
    // `not` outside the negation meets the tensor it gives, and says so, not that a tensor
    // cannot be negated.
    for body in ["not -x", "not not -x", "- not x", "- not -x"] {
        let c = compile_text(&format!("network n {{\n input x [N, 4]\n {body}\n}}"));
        let messages: Vec<&str> = c.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["cannot apply `not` to a tensor"], "{body}");
    }
}

/// A name bound in one `repeat` iteration's body is that iteration's own, so it can be bound
/// again in the next; outside the body it is unknown.
#[test]
fn body_bindings_stay_in_their_body() {
    let c = compile_text(
        "network n {
             input [N, 4]
             repeat 2 { y = linear(4) \n y -> relu }
             y
         }",
    );
    let messages: Vec<&str> = c.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(c.diagnostics.len(), 1, "{messages:?}");
    assert!(messages[0].contains("`y`"), "{messages:?}");
}

/// The functions of numbers compute what Python's do, and a `fn` computes a value once for
/// every use: torchvision's `_make_divisible(24 * 0.75, 8)` is 24 (18 rounds to 16, which is
/// more than 10% below 18).
#[test]
fn functions_compute_as_python_does() {
    let names = named(
        "fn make_divisible(v, divisor = 8) {
             rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
             if rounded < 0.9 * v { rounded + divisor } else { rounded }
         }
         network n {
             input [N, 3]
             a: linear(make_divisible(24 * 0.75))
             b: linear(max((3, round(2.5), round(3.5))))
             c: linear(floor(-2.5) + ceil(2.1) + int(-2.7) + abs(-3) + min(4, 4.5))
             d: linear(int(sqrt(64) * 1 / sqrt(0.25)) + round(sqrt(2) * 1000))
         }",
    );
    // round(2.5) is 2 and round(3.5) is 4 (ties to even); floor(-2.5) + ceil(2.1) + int(-2.7)
    // + abs(-3) + min(4, 4.5) is -3 + 3 - 2 + 3 + 4 = 5; sqrt is a float, as Python's
    // `math.sqrt`: 8.0 / 0.5 is 16, and round(1414.21...) 1414.
    let expected = [("a", "[N, 24]"), ("b", "[N, 4]"), ("c", "[N, 5]"), ("d", "[N, 1430]")];
    assert_eq!(names, pairs(&expected));
}

/// A named input binds its name; the first, `in`, flows into the statement after it, and a
/// later one, a declaration, flows into nothing: the `relu` after `input x` reads the `mean`
/// before it ([N, 4]), not `x` ([N, 6]). Unbound statements number on across the inputs, which
/// take no number.
#[test]
fn named_inputs_bind_their_names_and_only_the_first_flows_on() {
    let text = "network n(len = 5) {
         input tokens [N, len] int
         embedding(10, 4) -> mean(1)
         input x [N, 6]
         relu
         y = in -> embedding(10, 4) -> flatten
         _ + (tokens -> embedding(10, 4) -> flatten) + (x -> linear(20))
     }";
    let c = compile_text(text);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let inputs: Vec<String> =
        graph.inputs.iter().map(|&id| format!("{} {}", graph.node(id).name, graph.node(id).shape)).collect();
    assert_eq!(inputs, ["tokens [N, 5] int", "x [N, 6]"]);
    let layers: Vec<String> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| !graph.is_input(i))
        .map(|(_, n)| format!("{} {}", n.name, n.shape))
        .collect();
    assert_eq!(
        layers,
        [
            "0 [N, 5, 4]",
            "1 [N, 4]",
            "2 [N, 4]",
            "y.0 [N, 5, 4]",
            "y.1 [N, 20]",
            "3.1.0 [N, 5, 4]",
            "3.1.1 [N, 20]",
            "3.add1 [N, 20]",
            "3.2 [N, 20]",
            "3 [N, 20]",
        ]
    );
}

/// A shared layer is one module called again, as `self.cell(self.cell(x))` in PyTorch: every
/// application is a node named as the first, whose tensors it uses, counted once. A declaration
/// makes no layer until applied, and feeds nothing, so the statement after it continues from
/// the one before; its layers take the declaration's name, wherever it is applied.
#[test]
fn shared_layers_are_applied_again_with_one_set_of_tensors() {
    let text = "block twice(c) { shared proj = linear(c) \n proj -> relu -> proj }
                network n {
                    input [N, 4]
                    shared cell = linear(4) -> tanh
                    a = linear(4)
                    b = repeat 2 { cell }
                    t = twice(4)
                    cell -> linear(2)
                }";
    let c = compile_text(text);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let rows: Vec<String> = graph
        .nodes
        .iter()
        .skip(1)
        .map(|n| {
            format!("{} {} {}", n.name, n.params, n.shares.map_or("-".into(), |s| graph.node(s).name.clone()))
        })
        .collect();
    assert_eq!(
        rows,
        [
            "a 20 -",
            "cell.0 20 -",
            "cell.1 0 -",
            "cell.0 0 cell.0",
            "cell.1 0 cell.1",
            "t.proj 20 -",
            "t.0 0 -",
            "t.proj 0 t.proj",
            "cell.0 0 cell.0",
            "cell.1 0 cell.1",
            "linear 10 -",
        ]
    );
    // Each application reads the tensor before it: the repeat chains the two, and the last
    // statement continues from the block `t`.
    let by_index = |i: usize| &graph.nodes[i];
    assert_eq!(by_index(4).inputs, [NodeId(3)]);
    assert_eq!(by_index(9).inputs, [NodeId(8)]);
    assert_eq!(graph.total_params(), 20 + 20 + 20 + 10);
}

/// `tie a.weight = b.weight` makes `a`'s tensor `b`'s, as PyTorch's `a.weight = b.weight`: the
/// parameters count it once, and the graph records which tensor it is.
#[test]
fn tied_tensors_count_once() {
    let text = "network n(vocab = 10) {
                    input tokens [N, 3] int
                    wte: embedding(vocab, 4) -> head: linear(vocab, bias=false)
                    tie head.weight = wte.weight
                }";
    let c = compile_text(text);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let head = graph.nodes.iter().find(|n| n.name == "head").unwrap();
    assert_eq!(head.params, 0);
    assert_eq!(head.ties.len(), 1);
    let tie = &head.ties[0];
    assert_eq!(
        (tie.tensor.as_str(), graph.node(tie.to).name.as_str(), tie.to_tensor.as_str()),
        ("weight", "wte", "weight")
    );
    assert_eq!(graph.total_params(), 40);
    assert!(head.own_tensors().is_empty());
}

/// A shared layer built of another's applications takes the tensors of the layer they share,
/// so every application points at a node that creates its tensors; and a tie to a tensor that
/// is tied later is a tie to the tensor that one stands for.
#[test]
fn shares_and_ties_point_at_the_tensors_that_exist() {
    let c = compile_text(
        "network s {
             input [N, 2]
             shared a = linear(2)
             z = a
             shared b = a -> a
             x = z -> b
             y = x -> b
             y
         }",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let owners: Vec<Option<String>> =
        graph.nodes.iter().skip(1).map(|n| n.shares.map(|s| graph.node(s).name.clone())).collect();
    assert_eq!(owners, [None, Some("a".into()), Some("a".into()), Some("a".into()), Some("a".into())]);
    assert!(graph.nodes.iter().filter_map(|n| n.shares).all(|s| graph.node(s).shares.is_none()));
    assert_eq!(graph.total_params(), 6);

    let c = compile_text(
        "network t {
             input [N, 4]
             a: linear(4) -> b: linear(4) -> c: linear(4)
             tie a.weight = b.weight
             tie b.weight = c.weight
         }",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let graph = &c.graphs[0];
    let ties: Vec<(String, String)> = graph
        .nodes
        .iter()
        .flat_map(|n| n.ties.iter().map(move |t| (n.name.clone(), format!("{}", t.to.0))))
        .map(|(n, to)| (n, graph.node(nnc_compiler::ir::NodeId(to.parse().unwrap())).name.clone()))
        .collect();
    assert_eq!(ties, [("a".to_string(), "c".to_string()), ("b".to_string(), "c".to_string())]);
    // Three 4 → 4 layers, two of whose weights are the third's.
    assert_eq!(graph.total_params(), 3 * 20 - 2 * 16);
}

/// `_` in a destructuring discards its piece, as Python's `y, (h, _) = lstm(x)` does: a
/// recurrent layer's discarded state is not read from it (no node), a discarded piece of a tuple
/// (`a.1`, the second of `a`'s statement) is no dead tensor to warn about, and the statement is
/// named after the names it binds.
#[test]
fn underscore_discards_a_piece_of_a_destructuring() {
    let text = "network n {
        input tokens [N, 12] int
        y, _, c = tokens -> embedding(100, 8) -> lstm(16)
        a, _ = y -> chunk(2, dim=2)
        cat(a -> mean(1), c -> flatten) -> linear(2)
    }";
    let c = compile_text(text);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(
        all_names(text),
        ["y_c.0", "y_c.1", "c", "a", "a.1", "0.0", "0.1", "0", "1"].map(String::from).to_vec(),
    );
    // All discarded: the layer is dead, and said so.
    let c = compile_text("network n {\n input [N, 4, 8]\n x = linear(8)\n _, _ = x -> gru(4)\n x }");
    assert!(c.diagnostics.iter().any(|d| d.code.as_str() == "W0001"), "{:?}", c.diagnostics);
    // `_` alone binds nothing and is no statement.
    let c = compile_text("network n {\n input [N, 4]\n _ = linear(8)\n}");
    assert!(c.has_errors());
}
