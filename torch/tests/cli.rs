//! `nnc run` and `nnc bench` on libtorch, through `nnc-torch` directly and through `nnc`,
//! which hands them over.

use std::path::Path;
use std::process::{Command, Output};

fn nnc(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Command::new(env!("CARGO_BIN_EXE_nnc-torch")).args(args).current_dir(root).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_prints_inferred_and_runtime_shapes() {
    let out = nnc(&["run", "models/resnet18.net", "--set", "size=64", "--batch", "3"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("all 66 layers have their inferred shapes; output [3, 10]"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("b3.0.conv1 ")).unwrap();
    assert!(
        line.contains("[N, 128, 8, 8]") && line.contains("[3, 128, 8, 8]") && line.ends_with("ok"),
        "{line}"
    );
}

#[test]
fn run_needs_one_network() {
    let out = nnc(&["run", "models/conv-examples.net"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("choose one with --network"), "{}", text(&out.stderr));
    let out = nnc(&["run", "models/conv-examples.net", "--network", "strided"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("output [2, 1, 2, 2]"));
}

#[test]
fn weights_saved_by_run_load_back() {
    let dir = std::env::temp_dir().join(format!("nnc-cli-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lenet.safetensors");
    let file = file.to_str().unwrap();
    let first = nnc(&["run", "models/lenet.net", "--seed", "5", "--save-weights", file]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    // Another seed draws other weights, but loading the file restores the same outputs.
    let second = nnc(&["run", "models/lenet.net", "--seed", "5", "--weights", file]);
    let third = nnc(&["run", "models/lenet.net", "--seed", "6"]);
    let example =
        |o: &Output| text(&o.stdout).lines().find(|l| l.starts_with("first example")).unwrap().to_string();
    assert_eq!(example(&first), example(&second));
    assert_ne!(example(&first), example(&third));
    let wrong = nnc(&["run", "models/lenet-bn.net", "--weights", file]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong.stderr).contains("missing: `1.running_mean`"), "{}", text(&wrong.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--input` runs on given tensors, each under its input's name (a lone one for a network of
/// one input), and `--save-outputs` writes each output: the interpreter's outputs on those
/// tensors with those weights, computed here. A file that does not fit is refused, naming
/// what differs.
#[test]
fn run_takes_given_inputs_and_saves_outputs() {
    use std::collections::BTreeMap;

    use nnc_compiler::{compile, Options, Root};
    use nnc_runtime::tch::{nn, Device, Kind, Tensor};
    use nnc_runtime::{parity, weights, Init, Model};

    let dir = std::env::temp_dir().join(format!("nnc-cli-inputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let net = "network pair {\n    input a [N, 4]\n    input b [N, 4]\n    a + b -> linear(3) -> relu\n}\n";
    std::fs::write(dir.join("pair.net"), net).unwrap();
    let (a, b) = (
        Tensor::randn([5, 4], (Kind::Float, Device::Cpu)),
        Tensor::randn([5, 4], (Kind::Float, Device::Cpu)),
    );
    let given = [("b".to_string(), b.shallow_clone()), ("a".to_string(), a.shallow_clone())];
    weights::write(&given, &BTreeMap::new(), Path::new(&path("in.safetensors"))).unwrap();

    let args = ["run", &path("pair.net"), "--input", &path("in.safetensors")];
    let saves = ["--save-outputs", &path("out.safetensors"), "--save-weights", &path("w.safetensors")];
    let out = nnc(&[&args[..], &saves[..]].concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("batch 5") && stdout.contains("saved the outputs to"), "{stdout}");

    let compiled = compile(Root::Text { name: "pair.net", text: net, dir: None }, &Options::default());
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    weights::load(&mut vs, Path::new(&path("w.safetensors"))).unwrap();
    let expected = nnc_runtime::tch::no_grad(|| model.try_forward_inputs(&[&a, &b], false)).unwrap();
    let saved: BTreeMap<String, Tensor> =
        weights::read(Path::new(&path("out.safetensors"))).unwrap().into_iter().collect();
    assert_eq!(saved.keys().collect::<Vec<_>>(), ["output"]);
    assert_eq!(saved["output"].size(), [5, 3]);
    assert!(parity::relative(&saved["output"], &expected) <= 1e-6, "the saved output is not the model's");

    // One tensor missing, or one the network does not take: refused, naming them.
    let lone = [("a".to_string(), a.shallow_clone())];
    weights::write(&lone, &BTreeMap::new(), Path::new(&path("lone.safetensors"))).unwrap();
    let out = nnc(&["run", &path("pair.net"), "--input", &path("lone.safetensors")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("do not fit the network's (`a`, `b`): it has no `b`"),
        "{}",
        text(&out.stderr)
    );
    // A float input of another type than the weights' F32 (numpy's default F64) is refused.
    let wide = [("a".to_string(), a.to_kind(Kind::Double)), ("b".to_string(), b.shallow_clone())];
    weights::write(&wide, &BTreeMap::new(), Path::new(&path("f64.safetensors"))).unwrap();
    let out = nnc(&["run", &path("pair.net"), "--input", &path("f64.safetensors")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the input `a`") && text(&out.stderr).contains("save it as float32"),
        "{}",
        text(&out.stderr)
    );
    // A network of one input takes a file's lone tensor whatever its name, at its batch.
    let x = [("pixels".to_string(), Tensor::randn([3, 1, 28, 28], (Kind::Float, Device::Cpu)))];
    weights::write(&x, &BTreeMap::new(), Path::new(&path("x.safetensors"))).unwrap();
    let out = nnc(&["run", "models/lenet.net", "--input", &path("x.safetensors")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("output [3, 10]"), "{}", text(&out.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_reports_throughput() {
    let out = nnc(&[
        "bench",
        "models/lenet.net",
        "--batch",
        "16",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("1 threads"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("training step") && l.contains("examples/s")), "{stdout}");
}

#[test]
fn a_device_that_is_not_there_is_a_usage_error() {
    let out = nnc(&["run", "models/lenet.net", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown device `tpu`"));
    if !nnc_runtime_has_cuda() {
        let out = nnc(&["run", "models/lenet.net", "--device", "cuda"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    }
}

#[test]
fn nnc_hands_run_over_to_nnc_torch() {
    // Both binaries live in the same target folder; `nnc` execs its sibling.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let nnc = Path::new(env!("CARGO_BIN_EXE_nnc-torch")).with_file_name("nnc");
    if !nnc.is_file() {
        // `cargo test -p nnc-torch` alone does not build `nnc`; the workspace test run does.
        eprintln!("skipped: {} is not built", nnc.display());
        return;
    }
    let out = Command::new(nnc).args(["run", "models/lenet.net"]).current_dir(root).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("all 12 layers have their inferred shapes"));
}

fn nnc_runtime_has_cuda() -> bool {
    nnc_runtime::tch::Cuda::is_available()
}

/// `scripts/setup-libtorch.sh` links a given libtorch folder (here the project's own) into its
/// destination, keeps it on a second run, and refuses a folder of another version and a switch
/// value it does not know, changing nothing. (Linking an installed PyTorch's needs a Python
/// with torch, which CI does not have: that path was run by hand, as the README says.)
#[test]
fn setup_libtorch_links_a_given_folder_and_refuses_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // The libtorch this build uses: `.cargo/config.toml`'s, or one the developer exported.
    let libtorch = std::env::var_os("LIBTORCH").map_or(root.join(".libtorch"), std::path::PathBuf::from);
    /// Removes the test's folder however the test ends.
    struct Folder(std::path::PathBuf);
    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let folder = Folder(std::env::temp_dir().join(format!("nnc-setup-libtorch-{}", std::process::id())));
    let tmp = &folder.0;
    let _ = std::fs::remove_dir_all(tmp);
    std::fs::create_dir_all(tmp).unwrap();
    let dest = tmp.join("linked");
    let script = |vars: &[(&str, &Path)]| {
        Command::new("bash")
            .arg(root.join("scripts/setup-libtorch.sh"))
            .env_remove("LIBTORCH")
            .env_remove("LIBTORCH_USE_PYTORCH")
            .env("NNC_LIBTORCH_DEST", &dest)
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    let o = script(&[("LIBTORCH", &libtorch)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("linked"), "{}", text(&o.stderr));
    let lib = dest.join("lib");
    assert!(lib.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(lib.canonicalize().unwrap(), libtorch.join("lib").canonicalize().unwrap());
    assert_eq!(std::fs::read_to_string(dest.join("build-version")).unwrap(), "2.13.0\n");
    let o = script(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("keeping it"), "{}", text(&o.stderr));

    let old = tmp.join("old");
    std::fs::create_dir_all(old.join("lib")).unwrap();
    std::fs::create_dir_all(old.join("include/torch")).unwrap();
    std::fs::write(old.join("lib/libtorch_cpu.so"), b"").unwrap();
    std::fs::write(old.join("build-version"), "2.12.0\n").unwrap();
    let o = script(&[("LIBTORCH", &old)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("is version 2.12.0; tch 0.26 needs 2.13.0"), "{}", text(&o.stderr));
    let o = script(&[("LIBTORCH_USE_PYTORCH", Path::new("maybe"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("LIBTORCH_USE_PYTORCH=maybe"), "{}", text(&o.stderr));
    assert_eq!(
        lib.canonicalize().unwrap(),
        libtorch.join("lib").canonicalize().unwrap(),
        "a refusal changed it"
    );
}

/// `--save-weights` and `export-weights -o` write only regular files: a FIFO there is a usage
/// error that leaves it as it was (the rename of an atomic write would have replaced it).
#[test]
fn weights_are_not_written_over_a_fifo() {
    let dir = std::env::temp_dir().join(format!("nnc-torch-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("weights.safetensors");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = nnc(&["run", "models/lenet.net", "--save-weights", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is a FIFO (named pipe), not a regular file"),
        "{}",
        text(&out.stderr)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    std::fs::remove_dir_all(&dir).unwrap();
}
