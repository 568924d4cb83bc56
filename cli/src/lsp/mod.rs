//! `nnc lsp`: a language server over standard input and output, on rust-analyzer's
//! `lsp-server` (its messages and channels) and `lsp-types`. The framing is read in
//! `transport.rs`; the lifecycle (`initialize` once, `shutdown`, then `exit` alone) is kept
//! here, as LSP 3.17 words it.
//!
//! Each open document is checked again after each change, traced, so that every request reads
//! what the compiler computed: diagnostics (`diagnostics.rs`), hovers with shapes
//! (`hover.rs`), inlay hints (`hints.rs`), definitions, references and the outline
//! (`navigate.rs`), completion (`complete.rs`) and formatting (`nnc fmt`'s). `analysis.rs`
//! holds one checked document, `syntax.rs` walks trees, `text.rs` converts positions and
//! `uri.rs` names files. Changes that arrive together are checked once, when no message waits
//! or before a request that follows them.
//! A request's mistake is an error response, never the end of the server: each message is
//! handled under `catch_unwind`, as a last line of defence behind the compiler's own promise
//! never to panic.

// `lsp_types::Uri` caches parts of itself inside, which clippy takes for mutability; its hash and
// equality are those of its text, which never changes.
#![allow(clippy::mutable_key_type)]

mod analysis;
mod complete;
mod diagnostics;
mod hints;
mod hover;
mod navigate;
mod syntax;
mod text;
mod transport;
mod uri;

use std::collections::HashMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, Exit, Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest, Initialize,
    InlayHintRefreshRequest, InlayHintRequest, References, Request as _, Shutdown,
};
use lsp_types::{
    CompletionOptions, CompletionResponse, Diagnostic, DocumentSymbolResponse, GotoDefinitionResponse, OneOf,
    Position, PublishDiagnosticsParams, ServerCapabilities, TextDocumentContentChangeEvent,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions,
    TextEdit, Uri,
};
use nnc_compiler::{FileId, ParseCache};
use nnc_grammar::format::FormatError;
use nnc_grammar::Span;

use self::analysis::{Analysis, ROOT};
use self::text::LineIndex;
use crate::Outcome;

/// One compilation's view of a file: the analysis and the file's id in it.
pub(crate) type View<'a> = (&'a Analysis, FileId);

/// Serves one client on standard input and output until it says `exit`.
pub fn serve() -> io::Result<Outcome> {
    crate::allocator::keep_freed_memory();
    let (connection, threads) = transport::stdio();
    let capabilities = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            ..TextDocumentSyncOptions::default()
        })),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        inlay_hint_provider: Some(OneOf::Left(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["(".into(), ",".into()]),
            ..CompletionOptions::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    };
    let reply = serde_json::json!({
        "capabilities": capabilities,
        "serverInfo": { "name": "nnc", "version": env!("CARGO_PKG_VERSION") },
    });
    let client = match handshake(&connection, reply) {
        Some(Ok(client)) => client,
        Some(Err(outcome)) => {
            drop(connection);
            threads.join()?;
            return Ok(outcome);
        }
        None => {
            // The reader stopped: a broken framing is its error, returned here.
            drop(connection);
            threads.join()?;
            eprintln!("error: nnc lsp: the input ended before `initialize`");
            return Ok(Outcome::UsageError);
        }
    };
    // A check replaced is dropped on a thread of its own: freeing a large network's nodes and
    // traced values is a good part of a check's cost, and no answer needs to wait for it.
    let (graveyard, buried) = mpsc::channel::<Analysis>();
    let undertaker = std::thread::spawn(move || buried.into_iter().for_each(drop));
    let mut server = Server {
        connection: &connection,
        docs: HashMap::new(),
        published: HashMap::new(),
        parses: ParseCache::default(),
        checked: false,
        graveyard,
        refresh_hints: client.refresh_hints,
        refreshes: 0,
        disk_changed: false,
        rechecked: Vec::new(),
        shutting_down: false,
    };
    let outcome = server.run();
    drop(server);
    drop(connection);
    threads.join()?;
    let _ = undertaker.join();
    Ok(outcome)
}

