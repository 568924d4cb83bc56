//! `nnc lsp` spoken to as an editor speaks to it: the binary spawned, framed JSON-RPC on its
//! standard input and output. The answers are snapshotted, with the repository's path and the
//! standard library's cache folder written as `[root]` and `[cache]`.

mod lsp_client;

use std::path::{Path, PathBuf};

use lsp_client::{at, uri, Client};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A cache folder of the test's own, where the server writes the standard library.
fn cache(name: &str) -> PathBuf {
    folder(&format!("lsp-cache-{name}"), &[])
}

/// A folder of the test's own under the target's temporary folder, holding `files` (name and
/// text) besides whatever an earlier run left.
fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

fn start(cache: &Path) -> Client {
    let mut client = Client::start(env!("CARGO_BIN_EXE_nnc"), &root(), &[("XDG_CACHE_HOME", cache)]);
    client.initialize();
    client
}

/// Pretty JSON with the machine's paths replaced.
fn shown(value: &Value, cache: &Path) -> String {
    serde_json::to_string_pretty(value)
        .unwrap()
        .replace(&uri(cache), "file://[cache]")
        .replace(&uri(&root()), "file://[root]")
}

/// The line and UTF-16 column of the `nth` occurrence of `needle` in `text`, plus `shift`
/// characters.
fn find(text: &str, needle: &str, nth: usize, shift: u32) -> (u32, u32) {
    let offset = text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("no `{needle}`")).0;
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].encode_utf16().count() as u32;
    (line, column + shift)
}

/// A file of the repository, by its path from the root: its URI and its text.
fn repo_file(path: &str) -> (String, String) {
    let path = root().join(path);
    (uri(&path), std::fs::read_to_string(path).unwrap())
}

#[test]
fn a_session_on_resnet18() {
    let cache = cache("resnet18");
    let mut client = Client::start(env!("CARGO_BIN_EXE_nnc"), &root(), &[("XDG_CACHE_HOME", &cache)]);
    let init = client.initialize();
    insta::assert_snapshot!("initialize", shown(&init, &cache));
    let (doc, text) = repo_file("models/resnet18.net");
    client.open(&doc, &text);
    assert_eq!(client.diagnostics(&doc), json!([]));

    // The name a statement binds: the tensor going in and coming out, and what it holds.
    let (line, col) = find(&text, "b3 =", 0, 1);
    let hover = client.result("textDocument/hover", at(&doc, line, col));
    let value = hover["contents"]["value"].as_str().unwrap();
    assert!(value.contains("`[N, 64, 56, 56]` → `[N, 128, 28, 28]`"), "{value}");
    insta::assert_snapshot!("hover_b3", shown(&hover, &cache));

    // A block's call: its shapes and totals, its signature, its comment and where it is.
    let (line, col) = find(&text, "resnet_stage(128", 0, 3);
    let hover = client.result("textDocument/hover", at(&doc, line, col));
    insta::assert_snapshot!("hover_block_call", shown(&hover, &cache));

    // A layer: the shapes of this call and the layer's reference.
    let (line, col) = find(&text, "maxpool2d", 0, 2);
    let hover = client.result("textDocument/hover", at(&doc, line, col));
    insta::assert_snapshot!("hover_layer", shown(&hover, &cache));

    let all = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 1000, "character": 0 } });
    let hints =
        client.result("textDocument/inlayHint", json!({ "textDocument": { "uri": doc }, "range": all }));
    insta::assert_snapshot!("inlay_hints", shown(&hints, &cache));

    // Into the standard library, whose module the server wrote to its cache.
    let definition = client.result("textDocument/definition", at(&doc, line + 1, 11));
    insta::assert_snapshot!("definition_std_block", shown(&definition, &cache));
    let std_resnet = std::fs::read_to_string(cache.join("nnc/std-0.1.0/resnet.net")).unwrap();
    let target_line = definition["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(std_resnet.lines().nth(target_line).unwrap().starts_with("block resnet_stage("));
    let (line, col) = find(&text, "std.resnet", 0, 5);
    let import = client.result("textDocument/definition", at(&doc, line, col));
    assert_eq!(import["uri"], json!(format!("{}/nnc/std-0.1.0/resnet.net", uri(&cache))));

    let (line, col) = find(&text, "resnet_stage", 0, 0);
    let references = client.result(
        "textDocument/references",
        json!({ "textDocument": { "uri": doc }, "position": { "line": line, "character": col },
                "context": { "includeDeclaration": true } }),
    );
    insta::assert_snapshot!("references", shown(&references, &cache));

    // Keyword arguments of the layer being called, those not given yet, with their defaults.
    let (line, col) = find(&text, "stride=2, padding=3", 0, 0);
    let completion = client.result("textDocument/completion", at(&doc, line, col));
    let items = completion.as_array().unwrap();
    let arguments: Vec<&Value> = items.iter().filter(|i| i["kind"] == json!(10)).collect();
    insta::assert_snapshot!("completion_arguments", shown(&json!(arguments), &cache));
    for name in ["conv2d", "resnet_stage", "residual", "cat", "repeat"] {
        assert!(items.iter().any(|i| i["label"] == name), "{name} is not offered");
    }

    let symbols = client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": doc } }));
    insta::assert_snapshot!("document_symbols", shown(&symbols, &cache));
    let options = json!({ "tabSize": 4, "insertSpaces": true });
    let edits = client
        .result("textDocument/formatting", json!({ "textDocument": { "uri": doc }, "options": options }));
    assert_eq!(edits, json!([]), "models/ are formatted");

    // A broken edit: b3's channels become a tuple, which conv2d refuses; then a syntax error.
    let (line, col) = find(&text, "128 // ratio", 0, 0);
    let change = json!({ "range": { "start": { "line": line, "character": col },
                                    "end": { "line": line, "character": col + 12 } }, "text": "(1, 2)" });
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": doc, "version": 2 }, "contentChanges": [change] }),
    );
    let broken = client.diagnostics(&doc);
    insta::assert_snapshot!("diagnostics_after_broken_edit", shown(&broken, &cache));
    // The shapes before the mistake are still shown.
    let (b2_line, b2_col) = find(&text, "b2 =", 0, 0);
    let hover = client.result("textDocument/hover", at(&doc, b2_line, b2_col));
    assert!(hover["contents"]["value"].as_str().unwrap().contains("`[N, 64, 56, 56]`"), "{hover}");
    let change = json!({ "range": { "start": { "line": line, "character": 0 },
                                    "end": { "line": line, "character": 0 } }, "text": "    b2b = = ->\n" });
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": doc, "version": 3 }, "contentChanges": [change] }),
    );
    insta::assert_snapshot!("diagnostics_after_syntax_error", shown(&client.diagnostics(&doc), &cache));

    // Back to the file as it was: no diagnostics.
    let whole = json!({ "text": text });
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": doc, "version": 4 }, "contentChanges": [whole] }),
    );
    assert_eq!(client.diagnostics(&doc), json!([]));
    assert!(client.shutdown().success());
}

