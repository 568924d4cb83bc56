//! A user's own models pinned by snapshot tests, without libtorch: in a temporary crate that
//! depends on `nnc-compiler` alone, `nnc snapshot` writes `models/snapshots/tiny.snap`, and the
//! crate's insta test reads that very file (so the two agree on insta's format); a change of
//! shape then fails both `cargo test` and `nnc snapshot --check`, and the crate's dependency
//! tree holds no libtorch.

use std::path::Path;
use std::process::Command;

const MODEL: &str = "network tiny {\n    input [N, 1, 8, 8]\n    conv2d(4, 3, padding=1) -> relu -> flatten -> linear(2)\n}\n";

const TEST: &str = r#"
#[test]
fn shapes_are_pinned() {
    let table = nnc_compiler::snapshot::of_file(
        std::path::Path::new("models/tiny.net"),
        &nnc_compiler::Options::default(),
    )
    .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    insta::with_settings!({ snapshot_path => "../models/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("tiny", table);
    });
}
"#;

#[test]
fn a_users_crate_pins_its_models_shapes_without_libtorch() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap();
    let dir = std::env::temp_dir().join(format!("nnc-user-snapshots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"my-models\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dev-dependencies]\nnnc-compiler = {{ path = {:?} }}\ninsta = \"1\"\n\n[workspace]\n",
        repo.join("compiler")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(dir.join("tests/shapes.rs"), TEST).unwrap();
    std::fs::write(dir.join("models/tiny.net"), MODEL).unwrap();
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let nnc = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nnc")).args(args).current_dir(&dir).output().unwrap()
    };
    let cargo = |args: &[&str]| {
        Command::new(env!("CARGO"))
            .args(args)
            .arg("--offline")
            .env("CARGO_TARGET_DIR", repo.join("target/external"))
            // Without debug info: a crate built only to run its tests, never to be debugged.
            .env("CARGO_PROFILE_DEV_DEBUG", "false")
            .env("INSTA_UPDATE", "no")
            .env_remove("LIBTORCH")
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };

    let wrote = nnc(&["snapshot", "models"]);
    assert_eq!(wrote.status.code(), Some(0), "{}", text(&wrote));
    let snap = std::fs::read_to_string(dir.join("models/snapshots/tiny.snap")).unwrap();
    assert!(snap.starts_with("---\nsource: models/tiny.net\n") && snap.contains("[N, 4, 8, 8]"), "{snap}");

    let tree = cargo(&["tree", "-e", "normal,dev"]);
    assert!(tree.status.success(), "{}", text(&tree));
    let deps = String::from_utf8_lossy(&tree.stdout);
    assert!(deps.contains("nnc-compiler") && !deps.contains("tch") && !deps.contains("torch-sys"), "{deps}");

    let passed = cargo(&["test", "--quiet"]);
    assert!(passed.status.success(), "insta does not read nnc's snapshot: {}", text(&passed));

    // A change of shape: the first convolution gets 6 channels.
    std::fs::write(dir.join("models/tiny.net"), MODEL.replace("conv2d(4,", "conv2d(6,")).unwrap();
    let failed = cargo(&["test", "--quiet"]);
    assert!(!failed.status.success(), "{}", text(&failed));
    assert!(text(&failed).contains("[N, 6, 8, 8]"), "{}", text(&failed));
    let checked = nnc(&["snapshot", "--check", "models"]);
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked));
    assert!(text(&checked).contains("+0      conv2d 1→6, 3×3, padding 1"), "{}", text(&checked));
    assert!(dir.join("models/snapshots/tiny.snap.new").exists());
    // Accepting it (as `cargo insta review` would) makes both pass again.
    assert_eq!(nnc(&["snapshot", "models"]).status.code(), Some(0));
    assert!(!dir.join("models/snapshots/tiny.snap.new").exists());
    assert!(cargo(&["test", "--quiet"]).status.success());
    assert_eq!(nnc(&["snapshot", "--check", "models"]).status.code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
