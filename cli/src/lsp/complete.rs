//! Completion. Inside a call's brackets, the keyword arguments of the layer or block called
//! that are not given yet, with their kinds and defaults; anywhere, the layers (with their
//! signatures), the blocks and functions the document knows (its own and its imports'), the
//! built-in joins and functions, and the keywords; after `import`, the standard modules, and
//! inside its quotes the `.net` files beside the document; nothing in a comment or a string. The
//! call is found in the text, not the tree, as the text being typed rarely parses.

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, InsertTextFormat, Range, TextEdit,
};
use nnc_compiler::ops::{self, ArgValue};
use nnc_compiler::{RESERVED, STD_MODULES};
use nnc_grammar::Span;

use super::analysis::{Analysis, ROOT};

const KEYWORDS: &[&str] = &[
    "block", "network", "fn", "import", "input", "output", "param", "shared", "tie", "where", "repeat", "in",
    "if", "else",
];

pub fn complete(own: &Analysis, offset: usize) -> Vec<CompletionItem> {
    let text = own.text(ROOT);
    let offset = super::text::floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..offset];
    if let Some(rest) = line.trim_start().strip_prefix("import").filter(|r| r.starts_with([' ', '\t'])) {
        let typed = rest.trim_start();
        return match typed.strip_prefix('"') {
            Some(path) if !path.contains('"') => files(own, path, offset),
            Some(_) => Vec::new(),
            None => modules(own, typed, offset),
        };
    }
    if within_comment_or_string(line) {
        return Vec::new();
    }
    let mut items = Vec::new();
    if let Some((callee, args)) = open_call(&text[..offset]) {
        let (positional, given) = given(args);
        let fresh = |name: &str| !given.iter().any(|g| g == name);
        if let Some(op) = ops::lookup(callee) {
            for p in op.params.iter().skip(positional).filter(|p| fresh(p.name)) {
                let default = match &p.default {
                    None => "required".to_string(),
                    Some(ArgValue::Unset) => "optional".to_string(),
                    Some(value) => format!("default {value}"),
                };
                items.push(keyword_argument(p.name, format!("{} · {default}", p.kind.describe())));
            }
        } else if let Some((file, def)) = own.block(callee) {
            let source = own.text(file);
            for p in def.params.iter().skip(positional).filter(|p| fresh(&p.name.name)) {
                let default = match &p.default {
                    Some(d) => format!("default {}", source.get(d.span.start..d.span.end).unwrap_or("…")),
                    None => "required".to_string(),
                };
                items.push(keyword_argument(&p.name.name, default));
            }
        }
    }
    for op in ops::ALL {
        items.push(CompletionItem {
            label: op.name.to_string(),
            kind: Some(CompletionItemKind::FUNCTION),
            detail: Some(op.signature()),
            documentation: Some(Documentation::String(op.summary.to_string())),
            sort_text: Some(format!("1{}", op.name)),
            ..CompletionItem::default()
        });
    }
    for (file, def) in own.blocks() {
        items.push(CompletionItem {
            label: def.name.name.clone(),
            kind: Some(CompletionItemKind::CLASS),
            detail: Some(def.signature(own.text(file))),
            documentation: Some(Documentation::String(format!("defined in {}", own.file_name(file)))),
            sort_text: Some(format!("1{}", def.name.name)),
            ..CompletionItem::default()
        });
    }
    for name in RESERVED {
        items.push(CompletionItem {
            label: name.to_string(),
            kind: Some(CompletionItemKind::FUNCTION),
            detail: Some("built in".to_string()),
            sort_text: Some(format!("2{name}")),
            ..CompletionItem::default()
        });
    }
    for keyword in KEYWORDS {
        items.push(CompletionItem {
            label: keyword.to_string(),
            kind: Some(CompletionItemKind::KEYWORD),
            sort_text: Some(format!("3{keyword}")),
            ..CompletionItem::default()
        });
    }
    items
}

/// The standard modules, each replacing what is typed of it (`std.res`): a client replaces only
/// the word at the cursor, and `.` ends a word in most editors, which would give `std.std.resnet`.
fn modules(own: &Analysis, typed: &str, offset: usize) -> Vec<CompletionItem> {
    let range = typed_range(own, typed, offset);
    STD_MODULES
        .iter()
        .map(|(name, _)| CompletionItem {
            label: name.to_string(),
            kind: Some(CompletionItemKind::MODULE),
            filter_text: Some(name.to_string()),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit { range, new_text: name.to_string() })),
            ..CompletionItem::default()
        })
        .collect()
}

