//! Hostile input: whatever the bytes, parse and check end with diagnostics, never a panic, a
//! hang or a stack overflow, and every diagnostic points inside its file. The fixed cases name
//! the limits; the generated ones (proptest) mutate the real models and throw token soup.

mod common;

use std::path::Path;

use common::{assert_linear, assert_spans_in_bounds, fastest_of_three};
use nnc_compiler::{compile, Code, Compilation, Options, Root};
use proptest::prelude::*;

fn check_text(text: &str) -> Compilation {
    let c = compile(Root::Text { name: "hostile.net", text, dir: None }, &Options::default());
    assert_spans_in_bounds(&c);
    format_text(text);
    c
}

/// `nnc fmt` on the same text: formatted (idempotently, the formatter checking that the tree
/// and the comments are kept) or refused for its syntax errors, never a panic.
fn format_text(text: &str) {
    match nnc_grammar::format::format(text) {
        Ok(out) => assert_eq!(nnc_grammar::format::format(&out), Ok(out.clone()), "not idempotent:\n{text}"),
        Err(nnc_grammar::format::FormatError::Syntax(_)) => {}
        Err(nnc_grammar::format::FormatError::Internal(why)) => panic!("{why}:\n{text}"),
    }
}

fn codes(c: &Compilation) -> Vec<Code> {
    c.diagnostics.iter().map(|d| d.code).collect()
}

fn network(body: &str) -> String {
    format!("network n {{\n    input [N, 1, 28, 28]\n    {body}\n}}\n")
}

#[test]
fn ten_thousand_nested_brackets() {
    for (open, close) in [("(", ")"), ("[", "]"), ("{", "}")] {
        let body = format!("conv2d({}1{}, 3)", open.repeat(10_000), close.repeat(10_000));
        let c = check_text(&network(&body));
        assert_eq!(codes(&c), [Code::Syntax]);
        assert!(c.diagnostics[0].message.contains("nest deeper than the limit of 32"));
    }
}

#[test]
fn long_flat_expressions() {
    // 100,000 operators and prefix signs: flat in the tree, so no recursion to overflow.
    let sum = format!("conv2d(1{}, 3)", " + 0".repeat(100_000));
    assert!(check_text(&network(&sum)).diagnostics.is_empty());
    let signs = format!("conv2d({}4, 3)", "- -".repeat(50_000));
    assert!(check_text(&network(&signs)).diagnostics.is_empty());
}

#[test]
fn huge_repeat_counts_hit_the_limit() {
    let c = check_text(&network("repeat 1_000_000_000_000 { relu }"));
    assert_eq!(codes(&c), [Code::Limit]);
    assert!(c.diagnostics[0].message.contains("limit of 10000 iterations"));
    let c = check_text(&network("repeat 10_000 { repeat 10_000 { relu } }"));
    assert_eq!(codes(&c), [Code::Limit]);
    assert!(c.diagnostics[0].message.contains("more than 100000 layers"));
    // Loops that make no layers are bounded by the step limit instead.
    let c = check_text(&network("repeat 10_000 { repeat 10_000 { if false { relu } } }"));
    assert_eq!(codes(&c), [Code::Limit]);
    assert!(c.diagnostics[0].message.contains("steps"));
}

#[test]
fn self_calling_blocks() {
    let c = check_text(&format!("block b(c) {{ conv2d(c, 1) -> b(c) }}\n{}", network("b(4)")));
    assert_eq!(codes(&c), [Code::Recursion]);
}

#[test]
fn deep_but_finite_block_chains_hit_the_call_depth_limit() {
    let mut src = String::from("block b0(c) { relu }\n");
    for i in 1..200 {
        src += &format!("block b{i}(c) {{ b{}(c) }}\n", i - 1);
    }
    src += &network("b199(1)");
    let c = check_text(&src);
    assert_eq!(codes(&c), [Code::Limit]);
    assert!(c.diagnostics[0].message.contains("nest deeper than the limit of 64"));
}

#[test]
fn arithmetic_is_checked() {
    for expr in [
        "9223372036854775807 + 1",
        "-9223372036854775808 // -1",
        "3 // 0",
        "3 % 0",
        "2 * 4611686018427387904",
    ] {
        let c = check_text(&network(&format!("conv2d({expr}, 3)")));
        assert_eq!(codes(&c), [Code::Arithmetic], "{expr}");
    }
    let c = check_text(&network("conv2d(99999999999999999999, 3)"));
    assert_eq!(codes(&c), [Code::Syntax]);
    // 2⁶³ does not fit either; only its negation, i64::MIN, does (it was read as i64::MIN,
    // so `2⁶³ // (2⁶³ − 1) + 6` checked as 4 features).
    let c = check_text(&network("linear(9223372036854775808 // 9223372036854775807 + 6)"));
    assert_eq!(codes(&c), [Code::Syntax]);
}

