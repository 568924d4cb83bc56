//! Training: the loss falls on learnable data, a resumed run ends with the same weights as an
//! uninterrupted one, a diverging run stops and keeps its last good checkpoint, and broken IDX
//! files are refused with a reason.

use std::path::{Path, PathBuf};

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::data::{self, encode_idx, Dataset};
use nnc_runtime::train::{Optimizer, Quiet, TrainConfig, Trainer};
use nnc_runtime::{Init, Model, RuntimeError};
use tch::{nn, Device, Kind, Tensor};

/// libtorch's random generator is global, and tests run in parallel threads: the tests that
/// need reproducible randomness take this lock first.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Four classes of 8×8 images: class k has its bright band on rows 2k and 2k + 1, plus noise.
fn bands(n: i64, seed: i64) -> Dataset {
    tch::manual_seed(seed);
    let labels = Tensor::randint(4, [n], (Kind::Int64, Device::Cpu));
    let rows = Tensor::arange(8, (Kind::Int64, Device::Cpu)).view([1, 8]);
    let band = rows.divide_scalar_mode(2, "floor").eq_tensor(&labels.view([n, 1])).to_kind(Kind::Float);
    let noise = Tensor::rand([n, 1, 8, 8], (Kind::Float, Device::Cpu)) * 0.5;
    let images = (band.view([n, 1, 8, 1]) * 0.5 + noise) * 255.0;
    Dataset { images: images.clamp(0.0, 255.0).to_kind(Kind::Uint8), labels }
}

const NET: &str = "network tiny { input [N, 1, 8, 8]\n conv2d(4, 3, padding=1) -> relu -> dropout(0.2) -> flatten -> linear(4) }";

fn model(vs: &nn::VarStore) -> Model {
    let compiled = compile(Root::Text { name: "tiny.net", text: NET, dir: None }, &Options::default());
    Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::XavierUniform)
}

