//! What several of the runtime's test files share (a folder, so cargo builds no test of it).

use nnc_compiler::ir::{DType, Graph};
use tch::{Device, Kind, Tensor};

/// A random batch on the CPU for each input of `graph`, of its element type: normal floats, ids
/// below the bound of the embeddings that read them, random masks.
pub fn random_inputs(graph: &Graph, batch: i64) -> Vec<Tensor> {
    graph
        .inputs
        .iter()
        .map(|&id| {
            let node = graph.node(id);
            let sizes = node.shape.sizes(batch);
            match node.shape.dtype {
                DType::Float => Tensor::randn(sizes.as_slice(), (Kind::Float, Device::Cpu)),
                DType::Int => {
                    Tensor::randint(graph.id_bound(id) as i64, sizes.as_slice(), (Kind::Int64, Device::Cpu))
                }
                DType::Bool => Tensor::rand(sizes.as_slice(), (Kind::Float, Device::Cpu)).lt(0.5),
            }
        })
        .collect()
}
