//! Every broken model in `tests/err/`: its rendered diagnostics, as an insta snapshot, and the
//! properties every diagnostic must have.

mod common;

use common::{assert_spans_in_bounds, compile_file};
use nnc_compiler::back::render::{render, Style};

#[test]
fn broken_models() {
    insta::glob!("err/*.net", |path| {
        let c = compile_file(path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path), &[]);
        assert!(!c.diagnostics.is_empty(), "{} should not check", path.display());
        assert!(c.graphs.is_empty() || c.graphs.len() < c.networks_defined);
        assert_spans_in_bounds(&c);
        for d in &c.diagnostics {
            assert!(!d.labels.is_empty(), "a diagnostic without a location: {d:?}");
        }
        insta::assert_snapshot!(render(&c.diagnostics, &c.sources, Style::Plain));
    });
}
