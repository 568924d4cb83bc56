//! Weights saved as safetensors load back to identical outputs; a file that does not fit the
//! model is refused with every problem named.

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{weights, Init, Model, RuntimeError};
use tch::{nn, Device, Kind, Tensor};

fn model(src: &str, vs: &nn::VarStore) -> Model {
    let compiled = compile(Root::Text { name: "m.net", text: src, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch)
}

const NET: &str = "network n { input [N, 1, 12, 12]
    conv2d(4, 3, padding=1) -> batchnorm -> relu -> maxpool2d(2) -> flatten -> linear(10) }";

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn save_then_load_gives_identical_outputs() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let a = model(NET, &vs);
    let x = Tensor::randn([3, 1, 12, 12], (Kind::Float, Device::Cpu));
    // One training pass so that the batch-norm statistics are not their initial values.
    let _ = a.try_forward(&x, true).unwrap();
    let path = tmp("roundtrip.safetensors");
    weights::save(&vs, &path).unwrap();

    tch::manual_seed(2);
    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let b = model(NET, &vs2);
    let before = b.try_forward(&x, false).unwrap();
    weights::load(&mut vs2, &path).unwrap();
    let expected = a.try_forward(&x, false).unwrap();
    let got = b.try_forward(&x, false).unwrap();
    assert!(!before.equal(&expected), "a fresh model should differ");
    assert!(got.equal(&expected), "loaded weights must give identical outputs");
}

#[test]
fn a_file_that_does_not_fit_names_each_tensor() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    // A file with one tensor missing, one of the wrong shape and one the model does not have.
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.retain(|(n, _)| n != "1.running_var");
    for (name, t) in tensors.iter_mut() {
        if name == "5.weight" {
            *t = Tensor::zeros([10, 99], (Kind::Float, Device::Cpu));
        }
    }
    tensors.push(("6.weight".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
    let path = tmp("broken.safetensors");
    Tensor::write_safetensors(&tensors, &path).unwrap();

    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs2);
    let err = weights::load(&mut vs2, &path).unwrap_err();
    let RuntimeError::Weights { problems, .. } = &err else { panic!("{err}") };
    assert_eq!(problems.len(), 3, "{err}");
    let text = err.to_string();
    assert!(text.contains("missing: `1.running_var` [4]"), "{text}");
    assert!(
        text.contains("wrong shape: `5.weight` is [10, 99] in the file, [10, 144] in the model"),
        "{text}"
    );
    assert!(text.contains("unexpected: `6.weight`"), "{text}");
}

#[test]
fn a_missing_file_is_an_error() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let path = tmp("nope.safetensors");
    let err = weights::load(&mut vs, &path).unwrap_err();
    assert!(err.to_string().contains(&format!("cannot read {}", path.display())), "{err}");
}

/// The model's weights, each converted to `kind`.
fn weights_as(vs: &nn::VarStore, kind: Kind) -> Vec<(String, Tensor)> {
    vs.variables().into_iter().map(|(n, t)| (n, t.to_kind(kind))).collect()
}

/// A file of a wrong dtype, a wrong shape, a missing and an unexpected tensor: one error names
/// all four, not the dtype first and the rest once it is fixed.
#[test]
fn every_misfit_is_named_at_once() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let mut tensors = weights_as(&vs, Kind::Float);
    for (name, t) in tensors.iter_mut() {
        match name.as_str() {
            "0.weight" => *t = t.to_kind(Kind::Double),
            "5.weight" => *t = Tensor::zeros([10, 3], (Kind::Float, Device::Cpu)),
            _ => {}
        }
    }
    tensors.retain(|(name, _)| name != "0.bias");
    tensors.push(("extra".to_string(), Tensor::zeros([2], (Kind::Float, Device::Cpu))));
    let path = tmp("misfits.safetensors");
    let mut fresh = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &fresh);
    let misfits = [
        "wrong shape: `5.weight` is [10, 3] in the file, [10, 144] in the model",
        "missing: `0.bias` [4]",
        "unexpected: `extra` [2] is not in the model",
    ];
    Tensor::write_safetensors(&tensors, &path).unwrap();
    let err = weights::load(&mut fresh, &path).unwrap_err().to_string();
    for expected in misfits.iter().chain(&["wrong dtype: `0.weight` is F64 in the file, F32 in the model"]) {
        assert!(err.contains(expected), "{expected} not in:\n{err}");
    }
    // Nor does a non-finite value, in a file of the right dtypes: values are checked once the
    // file fits.
    for (name, t) in tensors.iter_mut() {
        match name.as_str() {
            "0.weight" => *t = t.to_kind(Kind::Float),
            "5.bias" => *t = t.detach().fill(f64::NAN),
            _ => {}
        }
    }
    Tensor::write_safetensors(&tensors, &path).unwrap();
    let err = weights::load(&mut fresh, &path).unwrap_err().to_string();
    for expected in misfits {
        assert!(err.contains(expected), "{expected} not in:\n{err}");
    }
}

