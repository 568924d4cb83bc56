//! The `nnc` binary end to end: exit codes (0 checked, 1 model errors, 2 usage errors), what it
//! prints, and that no input makes it panic (a panic exits with 101).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn nnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnc")).args(args).current_dir(root()).output().unwrap()
}

/// `nnc` given `input` on its standard input. A refusal before all of it is read (a broken
/// pipe) is the command's answer, not the test's failure.
fn nnc_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), input);
    child.wait_with_output().unwrap()
}

/// An empty folder of the test's own, `<prefix>-<pid>` in the temporary folder: one a killed
/// run of the same id left is emptied first.
fn fresh_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files(dir: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_model_checks() {
    for model in files("models") {
        let out = nnc(&["check", &model]);
        assert_eq!(out.status.code(), Some(0), "{model}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("parameters:"), "{model}");
        assert!(out.stderr.is_empty(), "{model}: {}", text(&out.stderr));
    }
}

#[test]
fn resnet18_prints_the_ground_truth() {
    let out = nnc(&["check", "models/resnet18.net", "--depth", "1"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("parameters:              11,178,378"), "{stdout}");
    for (stage, shape) in [
        ("b1", "[N, 64, 56, 56]"),
        ("b2", "[N, 64, 56, 56]"),
        ("b3", "[N, 128, 28, 28]"),
        ("b4", "[N, 256, 14, 14]"),
        ("b5", "[N, 512, 7, 7]"),
        ("head", "[N, 10]"),
    ] {
        let line =
            stdout.lines().find(|l| l.starts_with(&format!("{stage} "))).unwrap_or_else(|| panic!("{stage}"));
        assert!(line.contains(shape), "{line}");
    }
    assert!(stdout.contains("(1.74 G)"), "{stdout}");
}

#[test]
fn every_broken_model_fails_with_a_diagnostic() {
    for file in files("tests/err") {
        let out = nnc(&["check", "--color", "never", &file]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains("error[E"), "{file}: {stderr}");
        assert!(stderr.contains(&format!("could not check `{file}`")), "{file}: {stderr}");
    }
}

#[test]
fn diagnostics_point_at_nnc_explain() {
    let out = nnc(&["check", "--color", "never", "tests/err/add-mismatch.net"]);
    assert!(text(&out.stderr).ends_with("help: `nnc explain E0202` says more about this code\n"));
    // Once, after every file, each code once, in the order of their numbers.
    let out =
        nnc(&["check", "--color", "never", "tests/err/several-errors.net", "tests/warn/dead-tensor.net"]);
    let stderr = text(&out.stderr);
    let hint = "help: `nnc explain CODE` says more about E0102, E0103, E0106, E0204, W0001\n";
    assert!(stderr.ends_with(hint) && stderr.matches("nnc explain").count() == 1, "{stderr}");
    // Nothing to explain, nothing said; and JSON is for tools.
    assert_eq!(text(&nnc(&["check", "models/lenet.net"]).stderr), "");
    let out = nnc(&["check", "--format", "json", "tests/err/add-mismatch.net"]);
    assert!(!text(&out.stderr).contains("nnc explain"), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_with_2() {
    let cases: &[&[&str]] = &[
        &["check"],
        &["check", "models/nope.net"],
        &["check", "docs/schema"],
        &["check", "models/lenet.net", "--set", "size=96"],
        &["check", "models/resnet18.net", "--set", "size=9 6"],
        &["check", "models/resnet18.net", "--set", "size"],
        &["check", "models/resnet18.net", "--depth", "0"],
        &["check", "models/resnet18.net", "--network", "resnet19"],
        &["check", "models/resnet18.net", "--format", "yaml"],
        &["frobnicate"],
        // Parsed here, before any libtorch: no image asked for is a mistake, not a quiet run.
        &["predict", "models/lenet.net", "--count", "0", "x.png"],
        &["fmt", "--check", "models/nope.net"],
    ];
    for args in cases {
        let out = nnc(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(!out.stderr.is_empty(), "{args:?} says nothing");
    }
    let out = nnc(&["check", "models/resnet18.net", "--set", "sise=96"]);
    assert!(text(&out.stderr).contains("did you mean `size`?"), "{}", text(&out.stderr));
    // What `--set` can set: the parameters and the free sizes, each once over the networks.
    let out = nnc(&["check", "tests/ok/free-sizes.net", "--set", "Q=3"]);
    let expected = "the parameters are: classes; the free sizes: H, W, T";
    assert!(text(&out.stderr).contains(expected), "{}", text(&out.stderr));
}

#[test]
fn network_and_set_apply_across_a_folder_to_the_files_that_have_them() {
    let dir = fresh_dir("nnc-cli-folder");
    let sized = "network sized(size = 8) {\n    input [N, 1, size, size]\n    conv2d(4, 3)\n}\n";
    let fixed = "network fixed {\n    input [N, 4]\n    linear(2)\n}\n";
    std::fs::write(dir.join("a.net"), sized).unwrap();
    std::fs::write(dir.join("b.net"), fixed).unwrap();
    let folder = dir.to_str().unwrap();
    // `--set` applies to the networks that have the parameter; the others keep their own.
    let out = nnc(&["check", folder, "--set", "size=12", "--depth", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("network sized(size=12): [N, 1, 12, 12] → [N, 4, 10, 10]"), "{stdout}");
    assert!(stdout.contains("network fixed(): [N, 4] → [N, 2]"), "{stdout}");
    // `--network` picks the files that define it.
    let out = nnc(&["check", folder, "--network", "fixed", "--depth", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("network ").count(), 1, "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("network fixed"), "{}", text(&out.stdout));
    // Either is an error where no file has a use for it.
    let out = nnc(&["check", folder, "--set", "sise=12", "--quiet"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let expected = "no network in the 2 files checked has a parameter or free size `sise`";
    assert!(text(&out.stderr).contains(expected), "{}", text(&out.stderr));
    let out = nnc(&["check", folder, "--network", "fixd"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no network named `fixd` in the 2 files given"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn set_overrides_a_network_parameter() {
    let out = nnc(&["check", "models/resnet18.net", "--set", "size=96", "--depth", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[N, 1, 96, 96] → [N, 10]"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("b5 ") && l.contains("[N, 512, 3, 3]")), "{stdout}");
    // A value the network cannot take is an error where it is used, which also points at the
    // `--set` that gave it, and shows it.
    for (value, label) in [("3.5", "this is 3.5"), ("1e999", "this is inf"), ("0", "this is 0")] {
        let size = format!("size={value}");
        let out = nnc(&["check", "models/resnet18.net", "--set", "classes=10", "--set", &size]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("models/resnet18.net:7:18"), "{stderr}");
        assert!(stderr.contains(label), "{stderr}");
        assert!(stderr.contains("<--set>:2:1"), "{stderr}");
        assert!(stderr.contains("`size` is set here"), "{stderr}");
        assert!(!stderr.contains("`classes` is set"), "{stderr}");
    }
}

#[test]
fn json_output_carries_the_same_data() {
    let out = nnc(&["check", "--format", "json", "models/resnet18.net", "tests/err/add-mismatch.net"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    let files = json["files"].as_array().unwrap();
    assert_eq!(files[0]["ok"], true);
    let network = &files[0]["networks"][0];
    assert_eq!(network["totals"]["params"], 11_178_378);
    assert_eq!(network["outputs"][0]["shape"], serde_json::json!(["N", 10]));
    assert_eq!(network["parameters"], serde_json::json!({"classes": 10, "size": 224, "ratio": 1}));
    let b3 = network["layers"].as_array().unwrap().iter().find(|l| l["name"] == "b3.0.conv1").unwrap();
    assert_eq!(b3["shape"], serde_json::json!(["N", 128, 28, 28]));
    assert_eq!(b3["op"]["kind"], "conv2d");
    assert_eq!(b3["op"]["attributes"]["stride"], serde_json::json!([2, 2]));
    assert_eq!(b3["op"]["text"], "conv2d 64→128, 3×3, stride 2, padding 1");
    assert_eq!(files[1]["ok"], false);
    let diagnostic = &files[1]["diagnostics"][0];
    assert_eq!(diagnostic["code"], "E0202");
    assert_eq!(diagnostic["labels"][0]["line"], 5);
}

/// `nnc check --format json` follows its documented JSON Schema (`docs/schema/`), on every
/// model, the zoo, the language's corners, a collapsed report with a memory estimate, and
/// broken models' diagnostics; and the schema is not so loose that anything passes.
#[test]
fn json_output_follows_its_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema/check.schema.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let schema_json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("check.schema.json", schema_json).unwrap();
    let schema = compiler.compile("check.schema.json", &mut schemas).unwrap();
    let runs: [&[&str]; 6] = [
        &["models"],
        &["models/zoo"],
        &["tests/ok"],
        &["--depth", "2", "--batch", "8", "models/resnet18.net", "models/zoo/inception_v3.net"],
        &["tests/err", "tests/warn"],
        // Byte counts past 64 bits (752,036 EB): numbers still, not a panic.
        &["--batch", "1000000000000000", "models/lenet.net"],
    ];
    for args in runs {
        let mut all = vec!["check", "--format", "json"];
        let mut files: Vec<String> = Vec::new();
        for arg in args {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(arg);
            if dir.is_dir() {
                let mut found: Vec<String> = std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "net"))
                    .map(|p| format!("{arg}/{}", p.file_name().unwrap().to_string_lossy()))
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                all.push(arg);
            }
        }
        all.extend(files.iter().map(String::as_str));
        let out = nnc(&all);
        assert_ne!(
            out.status.code(),
            Some(101),
            "{args:?} panicked: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Err(e) = schemas.validate(&value, schema) {
            panic!("{args:?}: {e:#}");
        }
    }
    // A shape as text, as the report's table writes it, is refused.
    let mut broken: serde_json::Value =
        serde_json::from_slice(&nnc(&["check", "--format", "json", "models/lenet.net"]).stdout).unwrap();
    broken["files"][0]["networks"][0]["layers"][1]["shape"] = serde_json::json!("[N, 6, 28, 28]");
    assert!(schemas.validate(&broken, schema).is_err());
}

#[test]
fn several_files_report_the_worst_outcome() {
    let out = nnc(&["check", "models/lenet.net", "tests/err/unknown-layer.net", "models/nin.net"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("network lenet") && stdout.contains("network nin"), "{stdout}");
}

#[test]
fn nnc_itself_never_links_libtorch() {
    // The commands that run models go to nnc-torch, so that `check` never pays libtorch's load time.
    // A dynamic dependency would name its library file in the binary's string table.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_nnc")).unwrap();
    for needle in [&b"libtorch_cpu.so"[..], b"libc10.so"] {
        assert!(
            !binary.windows(needle.len()).any(|w| w == needle),
            "nnc links {}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn warnings_pass_unless_denied() {
    let warned = nnc(&["check", "tests/warn/dead-tensor.net"]);
    assert_eq!(warned.status.code(), Some(0), "a warning alone checks");
    let stderr = text(&warned.stderr);
    assert!(stderr.contains("warning[W0001]"), "{stderr}");
    assert!(stderr.contains("warning: `tests/warn/dead-tensor.net`: 1 warning"), "{stderr}");

    let denied = nnc(&["check", "tests/warn/dead-tensor.net", "--deny", "warnings"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(text(&denied.stderr).contains("error[W0001]"), "{}", text(&denied.stderr));

    let allowed = nnc(&["check", "tests/warn/dead-tensor.net", "--allow", "W0001", "--deny", "warnings"]);
    assert_eq!(allowed.status.code(), Some(0));
    assert_eq!(text(&allowed.stderr), "");

    let bad = nnc(&["check", "tests/warn/dead-tensor.net", "--allow", "E0202"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("`E0202` is an error, which cannot be allowed"));
}

#[test]
fn emit_prints_the_generated_module() {
    let out = nnc(&["emit", "models/lenet.net"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The code `model!` writes for LeNet, formatted; its numbers are the checked ones.
    insta::assert_snapshot!(text(&out.stdout));
    let bad = nnc(&["emit", "models/lenet.net", "--name", "not an ident"]);
    assert_eq!(bad.status.code(), Some(2));
    // A raw identifier is one (it panicked in `Ident::new`).
    let raw = nnc(&["emit", "models/lenet.net", "--name", "r#Net"]);
    assert_eq!(raw.status.code(), Some(0), "{}", text(&raw.stderr));
    assert!(text(&raw.stdout).contains("pub struct r#Net"), "{}", text(&raw.stdout));
    // The other targets name their class themselves: --name there is refused, not ignored.
    for target in ["pytorch", "onnx"] {
        let out = nnc(&["emit", "--target", target, "models/lenet.net", "--name", "Foo"]);
        assert_eq!(out.status.code(), Some(2), "{target}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--name is an option of `--target rust`"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn emit_pytorch_writes_modules_as_pytorch_users_do() {
    // ResNet-18 at 32 px: the Sequential stages, one class per residual configuration, and
    // forward methods calling attributes. Outputs and tools are checked against PyTorch itself
    // in torch/tests/pytorch.rs where Python with torch is available; this keeps the shape of
    // the source checked everywhere.
    let out = nnc(&["emit", "--target", "pytorch", "models/resnet18.net", "--set", "size=32"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

/// A label PyTorch cannot name a module by (an attribute of `nn.Module`: `self.forward` would
/// reach the method, and `add_module` refuses it) is an error naming it, not a module that
/// recurses or breaks `.eval()`.
#[test]
fn emit_pytorch_refuses_names_of_nn_module_attributes() {
    let dir = fresh_dir("nnc-emit-reserved");
    for label in ["forward", "training", "__init__", "state_dict"] {
        let path = dir.join(format!("{label}.net"));
        std::fs::write(&path, format!("network t {{\n    input [N, 4]\n    \"{label}\": linear(4)\n}}\n"))
            .unwrap();
        let out = nnc(&["emit", "--target", "pytorch", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{label}");
        let expected = format!("error: PyTorch cannot name a module `{label}` (`{label}`): `nn.Module` has");
        assert!(text(&out.stderr).starts_with(&expected), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    // Any other text PyTorch takes, through `getattr`; a join's name is no module's; and only an
    // `nn.ModuleDict` has `keys`, not the class that holds a network's layers.
    let path = dir.join("fine.net");
    let fine = "network t {\n    input [N, 4]\n    \"é 0\": linear(4)\n    self: linear(4)\n    keys: linear(4)\n    items = in + in\n}\n";
    std::fs::write(&path, fine).unwrap();
    let out = nnc(&["emit", "--target", "pytorch", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn graph_draws_blocks_as_clusters() {
    let out = nnc(&["graph", "models/resnet18.net"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph \"resnet18\" {"), "{dot}");
    // Four stages, each of two residual blocks.
    assert_eq!(dot.matches("subgraph cluster_").count(), 12, "{dot}");
    assert!(dot.contains("label=\"b3.0: residual(c=128, stride=2)\""), "{dot}");
    assert!(dot.contains("b3.0.conv3\\nconv2d 64→128, 1×1, stride 2\\n[N, 128, 28, 28]"), "{dot}");
    // One edge per input of every layer: 66 layers read one tensor, the 8 additions a second.
    let edges = dot.lines().filter(|l| l.contains(" -> ") && !l.contains("style=invis")).count();
    assert_eq!(edges, 66 + 8, "{dot}");
    // The shortcut convolutions stand beside the blocks' first convolutions, left of them.
    assert!(dot.contains("{ rank=same; n"), "{dot}");
    let bad = nnc(&["graph", "models/resnet18.net", "-o", "graph.gif"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `--depth` draws the layers under each name of that many segments as one box, with the
/// block's call, joined by one edge per pair of boxes; `--rankdir lr` lays it out sideways.
#[test]
fn graph_collapses_to_a_depth_and_lays_out_sideways() {
    let out = nnc(&["graph", "models/resnet18.net", "--depth", "2", "--rankdir", "lr"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.contains("rankdir=LR"), "{dot}");
    // Four stages as clusters, each holding its two residual blocks as boxes.
    assert_eq!(dot.matches("subgraph cluster_").count(), 4, "{dot}");
    assert!(dot.contains("label=\"b3.0\\nresidual(c=128, stride=2)\\n[N, 128, 28, 28]\""), "{dot}");
    let boxes = dot.lines().filter(|l| l.contains("[label=")).count();
    // The input, b1's 4 layers, 8 blocks, and the head's 3 layers.
    assert_eq!(boxes, 1 + 4 + 8 + 3, "{dot}");
    assert_eq!(dot.matches(" -> ").count(), boxes - 1, "{dot}");
    insta::assert_snapshot!(text(&nnc(&["graph", "models/resnet18.net", "--depth", "1"]).stdout));
}

/// A block's branches are written, and so drawn (`ordering=out`), in source order: the
/// input's readers in GoogLeNet's first Inception block are p1, p2, p3, p4.
#[test]
fn graph_keeps_branches_in_source_order() {
    let out = nnc(&["graph", "models/googlenet.net"]);
    let dot = text(&out.stdout);
    assert!(dot.contains("ordering=out"), "{dot}");
    let id = |name: &str| {
        let line = dot.lines().find(|l| l.contains(&format!("[label=\"{name}\\n"))).expect(name);
        line.trim().split(' ').next().unwrap().to_string()
    };
    let source = id("b3.0.p1_1");
    let input: Vec<&str> = dot
        .lines()
        .filter(|l| l.trim().ends_with(&format!("-> {source};")))
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    let readers: Vec<String> = dot
        .lines()
        .filter(|l| l.trim().starts_with(&format!("{} -> ", input[0])))
        .map(|l| l.trim().trim_end_matches(';').rsplit(' ').next().unwrap().to_string())
        .collect();
    let expected: Vec<String> =
        ["b3.0.p1_1", "b3.0.p2_1", "b3.0.p3_1", "b3.0.p4_1"].iter().map(|n| id(n)).collect();
    assert_eq!(readers, expected, "{dot}");

    // Where Graphviz is installed, the picture has them left to right, and PDF is drawn too.
    let dir = fresh_dir("nnc-graph");
    let svg = dir.join("googlenet.svg");
    let drawn = nnc(&["graph", "models/googlenet.net", "-o", svg.to_str().unwrap()]);
    if drawn.status.code() == Some(2) && text(&drawn.stderr).contains("cannot run Graphviz") {
        eprintln!("skipped the drawing: Graphviz's `dot` is not installed");
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    assert_eq!(drawn.status.code(), Some(0), "{}", text(&drawn.stderr));
    let picture = std::fs::read_to_string(&svg).unwrap();
    for block in ["b3.0", "b4.0", "b4.4", "b5.1"] {
        let x = |k: usize| -> f64 {
            let title = format!(">{block}.p{k}_1</text>");
            let at = picture.find(&title).unwrap_or_else(|| panic!("{title}"));
            let tag = &picture[picture[..at].rfind("<text").unwrap()..at];
            let value = tag.split(" x=\"").nth(1).unwrap().split('"').next().unwrap();
            value.parse().unwrap()
        };
        let xs: Vec<f64> = (1..=4).map(x).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{block}'s branches at x = {xs:?}");
    }
    let pdf = dir.join("resnet18.pdf");
    let drawn = nnc(&["graph", "models/resnet18.net", "--depth", "2", "-o", pdf.to_str().unwrap()]);
    assert_eq!(drawn.status.code(), Some(0), "{}", text(&drawn.stderr));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn layers_lists_the_registry() {
    let out = nnc(&["layers"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn layers_shows_one_layer_in_detail() {
    let out = nnc(&["layers", "conv2d"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn layers_shows_a_block_of_the_standard_library() {
    let out = nnc(&["layers", "transformer_encoder_layer"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let signature = "block transformer_encoder_layer(nhead, dim_feedforward = 2048, dropout = 0.1, \
                     activation = \"relu\", layer_norm_eps = 1e-5, norm_first = false, is_causal = false)";
    assert!(stdout.starts_with(signature), "{stdout}");
    assert!(stdout.contains("from std.transformer: `import std.transformer`"), "{stdout}");
    assert!(stdout.contains("Named as torch.nn names it: `self_attn`"), "{stdout}");
    // Listed with the layers, and suggested for a name close to it.
    assert!(text(&nnc(&["layers"]).stdout).contains("block mbconv(c, k, stride, expand)  (std.mobilenet)"));
    let out = nnc(&["layers", "transformer_encoder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean `transformer_encoder_layer`?"), "{}", text(&out.stderr));
}

#[test]
fn layers_rejects_an_unknown_name() {
    // A usage error, as an unknown `--network` is: exit 2, a message and a suggestion.
    let out = nnc(&["layers", "conv2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: there is no layer `conv2`"), "{stderr}");
    assert!(stderr.contains("did you mean `conv2d`?"), "{stderr}");
    let out = nnc(&["layers", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("there is no layer `nosuch`"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn explain_shows_a_code() {
    let out = nnc(&["explain", "E0202"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
    // Whatever the case, and with or without the leading zero.
    for written in ["e0202", "E202", "e202"] {
        assert_eq!(nnc(&["explain", written]).stdout, out.stdout, "{written}");
    }
}

#[test]
fn explain_lists_every_code() {
    let out = nnc(&["explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn explain_explains_every_code() {
    for code in nnc_compiler::Code::ALL {
        let out = nnc(&["explain", code.as_str()]);
        assert_eq!(out.status.code(), Some(0), "{}: {}", code.as_str(), text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(&format!("[{}]: ", code.as_str())), "{stdout}");
        assert!(stdout.contains("\nBroken:\n") && stdout.contains("\nFixed:\n"), "{stdout}");
    }
}

#[test]
fn explain_rejects_an_unknown_code() {
    // A usage error, as an unknown layer is: exit 2, a message and a suggestion.
    let out = nnc(&["explain", "W0007"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: there is no diagnostic code `W0007`"), "{stderr}");
    assert!(stderr.contains("did you mean `W0006`?"), "{stderr}");
    let out = nnc(&["explain", "E00202"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean `E0202`?"), "{}", text(&out.stderr));
    for nonsense in ["E0299", "nosuch", ""] {
        let out = nnc(&["explain", nonsense]);
        assert_eq!(out.status.code(), Some(2), "{nonsense}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("there is no diagnostic code `{nonsense}`")), "{stderr}");
        assert!(!stderr.contains("did you mean"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn readme_layer_table_is_generated() {
    // The README's table is `nnc layers --format markdown` pasted between two markers; paste
    // it again when this fails.
    let out = nnc(&["layers", "--format", "markdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let begin = "<!-- layers:begin (generated by `nnc layers --format markdown`) -->\n";
    let start = readme.find(begin).expect("README has the begin marker") + begin.len();
    let end = start + readme[start..].find("<!-- layers:end -->").expect("README has the end marker");
    assert_eq!(&readme[start..end], text(&out.stdout));
}

#[test]
fn snapshot_colours_diagnostics_as_asked() {
    // As every command that reads a model: a file that does not check has its diagnostics on
    // stderr, in colour with `always`, plain with `never`; and it gets no snapshot.
    let file = "tests/err/add-mismatch.net";
    let plain = nnc(&["snapshot", "--check", "--color", "never", file]);
    let coloured = nnc(&["snapshot", "--check", "--color", "always", file]);
    for out in [&plain, &coloured] {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("error[E0202]"), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("does not check, so it has no snapshot"));
    }
    assert!(!text(&plain.stderr).contains('\x1b'), "{}", text(&plain.stderr));
    assert!(text(&coloured.stderr).contains("\x1b["), "{}", text(&coloured.stderr));
    assert!(!root().join("tests/err/snapshots").exists());
}

#[test]
fn snapshot_check_tells_missing_snapshots_from_changed_ones() {
    let dir = fresh_dir("nnc-cli-snapshots");
    let model =
        |channels: u32| format!("network n {{\n    input [N, 1, 8, 8]\n    conv2d({channels}, 3)\n}}\n");
    std::fs::write(dir.join("a.net"), model(4)).unwrap();
    std::fs::write(dir.join("b.net"), model(4)).unwrap();
    let folder = dir.to_str().unwrap();
    let missing = nnc(&["snapshot", "--check", folder]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
    assert!(
        text(&missing.stderr).contains("error: 2 models without a snapshot;"),
        "{}",
        text(&missing.stderr)
    );
    assert_eq!(nnc(&["snapshot", folder]).status.code(), Some(0));
    std::fs::write(dir.join("a.net"), model(6)).unwrap();
    std::fs::remove_file(dir.join("snapshots/b.snap")).unwrap();
    let both = nnc(&["snapshot", "--check", folder]);
    assert_eq!(both.status.code(), Some(1), "{}", text(&both.stderr));
    let expected = "error: 1 snapshot changed and 1 model without one;";
    assert!(text(&both.stderr).contains(expected), "{}", text(&both.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn outputs_replace_only_regular_files() {
    // Every output is renamed into place, which would replace a FIFO, a device or a link
    // by a file: a link is written through, anything else that is not a regular file refused.
    let dir = fresh_dir("nnc-cli-outputs");
    let fifo = dir.join("pipe.onnx");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = nnc(&["emit", "--target", "onnx", "models/lenet.net", "--output", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let expected = format!("`{}` is a FIFO (named pipe), not a regular file", fifo.display());
    assert!(text(&out.stderr).contains(&expected), "{}", text(&out.stderr));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // A link whose target is not there yet: the target is written, the link stays.
    let link = dir.join("link.dot");
    std::os::unix::fs::symlink("real.dot", &link).unwrap();
    let out = nnc(&["graph", "models/lenet.net", "-o", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(dir.join("real.dot")).unwrap().starts_with("digraph"));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    // Standard output's link is refused, not renamed over (`-o /dev/stdout >> log` would
    // have replaced `log`).
    let out = nnc(&["graph", "models/lenet.net", "-o", "/dev/stdout"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is an open file's link (under /proc)"), "{}", text(&out.stderr));
    // A folder that is not there is named in the error.
    let nowhere = dir.join("nowhere/x.onnx");
    let out = nnc(&["emit", "--target", "onnx", "models/lenet.net", "--output", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("cannot write `{}`", nowhere.display())),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_files_and_byte_order_marks() {
    let dir = fresh_dir("nnc-cli-empty");
    let cases = [
        ("empty.net", "", "no network to check (the file defines nothing)"),
        ("comments.net", "# nothing yet\n", "no network to check (the file defines nothing)"),
        (
            "blocks.net",
            "block b(c) {\n    conv2d(c, 1)\n}\n",
            "no network to check (the file defines only blocks)",
        ),
        // Some Windows editors start a UTF-8 file with a byte-order mark: a blank.
        (
            "bom.net",
            "\u{feff}network n {\n    input [N, 4]\n    linear(2)\n}\n",
            "network n(): [N, 4] → [N, 2]",
        ),
    ];
    for (name, source, expected) in cases {
        std::fs::write(dir.join(name), source).unwrap();
        let out = nnc(&["check", "--depth", "1", dir.join(name).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(expected), "{name}: {}", text(&out.stdout));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn readme_language_tour_checks() {
    // The tour is the first example a reader copies: it must check as written, imports
    // included (its blocks once shared names with the standard modules it imports, E0101).
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tour = &readme[readme.find("## A tour of the language").expect("README has the tour")..];
    let start = tour.find("```text\n").expect("the tour has a code block") + "```text\n".len();
    let end = start + tour[start..].find("```").expect("the tour's code block ends");
    let dir = fresh_dir("nnc-readme-tour");
    std::fs::create_dir(dir.join("blocks")).unwrap();
    // The file the tour imports, `import "blocks/mine.net"`, as an empty module.
    std::fs::write(dir.join("blocks/mine.net"), "").unwrap();
    std::fs::write(dir.join("tour.net"), &tour[start..end]).unwrap();
    let out = nnc(&["check", dir.join("tour.net").to_str().unwrap(), "--deny", "warnings"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("network resnet18(classes=10, size=224)"), "{}", text(&out.stdout));
}

/// `nnc` with `args` in `dir`, killed if it runs longer than ten seconds: a hang fails the test
/// instead of stalling the suite.
fn nnc_within_10s(args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("`nnc {}` still ran after 10 s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_unread() {
    let dir = fresh_dir("nnc-cli-special");
    let fifo = dir.join("pipe.net");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.net")).unwrap();
    let network = "network n {\n    input [N, 1, 8, 8]\n    relu\n}\n";
    std::fs::write(dir.join("imports-pipe.net"), format!("import \"pipe.net\"\n{network}")).unwrap();
    std::fs::write(dir.join("imports-zero.net"), format!("import \"/dev/zero\"\n{network}")).unwrap();
    // The root file: a usage error (2); an import: a model error (1), pointing at the import.
    let cases = [
        ("pipe.net", 2, "`pipe.net` is a FIFO (named pipe), not a regular file"),
        ("/dev/zero", 2, "`/dev/zero` is a character device, not a regular file"),
        ("zero.net", 2, "`zero.net` is a character device, not a regular file"),
        ("imports-pipe.net", 1, "`pipe.net` is a FIFO (named pipe), not a regular file"),
        ("imports-zero.net", 1, "`/dev/zero` is a character device, not a regular file"),
    ];
    for (file, code, message) in cases {
        let out = nnc_within_10s(&["check", "--color", "never", file], &dir);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{file}: {stderr}");
        assert!(stderr.contains(message), "{file}: {stderr}");
        if code == 1 {
            assert!(stderr.contains("imported here"), "{file}: {stderr}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A reader that closes the pipe early (`nnc check ... | head -c 100`) ends `nnc` quietly with
/// exit 0, in text and in JSON alike.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    for format in ["text", "json"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["check", "--format", format, "models/resnet-1000.net"])
            .current_dir(root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 100];
        child.stdout.as_mut().unwrap().read_exact(&mut head).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{format}: {}", text(&out.stderr));
    }
}

/// `nnc fmt` in a scratch folder: rewrites in place, `--check` reports without writing, a
/// syntax error is reported as `check` reports it and leaves the file as it was, `-` filters.
#[test]
fn fmt_rewrites_checks_and_refuses_syntax_errors() {
    let dir = fresh_dir("nnc-cli-fmt");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let messy = "network n{input [N,4]\n  linear( 8 )->relu # why\n}\n";
    let tidy = "network n {\n    input [N, 4]\n    linear(8) -> relu  # why\n}\n";
    let file = dir.join("sub/messy.net");
    std::fs::write(&file, messy).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nnc")).args(args).current_dir(&dir).output().unwrap()
    };

    let out = run(&["fmt", "--check", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("+    linear(8) -> relu  # why"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("sub/messy.net"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), messy, "--check wrote");

    let out = run(&["fmt", "sub/messy.net"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), tidy);
    let out = run(&["fmt", "--check", "sub"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");

    let broken = "network n {\n    input [N, 4]\n    linear(8 -> relu\n}\n";
    std::fs::write(dir.join("broken.net"), broken).unwrap();
    let out = run(&["fmt", "--color", "never", "broken.net"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("error[E0001]") && err.contains("broken.net:4:1"), "{err}");
    assert!(err.contains("could not format `broken.net`"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("broken.net")).unwrap(), broken);
    // A file it cannot read is a usage error, not one that needs formatting.
    let out = run(&["fmt", "--check", "missing.net"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // A symbolic link: the file it points at is formatted, and the link stays.
    std::fs::write(&file, messy).unwrap();
    std::os::unix::fs::symlink("sub/messy.net", dir.join("link.net")).unwrap();
    let out = run(&["fmt", "link.net"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), tidy);
    assert!(std::fs::symlink_metadata(dir.join("link.net")).unwrap().file_type().is_symlink());
    // A byte-order mark first (some Windows editors write one) is a blank.
    std::fs::write(dir.join("bom.net"), format!("\u{feff}{messy}")).unwrap();
    let out = run(&["fmt", "bom.net"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("bom.net")).unwrap(), tidy);

    // `--check` shows a file of lone `\r` line ends line by line, and nothing of a file that
    // would act on a terminal: an escape sequence in a comment (here, one that retitles it).
    let hostile = "network n{input [N,4]\r  linear( 8 ) # \u{1b}]0;pwned\u{7}\r}\r";
    std::fs::write(dir.join("hostile.net"), hostile).unwrap();
    let out = run(&["fmt", "--check", "hostile.net"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("\n+    linear(8)  # \\u{1b}]0;pwned\\u{7}\n"), "{shown:?}");
    assert!(!shown.contains(['\u{1b}', '\u{7}', '\r']), "{shown:?}");

    let out = nnc_stdin(&["fmt", "-"], messy.as_bytes());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), tidy);
    // Standard input over the size limit is refused unread, as `check -` refuses it (exit 2,
    // not the 1 of a text that needs formatting).
    let out = nnc_stdin(&["fmt", "-"], &vec![b' '; 3 << 20]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("standard input is over the limit of 2097152 bytes"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_models_and_the_standard_library_are_formatted() {
    let out = nnc(&["fmt", "--check", "models", "compiler/std"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
}

/// LeNet's tensors, as nnc names them, with their sizes.
const LENET_TENSORS: [(&str, &[usize]); 10] = [
    ("0.weight", &[6, 1, 5, 5]),
    ("0.bias", &[6]),
    ("3.weight", &[16, 6, 5, 5]),
    ("3.bias", &[16]),
    ("7.weight", &[120, 400]),
    ("7.bias", &[120]),
    ("9.weight", &[84, 120]),
    ("9.bias", &[84]),
    ("11.weight", &[10, 84]),
    ("11.bias", &[10]),
];

/// A safetensors file of LeNet's tensors but those named in `leave_out`, every value 0.25.
fn lenet_checkpoint(path: &Path, leave_out: &[&str]) {
    let data: Vec<(&str, Vec<u8>, &[usize])> = LENET_TENSORS
        .iter()
        .filter(|(name, _)| !leave_out.contains(name))
        .map(|&(name, dims)| (name, 0.25f32.to_le_bytes().repeat(dims.iter().product()), dims))
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, bytes, dims)| {
            (
                *name,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.to_vec(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

#[test]
fn emit_onnx_writes_the_weights_given_atomically() {
    let dir = fresh_dir("nnc-cli-onnx");
    let (weights, model) = (dir.join("lenet.safetensors"), dir.join("lenet.onnx"));
    lenet_checkpoint(&weights, &[]);
    let (w, m) = (weights.to_str().unwrap(), model.to_str().unwrap());
    let out = nnc(&["emit", "--target", "onnx", "models/lenet.net", "--weights", w, "--output", m]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bytes = std::fs::read(&model).unwrap();
    // ir_version 8 first (field 1, a varint), then nnc as the producer.
    assert_eq!(&bytes[..2], [0x08, 0x08]);
    assert!(bytes.windows(3).any(|w| w == b"nnc"));
    // Every one of the 61,706 parameters is 0.25, each written once.
    let quarter = 0.25f32.to_le_bytes();
    let quarters = bytes.windows(4).filter(|w| *w == quarter).count();
    assert_eq!(quarters, 61_706);
    assert!(bytes.windows(8).any(|w| w == b"9.weight"));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "a temporary file was left: {left:?}");

    // Without the weights: drawn, with a note that says so; to a pipe, as stdout is here.
    let out = nnc(&["emit", "--target", "onnx", "models/lenet.net"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(&out.stdout[..2], [0x08, 0x08]);
    assert!(
        text(&out.stderr).contains("without --weights, the initialisers are drawn"),
        "{}",
        text(&out.stderr)
    );

    // A checkpoint without a tensor the graph reads: the tensor is named, nothing is written.
    std::fs::remove_file(&model).unwrap();
    lenet_checkpoint(&weights, &["11.bias"]);
    let out = nnc(&["emit", "--target", "onnx", "models/lenet.net", "--weights", w, "--output", m]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("has no tensor `11.bias`"), "{}", text(&out.stderr));
    assert!(!model.exists());

    // A layer ONNX has no spelling of in nnc: named, exit 1.
    let out = nnc(&["emit", "--target", "onnx", "models/zoo/text_classifier.net", "--output", m]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error: cannot write ONNX: layer `lstm`"), "{}", text(&out.stderr));

    // The ONNX options belong to the ONNX target.
    let out = nnc(&["emit", "models/lenet.net", "--weights", w]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("options of `--target onnx`"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every option and argument of every command says what it is (`nnc help` reads it), and
/// each shell's completions name the commands.
#[test]
fn every_option_has_help_and_completions_are_generated() {
    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&<nnc_cli::Cli as clap::CommandFactory>::command(), "nnc", &mut missing);
    assert!(missing.is_empty(), "options without help: {missing:?}");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = nnc(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains("snapshot") && script.contains("export-weights"), "{shell}: {script}");
    }
    // A reader gone before the script is written: quietly, with exit 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// `nnc check` takes folders (every `.net` under them) and `-` (standard input), and `-q`
/// prints only what is wrong.
#[test]
fn check_takes_folders_stdin_and_quiet() {
    let out = nnc(&["check", "models/zoo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let zoo = std::fs::read_dir(root().join("models/zoo")).unwrap().count();
    assert_eq!(text(&out.stdout).matches("\nlayers:").count(), zoo, "{}", text(&out.stdout));
    let quiet = nnc(&["check", "-q", "models", "tests/err/add-mismatch.net"]);
    assert_eq!(quiet.status.code(), Some(1));
    assert!(quiet.stdout.is_empty(), "{}", text(&quiet.stdout));
    assert!(text(&quiet.stderr).contains("E0202"), "{}", text(&quiet.stderr));
    let piped =
        b"import std.resnet\nnetwork piped {\n    input [N, 3, 32, 32]\n    residual(8, stride=2)\n}\n";
    let out = nnc_stdin(&["check", "-"], piped);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("network piped(): [N, 3, 32, 32] → [N, 8, 16, 16]"),
        "{}",
        text(&out.stdout)
    );
}

/// Without `nnc-torch` beside it, `nnc` says so, and where it looked, rather than that it was
/// built without something.
#[test]
fn a_missing_runtime_is_named() {
    let dir = fresh_dir("nnc-alone");
    let alone = dir.join("nnc");
    std::fs::copy(env!("CARGO_BIN_EXE_nnc"), &alone).unwrap();
    let out = Command::new(&alone).args(["run", "models/lenet.net"]).current_dir(root()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = text(&out.stderr);
    assert!(
        message.contains("need `nnc-torch`, which is not at") && message.contains(&dir.display().to_string()),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
