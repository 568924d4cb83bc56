//! Memory: an allocation libtorch refuses is an error naming the layer, its input and the
//! size asked for, never a panic; and a command whose estimate (the compiler's, tested there)
//! exceeds the memory is refused before it starts, with a batch that fits.

use std::path::Path;

use nnc_compiler::back::memory::{estimate, Workload};
use nnc_compiler::back::report;
use nnc_compiler::{compile, Graph, Options, Root};
use nnc_runtime::memory::{self, Available};
use nnc_runtime::{Failure, Init, Model, RuntimeError};
use tch::{nn, Device, Kind, Tensor};

fn graph(text: &str) -> Graph {
    let compiled = compile(Root::Text { name: "test.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    compiled.graphs.into_iter().next().unwrap()
}

/// A convolution whose padding makes its output 2⁴⁶ floats, 281 TB: more than any address
/// space, so that libtorch refuses it whatever the machine and its overcommit policy.
const HUGE_OUTPUT: &str = "network huge {
    input [N, 1, 1, 1]
    relu -> conv2d(1, 1, padding=4194303)
}";

#[test]
fn a_layer_libtorch_cannot_allocate_is_an_error_naming_it() {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::try_new(&vs.root(), graph(HUGE_OUTPUT), Init::PyTorch).unwrap();
    let x = Tensor::ones([1, 1, 1, 1], (Kind::Float, Device::Cpu));
    let err = tch::no_grad(|| model.try_forward(&x, false)).unwrap_err();
    let RuntimeError::Layer(layer) = &err else { panic!("not a layer's error: {err}") };
    assert_eq!(layer.layer, "1");
    assert!(matches!(layer.failure, Failure::OutOfMemory { .. }), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("layer `1` (conv2d 1→1, 1×1, padding 4194303)"), "{message}");
    assert!(message.contains("on input [1, 1, 1, 1]"), "{message}");
    assert!(message.ends_with("help: try a smaller batch or input size"), "{message}");
    // libtorch's CPU allocator says how much (2⁴⁶ floats of 8388607²); its C++ backtrace is
    // left out.
    assert!(message.contains("could not allocate 281.47 TB (281474909601796 bytes)"), "{message}");
    assert!(!message.contains("frame #"), "{message}");
}

#[test]
fn tensors_libtorch_cannot_allocate_are_an_error_naming_the_layer() {
    let vs = nn::VarStore::new(Device::Cpu);
    let g = graph("network wide {\n input [N, 4194304]\n linear(4194304)\n}");
    let err = Model::try_new(&vs.root(), g, Init::PyTorch).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("layer `linear` (linear 4194304→4194304) could not allocate 70.37 TB"),
        "{message}"
    );
    assert!(message.contains("creating its tensor `weight` [4194304, 4194304]"), "{message}");
    assert!(
        message.ends_with("help: the layer's sizes are too large for the memory; make it smaller"),
        "{message}"
    );
}

#[test]
fn a_batch_over_the_available_memory_is_refused_with_one_that_fits() {
    let g = compile(Root::Path(Path::new("../models/lenet.net")), &Options::default()).graphs.remove(0);
    let available = |bytes| Available { bytes, limit: format!("the test allows {bytes} bytes") };
    let need = |batch| estimate(&g, Workload::KeepAll, batch).total();
    memory::check_against(&g, Workload::KeepAll, 64, "running lenet at batch 64", available(need(64)))
        .unwrap();
    let err =
        memory::check_against(&g, Workload::KeepAll, 65, "running lenet at batch 65", available(need(64)))
            .unwrap_err();
    let RuntimeError::Memory(refusal) = &err else { panic!("not a refusal: {err}") };
    // The batch suggested leaves a quarter of the memory to what the estimate does not count.
    let fits = refusal.fits.unwrap();
    assert!(need(fits) <= need(64) / 4 * 3 && need(fits + 1) > need(64) / 4 * 3, "{fits}");
    assert_eq!(
        err.to_string(),
        format!(
            "running lenet at batch 65 needs about {} (parameters 246.82 kB, layer outputs {}), but the \
             test allows {} bytes\nhelp: a batch of {fits} or less should fit",
            report::bytes(need(65)),
            report::bytes(need(65) - 246_824),
            need(64)
        )
    );
    // When not even one example fits, the help says what else to change.
    let err = memory::check_against(&g, Workload::KeepAll, 8, "running lenet at batch 8", available(1000))
        .unwrap_err();
    assert!(err
        .to_string()
        .ends_with("help: a smaller batch is unlikely to be enough; use a smaller input size or model"));
}

#[test]
fn the_available_memory_is_read_on_linux() {
    if cfg!(target_os = "linux") {
        let available = memory::available().expect("/proc/meminfo");
        assert!(available.bytes > 0, "{available:?}");
    }
}
