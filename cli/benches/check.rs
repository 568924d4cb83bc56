//! `cargo bench -p nnc-cli --bench check`: how long checking takes, against the goals.
//!
//! - the whole `nnc check models/resnet18.net` process, beside a process that does nothing
//!   (`true`), the floor any command pays to start;
//! - parse + check of the 1000-layer ResNet in process;
//! - the same network at several depths, to show that time grows linearly with the layers;
//! - `nnc lsp` on the 1000-layer ResNet: the check traced for the editor, in process, and an
//!   edit followed by a hover, and an edit followed by its diagnostics, through the protocol.
//!
//! Medians of many runs, after a warm-up; timed here rather than asserted in a test, because
//! a loaded CI machine would make a timed test flaky.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nnc_compiler::{compile, Options, Root};
use serde_json::json;

#[path = "../tests/lsp_client/mod.rs"]
mod lsp_client;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..runs.div_ceil(10) {
        f();
    }
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let nnc = env!("CARGO_BIN_EXE_nnc");

    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).current_dir(root).output().unwrap();
        assert!(out.status.success(), "{program} {args:?} failed");
    };
    let process = time(200, || run(nnc, &["check", "models/resnet18.net"]));
    let floor = time(200, || run("true", &[]));
    println!("nnc check models/resnet18.net (whole process): {:.2} ms (goal: under 3 ms)", ms(process));
    println!("  a process that does nothing (`true`):         {:.2} ms", ms(floor));
    println!(
        "  ratio to the goal: {:.2}; time above the bare process: {:.2} ms",
        ms(process) / 3.0,
        ms(process - floor.min(process))
    );

    let source = std::fs::read_to_string(root.join("models/resnet-1000.net")).unwrap();
    let check = |n: u64| {
        let options = Options { overrides: vec![("n".into(), n.to_string())], ..Options::default() };
        let c = compile(Root::Text { name: "resnet-1000.net", text: &source, dir: None }, &options);
        assert!(c.diagnostics.is_empty());
        c.graphs[0].nodes.len()
    };
    let deep = time(50, || {
        check(166);
    });
    println!(
        "\nparse + check of resnet-1000.net (n = 166): {:.2} ms (goal: under 50 ms; ratio {:.2})",
        ms(deep),
        ms(deep) / 50.0
    );

    // Linear growth means a constant cost per added layer, whatever the depth; the fixed cost
    // (parsing, the standard library) is what the first row adds on top.
    println!("\nscaling (n residual blocks per stage):");
    println!("  {:>5}  {:>7}  {:>9}  {:>24}", "n", "layers", "time (ms)", "µs per layer added since");
    let mut marginal = Vec::new();
    let mut previous: Option<(usize, Duration)> = None;
    for n in [20, 40, 83, 166, 332] {
        let layers = check(n);
        let t = time(30, || {
            check(n);
        });
        let added = previous.map(|(l, p)| (t.as_secs_f64() - p.as_secs_f64()) * 1e6 / (layers - l) as f64);
        marginal.extend(added);
        let shown = added.map_or("-".to_string(), |us| format!("{us:.2}"));
        println!("  {n:>5}  {layers:>7}  {:>9.2}  {shown:>24}", ms(t));
        previous = Some((layers, t));
    }
    let (lo, hi) = marginal.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!("  the cost per added layer varies by a factor of {:.2} over a 16× range of depth (1.00: perfectly linear)", hi / lo);

    language_server(root, nnc, &source);
}

/// `nnc lsp` on resnet-1000.net: each edit is checked again, traced (what every expression
/// gave, for the hovers and hints), before the request after it is answered.
fn language_server(root: &Path, nnc: &str, source: &str) {
    let traced = time(50, || {
        let options = Options { trace: true, ..Options::default() };
        let c = compile(Root::Text { name: "resnet-1000.net", text: source, dir: None }, &options);
        assert!(c.diagnostics.is_empty() && !c.expansions[0].values.is_empty());
    });
    println!("\nnnc lsp on resnet-1000.net:");
    println!("  parse + check, traced for the editor (in process): {:.2} ms", ms(traced));

    let cache = std::env::temp_dir().join(format!("nnc-bench-{}", std::process::id()));
    let mut client = lsp_client::Client::start(nnc, root, &[("XDG_CACHE_HOME", &cache)]);
    client.initialize();
    let doc = lsp_client::uri(&root.join("models/resnet-1000.net"));
    client.open(&doc, source);
    assert_eq!(client.diagnostics(&doc), json!([]));
    let s1 = source.lines().position(|l| l.contains("s1 = ")).unwrap() as u32;
    // The whole text sent at each edit, as many clients do: `linear(classes)` made another.
    let mut version = 1;
    let mut edit = |client: &mut lsp_client::Client, head: &str| {
        version += 1;
        let change = json!({ "text": source.replace("linear(classes)", head) });
        client.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": doc, "version": version }, "contentChanges": [change] }),
        );
    };
    let mut k = 0;
    let hover = time(50, || {
        k += 1;
        edit(&mut client, &format!("linear(classes + {})", k % 10));
        let hover = client.result("textDocument/hover", lsp_client::at(&doc, s1, 5));
        assert!(hover["contents"]["value"].as_str().unwrap().contains("[N, 16, 28, 28]"));
    });
    println!("  an edit, then a hover on `s1` (checked again, answered): {:.2} ms", ms(hover));
    // Alternately broken and mended, so that each edit changes the diagnostics published.
    let mut broken = false;
    let diagnostics = time(50, || {
        broken = !broken;
        edit(&mut client, if broken { "linear(classes, bias=0)" } else { "linear(classes)" });
        let published = client.diagnostics(&doc);
        assert_eq!(published.as_array().unwrap().is_empty(), !broken, "{published}");
    });
    println!("  an edit, then its diagnostics published:                {:.2} ms", ms(diagnostics));
    client.notifications.clear();
    assert!(client.shutdown().success());
    let _ = std::fs::remove_dir_all(cache);
}