#[test]
fn lenet_hints_are_its_table() {
    let cache = cache("lenet");
    let mut client = start(&cache);
    let (doc, text) = repo_file("models/lenet.net");
    client.open(&doc, &text);
    let all = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 1000, "character": 0 } });
    let hints =
        client.result("textDocument/inlayHint", json!({ "textDocument": { "uri": doc }, "range": all }));
    insta::assert_snapshot!("lenet_inlay_hints", shown(&hints, &cache));
    let labels: Vec<&str> = hints.as_array().unwrap().iter().map(|h| h["label"].as_str().unwrap()).collect();
    // The table of `nnc check`: every row's shape, the input's first.
    let compiled = nnc_compiler::compile(
        nnc_compiler::Root::Path(&root().join("models/lenet.net")),
        &nnc_compiler::Options::default(),
    );
    let report = nnc_compiler::back::report::report(&compiled.graphs[0], None);
    let table: Vec<&str> = report.rows.iter().map(|r| r.shape.as_str()).collect();
    assert_eq!(labels, table);
    assert!(client.shutdown().success());
}

/// A `shared` layer's declared name shows each application: what it was applied to and gave,
/// the first with the layer's parameters, the others with none of their own.
#[test]
fn a_shared_layers_name_shows_its_applications() {
    let cache = cache("shared");
    let mut client = start(&cache);
    let (doc, text) = repo_file("tests/ok/shared.net");
    client.open(&doc, &text);
    assert_eq!(client.diagnostics(&doc), json!([]));
    let (line, col) = find(&text, "shared cell", 0, 8);
    let hover = client.result("textDocument/hover", at(&doc, line, col));
    let value = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(
        value,
        "`[N, 6, 8]` → `[N, 6, 8]` · 72 parameters · 432 multiply-adds  \n\
         `[N, 6, 8]` → `[N, 6, 8]` · 0 parameters · 432 multiply-adds (×2)",
        "{hover}"
    );
    assert!(client.shutdown().success());
}