/// An open document: its text as the editor has it, and its analysis (`None` until the
/// change is checked).
struct Document {
    text: String,
    version: i32,
    analysis: Option<Analysis>,
}

struct Server<'c> {
    connection: &'c Connection,
    docs: HashMap<Uri, Document>,
    /// The diagnostics last published, by file.
    published: HashMap<Uri, Vec<Diagnostic>>,
    /// The files parsed by recent checks: the next check parses again only the texts that
    /// changed (on a keystroke, the document itself), not the `std` modules and imports.
    parses: ParseCache,
    /// Whether a document was checked since the parses were last swept.
    checked: bool,
    /// Where analyses that are out of date go to be dropped.
    graveyard: mpsc::Sender<Analysis>,
    /// Whether the client asks again for inlay hints when told to (`workspace/inlayHint/refresh`).
    refresh_hints: bool,
    /// The refreshes asked for so far, which number their requests.
    refreshes: u64,
    /// Whether a file was saved or changed on disk since the last check.
    disk_changed: bool,
    /// The documents checked since diagnostics were last published.
    rechecked: Vec<Uri>,
    /// Whether `shutdown` was answered: from then on only `exit` is taken.
    shutting_down: bool,
}

/// What the client said of itself in `initialize` that changes what the server sends.
struct ClientSays {
    refresh_hints: bool,
}

/// The protocol's opening, before the session proper: requests other than `initialize` are
/// refused as not yet initialised, notifications other than `exit` dropped, and `initialize`
/// answered with `reply`. `initialized`, the client's acknowledgement, is not waited for: a
/// message the client sends before it is read as any other. `Err`: `exit` came first (status 1,
/// as the protocol asks of an exit without `shutdown`); `None`: the input ended.
fn handshake(connection: &Connection, reply: serde_json::Value) -> Option<Result<ClientSays, Outcome>> {
    loop {
        let message = connection.receiver.recv().ok()?;
        match message {
            Message::Request(request) if request.method == Initialize::METHOD => {
                let params = serde_json::from_value::<lsp_types::InitializeParams>(request.params).ok();
                let refresh_hints = params
                    .and_then(|p| p.capabilities.workspace?.inlay_hint?.refresh_support)
                    .unwrap_or(false);
                let _ = connection.sender.send(Response::new_ok(request.id, reply).into());
                return Some(Ok(ClientSays { refresh_hints }));
            }
            Message::Request(request) => {
                let message = format!("`{}` before `initialize`", request.method);
                let refused = Response::new_err(request.id, ErrorCode::ServerNotInitialized as i32, message);
                let _ = connection.sender.send(refused.into());
            }
            Message::Notification(n) if n.method == Exit::METHOD => return Some(Err(Outcome::ModelError)),
            Message::Notification(_) | Message::Response(_) => {}
        }
    }
}

/// Whether the loop goes on.
enum Flow {
    Continue,
    Exit(Outcome),
}

