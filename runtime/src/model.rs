//! The interpreter: a checked IR graph run on libtorch, node by node.

use nnc_compiler::free::{Constraint, FreeSizes};
use nnc_compiler::ir::{DType, Graph, Node, Op};
use nnc_compiler::Batch;
use tch::{nn, Kind, Tensor};

use crate::init::Init;
use crate::ops::{self, Params};
use crate::precision::Precision;
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
    /// For each node, whether a training forward computes it in place ([`trained_in_place`]).
    in_place: Vec<bool>,
    /// The precision of its forwards: fp32, or libtorch's bf16 autocast around them.
    precision: Precision,
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
        // Each layer's own tensors; then the tied ones, as a tensor may be tied to a later
        // layer's; then the layers applied again, which take all of their first's.
        let mut params: Vec<Params> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let tied: Vec<&str> = node.ties.iter().map(|t| t.tensor.as_str()).collect();
            params.push(match node.shares {
                Some(_) => Params::NONE,
                None => ops::try_create_untied(root, &node.name, &node.op, init, &tied)?,
            });
        }
        for (i, node) in graph.nodes.iter().enumerate() {
            for tie in &node.ties {
                let owner = params[tie.to.0].shared();
                params[i].tie(root, &node.name, &tie.tensor, &owner, &tie.to_tensor)?;
            }
        }
        for (i, node) in graph.nodes.iter().enumerate() {
            if let Some(owner) = node.shares {
                params[i] = params[owner.0].shared();
            }
        }
        Model::from_params(graph, params)
    }

    /// A model over tensors made elsewhere, one [`Params`] per node in graph order (none for a
    /// layer without tensors; a shared layer's own): a `model!` type's, whose tensors it
    /// shares, so that [`crate::Inference`] can plan it. Another number of them than of nodes
    /// is an error.
    pub fn from_params(graph: Graph, params: Vec<Params>) -> Result<Model, RuntimeError> {
        if params.len() != graph.nodes.len() {
            let (given, nodes) = (params.len(), graph.nodes.len());
            return Err(RuntimeError::Config(format!(
                "{given} layers' tensors given for the {nodes} nodes of network `{}`",
                graph.name
            )));
        }
        let last_use = graph.last_uses();
        let computed = [graph.computed(false), graph.computed(true)];
        let in_place = trained_in_place(&graph);
        Ok(Model { graph, params, last_use, computed, in_place, precision: Precision::Fp32 })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Makes every later forward compute in `precision` (its weights stay as they are: fp32
    /// master weights under bf16, which autocast casts for each forward).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Each node's tensors, in graph order (none for a layer without any).
    pub(crate) fn node_params(&self) -> &[Params] {
        &self.params
    }

    /// For each node, whether a forward pass of the mode computes it.
    pub(crate) fn computed_in(&self, train: bool) -> &[bool] {
        &self.computed[usize::from(train)]
    }

    /// Checks an input against the declared shape (any batch size where it is symbolic) and
    /// element type, for a model of one input.
    pub fn check_input(&self, x: &Tensor) -> Result<(), RuntimeError> {
        self.check_inputs(&[x])
    }

    /// Checks the inputs, one per declared input in the network's order: their number, each
    /// one's shape and element type, and that they share one batch.
    /// A free size (`input [N, 3, H, W]`) takes any value the network takes: the value each
    /// input gives it, the same wherever it is used, must satisfy what every layer needs,
    /// which the error states with the valid sizes.
    pub fn check_inputs(&self, xs: &[&Tensor]) -> Result<(), RuntimeError> {
        let declared = inputs(&self.graph);
        let expected: Vec<(&str, &[i64], DType)> =
            declared.iter().map(|(name, dims, dtype)| (name.as_str(), dims.as_slice(), *dtype)).collect();
        check_inputs(&expected, xs)?;
        let Some(free) = &self.graph.free else { return Ok(()) };
        let mut values: Vec<(&str, i64)> = Vec::new();
        for n in &free.names {
            let k = self.graph.inputs.iter().position(|&id| id == n.input).expect("an input of the graph");
            let batch = usize::from(self.graph.node(n.input).shape.batch != Batch::None);
            let size = xs[k].size()[n.axis + batch];
            match values.iter().find(|(name, _)| *name == n.name) {
                Some(&(_, first)) if first != size => {
                    let sizes = format!("{} = {first} and {size}", n.name);
                    return Err(free_size_error(&self.graph, free, sizes, None));
                }
                Some(_) => {}
                None => values.push((&n.name, size)),
            }
        }
        let value = |name: &str| values.iter().find(|(n, _)| *n == name).map(|&(_, v)| v);
        match free.violation(&value) {
            None => Ok(()),
            Some(c) => {
                let sizes: Vec<String> = values.iter().map(|(n, v)| format!("{n} = {v}")).collect();
                Err(free_size_error(&self.graph, free, sizes.join(", "), Some(c)))
            }
        }
    }

    /// The outputs of the mode without checking the inputs: what libtorch does with inputs the
    /// checker refuses (the tests of free sizes show that it refuses them too).
    pub fn try_forward_unchecked(&self, xs: &[&Tensor], train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.run(xs, train, false)
    }

    /// The main output, after checking the input's shape and element type, for a model of one
    /// input (one of several is an error: [`Model::try_forward_inputs`] takes them); a layer
    /// that libtorch refuses (memory, most often) is an error naming the layer.
    pub fn try_forward(&self, x: &Tensor, train: bool) -> Result<Tensor, RuntimeError> {
        self.try_forward_inputs(&[x], train)
    }

    /// The outputs of the mode, in the network's order (`Graph::outputs_in`): the main one
    /// first; in evaluation mode, without those of training alone, whose layers are skipped.
    pub fn try_forward_outputs(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.try_forward_outputs_inputs(&[x], train)
    }

    /// The main output of a model given its inputs, one tensor per declared input in the
    /// network's order, each checked.
    pub fn try_forward_inputs(&self, xs: &[&Tensor], train: bool) -> Result<Tensor, RuntimeError> {
        let mut outputs = self.try_forward_outputs_inputs(xs, train)?;
        Ok(outputs.swap_remove(0))
    }

    /// The outputs of the mode, as [`Model::try_forward_outputs`], of a model given its
    /// inputs, as [`Model::try_forward_inputs`].
    pub fn try_forward_outputs_inputs(
        &self,
        xs: &[&Tensor],
        train: bool,
    ) -> Result<Vec<Tensor>, RuntimeError> {
        self.check_inputs(xs)?;
        self.run(xs, train, false)
    }

    /// Every node's output, in graph order, for comparing runtime and inferred shapes; the
    /// layers of training's outputs are computed in either mode.
    pub fn forward_all(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.forward_all_inputs(&[x], train)
    }

    /// Every node's output, as [`Model::forward_all`], of a model given its inputs.
    pub fn forward_all_inputs(&self, xs: &[&Tensor], train: bool) -> Result<Vec<Tensor>, RuntimeError> {
        self.check_inputs(xs)?;
        self.run(xs, train, true)
    }

    /// Runs the graph; with `keep`, returns every node's output, else the mode's outputs. Each
    /// node's value is every tensor it computes, its output first, then any states (a recurrent
    /// layer's final `h_n`, ...), which the nodes that select them read.
    fn run(&self, xs: &[&Tensor], train: bool, keep: bool) -> Result<Vec<Tensor>, RuntimeError> {
        let _autocast = self.precision.enter(first_device(xs))?;
        let computed = &self.computed[usize::from(train || keep)];
        let mut values: Vec<Option<Vec<Tensor>>> = Vec::with_capacity(self.graph.nodes.len());
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let value = if !computed[i] {
                None
            } else if matches!(node.op, Op::Input(_)) {
                let k = self.graph.inputs.iter().position(|id| id.0 == i).expect("an input of the graph");
                Some(vec![xs[k].shallow_clone()])
            } else {
                let inputs = node_inputs(node, &values);
                // Not where every node's value is kept: the overwritten one is among them.
                match train && !keep && self.in_place[i] && ops::fits_in_place(&inputs) {
                    true => Some(vec![ops::apply_in_place(&node.name, &node.op, &inputs)?]),
                    false => Some(ops::apply_outputs(&node.name, &node.op, &self.params[i], &inputs, train)?),
                }
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
        let output =
            |v: Option<&Vec<Tensor>>| Ok(self.precision.output(&v.expect("the outputs are kept")[0])?);
        if keep {
            values.iter().map(|v| output(v.as_ref())).collect()
        } else {
            self.graph.outputs_in(train).map(|o| output(values[o.node.0].as_ref())).collect()
        }
    }
}

/// Which nodes a training forward computes in place on their first input, as PyTorch's
/// `ReLU(inplace=True)` after a batch norm and `out += identity` in torchvision's ResNet do:
/// an activation whose backward reads only its result, or a sum or difference
/// ([`ops::trains_in_place`]), of the shape of that input, which is read by nothing else (no
/// other node, no output of the network) and was made by an op whose backward does not read it
/// ([`ops::backward_ignores_output`]). That op's value is then a new tensor, never a graph input
/// or a weight, so nothing else sees it change, and autograd's check of saved tensors (which
/// refuses a backward through a tensor changed after it was saved) never fires. Not a linear
/// layer's output of another rank than 2: libtorch flattens such an input and gives a view of
/// the product, which autograd would follow through a copy of the whole tensor in the backward.
/// Evaluation is left as written: the interpreter is the reference the inference plan is held
/// to.
fn trained_in_place(graph: &Graph) -> Vec<bool> {
    let mut readers = vec![0usize; graph.nodes.len()];
    for id in graph.nodes.iter().flat_map(|n| &n.inputs).chain(graph.outputs.iter().map(|o| &o.node)) {
        readers[id.0] += 1;
    }
    let in_place = |node: &Node| {
        let Some(&first) = node.inputs.first() else { return false };
        let made_by = graph.node(first);
        let rank = made_by.shape.dims.len() + usize::from(!matches!(made_by.shape.batch, Batch::None));
        ops::trains_in_place(&node.op)
            && ops::backward_ignores_output(&made_by.op)
            && !(matches!(made_by.op, Op::Linear(_)) && rank != 2)
            && readers[first.0] == 1
            && made_by.shape == node.shape
    };
    graph.nodes.iter().map(in_place).collect()
}

/// The refusal of inputs whose free sizes break `broken` (or are inconsistent, without one).
fn free_size_error(
    graph: &Graph,
    free: &FreeSizes,
    sizes: String,
    broken: Option<&Constraint>,
) -> RuntimeError {
    let broken = broken.map(|c| (graph.node(c.node).name.clone(), c.need.to_string()));
    free_size_refusal(sizes, broken, free.valid_text())
}

/// The refusal of an input's free `sizes` (`H = 40, W = 48`): the layer and the need they
/// break (or, without one, names given two sizes), and the `valid` sizes. Generated models
/// refuse with it too.
pub fn free_size_refusal(sizes: String, broken: Option<(String, String)>, valid: String) -> RuntimeError {
    let (layer, need) = broken.unwrap_or_else(|| ("the input".into(), "one size for each name".into()));
    RuntimeError::FreeSize { sizes, layer, need, valid }
}

/// One layer of a generated model, as the checker inferred it (`<Type>::LAYERS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Its name, the prefix of its tensors in the `state_dict` (`b3.0.conv1`).
    pub name: &'static str,
    /// Its op as the report shows it (`conv2d 1→6, 5×5, padding 2`).
    pub op: &'static str,
    /// Its output shape; -1 is the batch.
    pub shape: &'static [i64],
    /// Its output's element type.
    pub dtype: DType,
    /// Learnable parameters: 0 for a shared layer applied again, less its tied tensors.
    pub params: u64,
    /// Multiply-adds of one example.
    pub macs: u64,
}

/// The tensors `node` reads from the values computed before it (each node's output and
/// states): of each input, the one its op reads (a recurrent layer's state, for a selector).
pub(crate) fn node_inputs<'v>(node: &Node, values: &'v [Option<Vec<Tensor>>]) -> Vec<&'v Tensor> {
    let reads = node.op.layer().reads();
    node.inputs.iter().map(|id| &values[id.0].as_ref().expect("inputs come first")[reads]).collect()
}

