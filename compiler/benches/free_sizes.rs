//! `cargo bench -p nnc-compiler --bench free_sizes`: what checking a network for every input
//! size costs, beside checking it at one size, in the same run.
//!
//! Each network is checked with its input's sizes free (`input [N, 3, H, W]`: two expansions at
//! the probes, the sizes as expressions, the valid sets solved) and at one size (`--set H=…`,
//! the check as it was before free sizes), and with a `where` to prove where it has one. Medians
//! of many runs after a warm-up; printed as ratios, not asserted, since a loaded machine would
//! make a timed test flaky.

use std::path::Path;
use std::time::{Duration, Instant};

use nnc_compiler::{compile, Options, Root};

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..runs.div_ceil(10) {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let freed = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        text.replace(", size, size]", ", H, W]").replace("[N, length] int", "[N, T] int")
    };
    // Each network, its source with free sizes, and the one size it is also checked at.
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("resnet18", freed("models/resnet18.net"), vec![("H", "224"), ("W", "224")]),
        ("resnet50", freed("models/zoo/resnet50.net"), vec![("H", "224"), ("W", "224")]),
        ("densenet", freed("models/densenet.net"), vec![("H", "96"), ("W", "96")]),
        (
            "unet (and its where)",
            std::fs::read_to_string(root.join("tests/ok/free-sizes.net")).unwrap(),
            vec![("H", "256"), ("W", "256")],
        ),
        ("text_classifier", freed("models/zoo/text_classifier.net"), vec![("T", "64")]),
    ];
    println!("{:22} {:>12} {:>12} {:>7}", "network", "one size", "every size", "ratio");
    for (name, text, fixed) in cases {
        let dir = root.join("models");
        let check = |overrides: &[(&str, &str)]| {
            let free = overrides.is_empty();
            let overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let network = name.starts_with("unet").then(|| "unet".to_string());
            let options = Options { overrides, network, ..Options::default() };
            let c = compile(Root::Text { name: "bench.net", text: &text, dir: Some(&dir) }, &options);
            assert!(c.diagnostics.is_empty(), "{name}: {:?}", c.diagnostics);
            assert_eq!(c.graphs[0].free.is_some(), free);
        };
        let one = median(30, || check(&fixed));
        let every = median(30, || check(&[]));
        println!("{name:22} {:>9.2} ms {:>9.2} ms {:>6.2}×", ms(one), ms(every), ms(every) / ms(one));
    }
}
