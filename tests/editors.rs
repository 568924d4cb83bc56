//! The editor package in `editors/vscode/`: its TextMate grammar and manifest are valid JSON,
//! the grammar highlights exactly the words `net.pest` reserves, and the manifest points at
//! files that exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn json(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// The words of the grammar's keywords (`kw_if = @{ "if" ~ !ident_char }`), element types and
/// `training`: every word the language gives a meaning of its own.
fn pest_words() -> BTreeSet<String> {
    let pest = std::fs::read_to_string(root().join("grammar/net.pest")).expect("net.pest");
    let mut words = BTreeSet::new();
    for line in pest.lines() {
        let Some((rule, body)) = line.split_once('=') else { continue };
        let rule = rule.trim();
        if rule.starts_with("kw_") || rule == "elem_type" || rule == "training_flag" {
            let quoted: Vec<&str> = body.split('"').collect();
            // The strings are the odd pieces between quotes.
            let word = |w: &&&str| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_');
            words.extend(quoted.iter().skip(1).step_by(2).filter(word).map(|w| w.to_string()));
        }
    }
    assert!(words.len() > 20, "{words:?}");
    words
}

/// The words of the TextMate grammar's `keywords`: each pattern is `\b(?:a|b|c)\b`.
fn textmate_words(grammar: &Value) -> BTreeSet<String> {
    let patterns = grammar["repository"]["keywords"]["patterns"].as_array().expect("keyword patterns");
    let mut words = BTreeSet::new();
    for pattern in patterns {
        let regex = pattern["match"].as_str().expect("a match");
        let inner = regex
            .split_once("(?:")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inner, _)| inner)
            .unwrap_or_else(|| panic!("not of the form \\b(?:a|b)\\b: {regex}"));
        words.extend(inner.split('|').map(String::from));
    }
    words
}

#[test]
fn the_textmate_grammar_highlights_the_keywords_of_net_pest() {
    let grammar = json("editors/vscode/syntaxes/nnc.tmLanguage.json");
    assert_eq!(grammar["scopeName"], "source.nnc");
    assert_eq!(
        textmate_words(&grammar),
        pest_words(),
        "editors/vscode/syntaxes/nnc.tmLanguage.json and net.pest differ"
    );
    // Every `include` names a rule of the repository.
    let repository = grammar["repository"].as_object().expect("a repository");
    for include in grammar["patterns"].as_array().expect("patterns") {
        let name = include["include"].as_str().expect("an include").trim_start_matches('#');
        assert!(repository.contains_key(name), "no rule `{name}`");
    }
}

#[test]
fn the_vscode_manifest_names_files_that_exist() {
    let manifest = json("editors/vscode/package.json");
    let dir = root().join("editors/vscode");
    let main = manifest["main"].as_str().expect("main");
    assert!(dir.join(main).is_file(), "{main}");
    let language = &manifest["contributes"]["languages"][0];
    assert_eq!(language["id"], "nnc");
    assert_eq!(language["extensions"][0], ".net");
    let configuration = language["configuration"].as_str().expect("language configuration");
    let _ = json(&format!("editors/vscode/{}", configuration.trim_start_matches("./")));
    let grammar = &manifest["contributes"]["grammars"][0];
    assert_eq!(grammar["language"], "nnc");
    assert_eq!(grammar["scopeName"], "source.nnc");
    let path = grammar["path"].as_str().expect("grammar path");
    assert!(dir.join(path).is_file(), "{path}");
    assert!(manifest["dependencies"]["vscode-languageclient"].is_string());
    let extension = std::fs::read_to_string(dir.join(main)).expect("extension.js");
    assert!(extension.contains("args: ['lsp']"), "the extension starts `nnc lsp`");
}
