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
    /// For each node, whether a forward pass computes it in evaluation mode and in training
    /// mode: evaluation skips the layers only outputs of training read.
    computed: [Vec<bool>; 2],
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
        let computed = [graph.computed(false), graph.computed(true)];
        Ok(Model { graph, params, last_use, computed })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Checks an input against the declared shape (any batch size where it is symbolic).
    pub fn check_input(&self, x: &Tensor) -> Result<(), RuntimeError> {
        check_input(&input_dims(&self.graph), x)
    }

    /// The main output, after checking the input's shape; a layer that libtorch refuses
    /// (memory, most often) is an error naming the layer.
    pub fn try_forward(&self, x: &Tensor, train: bool) -> Result<Tensor, RuntimeError> {
        let mut outputs = self.try_forward_outputs(x, train)?;
        Ok(outputs.swap_remove(0))
    }

    /// The outputs of the mode, in the network's order (`Graph::outputs_in`): the main one
    /// first; in evaluation mode, without those of training alone, whose layers are skipped.
    pub fn try_forward_outputs(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.check_input(x)?;
        self.run(x, train, false)
    }

    /// Every node's output, in graph order, for comparing runtime and inferred shapes; the
    /// layers of training's outputs are computed in either mode.
    pub fn forward_all(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.check_input(x)?;
        self.run(x, train, true)
    }

    /// Runs the graph; with `keep`, returns every node's output, else the mode's outputs.
    fn run(&self, x: &Tensor, train: bool, keep: bool) -> Result<Vec<Tensor>, RuntimeError> {
        let computed = &self.computed[usize::from(train || keep)];
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(self.graph.nodes.len());
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let value = if !computed[i] {
                None
            } else if matches!(node.op, Op::Input(_)) {
                Some(x.shallow_clone())
            } else {
                let inputs: Vec<&Tensor> =
                    node.inputs.iter().map(|id| values[id.0].as_ref().expect("inputs come first")).collect();
                Some(ops::apply(&node.name, &node.op, &self.params[i], &inputs, train)?)
            };
            values.push(value);
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
            self.graph
                .outputs_in(train)
                .map(|o| values[o.node.0].as_ref().expect("the outputs are kept").shallow_clone())
                .collect()
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