fn config(epochs: usize, lr: f64, checkpoint: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 32,
        lr,
        optimizer: Optimizer::Sgd { momentum: 0.9, weight_decay: 1e-4 },
        seed: 3,
        resize: None,
        device: Device::Cpu,
        checkpoint,
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-train-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_loss_falls_and_accuracy_beats_chance() {
    let _rng = rng();
    let (train, test) = (bands(512, 1), bands(128, 2));
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut trainer = Trainer::new(&m, &mut vs, config(4, 0.05, None));
    trainer.run(&train, &test, &mut Quiet).unwrap();
    let h = &trainer.history;
    assert_eq!(h.len(), 4);
    assert!(
        h[3].train_loss < 0.5 * h[0].train_loss,
        "loss {:?}",
        h.iter().map(|m| m.train_loss).collect::<Vec<_>>()
    );
    assert!(h[3].test_acc > 0.6, "test accuracy {} (chance: 0.25)", h[3].test_acc);
}

fn weights_of(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let _rng = rng();
    let (train, test) = (bands(256, 1), bands(64, 2));
    let dir = tmp("resume");

    tch::manual_seed(0);
    let mut vs_a = nn::VarStore::new(Device::Cpu);
    let a = model(&vs_a);
    Trainer::new(&a, &mut vs_a, config(3, 0.05, Some(dir.join("a.safetensors"))))
        .run(&train, &test, &mut Quiet)
        .unwrap();

    // Stopped after one epoch, as if killed, then resumed by a fresh process's state.
    tch::manual_seed(0);
    let mut vs_b = nn::VarStore::new(Device::Cpu);
    let b = model(&vs_b);
    let ckpt = dir.join("b.safetensors");
    Trainer::new(&b, &mut vs_b, config(1, 0.05, Some(ckpt.clone()))).run(&train, &test, &mut Quiet).unwrap();
    tch::manual_seed(99);
    let mut vs_c = nn::VarStore::new(Device::Cpu);
    let c = model(&vs_c);
    let mut resumed = Trainer::new(&c, &mut vs_c, config(3, 0.05, Some(ckpt)));
    resumed.resume(&dir.join("b.safetensors")).unwrap();
    assert_eq!(resumed.history.len(), 1);
    resumed.run(&train, &test, &mut Quiet).unwrap();
    assert_eq!(resumed.history.len(), 3);

    for ((name, wa), (_, wc)) in weights_of(&vs_a).iter().zip(weights_of(&vs_c)) {
        assert!(wa.equal(&wc), "`{name}` differs after resuming");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_stops_and_keeps_its_last_good_checkpoint() {
    let _rng = rng();
    let (train, test) = (bands(128, 1), bands(32, 2));
    let dir = tmp("nan");
    let ckpt = dir.join("c.safetensors");
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    Trainer::new(&m, &mut vs, config(1, 0.05, Some(ckpt.clone()))).run(&train, &test, &mut Quiet).unwrap();
    let good = std::fs::read(&ckpt).unwrap();

    let mut trainer = Trainer::new(&m, &mut vs, config(3, 1e30, Some(ckpt.clone())));
    trainer.resume(&ckpt).unwrap();
    let err = trainer.run(&train, &test, &mut Quiet).unwrap_err();
    assert!(matches!(err, RuntimeError::Diverged(_)), "{err}");
    assert!(err.to_string().contains("epoch 2"), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), good, "the last good checkpoint must stay as it was");
    std::fs::remove_dir_all(dir).unwrap();
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn broken_idx_files_are_refused_with_a_reason() {
    let dir = tmp("idx");
    let images = write(&dir, "images", &encode_idx(2051, &[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]));
    let labels = write(&dir, "labels", &encode_idx(2049, &[2], &[3, 9]));
    let ok = data::read_pair(&images, &labels, 10).unwrap();
    assert_eq!(ok.images.size(), [2, 1, 2, 2]);

    let cases: Vec<(PathBuf, PathBuf, &str)> = vec![
        (write(&dir, "magic", &encode_idx(2049, &[2, 2, 2], &[0; 8])), labels.clone(), "magic number 2049"),
        (
            write(&dir, "short", &encode_idx(2051, &[2, 2, 2], &[0; 7])),
            labels.clone(),
            "truncated: dimensions [2, 2, 2] need 8 bytes, found 7",
        ),
        (
            write(&dir, "long", &encode_idx(2051, &[2, 2, 2], &[0; 9])),
            labels.clone(),
            "longer than its header says",
        ),
        (write(&dir, "header", &[0, 0, 8, 3, 0, 0]), labels.clone(), "header is truncated"),
        (write(&dir, "empty", &[]), labels.clone(), "only 0 bytes"),
        (images.clone(), write(&dir, "count", &encode_idx(2049, &[3], &[0, 1, 2])), "has 2 images but"),
        (
            images.clone(),
            write(&dir, "label", &encode_idx(2049, &[2], &[1, 10])),
            "label 10 at index 1 is outside 0..10",
        ),
        (write(&dir, "gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]), labels.clone(), "cannot read"),
    ];
    for (images, labels, expected) in cases {
        let err = data::read_pair(&images, &labels, 10).err().expect("a broken file");
        assert!(err.to_string().contains(expected), "{}: `{err}` should say `{expected}`", images.display());
    }
    let err = data::load_dir(&dir, 10).err().unwrap();
    assert!(err.to_string().contains("train-images-idx3-ubyte or train-images-idx3-ubyte.gz"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn real_fashion_mnist_loads_when_installed() {
    let Some(dir) =
        data::default_data_dirs().into_iter().find(|d| d.join("train-images-idx3-ubyte.gz").is_file())
    else {
        eprintln!("skipped: Fashion-MNIST is not installed (scripts/setup-data.sh installs it)");
        return;
    };
    let (train, test) = data::load_dir(&dir, 10).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.image_size(), (28, 28));
    // Every class appears 6,000 times in the training set.
    assert!(train.labels.bincount::<Tensor>(None, 10).equal(&Tensor::full(
        [10],
        6000,
        (Kind::Int64, Device::Cpu)
    )));
}

#[test]
fn pictures_are_read_grey() {
    let dir = tmp("picture");
    let path = dir.join("gradient.png");
    let pixels: Vec<u8> = (0..12u8).flat_map(|i| [i * 20, i * 20, i * 20]).collect();
    image::RgbImage::from_raw(4, 3, pixels).unwrap().save(&path).unwrap();
    let t = data::read_picture(&path).unwrap();
    assert_eq!(t.size(), [1, 1, 3, 4]);
    assert_eq!(t.int64_value(&[0, 0, 2, 3]), 220);
    assert!(data::is_picture(&path) && !data::is_picture(&dir.join("t10k-images-idx3-ubyte.gz")));
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    let err = data::read_picture(&dir.join("broken.png")).unwrap_err();
    assert!(err.to_string().starts_with("cannot read the picture"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
