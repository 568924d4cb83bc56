//! The interpreter: a checked IR graph run on libtorch, node by node.

use nnc_compiler::ir::{Graph, Op};
use tch::{nn, Tensor};

use crate::init::Init;
use crate::ops::{self, Params};
use crate::RuntimeError;

/// A network built from its IR graph, with its parameters in a `VarStore`.
#[derive(Debug)]
pub struct Model {
    graph: Graph,
    params: Vec<Params>,
    /// For each node, the index of the last node that reads it, so that intermediate tensors
    /// are freed as soon as they are no longer needed.
    last_use: Vec<usize>,
}

impl Model {
    /// Creates the parameters of every layer under `root`, named as the IR names them. Panics
    /// if libtorch cannot allocate them; [`Model::try_new`] returns the error instead.
    pub fn new(root: &nn::Path, graph: Graph, init: Init) -> Model {
        Model::try_new(root, graph, init).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates the parameters of every layer under `root`, named as the IR names them; a
    /// tensor libtorch cannot allocate is an error naming its layer.
    pub fn try_new(root: &nn::Path, graph: Graph, init: Init) -> Result<Model, RuntimeError> {
        let params = graph
            .nodes
            .iter()
            .map(|n| ops::try_create_params(root, &n.name, &n.op, init))
            .collect::<Result<_, _>>()?;
        let last_use = graph.last_uses();
        Ok(Model { graph, params, last_use })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Checks an input against the declared shape (any batch size where it is symbolic).
    pub fn check_input(&self, x: &Tensor) -> Result<(), RuntimeError> {
        check_input(&input_dims(&self.graph), x)
    }

    /// The output, after checking the input's shape; a layer that libtorch refuses (memory,
    /// most often) is an error naming the layer.
    pub fn try_forward(&self, x: &Tensor, train: bool) -> Result<Tensor, RuntimeError> {
        self.check_input(x)?;
        let mut outputs = self.run(x, train, false)?;
        Ok(outputs.pop().expect("the output"))
    }

    /// Every node's output, in graph order, for comparing runtime and inferred shapes.
    pub fn forward_all(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.check_input(x)?;
        self.run(x, train, true)
    }

    /// Runs the graph; with `keep`, returns every node's output, else only the output's.
    fn run(&self, x: &Tensor, train: bool, keep: bool) -> Result<Vec<Tensor>, RuntimeError> {
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(self.graph.nodes.len());
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let value = if matches!(node.op, Op::Input(_)) {
                x.shallow_clone()
            } else {
                let inputs: Vec<&Tensor> =
                    node.inputs.iter().map(|id| values[id.0].as_ref().expect("inputs come first")).collect();
                ops::apply(&node.name, &node.op, &self.params[i], &inputs, train)?
            };
            values.push(Some(value));
            if !keep {
                for input in &node.inputs {
                    if self.last_use[input.0] == i {
                        values[input.0] = None;
                    }
                }
            }
        }
        Ok(if keep {
            values.into_iter().map(|v| v.expect("kept")).collect()
        } else {
            vec![values[self.graph.output.0].take().expect("the output is kept")]
        })
    }
}

/// The declared input shape of a graph, with -1 for a symbolic batch.
pub fn input_dims(graph: &Graph) -> Vec<i64> {
    graph.node(graph.input).shape.sizes(-1)
}

/// Checks a tensor against a declared shape, -1 standing for any batch size. Generated models
/// call this too.
pub fn check_input(expected: &[i64], x: &Tensor) -> Result<(), RuntimeError> {
    let actual = x.size();
    let fits = actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(&a, &e)| if e < 0 { a >= 1 } else { a == e });
    if fits {
        Ok(())
    } else {
        let shown: Vec<String> = expected
            .iter()
            .enumerate()
            .map(|(i, &e)| if e < 0 && i == 0 { "N".into() } else { e.to_string() })
            .collect();
        Err(RuntimeError::InputShape { expected: format!("[{}]", shown.join(", ")), actual })
    }
}

impl nn::ModuleT for Model {
    /// Panics, with the error's message, on an input of the wrong shape or a layer libtorch
    /// refuses (an allocation too large for the memory, most often), as `ModuleT` cannot
    /// return an error; call [`Model::try_forward`] to get the error instead.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.try_forward(xs, train) {
            Ok(y) => y,
            Err(e) => panic!("{e}"),
        }
    }
}
