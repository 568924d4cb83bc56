//! Every model in `tests/warn/` checks, with at least one warning and no error: its rendered
//! warnings, as an insta snapshot. Denied, each warning is an error and the network has no
//! graph; allowed, it is gone.

mod common;

use common::{assert_spans_in_bounds, compile_file};
use nnc_compiler::back::render::{render, Style};
use nnc_compiler::{compile, Options, Root};

#[test]
fn wiring_lints() {
    insta::glob!("warn/*.net", |path| {
        let relative = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path);
        let c = compile_file(relative, &[]);
        assert!(!c.diagnostics.is_empty(), "{} should warn", path.display());
        assert!(!c.has_errors(), "{} should check: {:?}", path.display(), c.diagnostics);
        assert_eq!(c.graphs.len(), c.networks_defined, "a warning keeps the graph");
        assert_spans_in_bounds(&c);
        insta::assert_snapshot!(render(&c.diagnostics, &c.sources, Style::Plain));

        let denied = compile(Root::Path(relative), &Options { deny_warnings: true, ..Options::default() });
        assert!(denied.diagnostics.iter().all(|d| d.is_error()), "denied warnings are errors");
        assert!(denied.graphs.len() < denied.networks_defined, "a denied warning stops its network");

        let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code).collect();
        let allowed = compile(Root::Path(relative), &Options { allow: codes, ..Options::default() });
        assert!(allowed.diagnostics.is_empty(), "allowed warnings are not reported");
    });
}

/// No lint fires on the shipped models, the zoo's included, which use every block of `std/`.
#[test]
fn no_warning_on_the_models() {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let files = [models.clone(), models.join("zoo")]
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "net"));
    for path in files {
        let c = compile(Root::Path(&path), &Options::default());
        assert!(
            c.diagnostics.is_empty(),
            "{}: {}",
            path.display(),
            render(&c.diagnostics, &c.sources, Style::Plain)
        );
    }
}
