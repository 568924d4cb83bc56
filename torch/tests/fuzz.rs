//! The runtime fuzz test end to end: a few dozen of the hostile inputs that
//! `runtime/tests/fuzz.rs` gives the runtime's readers in-process (the same generator, in
//! `runtime/tests/hostile/`), given to the binary as `run --weights`, `eval --data` and
//! `predict` do. Every run must end with exit 0, 1 or 2 and no panic (exit 101) or abort.

#[allow(dead_code)]
#[path = "../../runtime/tests/hostile/mod.rs"]
mod hostile;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hostile::{idx_files, png_file, weights_file, Rng};
use nnc_runtime::data::encode_idx;

fn nnc(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Command::new(env!("CARGO_BIN_EXE_nnc-torch"))
        .args(args)
        .current_dir(root)
        // A backtrace, to tell where a panic came from.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// The first frame of the runtime in a panic's backtrace, as its function's path.
fn runtime_frame(stderr: &str) -> Option<&str> {
    stderr.lines().map(str::trim).find(|l| l.contains("nnc_runtime::"))
}

/// Checks each run: a clean exit passes, and any other ending fails the test, listing every
/// such input.
struct Judge {
    failed: Vec<String>,
    runs: usize,
}

impl Judge {
    fn check(&mut self, label: &str, out: &Output) {
        self.runs += 1;
        if matches!(out.status.code(), Some(0..=2)) {
            return;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| l.contains("panicked") || l.contains("error")).unwrap_or("");
        let frame = runtime_frame(&stderr).unwrap_or("(no runtime frame)");
        self.failed.push(format!("{label}: {} at {frame}: {first}", out.status));
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-fuzz-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Twenty valid 28×28 training images and their labels, for `eval`, which reads the
/// training set too.
fn training_set(dir: &Path) {
    let pixels: Vec<u8> = (0..20 * 28 * 28).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..20).map(|i| i % 10).collect();
    std::fs::write(dir.join("train-images-idx3-ubyte"), encode_idx(2051, &[20, 28, 28], &pixels)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), encode_idx(2049, &[20], &labels)).unwrap();
}

#[test]
fn hostile_files_end_in_a_clean_exit() {
    let dir = temp_dir();
    let valid = dir.join("valid.safetensors");
    let out = nnc(&["run", "models/lenet.net", "--save-weights", valid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let valid_bytes = std::fs::read(&valid).unwrap();
    let mut judge = Judge { failed: Vec::new(), runs: 0 };
    let weights = dir.join("w.safetensors");
    let mut rng = Rng::new(0x5eed_0011);
    for i in 0..12 {
        let (how, bytes) = weights_file(&mut rng, i, &valid_bytes);
        std::fs::write(&weights, &bytes).unwrap();
        let out = nnc(&["run", "models/lenet.net", "--weights", weights.to_str().unwrap()]);
        judge.check(&format!("run --weights, case {i} ({how})"), &out);
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    training_set(&data);
    let mut rng = Rng::new(0x5eed_0012);
    for i in 0..12 {
        let (how, images, labels) = idx_files(&mut rng, i);
        std::fs::write(data.join("t10k-images-idx3-ubyte"), &images).unwrap();
        std::fs::write(data.join("t10k-labels-idx1-ubyte"), &labels).unwrap();
        let args = [
            "eval",
            "models/lenet.net",
            "--weights",
            valid.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ];
        judge.check(&format!("eval, case {i} ({how})"), &nnc(&args));
    }
    let mut rng = Rng::new(0x5eed_0013);
    for i in 0..12 {
        let (how, file) = if i % 2 == 0 {
            let (how, bytes) = png_file(&mut rng, i / 2);
            std::fs::write(dir.join("picture.png"), bytes).unwrap();
            (how, dir.join("picture.png"))
        } else {
            let (how, images, _) = idx_files(&mut rng, i / 2);
            std::fs::write(dir.join("images-idx3-ubyte"), images).unwrap();
            (how, dir.join("images-idx3-ubyte"))
        };
        let args =
            ["predict", "models/lenet.net", "--weights", valid.to_str().unwrap(), file.to_str().unwrap()];
        judge.check(&format!("predict {}, case {i} ({how})", file.display()), &nnc(&args));
    }
    let _ = writeln!(std::io::stderr(), "{} runs, {} failed", judge.runs, judge.failed.len());
    assert!(judge.failed.is_empty(), "{} runs ended badly:\n{}", judge.failed.len(), judge.failed.join("\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}
