//! `cargo bench -p nnc-runtime --bench layouts`: the inference plan in each layout against the
//! interpreter, on the networks `Layout::for_graph` chooses for (LeNet, ResNet-18 and
//! MobileNetV2 at 96×96), at batch 1 and 32, on 2 threads. Each round times every variant
//! once, in turn, so that a machine busy for a while slows them all alike; the figures are the
//! medians of the rounds, as ratios to the interpreter, and the layout the plan chooses is
//! marked.

use std::time::Instant;

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{Inference, Init, Layout, Model};
use tch::{nn, Device, Kind, Tensor};

const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    tch::set_num_threads(2);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, size) in [
        ("models/lenet.net", None),
        ("models/resnet18.net", Some(96)),
        ("models/zoo/mobilenet_v2.net", Some(96)),
    ] {
        let overrides = size.map(|s: i64| vec![("size".to_string(), s.to_string())]).unwrap_or_default();
        let compiled = compile(Root::Path(&root.join(file)), &Options { overrides, ..Options::default() });
        let graph = compiled.graphs.into_iter().next().expect("a network");
        let chosen = Layout::for_graph(&graph);
        let dims: Vec<i64> = graph.node(graph.input()).shape.dims.iter().map(|&d| d as i64).collect();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::new(&vs.root(), graph, Init::PyTorch);
        let layouts = [Layout::Contiguous, Layout::ChannelsLast];
        let plans: Vec<Inference> =
            layouts.iter().map(|&l| Inference::new(&model, l).expect("a plan")).collect();
        for batch in [1i64, 32] {
            let shape: Vec<i64> = std::iter::once(batch).chain(dims.iter().copied()).collect();
            let x = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu));
            let runs = if batch == 1 { 20 } else { 2 };
            let time = |f: &dyn Fn()| {
                f();
                let start = Instant::now();
                for _ in 0..runs {
                    f();
                }
                start.elapsed().as_secs_f64() / runs as f64
            };
            let mut plain = Vec::new();
            let mut planned = vec![Vec::new(); plans.len()];
            tch::no_grad(|| {
                for _ in 0..ROUNDS {
                    plain.push(time(&|| drop(model.try_forward(&x, false).expect("a forward"))));
                    for (k, plan) in plans.iter().enumerate() {
                        planned[k].push(time(&|| drop(plan.try_forward(&x).expect("a forward"))));
                    }
                }
            });
            let plain = median(plain);
            let name = file.rsplit('/').next().unwrap_or(file);
            print!("{name:<18} batch {batch:>2}: interpreter {:>9.3} ms", plain * 1e3);
            for (k, times) in planned.into_iter().enumerate() {
                let mark = if layouts[k] == chosen { "*" } else { " " };
                print!("  {:?}{mark} ×{:.2}", layouts[k], plain / median(times));
            }
            println!();
        }
    }
    println!("(× the interpreter's speed, median of {ROUNDS} rounds; * the layout for_graph chooses)");
}