/// A value that doubles at each binding (`a1 = (a0, a0)`) or call (`g(g(...))`) held 2²⁴ values
/// after 24 lines of 20 bytes, and the allocation failed (SIGABRT, which no `catch_unwind`
/// stops): a tuple's size counts against the step limit.
#[test]
fn doubling_values_hit_the_step_limit() {
    let bindings: String = (1..=40).map(|i| format!("    a{i} = (a{}, a{})\n", i - 1, i - 1)).collect();
    let c = check_text(&format!("network n {{\n    input [N, 4]\n    a0 = 1\n{bindings}    relu\n}}\n"));
    assert_eq!(codes(&c), [Code::Limit]);
    let calls = format!("{}1{}", "g(".repeat(30), ")".repeat(30));
    let c =
        check_text(&format!("fn g(x) {{\n    (x, x)\n}}\n\n{}", network(&format!("a = {calls}\n    relu"))));
    assert_eq!(codes(&c), [Code::Limit]);
}

/// `split` into more pieces than a network may have layers is refused before the pieces are
/// made (10⁸ of them aborted the check allocating 8 GB).
#[test]
fn splitting_into_too_many_pieces() {
    let c = check_text("network n {\n    input [N, 100000000]\n    split(1, dim=1)\n}\n");
    assert_eq!(codes(&c), [Code::Limit]);
    assert!(c.diagnostics[0].message.contains("100000000 pieces"), "{}", c.diagnostics[0].message);
}

/// `nnc fmt` twice is `nnc fmt` once: a chain broken after an `if` without `else` was joined
/// on the second pass (the `if`'s span took the whitespace after it).
#[test]
fn formatting_a_chain_after_an_if_is_idempotent() {
    for text in [
        "network t(e = 2) {\n    input [N, 4]\n    y = if e != 1 { linear(4,\n        bias=false) } ->\n        relu\n}\n",
        "network t(e = 2) {\n    input [N, 4]\n    y = if e != 1 { relu }  # note\n        -> relu\n}\n",
    ] {
        let once = nnc_grammar::format::format(text).expect("it parses");
        assert_eq!(nnc_grammar::format::format(&once), Ok(once.clone()), "not idempotent:\n{once}");
    }
}

#[test]
fn zero_and_negative_strides() {
    for stride in ["0", "-1", "(1, 0)", "(-2, 2)"] {
        let c = check_text(&network(&format!("conv2d(4, 3, stride={stride})")));
        assert_eq!(codes(&c), [Code::Value], "stride={stride}");
    }
}