/// Free sizes in the editor: hovers and hints show their expressions, as the table does, and
/// no multiply-adds, which depend on them.
#[test]
fn free_sizes_show_as_expressions() {
    let cache = cache("free");
    let mut client = start(&cache);
    let (doc, text) = repo_file("tests/ok/free-sizes.net");
    client.open(&doc, &text);
    assert_eq!(client.diagnostics(&doc), json!([]));
    let (line, col) = find(&text, "down1 =", 0, 1);
    let hover = client.result("textDocument/hover", at(&doc, line, col));
    let value = hover["contents"]["value"].as_str().unwrap();
    assert!(value.contains("`[N, 4, H, W]` → `[N, 8, H/2, W/2]` · 896 parameters"), "{value}");
    assert!(!value.contains("multiply-adds"), "{value}");
    let (line, col) = find(&text, "stem =", 0, 1);
    let hover = client.result("textDocument/hover", at(&doc, line, col));
    let value = hover["contents"]["value"].as_str().unwrap();
    assert!(value.contains("`[N, 8, ⌊(H + 3)/4⌋, ⌊(W + 3)/4⌋]`"), "{value}");
    // The outline too shows the expressions, not the sizes the check probed with.
    let outline = client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": doc } }));
    let down1 = outline[0]["children"].as_array().unwrap().iter().find(|s| s["name"] == "down1").unwrap();
    assert_eq!(down1["detail"], "[N, 8, H/2, W/2]", "{outline}");
    assert!(client.shutdown().success());
}

/// A `_` that discards a piece of a destructuring binds no name: the outline does not list it,
/// and going to the definition of the flow's `_` does not land on it.
#[test]
fn a_discarded_piece_is_no_name_to_the_editor() {
    let cache = cache("discard");
    let mut client = start(&cache);
    let doc = uri(&root().join("tests/discard-lsp.net"));
    let text =
        "network d {\n    input [N, 5, 4]\n    y, _ = gru(8)\n    y -> _ + (y -> relu) -> flatten\n}\n";
    client.open(&doc, text);
    assert_eq!(client.diagnostics(&doc), json!([]));
    let outline = client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": doc } }));
    let names: Vec<&str> =
        outline[0]["children"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"y") && !names.contains(&"_"), "{names:?}");
    let (line, col) = find(text, "_ +", 0, 0);
    let definition = client.result("textDocument/definition", at(&doc, line, col));
    assert_eq!(definition, Value::Null, "the flow's `_` is defined nowhere");
    assert!(client.shutdown().success());
}

/// A document that imports `blocks.net` and calls its `widen(16)` on 3 channels.
const WIDENS: &str = "import \"blocks.net\"\n\nnetwork n {\n    input [N, 3, 8, 8]\n    y = widen(16)\n}\n";

/// A session that opens [`WIDENS`] as `main.net` in the scratch folder `lsp-{name}`, beside
/// `blocks` as `blocks.net`, whose sum of 3 and 16 channels is an error: the client, the cache,
/// the folder, the URIs of `main.net` and `blocks.net`, and the diagnostics `blocks.net` gets.
fn open_widens(name: &str, blocks: &str) -> (Client, PathBuf, PathBuf, [String; 2], Value) {
    let cache = cache(name);
    let dir = folder(&format!("lsp-{name}"), &[("blocks.net", blocks), ("main.net", WIDENS)]);
    let mut client = start(&cache);
    let uris = [uri(&dir.join("main.net")), uri(&dir.join("blocks.net"))];
    client.open(&uris[0], WIDENS);
    let in_blocks = client.diagnostics(&uris[1]);
    assert_eq!(in_blocks[0]["code"], "E0202", "{in_blocks}");
    (client, cache, dir, uris, in_blocks)
}

#[test]
fn diagnostics_in_an_import_go_to_its_file() {
    let blocks = "# Blocks.\nblock widen(c) {\n    _ + conv2d(c, 1)\n}\n";
    let (mut client, cache, dir, [main_uri, blocks_uri], in_blocks) = open_widens("imports", blocks);
    // The scratch folder first: it may lie inside the repository (`target/tmp`).
    let shown = serde_json::to_string_pretty(&in_blocks)
        .unwrap()
        .replace(&uri(&dir), "file://[dir]")
        .replace(&uri(&cache), "file://[cache]");
    insta::assert_snapshot!("diagnostics_in_import", shown);
    // And at the call in the document that made it.
    let in_main = client.diagnostics(&main_uri);
    assert_eq!(in_main[0]["code"], "E0202", "{in_main}");
    assert_eq!(in_main[0]["range"]["start"], json!({ "line": 4, "character": 8 }));
    assert_eq!(in_main[0]["relatedInformation"][0]["location"]["uri"], json!(blocks_uri));
    // Definition of the imported block, and of the import.
    let definition = client.result("textDocument/definition", at(&main_uri, 4, 9));
    assert_eq!(definition["uri"], json!(blocks_uri));
    assert_eq!(definition["range"]["start"], json!({ "line": 1, "character": 6 }));
    let import = client.result("textDocument/definition", at(&main_uri, 0, 10));
    assert_eq!(import["uri"], json!(blocks_uri));
    // The block file opened too: its hovers read the shapes main.net's check gave it.
    client.open(&blocks_uri, blocks);
    let hover = client.result("textDocument/hover", at(&blocks_uri, 2, 10));
    let value = hover["contents"]["value"].as_str().unwrap();
    assert!(value.contains("`[N, 3, 8, 8]` → `[N, 16, 8, 8]`"), "{value}");
    assert!(client.shutdown().success());
}

