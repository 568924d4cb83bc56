//! Training: the loss falls on learnable data, a resumed run ends with the same weights as an
//! uninterrupted one, a diverging run stops and keeps its last good checkpoint, and broken IDX
//! files are refused with a reason.

use std::path::{Path, PathBuf};

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::data::{self, encode_idx, Dataset};
use nnc_runtime::train::{Optimizer, Quiet, TrainConfig, Trainer};
use nnc_runtime::{Init, Layout, Model, RuntimeError};
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
        stop_on_divergence: true,
        layout: Layout::Contiguous,
        measure_conv_layouts: true,
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

/// Training in channels-last (weights and batches) gives the weights contiguous training
/// gives, to rounding, and its checkpoint is written in the usual layout and resumes.
#[test]
fn channels_last_training_matches_contiguous_training() {
    let _rng = rng();
    let text = "network wide { input [N, 1, 8, 8]\n conv2d(16, 3, padding=1) -> batchnorm -> relu -> conv2d(16, 3, padding=1) -> relu -> flatten -> linear(4) }";
    let (train, test) = (bands(128, 1), bands(32, 2));
    let dir = tmp("channels-last");
    let mut trained = Vec::new();
    for layout in [Layout::Contiguous, Layout::ChannelsLast] {
        let (mut vs, m) = seeded_model(text);
        let checkpoint = dir.join(format!("{layout:?}.safetensors"));
        let settings = TrainConfig { layout, ..config(2, 0.05, Some(checkpoint.clone())) };
        Trainer::new(&m, &mut vs, settings).run(&train, &test, &mut Quiet).unwrap();
        let weight = vs.variables()["3.weight"].shallow_clone();
        assert_eq!(weight.is_contiguous(), layout == Layout::Contiguous, "{layout:?}");
        // The checkpoint resumes into a fresh model, whatever its layout.
        let (mut fresh, m2) = seeded_model(text);
        let settings = TrainConfig { layout, ..config(2, 0.05, Some(checkpoint)) };
        let mut resumed = Trainer::new(&m2, &mut fresh, settings);
        resumed.resume(&dir.join(format!("{layout:?}.safetensors"))).unwrap();
        drop(resumed);
        let loaded = fresh.variables()["3.weight"].shallow_clone();
        assert_eq!(loaded, weight, "{layout:?}: the checkpoint's weights");
        trained.push(weight);
    }
    let diff = (&trained[0] - &trained[1]).abs().max().double_value(&[]);
    let scale = trained[0].abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * scale, "the layouts' weights differ by {diff} (of {scale})");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A training forward computes activations and sums in place where autograd allows
/// (`Model::try_forward`); its gradients are those of the graph as written, which
/// `forward_all` computes (it keeps every node's value, so nothing is overwritten), bit for
/// bit: a batch norm's output overwritten by its ReLU, a residual sum written over its first
/// operand and then by its ReLU, linear layers' outputs by sigmoid and tanh, a difference,
/// ReLU6, and values that must stay (read twice, a sigmoid's own output, the network's input).
#[test]
fn in_place_training_computes_the_gradients_of_the_written_graph() {
    let _rng = rng();
    let nets = [
        "network a { input [N, 3, 8, 8]\n x = conv2d(8, 3, padding=1) -> batchnorm -> relu\n \
         y = x -> conv2d(8, 3, padding=1) -> batchnorm\n s = y + x\n s -> relu -> relu6 -> flatten -> linear(4) }",
        "network b { input [N, 12]\n h = linear(16) -> sigmoid -> linear(16) -> tanh\n \
         d = h -> linear(16) -> _ - h\n e = d -> relu\n f = e -> sigmoid -> relu\n f * e -> linear(3) }",
        "network c { input [N, 6]\n relu -> linear(6) -> relu -> linear(2) }",
    ];
    for text in nets {
        let (vs, m) = seeded_model(text);
        let graph = m.graph();
        let dims: Vec<i64> = std::iter::once(4)
            .chain(graph.node(graph.inputs[0]).shape.dims.iter().map(|&d| d as i64))
            .collect();
        let x = Tensor::randn(&dims, (Kind::Float, Device::Cpu)) - 0.2;
        let output = graph.outputs[0].node.0;
        let mut grads = Vec::new();
        for in_place in [false, true] {
            let y = match in_place {
                true => m.try_forward(&x, true).unwrap(),
                false => m.forward_all(&x, true).unwrap().swap_remove(output),
            };
            for v in vs.trainable_variables() {
                if v.grad().defined() {
                    let _ = v.grad().zero_();
                }
            }
            (y.square().sum(Kind::Float)).backward();
            let mut g: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, v)| v.requires_grad())
                .map(|(n, v)| (n, v.grad().copy()))
                .collect();
            g.sort_by(|a, b| a.0.cmp(&b.0));
            grads.push(g);
        }
        assert!(!grads[0].is_empty());
        for ((name, a), (_, b)) in grads[0].iter().zip(&grads[1]) {
            assert!(a.equal(b), "{text}: {name}'s gradient differs in place");
            assert!(a.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{text}: {name} has no gradient");
        }
    }
}

