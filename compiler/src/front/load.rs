//! Loading a program: the root file, its imports (files and standard-library modules), and an
//! index of every definition by name, which reports redefinitions with both places.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nnc_grammar::ast::{DefKind, Definition, File, ImportTarget};
use nnc_grammar::{parse_file, Span, SyntaxError};

use super::messages::Error;
use crate::diagnostic::{Code, Diagnostic};
use crate::input::{self, InputError};
use crate::ops;
use crate::source::{FileId, Loc, SourceMap};

/// Files larger than this are refused: unread when the file system gives their size, else as
/// soon as the read passes it; a text given in memory (an editor's document) too, unparsed.
/// pest's parse takes up to 500 bytes of memory per byte of a file of nested brackets, so the
/// bound is a bound on memory too: 1 GB at most, for a file 100 times the largest model here.
pub const MAX_FILE_BYTES: u64 = 2 << 20;
/// How long a chain of imports may be.
pub const MAX_IMPORT_DEPTH: usize = 64;

/// The standard library: modules written in the language itself, compiled into nnc.
pub const STD_MODULES: &[(&str, &str)] = &[
    ("std.resnet", include_str!("../../std/resnet.net")),
    ("std.inception", include_str!("../../std/inception.net")),
    ("std.vgg", include_str!("../../std/vgg.net")),
    ("std.nin", include_str!("../../std/nin.net")),
    ("std.mobilenet", include_str!("../../std/mobilenet.net")),
    ("std.convnext", include_str!("../../std/convnext.net")),
    ("std.transformer", include_str!("../../std/transformer.net")),
    ("std.unet", include_str!("../../std/unet.net")),
    ("std.shufflenet", include_str!("../../std/shufflenet.net")),
];

/// Names the language reserves for its own functions, which blocks may not take.
pub const RESERVED: &[&str] = &[
    "min",
    "max",
    "abs",
    "round",
    "int",
    "floor",
    "ceil",
    "sqrt",
    "cat",
    "stack",
    "chunk",
    "split",
    "matmul",
    "scaled_dot_product_attention",
    "einsum",
];

/// The parser's syntax errors of a file as diagnostics (`nnc fmt` reports them so too).
pub fn syntax_diagnostics(file: FileId, errors: Vec<SyntaxError>) -> Vec<Diagnostic> {
    errors
        .into_iter()
        .map(|e| {
            let mut d = Diagnostic::error(Code::Syntax, e.message).primary(Loc::new(file, e.span), e.label);
            if let Some((span, label)) = e.related {
                d = d.secondary(Loc::new(file, span), label);
            }
            d.hint = e.hint;
            d
        })
        .collect()
}

/// Where the root source comes from.
pub enum Root<'a> {
    Path(&'a Path),
    /// A file read from `path` but shown as `name` (the `model!` macro reads paths relative to
    /// the crate and shows them so).
    Named {
        path: &'a Path,
        name: &'a str,
    },
    /// Text held in memory (tests, inline macros); imports resolve against `dir`.
    Text {
        name: &'a str,
        text: &'a str,
        dir: Option<&'a Path>,
    },
}

/// Files parsed before, for a caller that compiles again and again (the language server, on
/// each keystroke): a text parsed once is not parsed again, whichever file it is, so that the
/// `std` modules and the imports left unchanged cost nothing. Exact by construction: the key
/// is the whole text, and a parse depends on nothing else.
#[derive(Default)]
pub struct ParseCache {
    entries: HashMap<String, Parsed>,
}

struct Parsed {
    ast: Arc<File>,
    errors: Vec<SyntaxError>,
    /// Whether a compilation parsed this text since the last [`ParseCache::sweep`].
    used: bool,
}

impl ParseCache {
    fn parse(&mut self, text: &str) -> (Arc<File>, Vec<SyntaxError>) {
        if let Some(parsed) = self.entries.get_mut(text) {
            parsed.used = true;
            return (parsed.ast.clone(), parsed.errors.clone());
        }
        let (ast, errors) = parse_file(text);
        let ast = Arc::new(ast);
        let parsed = Parsed { ast: ast.clone(), errors: errors.clone(), used: true };
        self.entries.insert(text.to_string(), parsed);
        (ast, errors)
    }

    /// Forgets the texts that no compilation parsed since the last sweep, so that a file
    /// edited key by key does not keep every version it went through.
    pub fn sweep(&mut self) {
        self.entries.retain(|_, parsed| std::mem::replace(&mut parsed.used, false));
    }
}

