//! `nnc fmt` over every `.net` file of the repository: the format of a format is itself, and the
//! formatted file compiles to the same graphs (names, ops, attributes, shapes, parameters:
//! everything but source locations) with the same diagnostics as the original. Files that do
//! not parse are refused with their syntax errors. The models and the standard library are
//! kept formatted (CI runs `nnc fmt --check models compiler/std`). A property test formats
//! generated chains.

use std::path::{Path, PathBuf};

use nnc_compiler::{compile, Compilation, Options, Root};
use nnc_grammar::format::{format, FormatError};
use proptest::prelude::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn net_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("a folder").map(|e| e.expect("an entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            net_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "net") {
            out.push(path);
        }
    }
}

fn corpus() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in
        ["models", "compiler/std", "tests/ok", "tests/warn", "tests/err", "nnc/tests", "docs", "examples"]
    {
        let dir = root().join(dir);
        if dir.is_dir() {
            net_files(&dir, &mut files);
        }
    }
    assert!(files.len() > 100, "only {} .net files found", files.len());
    files
}

/// A compilation with its source locations left out: what the file means.
fn meaning(c: &Compilation) -> (String, Vec<String>) {
    let graphs = without_spans(&format!("{:?}", c.graphs));
    let diagnostics = c.diagnostics.iter().map(|d| format!("{:?} {}", d.code, d.message)).collect();
    (graphs, diagnostics)
}

fn without_spans(debug: &str) -> String {
    let mut out = String::new();
    let mut rest = debug;
    while let Some(at) = rest.find("Span { start: ") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = rest.find('}').map_or("", |close| &rest[close + 1..]);
    }
    out + rest
}

fn compile_text(path: &Path, text: &str) -> Compilation {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model.net");
    compile(Root::Text { name, text, dir: path.parent() }, &Options::default())
}

#[test]
fn every_file_formats_idempotently_and_keeps_its_meaning() {
    let (mut formatted, mut refused) = (0, 0);
    for path in corpus() {
        let shown = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
        let Ok(text) = String::from_utf8(std::fs::read(&path).expect("readable")) else {
            continue; // tests/err/not-utf8.net
        };
        match format(&text) {
            Ok(out) => {
                assert_eq!(format(&out).as_ref(), Ok(&out), "{shown}: formatting is not idempotent");
                let (before, after) = (compile_text(&path, &text), compile_text(&path, &out));
                assert_eq!(meaning(&before), meaning(&after), "{shown}: formatting changed its meaning");
                formatted += 1;
            }
            Err(FormatError::Syntax(errors)) => {
                assert!(!errors.is_empty());
                assert!(shown.starts_with("tests/err/"), "{shown}: {errors:?}");
                refused += 1;
            }
            Err(FormatError::Internal(why)) => panic!("{shown}: {why}"),
        }
    }
    assert!(formatted > 100 && refused > 0, "{formatted} formatted, {refused} refused");
}

#[test]
fn models_and_the_standard_library_are_formatted() {
    let mut files = Vec::new();
    net_files(&root().join("models"), &mut files);
    net_files(&root().join("compiler/std"), &mut files);
    let changed: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("readable");
            format(&text).as_ref() != Ok(&text)
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(changed.is_empty(), "not formatted (run `nnc fmt models compiler/std`): {changed:?}");
}

/// A comment on every line, and at the end of every line, of every model: kept, in order, and
/// formatting the result twice changes nothing more.
#[test]
fn comments_everywhere_are_kept() {
    for path in corpus().iter().filter(|p| !p.starts_with(root().join("tests/err"))) {
        let text = std::fs::read_to_string(path).expect("readable");
        let commented: String = text.lines().map(|line| format!("# above\n{line} # after\n")).collect();
        // A line that ends inside a string or a comment takes the comment as part of it.
        let Ok(out) = format(&commented) else { continue };
        assert_eq!(format(&out).as_ref(), Ok(&out), "{}", path.display());
        assert_eq!(out.matches("# above").count(), text.lines().count(), "{}", path.display());
    }
}

fn stage() -> impl Strategy<Value = String> {
    let layer = prop_oneof![
        Just("relu".to_string()),
        (1u32..512, 1u32..8).prop_map(|(c, k)| format!("conv2d({c}, {k}, padding={})", k / 2)),
        (1u32..4096).prop_map(|n| format!("linear({n})")),
        Just("_ + in".to_string()),
        Just("(if true { relu } else { gelu })".to_string()),
        (1u32..4).prop_map(|n| format!("repeat {n} {{ batchnorm -> relu }}")),
        Just("cat(_, _ -> conv2d(8, 1), dim=1)".to_string()),
    ];
    let label = prop_oneof![Just(String::new()), "[a-z]{1,12}".prop_map(|l| format!("{l}: "))];
    (label, layer).prop_map(|(l, s)| l + &s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Chains of any length, with line breaks anywhere between their stages.
    #[test]
    fn generated_chains_format_idempotently(
        stages in proptest::collection::vec((stage(), any::<bool>()), 1..30),
        indent in 0usize..3,
    ) {
        let mut chain = String::new();
        for (i, (stage, broken)) in stages.iter().enumerate() {
            if i > 0 {
                chain.push_str(if *broken { "\n  -> " } else { " -> " });
            }
            chain.push_str(stage);
        }
        let body = if indent == 0 { format!("y = {chain}") } else { format!("repeat 2 {{\n{chain}\n}}") };
        let src = format!("network n {{\n    input [N, 8, 16, 16]\n    {body}\n}}\n");
        let out = format(&src).map_err(|e| TestCaseError::fail(format!("{e:?}\n{src}")))?;
        prop_assert_eq!(format(&out), Ok(out.clone()), "{}", out);
        for line in out.lines() {
            // Only a single stage wider than the width may pass it.
            prop_assert!(line.len() <= nnc_grammar::format::WIDTH || !line.trim_start().contains(" -> "), "{}", out);
        }
    }
}
