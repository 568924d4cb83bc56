//! From the macro's input to code: read the model (a file, or the inline tokens' source text),
//! compile it, and either generate the module or turn the diagnostics into `compile_error!`s
//! at the best place: the inline token where the error is, or the path literal of a file.

use std::path::{Path, PathBuf};

use nnc_compiler::back::codegen;
use nnc_compiler::back::render::{render, Style};
use nnc_compiler::{compile, Compilation, Options, Root};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

/// `Name = "path.net", param = value, ..., network = "name", deny = warnings`
struct FileRequest {
    name: Ident,
    path: LitStr,
    overrides: Vec<(String, String)>,
    /// Where each of `overrides` is written, for its errors.
    override_spans: Vec<Span>,
    network: Option<String>,
    /// `deny = warnings`: the model's warnings are compile errors.
    deny_warnings: bool,
}

impl Parse for FileRequest {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let path: LitStr = input.parse()?;
        let mut request = FileRequest {
            name,
            path,
            overrides: Vec::new(),
            override_spans: Vec::new(),
            network: None,
            deny_warnings: false,
        };
        let mut given: Vec<String> = Vec::new();
        while input.parse::<Option<Token![,]>>()?.is_some() {
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            if given.contains(&key.to_string()) {
                return Err(syn::Error::new(key.span(), format!("`{key}` is given twice")));
            }
            given.push(key.to_string());
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(key.span(), format!("`{key}` needs a value: `{key} = ...`")));
            }
            input.parse::<Token![=]>()?;
            if key == "network" {
                request.network = Some(input.parse::<LitStr>()?.value());
                continue;
            }
            if key == "deny" {
                let what: Ident = input.parse()?;
                if what != "warnings" {
                    return Err(syn::Error::new(what.span(), "the only lint level is `deny = warnings`"));
                }
                request.deny_warnings = true;
                continue;
            }
            // A value runs to the next comma outside brackets.
            let mut value = TokenStream::new();
            while !input.is_empty() && !input.peek(Token![,]) {
                value.extend([input.parse::<TokenTree>()?]);
            }
            if value.is_empty() {
                return Err(syn::Error::new(key.span(), format!("`{key} =` needs a value")));
            }
            // As written (`-3`, not the tokens' `- 3`), so that its errors show it so; as the
            // tokens where that text is not one line of the value (in a `macro_rules!`, the
            // macro's `$c`; a value over several lines, which may hold comments).
            let (text, _) = source_text(value.clone());
            let text = match substitution(&text) || text.trim().contains('\n') {
                true => value.to_string(),
                false => text.trim().to_string(),
            };
            request.overrides.push((key.to_string(), text));
            request.override_spans.push(key.span());
        }
        Ok(request)
    }
}

fn krate() -> TokenStream {
    quote! { ::nnc }
}

/// The macro's two forms, for the errors of a call that is neither.
const FORMS: &str =
    "the forms are `model!(Name = \"path/to/model.net\", param = value, ...)` and `model! { network name { ... } }`";

pub fn expand(input: TokenStream) -> TokenStream {
    let first = input.clone().into_iter().next();
    // A path without the type's name: a model is never a string.
    if let Some(TokenTree::Literal(literal)) = &first {
        if literal.to_string().starts_with('"') {
            let message =
                format!("name the type the model becomes: `model!(Name = {literal})`\nhelp: {FORMS}");
            return syn::Error::new(literal.span(), message).to_compile_error();
        }
    }
    if first.is_none() {
        return syn::Error::new(Span::call_site(), format!("an empty `model!`\nhelp: {FORMS}"))
            .to_compile_error();
    }
    // `Name = "file.net"` names a file; anything else is the model itself.
    let inline = !matches!(input.clone().into_iter().nth(1), Some(TokenTree::Punct(p)) if p.as_char() == '=');
    if inline {
        return expand_inline(input);
    }
    match syn::parse2::<FileRequest>(input) {
        Ok(request) => expand_file(request),
        Err(e) => syn::Error::new(e.span(), format!("{e}\nhelp: {FORMS}")).to_compile_error(),
    }
}

