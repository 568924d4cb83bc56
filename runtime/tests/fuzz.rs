//! A runtime fuzz test: random bytes, and mutations of valid safetensors, IDX and PNG files
//! (from `hostile/`), through the functions `nnc run --weights`, `eval` and `predict` read
//! them with, and on through the model as those commands do. The result must be a value or
//! an error, never a panic. The generator is deterministic (a fixed seed), so a failure names
//! an input that can be reproduced; each case's bytes are written to the temporary folder
//! when it panics.

mod hostile;

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hostile::{idx_files, png_file, weights_file, Rng};
use nnc_compiler::{compile, Graph, Options, Root};
use nnc_runtime::data::{self, Batches, Dataset};
use nnc_runtime::{weights, Init, Model};
use tch::{nn, Device, Kind, Tensor};

/// LeNet with batch norm: convolutions, linear layers and buffers, 28×28 grey images.
const NET: &str = "network lenet_bn {
    input [N, 1, 28, 28]
    conv2d(6, 5, padding=2) -> batchnorm -> sigmoid -> avgpool2d(2)
        -> conv2d(16, 5) -> batchnorm -> sigmoid -> avgpool2d(2)
        -> flatten -> linear(120) -> sigmoid -> linear(84) -> sigmoid -> linear(10)
}";

/// The model, with its parameters under `vs` (compiled once: most cases build a fresh one).
fn model(vs: &nn::VarStore) -> Model {
    static GRAPH: std::sync::OnceLock<Graph> = std::sync::OnceLock::new();
    let graph = GRAPH.get_or_init(|| {
        let compiled =
            compile(Root::Text { name: "lenet_bn.net", text: NET, dir: None }, &Options::default());
        assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
        compiled.graphs.into_iter().next().unwrap()
    });
    Model::try_new(&vs.root(), graph.clone(), Init::PyTorch).unwrap()
}

/// What one loop's inputs did: how many were accepted (read without error), and the panics:
/// each input's label, the message and the location of the runtime's frame nearest the panic
/// (or the panic's own location).
#[derive(Default)]
struct Outcomes {
    accepted: usize,
    panics: Vec<(String, String, String)>,
}

thread_local! {
    /// Whether this thread is running a case, whose panic is recorded rather than printed.
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The last panic of a case on this thread: its message and where it happened.
    static LAST: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Installs, once, a panic hook that records the panic of a case for the thread it happened
/// on instead of printing it (the loops below say which inputs panicked, and where); any
/// other panic, such as a failed assertion, is printed as usual.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_CASE.get() {
                return default(info);
            }
            let message = match info.payload().downcast_ref::<String>() {
                Some(s) => s.clone(),
                None => {
                    info.payload().downcast_ref::<&str>().map_or("(no message)".into(), |s| s.to_string())
                }
            };
            // libtorch's messages run on into a C++ backtrace, escaped when they are shown as a
            // `Debug` error: keep the first line.
            let end = ["\\n", "\n"].iter().filter_map(|m| message.find(m)).min().unwrap_or(message.len());
            let message = message[..end].to_string();
            let own = info.location().map_or("?".into(), |l| format!("{}:{}", l.file(), l.line()));
            LAST.with(|last| *last.borrow_mut() = Some((message, runtime_frame().unwrap_or(own))));
        }));
    });
}

/// The source location of the runtime's frame nearest the panic being handled, as
/// `runtime/src/data.rs:259`, from a backtrace (the panic's own location is in tch's
/// wrappers when a libtorch error is unwrapped).
fn runtime_frame() -> Option<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    let mut lines = trace.lines();
    while let Some(line) = lines.next() {
        if line.contains("nnc_runtime::") {
            let at = lines.next()?.trim().strip_prefix("at ")?;
            let file = &at[at.rfind("src/")?..];
            let line = file.split(':').take(2).collect::<Vec<_>>().join(":");
            return Some(format!("runtime/{line}"));
        }
    }
    None
}

/// Runs `case` on `input`, which says whether the input was accepted; records a panic under
/// `label`, and writes the input to `dir`.
fn run_case(outcomes: &mut Outcomes, dir: &Path, label: String, input: &[u8], case: impl FnOnce() -> bool) {
    IN_CASE.set(true);
    let result = panic::catch_unwind(AssertUnwindSafe(case));
    IN_CASE.set(false);
    match result {
        Ok(accepted) => outcomes.accepted += usize::from(accepted),
        Err(_) => {
            let (message, place) = LAST.with(|last| last.borrow_mut().take()).unwrap_or_default();
            let saved = dir.join(format!("panic-{}", outcomes.panics.len()));
            let _ = std::fs::write(&saved, input);
            outcomes.panics.push((format!("{label} (saved as {})", saved.display()), message, place));
        }
    }
}

