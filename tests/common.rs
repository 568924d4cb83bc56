//! Helpers shared by the workspace tests.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

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

/// How long `work` takes at the fastest of three runs: a busy machine only ever slows a run
/// down.
pub fn fastest_of_three(mut work: impl FnMut()) -> Duration {
    let mut run = || {
        let start = Instant::now();
        work();
        start.elapsed()
    };
    (0..3).map(|_| run()).min().expect("three runs")
}

/// Asserts that `time` at `8 × n` is under `bound` times `time` at `n`: linear work takes 8
/// times as long, quadratic 64; the margin absorbs a busy machine. `what` names the units.
pub fn assert_linear(what: &str, n: usize, bound: f64, time: impl Fn(usize) -> Duration) {
    let (small, large) = (time(n), time(8 * n));
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    assert!(ratio < bound, "8 times the {what} took {ratio:.1} times as long ({small:?}, {large:?})");
}