/// An open import whose lines end in a lone `\r` (classic Mac OS) is the text that the
/// importing document's check read, though the compiler reads each `\r` as a `\n`: that check's
/// diagnostics and shapes still reach it, and formatting keeps its line ends.
#[test]
fn an_import_of_lone_carriage_returns_is_the_text_checked() {
    let blocks = "# Blocks.\rblock  widen(c) {\r    _ + conv2d(c, 1)\r}\r";
    let (mut client, _, _, [_, blocks_uri], in_blocks) = open_widens("lone-cr", blocks);
    assert_eq!(in_blocks[0]["range"]["start"], json!({ "line": 2, "character": 8 }));
    client.open(&blocks_uri, blocks);
    let hover = client.result("textDocument/hover", at(&blocks_uri, 2, 10));
    let value = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(value.contains("`[N, 3, 8, 8]` → `[N, 16, 8, 8]`"), "{hover}");
    // The hover was answered after the opening's check: its diagnostics came before, if any.
    let cleared = |m: &Value| {
        m["method"] == "textDocument/publishDiagnostics"
            && m["params"]["uri"] == blocks_uri
            && m["params"]["diagnostics"] == json!([])
    };
    assert!(!client.notifications.iter().any(cleared), "{:?}", client.notifications);
    let options = json!({ "tabSize": 4, "insertSpaces": true });
    let edits = client.result(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": blocks_uri }, "options": options }),
    );
    assert_eq!(edits[0]["newText"], "# Blocks.\rblock widen(c) {\r    _ + conv2d(c, 1)\r}\r", "{edits}");
    assert!(client.shutdown().success());
}

#[test]
fn positions_count_utf16() {
    let cache = cache("utf16");
    let mut client = start(&cache);
    // Not a file: the server checks it all the same.
    let doc = "untitled:Untitled-1";
    // A label of characters outside the BMP: 😀 is two UTF-16 units, é one.
    let text = "network n {\n    input [N, 4]\n    x = \"é😀\": linear(8) -> relu\n}\n";
    client.open(doc, text);
    assert_eq!(client.diagnostics(doc), json!([]));
    let (line, col) = find(text, "linear", 0, 2);
    assert_eq!((line, col), (2, 17));
    let hover = client.result("textDocument/hover", at(doc, line, col));
    assert!(hover["contents"]["value"].as_str().unwrap().contains("`[N, 4]` → `[N, 8]`"), "{hover}");
    let hints = client.result(
        "textDocument/inlayHint",
        json!({ "textDocument": { "uri": doc },
                "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 9, "character": 0 } } }),
    );
    let end_of_linear = find(text, " -> relu", 0, 0);
    assert_eq!(
        hints[1]["position"],
        json!({ "line": end_of_linear.0, "character": end_of_linear.1 }),
        "{hints}"
    );
    assert!(client.shutdown().success());
}

/// Texts that have broken the parser or the checker, or could: the failing models of
/// `tests/err`, the real models cut and spliced, limits pushed, token soup.
fn hostile_corpus() -> Vec<String> {
    let mut corpus = Vec::new();
    for dir in ["tests/err", "tests/warn", "models", "compiler/std"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "net"))
            .collect();
        paths.sort();
        for path in paths {
            corpus.push(String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned());
        }
    }
    let network = |body: &str| format!("network n {{\n    input [N, 1, 28, 28]\n    {body}\n}}\n");
    corpus.push(network(&format!("conv2d({}1{}, 3)", "(".repeat(10_000), ")".repeat(10_000))));
    corpus.push(network("repeat 1_000_000_000_000 { relu }"));
    corpus.push(network("repeat 1_000 { repeat 1_000 { if false { relu } } }"));
    corpus.push(format!("block b(c) {{ conv2d(c, 1) -> b(c) }}\n{}", network("b(4)")));
    corpus.push(network("conv2d(9_223_372_036_854_775_807 * 2, 3)"));
    corpus.push("\u{feff}\r\n\r\n\u{0}network\u{2028}n {".to_string());
    corpus.push(String::new());
    // Cuts and splices of the models, from a fixed generator.
    let models = corpus.clone();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    const TOKENS: &[&str] = &[
        "network", "block", "import", "input", "repeat", "if", "else", "->", "(", ")", "{", "}", "[", "]",
        ",", "=", "conv2d", "relu", "in", "_", "N", "0", "-1", "1e309", "\"", "#", "\n", ":", "..", "+",
        "//", "é", "😀",
    ];
    for i in 0..60 {
        let text = &models[next(models.len())];
        let mut text: Vec<char> = text.chars().collect();
        for _ in 0..1 + next(4) {
            let (a, b) = (next(text.len() + 1), next(text.len() + 1));
            let (a, b) = (a.min(b), a.max(b));
            match next(3) {
                0 => drop(text.drain(a..b)),
                1 => {
                    let piece: Vec<char> = text[a..b].to_vec();
                    let at = next(text.len() + 1);
                    text.splice(at..at, piece);
                }
                _ => {
                    let token: Vec<char> = TOKENS[next(TOKENS.len())].chars().collect();
                    text.splice(a..a, token);
                }
            }
        }
        corpus.push(text.into_iter().collect());
        if i % 3 == 0 {
            corpus.push((0..next(80)).map(|_| TOKENS[next(TOKENS.len())]).collect::<Vec<_>>().join(" "));
        }
    }
    corpus
}