#[test]
fn non_utf8_bytes() {
    let dir = std::env::temp_dir().join(format!("nnc-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.net");
    std::fs::write(&path, b"network n {\xff\xfe input [N, 1] }\n").unwrap();
    let c = compile(Root::Path(&path), &Options::default());
    assert_spans_in_bounds(&c);
    assert_eq!(codes(&c), [Code::Io]);
    assert_eq!(c.diagnostics[0].labels[0].loc.span.start, 11);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_over_the_size_limit_are_refused_unread() {
    let dir = std::env::temp_dir().join(format!("nnc-hostile-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Sparse: 17 MiB on paper, nothing on disk.
    let path = dir.join("large.net");
    std::fs::File::create(&path).unwrap().set_len(17 << 20).unwrap();
    let c = compile(Root::Path(&path), &Options::default());
    assert_eq!(codes(&c), [Code::Io]);
    let expected = format!("`{}` is 17825792 bytes, over the limit of 2097152", path.display());
    assert_eq!(c.diagnostics[0].message, expected);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real models, as seeds for mutation.
fn seeds() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["../models", "../models/zoo", "../compiler/std"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "net"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    }
    out
}

/// Pieces of the language, for token soup.
const TOKENS: &[&str] = &[
    "network",
    "block",
    "import",
    "input",
    "repeat",
    "in",
    "if",
    "else",
    "and",
    "or",
    "not",
    "true",
    "false",
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "batchnorm",
    "relu",
    "linear",
    "flatten",
    "cat",
    "residual",
    "N",
    "c",
    "x",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "->",
    ":",
    ".",
    "..",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "==",
    "!=",
    "<",
    ">=",
    "0",
    "1",
    "3",
    "-1",
    "28",
    "1e9",
    "0.5",
    "\"a.net\"",
    "std.resnet",
    "#",
    "\n",
    " ",
    "é",
    "\u{0}",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Replace(usize, usize, &'static str),
}

fn apply(src: &str, edits: &[Edit]) -> String {
    let mut s = src.to_string();
    // A char boundary at or before `i`, which is first wrapped into the string.
    let at = |s: &str, i: usize| {
        let mut i = i % (s.len() + 1);
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let end = |s: &str, a: usize, n: usize| {
        let mut b = (a + n).min(s.len());
        while !s.is_char_boundary(b) {
            b -= 1;
        }
        b
    };
    for edit in edits {
        match edit {
            Edit::Delete(i, n) => {
                let a = at(&s, *i);
                let b = end(&s, a, n % 16);
                s.replace_range(a..b, "");
            }
            Edit::Insert(i, t) => {
                let a = at(&s, *i);
                s.insert_str(a, t);
            }
            Edit::Replace(i, n, t) => {
                let a = at(&s, *i);
                let b = end(&s, a, n % 8);
                s.replace_range(a..b, t);
            }
        }
    }
    s
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = proptest::sample::select(TOKENS);
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), token.clone()).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), any::<usize>(), token).prop_map(|(i, n, t)| Edit::Replace(i, n, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_models_never_panic(seed in 0usize..100, edits in proptest::collection::vec(edit(), 1..6)) {
        let seeds = seeds();
        let src = apply(&seeds[seed % seeds.len()], &edits);
        check_text(&src);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)) {
        check_text(&tokens.join(" "));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_text(&text);
    }
}

#[test]
fn std_modules_parse_without_errors() {
    for (name, text) in nnc_compiler::STD_MODULES {
        let c = check_text(text);
        assert!(c.diagnostics.is_empty(), "{name}: {:?}", c.diagnostics);
        let _ = Path::new(name);
    }
}

/// The time `compile` takes on `text`, the least of three runs (the least is the one other
/// processes disturbed least).
fn time_to_check(text: &str) -> std::time::Duration {
    fastest_of_three(|| {
        let c = compile(Root::Text { name: "many.net", text, dir: None }, &Options::default());
        assert!(!c.graphs.is_empty() || !c.diagnostics.is_empty());
    })
}

#[test]
fn checking_many_networks_stays_linear() {
    // Each network, valid or with a syntax error; pest once made every item cost as much as
    // the rest of the file, and 20,000 networks took seconds.
    let valid = |i: usize| format!("network n{i} {{\n    input [N, 1, 8, 8]\n    conv2d(2, 3) -> relu\n}}\n");
    let broken = |i: usize| format!("network n{i} {{\n    input [N, 1, 8, 8]\n    conv2d(2 3) -> relu\n}}\n");
    for network in [&valid as &dyn Fn(usize) -> String, &broken] {
        let file = |n: usize| (0..n).map(network).collect::<String>();
        let c = compile(Root::Text { name: "many.net", text: &file(4_000), dir: None }, &Options::default());
        assert!(c.graphs.len() == 4_000 || c.diagnostics.len() == 4_000);
        assert_linear("networks", 500, 20.0, |n| time_to_check(&file(n)));
    }
    // Functions too: each was parsed in a window to the next `block` or `network`, which a file
    // of functions has only at its end (5,000 took 13 s in a debug build, now 1.3 s).
    let functions = |n: usize| {
        let defs: String = (0..n).map(|i| format!("fn f{i}(x) {{\n    x + {i}\n}}\n\n")).collect();
        defs + &network("relu")
    };
    assert_linear("functions", 500, 20.0, |n| time_to_check(&functions(n)));
}

/// `nnc graph` stays near linear in the block instances: each box's and cluster's place is a
/// look-up by name (1,200 instances took over 60 s in a debug build, a scan of every cluster
/// for every box and cluster; now 0.15 s).
#[test]
fn drawing_many_block_instances_stays_linear() {
    let time = |n: usize| {
        let calls = "    b\n".repeat(n);
        let text =
            format!("block b {{\n    x = relu\n    x\n}}\n\nnetwork t {{\n    input [N, 4]\n{calls}}}\n");
        let c = check_text(&text);
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        fastest_of_three(|| {
            let dot = nnc_compiler::back::dot::dot(&c.graphs[0], Default::default());
            assert_eq!(dot.matches("subgraph cluster_").count(), n);
        })
    };
    assert_linear("instances", 300, 24.0, time);
}

/// `emit --target pytorch` stays near linear in the layers: each node's child of its container
/// is looked up (40,000 layers took 12.6 s in a debug build, a scan of the container's children
/// per node; now 1 s).
#[test]
fn exporting_many_layers_to_pytorch_stays_linear() {
    let time = |n: usize| {
        let c = check_text(&format!(
            "network t {{\n    input [N, 4]\n    repeat {n} {{ linear(4) -> relu }}\n}}\n"
        ));
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        fastest_of_three(|| {
            nnc_compiler::back::pytorch::emit(&c.graphs[0], "t.net").unwrap();
        })
    };
    assert_linear("repeats of two layers", 1_000, 24.0, time);
}
