//! Requests over a memory cap (`ulimit -v` in a subprocess) end in a clean error: refused
//! before they start when the estimate from the IR is over the cap, and a layer's error when
//! libtorch's allocation is refused (with the check switched off). Never a panic (exit 101) or
//! an abort (134).

use std::path::Path;
use std::process::{Command, Output};

/// The address-space cap, in KiB: 4 GB, several times what `nnc-torch` maps to start (about
/// 0.5 GB with a CPU libtorch), and far below what the requests below need.
const CAP_KB: u64 = 4_000_000;

/// `nnc-torch ARGS` under `ulimit -v CAP_KB`, with `env` set, killed after 120 s.
fn capped(args: &str, env: &[(&str, &str)]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = format!("ulimit -v {CAP_KB} && exec timeout 120 \"$0\" {args}");
    Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_nnc-torch")])
        .env_remove("NNC_MEMORY_CHECK")
        .envs(env.iter().copied())
        .current_dir(root)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `nnc-torch` starts and runs a small model under the cap at all (a libtorch with
/// CUDA maps more address space than the cap to start).
fn starts_under_the_cap() -> bool {
    let out = capped("run models/lenet.net --device cpu", &[]);
    if out.status.code() != Some(0) {
        eprintln!("skipped: nnc-torch does not run under ulimit -v {CAP_KB}: {}", stderr(&out));
    }
    out.status.code() == Some(0)
}

/// A clean error: exit 1, one `error:` message, no panic.
fn assert_clean_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("frame #"), "{err}");
    err
}

#[test]
fn requests_over_the_cap_are_refused_before_they_start() {
    if !starts_under_the_cap() {
        return;
    }
    for (args, task) in [
        ("run models/vgg11.net --batch 512", "running vgg11 at batch 512"),
        ("bench models/vgg11.net --batch 512", "benchmarking vgg11 at batch 512"),
        // Refused before the data are looked for, so none is needed.
        ("train models/vgg11.net --batch 512", "training vgg11 at batch 512"),
        ("run models/alexnet.net --batch 4096", "running alexnet at batch 4096"),
        ("run models/resnet-1000.net --batch 512", "running resnet1000 at batch 512"),
        ("run models/resnet18.net --set size=100000", "running resnet18 at batch 2"),
    ] {
        let out = capped(&format!("{args} --device cpu"), &[]);
        let err = assert_clean_error(&out);
        assert!(err.starts_with(&format!("error: {task} needs about ")), "{args}: {err}");
        assert!(err.contains("but the address-space limit (ulimit -v) of 4.10 GB leaves"), "{args}: {err}");
        assert!(err.contains("\nhelp: "), "{args}: {err}");
    }
}

#[test]
fn an_allocation_refused_in_a_layer_is_an_error_naming_it() {
    if !starts_under_the_cap() {
        return;
    }
    let off = [("NNC_MEMORY_CHECK", "off")];
    // AlexNet's first convolution at batch 4096 asks for 4.6 GB at once.
    let out = capped("run models/alexnet.net --batch 4096 --device cpu", &off);
    let err = assert_clean_error(&out);
    assert!(
        err.starts_with(
            "error: layer `0` (conv2d 1→96, 11×11, stride 4, padding 1) could not allocate 4.59 GB \
             (4586471424 bytes) on input [4096, 1, 224, 224]"
        ),
        "{err}"
    );
    assert!(err.ends_with("help: try a smaller batch or input size\n"), "{err}");
    // A random input of 80 GB is refused as the input layer's.
    let out = capped("run models/resnet18.net --set size=100000 --device cpu", &off);
    let err = assert_clean_error(&out);
    assert!(
        err.starts_with(
            "error: layer `input` (input) could not allocate 80.00 GB (80000000000 bytes) creating a \
             random batch [2, 1, 100000, 100000]"
        ),
        "{err}"
    );
}
