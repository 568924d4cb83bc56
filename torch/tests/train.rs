//! `nnc train`, `eval` and `predict` end to end on small generated IDX data: a run killed after
//! its first checkpoint and resumed ends with the same weights as an uninterrupted run; a
//! diverging run stops with a clear message. And every way a run can go wrong (bad settings,
//! data or folders, a second run, broken checkpoints, non-finite weights, a kill in the middle
//! of a write) ends in a clear message, exit code 1 or 2, never a panic, before any epoch
//! where it can be known before.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nnc_runtime::data::encode_idx;
use nnc_runtime::tch::{Kind, Tensor};

fn nnc() -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nnc-torch"));
    cmd.current_dir(root);
    cmd
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A Fashion-MNIST-shaped folder of 28×28 images in 10 classes: class k lights rows near 2k.
fn dataset(name: &str) -> PathBuf {
    dataset_of(name, 2048, 256, 28)
}

/// A folder of `train` training and `test` test images in 10 classes, the training images
/// 28×28, the test images `test_size` pixels square.
fn dataset_of(name: &str, train: u32, test: u32, test_size: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-cli-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n, size) in [("train", train, 28u32), ("t10k", test, test_size)] {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        let mut state = 12345u32 + n;
        for i in 0..n {
            let label = (i * 7 % 10) as u8;
            labels.push(label);
            for row in 0..size {
                for _ in 0..size {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let noise = (state >> 24) as u8 / 2;
                    let lit = row / 2 == 2 * label as u32 / 2 + 2;
                    pixels.push(if lit { 128 + noise } else { noise });
                }
            }
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            encode_idx(2051, &[n, size, size], &pixels),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), encode_idx(2049, &[n], &labels))
            .unwrap();
    }
    dir
}

