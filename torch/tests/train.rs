//! `nnc train`, `eval` and `predict` end to end on small generated IDX data: a run killed after
//! its first checkpoint and resumed ends with the same weights as an uninterrupted run; a
//! diverging run stops with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nnc_runtime::data::encode_idx;
use nnc_runtime::tch::Tensor;

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
    let dir = std::env::temp_dir().join(format!("nnc-cli-train-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", 2048u32), ("t10k", 256)] {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        let mut state = 12345u32 + n;
        for i in 0..n {
            let label = (i * 7 % 10) as u8;
            labels.push(label);
            for row in 0..28u32 {
                for _ in 0..28 {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let noise = (state >> 24) as u8 / 2;
                    let lit = row / 2 == 2 * label as u32 / 2 + 2;
                    pixels.push(if lit { 128 + noise } else { noise });
                }
            }
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            encode_idx(2051, &[n, 28, 28], &pixels),
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
