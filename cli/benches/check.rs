//! `cargo bench -p nnc-cli --bench check`: how long checking takes, against the goals.
//!
//! - the whole `nnc check models/resnet18.net` process, beside a process that does nothing
//!   (`true`), the floor any command pays to start;
//! - parse + check of the 1000-layer ResNet in process;
//! - the same network at several depths, to show that time grows linearly with the layers.
//!
//! Medians of many runs, after a warm-up; timed here rather than asserted in a test, because
//! a loaded CI machine would make a timed test flaky.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nnc_compiler::{compile, Options, Root};

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
}
