//! One open document checked: its compilation, traced (what each expression gave, for every
//! network, before any error as well), the syntax tree and line index of each of its files,
//! and the traced values indexed by where they were written. Made again on each change; every
//! request reads the latest.

use std::path::PathBuf;
use std::sync::Arc;

use lsp_types::{Location, Uri};
use nnc_compiler::trace::{Expansion, Traced};
use nnc_compiler::{
    compile_cached, Compilation, FileId, Loc, Options, ParseCache, Root, MAX_FILE_BYTES, STD_MODULES,
};
use nnc_grammar::ast::{DefKind, Definition, File};
use nnc_grammar::Span;

use super::text::LineIndex;
use super::uri;

/// One file of a compilation, as the server reads it.
pub struct Source {
    /// How the protocol names it: the document's own URI for the root, a `file:` URI for an
    /// import, the cached copy's for a standard module (`None` if none could be written).
    pub uri: Option<Uri>,
    pub lines: LineIndex,
    /// The compiler's own tree of the file, shared with it.
    pub ast: Arc<File>,
}

pub struct Analysis {
    pub compilation: Compilation,
    /// By `FileId`: the document is file 0.
    pub sources: Vec<Source>,
    /// For each place an expression gave a tensor: the (expansion, value) indices of what it
    /// gave, once per block instance or iteration. Made on each keystroke from thousands of
    /// values, with few places (a block's body gives a value per instance), so hashed fast.
    values: foldhash::HashMap<(FileId, Span), Vec<(usize, usize)>>,
}

/// The document itself, in every analysis.
pub const ROOT: FileId = FileId(0);

impl Analysis {
    /// `parses` gives the files whose text it has seen parsed, and keeps the others'. `open`:
    /// the open documents' canonical paths, whose URIs name those files when imported.
    pub fn new(doc: &Uri, text: &str, parses: &mut ParseCache, open: &[(PathBuf, Uri)]) -> Analysis {
        let path = uri::to_path(doc);
        let name = path
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(|| uri::file_name(doc), |n| n.to_string_lossy().into_owned());
        let dir: Option<PathBuf> = path.as_ref().and_then(|p| p.parent().map(PathBuf::from));
        let options = Options { trace: true, ..Options::default() };
        let compilation =
            compile_cached(Root::Text { name: &name, text, dir: dir.as_deref() }, &options, parses);
        let sources = compilation
            .sources
            .files()
            .map(|(id, file)| {
                let uri = if id == ROOT {
                    Some(doc.clone())
                } else if let Some(path) = &file.path {
                    // The editor's spelling where it has the file open: URIs are compared as
                    // text, and clients encode differently (`(` or `%28`).
                    let open = open.iter().find(|(p, _)| p == path).map(|(_, doc)| doc.clone());
                    open.or_else(|| uri::from_path(path))
                } else if STD_MODULES.iter().any(|(name, _)| *name == file.name) {
                    uri::std_path(&file.name).and_then(|p| uri::from_path(&p))
                } else {
                    None
                };
                // A file the compiler did not parse (one not UTF-8 is shown lossily) is parsed
                // here, as it reads; not one over the size limit, which it refused for that.
                let ast = compilation.trees.get(id.0).cloned().flatten();
                let parse = || match file.text.len() as u64 > MAX_FILE_BYTES {
                    true => File::default(),
                    false => nnc_grammar::parse_file(&file.text).0,
                };
                let ast = ast.unwrap_or_else(|| Arc::new(parse()));
                Source { uri, lines: LineIndex::new(&file.text), ast }
            })
            .collect();
        let mut values: foldhash::HashMap<(FileId, Span), Vec<(usize, usize)>> = Default::default();
        for (e, expansion) in compilation.expansions.iter().enumerate() {
            for (v, traced) in expansion.values.iter().enumerate() {
                values.entry((traced.loc.file, traced.loc.span)).or_default().push((e, v));
            }
        }
        Analysis { compilation, sources, values }
    }

    pub fn text(&self, file: FileId) -> &str {
        &self.compilation.sources.get(file).text
    }

    /// The file of this compilation that a URI names.
    pub fn file_of(&self, uri: &Uri) -> Option<FileId> {
        let path = uri::to_path(uri);
        self.sources.iter().position(|s| s.uri.as_ref() == Some(uri)).map(FileId).or_else(|| {
            let path = std::fs::canonicalize(path?).ok()?;
            self.compilation.sources.find_path(&path)
        })
    }

    pub fn location(&self, loc: Loc) -> Option<Location> {
        let source = self.sources.get(loc.file.0)?;
        let range = source.lines.range(self.text(loc.file), loc.span);
        Some(Location::new(source.uri.clone()?, range))
    }

    /// What the expression written at `span` gave, each time it was evaluated.
    pub fn values_at(&self, file: FileId, span: Span) -> impl Iterator<Item = (&Expansion, &Traced)> {
        let expansions = &self.compilation.expansions;
        self.values
            .get(&(file, span))
            .into_iter()
            .flatten()
            .map(|&(e, v)| (&expansions[e], &expansions[e].values[v]))
    }

    /// The smallest span of `file` that covers `offset` and gave a tensor.
    pub fn covering(&self, file: FileId, offset: usize) -> Option<Span> {
        self.values
            .keys()
            .filter(|(f, span)| *f == file && span.start <= offset && offset <= span.end)
            .map(|&(_, span)| span)
            .min_by_key(|span| (span.end - span.start, span.start))
    }

    /// A block or function of this compilation by name: the first defined, as the compiler
    /// resolves it.
    pub fn block(&self, name: &str) -> Option<(FileId, &Definition)> {
        self.sources.iter().enumerate().find_map(|(i, s)| {
            let def = s.ast.definitions.iter().find(|d| d.kind != DefKind::Network && d.name.name == name)?;
            Some((FileId(i), def))
        })
    }

    /// Every block and function this compilation knows, each once.
    pub fn blocks(&self) -> impl Iterator<Item = (FileId, &Definition)> {
        let mut seen = std::collections::HashSet::new();
        self.sources
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.ast.definitions.iter().map(move |d| (FileId(i), d)))
            .filter(move |(_, d)| d.kind != DefKind::Network && seen.insert(d.name.name.clone()))
    }

    /// How a file is shown: its name in the compilation (`std.resnet`, `blocks/mine.net`).
    pub fn file_name(&self, file: FileId) -> &str {
        &self.compilation.sources.get(file).name
    }
}