/// The device of a forward's inputs, which its autocast scope is for: the first input's (a
/// model's inputs share one device, or libtorch refuses the first op that mixes them).
pub(crate) fn first_device(xs: &[&Tensor]) -> tch::Device {
    xs.first().map_or(tch::Device::Cpu, |x| x.device())
}

/// The declared shape of a graph's (first) input, with -1 for a symbolic batch.
pub fn input_dims(graph: &Graph) -> Vec<i64> {
    graph.node(graph.input()).shape.sizes(-1)
}

/// Every input of a graph: its name, its declared shape (-1 for a symbolic batch and for a
/// free size) and its element type, in the network's order, as generated code lists them
/// (`INPUTS`).
pub fn inputs(graph: &Graph) -> Vec<(String, Vec<i64>, DType)> {
    graph
        .inputs
        .iter()
        .map(|&id| {
            let node = graph.node(id);
            let mut sizes = node.shape.sizes(-1);
            let batch = usize::from(node.shape.batch != Batch::None);
            for n in graph.free.iter().flat_map(|f| &f.names).filter(|n| n.input == id) {
                sizes[n.axis + batch] = -1;
            }
            (node.name.clone(), sizes, node.shape.dtype)
        })
        .collect()
}

/// Checks a tensor against a declared shape, -1 standing for any batch size, as a float
/// input. Generated models of one float input call this.
pub fn check_input(expected: &[i64], x: &Tensor) -> Result<(), RuntimeError> {
    check_typed_input(None, expected, DType::Float, x)
}