#[test]
fn weights_of_another_dtype_are_refused_unless_cast() {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let hint = weights::LoadOptions { cast_hint: Some("--cast"), ..Default::default() };
    let cast = weights::LoadOptions { cast: true, ..Default::default() };
    for (kind, name, castable) in [
        (Kind::Double, "F64", true),
        (Kind::Half, "F16", true),
        (Kind::BFloat16, "BF16", true),
        (Kind::Int64, "I64", false),
        (Kind::Uint8, "U8", false),
        (Kind::Bool, "BOOL", false),
    ] {
        let path = tmp(&format!("dtype-{name}.safetensors"));
        Tensor::write_safetensors(&weights_as(&vs, kind), &path).unwrap();
        let mut fresh = nn::VarStore::new(Device::Cpu);
        let _ = model(NET, &fresh);
        let err = weights::load_with(&mut fresh, &path, &hint).unwrap_err().to_string();
        assert!(
            err.contains(&format!("wrong dtype: `0.weight` is {name} in the file, F32 in the model")),
            "{err}"
        );
        assert_eq!(err.contains("help: --cast converts"), castable, "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        let cast_result = weights::load_with(&mut fresh, &path, &cast);
        if castable {
            let loaded = cast_result.unwrap();
            // Batch norm's counter is an integer: a whole-valued float one is taken as one,
            // not cast (older nnc checkpoints hold it as F32).
            let floats = vs.variables().values().filter(|t| t.is_floating_point()).count();
            assert_eq!(loaded.cast.len(), floats, "{name}");
            let w = fresh.variables()["0.weight"].shallow_clone();
            assert_eq!(w.kind(), Kind::Float);
            let expected = vs.variables()["0.weight"].to_kind(kind).to_kind(Kind::Float);
            assert!(w.equal(&expected), "{name}: the cast values differ");
        } else {
            let err = cast_result.unwrap_err().to_string();
            assert!(err.contains("integers and booleans are never cast"), "{err}");
        }
    }
}

#[test]
fn non_finite_weights_are_refused_or_reported() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    for (name, t) in tensors.iter_mut() {
        if name == "0.weight" {
            *t = t.copy();
            let _ = t.view([-1]).get(0).fill_(f64::NAN);
            let _ = t.view([-1]).get(1).fill_(f64::INFINITY);
        }
    }
    let path = tmp("nan.safetensors");
    Tensor::write_safetensors(&tensors, &path).unwrap();
    let mut fresh = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &fresh);
    let before = fresh.variables()["0.weight"].copy();
    let err = weights::load(&mut fresh, &path).unwrap_err().to_string();
    assert!(err.contains("are not finite:\n  `0.weight`: 2 of 36 values are NaN or infinite"), "{err}");
    assert!(fresh.variables()["0.weight"].equal(&before), "a refused file must change nothing");

    let allow = weights::LoadOptions { allow_non_finite: true, ..Default::default() };
    let loaded = weights::load_with(&mut fresh, &path, &allow).unwrap();
    assert_eq!(loaded.non_finite, vec![weights::NonFinite { name: "0.weight".into(), count: 2, total: 36 }]);
}

#[test]
fn broken_files_are_explained_in_words() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let good = tmp("good.safetensors");
    weights::save(&vs, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let header = |json: &str| {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend(json.as_bytes());
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "shorter than the 8 bytes"),
        ("random", b"\x13\x37not safetensors at all".to_vec(), "declare a header"),
        ("truncated", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        ("longer", [&bytes[..], b"tail"].concat(), "bytes past its last tensor"),
        ("not-json", header("{not json"), "not the JSON table of tensors"),
        ("not-object", header("[1, 2]"), "does not start with `{`"),
        (
            "latin1",
            [8u64.to_le_bytes().to_vec(), vec![b'{', 0xff, 0xfe, b'}', b' ', b' ', b' ', b' ']].concat(),
            "not UTF-8",
        ),
        (
            "range",
            header(r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#),
            "does not match its shape and dtype",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = tmp(&format!("broken-{name}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        let mut fresh = nn::VarStore::new(Device::Cpu);
        let _ = model(NET, &fresh);
        let err = weights::load(&mut fresh, &path).unwrap_err().to_string();
        assert!(err.contains(expected), "{name}: `{err}` should say `{expected}`");
        assert!(err.contains(&path.display().to_string()), "{name}: `{err}` should name the file");
        assert!(
            !err.contains("Invalid") && !err.contains("Error"),
            "{name}: `{err}` is the format's enum name"
        );
    }
}

#[test]
fn a_file_that_is_not_regular_is_refused() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _ = model(NET, &vs);
    let dir = tmp("a-folder.safetensors");
    std::fs::create_dir_all(&dir).unwrap();
    let err = weights::load(&mut vs, &dir).unwrap_err().to_string();
    assert!(err.contains("it is not a regular file") && err.contains("a-folder"), "{err}");
    // A FIFO would block a reader that opened it.
    let fifo = tmp("fifo.safetensors");
    let _ = std::fs::remove_file(&fifo);
    if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let err = weights::load(&mut vs, &fifo).unwrap_err().to_string();
        assert!(err.contains("it is not a regular file"), "{err}");
    }
}
