//! The source files of one compilation, addressed by [`FileId`], and locations in them.

use std::path::{Path, PathBuf};

use nnc_grammar::Span;
use serde::Serialize;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FileId(pub usize);

/// A span in a particular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}

impl Loc {
    /// The location of what has no source: the nodes of a graph that generated code rebuilds
    /// (`model!`'s `graph()`), which no diagnostic points into.
    pub const NOWHERE: Loc = Loc { file: FileId(usize::MAX), span: Span { start: 0, end: 0 } };

    pub fn new(file: FileId, span: Span) -> Self {
        Loc { file, span }
    }
}

#[derive(Debug)]
pub struct SourceFile {
    /// The path as it is shown to people (as given, or relative to the importing file).
    pub name: String,
    /// Where it was read from; `None` for the standard library and in-memory sources.
    pub path: Option<PathBuf>,
    pub text: String,
    /// The import that loaded it first (`None` for the root): the way back to the root file, for
    /// an editor to show a mistake here at the root's import that led to it.
    pub imported_at: Option<Loc>,
    /// Byte offsets of line starts, for line:column lookups.
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Every file of one compilation.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file. Bytes that are not UTF-8 are replaced by U+FFFD, so that the file can still
    /// be shown in diagnostics; the caller reports them. A lone `\r` ending a line is kept as a
    /// `\n` ([`nnc_grammar::unify_line_ends`]), so that the parser, the line numbers and the
    /// rendered source see the lines an editor shows, at the same offsets.
    pub fn add(&mut self, name: impl Into<String>, path: Option<PathBuf>, text: String) -> FileId {
        let text = match nnc_grammar::has_lone_cr(&text) {
            true => nnc_grammar::unify_line_ends(&text).into_owned(),
            false => text,
        };
        let line_starts = nnc_grammar::line_starts(&text);
        self.files.push(SourceFile { name: name.into(), path, text, imported_at: None, line_starts });
        FileId(self.files.len() - 1)
    }

    /// Adds a file that the import at `at` loads.
    pub fn add_imported(
        &mut self,
        name: impl Into<String>,
        path: Option<PathBuf>,
        text: String,
        at: Loc,
    ) -> FileId {
        let id = self.add(name, path, text);
        self.files[id.0].imported_at = Some(at);
        id
    }

    /// The import of `root` through which `file` was loaded, directly or by a chain of imports;
    /// `None` for `root` itself and for a file it did not load.
    pub fn import_in(&self, root: FileId, file: FileId) -> Option<Loc> {
        let mut at = self.files.get(file.0)?.imported_at?;
        // Each link leads to a file added before, so the walk ends.
        while at.file != root {
            at = self.files.get(at.file.0)?.imported_at?;
        }
        Some(at)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i), f))
    }

    pub fn find_path(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|f| f.path.as_deref() == Some(path)).map(FileId)
    }

    /// `file:line:col` of a location.
    pub fn describe(&self, loc: Loc) -> String {
        let file = self.get(loc.file);
        let (line, col) = file.line_col(loc.span.start);
        format!("{}:{line}:{col}", file.name)
    }

    /// The source text a location covers.
    pub fn snippet(&self, loc: Loc) -> &str {
        self.get(loc.file).text.get(loc.span.start..loc.span.end).unwrap_or("")
    }
}