/// The network `text`, checked, with PyTorch's initialisation from seed 0.
fn seeded_model(text: &str) -> (nn::VarStore, Model) {
    let compiled = compile(Root::Text { name: "model.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    (vs, m)
}

/// A declared `param` is a trained variable under its declaration's name, and training moves
/// it: the gradient flows through the arithmetic it takes part in.
#[test]
fn declared_params_train() {
    let _rng = rng();
    let text = "network gated { input [N, 1, 8, 8]\n param gate [1, 8, 1] = 0.5\n                 _ * gate -> conv2d(4, 3, padding=1) -> relu -> flatten -> linear(4) }";
    let (mut vs, m) = seeded_model(text);
    let gate = |vs: &nn::VarStore| vs.variables()["gate"].copy();
    let before = gate(&vs);
    assert_eq!(before.size(), [1, 8, 1]);
    assert_eq!(before, Tensor::full([1, 8, 1], 0.5, (Kind::Float, Device::Cpu)));
    assert!(vs.trainable_variables().iter().any(|t| t.size() == [1, 8, 1]), "the gate is trained");
    let mut trainer = Trainer::new(&m, &mut vs, config(1, 0.05, None));
    trainer.run(&bands(64, 1), &bands(16, 2), &mut Quiet).unwrap();
    let moved = (gate(&vs) - before).abs().max().double_value(&[]);
    assert!(moved > 1e-4, "the gate moved by {moved}");
}

/// An auxiliary classifier (`output logits, aux if training`) trains through its own loss, which
/// adds to the main one; evaluation never computes it.
#[test]
fn an_auxiliary_classifier_trains_through_its_loss() {
    let _rng = rng();
    let text = "network aux { input [N, 1, 8, 8]\n trunk = conv2d(4, 3, padding=1) -> relu\n                 side = flatten -> linear(4)\n trunk -> flatten -> fc: linear(4)\n output _, side if training }";
    let (mut vs, m) = seeded_model(text);
    let x = Tensor::randn([3, 1, 8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(m.try_forward_outputs(&x, false).unwrap().len(), 1, "evaluation gives the main output");
    assert_eq!(m.try_forward_outputs(&x, true).unwrap().len(), 2, "training gives both");
    let side = |vs: &nn::VarStore| vs.variables()["side.1.weight"].copy();
    let before = side(&vs);
    let mut trainer = Trainer::new(&m, &mut vs, config(1, 0.05, None));
    trainer.run(&bands(64, 1), &bands(16, 2), &mut Quiet).unwrap();
    let moved = (side(&vs) - before).abs().max().double_value(&[]);
    assert!(moved > 1e-4, "the auxiliary classifier moved by {moved}");
}

fn weights_of(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// With momentum SGD and with Adam, whose state (momentum buffers; moments and per-tensor step
/// counts) the checkpoint must carry whole, and with plain SGD, which keeps none: the weights
/// and the step count are the uninterrupted run's.
#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let _rng = rng();
    let (train, test) = (bands(256, 1), bands(64, 2));
    for (what, optimizer) in [("sgd", SGD), ("adam", ADAM), ("plain-sgd", PLAIN_SGD)] {
        let dir = tmp(&format!("resume-{what}"));
        let config = |epochs, path: PathBuf| TrainConfig { optimizer, ..config(epochs, 0.05, Some(path)) };

        tch::manual_seed(0);
        let mut vs_a = nn::VarStore::new(Device::Cpu);
        let a = model(&vs_a);
        Trainer::new(&a, &mut vs_a, config(3, dir.join("a.safetensors")))
            .run(&train, &test, &mut Quiet)
            .unwrap();

        // Stopped after one epoch, as if killed, then resumed by a fresh process's state.
        tch::manual_seed(0);
        let mut vs_b = nn::VarStore::new(Device::Cpu);
        let b = model(&vs_b);
        let ckpt = dir.join("b.safetensors");
        Trainer::new(&b, &mut vs_b, config(1, ckpt.clone())).run(&train, &test, &mut Quiet).unwrap();
        tch::manual_seed(99);
        let mut vs_c = nn::VarStore::new(Device::Cpu);
        let c = model(&vs_c);
        let mut resumed = Trainer::new(&c, &mut vs_c, config(3, ckpt.clone()));
        resumed.resume(&ckpt).unwrap();
        assert_eq!(resumed.history.len(), 1);
        resumed.run(&train, &test, &mut Quiet).unwrap();
        assert_eq!(resumed.history.len(), 3);

        for ((name, wa), (_, wc)) in weights_of(&vs_a).iter().zip(weights_of(&vs_c)) {
            assert!(wa.equal(&wc), "{what}: `{name}` differs after resuming");
        }
        let steps = |path: &Path| {
            let saved = Tensor::read_safetensors(path).unwrap();
            let (_, t) = saved.into_iter().find(|(n, _)| n == "nnc.optim_steps").unwrap();
            t.double_value(&[])
        };
        assert_eq!(steps(&ckpt), steps(&dir.join("a.safetensors")), "{what}: the step count");
        std::fs::remove_dir_all(dir).unwrap();
    }
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

/// A checkpoint of one epoch of the tiny model trained with `optimizer`, in a fresh folder.
fn trained_checkpoint(name: &str, optimizer: Optimizer) -> PathBuf {
    let (train, test) = (bands(64, 1), bands(32, 2));
    let ckpt = tmp(name).join("checkpoint.safetensors");
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    let config = TrainConfig { optimizer, ..config(1, 0.05, Some(ckpt.clone())) };
    Trainer::new(&m, &mut vs, config).run(&train, &test, &mut Quiet).unwrap();
    ckpt
}

fn read(path: &Path) -> Vec<(String, Tensor)> {
    let mut all = Tensor::read_safetensors(path).unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

const SGD: Optimizer = Optimizer::Sgd { momentum: 0.9, weight_decay: 1e-4 };
const PLAIN_SGD: Optimizer = Optimizer::Sgd { momentum: 0.0, weight_decay: 0.0 };
const ADAM: Optimizer = Optimizer::Adam { weight_decay: 0.0 };

#[test]
fn weights_made_non_finite_by_an_epochs_last_step_are_not_checkpointed() {
    let _rng = rng();
    let (train, test) = (bands(64, 1), bands(32, 2));
    let ckpt = trained_checkpoint("last-step", SGD);
    let good = std::fs::read(&ckpt).unwrap();
    // One batch per epoch, so the step that breaks the weights is the epoch's last: its loss
    // was finite, and only a check of the weights themselves can catch it. (The learning rate
    // is finite but overflows f32 when it multiplies the gradient.)
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    let config = TrainConfig { batch: 64, ..config(3, 1e300, Some(ckpt.clone())) };
    let mut trainer = Trainer::new(&m, &mut vs, config);
    trainer.resume(&ckpt).unwrap();
    let err = trainer.run(&train, &test, &mut Quiet).unwrap_err();
    assert!(matches!(err, RuntimeError::Diverged(_)), "{err}");
    assert!(err.to_string().contains("the weights stopped being finite in epoch 2"), "{err}");
    assert_eq!(trainer.checkpointed_epoch(), Some(1));
    assert_eq!(std::fs::read(&ckpt).unwrap(), good, "the last good checkpoint must stay as it was");
    std::fs::remove_dir_all(ckpt.parent().unwrap()).unwrap();
}

#[test]
fn settings_that_cannot_train_are_refused_before_any_work() {
    let _rng = rng();
    let (train, test) = (bands(64, 1), bands(32, 2));
    let dir = tmp("settings");
    let ckpt = dir.join("c.safetensors");
    let cases: Vec<(TrainConfig, &str)> = vec![
        (
            config(1, f64::NAN, Some(ckpt.clone())),
            "the learning rate must be a finite number of at least 0, not NaN",
        ),
        (
            config(1, -1.0, Some(ckpt.clone())),
            "the learning rate must be a finite number of at least 0, not -1",
        ),
        (config(1, f64::INFINITY, Some(ckpt.clone())), "not inf"),
        (
            TrainConfig {
                optimizer: Optimizer::Sgd { momentum: f64::NAN, weight_decay: 0.0 },
                ..config(1, 0.1, Some(ckpt.clone()))
            },
            "the momentum must be",
        ),
        (
            TrainConfig {
                optimizer: Optimizer::Adam { weight_decay: -1e10 },
                ..config(1, 0.1, Some(ckpt.clone()))
            },
            "the weight decay must be",
        ),
    ];
    for (config, expected) in cases {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let m = model(&vs);
        let err = Trainer::new(&m, &mut vs, config).run(&train, &test, &mut Quiet).unwrap_err();
        assert!(matches!(err, RuntimeError::Config(_)) && err.to_string().contains(expected), "{err}");
        assert!(!ckpt.exists(), "{expected}: nothing may be written");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn empty_or_mismatched_data_is_refused_before_any_work() {
    let _rng = rng();
    let (train, test) = (bands(64, 1), bands(32, 2));
    let empty = Dataset {
        images: Tensor::zeros([0, 1, 8, 8], (Kind::Uint8, Device::Cpu)),
        labels: Tensor::zeros([0], (Kind::Int64, Device::Cpu)),
    };
    let big = Dataset {
        images: Tensor::zeros([4, 1, 9, 9], (Kind::Uint8, Device::Cpu)),
        labels: Tensor::zeros([4], (Kind::Int64, Device::Cpu)),
    };
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut trainer = Trainer::new(&m, &mut vs, config(1, 0.05, None));
    for (train, test, expected) in [
        (&empty, &test, "the training set is empty (0 images)"),
        (&train, &empty, "the test set is empty (0 images)"),
        (&train, &big, "the test images are 9×9 pixels, the training images 8×8"),
    ] {
        let err = trainer.run(train, test, &mut Quiet).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(trainer.history.is_empty());
    let err = nnc_runtime::train::evaluate(&m, &empty, 16, None, Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("no examples"), "{err}");
}

/// Records what the trainer reports.
#[derive(Default)]
struct Record {
    diverging: Vec<String>,
    epochs: usize,
}

impl nnc_runtime::train::Observer for Record {
    fn diverging(&mut self, message: &str) {
        self.diverging.push(message.to_string());
    }
    fn epoch_done(&mut self, history: &[nnc_runtime::train::EpochMetrics]) -> Result<(), RuntimeError> {
        self.epochs = history.len();
        Ok(())
    }
}

#[test]
fn a_diverging_loss_stops_the_run_or_is_reported() {
    let _rng = rng();
    let (train, test) = (bands(256, 1), bands(32, 2));
    let dir = tmp("divergence");
    for stop in [true, false] {
        let ckpt = dir.join(format!("stop-{stop}.safetensors"));
        tch::manual_seed(0);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let m = model(&vs);
        let config = TrainConfig { stop_on_divergence: stop, ..config(2, 1000.0, Some(ckpt.clone())) };
        let mut trainer = Trainer::new(&m, &mut vs, config);
        let mut record = Record::default();
        let result = trainer.run(&train, &test, &mut record);
        if stop {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("more than 100 times") && err.contains("learning rate (1000)"), "{err}");
            assert!(!ckpt.exists(), "a diverged epoch must not be checkpointed");
        } else {
            // Reported (once per epoch at most), and training goes on to the end.
            result.unwrap();
            assert!(!record.diverging.is_empty() && record.diverging.len() <= 2, "{:?}", record.diverging);
            assert_eq!(record.epochs, 2);
            assert!(ckpt.exists());
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Resumes `ckpt` rewritten by `change` under `optimizer`; the error, and whether the model's
/// weights stayed untouched.
fn resume_changed(
    ckpt: &Path,
    optimizer: Optimizer,
    change: impl FnOnce(&mut Vec<(String, Tensor)>),
) -> Result<nnc_runtime::train::Resumed, String> {
    let mut tensors = read(ckpt);
    change(&mut tensors);
    let changed = ckpt.with_file_name("changed.safetensors");
    Tensor::write_safetensors(&tensors, &changed).unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    let before: Vec<(String, Tensor)> = weights_of(&vs).into_iter().map(|(n, t)| (n, t.copy())).collect();
    let mut trainer = Trainer::new(&m, &mut vs, TrainConfig { optimizer, ..config(3, 0.05, None) });
    let result = trainer.resume(&changed).map_err(|e| e.to_string());
    if result.is_err() {
        assert!(trainer.history.is_empty(), "a refused checkpoint must leave no history");
        drop(trainer);
        for ((name, a), (_, b)) in before.iter().zip(weights_of(&vs)) {
            assert!(a.equal(&b), "a refused checkpoint changed `{name}`");
        }
    }
    result
}

/// A change to a checkpoint's tensors.
type Change<'a> = Box<dyn FnOnce(&mut Vec<(String, Tensor)>) + 'a>;

fn set(tensors: &mut Vec<(String, Tensor)>, name: &str, value: Tensor) {
    tensors.retain(|(n, _)| n != name);
    tensors.push((name.to_string(), value));
}

#[test]
fn malformed_resume_states_are_refused_before_anything_changes() {
    let _rng = rng();
    let sgd = trained_checkpoint("malformed-sgd", SGD);
    let adam = trained_checkpoint("malformed-adam", ADAM);
    let plain = trained_checkpoint("malformed-plain", PLAIN_SGD);
    let f = |v: &[f64]| Tensor::from_slice(v);
    let cases: Vec<(&Path, Optimizer, Change<'_>, &str)> = vec![
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "nnc.metrics", Tensor::from(1.0))),
            "`nnc.metrics` must be a table of 6 numbers per epoch",
        ),
        (&sgd, SGD, Box::new(|t| set(t, "nnc.metrics", f(&[1.0, 2.0, 3.0]))), "shape [3]"),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "nnc.metrics", f(&[2.0, 0.5, 0.5, 0.5, 10.0]).view([1, 5]))),
            "row 1 of `nnc.metrics` should be epoch 1",
        ),
        (
            &sgd,
            SGD,
            // A negative test loss (the sixth column's fourth number).
            Box::new(|t| set(t, "nnc.metrics", f(&[1.0, 0.5, 0.5, -1.0, 0.5, 10.0]).view([1, 6]))),
            "row 1 of `nnc.metrics` should be epoch 1 with finite losses",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "nnc.metrics", f(&[1.0, f64::NAN, 0.5, 0.5, 10.0]).view([1, 5]))),
            "row 1",
        ),
        (&sgd, SGD, Box::new(|t| set(t, "nnc.optim_steps", f(&[]))), "`nnc.optim_steps` must be one number"),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "nnc.optim_steps", f(&[1.0, 2.0, 3.0]))),
            "`nnc.optim_steps` must be one number",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "nnc.optim_steps", Tensor::from(-1.0))),
            "not a whole number of steps",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "nnc.optim_steps", Tensor::from(1.5))),
            "not a whole number of steps",
        ),
        (&sgd, SGD, Box::new(|t| t.retain(|(n, _)| n != "nnc.optim_steps")), "no `nnc.optim_steps`"),
        (
            &sgd,
            SGD,
            Box::new(|t| {
                set(
                    t,
                    "optim.0.weight.momentum_buffer",
                    Tensor::zeros([4, 1, 3, 2], (Kind::Float, Device::Cpu)),
                )
            }),
            "`optim.0.weight.momentum_buffer` has shape [4, 1, 3, 2], but `0.weight` has shape [4, 1, 3, 3]",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "optim.0.bias.momentum_buffer", f(&[f64::NAN; 4]).to_kind(Kind::Float))),
            "`optim.0.bias.momentum_buffer` holds 4 NaN or infinite values",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "optim.0.bias.momentum_buffer", f(&[0.0; 4]))),
            "`optim.0.bias.momentum_buffer` is Double, but `0.bias` is Float",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "optim.9.bias.momentum_buffer", f(&[0.0; 4]).to_kind(Kind::Float))),
            "`9.bias`, which is not a trainable parameter of this model",
        ),
        (
            &sgd,
            SGD,
            Box::new(|t| set(t, "optim.0.bias.velocity", f(&[0.0; 4]))),
            "not optimiser state that nnc writes",
        ),
        (&sgd, ADAM, Box::new(|_| {}), "it was trained with SGD with momentum"),
        (&sgd, PLAIN_SGD, Box::new(|_| {}), "but this run has momentum 0"),
        (
            &adam,
            SGD,
            Box::new(|_| {}),
            "it was trained with Adam (it holds `optim.0.bias.exp_avg`), but this run uses SGD with momentum",
        ),
        (
            &adam,
            ADAM,
            Box::new(|t| t.retain(|(n, _)| n != "optim.4.weight.exp_avg_sq")),
            "the optimiser state of `4.weight` lacks exp_avg_sq",
        ),
        (
            &adam,
            ADAM,
            Box::new(|t| set(t, "optim.0.bias.step", Tensor::from(0.0))),
            "`optim.0.bias.step` is 0",
        ),
        (
            &adam,
            ADAM,
            Box::new(|t| set(t, "optim.0.bias.step", Tensor::from(2.5))),
            "not a whole number of steps",
        ),
        (
            &adam,
            ADAM,
            Box::new(|t| set(t, "optim.0.bias.step", Tensor::from_slice(&[1.0, 2.0]))),
            "`optim.0.bias.step` must be one number",
        ),
        (
            &adam,
            SGD,
            Box::new(|t| t.retain(|(n, _)| !n.ends_with("exp_avg") && !n.ends_with("exp_avg_sq"))),
            "it was trained with Adam (it holds `optim.0.bias.step`)",
        ),
        (
            &adam,
            ADAM,
            Box::new(|t| t.retain(|(n, _)| !n.ends_with(".exp_avg"))),
            "the optimiser state of `0.bias` lacks exp_avg",
        ),
        // Some tensors' counts and not others': not a checkpoint nnc writes.
        (
            &adam,
            ADAM,
            Box::new(|t| t.retain(|(n, _)| n != "optim.4.weight.step")),
            "the optimiser state of `4.weight` lacks step",
        ),
        (
            &adam,
            ADAM,
            Box::new(|t| set(t, "optim.0.bias.step", Tensor::from(1000.0))),
            "`optim.0.bias.step` is 1000, more than the 2 steps of `nnc.optim_steps`",
        ),
        // A checkpoint of an nnc that counted Adam's steps once for all tensors: the count is
        // `nnc.optim_steps`, which must then be a step count.
        (
            &adam,
            ADAM,
            Box::new(|t| {
                t.retain(|(n, _)| !n.ends_with(".step"));
                set(t, "nnc.optim_steps", Tensor::from(0.0))
            }),
            "`nnc.optim_steps` is 0",
        ),
        (
            &plain,
            PLAIN_SGD,
            Box::new(|t| {
                for (n, w) in t.iter_mut() {
                    if n == "0.weight" {
                        *w = w.fill(f64::NAN);
                    }
                }
            }),
            "are not finite:\n  `0.weight`: 36 of 36 values are NaN or infinite",
        ),
        (
            &plain,
            PLAIN_SGD,
            Box::new(|t| {
                for (n, w) in t.iter_mut() {
                    if n == "0.weight" {
                        *w = w.to_kind(Kind::Double);
                    }
                }
            }),
            "wrong dtype: `0.weight` is F64 in the file, F32 in the model",
        ),
        (&plain, PLAIN_SGD, Box::new(|t| t.truncate(0)), "missing: `0.weight`"),
    ];
    for (ckpt, optimizer, change, expected) in cases {
        let err = resume_changed(ckpt, optimizer, change).expect_err(expected);
        assert!(err.contains(expected), "`{err}` should say `{expected}`");
        assert!(err.contains("changed.safetensors"), "`{err}` should name the file");
    }
    for ckpt in [sgd, adam, plain] {
        std::fs::remove_dir_all(ckpt.parent().unwrap()).unwrap();
    }
}