impl Server<'_> {
    fn run(&mut self) -> Outcome {
        loop {
            let Ok(message) = self.connection.receiver.recv() else {
                return Outcome::ModelError;
            };
            if let Flow::Exit(outcome) = self.take(message) {
                return outcome;
            }
            // Changes that arrived together are checked once, when none waits.
            loop {
                match self.connection.receiver.try_recv() {
                    Ok(message) => {
                        if let Flow::Exit(outcome) = self.take(message) {
                            return outcome;
                        }
                    }
                    Err(e) if e.is_empty() => break,
                    Err(_) => return Outcome::ModelError,
                }
            }
            self.check_round();
        }
    }

    /// Handles a message of the round; a request after the changes that came before it are
    /// checked, so that their diagnostics and hint refreshes reach the client before its
    /// answer. The answer needs its own document's check anyway; it waits for the other
    /// changed documents' too, a few milliseconds each.
    fn take(&mut self, message: Message) -> Flow {
        let pending = self.disk_changed
            || !self.rechecked.is_empty()
            || self.docs.values().any(|d| d.analysis.is_none());
        if matches!(message, Message::Request(_)) && pending {
            self.check_round();
        }
        self.guarded(message)
    }

    /// Checks the documents that changed and publishes what differs.
    fn check_round(&mut self) {
        // After `shutdown`, nothing is sent but what `exit` ends.
        if self.shutting_down {
            return;
        }
        if catch_unwind(AssertUnwindSafe(|| self.check_and_publish())).is_err() {
            // Keep going with no stale analysis left.
            self.docs.values_mut().for_each(|d| bury(&self.graveyard, &mut d.analysis));
        }
        // What the checks did not parse is forgotten; not after a round of requests alone,
        // which would forget what the next keystroke's check needs.
        if std::mem::take(&mut self.checked) {
            self.parses.sweep();
        }
    }

    /// Handles one message; a panic becomes an error response to a request.
    fn guarded(&mut self, message: Message) -> Flow {
        let id = match &message {
            Message::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        match catch_unwind(AssertUnwindSafe(|| self.handle(message))) {
            Ok(flow) => flow,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if let Some(id) = id {
                    let message = format!("nnc lsp: internal error, please report it: {why}");
                    self.send(Response::new_err(id, ErrorCode::InternalError as i32, message));
                }
                Flow::Continue
            }
        }
    }

    fn handle(&mut self, message: Message) -> Flow {
        match message {
            // After `shutdown`, "the server should error with InvalidRequest" (LSP 3.17).
            Message::Request(request) if self.shutting_down => {
                let message = format!("`{}` after `shutdown`", request.method);
                self.send(Response::new_err(request.id, ErrorCode::InvalidRequest as i32, message));
            }
            Message::Request(request) if request.method == Shutdown::METHOD => {
                self.shutting_down = true;
                self.send(Response::new_ok(request.id, ()));
            }
            Message::Request(request) if request.method == Initialize::METHOD => {
                let message = "`initialize` may be sent only once".to_string();
                self.send(Response::new_err(request.id, ErrorCode::InvalidRequest as i32, message));
            }
            Message::Request(request) => {
                let response = self.request(request);
                self.send(response);
            }
            // Status 0 after `shutdown`, 1 without it.
            Message::Notification(n) if n.method == Exit::METHOD => {
                return Flow::Exit(if self.shutting_down { Outcome::Ok } else { Outcome::ModelError })
            }
            Message::Notification(_) if self.shutting_down => {}
            Message::Notification(n) => self.notification(n),
            Message::Response(_) => {}
        }
        Flow::Continue
    }

    fn send(&self, message: impl Into<Message>) {
        // The writer ends only when the client is gone, and then so does the loop.
        let _ = self.connection.sender.send(message.into());
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params) {
                    let doc = Document {
                        text: p.text_document.text,
                        version: p.text_document.version,
                        analysis: None,
                    };
                    self.docs.insert(p.text_document.uri, doc);
                    // The other checks name this file by the editor's URI from now on.
                    self.docs.values_mut().for_each(|d| bury(&self.graveyard, &mut d.analysis));
                }
            }
            DidChangeTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params) {
                    if let Some(doc) = self.docs.get_mut(&p.text_document.uri) {
                        for change in p.content_changes {
                            apply(&mut doc.text, change);
                        }
                        doc.version = p.text_document.version;
                        bury(&self.graveyard, &mut doc.analysis);
                    }
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params) {
                    if let Some(mut doc) = self.docs.remove(&p.text_document.uri) {
                        bury(&self.graveyard, &mut doc.analysis);
                        // The other checks name this file by nnc's URI again.
                        self.docs.values_mut().for_each(|d| bury(&self.graveyard, &mut d.analysis));
                    }
                }
            }
            // A file saved or changed on disk may be another's import: check everything again.
            DidSaveTextDocument::METHOD | DidChangeWatchedFiles::METHOD => {
                self.disk_changed = true;
                self.docs.values_mut().for_each(|d| bury(&self.graveyard, &mut d.analysis));
            }
            _ => {}
        }
    }

    /// Checks the documents that changed, and publishes the diagnostics that differ from what
    /// was last published: for each file, those of every open document's check that reached
    /// it (an imported file's only from checks that read the text the editor shows).
    fn check_and_publish(&mut self) {
        self.check_all();
        let mut now: HashMap<Uri, Vec<Diagnostic>> = HashMap::new();
        for (uri, doc) in &self.docs {
            let Some(analysis) = &doc.analysis else { continue };
            for (file, diagnostics) in diagnostics::by_file(analysis) {
                if file != *uri {
                    if let Some(open) = self.docs.get(&file) {
                        let same = analysis
                            .file_of(&file)
                            .is_some_and(|f| text::is_shown(analysis.text(f), &open.text));
                        if !same {
                            continue;
                        }
                    }
                }
                let list = now.entry(file).or_default();
                for d in diagnostics {
                    if !list.contains(&d) {
                        list.push(d);
                    }
                }
            }
        }
        let produced: Vec<Uri> = now.keys().cloned().collect();
        let gone: Vec<Uri> = self.published.keys().filter(|u| !now.contains_key(*u)).cloned().collect();
        for uri in gone {
            now.insert(uri, Vec::new());
        }
        for (uri, diagnostics) in &now {
            if self.published.get(uri) != Some(diagnostics) {
                let version = self.docs.get(uri).map(|d| d.version);
                let params =
                    PublishDiagnosticsParams { uri: uri.clone(), diagnostics: diagnostics.clone(), version };
                self.send(Notification::new(PublishDiagnostics::METHOD.to_string(), params));
            }
        }
        // What no check produced any more is forgotten once cleared.
        now.retain(|uri, d| !d.is_empty() || produced.contains(uri));
        self.published = now;
        // A document's hints read the other open documents' checks (a block's shapes come from
        // the network that calls it), and its imports from disk: after a check, the hints of a
        // document that did not change may have. The editor asks again only when told to: when
        // a document checked in this round reads another open one, or a file changed on disk.
        let disk_changed = std::mem::take(&mut self.disk_changed);
        let rechecked = std::mem::take(&mut self.rechecked);
        let reads_another = rechecked.iter().any(|uri| {
            let Some(analysis) = self.docs.get(uri).and_then(|d| d.analysis.as_ref()) else { return false };
            self.docs.keys().any(|other| other != uri && analysis.file_of(other).is_some())
        });
        if self.refresh_hints && (reads_another || (disk_changed && !rechecked.is_empty())) {
            self.refreshes += 1;
            let id = lsp_server::RequestId::from(format!("nnc-refresh-{}", self.refreshes));
            self.send(Request::new(id, InlayHintRefreshRequest::METHOD.to_string(), ()));
        }
    }

    /// The document's analysis, made now if its text changed since.
    fn analysis(&mut self, uri: &Uri) -> Option<&Analysis> {
        if self.docs.get(uri)?.analysis.is_none() {
            let open = self.open_paths();
            let doc = self.docs.get_mut(uri)?;
            analyse(uri, doc, &mut self.parses, &open, &mut self.rechecked);
            self.checked = true;
        }
        self.docs.get(uri)?.analysis.as_ref()
    }

    /// The open documents that are files, by their canonical paths: an import of one is named
    /// by the document's URI, spelled as the editor spells it, not as `uri::from_path` would.
    fn open_paths(&self) -> Vec<(PathBuf, Uri)> {
        let canonical = |doc: &Uri| std::fs::canonicalize(uri::to_path(doc)?).ok();
        self.docs.keys().filter_map(|doc| Some((canonical(doc)?, doc.clone()))).collect()
    }

    /// Every check's view of the document: its own first, then those of the other open
    /// documents that import it as the editor shows it (which give a block's shapes). Empty
    /// unless the checks are up to date (`check_all`).
    fn views(&self, uri: &Uri) -> Vec<View<'_>> {
        let Some(doc) = self.docs.get(uri) else { return Vec::new() };
        let Some(own) = &doc.analysis else { return Vec::new() };
        let mut views = vec![(own, ROOT)];
        for (other_uri, other) in &self.docs {
            if other_uri == uri {
                continue;
            }
            if let Some(analysis) = &other.analysis {
                if let Some(file) =
                    analysis.file_of(uri).filter(|&f| text::is_shown(analysis.text(f), &doc.text))
                {
                    views.push((analysis, file));
                }
            }
        }
        views
    }

    fn offset(&mut self, uri: &Uri, position: Position) -> Option<usize> {
        let analysis = self.analysis(uri)?;
        Some(analysis.sources[ROOT.0].lines.offset(analysis.text(ROOT), position))
    }

    fn request(&mut self, request: Request) -> Response {
        let id = request.id.clone();
        match request.method.as_str() {
            HoverRequest::METHOD => answer::<HoverRequest>(request, |p| {
                let doc = &p.text_document_position_params;
                let offset = self.offset(&doc.text_document.uri, doc.position);
                // Other documents' checks are brought up to date first, for their views.
                self.check_all();
                let views = self.views(&doc.text_document.uri);
                Ok(offset.zip(views.first().copied()).and_then(|(o, (own, _))| hover::hover(own, &views, o)))
            }),
            InlayHintRequest::METHOD => answer::<InlayHintRequest>(request, |p| {
                self.check_all();
                let views = self.views(&p.text_document.uri);
                let Some(&(own, _)) = views.first() else { return Ok(None) };
                let (text, lines) = (own.text(ROOT), &own.sources[ROOT.0].lines);
                let within = Span::new(lines.offset(text, p.range.start), lines.offset(text, p.range.end));
                Ok(Some(hints::hints(own, &views, within)))
            }),
            GotoDefinition::METHOD => answer::<GotoDefinition>(request, |p| {
                let doc = &p.text_document_position_params;
                let Some(offset) = self.offset(&doc.text_document.uri, doc.position) else { return Ok(None) };
                let own = self.analysis(&doc.text_document.uri).expect("analysed");
                Ok(navigate::definition(own, offset).map(GotoDefinitionResponse::Scalar))
            }),
            References::METHOD => answer::<References>(request, |p| {
                let doc = &p.text_document_position;
                let Some(offset) = self.offset(&doc.text_document.uri, doc.position) else { return Ok(None) };
                self.check_all();
                let uri = &doc.text_document.uri;
                let Some(own) = self.docs.get(uri).and_then(|d| d.analysis.as_ref()) else { return Ok(None) };
                let others = self.other_analyses(uri);
                Ok(Some(navigate::references(own, &others, offset, p.context.include_declaration)))
            }),
            Completion::METHOD => answer::<Completion>(request, |p| {
                let doc = &p.text_document_position;
                let Some(offset) = self.offset(&doc.text_document.uri, doc.position) else { return Ok(None) };
                let own = self.analysis(&doc.text_document.uri).expect("analysed");
                Ok(Some(CompletionResponse::Array(complete::complete(own, offset))))
            }),
            DocumentSymbolRequest::METHOD => answer::<DocumentSymbolRequest>(request, |p| {
                let Some(own) = self.analysis(&p.text_document.uri) else { return Ok(None) };
                Ok(Some(DocumentSymbolResponse::Nested(navigate::symbols(own))))
            }),
            Formatting::METHOD => answer::<Formatting>(request, |p| {
                if self.analysis(&p.text_document.uri).is_none() {
                    return Ok(None);
                }
                // The editor's text, not the compiler's: the formatter keeps its line ends,
                // and the compiler's has each lone `\r` made a `\n`.
                let doc = &self.docs[&p.text_document.uri];
                let (Some(own), text) = (&doc.analysis, &doc.text) else { return Ok(None) };
                // A text over the size limit is not parsed, here either; its diagnostic says so.
                if text.len() as u64 > nnc_compiler::MAX_FILE_BYTES {
                    return Ok(None);
                }
                match nnc_grammar::format::format(text) {
                    Ok(formatted) if formatted == *text => Ok(Some(Vec::new())),
                    Ok(formatted) => {
                        Ok(Some(vec![TextEdit { range: navigate::whole(own), new_text: formatted }]))
                    }
                    // A file that does not parse is left as it is; its diagnostics say why.
                    Err(FormatError::Syntax(_)) => Ok(None),
                    Err(FormatError::Internal(why)) => Err(format!("nnc fmt refused its own layout: {why}")),
                }
            }),
            method => Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("nnc lsp does not answer `{method}`"),
            ),
        }
    }

    /// Brings every open document's check up to date.
    fn check_all(&mut self) {
        if self.docs.values().any(|d| d.analysis.is_none()) {
            let open = self.open_paths();
            for (uri, doc) in &mut self.docs {
                if doc.analysis.is_none() {
                    analyse(uri, doc, &mut self.parses, &open, &mut self.rechecked);
                }
            }
            self.checked = true;
        }
    }

    /// The other open documents' checks, each with its root.
    fn other_analyses(&self, uri: &Uri) -> Vec<View<'_>> {
        self.docs
            .iter()
            .filter(|(u, _)| *u != uri)
            .filter_map(|(_, d)| Some((d.analysis.as_ref()?, ROOT)))
            .collect()
    }
}