#[test]
fn the_hostile_corpus_never_ends_the_server() {
    let cache = cache("hostile");
    let mut client = start(&cache);
    let corpus = hostile_corpus();
    let doc = uri(&root().join("tests/hostile-lsp.net"));
    client.open(&doc, "");
    let requests = [
        "textDocument/hover",
        "textDocument/definition",
        "textDocument/completion",
        "textDocument/references",
        "textDocument/inlayHint",
        "textDocument/documentSymbol",
        "textDocument/formatting",
    ];
    for (version, text) in corpus.iter().enumerate() {
        let change = json!({ "text": text });
        client.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": doc, "version": version + 2 }, "contentChanges": [change] }),
        );
        // An edit of a range the text may not have: clamped, never a crash.
        let edit = json!({ "range": { "start": { "line": 3, "character": 2 }, "end": { "line": 99, "character": 999 } },
                           "text": "😀 ->" });
        client.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": doc, "version": version + 2 }, "contentChanges": [edit] }),
        );
        let lines = text.lines().count() as u32 + 2;
        for (k, method) in requests.iter().enumerate() {
            let position =
                json!({ "line": (version as u32 * 7 + k as u32) % lines, "character": (k * 13) % 40 });
            let mut params = json!({
                "textDocument": { "uri": doc }, "position": position,
                "range": { "start": { "line": 0, "character": 0 }, "end": position },
                "options": { "tabSize": 4, "insertSpaces": true },
            });
            if *method == "textDocument/references" {
                params["context"] = json!({ "includeDeclaration": true });
            }
            let response = client.request(method, params);
            assert!(response.get("result").is_some(), "{method} on corpus text {version}: {response}");
        }
    }
    // Requests the server does not know, and parameters that are wrong, are error responses.
    let unknown = client.request("textDocument/rename", json!({}));
    assert_eq!(unknown["error"]["code"], json!(-32601));
    let wrong = client.request("textDocument/hover", json!({ "textDocument": 3 }));
    assert_eq!(wrong["error"]["code"], json!(-32602));
    let unopened = client.request("textDocument/hover", at("file:///not/open.net", 0, 0));
    assert_eq!(unopened["result"], Value::Null);
    // A body that is not JSON, or JSON that is no message, is answered as JSON-RPC asks, and the
    // session goes on.
    client.send_body(b"{\"jsonrpc\": \"2.0\", \"id\": 1,");
    assert_eq!(client.response(&Value::Null)["error"]["code"], json!(-32700));
    client.send_body(br#"{"jsonrpc":"2.0","id":99,"method":7}"#);
    assert_eq!(client.response(&json!(99))["error"]["code"], json!(-32600));
    client.send_body(b"\xff\xfe");
    assert_eq!(client.response(&Value::Null)["error"]["code"], json!(-32700));
    assert!(client.shutdown().success());
}

/// A real editor: Neovim, headless, runs `editors/neovim/hover.lua`, which hovers on `b3` of
/// `models/resnet18.net`, lists the inlay hints and breaks the file. Skipped, saying so, where
/// no `nvim` is installed (`apt-get install neovim`).
#[test]
fn neovim_shows_the_hover() {
    let cache = cache("neovim");
    let run = std::process::Command::new("nvim")
        .args(["--headless", "-u", "NONE", "-c", "luafile editors/neovim/hover.lua"])
        .current_dir(root())
        .env("NNC", env!("CARGO_BIN_EXE_nnc"))
        .env("XDG_CACHE_HOME", &cache)
        .env("XDG_STATE_HOME", &cache)
        .env("XDG_DATA_HOME", &cache)
        .stdin(std::process::Stdio::null())
        .output();
    let Ok(out) = run else {
        eprintln!("skipped: no nvim here");
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("`[N, 64, 56, 56]` → `[N, 128, 28, 28]`"), "{stdout}");
    assert!(
        stdout.contains("head = adaptive_avgpool2d(1) -> flatten -> linear(classes)         [N, 10]"),
        "{stdout}"
    );
    assert!(stdout.contains("[E0105]"), "{stdout}");
}