fn weights(path: &Path) -> Vec<(String, Tensor)> {
    let mut all: Vec<(String, Tensor)> =
        Tensor::read_safetensors(path).unwrap().into_iter().filter(|(n, _)| !n.starts_with("nnc.")).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let data = dataset("resume");
    let out_a = data.join("a");
    let out_b = data.join("b");
    let args = |out: &Path| {
        // Batch norm makes LeNet learn these bands within a few hundred examples.
        let flags = "train models/lenet-bn.net --epochs 4 --lr 0.5 --momentum 0.5 --seed 7 --threads 1";
        let mut v: Vec<String> = flags.split(' ').map(|s| s.to_string()).collect();
        v.extend(["--data".into(), data.display().to_string(), "--out".into(), out.display().to_string()]);
        v
    };
    let a = nnc().args(args(&out_a)).output().unwrap();
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert!(text(&a).contains("epoch 4/4"), "{}", text(&a));

    let mut child = nnc()
        .args(args(&out_b))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = out_b.join("checkpoint.safetensors");
    let start = Instant::now();
    while !checkpoint.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checkpoint.exists(), "no checkpoint after the first epoch");

    let mut resume = args(&out_b);
    resume.push("--resume".into());
    let b = nnc().args(&resume).output().unwrap();
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert!(text(&b).contains("resuming after epoch"), "{}", text(&b));

    let (wa, wb) = (weights(&out_a.join("checkpoint.safetensors")), weights(&checkpoint));
    assert_eq!(wa.len(), wb.len());
    for ((name, ta), (_, tb)) in wa.iter().zip(&wb) {
        assert!(
            ta.equal(tb),
            "`{name}` differs between the killed-and-resumed run and the uninterrupted one"
        );
    }
    let metrics = std::fs::read_to_string(out_b.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "{metrics}");
    assert!(out_b.join("curves.svg").is_file());

    // The trained weights classify the test set well above chance.
    let eval = nnc()
        .args(["eval", "models/lenet-bn.net", "--weights"])
        .arg(&checkpoint)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let accuracy: f64 =
        text(&eval).split_whitespace().nth(2).and_then(|a| a.parse().ok()).expect("an accuracy");
    assert!(accuracy > 0.5, "{}", text(&eval));
    let predict = nnc()
        .args(["predict", "models/lenet-bn.net", "--count", "3", "--weights"])
        .arg(&checkpoint)
        .arg(data.join("t10k-images-idx3-ubyte"))
        .output()
        .unwrap();
    assert_eq!(text(&predict).lines().count(), 3, "{}", text(&predict));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_diverging_run_stops_with_a_message() {
    let data = dataset("nan");
    let out = nnc()
        .args(["train", "models/lenet.net", "--epochs", "2", "--lr", "1e300", "--threads", "1", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(data.join("run"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("training stopped: the loss became"), "{}", text(&out));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn an_existing_run_is_not_overwritten() {
    let data = dataset("exists");
    let run = data.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("checkpoint.safetensors"), b"precious").unwrap();
    let out = nnc()
        .args(["train", "models/lenet.net", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(std::fs::read(run.join("checkpoint.safetensors")).unwrap(), b"precious");
    std::fs::remove_dir_all(&data).unwrap();
}

/// `nnc-torch train models/lenet.net` on `data` into `out`, with one thread and `extra`.
/// Starts a training run of 1000 epochs, for tests that watch, stop or kill a run in progress;
/// its standard output goes to `stdout`.
fn long_run(data: &Path, out: &Path, extra: &[&str], stdout: std::process::Stdio) -> std::process::Child {
    nnc()
        .args(["train", "models/lenet.net", "--threads", "1", "--epochs", "1000"])
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    nnc()
        .args(["train", "models/lenet.net", "--threads", "1", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Exit code 0, 1 or 2, never a panic (101) or an abort (134, or a signal).
fn clean(o: &Output) -> i32 {
    let code = o.status.code().unwrap_or_else(|| panic!("killed by a signal: {}", text(o)));
    assert!(code <= 2, "exit code {code}: {}", text(o));
    code
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut all = Tensor::read_safetensors(path).unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// A change to a checkpoint's tensors.
type Change = Box<dyn FnOnce(&mut Vec<(String, Tensor)>)>;

fn rewrite(path: &Path, change: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut all = tensors(path);
    change(&mut all);
    Tensor::write_safetensors(&all, path).unwrap();
}

#[test]
fn bad_hyperparameters_are_refused_at_the_command_line() {
    let data = dataset_of("hyper", 64, 16, 28);
    let out = data.join("run");
    for (flags, expected) in [
        (&["--lr", "nan"][..], "`nan` is not a finite number"),
        (&["--lr", "inf"], "`inf` is not a finite number"),
        (&["--lr=-1"], "-1 is negative"),
        (&["--momentum", "nan"], "`nan` is not a finite number"),
        (&["--weight-decay=-1e10"], "-1e10 is negative"),
        // An option the optimiser chosen has no use for is refused, not dropped.
        (&["--optimizer", "adam", "--momentum", "0.9"], "--momentum is SGD's"),
    ] {
        let o = train(&data, &out, flags);
        assert_eq!(clean(&o), 2, "{flags:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{flags:?}: {}", text(&o));
        assert!(!out.exists(), "{flags:?}: nothing may be created");
    }
    // libgomp runs out of memory creating that many threads.
    let o = nnc().args(["train", "models/lenet.net", "--threads", "2147483647"]).output().unwrap();
    assert_eq!(clean(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("2147483647 is not in 1..=1024"), "{}", text(&o));
    // A time kept per timed batch: 4294967295 of them aborted allocating 32 GiB.
    let o = nnc().args(["bench", "models/lenet.net", "--runs", "4294967295"]).output().unwrap();
    assert_eq!(clean(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("4294967295 is not in 1..=1000000"), "{}", text(&o));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn an_unusable_out_folder_fails_before_training_and_names_it() {
    let data = dataset_of("out", 64, 16, 28);
    let file = data.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let mut cases = vec![
        (PathBuf::from("/proc/self"), "cannot write to the output folder /proc/self"),
        (file.clone(), "the output folder"),
    ];
    // Root writes into read-only folders, so that case only means something for other users.
    let locked = data.join("read-only");
    std::fs::create_dir_all(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(locked.join("probe"), b"").is_err() {
        cases.push((locked.clone(), "cannot write to the output folder"));
    }
    for (out, expected) in cases {
        let o = train(&data, &out, &["--epochs", "1"]);
        assert_eq!(clean(&o), 2, "{}", text(&o));
        assert!(text(&o).contains(expected) && text(&o).contains(&out.display().to_string()), "{}", text(&o));
        assert!(!text(&o).contains("epoch 1/"), "no epoch may run: {}", text(&o));
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn data_that_cannot_train_is_refused_before_training() {
    for (name, train_n, test_n, size, expected) in [
        // Empty sets are refused as they are read, naming the file.
        ("empty-train", 0, 16, 28, "train-images-idx3-ubyte holds no images"),
        ("empty-test", 64, 0, 28, "t10k-images-idx3-ubyte holds no images"),
        ("sizes", 64, 16, 32, "are 32×32 pixels, but the training images"),
    ] {
        let data = dataset_of(name, train_n, test_n, size);
        let out = data.join("run");
        let o = train(&data, &out, &["--epochs", "1"]);
        assert_eq!(clean(&o), 2, "{name}: {}", text(&o));
        assert!(text(&o).contains(expected), "{name}: {}", text(&o));
        assert!(text(&o).contains(&data.display().to_string()), "{name} should name the file: {}", text(&o));
        assert!(!out.exists(), "{name}: no folder, no checkpoint");
        std::fs::remove_dir_all(&data).unwrap();
    }
    // A data folder that is not there is said to be missing, not to hold no images.
    let missing = std::env::temp_dir().join(format!("nnc-no-such-data-{}", std::process::id()));
    for command in [&["train"][..], &["eval", "--weights", "unread.safetensors"]] {
        let o = nnc().args(command).arg("models/lenet.net").arg("--data").arg(&missing).output().unwrap();
        assert_eq!(clean(&o), 2, "{command:?}: {}", text(&o));
        let expected = format!("--data {}: No such file or directory", missing.display());
        assert!(text(&o).contains(&expected), "{command:?}: {}", text(&o));
    }
}

#[test]
fn a_second_run_in_the_same_folder_is_refused_and_a_killed_run_frees_it() {
    use std::io::BufRead;
    let data = dataset_of("lock", 512, 16, 28);
    let out = data.join("run");
    let mut first = long_run(&data, &out, &[], std::process::Stdio::piped());
    // It holds the lock once it says it is training.
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.starts_with("training lenet"))), "the first run did not start");
    let start = Instant::now();
    while !out.join("checkpoint.safetensors").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = train(&data, &out, &["--epochs", "1", "--resume"]);
    assert_eq!(clean(&second), 2, "{}", text(&second));
    assert!(text(&second).contains("another `nnc train` is running in"), "{}", text(&second));
    // SIGKILL: the OS lock goes with the process, and the folder is free again.
    first.kill().unwrap();
    first.wait().unwrap();
    // It gets past the lock to the checkpoint: `nothing to do` or `more than --epochs 1`.
    let third = train(&data, &out, &["--epochs", "1", "--resume"]);
    clean(&third);
    assert!(text(&third).contains("the checkpoint in"), "{}", text(&third));
    assert!(!text(&third).contains("another `nnc train`"), "{}", text(&third));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn resume_says_what_it_did() {
    let data = dataset_of("said", 128, 16, 28);
    let out = data.join("run");
    let o = train(&data, &out, &["--epochs", "2"]);
    assert_eq!(clean(&o), 0, "{}", text(&o));

    let finished = train(&data, &out, &["--epochs", "2", "--resume"]);
    assert_eq!(clean(&finished), 0, "{}", text(&finished));
    assert!(text(&finished).contains("nothing to do: the checkpoint in"), "{}", text(&finished));
    assert!(text(&finished).contains("has finished all 2 epochs"), "{}", text(&finished));

    let fewer = train(&data, &out, &["--epochs", "1", "--resume"]);
    assert_eq!(clean(&fewer), 2, "{}", text(&fewer));
    assert!(text(&fewer).contains("has trained 2 epochs already, more than --epochs 1"), "{}", text(&fewer));

    let more = train(&data, &out, &["--epochs", "3", "--resume"]);
    assert_eq!(clean(&more), 0, "{}", text(&more));
    assert!(
        text(&more).contains("resuming after epoch 2") && text(&more).contains("epoch 3/3"),
        "{}",
        text(&more)
    );

    let nowhere = train(&data, &data.join("nowhere"), &["--resume"]);
    assert_eq!(clean(&nowhere), 2, "{}", text(&nowhere));
    assert!(text(&nowhere).contains("nothing to resume: there is no folder"), "{}", text(&nowhere));
    assert!(!data.join("nowhere").exists());
    let bare = data.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let empty = train(&data, &bare, &["--resume"]);
    assert_eq!(clean(&empty), 2, "{}", text(&empty));
    assert!(
        text(&empty).contains("nothing to resume:") && text(&empty).contains("holds no checkpoint"),
        "{}",
        text(&empty)
    );

    // Weights without a training history (as `run --save-weights` writes) restart at epoch 1.
    let weights_only = data.join("weights-only");
    std::fs::create_dir_all(&weights_only).unwrap();
    let saved = nnc()
        .args(["run", "models/lenet.net", "--save-weights"])
        .arg(weights_only.join("checkpoint.safetensors"))
        .output()
        .unwrap();
    assert_eq!(clean(&saved), 0, "{}", text(&saved));
    let restarted = train(&data, &weights_only, &["--epochs", "1", "--resume"]);
    assert_eq!(clean(&restarted), 0, "{}", text(&restarted));
    assert!(text(&restarted).contains("training restarts at epoch 1"), "{}", text(&restarted));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn broken_resume_states_are_clear_errors() {
    let data = dataset_of("broken-resume", 128, 16, 28);
    let good = data.join("good");
    let o = train(&data, &good, &["--epochs", "1", "--momentum", "0.9"]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    let cases: Vec<(&str, &[&str], Change, &str)> = vec![
        (
            "nan",
            &["--momentum", "0.9"],
            Box::new(|t| {
                let weights =
                    t.iter_mut().filter(|(n, _)| !n.starts_with("nnc.") && !n.starts_with("optim."));
                weights.for_each(|(_, w)| *w = w.fill(f64::NAN))
            }),
            "are not finite",
        ),
        (
            "scalar-metrics",
            &["--momentum", "0.9"],
            Box::new(|t| {
                t.retain(|(n, _)| n != "nnc.metrics");
                t.push(("nnc.metrics".into(), Tensor::from(1.0)));
            }),
            "`nnc.metrics` must be a table of 6 numbers per epoch",
        ),
        (
            "steps",
            &["--momentum", "0.9"],
            Box::new(|t| {
                t.retain(|(n, _)| n != "nnc.optim_steps");
                t.push(("nnc.optim_steps".into(), Tensor::from_slice(&[1.0, 2.0, 3.0])));
            }),
            "`nnc.optim_steps` must be one number",
        ),
        ("adam", &["--optimizer", "adam"], Box::new(|_| {}), "it was trained with SGD with momentum"),
        ("no-momentum", &[], Box::new(|_| {}), "but this run has momentum 0"),
    ];
    for (name, flags, change, expected) in cases {
        let out = data.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(good.join("checkpoint.safetensors"), out.join("checkpoint.safetensors")).unwrap();
        rewrite(&out.join("checkpoint.safetensors"), change);
        let before = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
        let o = train(&data, &out, &[&["--epochs", "3", "--resume"], flags].concat());
        assert_eq!(clean(&o), 1, "{name}: {}", text(&o));
        assert!(text(&o).contains(expected), "{name}: {}", text(&o));
        assert!(text(&o).contains("checkpoint.safetensors"), "{name} should name the file: {}", text(&o));
        assert!(!text(&o).contains("there is no checkpoint"), "{name}: {}", text(&o));
        assert_eq!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), before, "{name}");
    }
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_diverging_loss_stops_by_default_and_is_only_reported_on_request() {
    let data = dataset_of("lr1000", 256, 16, 28);
    // With --lr 1000, LeNet's first epoch (one batch) still ends finite; the second diverges.
    let out = data.join("stop");
    let o = train(&data, &out, &["--epochs", "3", "--lr", "1000", "--batch", "256"]);
    assert_eq!(clean(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("training stopped: the loss reached"), "{}", text(&o));
    assert!(text(&o).contains("the checkpoint of epoch 1, the last good one, is kept"), "{}", text(&o));
    let kept = tensors(&out.join("checkpoint.safetensors"));
    let metrics = &kept.iter().find(|(n, _)| n == "nnc.metrics").unwrap().1;
    assert_eq!(metrics.size(), [1, 6], "the checkpoint must stay at epoch 1");
    assert!(kept.iter().all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1));
    assert_eq!(std::fs::read_to_string(out.join("metrics.csv")).unwrap().lines().count(), 2);

    let on = train(
        &data,
        &data.join("on"),
        &["--epochs", "3", "--lr", "1000", "--batch", "256", "--no-stop-on-divergence"],
    );
    assert!(text(&on).contains("warning: the loss reached"), "{}", text(&on));
    assert!(text(&on).contains("training goes on"), "{}", text(&on));
    // It trains on until the loss or the weights stop being finite, if they do.
    assert!(clean(&on) == 0 || text(&on).contains("training stopped"), "{}", text(&on));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn non_finite_weights_are_never_checkpointed() {
    let data = dataset_of("nan-step", 256, 16, 28);
    let out = data.join("run");
    // One batch per epoch: the step that breaks the weights is the epoch's last, after a
    // finite loss. (1e300 is finite but overflows f32 once it multiplies the gradient.)
    let o = train(&data, &out, &["--epochs", "2", "--lr", "1e300", "--batch", "256"]);
    assert_eq!(clean(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("the weights stopped being finite in epoch 1"), "{}", text(&o));
    assert!(text(&o).contains("no epoch finished, so no checkpoint was written"), "{}", text(&o));
    assert!(!out.join("checkpoint.safetensors").exists());
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn eval_reads_only_the_test_set_warns_about_non_finite_weights_and_casts_on_request() {
    let data = dataset_of("eval", 64, 32, 28);
    let out = data.join("run");
    assert_eq!(clean(&train(&data, &out, &["--epochs", "1"])), 0);
    // A corrupt training file is no business of eval's.
    std::fs::write(data.join("train-images-idx3-ubyte"), b"corrupt").unwrap();
    let eval = |weights: &Path, extra: &[&str]| {
        nnc()
            .args(["eval", "models/lenet.net", "--data"])
            .arg(&data)
            .arg("--weights")
            .arg(weights)
            .args(extra)
            .output()
            .unwrap()
    };
    let ckpt = out.join("checkpoint.safetensors");
    let o = eval(&ckpt, &[]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("test accuracy") && text(&o).contains("on 32 examples"), "{}", text(&o));

    let nan = data.join("nan.safetensors");
    std::fs::copy(&ckpt, &nan).unwrap();
    rewrite(&nan, |t| {
        for (n, w) in t.iter_mut() {
            if n == "0.weight" {
                *w = w.fill(f64::NAN);
            }
        }
    });
    let o = eval(&nan, &[]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("warning: the weights in") && text(&o).contains("are not finite"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("`0.weight`: 150 of 150 values are NaN or infinite"), "{}", text(&o));

    let f64_weights = data.join("f64.safetensors");
    std::fs::copy(&ckpt, &f64_weights).unwrap();
    rewrite(&f64_weights, |t| t.iter_mut().for_each(|(_, w)| *w = w.to_kind(nnc_runtime::tch::Kind::Double)));
    let o = eval(&f64_weights, &[]);
    assert_eq!(clean(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains("wrong dtype: `0.weight` is F64 in the file, F32 in the model"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("help: --cast converts"), "{}", text(&o));
    let o = eval(&f64_weights, &["--cast"]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("converted to F32 (--cast)"), "{}", text(&o));

    let opaque = data.join("opaque.safetensors");
    std::fs::write(&opaque, [16u64.to_le_bytes().as_slice(), b"{not json at all"].concat()).unwrap();
    let o = eval(&opaque, &[]);
    assert_eq!(clean(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains("opaque.safetensors") && text(&o).contains("not the JSON table"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("InvalidHeaderDeserialization"), "{}", text(&o));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn threads_beyond_the_cpus_are_capped_and_said() {
    let data = dataset_of("threads", 64, 16, 28);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let o = nnc()
        .args(["train", "models/lenet.net", "--epochs", "1", "--threads", "1000", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(data.join("run"))
        .output()
        .unwrap();
    assert_eq!(clean(&o), 0, "{}", text(&o));
    assert!(text(&o).contains(&format!("--threads 1000 is more than the {cpus} CPUs")), "{}", text(&o));
    assert!(text(&o).contains(&format!("{cpus} threads")), "{}", text(&o));
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn metrics_and_plot_are_written_after_every_epoch() {
    let data = dataset_of("metrics", 256, 16, 28);
    let out = data.join("run");
    let mut child = long_run(&data, &out, &[], std::process::Stdio::null());
    let start = Instant::now();
    // The plot is written after the metrics file.
    while !out.join("curves.svg").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed mid-run, it has both, whole: each was written atomically after an epoch.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("epoch,train_loss") && csv.lines().count() >= 2 && csv.ends_with('\n'), "{csv}");
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// The temporary files of killed writes in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.') && n.contains(".tmp"))
        .collect()
}

#[test]
fn a_kill_during_the_checkpoint_write_leaves_no_stray_file() {
    let data = dataset_of("kill-write", 64, 16, 28);
    let out = data.join("run");
    let mut child = long_run(&data, &out, &["--batch", "64"], std::process::Stdio::null());
    let pid = child.id() as libc::pid_t;
    // Watch for the checkpoint's temporary file and freeze the run the moment it appears. If
    // the file is still there once the run is frozen, the run is between creating it and
    // renaming it: in the middle of the checkpoint write. Otherwise let it go and watch again.
    let start = Instant::now();
    let mut caught = false;
    while !caught && start.elapsed() < Duration::from_secs(120) {
        let writing =
            out.is_dir() && temporaries(&out).iter().any(|n| n.starts_with(".checkpoint.safetensors."));
        if !writing {
            continue;
        }
        // SAFETY: kill(2) on the pid of a child this test spawned and has not yet waited for.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(20));
        caught = temporaries(&out).iter().any(|n| n.starts_with(".checkpoint.safetensors."));
        if !caught {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(caught, "the run was never caught writing its checkpoint");
    assert!(!temporaries(&out).is_empty(), "the kill should have left the temporary file");

    // The next run removes the temporary file, says so, and resumes from the last checkpoint
    // (or, killed during the first write, starts afresh).
    let checkpoint = out.join("checkpoint.safetensors");
    let done = checkpoint.exists().then(|| {
        let all = tensors(&checkpoint);
        all.iter().find(|(n, _)| n == "nnc.metrics").map(|(_, m)| m.size()[0]).unwrap()
    });
    let epochs = (done.unwrap_or(0) + 1).to_string();
    let mut flags = vec!["--epochs", &epochs, "--batch", "64"];
    if done.is_some() {
        flags.push("--resume");
    }
    let o = train(&data, &out, &flags);
    assert!(
        text(&o).contains("note: removed") && text(&o).contains("left by a write that was killed"),
        "{}",
        text(&o)
    );
    assert!(temporaries(&out).is_empty(), "stray files: {:?}", temporaries(&out));
    assert_eq!(clean(&o), 0, "{}", text(&o));
    if let Some(done) = done {
        assert!(text(&o).contains(&format!("resuming after epoch {done}")), "{}", text(&o));
    }
    std::fs::remove_dir_all(&data).unwrap();
}

/// A finished run records what made it and what it measured: the checkpoint's `__metadata__`
/// (network, parameters, nnc's version, epoch), the test loss beside the accuracies in the CSV
/// and JSON Lines files, and, where stderr is no terminal (as here), no progress bar but the
/// epoch lines. `export-weights` then writes the weights alone, which load strictly.
#[test]
fn runs_record_their_provenance_and_test_loss_and_export_plain_weights() {
    let data = dataset_of("provenance", 256, 32, 28);
    let out = data.join("run");
    let o = train(&data, &out, &["--epochs", "2", "--batch", "64", "--lr", "0.1", "--log-every", "0"]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    let log = text(&o);
    assert!(
        log.contains("epoch 2/2: loss ") && log.contains("test loss ") && log.contains("elapsed"),
        "{log}"
    );
    // 256 examples in batches of 64: a line after each of the first three, none after the last.
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("epoch 1/2: batch ")).collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].starts_with("epoch 1/2: batch 1/4, loss ") && lines[0].contains(", ETA "), "{log}");

    let meta = nnc_runtime::weights::read_metadata(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta.get("network").map(String::as_str), Some("lenet"), "{meta:?}");
    assert_eq!(meta.get("epoch").map(String::as_str), Some("2"), "{meta:?}");
    assert_eq!(meta.get("nnc_version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    let parameters: serde_json::Value = serde_json::from_str(&meta["parameters"]).unwrap();
    assert_eq!(parameters["classes"], 10, "{parameters}");

    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("epoch,train_loss,train_acc,test_loss,test_acc,examples_per_sec\n"), "{csv}");
    let jsonl = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{jsonl}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["epoch"], i + 1);
        let test_loss = r["test_loss"].as_f64().unwrap();
        assert!(test_loss.is_finite() && test_loss > 0.0, "{r}");
        // The CSV's row says the same.
        let row: Vec<&str> = csv.lines().nth(i + 1).unwrap().split(',').collect();
        assert!((row[3].parse::<f64>().unwrap() - test_loss).abs() < 1e-5, "{row:?} {r}");
    }

    let exported = data.join("weights.safetensors");
    let o = nnc()
        .args(["export-weights", "models/lenet.net", "--weights"])
        .arg(out.join("checkpoint.safetensors"))
        .arg("-o")
        .arg(&exported)
        .output()
        .unwrap();
    assert_eq!(clean(&o), 0, "{}", text(&o));
    let names: Vec<String> = tensors(&exported).into_iter().map(|(n, _)| n).collect();
    let expected: Vec<String> = weights(&out.join("checkpoint.safetensors"))
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with("optim."))
        .collect();
    assert_eq!(names, expected);
    assert!(names.iter().all(|n| !n.starts_with("nnc.") && !n.starts_with("optim.")), "{names:?}");
    let meta = nnc_runtime::weights::read_metadata(&exported).unwrap();
    assert_eq!(meta.get("epoch").map(String::as_str), Some("2"), "{meta:?}");
    // The same values as the checkpoint's.
    for ((a, x), (b, y)) in tensors(&exported).iter().zip(weights(&out.join("checkpoint.safetensors"))) {
        assert_eq!(a, &b);
        assert!(x.equal(&y), "{a}");
    }
    // Never over the checkpoint itself.
    let o = nnc()
        .args(["export-weights", "models/lenet.net", "--weights"])
        .arg(out.join("checkpoint.safetensors"))
        .arg("-o")
        .arg(out.join("checkpoint.safetensors"))
        .output()
        .unwrap();
    assert_eq!(clean(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("is the checkpoint itself"), "{}", text(&o));
    std::fs::remove_dir_all(&data).unwrap();
}

/// Validates `value` against the JSON Schema `docs/schema/NAME.schema.json`.
fn validate(name: &str, value: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/schema/{name}.schema.json"));
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(name, schema).unwrap();
    let id = compiler.compile(name, &mut schemas).unwrap();
    if let Err(e) = schemas.validate(value, id) {
        panic!("{name}: {e:#}\n{value:#}");
    }
}

/// `--format json` of `run`, `bench`, `eval` and `train` follows its documented schema, and
/// says what the text says; a closed stdout ends a command quietly, with exit 0.
#[test]
fn runtime_commands_speak_json_and_stop_quietly_on_a_closed_pipe() {
    let data = dataset_of("json", 128, 32, 28);
    let out = data.join("run");
    let o = train(&data, &out, &["--epochs", "2", "--batch", "64", "--lr", "0.1", "--format", "json"]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let records: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{stdout}");
    for (i, r) in records.iter().enumerate() {
        validate("train", r);
        assert_eq!(r["epoch"], i + 1);
    }
    assert!(String::from_utf8_lossy(&o.stderr).contains("checkpoint: "), "{}", text(&o));

    let checkpoint = out.join("checkpoint.safetensors");
    let eval = nnc()
        .args(["eval", "models/lenet.net", "--format", "json", "--weights"])
        .arg(&checkpoint)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(clean(&eval), 0, "{}", text(&eval));
    let value: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    validate("eval", &value);
    assert_eq!(value["examples"], 32);
    // The last epoch's test accuracy, as `train` measured it on the same weights.
    assert_eq!(value["accuracy"], records[1]["test_acc"]);

    let saved = data.join("run.safetensors");
    let run = nnc()
        .args(["run", "models/googlenet.net", "--format", "json", "--set", "ratio=8", "--save-weights"])
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(clean(&run), 0, "{}", text(&run));
    let value: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    validate("run", &value);
    assert_eq!(value["mismatches"], 0);
    assert_eq!(value["outputs"][0]["shape"], serde_json::json!([2, 10]));
    // The inference plan, checked against the interpreter as in text; the weights saved.
    let plan = &value["inference_plan"];
    assert!(plan["description"].as_str().unwrap().contains("convolution weights prepacked"), "{plan}");
    assert!(plan["relative_error"].as_f64().unwrap() <= 1e-5, "{plan}");
    assert_eq!(value["saved_weights"], saved.display().to_string());
    assert!(saved.is_file(), "--save-weights wrote nothing in JSON");

    let bench = nnc()
        .args(["bench", "models/lenet.net", "--format", "json", "--runs", "2", "--warmup", "1"])
        .output()
        .unwrap();
    assert_eq!(clean(&bench), 0, "{}", text(&bench));
    let value: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    validate("bench", &value);
    assert!(value["plain_forward"]["median"].as_f64().unwrap() > 0.0, "{value}");
    assert!(value["inference_plan"].as_str().unwrap().contains("convolution weights prepacked"), "{value}");

    // A reader that goes away before the command writes (`nnc run ... | true`): each command
    // ends quietly where it first writes (a run in training stops there too, an epoch's line
    // coming after its checkpoint).
    let commands: [Vec<std::ffi::OsString>; 3] = [
        ["run", "models/resnet18.net", "--set", "size=32"].map(Into::into).to_vec(),
        ["eval", "models/lenet.net", "--weights"]
            .map(Into::into)
            .into_iter()
            .chain([checkpoint.clone().into(), "--data".into(), data.clone().into()])
            .collect(),
        ["train", "models/lenet.net", "--epochs", "3", "--out"]
            .map(Into::into)
            .into_iter()
            .chain([data.join("piped").into(), "--data".into(), data.clone().into()])
            .collect(),
    ];
    for args in commands {
        let mut child = nnc()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(!String::from_utf8_lossy(&o.stderr).contains("error"), "{args:?}: {}", text(&o));
    }
    // The run stopped at its first line, before training.
    assert!(!data.join("piped/checkpoint.safetensors").exists());
    // A reader that takes the first line and goes (`nnc train ... | head -1`): the run stops
    // at the first epoch's line, its checkpoint and metrics written before it.
    let headed = data.join("headed");
    let mut child = nnc()
        .args(["train", "models/lenet.net", "--epochs", "3", "--batch", "64", "--out"])
        .arg(&headed)
        .arg("--data")
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first)
        .unwrap();
    assert!(first.starts_with("training lenet"), "{first}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let csv = std::fs::read_to_string(headed.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "the header and epoch 1: {csv}");
    assert_eq!(std::fs::read_to_string(headed.join("metrics.jsonl")).unwrap().lines().count(), 1);
    assert!(headed.join("curves.svg").is_file() && headed.join("checkpoint.safetensors").is_file());
    std::fs::remove_dir_all(&data).unwrap();
}

/// `--precision bf16` and `--channels-last`: training says so and keeps fp32 weights in its
/// checkpoint, evaluation in bf16 reports it (in JSON too); `--device cuda` where no CUDA is
/// usable is a usage error that says how to get one, before anything is written.
#[test]
fn bf16_and_channels_last_train_and_cuda_without_a_gpu_is_a_clear_error() {
    let data = dataset_of("bf16", 256, 32, 28);
    let out = data.join("run");
    let o = train(&data, &out, &["--epochs", "1", "--precision", "bf16", "--channels-last"]);
    assert_eq!(clean(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("bf16 autocast, channels-last (--channels-last)"), "{}", text(&o));
    // The weights and the optimiser's state are fp32 (the metrics f64, the counters int64).
    for (name, t) in tensors(&out.join("checkpoint.safetensors")) {
        assert!(matches!(t.kind(), Kind::Float | Kind::Double | Kind::Int64), "{name} is {:?}", t.kind());
        if name.ends_with("weight") {
            assert_eq!(t.kind(), Kind::Float, "{name}");
        }
    }
    let o = nnc()
        .args(["eval", "models/lenet.net", "--precision", "bf16", "--format", "json", "--data"])
        .arg(&data)
        .arg("--weights")
        .arg(out.join("checkpoint.safetensors"))
        .output()
        .unwrap();
    assert_eq!(clean(&o), 0, "{}", text(&o));
    let document: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(document["precision"], "bf16");
    validate("eval", &document);
    if !nnc_runtime::tch::Cuda::is_available() {
        let gpu = data.join("gpu");
        let o = train(&data, &gpu, &["--device", "cuda", "--precision", "bf16", "--channels-last"]);
        assert_eq!(clean(&o), 2, "{}", text(&o));
        assert!(text(&o).contains("cannot use `cuda`"), "{}", text(&o));
        assert!(text(&o).contains("LIBTORCH_USE_PYTORCH=1 scripts/setup-libtorch.sh"), "{}", text(&o));
        assert!(!gpu.exists(), "a refused run created its folder");
    }
    std::fs::remove_dir_all(&data).unwrap();
}

/// `nnc bench --serve` prints its setting once set up, then answers each request on a line of
/// its own as soon as it is measured (a harness waits for each answer before it goes on, so an
/// answer held in a buffer would stall it), answers a request it does not understand with an
/// error and reads on, and ends with exit 0 when its input does.
#[test]
fn bench_serve_answers_each_request_as_it_comes() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let mut child = nnc()
        .args(["bench", "models/lenet-bn.net", "--serve", "--batch", "4", "--warmup", "1", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // Lines are read on a thread, so that an answer that never comes fails the test instead of
    // hanging it.
    let (send, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            send.send(line.unwrap()).unwrap();
        }
    });
    let next = || -> serde_json::Value {
        let line = lines.recv_timeout(Duration::from_secs(120)).expect("no line within two minutes");
        let value = serde_json::from_str(&line).unwrap();
        validate("bench-serve", &value);
        value
    };
    let setting = next();
    assert_eq!(setting["network"], "lenet_bn", "{setting}");
    assert_eq!((setting["batch"].as_i64(), setting["warmup"].as_i64()), (Some(4), Some(1)), "{setting}");
    assert!(setting["inference_plan"].as_str().unwrap().contains("batch norms folded"), "{setting}");
    // One request at a time, with the input left open: each is answered before the next is sent.
    for (request, workload, runs) in
        [("train 3", "train", 3), ("forward 2", "forward", 2), ("plain 1", "plain", 1)]
    {
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
        let answer = next();
        assert_eq!((answer["workload"].as_str(), answer["runs"].as_i64()), (Some(workload), Some(runs)));
        let figure = |key: &str| answer[key].as_f64().unwrap();
        assert!(
            0.0 < figure("min") && figure("min") <= figure("median") && figure("median") <= figure("max")
        );
    }
    for (request, number) in
        [("train 0", 4), ("backward 2", 5), ("forward", 6), ("", 7), ("train 1000001", 8)]
    {
        writeln!(stdin, "{request}").unwrap();
        let error = next();
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with(&format!("request {number}: `{request}`: a request is")), "{message}");
    }
    // A line past the limit is refused unread, up to its end, and the next line is read.
    writeln!(stdin, "forward {}", "9".repeat(300)).unwrap();
    assert_eq!(next()["error"], "request 9: longer than 256 bytes");
    // Read on after the errors.
    writeln!(stdin, "forward 1").unwrap();
    assert_eq!(next()["workload"], "forward");
    // A last line of exactly the limit, with no line end, is a request, not one too long.
    write!(stdin, "forward 1{}", " ".repeat(256 - 9)).unwrap();
    drop(stdin);
    assert_eq!(next()["workload"], "forward");
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    assert!(lines.try_recv().is_err(), "a line after the last answer");
}
