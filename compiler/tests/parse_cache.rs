//! `compile_cached`, which the language server calls on each keystroke, reuses the parses of
//! texts it saw before: after every edit, of the document or of a file it imports, its result
//! must be exactly a fresh `compile`'s.

use nnc_compiler::{compile, compile_cached, Compilation, Options, ParseCache, Root};

/// Everything a compilation gives, spelt out: any difference shows as a text difference.
fn everything(c: &Compilation) -> String {
    let files: Vec<String> =
        c.sources.files().map(|(id, f)| format!("{id:?} {} {:?}\n{}", f.name, f.path, f.text)).collect();
    format!(
        "{files:#?}\n{:#?}\n{:#?}\n{:#?}\n{}\n{:#?}",
        c.diagnostics, c.graphs, c.expansions, c.networks_defined, c.trees
    )
}

const MAIN: &str = "import std.resnet\nimport \"blocks.net\"\n\nnetwork main(n = 2) {
    input [N, 3, 16, 16]
    stem = conv2d(8, 3, padding=1) -> batchnorm -> relu
    s1 = resnet_stage(8, n, first=true)
    s2 = mine(16)
    head = adaptive_avgpool2d(1) -> flatten -> linear(10)
}\n";

const BLOCKS: &str = "block mine(c) {\n    conv2d(c, 3, padding=1) -> relu\n}\n";

#[test]
fn a_cached_compilation_equals_a_fresh_one_after_every_edit() {
    let dir = std::env::temp_dir().join(format!("nnc-parse-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let blocks = dir.join("blocks.net");
    // Each step: the document's text, the imported file's on disk (`None`: removed), and
    // whether the step has errors (so that the test goes through both kinds of outcome).
    let steps: Vec<(String, Option<String>, bool)> = vec![
        (MAIN.into(), Some(BLOCKS.into()), false),
        // The document edited, the import unchanged: its parse is reused.
        (MAIN.replace("linear(10)", "linear(12)"), Some(BLOCKS.into()), false),
        // A syntax error in the document, then mended.
        (MAIN.replace("linear(10)", "linear(10"), Some(BLOCKS.into()), true),
        (MAIN.into(), Some(BLOCKS.into()), false),
        // The imported file edited: a shape changes.
        (MAIN.into(), Some(BLOCKS.replace("padding=1", "padding=0")), false),
        // A syntax error in the imported file (its block is then poisoned), then mended.
        (MAIN.into(), Some(BLOCKS.replace("-> relu", "-> relu(")), true),
        (MAIN.into(), Some(BLOCKS.into()), false),
        // The document defines the imported file's block too.
        (format!("{MAIN}block mine(c) {{ relu }}\n"), Some(BLOCKS.into()), true),
        // The imported file gone, then back.
        (MAIN.into(), None, true),
        (MAIN.into(), Some(BLOCKS.into()), false),
        // A shape error, found by the expander, not the parser.
        (MAIN.replace("[N, 3, 16, 16]", "[N, 3, 16]"), Some(BLOCKS.into()), true),
        // Back to the start: every text seen before.
        (MAIN.into(), Some(BLOCKS.into()), false),
    ];
    let options = Options { trace: true, ..Options::default() };
    let mut cache = ParseCache::default();
    for (i, (text, imported, errors)) in steps.iter().enumerate() {
        match imported {
            Some(imported) => std::fs::write(&blocks, imported).unwrap(),
            None => {
                let _ = std::fs::remove_file(&blocks);
            }
        }
        let root = || Root::Text { name: "main.net", text, dir: Some(&dir) };
        let cached = compile_cached(root(), &options, &mut cache);
        cache.sweep();
        let fresh = compile(root(), &options);
        assert_eq!(fresh.has_errors(), *errors, "step {i}: {:#?}", fresh.diagnostics);
        assert_eq!(everything(&cached), everything(&fresh), "step {i} differs");
        // Twice in a row, the second wholly from the cache.
        let again = compile_cached(root(), &options, &mut cache);
        assert_eq!(everything(&again), everything(&fresh), "step {i}, again, differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