/// A `Content-Length` no message has (lsp-server's own transport allocated it: 3.9 GB for
/// 4,000,000,000) ends the session at once with an error, having allocated nothing for it.
#[test]
fn a_message_over_the_limit_is_refused_before_it_is_read() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Content-Length: 4000000000\r\n\r\n{}").unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "the server still reads");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("a message of 4000000000 bytes, over the limit"), "{stderr}");
}

/// Completing an import replaces what is typed of it, dots included (an editor replaces only
/// the word at the cursor, and `.` ends a word: `std.std.resnet`); inside the quotes, the
/// `.net` files and folders beside the document; in a comment or a string, nothing.
#[test]
fn completion_knows_imports_comments_and_strings() {
    let cache = cache("complete");
    let dir = folder("lsp-complete", &[("blocks.net", "block b {\n    relu\n}\n"), ("notes.txt", "")]);
    std::fs::create_dir_all(dir.join("parts")).unwrap();
    let doc = uri(&dir.join("main.net"));
    let text = "import std.res\nimport \"bl\nnetwork n {\n    input [N, 4]\n    linear(4)  # linear(\n    upsample(mode=\"bil\n}\n";
    let mut client = start(&cache);
    client.open(&doc, text);
    let complete = |client: &mut Client, needle: &str, shift: u32| {
        let (line, col) = find(text, needle, 0, shift);
        client.result("textDocument/completion", at(&doc, line, col))
    };
    let modules = complete(&mut client, "std.res", 7);
    let resnet = modules.as_array().unwrap().iter().find(|i| i["label"] == "std.resnet").unwrap();
    assert_eq!(
        resnet["textEdit"],
        json!({ "range": { "start": { "line": 0, "character": 7 }, "end": { "line": 0, "character": 14 } },
                "newText": "std.resnet" })
    );
    let files = complete(&mut client, "\"bl", 3);
    let labels: Vec<&str> = files.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["blocks.net", "parts/"], "not main.net itself, nor notes.txt");
    assert_eq!(files[0]["textEdit"]["range"]["start"], json!({ "line": 1, "character": 8 }));
    assert_eq!(complete(&mut client, "# linear(", 9), json!([]), "in a comment");
    assert_eq!(complete(&mut client, "\"bil", 4), json!([]), "in a string");
    let code = complete(&mut client, "linear(4)", 7);
    assert!(code.as_array().unwrap().iter().any(|i| i["label"] == "out_features="), "{code}");
    assert!(client.shutdown().success());
}

/// An error of an imported file that no call of the document led to (a syntax error there) is
/// shown at the document's import too, naming the file, with the place itself related.
#[test]
fn an_error_in_an_import_shows_at_the_import() {
    let cache = cache("import-error");
    let imports = [("inner.net", "block b {\n    relu ->\n}\n"), ("outer.net", "import \"inner.net\"\n")];
    let dir = folder("lsp-import-error", &imports);
    let main = "# Through a chain of two imports.\nimport \"outer.net\"\n\nnetwork n {\n    input [N, 4]\n    linear(4)\n}\n";
    let doc = uri(&dir.join("main.net"));
    let mut client = start(&cache);
    client.open(&doc, main);
    let shown = client.diagnostics(&doc);
    assert_eq!(shown.as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown[0]["code"], "E0001", "{shown}");
    assert_eq!(shown[0]["range"]["start"], json!({ "line": 1, "character": 0 }), "{shown}");
    let message = shown[0]["message"].as_str().unwrap();
    assert!(message.starts_with("in `inner.net`, which this imports: "), "{message}");
    assert_eq!(shown[0]["relatedInformation"][0]["location"]["uri"], json!(uri(&dir.join("inner.net"))));
    assert_eq!(client.diagnostics(&uri(&dir.join("inner.net")))[0]["code"], "E0001");
    assert!(client.shutdown().success());
}

/// Going to a name's definition takes the binding in scope where the name is read: a repeat's
/// body is a scope of its own, and a binding after the reading is not it.
#[test]
fn definition_takes_the_binding_in_scope() {
    let cache = cache("scope");
    let doc = uri(&root().join("tests/scope-lsp.net"));
    let text = "network t(width = 8) {\n    input [N, 8]\n    a = repeat 2 {\n        y = linear(width)\n        y -> relu\n    }\n    y = linear(4)\n    z = y -> relu\n}\n";
    let mut client = start(&cache);
    client.open(&doc, text);
    assert_eq!(client.diagnostics(&doc), json!([]));
    let target = |client: &mut Client, needle: &str, nth: usize| {
        let (line, col) = find(text, needle, nth, 0);
        client.result("textDocument/definition", at(&doc, line, col))["range"]["start"].clone()
    };
    assert_eq!(target(&mut client, "y -> relu", 1), json!({ "line": 6, "character": 4 }), "the outer `y`");
    assert_eq!(target(&mut client, "y -> relu", 0), json!({ "line": 3, "character": 8 }), "the body's own");
    assert_eq!(target(&mut client, "width)", 0), json!({ "line": 0, "character": 10 }), "a parameter");
    // A name bound twice (an error, E0101) is the first binding, as the compiler keeps it, also
    // where the second binding's own value reads it.
    let twice = "network u {\n    input [N, 8]\n    y = linear(4)\n    y = y -> relu\n}\n";
    let other = uri(&root().join("tests/twice-lsp.net"));
    client.open(&other, twice);
    assert_eq!(client.diagnostics(&other)[0]["code"], "E0101");
    let (line, col) = find(twice, "y -> relu", 0, 0);
    let definition = client.result("textDocument/definition", at(&other, line, col));
    assert_eq!(definition["range"]["start"], json!({ "line": 2, "character": 4 }), "{definition}");
    assert!(client.shutdown().success());
}