/// All parsed files and the definitions they hold.
#[derive(Default)]
pub struct Program {
    /// Parsed files, indexed by `FileId`; `None` for files that could not be read. Shared with
    /// a [`ParseCache`], if the compilation had one.
    asts: Vec<Option<Arc<File>>>,
    /// Every block, by name.
    pub blocks: HashMap<String, (FileId, usize)>,
    /// The networks of the root file, in order.
    pub networks: Vec<(FileId, usize)>,
    /// Blocks whose definitions had syntax errors: calls of them are poisoned silently.
    pub broken_blocks: std::collections::HashSet<String>,
}

impl Program {
    pub fn definition(&self, (file, index): (FileId, usize)) -> &Definition {
        &self.asts[file.0].as_ref().expect("a parsed file").definitions[index]
    }

    /// The syntax tree of each file, by `FileId`.
    pub fn into_trees(self) -> Vec<Option<Arc<File>>> {
        self.asts
    }
}

struct Loader<'s, 'c> {
    sources: &'s mut SourceMap,
    cache: Option<&'c mut ParseCache>,
    program: Program,
    diags: Vec<Diagnostic>,
    /// Files being loaded, outermost first, with the import that led to the next one.
    stack: Vec<(FileId, Option<Loc>)>,
    /// Where each block was defined, for redefinition errors.
    block_locs: HashMap<String, Loc>,
}

/// Reads and parses the root and everything it imports, and indexes the definitions.
pub fn load(
    sources: &mut SourceMap,
    root: Root,
    cache: Option<&mut ParseCache>,
) -> (Program, Vec<Diagnostic>) {
    let mut loader = Loader {
        sources,
        cache,
        program: Program::default(),
        diags: Vec::new(),
        stack: Vec::new(),
        block_locs: HashMap::new(),
    };
    let root_id = match root {
        Root::Path(path) => loader.read(path, path.display().to_string(), None),
        Root::Named { path, name } => loader.read(path, name.to_string(), None),
        Root::Text { name, text, dir } => {
            // In `dir`, whatever folders `name` shows (`model!` shows the Rust file's path).
            let path = dir.map(|d| d.join(Path::new(name).file_name().unwrap_or(name.as_ref())));
            let id = loader.sources.add(name, path, text.to_string());
            let size = text.len() as u64;
            if size > MAX_FILE_BYTES {
                let max = MAX_FILE_BYTES;
                loader.diags.push(Error::TooLarge { name, size: Some(size), max, import: None }.into());
            }
            (size <= MAX_FILE_BYTES).then_some(id)
        }
    };
    if let Some(root_id) = root_id {
        loader.parse_and_index(root_id, true);
    }
    (loader.program, loader.diags)
}

impl Loader<'_, '_> {
    /// Reads a file into the source map; reports unreadable, oversized and non-UTF-8 files,
    /// and paths that are no regular file (a FIFO would hang the read, `/dev/zero` never end).
    fn read(&mut self, path: &Path, name: String, import: Option<Loc>) -> Option<FileId> {
        let bytes = match input::read_regular(path, MAX_FILE_BYTES) {
            Ok(bytes) => input::without_bom(bytes),
            Err(InputError::Directory) => {
                self.diags.push(Error::IsDirectory { name: &name, import }.into());
                return None;
            }
            Err(InputError::NotRegular { kind }) => {
                self.diags.push(Error::NotRegular { name: &name, kind, import }.into());
                return None;
            }
            Err(InputError::TooLarge { size, max }) => {
                self.diags.push(Error::TooLarge { name: &name, size, max, import }.into());
                return None;
            }
            Err(InputError::Io(error)) => {
                // A missing import is most often a path taken as relative to the wrong folder.
                let folder = (error.kind() == std::io::ErrorKind::NotFound && import.is_some())
                    .then(|| parent_name(&name));
                self.diags.push(Error::Unreadable { name: &name, error: &error, import, folder }.into());
                return None;
            }
        };
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut add = |name, text| match import {
            Some(at) => self.sources.add_imported(name, Some(canonical.clone()), text, at),
            None => self.sources.add(name, Some(canonical.clone()), text),
        };
        match String::from_utf8(bytes) {
            Ok(text) => Some(add(name, text)),
            Err(e) => {
                // Keep the file, lossily, so that the diagnostic can show where the bad byte is.
                let at = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let id = add(name.clone(), text);
                let width = self.sources.get(id).text[at..].chars().next().map_or(0, char::len_utf8);
                let byte = e.as_bytes()[at];
                let at = Loc::new(id, Span::new(at, at + width));
                self.diags.push(Error::NotUtf8 { name: &name, byte, at }.into());
                None
            }
        }
    }