/// Fails on any panic, listing each input and where it panicked; prints a summary to the
/// process's standard error itself, which the test harness does not capture, so that it shows
/// in every run. `dir` is removed unless it holds inputs that panicked.
fn judge(what: &str, cases: usize, outcomes: &Outcomes, dir: &Path) {
    if outcomes.panics.is_empty() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let panics = &outcomes.panics;
    let _ = writeln!(
        std::io::stderr(),
        "{what}: {cases} inputs, {} accepted, {} panics",
        outcomes.accepted,
        panics.len()
    );
    let shown: Vec<String> = panics.iter().map(|(l, m, p)| format!("  {l}: panicked at {p}: {m}")).collect();
    assert!(panics.is_empty(), "{what}: {} of {cases} inputs panicked:\n{}", panics.len(), shown.join("\n"));
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn weights_files_never_panic() {
    quiet_panics();
    let dir = temp_dir("weights");
    let file = dir.join("w.safetensors");
    let valid = {
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = model(&vs);
        // Fixed values, not the random initial ones (tests running beside this one draw from
        // the same generator), so that every run mutates the same bytes.
        for (_, mut t) in vs.variables() {
            let _ = tch::no_grad(|| t.fill_(0.25));
        }
        weights::save(&vs, &file).unwrap();
        std::fs::read(&file).unwrap()
    };
    let mut rng = Rng::new(0x5eed_0001);
    let mut outcomes = Outcomes::default();
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let cases = 2000;
    for i in 0..cases {
        let (how, input) = weights_file(&mut rng, i, &valid);
        std::fs::write(&file, &input).unwrap();
        run_case(&mut outcomes, &dir, format!("weights case {i} ({how})"), &input, || {
            let mut vs = nn::VarStore::new(Device::Cpu);
            let model = model(&vs);
            // As `run --weights` does: load, then run the model on what was loaded.
            let loaded = weights::load(&mut vs, &file).is_ok();
            if loaded {
                let _ = tch::no_grad(|| model.forward_all(&x, false));
            }
            loaded
        });
    }
    // `load_map` directly, with tensors of every kind and of wrong shapes under the right names.
    let names: Vec<(String, Vec<i64>)> = {
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = model(&vs);
        // Sorted, as the store's order changes from run to run and each name draws numbers.
        let mut names: Vec<_> = vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
        names.sort();
        names
    };
    let kinds = [
        Kind::Uint8,
        Kind::Int8,
        Kind::Int16,
        Kind::Int,
        Kind::Int64,
        Kind::Half,
        Kind::Float,
        Kind::Double,
        Kind::Bool,
        Kind::BFloat16,
    ];
    let direct = 400;
    for i in 0..direct {
        let mut file = BTreeMap::new();
        for (name, size) in &names {
            let mut size = size.clone();
            if rng.below(8) == 0 && !size.is_empty() {
                let d = rng.below(size.len());
                size[d] = rng.below(4) as i64;
            }
            let kind = kinds[rng.below(kinds.len())];
            if rng.below(16) != 0 {
                file.insert(name.clone(), Tensor::ones(size.as_slice(), (kind, Device::Cpu)));
            }
        }
        run_case(&mut outcomes, &dir, format!("load_map case {i}"), &[], || {
            let mut vs = nn::VarStore::new(Device::Cpu);
            let model = model(&vs);
            let loaded = weights::load_map(&mut vs, &file, "fuzz").is_ok();
            if loaded {
                let _ = tch::no_grad(|| model.forward_all(&x, false));
            }
            loaded
        });
    }
    judge("weights", cases + direct, &outcomes, &dir);
}

/// What `eval` and `predict` do with images once read: mini-batches, resized to the model's
/// 28×28 when they differ, through the model.
fn classify(model: &Model, images: &Dataset) {
    let (h, w) = images.image_size();
    let resize = (h != 28 || w != 28).then_some(28);
    for (x, _) in Batches::new(images, 256, false, resize, Device::Cpu).flatten() {
        let _ = tch::no_grad(|| model.try_forward(&x, false));
    }
}

#[test]
fn idx_files_never_panic() {
    quiet_panics();
    let dir = temp_dir("idx");
    let (images, labels) = (dir.join("images"), dir.join("labels"));
    let vs = nn::VarStore::new(Device::Cpu);
    let model = model(&vs);
    let mut rng = Rng::new(0x5eed_0002);
    let mut outcomes = Outcomes::default();
    let cases = 2000;
    for i in 0..cases {
        let (how, image_bytes, label_bytes) = idx_files(&mut rng, i);
        std::fs::write(&images, &image_bytes).unwrap();
        std::fs::write(&labels, &label_bytes).unwrap();
        run_case(&mut outcomes, &dir, format!("IDX case {i} ({how})"), &image_bytes, || {
            // `eval`: images with their labels.
            let pair = data::read_pair(&images, &labels, 10);
            if let Ok(test) = &pair {
                classify(&model, test);
            }
            // `predict`: the images alone, the first 10.
            let alone = data::read_images(&images);
            if let Ok(images) = &alone {
                let n = images.size()[0].min(10);
                let labels = Tensor::zeros([n], (Kind::Int64, Device::Cpu));
                classify(&model, &Dataset { images: images.narrow(0, 0, n), labels });
            }
            pair.is_ok() || alone.is_ok()
        });
    }
    judge("IDX", cases, &outcomes, &dir);
}

#[test]
fn pictures_never_panic() {
    quiet_panics();
    let dir = temp_dir("png");
    let picture = dir.join("picture.png");
    let vs = nn::VarStore::new(Device::Cpu);
    let model = model(&vs);
    let mut rng = Rng::new(0x5eed_0003);
    let mut outcomes = Outcomes::default();
    let cases = 1600;
    for i in 0..cases {
        let (how, input) = png_file(&mut rng, i);
        std::fs::write(&picture, &input).unwrap();
        run_case(&mut outcomes, &dir, format!("PNG case {i} ({how})"), &input, || {
            // `predict` on a picture: one grey image, resized to the model's input.
            let read = data::read_picture(&picture);
            if let Ok(images) = &read {
                let labels = Tensor::zeros([1], (Kind::Int64, Device::Cpu));
                classify(&model, &Dataset { images: images.shallow_clone(), labels });
            }
            read.is_ok()
        });
    }
    judge("PNG", cases, &outcomes, &dir);
}
