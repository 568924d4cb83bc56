//! A network of several inputs on the interpreter: each input checked for its shape and element
//! type, naming it, the inputs' batches checked to agree, and the inferred shapes of every node
//! met at run time.

use nnc_compiler::{compile, Options, Root};
use nnc_runtime::{Init, Model};
use tch::{nn, Device, Kind, Tensor};

const TWO_INPUTS: &str = "network two(len = 6) {
    input tokens [N, len] int
    input x [N, 3]
    e = tokens -> embedding(20, 4, padding_idx=0) -> mean(1)
    e + (x -> linear(4)) -> relu -> linear(2)
}";

fn model(text: &str) -> (Model, nn::VarStore) {
    let compiled = compile(Root::Text { name: "two.net", text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), compiled.graphs.into_iter().next().unwrap(), Init::PyTorch);
    (model, vs)
}

fn ids(batch: i64, len: i64) -> Tensor {
    Tensor::randint(20, [batch, len], (Kind::Int64, Device::Cpu))
}

fn floats(sizes: &[i64]) -> Tensor {
    Tensor::randn(sizes, (Kind::Float, Device::Cpu))
}

#[test]
fn several_inputs_run_with_their_inferred_shapes() {
    let (model, _vs) = model(TWO_INPUTS);
    let graph = model.graph();
    let names: Vec<&str> = graph.inputs.iter().map(|&id| graph.node(id).name.as_str()).collect();
    assert_eq!(names, ["tokens", "x"]);
    let (tokens, x) = (ids(3, 6), floats(&[3, 3]));
    let all = tch::no_grad(|| model.forward_all_inputs(&[&tokens, &x], false)).unwrap();
    for (node, out) in graph.nodes.iter().zip(&all) {
        assert_eq!(out.size(), node.shape.sizes(3), "`{}`", node.name);
    }
    let y = tch::no_grad(|| model.try_forward_inputs(&[&tokens, &x], false)).unwrap();
    assert!(y.equal(&all[graph.output().0]));
}

#[test]
fn each_input_is_checked_by_name() {
    let (model, _vs) = model(TWO_INPUTS);
    let err = |xs: &[&Tensor]| model.try_forward_inputs(xs, false).unwrap_err().to_string();
    let (tokens, x) = (ids(2, 6), floats(&[2, 3]));
    assert_eq!(err(&[&x, &tokens]), "the model expects input `tokens` [N, 6], but got [2, 3]");
    assert_eq!(
        err(&[&floats(&[2, 6]), &x]),
        "the model expects input `tokens` to hold int64 ids, but got a tensor of Float"
    );
    assert_eq!(
        err(&[&tokens, &x.to_kind(Kind::Int64)]),
        "the model expects input `x` to hold floats, but got a tensor of Int64"
    );
    assert_eq!(
        err(&[&tokens, &floats(&[3, 3])]),
        "the inputs must share their batch, but `tokens` holds 2 examples and `x` 3"
    );
    assert_eq!(err(&[&tokens]), "the model takes 2 inputs (`tokens`, `x`), but was given 1");
    // The one-tensor forward of a model of several is the same error.
    assert_eq!(
        model.try_forward(&tokens, false).unwrap_err().to_string(),
        "the model takes 2 inputs (`tokens`, `x`), but was given 1"
    );
}

#[test]
fn a_lone_input_is_checked_for_its_element_type_without_a_name() {
    let (one, _vs) = model("network one {\n input [N, 5] int\n embedding(9, 2)\n}");
    let err = one.try_forward(&floats(&[2, 5]), false).unwrap_err().to_string();
    assert_eq!(err, "the model expects input to hold int64 ids, but got a tensor of Float");
    let (floats_in, _vs) = model("network f {\n input [N, 4]\n linear(2)\n}");
    let err = floats_in.try_forward(&ids(2, 4), false).unwrap_err().to_string();
    assert_eq!(err, "the model expects input to hold floats, but got a tensor of Int64");
    // Any floating-point kind is a float input (a model cast to f64 takes f64).
    let err = floats_in.try_forward(&floats(&[2, 4]).to_kind(Kind::Double), false).unwrap_err().to_string();
    assert!(err.starts_with("layer `linear` (linear 4→2) failed"), "{err}");
}