    fn parse_and_index(&mut self, file: FileId, is_root: bool) {
        let text = &self.sources.get(file).text;
        let (ast, errors) = match self.cache.as_deref_mut() {
            Some(cache) => cache.parse(text),
            None => {
                let (ast, errors) = parse_file(text);
                (Arc::new(ast), errors)
            }
        };
        self.diags.extend(syntax_diagnostics(file, errors));
        while self.program.asts.len() <= file.0 {
            self.program.asts.push(None);
        }
        self.stack.push((file, None));
        for import in &ast.imports {
            let at = Loc::new(file, import.span);
            self.stack.last_mut().expect("current file").1 = Some(at);
            self.import(file, &import.target, at);
        }
        self.stack.pop();
        self.program.broken_blocks.extend(ast.broken_blocks.iter().cloned());
        for (index, def) in ast.definitions.iter().enumerate() {
            match def.kind {
                // Functions share the blocks' names: a call finds either.
                DefKind::Block | DefKind::Function => self.index_block(file, index, def),
                DefKind::Network if is_root => self.program.networks.push((file, index)),
                DefKind::Network => {}
            }
        }
        self.program.asts[file.0] = Some(ast);
    }

    fn import(&mut self, from: FileId, target: &ImportTarget, at: Loc) {
        if self.stack.len() > MAX_IMPORT_DEPTH {
            self.diags.push(Error::ImportsTooDeep { max: MAX_IMPORT_DEPTH, at }.into());
            return;
        }
        let existing = match target {
            ImportTarget::Std(module) => {
                let Some((name, text)) = STD_MODULES.iter().find(|(name, _)| name == module) else {
                    self.diags.push(Error::NoStdModule { module, at }.into());
                    return;
                };
                let loaded =
                    self.sources.files().find(|(_, f)| f.path.is_none() && f.name == *name).map(|(id, _)| id);
                match loaded {
                    Some(id) => Some(id),
                    None => {
                        let id = self.sources.add_imported(*name, None, text.to_string(), at);
                        self.parse_and_index(id, false);
                        None
                    }
                }
            }
            ImportTarget::File(rel) if rel.is_empty() => {
                self.diags.push(Error::EmptyImport { at }.into());
                return;
            }
            ImportTarget::File(rel) => {
                let base =
                    self.sources.get(from).path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
                let path = base.clone().unwrap_or_default().join(rel);
                let display = join_display(&self.sources.get(from).name, rel);
                let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                match self.sources.find_path(&canonical) {
                    Some(id) => Some(id),
                    None => {
                        if let Some(id) = self.read(&path, display, Some(at)) {
                            self.parse_and_index(id, false);
                        }
                        None
                    }
                }
            }
        };
        // A file already loaded is either finished (fine: its blocks are indexed) or still on
        // the stack, which makes a cycle.
        if let Some(id) = existing {
            if let Some(pos) = self.stack.iter().position(|(f, _)| *f == id) {
                // The imports along the cycle, each with the name of the file that makes it.
                let links: Vec<(Loc, &str)> = self.stack[pos..]
                    .iter()
                    .filter_map(|(file, import)| {
                        Some((import.filter(|l| *l != at)?, self.sources.get(*file).name.as_str()))
                    })
                    .collect();
                let file = &self.sources.get(id).name;
                self.diags.push(Error::ImportCycle { file, at, links }.into());
            }
        }
    }

    fn index_block(&mut self, file: FileId, index: usize, def: &Definition) {
        let name = &def.name.name;
        let at = Loc::new(file, def.name.span);
        if ops::lookup(name).is_some() || RESERVED.contains(&name.as_str()) {
            self.diags.push(Error::HidesBuiltin { name, at }.into());
            return;
        }
        if let Some(first) = self.block_locs.get(name) {
            self.diags.push(Error::DefinedTwice { name, at, first: *first }.into());
            return;
        }
        self.block_locs.insert(name.clone(), at);
        self.program.blocks.insert(name.clone(), (file, index));
    }
}

fn parent_name(name: &str) -> String {
    match Path::new(name).parent().map(|p| p.display().to_string()) {
        Some(p) if !p.is_empty() => p,
        _ => ".".into(),
    }
}

/// The path of an import as shown to people: relative to the importing file's shown path.
fn join_display(from: &str, rel: &str) -> String {
    let joined: PathBuf = Path::new(from).parent().unwrap_or(Path::new("")).join(rel);
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other.as_os_str()),
        }
    }
    parts.iter().collect::<PathBuf>().display().to_string()
}
