//! What a snapshot test of a model records: every network's table, as `nnc check` prints it,
//! or, for a file that does not check, its diagnostics. `nnc snapshot` writes it to
//! insta-compatible `.snap` files, and a Rust test pins it with insta without libtorch:
//!
//! ```
//! # let dir = std::env::temp_dir().join("nnc-snapshot-doc");
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("tiny.net");
//! # std::fs::write(&path, "network tiny {\n    input [N, 1, 8, 8]\n    conv2d(4, 3) -> relu\n}\n").unwrap();
//! let table = nnc_compiler::snapshot::of_file(&path, &nnc_compiler::Options::default()).unwrap();
//! assert!(table.contains("[N, 4, 6, 6]"));
//! // In a user's test: insta::assert_snapshot!(table);
//! ```

use std::path::Path;

use crate::back::render::{self, Style};
use crate::back::report;
use crate::{compile, Compilation, Options, Root};

/// The tables of every network of `path`, one after another; `Err` holds the diagnostics,
/// rendered as plain text, when the file has errors (warnings are rendered after the tables).
pub fn of_file(path: &Path, options: &Options) -> Result<String, String> {
    of(&compile(Root::Path(path), options))
}

/// What a snapshot records of a compilation (see [`of_file`]).
pub fn of(compilation: &Compilation) -> Result<String, String> {
    let diagnostics = render::render(&compilation.diagnostics, &compilation.sources, Style::Plain);
    if compilation.has_errors() {
        return Err(diagnostics);
    }
    let tables: Vec<String> =
        compilation.graphs.iter().map(|g| report::render_table(&report::report(g, None))).collect();
    let mut text = tables.join("\n");
    if !compilation.diagnostics.is_empty() {
        text += "\n";
        text += &diagnostics;
    }
    Ok(text)
}