/// The lifecycle as LSP 3.17 words it: a second `initialize` and any request after `shutdown`
/// are invalid requests, a notification then is dropped, and `exit` after `shutdown` ends with
/// status 0; without `shutdown`, with 1, even before `initialize`.
#[test]
fn the_lifecycle_is_the_protocols() {
    let cache = cache("lifecycle");
    let mut client = start(&cache);
    let again = client.request("initialize", json!({ "processId": null, "capabilities": {} }));
    assert_eq!(again["error"]["code"], json!(-32600), "{again}");
    let response = client.request("shutdown", Value::Null);
    assert_eq!(response["result"], Value::Null, "{response}");
    client.notify("$/cancelRequest", json!({ "id": 1 }));
    client.open("file:///after-shutdown.net", "network n {\n    input [N, 4]\n    evil(4)\n}\n");
    let after = client.request("textDocument/hover", at("file:///after-shutdown.net", 0, 0));
    assert_eq!(after["error"]["code"], json!(-32600), "{after}");
    let published = client.notifications.iter().any(|m| m["method"] == "textDocument/publishDiagnostics");
    assert!(!published, "a document opened after shutdown is not checked: {:?}", client.notifications);
    assert_eq!(client.exit().code(), Some(0));

    let client = Client::start(env!("CARGO_BIN_EXE_nnc"), &root(), &[("XDG_CACHE_HOME", &cache)]);
    assert_eq!(client.exit().code(), Some(1), "exit before initialize");
    let client = start(&cache);
    assert_eq!(client.exit().code(), Some(1), "exit without shutdown");

    // A request before `initialized` is answered: the acknowledgement is not waited for.
    let mut client = Client::start(env!("CARGO_BIN_EXE_nnc"), &root(), &[("XDG_CACHE_HOME", &cache)]);
    client.result("initialize", json!({ "processId": null, "capabilities": {} }));
    let symbols =
        client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": "file:///x.net" } }));
    assert_eq!(symbols, Value::Null);
    assert!(client.shutdown().success());
}

/// A document's hints read the other open documents' checks (an imported block's shapes come
/// from the network that calls it): after a check, a client that can refresh is asked to.
#[test]
fn hints_are_refreshed_when_another_document_changes_them() {
    let cache = cache("refresh");
    let blocks = "block widen(c) {\n    conv2d(c, 1)\n}\n";
    let dir = folder("lsp-refresh", &[("blocks.net", blocks)]);
    let main = "import \"blocks.net\"\n\nnetwork n {\n    input [N, 3, 8, 8]\n    widen(16)\n}\n";
    let (main_uri, blocks_uri) = (uri(&dir.join("main.net")), uri(&dir.join("blocks.net")));
    let mut client = Client::start(env!("CARGO_BIN_EXE_nnc"), &root(), &[("XDG_CACHE_HOME", &cache)]);
    let capabilities = json!({ "workspace": { "inlayHint": { "refreshSupport": true } } });
    client.result("initialize", json!({ "processId": null, "capabilities": capabilities }));
    client.notify("initialized", json!({}));
    client.open(&blocks_uri, blocks);
    client.open(&main_uri, main);
    client.diagnostics(&main_uri);
    let all = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 9, "character": 0 } });
    let hints = client
        .result("textDocument/inlayHint", json!({ "textDocument": { "uri": blocks_uri }, "range": all }));
    assert_eq!(hints[0]["label"], "[N, 16, 8, 8]", "{hints}");
    let refreshes = |client: &mut Client| {
        // A request: the server checks the changes before it first, so whatever that check
        // sent comes before the answer.
        client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": blocks_uri } }));
        let sent: Vec<Value> = client
            .notifications
            .iter()
            .filter(|m| m["method"] == "workspace/inlayHint/refresh")
            .cloned()
            .collect();
        client.notifications.clear();
        sent
    };
    let sent = refreshes(&mut client);
    assert!(!sent.is_empty(), "no refresh after main.net's check");
    // Answered as a client answers; the server reads on.
    client.send(&json!({ "jsonrpc": "2.0", "id": sent[0]["id"], "result": null }));
    // main.net changed: blocks.net's hints, which its check gives, may have.
    let wider = json!({ "text": main.replace("widen(16)", "widen(32)") });
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": main_uri, "version": 2 }, "contentChanges": [wider] }),
    );
    assert!(!refreshes(&mut client).is_empty(), "no refresh after main.net changed");
    let hints = client
        .result("textDocument/inlayHint", json!({ "textDocument": { "uri": blocks_uri }, "range": all }));
    assert_eq!(hints[0]["label"], "[N, 32, 8, 8]", "{hints}");
    // blocks.net changed: only its own hints, which the editor asks for itself.
    let edit = json!({ "text": blocks.replace("conv2d(c, 1)", "conv2d(c, 1) -> relu") });
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": blocks_uri, "version": 2 }, "contentChanges": [edit] }),
    );
    assert_eq!(refreshes(&mut client), Vec::<Value>::new(), "a refresh no other document needs");
    assert!(client.shutdown().success());

    // A client that does not take refreshes is sent none.
    let mut client = start(&cache);
    client.open(&blocks_uri, blocks);
    client.open(&main_uri, main);
    client.diagnostics(&main_uri);
    client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": main_uri } }));
    assert!(!client.notifications.iter().any(|m| m["method"] == "workspace/inlayHint/refresh"));
    assert!(client.shutdown().success());
}