/// Answers a request of type `R`: its parameters read, `f`'s result, or an error response.
fn answer<R: lsp_types::request::Request>(
    request: Request,
    f: impl FnOnce(R::Params) -> Result<R::Result, String>,
) -> Response {
    let id = request.id.clone();
    match serde_json::from_value::<R::Params>(request.params) {
        Err(e) => Response::new_err(id, ErrorCode::InvalidParams as i32, format!("{}: {e}", R::METHOD)),
        Ok(params) => match f(params) {
            Ok(result) => Response::new_ok(id, result),
            Err(message) => Response::new_err(id, ErrorCode::RequestFailed as i32, message),
        },
    }
}

/// Checks a document again, noting it among those `rechecked` since the last publication.
fn analyse(
    uri: &Uri,
    doc: &mut Document,
    parses: &mut ParseCache,
    open: &[(PathBuf, Uri)],
    rechecked: &mut Vec<Uri>,
) {
    doc.analysis = Some(Analysis::new(uri, &doc.text, parses, open));
    rechecked.push(uri.clone());
}

/// Takes a document's analysis away, to be dropped off the thread that answers.
fn bury(graveyard: &mpsc::Sender<Analysis>, analysis: &mut Option<Analysis>) {
    if let Some(analysis) = analysis.take() {
        // The thread that drops them ends only after the server; were it gone, dropping here
        // would do.
        let _ = graveyard.send(analysis);
    }
}

/// Applies one change to a document's text: a range replaced, or the whole text.
fn apply(text: &mut String, change: TextDocumentContentChangeEvent) {
    match change.range {
        None => *text = change.text,
        Some(range) => {
            let lines = LineIndex::new(text);
            let start = lines.offset(text, range.start);
            let end = lines.offset(text, range.end).max(start);
            text.replace_range(start..end, &change.text);
        }
    }
}