/// Checks a tensor against a declared shape, -1 standing for any batch size, and element
/// type: any floating-point kind for a float input (a model cast to f16 takes f16), int64
/// for ids, bool for a mask. `name` names the input in the error, for a model of several.
pub fn check_typed_input(
    name: Option<&str>,
    expected: &[i64],
    dtype: DType,
    x: &Tensor,
) -> Result<(), RuntimeError> {
    let actual = x.size();
    let fits = actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(&a, &e)| if e < 0 { a >= 1 } else { a == e });
    if !fits {
        let shown: Vec<String> = expected
            .iter()
            .enumerate()
            .map(|(i, &e)| match (e < 0, i) {
                (true, 0) => "N".into(),
                (true, _) => "_".into(),
                _ => e.to_string(),
            })
            .collect();
        return Err(RuntimeError::InputShape {
            name: name.map(String::from),
            expected: format!("[{}]", shown.join(", ")),
            actual,
        });
    }
    let kind = x.kind();
    let (ok, expected) = match dtype {
        DType::Float => (matches!(kind, Kind::Half | Kind::Float | Kind::Double | Kind::BFloat16), "floats"),
        DType::Int => (kind == Kind::Int64, "int64 ids"),
        DType::Bool => (kind == Kind::Bool, "booleans"),
    };
    match ok {
        true => Ok(()),
        false => Err(RuntimeError::InputType {
            name: name.map(String::from),
            expected,
            actual: format!("{kind:?}"),
        }),
    }
}