/// Clients spell URIs their own way (Neovim leaves `(` as it is, where nnc writes `%28`): an
/// open document's import is named by the editor's URI, so its diagnostics reach that document
/// and are withdrawn from it.
#[test]
fn an_open_import_keeps_the_editors_spelling() {
    let cache = cache("spelling");
    let blocks = "block widen(c) {\n    _ + conv2d(c, 1)\n}\n";
    let dir = folder("lsp spelling(1)", &[("blocks.net", blocks)]);
    let main = "import \"blocks.net\"\n\nnetwork n {\n    input [N, 3, 8, 8]\n    widen(16)\n}\n";
    let spelled = |file: &str| uri(&dir.join(file)).replace("%28", "(").replace("%29", ")");
    let (main_uri, blocks_uri) = (spelled("main.net"), spelled("blocks.net"));
    assert!(blocks_uri.contains("(1)"), "{blocks_uri}");
    let mut client = start(&cache);
    // The importer first, checked before blocks.net is open (its mistake there published under
    // nnc's spelling, the file being no document yet); the check is made again on the open.
    client.open(&main_uri, main);
    client.diagnostics(&main_uri);
    client.open(&blocks_uri, blocks);
    let mut errors = client.diagnostics(&blocks_uri);
    while errors.as_array().unwrap().is_empty() {
        errors = client.diagnostics(&blocks_uri);
    }
    assert_eq!(errors[0]["code"], "E0202", "{errors}");
    // Fixed in the editor: withdrawn from the document, under its own spelling.
    let fixed = json!({ "text": "block widen(c) {\n    conv2d(c, 1)\n}\n" });
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": blocks_uri, "version": 2 }, "contentChanges": [fixed] }),
    );
    assert_eq!(client.diagnostics(&blocks_uri), json!([]));
    // What was published under nnc's own spelling before blocks.net was open is withdrawn.
    let encoded = uri(&dir.join("blocks.net"));
    let last = client.notifications.iter().rev().find(|m| m["params"]["uri"] == encoded.as_str());
    assert_eq!(last.map(|m| &m["params"]["diagnostics"]), Some(&json!([])), "{:?}", client.notifications);
    assert!(client.shutdown().success());
}

/// A document over the size limit of files (which the editor holds, so no read refused it) is
/// not parsed: pest would take up to 500 bytes of memory per byte. It gets the limit's error.
#[test]
fn a_document_over_the_size_limit_is_refused_unparsed() {
    let cache = cache("large");
    let mut client = start(&cache);
    let doc = uri(&root().join("tests/large-lsp.net"));
    let term = format!("{}1{}", "(".repeat(30), ")".repeat(30));
    let sum = vec![term; 40_000].join(" + ");
    let text = format!("network n {{\n    input [N, 4]\n    linear({sum})\n}}\n");
    assert!(text.len() as u64 > nnc_compiler::MAX_FILE_BYTES);
    client.open(&doc, &text);
    let shown = client.diagnostics(&doc);
    assert_eq!(shown[0]["code"], "E0002", "{shown}");
    assert!(shown[0]["message"].as_str().unwrap().contains("over the limit of 2097152"), "{shown}");
    let options = json!({ "tabSize": 4, "insertSpaces": true });
    let formatted = client
        .result("textDocument/formatting", json!({ "textDocument": { "uri": doc }, "options": options }));
    assert_eq!(formatted, Value::Null);
    assert!(client.shutdown().success());
}
