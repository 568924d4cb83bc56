//! Helpers shared by the workspace tests.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;

use nnc_compiler::{compile, Compilation, Options, Root};

/// Compiles a file given relative to the `tests/` folder, with `name=value` overrides.
pub fn compile_file(path: &Path, overrides: &[(&str, &str)]) -> Compilation {
    let overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    compile(Root::Path(path), &Options { overrides, ..Options::default() })
}

/// Checks that every label of every diagnostic lies inside its file, on character boundaries.
pub fn assert_spans_in_bounds(c: &Compilation) {
    for d in &c.diagnostics {
        for label in &d.labels {
            let text = &c.sources.get(label.loc.file).text;
            let span = label.loc.span;
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "span {span:?} outside its file: {d:?}"
            );
            assert!(
                text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
                "span {span:?} splits a character"
            );
        }
    }
}