/// `ckpt` with one entry of its `__metadata__` set to `value`, written beside it as `name`:
/// safetensors is a length, a JSON header whose data offsets count from its end, and the data.
fn with_metadata(ckpt: &Path, key: &str, value: &str, name: &str) -> PathBuf {
    let bytes = std::fs::read(ckpt).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert!(header["__metadata__"][key].is_string(), "{header}");
    header["__metadata__"][key] = value.into();
    let text = header.to_string();
    let mut changed = (text.len() as u64).to_le_bytes().to_vec();
    changed.extend(text.as_bytes());
    changed.extend(&bytes[8 + n..]);
    let path = ckpt.with_file_name(name);
    std::fs::write(&path, changed).unwrap();
    path
}

/// A checkpoint whose metadata names another network is refused before anything changes: a
/// network of another name with tensors of the same shapes (another file's variant with other
/// activations) would otherwise train on silently. Other values of the parameters are
/// allowed, and reported.
#[test]
fn a_checkpoint_of_another_network_is_refused() {
    let _rng = rng();
    let ckpt = trained_checkpoint("other-network", PLAIN_SGD);
    let other = with_metadata(&ckpt, "network", "vgg", "other.safetensors");
    let resized = with_metadata(&ckpt, "parameters", r#"{"size":32}"#, "resized.safetensors");

    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(&vs);
    let before: Vec<(String, Tensor)> = weights_of(&vs).into_iter().map(|(n, t)| (n, t.copy())).collect();
    let mut trainer = Trainer::new(&m, &mut vs, config(3, 0.05, None));
    let err = trainer.resume(&other).unwrap_err().to_string();
    assert!(err.contains("it is a checkpoint of the network `vgg`, but this run trains `tiny`"), "{err}");
    assert!(trainer.history.is_empty());
    drop(trainer);
    for ((name, a), (_, b)) in before.iter().zip(weights_of(&vs)) {
        assert!(a.equal(&b), "the refused checkpoint changed `{name}`");
    }
    // The file as written resumes; one of other parameters too, saying which.
    let mut trainer = Trainer::new(&m, &mut vs, config(3, 0.05, None));
    trainer.resume(&ckpt).unwrap();
    assert_eq!(trainer.history.len(), 1);
    assert_eq!(trainer.changed_parameters, None);
    trainer.resume(&resized).unwrap();
    assert_eq!(trainer.changed_parameters, Some((r#"{"size":32}"#.to_string(), "{}".to_string())));
    std::fs::remove_dir_all(ckpt.parent().unwrap()).unwrap();
}

#[test]
fn resume_says_what_it_did() {
    use nnc_runtime::train::Resumed;
    let _rng = rng();
    let plain = trained_checkpoint("said-plain", PLAIN_SGD);
    // A checkpoint continues after its epochs; an optimiser whose state the file lacks starts
    // afresh, and says so.
    assert_eq!(
        resume_changed(&plain, PLAIN_SGD, |_| {}),
        Ok(Resumed::After { epochs: 1, fresh_state: false })
    );
    assert_eq!(resume_changed(&plain, SGD, |_| {}), Ok(Resumed::After { epochs: 1, fresh_state: true }));
    assert_eq!(resume_changed(&plain, ADAM, |_| {}), Ok(Resumed::After { epochs: 1, fresh_state: true }));
    // Weights without a history (as `nnc run --save-weights` writes) restart at epoch 1.
    let restarted = resume_changed(&plain, SGD, |t| {
        t.retain(|(n, _)| !n.starts_with("nnc.") && !n.starts_with("optim."))
    });
    assert_eq!(restarted, Ok(Resumed::Restarted));
    // A checkpoint written before the test loss was recorded (five numbers per epoch) resumes,
    // its epochs without a test loss.
    let old = resume_changed(&plain, PLAIN_SGD, |t| {
        for (n, m) in t.iter_mut() {
            if n == "nnc.metrics" {
                *m = Tensor::cat(&[m.narrow(1, 0, 3), m.narrow(1, 4, 2)], 1);
            }
        }
    });
    assert_eq!(old, Ok(Resumed::After { epochs: 1, fresh_state: false }));
    // An Adam checkpoint of an nnc that counted steps once for all tensors (no `step` per
    // tensor) resumes, each tensor's count then `nnc.optim_steps`.
    let adam = trained_checkpoint("said-adam", ADAM);
    let old_adam = resume_changed(&adam, ADAM, |t| t.retain(|(n, _)| !n.ends_with(".step")));
    assert_eq!(old_adam, Ok(Resumed::After { epochs: 1, fresh_state: false }));
    std::fs::remove_dir_all(adam.parent().unwrap()).unwrap();
    std::fs::remove_dir_all(plain.parent().unwrap()).unwrap();
}
