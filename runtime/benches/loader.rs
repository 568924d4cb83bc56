//! `cargo bench -p nnc-runtime --bench loader`: the data pipeline alone (shuffled batches of
//! Fashion-MNIST, converted to floats and resized on libtorch), beside the training step it
//! feeds, to show that the loader keeps up. Needs the data (scripts/setup-data.sh).

use std::time::Instant;

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::data::{self, Batches};
use nnc_runtime::{Init, Model};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// Training examples per second of `file` at `size` pixels (median of 5 steps after 2).
fn training_rate(file: &str, size: i64, batch: i64) -> f64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
    let overrides = if size == 28 { vec![] } else { vec![("size".to_string(), size.to_string())] };
    let compiled = compile(Root::Path(&path), &Options { overrides, ..Options::default() });
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().expect("a network"), Init::PyTorch);
    let mut sgd = nn::Sgd::default().build(&vs, 0.01).expect("an optimiser");
    let x = Tensor::randn([batch, 1, size, size], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [batch], (Kind::Int64, Device::Cpu));
    let mut rates: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            let loss = model.try_forward(&x, true).expect("the input fits").cross_entropy_for_logits(&y);
            sgd.backward_step(&loss);
            batch as f64 / start.elapsed().as_secs_f64()
        })
        .skip(2)
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    tch::set_num_threads(2);
    let Some(dir) =
        data::default_data_dirs().into_iter().find(|d| d.join("train-images-idx3-ubyte.gz").is_file())
    else {
        println!("skipped: Fashion-MNIST is not installed (scripts/setup-data.sh)");
        return;
    };
    let start = Instant::now();
    let (train, _) = data::load_dir(&dir, 10).expect("the data");
    println!("reading and checking the IDX files: {:.2} s", start.elapsed().as_secs_f64());
    println!(
        "\n{:<22} {:>16} {:>22} {:>8}",
        "batches of 256", "loader (ex/s)", "training step (ex/s)", "ratio"
    );
    for (model, size) in [("lenet.net", 28), ("resnet18.net", 96), ("alexnet.net", 224)] {
        let start = Instant::now();
        let mut seen = 0;
        for batch in Batches::new(&train, 256, true, (size != 28).then_some(size), Device::Cpu) {
            let (x, _) = batch.expect("a batch of the real data");
            seen += x.size()[0];
        }
        let loader = seen as f64 / start.elapsed().as_secs_f64();
        let step = training_rate(model, size, if size == 224 { 32 } else { 256 });
        println!(
            "{:<22} {loader:>16.0} {step:>22.0} {:>8.1}",
            format!("{model} at {size}×{size}"),
            loader / step
        );
    }
    println!("\n(ratio: how many times faster the loader delivers batches than training uses them)");
}
