//! A crate outside this repository that depends on `nnc` by path, set up as the README's "In
//! another crate" says: its `.cargo/config.toml` points tch at libtorch (`LIBTORCH`) and its
//! binary at libtorch's shared libraries (an rpath). The binary is then run directly, without
//! the library path `cargo run` would add, so that the rpath is what finds libtorch.
//!
//! It builds tch and torch-sys once more, in a target folder of its own (`target/external`):
//! minutes on a fresh machine, seconds after that.

use std::path::Path;
use std::process::Command;

#[test]
fn a_crate_outside_the_repository_builds_and_runs_a_model() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap();
    let libtorch = std::env::var("LIBTORCH").map(|l| repo.join(l)).unwrap_or_else(|_| repo.join(".libtorch"));
    assert!(
        libtorch.join("lib").is_dir(),
        "no libtorch at {} (scripts/setup-libtorch.sh)",
        libtorch.display()
    );
    let dir = std::env::temp_dir().join(format!("nnc-external-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    let manifest = format!(
        "[package]\nname = \"uses-nnc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nnnc = {{ path = {:?} }}\n\n[workspace]\n",
        repo.join("nnc")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // The README's configuration, with this checkout's libtorch.
    let config = format!(
        "[env]\nLIBTORCH = {:?}\n\n[build]\nrustflags = [\"-C\", \"link-args=-Wl,-rpath,{}/lib\"]\n",
        libtorch,
        libtorch.display()
    );
    std::fs::write(dir.join(".cargo/config.toml"), config).unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        r#"use nnc::tch::{nn, nn::ModuleT, Device, Kind, Tensor};

nnc::model! {
    network tiny {
        input [N, 1, 8, 8]
        conv2d(4, 3, padding=1) -> relu -> flatten -> linear(2)
    }
}

fn main() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Tiny::new(&vs.root());
    let y = net.forward_t(&Tensor::zeros([3, 1, 8, 8], (Kind::Float, Device::Cpu)), false);
    print!("{}", Tiny::summary());
    println!("output {:?}", y.size());
}
"#,
    )
    .unwrap();
    // The repository's lock file, so that the crate builds the versions tested here, offline.
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = repo.join("target/external");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        // Without debug info: tch and torch-sys again, for a test that never debugs them.
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env_remove("LIBTORCH")
        .env_remove("RUSTFLAGS")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let run = Command::new(target.join("debug/uses-nnc")).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{out}{}", String::from_utf8_lossy(&run.stderr));
    assert!(out.starts_with("network tiny(): [N, 1, 8, 8] → [N, 2]"), "{out}");
    // 4·9 + 4 and 256·2 + 2.
    assert!(out.contains("parameters:              554"), "{out}");
    assert!(out.ends_with("output [3, 2]\n"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
