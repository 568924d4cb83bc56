//! Hostile inputs to `predict`, `train` and `eval` end to end: FIFOs, devices, IDX files of
//! images without pixels or without images, a picture whose header declares 20000×20000
//! pixels. Each is a usage error (exit 2) naming the file, never a hang or a panic (101, 134).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nnc_runtime::data::encode_idx;

/// `nnc-torch` with `args`, killed if it runs longer than a minute: a hang fails the test.
fn nnc_within_60s(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc-torch"))
        .args(args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("`nnc-torch {}` still ran after 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-torch-inputs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The CRC-32 that PNG chunks carry (of their type and data), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG that declares `width`×`height` grey pixels and holds none of them.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8; 4], data: &[u8]| {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(data);
        out.extend(crc32(&out[4..]).to_be_bytes());
        out
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[]));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[cfg(unix)]
#[test]
fn predict_refuses_special_files_empty_images_and_huge_pictures() {
    let dir = tmp("predict");
    let weights = dir.join("lenet.safetensors");
    let saved = nnc_within_60s(&["run", "models/lenet.net", "--save-weights", weights.to_str().unwrap()]);
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));
    let fifo = dir.join("pipe-idx3-ubyte");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let huge = dir.join("huge.png");
    std::fs::write(&huge, png_header(20_000, 20_000)).unwrap();
    let flat = dir.join("flat-idx3-ubyte");
    std::fs::write(&flat, encode_idx(2051, &[3, 0, 28], &[])).unwrap();
    let none = dir.join("none-idx3-ubyte");
    std::fs::write(&none, encode_idx(2051, &[0, 28, 28], &[])).unwrap();
    let cases = [
        ("/dev/zero".to_string(), "/dev/zero is a character device, not a regular file".to_string()),
        (
            fifo.display().to_string(),
            format!("{} is a FIFO (named pipe), not a regular file", fifo.display()),
        ),
        (
            huge.display().to_string(),
            format!(
                "{} is too large: it is 20000×20000 pixels (400,000,000), over the limit of 67,108,864 \
                 pixels (8192×8192)",
                huge.display()
            ),
        ),
        (
            flat.display().to_string(),
            format!("{} holds images of 0×28 pixels; both sides must be at least 1", flat.display()),
        ),
        (
            none.display().to_string(),
            format!("{} holds no images; a data set needs at least one", none.display()),
        ),
    ];
    for (input, expected) in cases {
        let out =
            nnc_within_60s(&["predict", "models/lenet.net", "--weights", weights.to_str().unwrap(), &input]);
        assert_eq!(out.status.code(), Some(2), "{input}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("error: {expected}\n"), "{input}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn train_and_eval_refuse_images_without_pixels() {
    // A good training set, and test images of 28×0 pixels.
    let dir = tmp("data");
    for (prefix, dims) in [("train", [4u32, 28, 28]), ("t10k", [2, 28, 0])] {
        let pixels = vec![0; dims.iter().product::<u32>() as usize];
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), encode_idx(2051, &dims, &pixels))
            .unwrap();
        let labels = vec![0; dims[0] as usize];
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            encode_idx(2049, &dims[..1], &labels),
        )
        .unwrap();
    }
    let images = dir.join("t10k-images-idx3-ubyte");
    let expected =
        format!("error: {} holds images of 28×0 pixels; both sides must be at least 1\n", images.display());
    let run = dir.join("run");
    let out = nnc_within_60s(&[
        "train",
        "models/lenet.net",
        "--data",
        dir.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!((out.status.code(), stderr(&out)), (Some(2), expected.clone()));
    let weights = dir.join("lenet.safetensors");
    let saved = nnc_within_60s(&["run", "models/lenet.net", "--save-weights", weights.to_str().unwrap()]);
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));
    let data = dir.to_str().unwrap();
    let out =
        nnc_within_60s(&["eval", "models/lenet.net", "--weights", weights.to_str().unwrap(), "--data", data]);
    assert_eq!((out.status.code(), stderr(&out)), (Some(2), expected));
    std::fs::remove_dir_all(dir).unwrap();
}