/// Inside an import's quotes, the `.net` files and the folders of the folder typed so far
/// (`blocks/`), from the document's folder, each replacing what is typed after the last `/`.
fn files(own: &Analysis, typed: &str, offset: usize) -> Vec<CompletionItem> {
    let (folder, name) = typed.rsplit_once('/').map_or(("", typed), |(f, n)| (f, n));
    let doc = own.sources[ROOT.0].uri.as_ref().and_then(super::uri::to_path);
    let Some(dir) = doc.as_ref().and_then(|d| d.parent()).map(|d| d.join(folder)) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let range = typed_range(own, name, offset);
    let mut items: Vec<CompletionItem> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let file = entry.file_name().into_string().ok()?;
            let is_dir = entry.file_type().ok()?.is_dir();
            let wanted = if is_dir { !file.starts_with('.') } else { file.ends_with(".net") };
            let own_file = doc.as_deref() == Some(entry.path().as_path());
            (wanted && !own_file).then_some((file, is_dir))
        })
        .map(|(file, is_dir)| {
            let new_text = if is_dir { format!("{file}/") } else { file.clone() };
            CompletionItem {
                label: new_text.clone(),
                kind: Some(if is_dir { CompletionItemKind::FOLDER } else { CompletionItemKind::FILE }),
                filter_text: Some(new_text.clone()),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit { range, new_text })),
                ..CompletionItem::default()
            }
        })
        .collect();
    items.sort_by(|a, b| a.label.cmp(&b.label));
    items
}

/// The range of the `typed` text that ends at `offset`.
fn typed_range(own: &Analysis, typed: &str, offset: usize) -> Range {
    let (text, lines) = (own.text(ROOT), &own.sources[ROOT.0].lines);
    lines.range(text, Span::new(offset - typed.len(), offset))
}

/// Whether the end of a line's text lies in a comment or an unclosed string, where nothing is
/// offered.
fn within_comment_or_string(line: &str) -> bool {
    let code_end = nnc_grammar::code_chars(line).last().map_or(0, |(i, c)| i + c.len_utf8());
    let rest = &line[code_end..];
    rest.starts_with('#') || (rest.starts_with('"') && rest.matches('"').count() == 1)
}

fn keyword_argument(name: &str, detail: String) -> CompletionItem {
    CompletionItem {
        label: format!("{name}="),
        kind: Some(CompletionItemKind::PROPERTY),
        detail: Some(detail),
        insert_text: Some(format!("{name}=")),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        sort_text: Some(format!("0{name}")),
        ..CompletionItem::default()
    }
}

/// The innermost call whose brackets are open at the end of `before`: its callee's name and the
/// text of its arguments so far. Strings and comments are skipped.
fn open_call(before: &str) -> Option<(&str, &str)> {
    let mut open: Vec<usize> = Vec::new();
    for (i, c) in nnc_grammar::code_chars(before) {
        match c {
            '(' | '[' | '{' => open.push(i),
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    let &paren = open.last()?;
    if !before[paren..].starts_with('(') {
        return None;
    }
    let head = before[..paren].trim_end();
    // After the last character that is no part of a name, however many bytes it takes (`é(`).
    let start = head
        .char_indices()
        .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let callee = &head[start..];
    callee.chars().next().filter(|c| c.is_ascii_alphabetic() || *c == '_')?;
    Some((callee, &before[paren + 1..]))
}

/// The arguments already written in a call, before the one being typed: how many are
/// positional, and the names of the keyword ones (`stride=2`, but not `a == b`).
fn given(args: &str) -> (usize, Vec<String>) {
    // The arguments at the call's own depth, split at its commas.
    let mut pieces = vec![String::new()];
    let mut depth = 0usize;
    for c in args.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                pieces.push(String::new());
                continue;
            }
            _ => {}
        }
        pieces.last_mut().expect("one piece at least").push(c);
    }
    let typing = pieces.pop();
    let keyword = |piece: &str| {
        let (name, rest) = piece.split_once('=')?;
        let name = name.trim();
        let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        (is_name && !rest.starts_with('=')).then(|| name.to_string())
    };
    let mut names: Vec<String> = pieces.iter().filter_map(|p| keyword(p)).collect();
    names.extend(typing.as_deref().and_then(keyword));
    let positional = pieces.iter().filter(|p| keyword(p).is_none()).count();
    (positional, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_open_call() {
        assert_eq!(open_call("x = conv2d(64, 3, str"), Some(("conv2d", "64, 3, str")));
        assert_eq!(open_call("conv2d(64, max(1, 2), "), Some(("conv2d", "64, max(1, 2), ")));
        assert_eq!(open_call("conv2d(64) -> "), None);
        assert_eq!(open_call("f(a, # (\n"), Some(("f", "a, # (\n")));
        assert_eq!(open_call("input [N, "), None);
        // A name after a character of several bytes: no slice inside it.
        assert_eq!(open_call("x = é("), None);
        assert_eq!(open_call("é = conv2d("), Some(("conv2d", "")));
        assert_eq!(
            given("64, stride=2, padding = 1, x == 3"),
            (1, vec!["stride".to_string(), "padding".to_string()])
        );
        assert_eq!(given("max(1, 2), (3, 4), "), (2, vec![]));
        assert_eq!(given("64, 3, bi"), (2, vec![]));
    }

    #[test]
    fn knows_comments_and_strings() {
        assert!(within_comment_or_string("    conv2d(3) # conv2d("));
        assert!(within_comment_or_string("# a comment"));
        assert!(within_comment_or_string("    upsample(mode=\"bil"));
        assert!(!within_comment_or_string("    upsample(mode=\"bilinear\", "));
        assert!(!within_comment_or_string("    upsample(mode=\"bilinear\""));
        assert!(!within_comment_or_string("    conv2d("));
        assert!(!within_comment_or_string(""));
    }
}