/// Keeps the files of the model in the crate's dependencies, so that editing one rebuilds it;
/// `inline`: but for the root, the Rust file itself.
fn tracking(compilation: &Compilation, inline: bool) -> TokenStream {
    let files = compilation.sources.files().skip(usize::from(inline));
    let files = files.filter_map(|(_, f)| f.path.as_ref()).map(|p| p.display().to_string());
    quote! { #(const _: &[u8] = include_bytes!(#files);)* }
}

fn expand_file(request: FileRequest) -> TokenStream {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
    let relative = request.path.value();
    let path = manifest.join(&relative);
    // Each argument's line in the source the compiler makes of them (`name=value\n`), so that
    // an error there is placed at the argument's name.
    let mut lines = Vec::new();
    let mut end = 0;
    for ((name, value), span) in request.overrides.iter().zip(&request.override_spans) {
        end += name.len() + value.len() + 2;
        lines.push((end, *span));
    }
    let options = Options {
        overrides: request.overrides,
        network: request.network,
        deny_warnings: request.deny_warnings,
        overrides_name: Some(ARGUMENTS.to_string()),
        ..Options::default()
    };
    let compilation = compile(Root::Named { path: &path, name: &relative }, &options);
    let span_of = |at: Option<(&str, usize)>| match at {
        Some((ARGUMENTS, offset)) => {
            lines.iter().find(|(end, _)| offset < *end).map_or(request.path.span(), |(_, span)| *span)
        }
        _ => request.path.span(),
    };
    finish(&request.name, compilation, span_of, Some(&path))
}

/// What diagnostics call the macro's `param = value` arguments.
const ARGUMENTS: &str = "<model! arguments>";

/// Turns a compilation into the module, or into compile errors placed by `span_of`.
fn finish(
    name: &Ident,
    compilation: Compilation,
    span_of: impl Fn(Option<(&str, usize)>) -> Span,
    file: Option<&Path>,
) -> TokenStream {
    let k = krate();
    let tracked = tracking(&compilation, file.is_none());
    // Warnings that are not denied cannot be shown: a procedural macro has no warnings on
    // stable Rust. `nnc check` shows them.
    if compilation.has_errors() {
        let mut out = codegen::stub(name, &k);
        for d in compilation.diagnostics.iter().filter(|d| d.is_error()) {
            // rustc prints `error: ` before the message; the rendered diagnostic follows.
            let text = render(std::slice::from_ref(d), &compilation.sources, Style::Plain);
            let body = text.trim_end().split_once('\n').map_or("", |(_, rest)| rest);
            let mut message = format!("nnc {}: {}", d.code.as_str(), d.message);
            if !body.is_empty() {
                message = format!("{message}\n{body}");
            }
            if d.code == nnc_compiler::Code::Io && d.labels.is_empty() {
                if let Some(path) = file {
                    message += &format!(
                        "\n= note: looked for {} (model paths are relative to the crate's folder)",
                        path.display()
                    );
                }
            }
            let at = d.primary_loc().map(|l| (compilation.sources.get(l.file).name.as_str(), l.span.start));
            let span = span_of(at);
            out.extend(quote_spanned! { span => compile_error!(#message); });
        }
        out.extend(tracked);
        return out;
    }
    let graph = match &compilation.graphs[..] {
        [graph] => graph,
        graphs => {
            let names: Vec<&str> = graphs.iter().map(|g| g.name.as_str()).collect();
            let message = match file {
                Some(path) if names.is_empty() => format!("nnc: {} defines no network", path.display()),
                Some(path) => format!(
                    "nnc: {} defines {} networks ({}); choose one with `network = \"name\"`",
                    path.display(),
                    names.len(),
                    names.join(", ")
                ),
                None if names.is_empty() => "nnc: the model defines no network".to_string(),
                None => format!(
                    "nnc: an inline model generates one network, and this one defines {} ({}); make the \
                     others blocks, or put them in a .net file and choose one with \
                     `model!(Name = \"file.net\", network = \"name\")`",
                    names.len(),
                    names.join(", ")
                ),
            };
            let span = span_of(None);
            let mut out = codegen::stub(name, &k);
            out.extend(quote_spanned! { span => compile_error!(#message); });
            return out;
        }
    };
    let mut out = codegen::generate(graph, name, &k);
    out.extend(tracked);
    out
}

/// A leaf token and where its text sits in the reconstructed source.
struct Piece {
    start: usize,
    end: usize,
    span: Span,
}

/// The inline model's source text: each top-level token, with brackets taken whole from the
/// source (comments and line breaks included) where the compiler can give it, laid out at its
/// line and column in the Rust file, so that diagnostics show the file's own positions. Tokens
/// the source has side by side stay so (`std.resnet`); one whose span does not follow the one
/// before (spans that are not the text's) is kept apart by a space.
fn source_text(tokens: TokenStream) -> (String, Vec<Piece>) {
    let mut text = String::new();
    // Where the next character goes, both counted from 1 as `proc_macro` counts them.
    let (mut line, mut column) = (1usize, 1usize);
    let mut leaves = Vec::new();
    for tree in tokens {
        let start = tree.span().unwrap().start();
        if start.line() > line {
            text.push_str(&"\n".repeat(start.line() - line));
            (line, column) = (start.line(), 1);
        }
        let spaces = match start.column().checked_sub(column) {
            Some(gap) => gap,
            None => usize::from(column > 1),
        };
        text.push_str(&" ".repeat(spaces));
        column += spaces;
        let piece = tree.span().source_text().unwrap_or_else(|| tree.to_string());
        text.push_str(&piece);
        match piece.rfind('\n') {
            Some(i) => {
                (line, column) = (line + piece.matches('\n').count(), piece[i + 1..].chars().count() + 1)
            }
            None => column += piece.chars().count(),
        }
        collect_leaves(tree, &mut leaves);
    }
    // Place each leaf token in the text, in order.
    let mut pieces = Vec::new();
    let mut cursor = 0;
    for (token, span) in leaves {
        if let Some(found) = text[cursor..].find(&token) {
            let start = cursor + found;
            pieces.push(Piece { start, end: start + token.len(), span });
            cursor = start + token.len();
        }
    }
    (text, pieces)
}

fn collect_leaves(tree: TokenTree, out: &mut Vec<(String, Span)>) {
    match tree {
        TokenTree::Group(g) => {
            let (open, close) = match g.delimiter() {
                proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                proc_macro2::Delimiter::Brace => ("{", "}"),
                proc_macro2::Delimiter::Bracket => ("[", "]"),
                proc_macro2::Delimiter::None => ("", ""),
            };
            if !open.is_empty() {
                out.push((open.to_string(), g.span_open()));
            }
            for t in g.stream() {
                collect_leaves(t, out);
            }
            if !close.is_empty() {
                out.push((close.to_string(), g.span_close()));
            }
        }
        TokenTree::Punct(p) => out.push((p.as_char().to_string(), p.span())),
        other => out.push((other.to_string(), other.span())),
    }
}

/// Splits off a leading `#![deny(warnings)]`, the inline form's lint level.
fn deny_attribute(input: TokenStream) -> (bool, TokenStream) {
    let tokens: Vec<TokenTree> = input.clone().into_iter().collect();
    let denied = match &tokens[..] {
        [TokenTree::Punct(hash), TokenTree::Punct(bang), TokenTree::Group(group), ..] => {
            hash.as_char() == '#'
                && bang.as_char() == '!'
                && group.stream().to_string().replace(' ', "") == "deny(warnings)"
        }
        _ => false,
    };
    if denied {
        (true, tokens.into_iter().skip(3).collect())
    } else {
        (false, input)
    }
}

/// Whether the text holds a `macro_rules!` substitution (`$c`, `$(...)`) outside comments:
/// inside a `macro_rules!`, the source text of `model!`'s tokens is the macro's own.
fn substitution(text: &str) -> bool {
    text.lines().any(|line| {
        let code = line.split('#').next().unwrap_or_default();
        code.match_indices('$')
            .any(|(i, _)| code[i + 1..].starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '('))
    })
}

fn expand_inline(input: TokenStream) -> TokenStream {
    let (deny_warnings, input) = deny_attribute(input);
    let (text, pieces) = source_text(input);
    if substitution(&text) {
        let message = "nnc: an inline `model!` is read from its source text, which inside a `macro_rules!` \
                       holds the macro's `$name`s, not the values given; put the model in a .net file and \
                       give the values as arguments: `model!(Name = \"file.net\", param = $value)`";
        let mut out = codegen::stub(&stub_name(&text), &krate());
        out.extend(syn::Error::new(Span::call_site(), message).to_compile_error());
        return out;
    }
    let rust_file = Span::call_site().unwrap();
    let file = rust_file.file();
    // Imports are relative to the Rust file's folder, as `include_str!`'s paths are.
    let folder = rust_file.local_file().and_then(|rs| {
        let rs = std::env::current_dir().map(|here| here.join(&rs)).unwrap_or(rs);
        rs.parent().map(Path::to_path_buf)
    });
    // An error in the model's own text is placed at its token; one in an imported file or a
    // `std` module, at the macro's call.
    let call_site = Span::call_site();
    let span_of = |at: Option<(&str, usize)>| match at {
        Some((source, at)) if source == file => pieces
            .iter()
            .find(|p| p.start <= at && at < p.end)
            .or_else(|| pieces.iter().rev().find(|p| p.start <= at))
            .map_or(call_site, |p| p.span),
        _ => call_site,
    };
    let options = Options { deny_warnings, ..Options::default() };
    let compilation = compile(Root::Text { name: &file, text: &text, dir: folder.as_deref() }, &options);
    let name = match compilation.graphs.first() {
        Some(g) => codegen::type_name(&g.name),
        None => stub_name(&text),
    };
    finish(&name, compilation, span_of, None)
}

/// The stand-in's name where the model did not compile: the first network's, as the generated
/// type's would be.
fn stub_name(text: &str) -> Ident {
    let first = text.split_whitespace().skip_while(|w| *w != "network").nth(1).unwrap_or("Model");
    codegen::type_name(first.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("Model"))
}