/// Checks the tensors given for a model's inputs: one per input of `expected` (name,
/// declared shape, element type), each as [`check_typed_input`] checks it, and one batch size
/// for all. Generated models of several inputs call this.
pub fn check_inputs(expected: &[(&str, &[i64], DType)], xs: &[&Tensor]) -> Result<(), RuntimeError> {
    if xs.len() != expected.len() {
        let names = expected.iter().map(|(name, _, _)| format!("`{name}`")).collect();
        return Err(RuntimeError::InputCount { names, actual: xs.len() });
    }
    let several = expected.len() > 1;
    for (&(name, dims, dtype), x) in expected.iter().zip(xs) {
        check_typed_input(several.then_some(name), dims, dtype, x)?;
    }
    // A declared batch is checked with the shape; a symbolic one is any size, the same for all.
    if let Some((&(first, _, _), x)) = expected.iter().zip(xs).next() {
        let first_batch = x.size().first().copied().unwrap_or(0);
        for (&(name, _, _), x) in expected.iter().zip(xs).skip(1) {
            let batch = x.size().first().copied().unwrap_or(0);
            if batch != first_batch {
                let (first, name) = (first.to_string(), name.to_string());
                return Err(RuntimeError::InputBatch { first, first_batch, name, batch });
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use nnc_compiler::{compile, Options, Root};

    /// The ops of the nodes a training forward computes in place, in graph order.
    fn in_place(body: &str) -> Vec<String> {
        let text = format!("network n {{\n    {body}\n}}\n");
        let compiled = compile(Root::Text { name: "n.net", text: &text, dir: None }, &Options::default());
        assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
        let graph = compiled.graphs.into_iter().next().unwrap();
        let chosen = super::trained_in_place(&graph);
        graph.nodes.iter().zip(chosen).filter(|(_, c)| *c).map(|(n, _)| n.op.to_string()).collect()
    }

    #[test]
    fn training_overwrites_only_what_no_backward_and_no_other_reader_needs() {
        // A batch norm's output by its ReLU; a residual sum over the batch norm before it, then
        // its ReLU; not a ReLU's output (ReLU6 after ReLU), which ReLU's backward reads.
        let resnet = "input [N, 3, 8, 8]\n    x = conv2d(8, 3, padding=1) -> batchnorm -> relu\n    \
                      y = x -> conv2d(8, 3, padding=1) -> batchnorm\n    s = y + x\n    \
                      s -> relu -> relu6 -> flatten -> linear(4)";
        assert_eq!(in_place(resnet), ["relu", "add", "relu"]);
        // Linear layers' outputs by sigmoid and tanh, and a difference; not a value read twice
        // (`e`), nor a sigmoid's output, which its backward reads.
        let mlp = "input [N, 12]\n    h = linear(16) -> sigmoid -> linear(16) -> tanh\n    \
                   d = h -> linear(16) -> _ - h\n    e = d -> relu\n    f = e -> sigmoid -> relu\n    \
                   f * e -> linear(3)";
        assert_eq!(in_place(mlp), ["sigmoid", "tanh", "sub", "relu"]);
        // Never the network's input, nor a value that is an output of the network; GELU reads
        // its input in its backward.
        let edges = "input [N, 6]\n    a = relu -> linear(6)\n    b = a -> gelu\n    c = a -> linear(6) -> relu\n    \
                     output b, c, a";
        assert_eq!(in_place(edges), ["relu"]);
        // Not ReLU6 (its backward reads its input), nor a linear layer's output of rank 3 (a
        // view of the product), nor a sum over a sigmoid's output; a convolution's output by
        // its sigmoid.
        let others = "input [N, 4, 6]\n    a = linear(6) -> relu\n    b = a -> conv1d(3, 1) -> relu6\n    \
                      c = a -> conv1d(3, 1) -> sigmoid\n    c + b";
        assert_eq!(in_place(others), ["sigmoid"]);
    }
}
