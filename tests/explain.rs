//! Every diagnostic code's explanation, as `nnc explain` prints it: its broken example gets that
//! code and no other, and its fixed example checks without any diagnostic.

use std::path::PathBuf;

use nnc_compiler::back::render::{render, Style};
use nnc_compiler::{compile, Code, Compilation, Diagnostic, Options, Root};

/// The other codes a broken example may get besides its own: those its mistake causes.
const FOLLOW_ONS: &[(Code, Code)] = &[
    // The calls of the blocks that a missing import would have brought.
    (Code::MissingImport, Code::UnknownName),
];

#[test]
fn every_code_is_explained_by_examples_that_check() {
    let mut failures = Vec::new();
    for &code in Code::ALL {
        let e = code.explanation();
        let name = code.as_str();
        let mut fail = |what: String| failures.push(format!("{name}: {what}"));
        if e.summary.is_empty() || e.summary.contains('\n') || e.text.is_empty() {
            fail("the summary must be one line, and the text not empty".into());
        }
        if e.broken == e.fixed {
            fail("the fix changes nothing".into());
        }

        let broken = example(code, "broken", e.broken, e.standalone);
        let shown = render(&broken.diagnostics, &broken.sources, Style::Plain);
        let own = |d: &&Diagnostic| d.code == code && d.severity == code.severity();
        let follow_on = |d: &&Diagnostic| FOLLOW_ONS.contains(&(code, d.code)) && d.is_error();
        if !broken.diagnostics.iter().any(|d| own(&d)) {
            fail(format!("the broken example does not get {name}:\n{shown}"));
        } else if !broken.diagnostics.iter().all(|d| own(&d) || follow_on(&d)) {
            fail(format!("the broken example gets other codes too:\n{shown}"));
        }

        let fixed = example(code, "fixed", e.fixed, e.standalone);
        if !fixed.diagnostics.is_empty() || fixed.graphs.is_empty() {
            let shown = render(&fixed.diagnostics, &fixed.sources, Style::Plain);
            fail(format!("the fixed example does not check cleanly:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Only the codes that the text of one file cannot produce have examples of several files or a
/// command line.
#[test]
fn only_what_text_cannot_show_needs_files() {
    let not_standalone: Vec<Code> =
        Code::ALL.iter().copied().filter(|c| !c.explanation().standalone).collect();
    assert_eq!(not_standalone, [Code::Io, Code::ImportCycle, Code::Usage]);
}

/// Compiles an example: a standalone one from its text; any other as the files and command line
/// it shows, written into a folder of their own.
fn example(code: Code, which: &str, text: &str, standalone: bool) -> Compilation {
    if standalone {
        return compile(Root::Text { name: "example.net", text, dir: None }, &Options::default());
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explain").join(code.as_str()).join(which);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let (command, files) = parse_example(text);
    assert!(!files.is_empty(), "{}: no file in the {which} example", code.as_str());
    for (name, body) in &files {
        // E0002's broken example is a file saved as Latin-1, which a Rust string cannot hold.
        let bytes =
            if code == Code::Io && which == "broken" { latin1(body) } else { body.as_bytes().to_vec() };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let (root, options) = match command {
        Some(command) => parse_command(&command),
        None => (files[0].0.clone(), Options::default()),
    };
    compile(Root::Path(&dir.join(root)), &options)
}

/// The `$ nnc ...` line, if any, and the files: each begins at a `# name.net` line; an example
/// without one is one file, `example.net`.
fn parse_example(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut command = None;
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("$ ") {
            command = Some(c.to_string());
            continue;
        }
        let header = line.strip_prefix("# ").filter(|n| n.ends_with(".net") && !n.contains(' '));
        match (header, files.last_mut()) {
            (Some(name), _) => files.push((name.to_string(), String::new())),
            (None, Some((_, body))) => *body += &format!("{line}\n"),
            (None, None) if line.trim().is_empty() => {}
            (None, None) => files.push(("example.net".into(), format!("{line}\n"))),
        }
    }
    (command, files)
}

/// The root file and options of `nnc check FILE [--set NAME=VALUE]... [--network NAME]`.
fn parse_command(command: &str) -> (String, Options) {
    let mut words = command.split_whitespace();
    assert_eq!((words.next(), words.next()), (Some("nnc"), Some("check")), "{command}");
    let root = words.next().expect("a file").to_string();
    let mut options = Options::default();
    while let Some(word) = words.next() {
        let value = words.next().unwrap_or_else(|| panic!("`{word}` without a value in `{command}`"));
        match word {
            "--set" => {
                let (name, value) = value.split_once('=').expect("NAME=VALUE");
                options.overrides.push((name.into(), value.into()));
            }
            "--network" => options.network = Some(value.into()),
            _ => panic!("`{word}` in `{command}`"),
        }
    }
    (root, options)
}

/// `text` in Latin-1: a byte per character.
fn latin1(text: &str) -> Vec<u8> {
    text.chars().map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character")).collect()
}
